package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// PutResource creates or updates a resource's descriptive fields (type, name, tags, metadata, image
// repository, scan mode, removal). Its inventory hash and last scan time change only through
// PutInventory.
func (s *Store) PutResource(ctx context.Context, r model.Resource) error {
	_, err := s.SaveResource(ctx, r)
	return err
}

// SaveResource is PutResource that also reports whether anything was created or changed: an agent
// resubmitting an unchanged resource writes nothing.
func (s *Store) SaveResource(ctx context.Context, r model.Resource) (changed bool, err error) {
	if r.Account == "" || r.ID == "" || r.Type == "" {
		return false, fmt.Errorf("%w: resource needs an account, an ID and a type", ErrInvalid)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now()
	}
	tags, err := json.Marshal(nonNilMap(r.Tags))
	if err != nil {
		return false, err
	}
	meta, err := json.Marshal(nonNilMap(r.Metadata))
	if err != nil {
		return false, err
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// The update applies only when a field differs, so RowsAffected says whether the row changed.
		res, err := s.exec(ctx, tx, `INSERT INTO resources (account, id, type, name, tags, metadata, image_repository, scan_mode, created_at, removed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account, id) DO UPDATE SET type = excluded.type, name = excluded.name, tags = excluded.tags,
				metadata = excluded.metadata, image_repository = excluded.image_repository, scan_mode = excluded.scan_mode,
				removed_at = excluded.removed_at
			WHERE resources.type <> excluded.type OR resources.name <> excluded.name OR resources.tags <> excluded.tags
				OR resources.metadata <> excluded.metadata OR resources.image_repository <> excluded.image_repository
				OR resources.scan_mode <> excluded.scan_mode OR COALESCE(resources.removed_at, -1) <> COALESCE(excluded.removed_at, -1)`,
			r.Account, r.ID, r.Type, r.Name, string(tags), string(meta), r.ImageRepository, r.ScanMode, micros(r.CreatedAt), ptrMicros(r.RemovedAt))
		if err != nil {
			return fmt.Errorf("store: put resource %s: %w", r.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: put resource %s: %w", r.ID, err)
		} else if n == 0 {
			return nil // unchanged: tags as stored
		}
		changed = true
		if _, err := s.exec(ctx, tx, `DELETE FROM resource_tags WHERE account = ? AND resource_id = ?`, r.Account, r.ID); err != nil {
			return fmt.Errorf("store: put resource %s tags: %w", r.ID, err)
		}
		for k, v := range r.Tags {
			if _, err := s.exec(ctx, tx, `INSERT INTO resource_tags (account, resource_id, key, value) VALUES (?, ?, ?, ?)`, r.Account, r.ID, k, v); err != nil {
				return fmt.Errorf("store: put resource %s tags: %w", r.ID, err)
			}
		}
		return nil
	})
	return changed, err
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

const resourceCols = `account, id, type, name, tags, metadata, image_repository, scan_mode, inventory_hash, last_scanned_at, created_at, removed_at`

func scanResource(sc interface{ Scan(...any) error }) (model.Resource, error) {
	var (
		r                model.Resource
		tags, meta       string
		scanned, removed sql.NullInt64
		created          int64
	)
	if err := sc.Scan(&r.Account, &r.ID, &r.Type, &r.Name, &tags, &meta, &r.ImageRepository, &r.ScanMode, &r.InventoryHash, &scanned, &created, &removed); err != nil {
		return r, err
	}
	r.LastScannedAt, r.CreatedAt, r.RemovedAt = fromNull(scanned), fromMicros(created), ptrFromNull(removed)
	if err := json.Unmarshal([]byte(tags), &r.Tags); err != nil {
		return r, fmt.Errorf("store: resource %s tags: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(meta), &r.Metadata); err != nil {
		return r, fmt.Errorf("store: resource %s metadata: %w", r.ID, err)
	}
	if len(r.Tags) == 0 {
		r.Tags = nil
	}
	if len(r.Metadata) == 0 {
		r.Metadata = nil
	}
	return r, nil
}

// GetResource returns one of the account's resources.
func (s *Store) GetResource(ctx context.Context, account, id string) (model.Resource, error) {
	r, err := scanResource(s.queryRow(ctx, s.db, `SELECT `+resourceCols+` FROM resources WHERE account = ? AND id = ?`, account, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, notFound("resource", id)
	}
	if err != nil {
		return r, fmt.Errorf("store: get resource %s: %w", id, err)
	}
	return r, nil
}

// ResourceQuery selects resources for ListResources.
type ResourceQuery struct {
	Types []string
	// IDs selects resources by ID (any of them).
	IDs []string
	// Tags selects resources carrying every key=value pair; an empty value matches any value of
	// the key.
	Tags           map[string]string
	IncludeRemoved bool
	PageSize       int // default 100, at most 1000
	PageToken      string
}

// ResourcePage is one page of resources; NextToken is empty on the last page.
type ResourcePage struct {
	Resources []model.Resource
	NextToken string
}

// ListResources lists the accounts' resources ordered by (account, ID).
func (s *Store) ListResources(ctx context.Context, accounts []string, q ResourceQuery) (ResourcePage, error) {
	var page ResourcePage
	if err := checkAccounts(accounts); err != nil {
		return page, err
	}
	where := []string{`account IN (` + placeholders(len(accounts)) + `)`}
	args := anys(accounts)
	if len(q.Types) > 0 {
		where = append(where, `type IN (`+placeholders(len(q.Types))+`)`)
		args = append(args, anys(q.Types)...)
	}
	if len(q.IDs) > 0 {
		where = append(where, `id IN (`+placeholders(len(q.IDs))+`)`)
		args = append(args, anys(q.IDs)...)
	}
	tagKeys := make([]string, 0, len(q.Tags))
	for k := range q.Tags {
		tagKeys = append(tagKeys, k)
	}
	slices.Sort(tagKeys)
	for _, k := range tagKeys {
		cond := `(account, id) IN (SELECT t.account, t.resource_id FROM resource_tags t WHERE t.account IN (` +
			placeholders(len(accounts)) + `) AND t.key = ?`
		args = append(append(args, anys(accounts)...), k)
		if v := q.Tags[k]; v != "" {
			cond += ` AND t.value = ?`
			args = append(args, v)
		}
		where = append(where, cond+`)`)
	}
	if !q.IncludeRemoved {
		where = append(where, `removed_at IS NULL`)
	}
	if q.PageToken != "" {
		var tok [2]string
		if err := decodeToken(q.PageToken, &tok); err != nil {
			return page, err
		}
		where = append(where, `(account, id) > (?, ?)`)
		args = append(args, tok[0], tok[1])
	}
	size := pageSize(q.PageSize)
	rows, err := s.query(ctx, s.db, `SELECT `+resourceCols+` FROM resources WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY account, id LIMIT %d`, size+1), args...)
	if err != nil {
		return page, fmt.Errorf("store: list resources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return page, err
		}
		page.Resources = append(page.Resources, r)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("store: list resources: %w", err)
	}
	if len(page.Resources) > size {
		page.Resources = page.Resources[:size]
		last := page.Resources[size-1]
		page.NextToken = encodeToken([2]string{last.Account, last.ID})
	}
	return page, nil
}

// DeleteResource deletes the account's resource with its inventory, findings and coverage. Prefer
// setting RemovedAt with PutResource and deleting after the retention period.
func (s *Store) DeleteResource(ctx context.Context, account, id string) error {
	res, err := s.exec(ctx, s.db, `DELETE FROM resources WHERE account = ? AND id = ?`, account, id)
	if err != nil {
		return fmt.Errorf("store: delete resource %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("resource", id)
	}
	return nil
}

// InventoryDiff is what PutInventory changed. A package's identity is all of its stored fields, so a
// version change is one removal and one addition.
type InventoryDiff struct {
	// NoOp is true when the inventory hash was unchanged and nothing was written.
	NoOp      bool
	Added     []model.Package
	Removed   []model.Package
	Unchanged int
}

// packageRow is the stored form of a package; its fields are the package's identity.
type packageRow struct {
	Ecosystem, Name, Version, SourceName, SourceVersion, PURL, Location, Layer, Arch, Extractor string
}

func rowOf(p model.Package) packageRow {
	r := packageRow{Ecosystem: p.Ecosystem, Name: p.Name, Version: p.Version, SourceName: p.SourceName,
		SourceVersion: p.SourceVersion, PURL: p.PURL, Layer: p.LayerDigest, Arch: p.Arch, Extractor: p.Extractor}
	if len(p.Locations) > 0 {
		r.Location = p.Locations[0]
	}
	return r
}

func (r packageRow) pkg() model.Package {
	p := model.Package{Ecosystem: r.Ecosystem, Name: r.Name, Version: r.Version, SourceName: r.SourceName,
		SourceVersion: r.SourceVersion, PURL: r.PURL, LayerDigest: r.Layer, Arch: r.Arch, Extractor: r.Extractor}
	if r.Location != "" {
		p.Locations = []string{r.Location}
	}
	return p
}

// PutInventory replaces the resource's inventory with pkgs in one transaction and records hash and the
// scan time. When hash equals the stored hash it writes nothing and returns a NoOp diff. Only a
// package's primary location is kept. The resource must exist.
func (s *Store) PutInventory(ctx context.Context, account, resourceID, hash string, pkgs []model.Package) (InventoryDiff, error) {
	var diff InventoryDiff
	if hash == "" {
		return diff, fmt.Errorf("%w: empty inventory hash", ErrInvalid)
	}
	// stored tells from a read of the stored hash whether hash is stored already.
	stored := func(cur string, err error) (bool, error) {
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return false, notFound("resource", resourceID)
		case err != nil:
			return false, fmt.Errorf("store: put inventory %s: %w", resourceID, err)
		}
		return cur == hash, nil
	}
	// The cheap path: one indexed read, no write transaction.
	var cur string
	err := s.queryRow(ctx, s.db, `SELECT inventory_hash FROM resources WHERE account = ? AND id = ?`, account, resourceID).Scan(&cur)
	if same, err := stored(cur, err); err != nil || same {
		return InventoryDiff{NoOp: same}, err
	}
	// The stored hash and packages are read before the write transaction, in one statement (one
	// snapshot): on SQLite, reading a host's 500 package rows under the write lock kept every other
	// writer waiting for it.
	var existing map[packageRow][]int64
	cur, existing, err = s.storedPackages(ctx, s.db, account, resourceID, false)
	if same, err := stored(cur, err); err != nil || same {
		return InventoryDiff{NoOp: same}, err
	}
	if putInventoryRead != nil {
		putInventoryRead()
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		diff = InventoryDiff{}
		// Re-check under the write lock: a concurrent writer may have stored another inventory
		// meanwhile (then the packages are read again). On PostgreSQL the row lock is that write
		// lock, and it keeps the resource from being deleted under its new packages (they have no
		// foreign key; a deletion cascades by trigger).
		lock := ""
		if s.dialect == Postgres {
			lock = " FOR NO KEY UPDATE"
		}
		var now string
		if err := s.queryRow(ctx, tx, `SELECT inventory_hash FROM resources WHERE account = ? AND id = ?`+lock, account, resourceID).Scan(&now); err != nil {
			return fmt.Errorf("store: put inventory %s: %w", resourceID, err)
		}
		if now == hash {
			diff.NoOp = true
			return nil
		}
		if now != cur {
			var err error
			if _, existing, err = s.storedPackages(ctx, tx, account, resourceID, true); err != nil {
				return fmt.Errorf("store: put inventory %s: %w", resourceID, err)
			}
		}
		var added []packageRow
		for _, p := range pkgs {
			r := rowOf(p)
			if seqs := existing[r]; len(seqs) > 0 {
				existing[r] = seqs[1:]
				diff.Unchanged++
				continue
			}
			added = append(added, r)
			diff.Added = append(diff.Added, r.pkg())
		}
		var removed []int64
		for r, seqs := range existing {
			for range seqs {
				diff.Removed = append(diff.Removed, r.pkg())
			}
			removed = append(removed, seqs...)
		}
		slices.SortFunc(diff.Removed, comparePackages)
		for chunk := range slices.Chunk(removed, 500) {
			if _, err := s.exec(ctx, tx, `DELETE FROM packages WHERE seq IN (`+placeholders(len(chunk))+`)`, anys(chunk)...); err != nil {
				return fmt.Errorf("store: put inventory %s: delete packages: %w", resourceID, err)
			}
		}
		b := newBulk("packages", []string{"account", "resource_id", "ecosystem", "name", "version", "source_name", "source_version", "purl", "location", "layer", "arch", "extractor"},
			[]colType{colText, colText, colText, colText, colText, colText, colText, colText, colText, colText, colText, colText}, "")
		for _, r := range added {
			b.add(account, resourceID, r.Ecosystem, r.Name, r.Version, r.SourceName, r.SourceVersion, r.PURL, r.Location, r.Layer, r.Arch, r.Extractor)
		}
		if err := b.flush(ctx, s, tx); err != nil {
			return fmt.Errorf("store: put inventory %s: insert packages: %w", resourceID, err)
		}
		_, err = s.exec(ctx, tx, `UPDATE resources SET inventory_hash = ?, last_scanned_at = ? WHERE account = ? AND id = ?`,
			hash, micros(s.now()), account, resourceID)
		if err != nil {
			return fmt.Errorf("store: put inventory %s: %w", resourceID, err)
		}
		return nil
	})
	return diff, err
}

// putInventoryRead, when set (by tests), runs between PutInventory's read and its transaction.
var putInventoryRead func()

// storedPackages reads a resource's inventory hash and package rows (by identity, their sequence
// numbers) in one statement; sql.ErrNoRows when the resource does not exist. Under the write
// lock (locked) it reads the packages only: the caller holds the resource row.
func (s *Store) storedPackages(ctx context.Context, q querier, account, resourceID string, locked bool) (string, map[packageRow][]int64, error) {
	query := `SELECT r.inventory_hash, p.seq, p.ecosystem, p.name, p.version, p.source_name, p.source_version, p.purl, p.location, p.layer, p.arch, p.extractor
		FROM resources r LEFT JOIN packages p ON p.account = r.account AND p.resource_id = r.id WHERE r.account = ? AND r.id = ?`
	if locked {
		query = `SELECT '', seq, ecosystem, name, version, source_name, source_version, purl, location, layer, arch, extractor
			FROM packages WHERE account = ? AND resource_id = ?`
	}
	rows, err := s.query(ctx, q, query, account, resourceID)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	var (
		hash  string
		found bool
	)
	existing := map[packageRow][]int64{}
	for rows.Next() {
		var (
			seq sql.NullInt64
			r   struct{ eco, name, ver, srcName, srcVer, purl, loc, layer, arch, ext sql.NullString }
		)
		if err := rows.Scan(&hash, &seq, &r.eco, &r.name, &r.ver, &r.srcName, &r.srcVer, &r.purl, &r.loc, &r.layer, &r.arch, &r.ext); err != nil {
			return "", nil, err
		}
		found = true
		if !seq.Valid {
			continue // a resource without packages
		}
		row := packageRow{Ecosystem: r.eco.String, Name: r.name.String, Version: r.ver.String, SourceName: r.srcName.String,
			SourceVersion: r.srcVer.String, PURL: r.purl.String, Location: r.loc.String, Layer: r.layer.String, Arch: r.arch.String, Extractor: r.ext.String}
		existing[row] = append(existing[row], seq.Int64)
	}
	if err := rows.Err(); err != nil {
		return "", nil, err
	}
	if !found && !locked {
		return "", nil, sql.ErrNoRows
	}
	return hash, existing, nil
}

func comparePackages(a, b model.Package) int {
	return strings.Compare(a.Ecosystem+"\x00"+a.Name+"\x00"+a.Version, b.Ecosystem+"\x00"+b.Name+"\x00"+b.Version)
}

// Inventory returns the account's resource's stored packages, ordered by ecosystem, name, version.
func (s *Store) Inventory(ctx context.Context, account, resourceID string) ([]model.Package, error) {
	rows, err := s.query(ctx, s.db, `SELECT ecosystem, name, version, source_name, source_version, purl, location, layer, arch, extractor
		FROM packages WHERE account = ? AND resource_id = ? ORDER BY ecosystem, name, version, location, seq`, account, resourceID)
	if err != nil {
		return nil, fmt.Errorf("store: inventory %s: %w", resourceID, err)
	}
	defer rows.Close()
	var out []model.Package
	for rows.Next() {
		var r packageRow
		if err := rows.Scan(&r.Ecosystem, &r.Name, &r.Version, &r.SourceName, &r.SourceVersion, &r.PURL, &r.Location, &r.Layer, &r.Arch, &r.Extractor); err != nil {
			return nil, fmt.Errorf("store: inventory %s: %w", resourceID, err)
		}
		out = append(out, r.pkg())
	}
	return out, rows.Err()
}

// Page tokens are opaque to clients: base64url of a small JSON value holding the last row's key.

func encodeToken(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(tok string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, v) != nil {
		return ErrBadToken
	}
	return nil
}

func pageSize(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}
