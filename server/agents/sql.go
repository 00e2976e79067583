package agents

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/store"
)

// SQL is the Storage over the server store's database (SQLite or PostgreSQL), in tables of its
// own prefixed agent_, created by NewSQL if absent.
type SQL struct {
	db      *sql.DB
	dialect store.Dialect
}

var _ Storage = (*SQL)(nil)

// schema is the same for both dialects apart from the binary type. Times are Unix microseconds,
// like the store's.
func schema(d store.Dialect) []string {
	blob := "BLOB"
	if d == store.Postgres {
		blob = "BYTEA"
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS agent_tokens (
			id TEXT PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
			created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, max_uses INTEGER NOT NULL,
			uses INTEGER NOT NULL DEFAULT 0, revoked_at BIGINT)`,
		`CREATE INDEX IF NOT EXISTS agent_tokens_account ON agent_tokens (account, created_at)`,
		`CREATE TABLE IF NOT EXISTS agent_agents (
			id TEXT PRIMARY KEY, account TEXT NOT NULL, hostname TEXT NOT NULL, machine_id TEXT NOT NULL,
			os TEXT NOT NULL, version TEXT NOT NULL, enrolled_at BIGINT NOT NULL, token_id TEXT NOT NULL,
			cert_serial TEXT NOT NULL, cert_not_after BIGINT NOT NULL, prev_serial TEXT NOT NULL DEFAULT '',
			prev_not_after BIGINT NOT NULL DEFAULT 0, heartbeat_seconds INTEGER NOT NULL DEFAULT 0,
			last_heartbeat BIGINT, state TEXT NOT NULL, sensors TEXT NOT NULL, errors TEXT NOT NULL,
			inventory_hash TEXT NOT NULL DEFAULT '', last_inventory_at BIGINT, facts TEXT NOT NULL,
			revoked_at BIGINT)`,
		`CREATE INDEX IF NOT EXISTS agent_agents_account ON agent_agents (account, id)`,
		`CREATE TABLE IF NOT EXISTS agent_instructions (
			id TEXT PRIMARY KEY, account TEXT NOT NULL, agent_id TEXT NOT NULL, body TEXT NOT NULL,
			status TEXT NOT NULL, created_at BIGINT NOT NULL, delivered_at BIGINT, attempts INTEGER NOT NULL DEFAULT 0,
			completed_at BIGINT, error TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX IF NOT EXISTS agent_instructions_agent ON agent_instructions (agent_id, status, created_at)`,
		`CREATE TABLE IF NOT EXISTS agent_inventories (
			agent_id TEXT NOT NULL, hash TEXT NOT NULL, received_at BIGINT NOT NULL, data ` + blob + ` NOT NULL,
			PRIMARY KEY (agent_id, hash))`,
	}
}

// schemaLock serialises schema creation among PostgreSQL servers starting at once (CREATE TABLE
// IF NOT EXISTS is not safe against a concurrent creator).
const schemaLock = 7_461_339_210

// NewSQL creates the agent_ tables if needed and returns the Storage. Pass the server store's
// DB() and Dialect().
func NewSQL(ctx context.Context, db *sql.DB, d store.Dialect) (*SQL, error) {
	s := &SQL{db: db, dialect: d}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if d == store.Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
				return err
			}
		}
		for _, q := range schema(d) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agents: create tables: %w", err)
	}
	return s, nil
}

func (s *SQL) q(query string) string {
	if s.dialect != store.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *SQL) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func us(t time.Time) int64 { return t.UnixMicro() }

func nullUS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func ptrUS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func fromNullUS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromUS(v.Int64)
}

func ptrNullUS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromUS(v.Int64)
	return &t
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("agents: %s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// --- join tokens

const tokenCols = `id, account, name, hash, created_at, expires_at, max_uses, uses, revoked_at`

func scanToken(sc interface{ Scan(...any) error }) (JoinToken, error) {
	var (
		t                JoinToken
		created, expires int64
		revoked          sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.Account, &t.Name, &t.Hash, &created, &expires, &t.MaxUses, &t.Uses, &revoked); err != nil {
		return t, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromUS(created), fromUS(expires), ptrNullUS(revoked)
	return t, nil
}

func (s *SQL) CreateToken(ctx context.Context, t JoinToken) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO agent_tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.Account, t.Name, t.Hash, us(t.CreatedAt), us(t.ExpiresAt), t.MaxUses, t.Uses, ptrUS(t.RevokedAt))
	if err != nil {
		return fmt.Errorf("agents: create token: %w", err)
	}
	return nil
}

func (s *SQL) GetToken(ctx context.Context, id string) (JoinToken, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM agent_tokens WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return t, err
}

func (s *SQL) ListTokens(ctx context.Context, account string) ([]JoinToken, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+tokenCols+` FROM agent_tokens WHERE account = ? ORDER BY created_at, id`), account)
	if err != nil {
		return nil, fmt.Errorf("agents: list tokens: %w", err)
	}
	defer rows.Close()
	var out []JoinToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *SQL) RevokeToken(ctx context.Context, account, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE account = ? AND id = ?`),
		us(at), account, id)
	return affected(res, err, "token "+id)
}

func (s *SQL) ConsumeToken(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_tokens SET uses = uses + 1
		WHERE id = ? AND revoked_at IS NULL AND expires_at > ? AND uses < max_uses`), id, us(now))
	if err != nil {
		return fmt.Errorf("agents: consume token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrTokenUnusable
	}
	return nil
}

// --- agents

const agentCols = `id, account, hostname, machine_id, os, version, enrolled_at, token_id, cert_serial, cert_not_after,
	prev_serial, prev_not_after, heartbeat_seconds, last_heartbeat, state, sensors, errors, inventory_hash,
	last_inventory_at, facts, revoked_at`

func scanAgent(sc interface{ Scan(...any) error }) (Agent, error) {
	var (
		a                                Agent
		osJSON, sensors, errs, facts     string
		enrolled, notAfter, prevNotAfter int64
		lastHB, lastInv, revoked         sql.NullInt64
	)
	if err := sc.Scan(&a.ID, &a.Account, &a.Hostname, &a.MachineID, &osJSON, &a.Version, &enrolled, &a.TokenID,
		&a.CertSerial, &notAfter, &a.PrevSerial, &prevNotAfter, &a.HeartbeatSeconds, &lastHB, &a.State, &sensors,
		&errs, &a.InventoryHash, &lastInv, &facts, &revoked); err != nil {
		return a, err
	}
	a.EnrolledAt, a.CertNotAfter, a.PrevNotAfter = fromUS(enrolled), fromUS(notAfter), fromUS(prevNotAfter)
	a.LastHeartbeat, a.LastInventoryAt, a.RevokedAt = fromNullUS(lastHB), fromNullUS(lastInv), ptrNullUS(revoked)
	for _, f := range []struct {
		src string
		dst any
	}{{osJSON, &a.OS}, {sensors, &a.Sensors}, {errs, &a.Errors}, {facts, &a.Facts}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return a, fmt.Errorf("agents: agent %s: %w", a.ID, err)
		}
	}
	return a, nil
}

func (s *SQL) CreateAgent(ctx context.Context, a Agent) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO agent_agents (`+agentCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		a.ID, a.Account, a.Hostname, a.MachineID, mustJSON(a.OS), a.Version, us(a.EnrolledAt), a.TokenID, a.CertSerial,
		us(a.CertNotAfter), a.PrevSerial, us(a.PrevNotAfter), a.HeartbeatSeconds, nullUS(a.LastHeartbeat), a.State,
		mustJSON(a.Sensors), mustJSON(a.Errors), a.InventoryHash, nullUS(a.LastInventoryAt), mustJSON(a.Facts), ptrUS(a.RevokedAt))
	if err != nil {
		return fmt.Errorf("agents: create agent: %w", err)
	}
	return nil
}

func (s *SQL) GetAgent(ctx context.Context, id string) (Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, s.q(`SELECT `+agentCols+` FROM agent_agents WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return a, err
}

func (s *SQL) ListAgents(ctx context.Context, account string) ([]Agent, error) {
	query, args := `SELECT `+agentCols+` FROM agent_agents ORDER BY account, id`, []any{}
	if account != "" {
		query, args = `SELECT `+agentCols+` FROM agent_agents WHERE account = ? ORDER BY account, id`, []any{account}
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("agents: list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *SQL) RevokeAgent(ctx context.Context, account, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_agents SET revoked_at = COALESCE(revoked_at, ?) WHERE account = ? AND id = ?`),
		us(at), account, id)
	return affected(res, err, "agent "+id)
}

func (s *SQL) SetCertificate(ctx context.Context, id, serial string, notAfter time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_agents SET prev_serial = cert_serial, prev_not_after = cert_not_after,
		cert_serial = ?, cert_not_after = ? WHERE id = ?`), serial, us(notAfter), id)
	return affected(res, err, "agent "+id)
}

func (s *SQL) SetHeartbeatSeconds(ctx context.Context, account, id string, seconds int) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_agents SET heartbeat_seconds = ? WHERE account = ? AND id = ?`), seconds, account, id)
	return affected(res, err, "agent "+id)
}

func (s *SQL) RecordHeartbeat(ctx context.Context, id string, hb Heartbeat) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_agents SET last_heartbeat = ?, version = ?, state = ?, sensors = ?, errors = ?
		WHERE id = ?`), us(hb.At), hb.Version, hb.State, mustJSON(hb.Sensors), mustJSON(hb.Errors), id)
	return affected(res, err, "agent "+id)
}

// TouchHeartbeats sets the last heartbeat of many agents in one transaction, never moving one
// back in time (a direct RecordHeartbeat may have written a later one meanwhile).
func (s *SQL) TouchHeartbeats(ctx context.Context, at map[string]time.Time) error {
	if len(at) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.q(`UPDATE agent_agents SET last_heartbeat = ?
			WHERE id = ? AND (last_heartbeat IS NULL OR last_heartbeat < ?)`))
		if err != nil {
			return fmt.Errorf("agents: touch heartbeats: %w", err)
		}
		defer st.Close()
		for id, t := range at {
			if _, err := st.ExecContext(ctx, us(t), id, us(t)); err != nil {
				return fmt.Errorf("agents: touch heartbeats: %w", err)
			}
		}
		return nil
	})
}

func (s *SQL) ConfirmInventory(ctx context.Context, id, hash string, at time.Time, facts *protocol.Facts) error {
	query, args := `UPDATE agent_agents SET inventory_hash = ?, last_inventory_at = ? WHERE id = ?`, []any{hash, us(at), id}
	if facts != nil {
		query, args = `UPDATE agent_agents SET inventory_hash = ?, last_inventory_at = ?, facts = ? WHERE id = ?`,
			[]any{hash, us(at), mustJSON(facts), id}
	}
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	return affected(res, err, "agent "+id)
}

func (s *SQL) PutInventory(ctx context.Context, id string, inv StoredInventory, os *model.OS, facts *protocol.Facts) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		set, args := `inventory_hash = ?, last_inventory_at = ?`, []any{inv.Hash, us(inv.ReceivedAt)}
		if os != nil {
			set, args = set+`, os = ?`, append(args, mustJSON(os))
		}
		if facts != nil {
			set, args = set+`, facts = ?`, append(args, mustJSON(facts))
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE agent_agents SET `+set+` WHERE id = ?`), append(args, id)...)
		if err := affected(res, err, "agent "+id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO agent_inventories (agent_id, hash, received_at, data) VALUES (?, ?, ?, ?)
			ON CONFLICT (agent_id, hash) DO UPDATE SET received_at = excluded.received_at, data = excluded.data`),
			id, inv.Hash, us(inv.ReceivedAt), inv.Gzip); err != nil {
			return fmt.Errorf("agents: store inventory: %w", err)
		}
		// Keep the new inventory and the one before it, the usual base of the next delta.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM agent_inventories WHERE agent_id = ? AND hash NOT IN
			(SELECT hash FROM agent_inventories WHERE agent_id = ? ORDER BY received_at DESC, hash LIMIT 2)`), id, id); err != nil {
			return fmt.Errorf("agents: prune inventories: %w", err)
		}
		return nil
	})
}

func (s *SQL) Inventory(ctx context.Context, id, hash string) (StoredInventory, error) {
	si := StoredInventory{Hash: hash}
	var received int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT received_at, data FROM agent_inventories WHERE agent_id = ? AND hash = ?`), id, hash).
		Scan(&received, &si.Gzip)
	if errors.Is(err, sql.ErrNoRows) {
		return si, fmt.Errorf("inventory %s of agent %s: %w", hash, id, ErrNotFound)
	}
	if err != nil {
		return si, fmt.Errorf("agents: inventory: %w", err)
	}
	si.ReceivedAt = fromUS(received)
	return si, nil
}

// --- instructions

const instrCols = `id, account, agent_id, body, status, created_at, delivered_at, attempts, completed_at, error`

func scanInstruction(sc interface{ Scan(...any) error }) (QueuedInstruction, error) {
	var (
		q                    QueuedInstruction
		body                 string
		created              int64
		delivered, completed sql.NullInt64
	)
	if err := sc.Scan(&q.ID, &q.Account, &q.AgentID, &body, &q.Status, &created, &delivered, &q.Attempts, &completed, &q.Error); err != nil {
		return q, err
	}
	id := q.ID
	if err := json.Unmarshal([]byte(body), &q.Instruction); err != nil {
		return q, fmt.Errorf("agents: instruction %s: %w", id, err)
	}
	q.ID = id
	q.CreatedAt, q.DeliveredAt, q.CompletedAt = fromUS(created), ptrNullUS(delivered), ptrNullUS(completed)
	return q, nil
}

func (s *SQL) QueueInstruction(ctx context.Context, in QueuedInstruction) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO agent_instructions (`+instrCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		in.ID, in.Account, in.AgentID, mustJSON(in.Instruction), in.Status, us(in.CreatedAt), ptrUS(in.DeliveredAt),
		in.Attempts, ptrUS(in.CompletedAt), in.Error)
	if err != nil {
		return fmt.Errorf("agents: queue instruction: %w", err)
	}
	return nil
}

func (s *SQL) DeliverInstructions(ctx context.Context, agentID string, now, redeliverBefore time.Time) ([]QueuedInstruction, error) {
	var out []QueuedInstruction
	// Almost every heartbeat finds nothing to deliver: look first without a transaction, which on
	// SQLite would take the database's single write lock (_txlock=immediate) for every heartbeat.
	var one int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM agent_instructions WHERE agent_id = ?
		AND (status = ? OR (status = ? AND delivered_at < ? AND attempts < ?)) LIMIT 1`),
		agentID, InstructionPending, InstructionDelivered, us(redeliverBefore), MaxDeliveries).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("agents: deliver instructions: %w", err)
	}
	lock := ""
	if s.dialect == store.Postgres {
		lock = ` FOR UPDATE`
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, s.q(`SELECT `+instrCols+` FROM agent_instructions WHERE agent_id = ?
			AND (status = ? OR (status = ? AND delivered_at < ? AND attempts < ?)) ORDER BY created_at, id LIMIT 100`+lock),
			agentID, InstructionPending, InstructionDelivered, us(redeliverBefore), MaxDeliveries)
		if err != nil {
			return err
		}
		for rows.Next() {
			q, err := scanInstruction(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, q)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			t := now
			out[i].Status, out[i].DeliveredAt = InstructionDelivered, &t
			out[i].Attempts++
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE agent_instructions SET status = ?, delivered_at = ?, attempts = attempts + 1
				WHERE id = ?`), InstructionDelivered, us(now), out[i].ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agents: deliver instructions: %w", err)
	}
	return out, nil
}

func (s *SQL) CompleteInstruction(ctx context.Context, agentID, id string, res protocol.InstructionResult, at time.Time) error {
	status, msg := InstructionSucceeded, ""
	if !res.OK {
		status, msg = InstructionFailed, res.Error
	}
	r, err := s.db.ExecContext(ctx, s.q(`UPDATE agent_instructions SET status = ?, error = ?, completed_at = ? WHERE agent_id = ? AND id = ?`),
		status, msg, us(at), agentID, id)
	return affected(r, err, "instruction "+id)
}

func (s *SQL) ListInstructions(ctx context.Context, account, agentID string) ([]QueuedInstruction, error) {
	query, args := `SELECT `+instrCols+` FROM agent_instructions WHERE account = ?`, []any{account}
	if agentID != "" {
		query, args = query+` AND agent_id = ?`, append(args, agentID)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query+` ORDER BY created_at, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("agents: list instructions: %w", err)
	}
	defer rows.Close()
	var out []QueuedInstruction
	for rows.Next() {
		q, err := scanInstruction(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}
