package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// EnqueueDue enqueues spec if the schedule called name is due, and moves the schedule on by every,
// in one transaction. A schedule never seen before is due at once. Several server processes may
// call it on the same tick: the conditional UPDATE lets exactly one of them win each interval (on
// PostgreSQL the losers' UPDATE waits for the winner's row lock and then no longer matches; SQLite
// serialises the transactions). enqueued is false when the schedule was not due; when it was due
// but spec's dedupe key was held by a waiting or running job, id is that job's and enqueued is true.
func (s *Store) EnqueueDue(ctx context.Context, name string, every time.Duration, spec JobSpec) (id int64, enqueued bool, err error) {
	if name == "" || every <= 0 || spec.Kind == "" {
		return 0, false, fmt.Errorf("%w: a schedule needs a name, an interval and a job kind", ErrInvalid)
	}
	now := s.now()
	if spec.RunAt.IsZero() {
		spec.RunAt = now
	}
	if spec.MaxAttempts <= 0 {
		spec.MaxAttempts = DefaultMaxAttempts
	}
	var dedupe any
	if spec.DedupeKey != "" {
		dedupe = spec.DedupeKey
	}
	key := "schedule:" + name
	for try := 0; try < 3; try++ {
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := s.exec(ctx, tx, `INSERT INTO server_state (name, value, updated_at) VALUES (?, 0, ?) ON CONFLICT DO NOTHING`,
				key, micros(now)); err != nil {
				return fmt.Errorf("store: schedule %s: %w", name, err)
			}
			res, err := s.exec(ctx, tx, `UPDATE server_state SET value = ?, updated_at = ? WHERE name = ? AND value <= ?`,
				micros(now.Add(every)), micros(now), key, micros(now))
			if err != nil {
				return fmt.Errorf("store: schedule %s: %w", name, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				enqueued = false
				return nil
			}
			id, _, err = s.insertJob(ctx, tx, spec, dedupe, now)
			enqueued = err == nil
			return err
		})
		if !errors.Is(err, errDuplicateGone) {
			break
		}
	}
	return id, enqueued, err
}

// NextDue returns when the schedule called name is next due (zero if it never ran).
func (s *Store) NextDue(ctx context.Context, name string) (time.Time, error) {
	v, _, err := s.State(ctx, "schedule:"+name)
	return fromMicros(v), err
}

// State reads a named server-wide integer (ok false when it was never set).
func (s *Store) State(ctx context.Context, name string) (v int64, ok bool, err error) {
	err = s.queryRow(ctx, s.db, `SELECT value FROM server_state WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: state %s: %w", name, err)
	}
	return v, true, nil
}

// RaiseState sets a named server-wide integer to v unless it already holds more: a monotonic
// watermark that concurrent writers can only move forward.
func (s *Store) RaiseState(ctx context.Context, name string, v int64) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO server_state (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at WHERE server_state.value < excluded.value`,
		name, v, micros(s.now()))
	if err != nil {
		return fmt.Errorf("store: raise state %s: %w", name, err)
	}
	return nil
}

// fleetLockKey is the PostgreSQL advisory lock key of FleetLock ("vigil fl" in ASCII).
const fleetLockKey int64 = 0x76696769_6c20666c

// FleetLock takes the server-wide findings lock: shared by inventory submissions, exclusive while
// a feed update is applied to the stored findings, so that no two processes reconcile one
// resource's findings from the same stored state at once. On PostgreSQL it is a session advisory
// lock on a connection held until release; on SQLite (one process) it is a no-op, the caller's own
// mutex serialising. release must be called exactly once.
func (s *Store) FleetLock(ctx context.Context, exclusive bool) (release func(), err error) {
	if s.dialect != Postgres {
		return func() {}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: fleet lock: %w", err)
	}
	lock, unlock := "pg_advisory_lock_shared", "pg_advisory_unlock_shared"
	if exclusive {
		lock, unlock = "pg_advisory_lock", "pg_advisory_unlock"
	}
	if _, err := conn.ExecContext(ctx, `SELECT `+lock+`($1)`, fleetLockKey); err != nil {
		discard(conn)
		return nil, fmt.Errorf("store: fleet lock: %w", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT `+unlock+`($1)`, fleetLockKey).Scan(&ok); err != nil || !ok {
			discard(conn) // closing the session is what releases a lock we cannot release otherwise
			return
		}
		conn.Close()
	}, nil
}

// FleetLockWanted reports whether a session of this database waits for the fleet lock: a process
// holding it shared across submissions then lets it go. Always false on SQLite.
func (s *Store) FleetLockWanted(ctx context.Context) (bool, error) {
	if s.dialect != Postgres {
		return false, nil
	}
	// A bigint advisory key shows in pg_locks as classid (high half), objid (low half), objsubid 1.
	var wanted bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)`,
		fleetLockKey>>32, fleetLockKey&0xffffffff).Scan(&wanted)
	if err != nil {
		return false, fmt.Errorf("store: fleet lock waiters: %w", err)
	}
	return wanted, nil
}

// discard closes conn's session instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// ResourceHash is a resource's current inventory hash, as stored.
type ResourceHash struct {
	Account, ID, Hash string
	Removed           bool
}

// InventoryMark is a point in the history of the stored inventories, from which InventoryHashes
// reads on. The zero mark reads them all.
type InventoryMark uint64

// InventoryHashes lists the resources' inventory hashes, system-wide. It lets a server process find
// the inventories another process stored since it last looked (those whose hash differs from the
// one it holds), in no particular order (ordering 10,000 rows by the key took PostgreSQL 8 ms
// instead of 5).
//
// From the zero mark it reads every resource. From the mark an earlier call returned it reads, on
// PostgreSQL, at least every resource whose inventory hash or removal changed since that call
// (and a few more): O(changed), not O(resources). SQLite has no marks (one process writes it) and
// always reads every resource and returns the zero mark. Neither sees resources deleted since; a
// caller that must know about those reads from the zero mark now and then.
func (s *Store) InventoryHashes(ctx context.Context, since InventoryMark) ([]ResourceHash, InventoryMark, error) {
	const cols = `SELECT account, id, inventory_hash, removed_at FROM resources`
	if s.dialect != Postgres {
		out, err := scanHashes(s.query(ctx, s.db, cols))
		return out, 0, err
	}
	// One snapshot for the mark and the rows. A transaction the snapshot does not see was running
	// when it was taken, or started after: either way its ID is at least the snapshot's xmin, so
	// the next read, from that xmin, sees it.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("store: inventory hashes: %w", err)
	}
	defer tx.Rollback()
	var mark InventoryMark
	if err := s.queryRow(ctx, tx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&mark); err != nil {
		return nil, 0, fmt.Errorf("store: inventory hashes: %w", err)
	}
	var out []ResourceHash
	if since == 0 {
		out, err = scanHashes(s.query(ctx, tx, cols))
	} else {
		out, err = scanHashes(s.query(ctx, tx, cols+` WHERE inventory_xid >= ?::xid8`, strconv.FormatUint(uint64(since), 10)))
	}
	if err != nil {
		return nil, 0, err
	}
	return out, mark, tx.Commit()
}

func scanHashes(rows *sql.Rows, err error) ([]ResourceHash, error) {
	if err != nil {
		return nil, fmt.Errorf("store: inventory hashes: %w", err)
	}
	defer rows.Close()
	var out []ResourceHash
	for rows.Next() {
		var r ResourceHash
		var removed sql.NullInt64
		if err := rows.Scan(&r.Account, &r.ID, &r.Hash, &removed); err != nil {
			return nil, fmt.Errorf("store: inventory hashes: %w", err)
		}
		r.Removed = removed.Valid
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: inventory hashes: %w", err)
	}
	return out, nil
}

// JobFilter narrows RecentJobs; empty fields match everything.
type JobFilter struct {
	Kind, State string
	Limit       int
}

// RecentJobs returns jobs newest first (for operators and the API).
func (s *Store) RecentJobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	q := `SELECT ` + jobCols + ` FROM jobs WHERE 1 = 1`
	var args []any
	if f.Kind != "" {
		q, args = q+` AND kind = ?`, append(args, f.Kind)
	}
	if f.State != "" {
		q, args = q+` AND state = ?`, append(args, f.State)
	}
	return s.queryJobs(ctx, "recent jobs", q+fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, pageSize(f.Limit)), args...)
}
