// Package store is the server's persistence layer: accounts and organizations, API keys, resources and
// their inventories, findings, suppression rules, coverage, the audit log, a durable job queue and the
// transactional outbox.
//
// One implementation over database/sql serves two dialects with identical behaviour: SQLite
// (modernc.org/sqlite, the default, a single file in WAL mode) and PostgreSQL (pgx), which several
// server processes may share. Migrations are embedded and run by Open.
//
// Tenant isolation is enforced here, not only in the API layer: every method that reads or writes
// tenant rows takes the account, or the set of accounts, it may touch, and never returns or changes a
// row of another account. The few system-wide methods (API key lookup by ID before authentication,
// the stored inventory hashes a feed pass compares, the job queue and outbox claims) say so in their
// documentation.
//
// Times are stored as Unix microseconds; values read back are UTC with microsecond precision.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Dialect names a supported database.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Errors returned by the store. Callers test them with errors.Is.
var (
	ErrNotFound   = errors.New("store: not found")
	ErrNoAccounts = errors.New("store: no accounts given")
	ErrForeign    = errors.New("store: row belongs to another account")
	ErrBadToken   = errors.New("store: invalid page token")
	ErrNoJob      = errors.New("store: no job ready")
	ErrLeaseLost  = errors.New("store: job lease lost")
	ErrInvalid    = errors.New("store: invalid argument")
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// Now is the clock; tests replace it. Defaults to time.Now.
	Now func() time.Time
	// Backoff is the delay before retry number attempt (1-based) of a failed job. Defaults to
	// 10s·2^(attempt-1), capped at one hour.
	Backoff func(attempt int) time.Duration
	// MaxOpenConns bounds the connection pool (default 16 for PostgreSQL, 8 for SQLite).
	MaxOpenConns int
}

// Store is the persistence layer. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect Dialect
	now     func() time.Time
	backoff func(int) time.Duration
	// stmts holds SQLite statements prepared once for reads outside transactions (query text →
	// *sql.Stmt): modernc's driver prepares a statement anew on every call, a twentieth of an
	// unchanged submission's CPU. PostgreSQL's driver keeps its own per-connection cache.
	stmts  sync.Map
	nstmts atomic.Int32
	// writeMu queues this process's SQLite transactions in Go: SQLite has one writer, and its busy
	// handler (sleep and retry) is unfair enough under many concurrent writers that one can wait
	// past busy_timeout and fail with SQLITE_BUSY.
	writeMu sync.Mutex
}

// OpenSQLite opens (creating if needed) the SQLite database at path, in WAL mode with a busy timeout
// and foreign keys enforced, and runs the migrations. Write transactions take the write lock up front
// (BEGIN IMMEDIATE) so that concurrent writers queue instead of failing to upgrade a read lock.
func OpenSQLite(ctx context.Context, path string, opts Options) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create data directory: %w", err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// 32 MiB of page cache per connection (the default is 2 MiB): index pages of a large findings
	// table stay in memory.
	q.Add("_pragma", "cache_size(-32768)")
	// A first inventory dirties a few thousand scattered index pages per commit: checkpointing every
	// 64 MiB of WAL instead of every 4 MiB writes a page rewritten by several commits back once
	// (about 13% less CPU per new host, measured with BenchmarkWrite). The WAL is truncated back to
	// that size after a checkpoint.
	q.Add("_pragma", "wal_autocheckpoint(16384)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 8
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	s, err := open(ctx, db, SQLite, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Optimize(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL at dsn (a URL or key=value string understood by pgx) and runs
// the migrations under a session advisory lock, so several processes may start at once.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 16
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return open(ctx, db, Postgres, opts)
}

func open(ctx context.Context, db *sql.DB, d Dialect, opts Options) (*Store, error) {
	s := &Store{db: db, dialect: d, now: opts.Now, backoff: opts.Backoff}
	if s.now == nil {
		s.now = time.Now
	}
	if s.backoff == nil {
		s.backoff = defaultBackoff
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", d, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func defaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := 10 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// migrate applies the embedded migrations of the store's dialect; it is idempotent.
func (s *Store) migrate(ctx context.Context) error {
	var (
		dir     = "migrations/sqlite"
		dialect = goose.DialectSQLite3
		popts   = []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	)
	if s.dialect == Postgres {
		dir, dialect = "migrations/postgres", goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		popts = append(popts, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, s.db, sub, popts...)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate %s: %w", s.dialect, err)
	}
	return nil
}

// SchemaVersion reports the applied migration version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// Dialect reports which database the store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the underlying pool (for health checks and metrics, not for queries of store tables).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error {
	s.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	return s.db.Close()
}

// Rebind writes SQL in the store's dialect for callers running their own statements on DB (the
// benchmarks): '?' placeholders become PostgreSQL's $n.
func (s *Store) Rebind(q string) string { return s.rebind(q) }

// rebind turns the '?' placeholders used throughout the package into PostgreSQL's $n. Store SQL never
// contains a literal question mark.
func (s *Store) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	k := strings.Count(q, "?")
	if k == 0 {
		return q
	}
	// Multi-row statements hold thousands of placeholders: append, never format.
	b := make([]byte, 0, len(q)+k*5)
	n := int64(0)
	for {
		i := strings.IndexByte(q, '?')
		if i < 0 {
			break
		}
		n++
		b = append(b, q[:i]...)
		b = append(b, '$')
		b = strconv.AppendInt(b, n, 10)
		q = q[i+1:]
	}
	return string(append(b, q...))
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, s.rebind(query), args...)
}

func (s *Store) query(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	if st := s.prepared(ctx, q, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.QueryContext(ctx, s.rebind(query), args...)
}

func (s *Store) queryRow(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	if st := s.prepared(ctx, q, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.QueryRowContext(ctx, s.rebind(query), args...)
}

// Statements kept prepared: at most maxStmts, of at most maxStmtLen bytes (longer texts are the
// IN lists of batches, one text per batch size).
const (
	maxStmts   = 256
	maxStmtLen = 4096
)

// prepared returns the kept statement for a read of query on the pool (not in a transaction) on
// SQLite, preparing it on first use; nil to run the query unprepared (other dialect, a
// transaction, a long or unpreparable text, or a full cache).
func (s *Store) prepared(ctx context.Context, q querier, query string) *sql.Stmt {
	if s.dialect != SQLite || q != querier(s.db) || len(query) > maxStmtLen {
		return nil
	}
	if v, ok := s.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if s.nstmts.Add(1) > maxStmts { // a slot is taken before preparing, so the bound holds
		s.nstmts.Add(-1)
		return nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		s.nstmts.Add(-1)
		return nil // the unprepared call reports the error
	}
	if v, loaded := s.stmts.LoadOrStore(query, st); loaded {
		s.nstmts.Add(-1)
		st.Close()
		return v.(*sql.Stmt)
	}
	return st
}

// inTx runs fn in a transaction, committing when it returns nil and rolling back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.dialect != Postgres {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Time helpers: zero times are stored as NULL (nullable columns) or 0.

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func ptrMicros(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func fromNull(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

func ptrFromNull(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

func anys[T any](vs []T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// checkAccounts rejects an empty account set: an empty set must never mean "every tenant".
func checkAccounts(accounts []string) error {
	if len(accounts) == 0 {
		return ErrNoAccounts
	}
	for _, a := range accounts {
		if a == "" {
			return fmt.Errorf("%w: empty account ID", ErrInvalid)
		}
	}
	return nil
}

func notFound(what, id string) error {
	return fmt.Errorf("%w: %s %q", ErrNotFound, what, id)
}
