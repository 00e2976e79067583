package vulndb

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// A bundle is a gzipped tar with two members, in this order:
//
//	manifest.json   BundleManifest (format, schema, version, SHA-256 and size of the database)
//	vulndb.sqlite   a compact copy of the database (VACUUM INTO), journal mode DELETE
//
// The manifest comes first so Import can refuse a bundle before reading the database.
const (
	bundleFormat   = "vigil-vulndb-bundle"
	bundleManifest = "manifest.json"
	bundleDB       = "vulndb.sqlite"
	maxManifest    = 4 << 20
	maxBundleDB    = 16 << 30
)

// BundleManifest describes a bundle.
type BundleManifest struct {
	Format  string        `json:"format"`
	Schema  int           `json:"schema"`
	Version Version       `json:"version"`
	Created time.Time     `json:"created"`
	SHA256  string        `json:"sha256"`
	Size    int64         `json:"size"`
	Sources []SourceState `json:"sources"`
}

// Export writes a bundle of the current database to path (atomically: a temporary file renamed).
func (d *DB) Export(ctx context.Context, path string) (BundleManifest, error) {
	var m BundleManifest
	dir := filepath.Dir(path)
	tmpDB, err := os.CreateTemp(dir, ".vulndb-export-*.sqlite")
	if err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	tmpDB.Close()
	os.Remove(tmpDB.Name()) // VACUUM INTO wants a new file
	defer os.Remove(tmpDB.Name())

	db, release, err := d.handle()
	if err != nil {
		return m, err
	}
	_, err = db.ExecContext(ctx, `VACUUM INTO ?`, tmpDB.Name())
	release()
	if err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	if err := setJournalDelete(ctx, tmpDB.Name()); err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	if m.Version, err = d.Version(ctx); err != nil {
		return m, err
	}
	if m.Sources, err = d.SourceStates(ctx); err != nil {
		return m, err
	}
	f, err := os.Open(tmpDB.Name())
	if err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if m.Size, err = io.Copy(h, f); err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	m.Format, m.Schema, m.Created, m.SHA256 = bundleFormat, SchemaVersion, d.Now().UTC(), hex.EncodeToString(h.Sum(nil))
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return m, err
	}

	out, err := os.CreateTemp(dir, ".vulndb-bundle-*")
	if err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	hdr := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: m.Created, Typeflag: tar.TypeReg})
	}
	if err := hdr(bundleManifest, int64(len(mj))); err != nil {
		return m, err
	}
	if _, err := tw.Write(mj); err != nil {
		return m, err
	}
	if err := hdr(bundleDB, m.Size); err != nil {
		return m, err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	for _, c := range []io.Closer{tw, zw} {
		if err := c.Close(); err != nil {
			return m, fmt.Errorf("vulndb: export: %w", err)
		}
	}
	if err := out.Sync(); err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	if err := out.Close(); err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	if err := os.Rename(out.Name(), path); err != nil {
		return m, fmt.Errorf("vulndb: export: %w", err)
	}
	ok = true
	return m, nil
}

func setJournalDelete(ctx context.Context, path string) error {
	sdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(1000)")
	if err != nil {
		return err
	}
	defer sdb.Close()
	var mode string
	if err := sdb.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode); err != nil {
		return err
	}
	if mode != "delete" {
		return fmt.Errorf("database %s is in use (journal mode stays %q)", path, mode)
	}
	return nil
}

// ErrInUse reports that another process holds the database open, so it cannot be replaced.
var ErrInUse = errors.New("vulndb: database is in use by another process")

// Import replaces the database with a bundle made by Export. The bundle is verified first
// (format, schema, size, SHA-256, SQLite integrity); only then is the live file swapped, by a
// rename, so any failure leaves the current database untouched. Only databases opened with Open
// can be replaced, and no other process may hold them open meanwhile (ErrInUse).
func (d *DB) Import(ctx context.Context, path string) (BundleManifest, error) {
	var m BundleManifest
	if d.path == "" {
		return m, errors.New("vulndb: import: the database is embedded, not a file")
	}
	f, err := os.Open(path)
	if err != nil {
		return m, fmt.Errorf("vulndb: import: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return m, fmt.Errorf("vulndb: import %s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil || h.Name != bundleManifest || h.Size > maxManifest {
		return m, fmt.Errorf("vulndb: import %s: not a vulnerability database bundle (no manifest first)", path)
	}
	mj, err := io.ReadAll(io.LimitReader(tr, maxManifest))
	if err != nil {
		return m, fmt.Errorf("vulndb: import %s: %w", path, err)
	}
	if err := json.Unmarshal(mj, &m); err != nil || m.Format != bundleFormat {
		return m, fmt.Errorf("vulndb: import %s: bad manifest", path)
	}
	if m.Schema != SchemaVersion {
		return m, fmt.Errorf("vulndb: import %s: bundle schema %d, this build reads %d", path, m.Schema, SchemaVersion)
	}
	if m.Size <= 0 || m.Size > maxBundleDB {
		return m, fmt.Errorf("vulndb: import %s: bad database size %d", path, m.Size)
	}
	h, err = tr.Next()
	if err != nil || h.Name != bundleDB || h.Size != m.Size {
		return m, fmt.Errorf("vulndb: import %s: database member missing or of the wrong size", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.path), ".vulndb-import-*.sqlite")
	if err != nil {
		return m, fmt.Errorf("vulndb: import: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), io.LimitReader(tr, m.Size))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return m, fmt.Errorf("vulndb: import %s: %w", path, err)
	}
	if n != m.Size || hex.EncodeToString(sum.Sum(nil)) != m.SHA256 {
		return m, fmt.Errorf("vulndb: import %s: checksum mismatch (truncated or altered bundle)", path)
	}
	if err := verifyFile(ctx, tmpName); err != nil {
		return m, fmt.Errorf("vulndb: import %s: %w", path, err)
	}
	err = d.swap(ctx, tmpName)
	d.invalidate() // after swap released d.mu: loadIndex takes idxMu before d.mu
	if err != nil {
		return m, err
	}
	return m, nil
}

// verifyFile checks a candidate database without turning it to WAL (which would create side files).
func verifyFile(ctx context.Context, path string) error {
	sdb, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer sdb.Close()
	var res string
	if err := sdb.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	var v string
	if err := sdb.QueryRowContext(ctx, `SELECT value FROM vdb_meta WHERE key='schema'`).Scan(&v); err != nil {
		return fmt.Errorf("not a vulnerability database: %w", err)
	}
	if v != fmt.Sprint(SchemaVersion) {
		return fmt.Errorf("schema %s, this build reads %d", v, SchemaVersion)
	}
	return nil
}

// swap closes the live database, makes sure no other process uses it (leaving WAL mode needs
// exclusive access, and a stale -wal must never be replayed into the new file), renames the new
// file over it and reopens.
func (d *DB) swap(ctx context.Context, newPath string) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return errors.New("vulndb: database is closed")
	}
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("vulndb: import: %w", err)
	}
	d.db = nil
	reopen := func() error {
		sdb, err := openFile(d.path)
		if err != nil {
			return err
		}
		if err := sdb.PingContext(ctx); err != nil {
			sdb.Close()
			return err
		}
		d.db = sdb
		return nil
	}
	if err := setJournalDelete(ctx, d.path); err != nil {
		if rerr := reopen(); rerr != nil {
			return fmt.Errorf("vulndb: import: %w (and reopening failed: %v)", err, rerr)
		}
		return fmt.Errorf("%w: %v", ErrInUse, err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		os.Remove(d.path + side)
	}
	renameErr := os.Rename(newPath, d.path)
	if err := reopen(); err != nil {
		return fmt.Errorf("vulndb: import: reopen: %w", err)
	}
	if renameErr != nil {
		return fmt.Errorf("vulndb: import: %w", renameErr)
	}
	return nil
}
