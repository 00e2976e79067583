package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// VulnDBBundle describes the vulnerability database bundle the server processes share: the
// vulndb lineage and version it holds, and the SHA-256 and size of the bundle file itself.
type VulnDBBundle struct {
	Lineage     string    `json:"lineage"`
	Version     int64     `json:"version"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	PublishedAt time.Time `json:"publishedAt"`
	Publisher   string    `json:"publisher"`
}

// vulnDBChunk is the size of one stored piece of a bundle: reading or writing one holds a chunk
// in memory, never the bundle.
var vulnDBChunk = 1 << 20

// PublishedVulnDB returns the published bundle's description (ok false when none is published).
func (s *Store) PublishedVulnDB(ctx context.Context) (b VulnDBBundle, ok bool, err error) {
	b, err = s.publishedVulnDB(ctx, s.db)
	if errors.Is(err, sql.ErrNoRows) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("store: published vulnerability database: %w", err)
	}
	return b, true, nil
}

func (s *Store) publishedVulnDB(ctx context.Context, q querier) (VulnDBBundle, error) {
	var (
		b  VulnDBBundle
		at int64
	)
	err := s.queryRow(ctx, q, `SELECT lineage, version, sha256, size, published_at, publisher FROM vulndb_published WHERE id = 1`).
		Scan(&b.Lineage, &b.Version, &b.SHA256, &b.Size, &at, &b.Publisher)
	b.PublishedAt = fromMicros(at)
	return b, err
}

// PublishVulnDB stores the bundle read from r as the one the processes share, unless the published
// one is of another lineage or not older (published false, nothing written): a lineage moves
// only forward, and the first one published stays the fleet's. The bundle's SHA-256 and size are
// computed here; b gives its lineage, version and publisher.
func (s *Store) PublishVulnDB(ctx context.Context, b VulnDBBundle, r io.Reader) (published bool, err error) {
	if b.Lineage == "" || b.Version <= 0 {
		return false, fmt.Errorf("%w: a published vulnerability database needs a lineage and a version", ErrInvalid)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if s.dialect == Postgres { // one publisher at a time; readers go on
			if _, err := s.exec(ctx, tx, `LOCK TABLE vulndb_published IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		cur, err := s.publishedVulnDB(ctx, tx)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case cur.Lineage != b.Lineage || cur.Version >= b.Version:
			return nil
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM vulndb_chunks`); err != nil {
			return err
		}
		h := sha256.New()
		buf := make([]byte, vulnDBChunk)
		b.Size = 0
		for seq := 0; ; seq++ {
			n, rerr := io.ReadFull(r, buf)
			if n > 0 {
				h.Write(buf[:n])
				b.Size += int64(n)
				if _, err := s.exec(ctx, tx, `INSERT INTO vulndb_chunks (seq, data) VALUES (?, ?)`, seq, buf[:n]); err != nil {
					return err
				}
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
		if b.Size == 0 {
			return fmt.Errorf("%w: an empty vulnerability database bundle", ErrInvalid)
		}
		b.SHA256, b.PublishedAt = hex.EncodeToString(h.Sum(nil)), s.now()
		if _, err := s.exec(ctx, tx, `INSERT INTO vulndb_published (id, lineage, version, sha256, size, published_at, publisher)
			VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET lineage = excluded.lineage, version = excluded.version,
			sha256 = excluded.sha256, size = excluded.size, published_at = excluded.published_at, publisher = excluded.publisher`,
			b.Lineage, b.Version, b.SHA256, b.Size, micros(b.PublishedAt), b.Publisher); err != nil {
			return err
		}
		published = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: publish vulnerability database: %w", err)
	}
	return published, nil
}

// ErrBundleChanged reports that FetchVulnDB read a bundle while a newer one was being published.
var ErrBundleChanged = errors.New("store: the published vulnerability database changed while it was read")

// FetchVulnDB writes the published bundle to w and returns its description. The bytes written are
// checked against the published size and SHA-256 before it returns (w must be discarded on
// error). It returns ErrNotFound when none is published.
func (s *Store) FetchVulnDB(ctx context.Context, w io.Writer) (VulnDBBundle, error) {
	var q querier = s.db
	if s.dialect == Postgres {
		// The description and every chunk from one snapshot, even if a publisher commits meanwhile.
		tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return VulnDBBundle{}, fmt.Errorf("store: fetch vulnerability database: %w", err)
		}
		defer tx.Rollback()
		q = tx
	}
	b, err := s.publishedVulnDB(ctx, q)
	if errors.Is(err, sql.ErrNoRows) {
		return b, notFound("published vulnerability database", "")
	}
	if err != nil {
		return b, fmt.Errorf("store: fetch vulnerability database: %w", err)
	}
	h := sha256.New()
	var size int64
	// One chunk per query: a chunk is the most held in memory at once.
	for seq := 0; size < b.Size; seq++ {
		var data []byte
		err := s.queryRow(ctx, q, `SELECT data FROM vulndb_chunks WHERE seq = ?`, seq).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return b, fmt.Errorf("store: fetch vulnerability database: %w", err)
		}
		size += int64(len(data))
		h.Write(data)
		if _, err := w.Write(data); err != nil {
			return b, fmt.Errorf("store: fetch vulnerability database: %w", err)
		}
	}
	if size != b.Size || hex.EncodeToString(h.Sum(nil)) != b.SHA256 {
		// Without a snapshot (SQLite), a publisher may have replaced the chunks under the reader.
		if now, err := s.publishedVulnDB(ctx, q); err == nil && now != b {
			return b, ErrBundleChanged
		}
		return b, fmt.Errorf("store: fetch vulnerability database: the stored bundle is damaged (%d bytes of %d, or its SHA-256 differs)", size, b.Size)
	}
	return b, nil
}
