// Package pgtest starts throwaway PostgreSQL clusters for tests, with Debian's postgresql binaries
// (initdb, pg_ctl). A cluster lives in a temporary directory, listens only on a Unix socket there, runs
// with durability off for speed, and is removed when stopped.
//
// Tests call Start (or NewDatabase for a fresh database in a shared cluster). When the binaries are
// missing the test is skipped, unless VIGIL_REQUIRE_POSTGRES=1, which turns the skip into a failure.
// Run as root, the cluster runs as the unprivileged "postgres" user (or "nobody"), since PostgreSQL
// refuses to run as root.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// ErrNoPostgres is returned by StartCluster when no PostgreSQL binaries are found.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL binaries (initdb, pg_ctl) not found")

// Required reports whether VIGIL_REQUIRE_POSTGRES=1 makes a missing PostgreSQL a failure.
func Required() bool { return os.Getenv("VIGIL_REQUIRE_POSTGRES") == "1" }

// Cluster is a running PostgreSQL cluster.
type Cluster struct {
	dir    string // owns data and socket
	bin    string
	cred   *syscall.Credential
	user   string
	n      atomic.Int64
	stopMu sync.Mutex
	done   bool
}

// BinDir finds the directory holding initdb and pg_ctl: $VIGIL_PG_BIN, the newest
// /usr/lib/postgresql/*/bin, or $PATH.
func BinDir() (string, error) {
	if d := os.Getenv("VIGIL_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%w in VIGIL_PG_BIN=%s", ErrNoPostgres, d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartCluster initialises and starts a cluster. The caller must Stop it.
func StartCluster(ctx context.Context) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	reapStale(ctx, bin)
	dir, err := os.MkdirTemp("", "vigil-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	// The owner file lets a later run stop this cluster if this process dies without Stop (a panic
	// or a kill skips cleanups).
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin, user: "vigil"}
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		c.cred = cred
	}
	data := filepath.Join(dir, "data")
	if err := c.run(ctx, "initdb", "-D", data, "-U", c.user, "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", dir)
	if err := c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return c, nil
}

const ownerFile = "owner.pid"

// reapStale stops and removes clusters left behind by test processes that no longer exist.
func reapStale(ctx context.Context, bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "vigil-pg-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // still running, or not ours to judge
		}
		st, err := os.Stat(dir)
		if err != nil {
			continue
		}
		c := &Cluster{dir: dir, bin: bin}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && sys.Uid != 0 {
			c.cred = &syscall.Credential{Uid: sys.Uid, Gid: sys.Gid}
		}
		_ = c.Stop()
	}
}

// unprivileged returns the credentials of the postgres user, else nobody.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgtest: running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.dir}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: %s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// DSN returns a connection string for database db of the cluster.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=%s port=5432 user=%s dbname=%s sslmode=disable", c.dir, c.user, db)
}

// CreateDatabase creates a new, empty database and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.n.Add(1))
	db, err := sql.Open("pgx", c.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.DSN(name), nil
}

// Stop stops the cluster and removes its directory. It is safe to call twice.
func (c *Cluster) Stop() error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.done {
		return nil
	}
	c.done = true
	err := c.run(context.Background(), "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
	if rmErr := os.RemoveAll(c.dir); err == nil {
		err = rmErr
	}
	return err
}

// Start starts a cluster for one test and stops it in t.Cleanup; it skips (or fails under
// VIGIL_REQUIRE_POSTGRES=1) when PostgreSQL is not installed.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := StartCluster(context.Background())
	if err != nil {
		skipOrFail(tb, err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("pgtest: stop: %v", err)
		}
	})
	return c
}

func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNoPostgres) && !Required() {
		tb.Skipf("%v (set VIGIL_REQUIRE_POSTGRES=1 to fail instead)", err)
	}
	tb.Fatalf("%v", err)
}

// Shared is one cluster shared by the tests of a package, started on first use. Call Stop from
// TestMain after m.Run.
type Shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// Database returns the DSN of a fresh database in the shared cluster, skipping or failing the test
// like Start when PostgreSQL is unavailable.
func (s *Shared) Database(tb testing.TB) string {
	tb.Helper()
	s.once.Do(func() { s.cluster, s.err = StartCluster(context.Background()) })
	if s.err != nil {
		skipOrFail(tb, s.err)
	}
	dsn, err := s.cluster.CreateDatabase(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return dsn
}

// Stop stops the shared cluster if it was started.
func (s *Shared) Stop() error {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.Stop()
}
