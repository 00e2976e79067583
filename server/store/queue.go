package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Job states.
const (
	JobPending = "pending"
	JobRunning = "running"
	JobDone    = "done"
	JobDead    = "dead"
)

// DefaultMaxAttempts is used when a JobSpec leaves MaxAttempts zero.
const DefaultMaxAttempts = 5

// JobSpec describes a job to enqueue.
type JobSpec struct {
	Kind    string
	Account string // optional: the tenant the job works for
	Payload []byte
	// RunAt is the earliest start; zero means now.
	RunAt time.Time
	// DedupeKey, when set, makes Enqueue a no-op while another job with the key is pending or running.
	DedupeKey   string
	MaxAttempts int
}

// Job is a queued unit of work.
type Job struct {
	ID          int64
	Kind        string
	Account     string
	Payload     []byte
	State       string
	DedupeKey   string
	RunAt       time.Time
	Attempts    int // attempts started, including the current one
	MaxAttempts int
	Worker      string
	LeaseUntil  time.Time
	LastError   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks a job failure as not worth retrying: Fail moves the job straight to dead.
func Permanent(err error) error { return permanentError{err} }

// Enqueue adds a job. With a DedupeKey already held by a pending or running job it returns that job's
// ID and created=false instead.
func (s *Store) Enqueue(ctx context.Context, j JobSpec) (id int64, created bool, err error) {
	if j.Kind == "" {
		return 0, false, fmt.Errorf("%w: job without a kind", ErrInvalid)
	}
	now := s.now()
	if j.RunAt.IsZero() {
		j.RunAt = now
	}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = DefaultMaxAttempts
	}
	var dedupe any
	if j.DedupeKey != "" {
		dedupe = j.DedupeKey
	}
	// The duplicate may finish between the insert and the look-up; then the insert is tried again.
	for try := 0; try < 3; try++ {
		id, created, err = s.enqueue(ctx, j, dedupe, now)
		if !errors.Is(err, errDuplicateGone) {
			break
		}
	}
	return id, created, err
}

var errDuplicateGone = errors.New("store: duplicate job finished")

func (s *Store) enqueue(ctx context.Context, j JobSpec, dedupe any, now time.Time) (id int64, created bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		id, created, err = s.insertJob(ctx, tx, j, dedupe, now)
		return err
	})
	return id, created, err
}

// insertJob inserts a job inside tx, or finds the pending or running job holding its dedupe key.
func (s *Store) insertJob(ctx context.Context, tx *sql.Tx, j JobSpec, dedupe any, now time.Time) (id int64, created bool, err error) {
	err = s.queryRow(ctx, tx, `INSERT INTO jobs (kind, account, payload, state, dedupe_key, run_at, max_attempts, created_at, updated_at)
		VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
		j.Kind, j.Account, j.Payload, dedupe, micros(j.RunAt), j.MaxAttempts, micros(now), micros(now)).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) || j.DedupeKey == "" {
		return 0, false, fmt.Errorf("store: enqueue %s: %w", j.Kind, err)
	}
	err = s.queryRow(ctx, tx, `SELECT id FROM jobs WHERE dedupe_key = ? AND state IN ('pending', 'running')`, j.DedupeKey).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, errDuplicateGone
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: enqueue %s: find duplicate: %w", j.Kind, err)
	}
	return id, false, nil
}

const jobCols = `id, kind, account, payload, state, dedupe_key, run_at, attempts, max_attempts, worker, lease_until, last_error, created_at, updated_at`

func scanJob(sc interface{ Scan(...any) error }) (*Job, error) {
	var (
		j                   Job
		dedupe              sql.NullString
		runAt, created, upd int64
		lease               sql.NullInt64
	)
	if err := sc.Scan(&j.ID, &j.Kind, &j.Account, &j.Payload, &j.State, &dedupe, &runAt, &j.Attempts, &j.MaxAttempts,
		&j.Worker, &lease, &j.LastError, &created, &upd); err != nil {
		return nil, err
	}
	j.DedupeKey = dedupe.String
	j.RunAt, j.LeaseUntil, j.CreatedAt, j.UpdatedAt = fromMicros(runAt), fromNull(lease), fromMicros(created), fromMicros(upd)
	return &j, nil
}

// skipLocked is appended to claim subqueries: on PostgreSQL concurrent claimers skip each other's rows;
// SQLite serialises writers (every transaction is BEGIN IMMEDIATE), which gives the same guarantee.
func (s *Store) skipLocked() string {
	if s.dialect == Postgres {
		return ` FOR UPDATE SKIP LOCKED`
	}
	return ""
}

// Claim leases the next ready job of one of kinds to worker for lease. A job is ready when it is
// pending and due, or running with an expired lease (its worker crashed); a job whose lease expired on
// its last allowed attempt becomes dead instead. It returns ErrNoJob when nothing is ready. The claim is
// system-wide; worker must be unique per process.
func (s *Store) Claim(ctx context.Context, worker string, kinds []string, lease time.Duration) (*Job, error) {
	if worker == "" || len(kinds) == 0 || lease <= 0 {
		return nil, fmt.Errorf("%w: claim needs a worker, kinds and a lease", ErrInvalid)
	}
	var job *Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := micros(s.now())
		_, err := s.exec(ctx, tx, `UPDATE jobs SET state = 'dead', last_error = 'lease expired on the last attempt', lease_until = NULL, updated_at = ?
			WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until < ? AND attempts >= max_attempts`+s.skipLocked()+`)`, now, now)
		if err != nil {
			return fmt.Errorf("store: claim: reap: %w", err)
		}
		args := []any{worker, now + lease.Microseconds(), now}
		args = append(args, anys(kinds)...)
		args = append(args, now, now)
		job, err = scanJob(s.queryRow(ctx, tx, `UPDATE jobs SET state = 'running', worker = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?
			WHERE id = (SELECT id FROM jobs WHERE kind IN (`+placeholders(len(kinds))+`)
				AND ((state = 'pending' AND run_at <= ?) OR (state = 'running' AND lease_until < ? AND attempts < max_attempts))
				ORDER BY run_at, id LIMIT 1`+s.skipLocked()+`)
			RETURNING `+jobCols, args...))
		if errors.Is(err, sql.ErrNoRows) {
			job = nil // commit anyway: the reaping above must stick
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: claim: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if job == nil {
		return nil, ErrNoJob
	}
	return job, nil
}

// Heartbeat extends the lease of a job the worker holds.
func (s *Store) Heartbeat(ctx context.Context, id int64, worker string, lease time.Duration) error {
	now := s.now()
	return s.ownedJobUpdate(ctx, id, worker, `lease_until = ?, updated_at = ?`, micros(now.Add(lease)), micros(now))
}

// Complete marks a job the worker holds as done.
func (s *Store) Complete(ctx context.Context, id int64, worker string) error {
	return s.ownedJobUpdate(ctx, id, worker, `state = 'done', lease_until = NULL, updated_at = ?`, micros(s.now()))
}

func (s *Store) ownedJobUpdate(ctx context.Context, id int64, worker, set string, args ...any) error {
	args = append(args, id, worker)
	res, err := s.exec(ctx, s.db, `UPDATE jobs SET `+set+` WHERE id = ? AND state = 'running' AND worker = ?`, args...)
	if err != nil {
		return fmt.Errorf("store: job %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: job %d, worker %s", ErrLeaseLost, id, worker)
	}
	return nil
}

// Fail records a failed attempt of a job the worker holds. The job is retried after Options.Backoff
// unless cause is Permanent or it has used its attempts, in which case it is dead (dead reports which).
func (s *Store) Fail(ctx context.Context, id int64, worker string, cause error) (dead bool, err error) {
	msg := "failed"
	if cause != nil {
		msg = cause.Error()
	}
	var perm permanentError
	permanent := errors.As(cause, &perm)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var attempts, max int
		err := s.queryRow(ctx, tx, `SELECT attempts, max_attempts FROM jobs WHERE id = ? AND state = 'running' AND worker = ?`, id, worker).Scan(&attempts, &max)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: job %d, worker %s", ErrLeaseLost, id, worker)
		}
		if err != nil {
			return fmt.Errorf("store: fail job %d: %w", id, err)
		}
		now := s.now()
		dead = permanent || attempts >= max
		if dead {
			_, err = s.exec(ctx, tx, `UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?`, msg, micros(now), id)
		} else {
			_, err = s.exec(ctx, tx, `UPDATE jobs SET state = 'pending', lease_until = NULL, worker = '', last_error = ?, run_at = ?, updated_at = ? WHERE id = ?`,
				msg, micros(now.Add(s.backoff(attempts))), micros(now), id)
		}
		if err != nil {
			return fmt.Errorf("store: fail job %d: %w", id, err)
		}
		return nil
	})
	return dead, err
}

// GetJob returns a job by ID.
func (s *Store) GetJob(ctx context.Context, id int64) (*Job, error) {
	j, err := scanJob(s.queryRow(ctx, s.db, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("job", strconv.FormatInt(id, 10))
	}
	if err != nil {
		return nil, fmt.Errorf("store: get job %d: %w", id, err)
	}
	return j, nil
}

// ListJobs returns up to limit jobs in the state, oldest first (for operators: dead jobs).
func (s *Store) ListJobs(ctx context.Context, state string, limit int) ([]*Job, error) {
	return s.queryJobs(ctx, "list jobs", `SELECT `+jobCols+` FROM jobs WHERE state = ? ORDER BY id`+fmt.Sprintf(` LIMIT %d`, pageSize(limit)), state)
}

// queryJobs runs a query selecting jobCols and scans its jobs.
func (s *Store) queryJobs(ctx context.Context, what, q string, args ...any) ([]*Job, error) {
	rows, err := s.query(ctx, s.db, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// PurgeJobs deletes done and dead jobs last updated before t and returns how many it deleted.
func (s *Store) PurgeJobs(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, s.db, `DELETE FROM jobs WHERE state IN ('done', 'dead') AND updated_at < ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("store: purge jobs: %w", err)
	}
	return res.RowsAffected()
}

// Outbox states.
const (
	EventPending   = "pending"
	EventDelivered = "delivered"
	EventDead      = "dead"
)

// OutboxRecord is an outbox event with its delivery state. Seq orders events by commit of insertion.
type OutboxRecord struct {
	Seq           int64
	Event         model.OutboxEvent
	State         string
	Attempts      int // failed attempts so far
	NextAttemptAt time.Time
	LastError     string
	DeliveredAt   time.Time
}

func (s *Store) appendEvent(ctx context.Context, tx *sql.Tx, e model.OutboxEvent) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	data := "null"
	if len(e.Data) > 0 {
		if !json.Valid(e.Data) {
			return fmt.Errorf("%w: event %s data is not JSON", ErrInvalid, e.ID)
		}
		data = string(e.Data)
	}
	_, err := s.exec(ctx, tx, `INSERT INTO outbox (event_id, type, account, subject, event_time, data, state, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)`,
		e.ID, e.Type, e.Account, e.Subject, micros(e.Time), data, micros(s.now()))
	if err != nil {
		return fmt.Errorf("store: append event %s: %w", e.ID, err)
	}
	return nil
}

const outboxCols = `seq, event_id, type, account, subject, event_time, data, state, attempts, next_attempt_at, last_error, delivered_at`

func scanOutbox(sc interface{ Scan(...any) error }) (OutboxRecord, error) {
	var (
		r         OutboxRecord
		at, next  int64
		data      string
		delivered sql.NullInt64
	)
	if err := sc.Scan(&r.Seq, &r.Event.ID, &r.Event.Type, &r.Event.Account, &r.Event.Subject, &at, &data, &r.State,
		&r.Attempts, &next, &r.LastError, &delivered); err != nil {
		return r, err
	}
	r.Event.Time, r.NextAttemptAt, r.DeliveredAt = fromMicros(at), fromMicros(next), fromNull(delivered)
	r.Event.Data = json.RawMessage(data)
	return r, nil
}

// ClaimEvents leases up to batch due, pending events (oldest first) for lease: until it expires no
// other claimer sees them. Delivery is at-least-once: a dispatcher that dies after sending but before
// MarkDelivered sends again after the lease. It is system-wide (events of every account).
func (s *Store) ClaimEvents(ctx context.Context, batch int, lease time.Duration) ([]OutboxRecord, error) {
	if batch <= 0 || lease <= 0 {
		return nil, fmt.Errorf("%w: claim events needs a batch size and a lease", ErrInvalid)
	}
	var out []OutboxRecord
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := micros(s.now())
		rows, err := s.query(ctx, tx, `UPDATE outbox SET lease_until = ? WHERE seq IN (
				SELECT seq FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
				ORDER BY seq LIMIT `+strconv.Itoa(batch)+s.skipLocked()+`)
			RETURNING `+outboxCols, now+lease.Microseconds(), now, now)
		if err != nil {
			return fmt.Errorf("store: claim events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanOutbox(rows)
			if err != nil {
				return fmt.Errorf("store: claim events: %w", err)
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b OutboxRecord) int { return int(a.Seq - b.Seq) })
	return out, nil
}

// MarkDelivered records successful delivery of events.
func (s *Store) MarkDelivered(ctx context.Context, seqs ...int64) error {
	now := micros(s.now())
	for chunk := range slices.Chunk(seqs, 500) {
		args := append([]any{now}, anys(chunk)...)
		if _, err := s.exec(ctx, s.db, `UPDATE outbox SET state = 'delivered', delivered_at = ?, lease_until = NULL
			WHERE state = 'pending' AND seq IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
			return fmt.Errorf("store: mark delivered: %w", err)
		}
	}
	return nil
}

// MarkFailed records a failed delivery attempt and when to try again.
func (s *Store) MarkFailed(ctx context.Context, seq int64, next time.Time, cause string) error {
	return s.outboxUpdate(ctx, seq, `attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, last_error = ?`, micros(next), cause)
}

// DeadLetter records a final failed attempt: the event is not delivered again unless retried.
func (s *Store) DeadLetter(ctx context.Context, seq int64, cause string) error {
	return s.outboxUpdate(ctx, seq, `state = 'dead', attempts = attempts + 1, lease_until = NULL, last_error = ?`, cause)
}

func (s *Store) outboxUpdate(ctx context.Context, seq int64, set string, args ...any) error {
	args = append(args, seq)
	res, err := s.exec(ctx, s.db, `UPDATE outbox SET `+set+` WHERE seq = ? AND state = 'pending'`, args...)
	if err != nil {
		return fmt.Errorf("store: outbox event %d: %w", seq, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("pending outbox event", strconv.FormatInt(seq, 10))
	}
	return nil
}

// DeadLetterPage is one page of dead letters, oldest first.
type DeadLetterPage struct {
	Records   []OutboxRecord
	NextToken string
}

// ListDeadLetters lists the accounts' dead-lettered events.
func (s *Store) ListDeadLetters(ctx context.Context, accounts []string, pageSz int, pageToken string) (DeadLetterPage, error) {
	var page DeadLetterPage
	if err := checkAccounts(accounts); err != nil {
		return page, err
	}
	where := []string{`account IN (` + placeholders(len(accounts)) + `)`, `state = 'dead'`}
	args := anys(accounts)
	if pageToken != "" {
		var seq string
		if err := decodeToken(pageToken, &seq); err != nil {
			return page, err
		}
		n, err := strconv.ParseInt(seq, 10, 64)
		if err != nil {
			return page, ErrBadToken
		}
		where, args = append(where, `seq > ?`), append(args, n)
	}
	size := pageSize(pageSz)
	rows, err := s.query(ctx, s.db, `SELECT `+outboxCols+` FROM outbox WHERE `+strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY seq LIMIT %d`, size+1), args...)
	if err != nil {
		return page, fmt.Errorf("store: list dead letters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanOutbox(rows)
		if err != nil {
			return page, err
		}
		page.Records = append(page.Records, r)
	}
	if err := rows.Err(); err != nil {
		return page, err
	}
	if len(page.Records) > size {
		page.Records = page.Records[:size]
		page.NextToken = encodeToken(strconv.FormatInt(page.Records[size-1].Seq, 10))
	}
	return page, nil
}

// RetryDeadLetter puts one of the account's dead events back in the queue with a fresh attempt count.
func (s *Store) RetryDeadLetter(ctx context.Context, account string, seq int64) error {
	res, err := s.exec(ctx, s.db, `UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, last_error = ''
		WHERE account = ? AND seq = ? AND state = 'dead'`, micros(s.now()), account, seq)
	if err != nil {
		return fmt.Errorf("store: retry dead letter %d: %w", seq, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("dead letter", strconv.FormatInt(seq, 10))
	}
	return nil
}

// PurgeDelivered deletes events delivered before t and returns how many it deleted.
func (s *Store) PurgeDelivered(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, s.db, `DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("store: purge outbox: %w", err)
	}
	return res.RowsAffected()
}
