// Package vulndb is Vigil's vulnerability database: a standalone SQLite file (pure-Go
// modernc.org/sqlite, WAL) holding advisories and enrichments per source, versioned so that every
// import says which advisories it added, changed, withdrew or removed, plus an in-memory index for
// package lookups.
//
// Consistency model (why a failed update never hurts): every source is imported inside ONE SQLite
// transaction that replaces that source's rows. Readers keep seeing the previous committed state
// until the commit (WAL snapshot isolation); a failed, cancelled or killed import rolls back (SQLite
// recovers the WAL on the next open), so the previous data stays fully usable. Whole-database
// switches (bundle Import) write a new file beside the live one, verify it, and rename it over the
// live path.
package vulndb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SchemaVersion is the layout of the tables below. A database with another value is refused,
// except version 1, which New upgrades in place (see upgrade).
//
//	1: advisories, records, IDs, enrichments, change log
//	2: + NVD configurations (vdb_cpe_configs) and their (vendor, product) index (vdb_cpe_index)
const SchemaVersion = 2

// Tables are prefixed "vdb_" so the schema can live inside the server's own database.
const schema = `
CREATE TABLE IF NOT EXISTS vdb_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vdb_sources (
	name          TEXT PRIMARY KEY,
	url           TEXT NOT NULL DEFAULT '',
	etag          TEXT NOT NULL DEFAULT '',
	last_modified TEXT NOT NULL DEFAULT '',
	last_attempt  INTEGER NOT NULL DEFAULT 0,
	last_success  INTEGER NOT NULL DEFAULT 0,
	last_change   INTEGER NOT NULL DEFAULT 0,
	advisories    INTEGER NOT NULL DEFAULT 0,
	enrichments   INTEGER NOT NULL DEFAULT 0,
	skipped       INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	version       INTEGER NOT NULL DEFAULT 0
);
-- One row per (source, record ID): the fields every affected entry of a record shares.
-- summary holds what lookups need (aliases, summary, CWEs, dates), body the long texts.
CREATE TABLE IF NOT EXISTS vdb_records (
	rowid     INTEGER PRIMARY KEY,
	source    TEXT NOT NULL,
	id        TEXT NOT NULL,
	vuln_id   TEXT NOT NULL,
	withdrawn INTEGER NOT NULL DEFAULT 0,
	hash      BLOB NOT NULL,
	summary   BLOB NOT NULL,
	body      BLOB NOT NULL,
	UNIQUE (source, id)
);
-- One row per affected package of a record; hash covers the entry and its record.
CREATE TABLE IF NOT EXISTS vdb_advisories (
	rowid     INTEGER PRIMARY KEY,
	record    INTEGER NOT NULL,
	source    TEXT NOT NULL,
	ecosystem TEXT NOT NULL,
	package   TEXT NOT NULL,
	name_key  TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	hash      BLOB NOT NULL,
	body      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vdb_advisories_source ON vdb_advisories (source);
CREATE INDEX IF NOT EXISTS vdb_advisories_record ON vdb_advisories (record);
CREATE INDEX IF NOT EXISTS vdb_advisories_pkg ON vdb_advisories (ecosystem, name_key);
-- Every ID a record answers to: its own, its vulnerability ID, its aliases.
CREATE TABLE IF NOT EXISTS vdb_ids (
	id     TEXT NOT NULL,
	record INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS vdb_ids_id ON vdb_ids (id);
CREATE INDEX IF NOT EXISTS vdb_ids_record ON vdb_ids (record);
CREATE TABLE IF NOT EXISTS vdb_enrichments (
	source TEXT NOT NULL,
	id     TEXT NOT NULL,
	hash   BLOB NOT NULL,
	body   BLOB NOT NULL,
	PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vdb_enrichments_id ON vdb_enrichments (id);
CREATE TABLE IF NOT EXISTS vdb_changes (
	version   INTEGER NOT NULL,
	kind      TEXT NOT NULL,
	source    TEXT NOT NULL,
	id        TEXT NOT NULL,
	vuln_id   TEXT NOT NULL,
	ecosystem TEXT NOT NULL,
	package   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vdb_changes_version ON vdb_changes (version);
-- NVD configurations per (source, CVE): a JSON []model.CPEConfig, kept out of the enrichment body
-- because only the opt-in CPE matching reads them.
CREATE TABLE IF NOT EXISTS vdb_cpe_configs (
	source TEXT NOT NULL,
	id     TEXT NOT NULL,
	hash   BLOB NOT NULL,
	body   BLOB NOT NULL,
	PRIMARY KEY (source, id)
) WITHOUT ROWID;
-- Every (vendor, product) a vulnerable, non-negated criterion of a configuration names, in CPE
-- formatted-string spelling, lower case: the lookup key of CPE matching.
CREATE TABLE IF NOT EXISTS vdb_cpe_index (
	vendor  TEXT NOT NULL,
	product TEXT NOT NULL,
	source  TEXT NOT NULL,
	id      TEXT NOT NULL,
	PRIMARY KEY (vendor, product, source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vdb_cpe_index_id ON vdb_cpe_index (source, id);
`

// DB is an open vulnerability database. It is safe for concurrent use.
type DB struct {
	path string
	own  bool // the *sql.DB was opened here and is closed by Close

	mu sync.RWMutex // write-held while the handle is swapped (bundle Import)
	db *sql.DB

	writeMu sync.Mutex // one import at a time per process

	idxMu    sync.Mutex
	idx      *index // nil until the first Lookup after open or after a bundle swap
	idxStale bool   // the database moved past idx.version: patch it at the next Lookup
	builds   int    // full index builds (tests tell a patch from a rebuild)

	// Now is the clock (tests replace it).
	Now func() time.Time
}

// Open opens (creating if needed) the database file at path.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, Options{})
}

// Options tune how a database file is opened.
type Options struct {
	// CacheKiB is SQLite's page cache per connection (0: 64 MiB, which imports and the server's
	// index build want). A one-shot scan touches few pages and sets it small to stay lean.
	CacheKiB int
}

// OpenWith opens (creating if needed) the database file at path with options.
func OpenWith(ctx context.Context, path string, o Options) (*DB, error) {
	sdb, err := openFileCache(path, o.CacheKiB)
	if err != nil {
		return nil, err
	}
	d, err := New(ctx, sdb)
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("vulndb: %s: %w", path, err)
	}
	d.path, d.own = path, true
	return d, nil
}

func openFile(path string) (*sql.DB, error) { return openFileCache(path, 0) }

func openFileCache(path string, cacheKiB int) (*sql.DB, error) {
	if cacheKiB <= 0 {
		cacheKiB = 65536
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-" +
		strconv.Itoa(cacheKiB) + ")&_pragma=temp_store(MEMORY)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("vulndb: open %s: %w", path, err)
	}
	return sdb, nil
}

// New uses an already open SQLite handle (the server's own database): the vdb_ tables are created
// there. The caller keeps ownership of sdb.
func New(ctx context.Context, sdb *sql.DB) (*DB, error) {
	if _, err := sdb.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("vulndb: create schema: %w", err)
	}
	var v string
	err := sdb.QueryRowContext(ctx, `SELECT value FROM vdb_meta WHERE key='schema'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := sdb.ExecContext(ctx, `INSERT INTO vdb_meta(key,value) VALUES('schema',?),('version','0')`, fmt.Sprint(SchemaVersion)); err != nil {
			return nil, fmt.Errorf("vulndb: init meta: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("vulndb: read meta: %w", err)
	case v == "1":
		if err := upgrade1(ctx, sdb); err != nil {
			return nil, fmt.Errorf("vulndb: upgrade schema 1 to %d: %w", SchemaVersion, err)
		}
	case v != fmt.Sprint(SchemaVersion):
		return nil, fmt.Errorf("vulndb: schema version %s, this build reads %d", v, SchemaVersion)
	}
	// Read first: an INSERT, even one that ignores its row, takes the write lock, and every scan
	// opens the database.
	var lineage string
	switch err := sdb.QueryRowContext(ctx, `SELECT value FROM vdb_meta WHERE key='lineage'`).Scan(&lineage); {
	case errors.Is(err, sql.ErrNoRows):
		if err := ensureLineage(ctx, sdb); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("vulndb: read meta: %w", err)
	}
	return &DB{db: sdb, Now: time.Now}, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ensureLineage gives a database without one (new, or made before lineages existed) its lineage.
func ensureLineage(ctx context.Context, db execer) error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("vulndb: lineage: %w", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT OR IGNORE INTO vdb_meta(key,value) VALUES('lineage',?)`, hex.EncodeToString(b)); err != nil {
		return fmt.Errorf("vulndb: lineage: %w", err)
	}
	return nil
}

// Close closes the database (only the handle Open made).
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.idx = nil
	if d.own && d.db != nil {
		err := d.db.Close()
		d.db = nil
		return err
	}
	return nil
}

// Path is the database file ("" when embedded through New).
func (d *DB) Path() string { return d.path }

// handle returns the current *sql.DB under the read lock; release must be called after use.
func (d *DB) handle() (*sql.DB, func(), error) {
	d.mu.RLock()
	if d.db == nil {
		d.mu.RUnlock()
		return nil, nil, errors.New("vulndb: database is closed")
	}
	return d.db, d.mu.RUnlock, nil
}

// Version numbers the database state: every import that changes something increments it.
type Version int64

// Version returns the current version.
func (d *DB) Version(ctx context.Context) (Version, error) {
	db, release, err := d.handle()
	if err != nil {
		return 0, err
	}
	defer release()
	return readVersion(ctx, db)
}

// Lineage returns the database's lineage with its version, read together. The lineage is a random
// ID the database gets when it is created and keeps through imports; a bundle carries it to the
// database it replaces. Versions compare only within one lineage: the same number in two lineages
// names different contents (the server's processes on several hosts use this to tell whether
// their copies are one database at different versions).
func (d *DB) Lineage(ctx context.Context) (string, Version, error) {
	db, release, err := d.handle()
	if err != nil {
		return "", 0, err
	}
	defer release()
	for range 2 {
		var lineage sql.NullString
		var v int64
		if err := db.QueryRowContext(ctx, `SELECT (SELECT value FROM vdb_meta WHERE key='lineage'),
			(SELECT CAST(value AS INTEGER) FROM vdb_meta WHERE key='version')`).Scan(&lineage, &v); err != nil {
			return "", 0, fmt.Errorf("vulndb: lineage: %w", err)
		}
		if lineage.Valid {
			return lineage.String, Version(v), nil
		}
		// A bundle made before lineages existed replaced the file.
		if err := ensureLineage(ctx, db); err != nil {
			return "", 0, err
		}
	}
	return "", 0, errors.New("vulndb: lineage: not recorded")
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readVersion(ctx context.Context, q queryer) (Version, error) {
	var v int64
	if err := q.QueryRowContext(ctx, `SELECT CAST(value AS INTEGER) FROM vdb_meta WHERE key='version'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("vulndb: read version: %w", err)
	}
	return Version(v), nil
}

// Change kinds.
const (
	ChangeAdded      = "added"
	ChangeChanged    = "changed"
	ChangeWithdrawn  = "withdrawn"
	ChangeRemoved    = "removed"    // the source no longer lists the advisory
	ChangeEnrichment = "enrichment" // an enrichment of VulnID was added, changed or removed
)

// AdvisoryKey names one advisory (one affected package of one record of one source). For
// ChangeEnrichment, Ecosystem and Package are empty and Source is the enrichment's source.
type AdvisoryKey struct {
	Source    string `json:"source"`
	ID        string `json:"id"`
	VulnID    string `json:"vulnId"`
	Ecosystem string `json:"ecosystem,omitempty"`
	Package   string `json:"package,omitempty"`
}

// Change is one entry of the change log.
type Change struct {
	Version Version `json:"version"`
	Kind    string  `json:"kind"`
	AdvisoryKey
}

// Changes returns every change made after version since (oldest first) and the current version;
// the server re-evaluates only resources holding the (Ecosystem, Package) pairs listed, and rescores
// findings of the VulnIDs of enrichment changes.
func (d *DB) Changes(ctx context.Context, since Version) ([]Change, Version, error) {
	db, release, err := d.handle()
	if err != nil {
		return nil, 0, err
	}
	defer release()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("vulndb: changes: %w", err)
	}
	defer tx.Rollback()
	cur, err := readVersion(ctx, tx)
	if err != nil {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT version, kind, source, id, vuln_id, ecosystem, package FROM vdb_changes WHERE version > ? ORDER BY version, rowid`, int64(since))
	if err != nil {
		return nil, 0, fmt.Errorf("vulndb: changes: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		if err := rows.Scan(&c.Version, &c.Kind, &c.Source, &c.ID, &c.VulnID, &c.Ecosystem, &c.Package); err != nil {
			return nil, 0, fmt.Errorf("vulndb: changes: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("vulndb: changes: %w", err)
	}
	return out, cur, nil
}

// PruneChanges drops change-log entries at or below version upTo (once every consumer has seen them).
func (d *DB) PruneChanges(ctx context.Context, upTo Version) error {
	db, release, err := d.handle()
	if err != nil {
		return err
	}
	defer release()
	if _, err := db.ExecContext(ctx, `DELETE FROM vdb_changes WHERE version <= ?`, int64(upTo)); err != nil {
		return fmt.Errorf("vulndb: prune changes: %w", err)
	}
	return nil
}

// VulnID picks the vulnerability ID of a record: the CVE among its own ID and its aliases (OSV
// aliases + upstream) when there is exactly one, else the record's own ID. Two CVEs mean the record
// is not about one CVE (a distro errata fixing several), so its own ID is the honest name.
func VulnID(id string, aliases []string) string {
	cve := ""
	n := 0
	for _, s := range append([]string{id}, aliases...) {
		if strings.HasPrefix(s, "CVE-") && s != cve {
			cve = s
			n++
		}
	}
	if n == 1 {
		return cve
	}
	return id
}

// NormalizeName returns the key a package name is indexed under in its ecosystem, as OSV compares
// names: PyPI per PEP 503 (lower case, runs of "-_." become "-"); everything else as written (Go
// module paths, npm and Maven names are case-sensitive).
func NormalizeName(ecosystem, name string) string {
	if ecosystem == "PyPI" {
		var b strings.Builder
		b.Grow(len(name))
		inSep := false
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c == '-' || c == '_' || c == '.' {
				if !inSep {
					b.WriteByte('-')
				}
				inSep = true
				continue
			}
			inSep = false
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	return name
}

// secondaryIndexes are dropped during the first fill of an empty database and rebuilt after:
// building an index once is cheaper than maintaining it row by row. Queries stay correct without
// them (only slower), and Open recreates any that a killed import left missing.
var secondaryIndexes = []string{"vdb_advisories_source", "vdb_advisories_record", "vdb_advisories_pkg", "vdb_ids_id", "vdb_ids_record"}

// bulk runs fn with the secondary indexes dropped when the database holds no advisory yet.
func (d *DB) bulk(ctx context.Context, fn func() error) error {
	db, release, err := d.handle()
	if err != nil {
		return err
	}
	var has int
	err = db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM vdb_advisories)`).Scan(&has)
	release()
	if err != nil || has != 0 {
		return fn()
	}
	d.writeMu.Lock()
	db, release, err = d.handle()
	if err == nil {
		for _, ix := range secondaryIndexes {
			if _, err = db.ExecContext(ctx, `DROP INDEX IF EXISTS `+ix); err != nil {
				break
			}
		}
		release()
	}
	d.writeMu.Unlock()
	ferr := fn()
	// Rebuild even after a failure or cancellation: the indexes must come back.
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	db, release, err2 := d.handle()
	if err2 != nil {
		return errors.Join(ferr, err2)
	}
	defer release()
	if _, err2 = db.ExecContext(context.WithoutCancel(ctx), schema); err2 != nil {
		return errors.Join(ferr, fmt.Errorf("vulndb: rebuild indexes: %w", err2))
	}
	return errors.Join(ferr, err)
}

// Checkpoint copies the WAL into the database file and truncates it (best done after a large
// import, so the file on disk is the whole database). It fails harmlessly while readers are active.
func (d *DB) Checkpoint(ctx context.Context) error {
	db, release, err := d.handle()
	if err != nil {
		return err
	}
	defer release()
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("vulndb: checkpoint: %w", err)
	}
	return nil
}

// FileSize reports the size of the database file plus its WAL.
func (d *DB) FileSize() int64 {
	var n int64
	for _, p := range []string{d.path, d.path + "-wal"} {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}
