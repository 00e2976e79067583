package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// PutSuppressionRule creates or updates a rule (CreatedAt is kept from the first write).
func (s *Store) PutSuppressionRule(ctx context.Context, r model.SuppressionRule) error {
	if r.Account == "" || r.ID == "" {
		return fmt.Errorf("%w: suppression rule needs an account and an ID", ErrInvalid)
	}
	now := s.now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = now
	}
	filter, err := json.Marshal(r.Filter)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, s.db, `INSERT INTO suppression_rules (account, id, name, reason, filter, expires_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account, id) DO UPDATE SET name = excluded.name, reason = excluded.reason, filter = excluded.filter,
			expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
		r.Account, r.ID, r.Name, r.Reason, string(filter), ptrMicros(r.ExpiresAt), micros(r.CreatedAt), micros(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: put suppression rule %s: %w", r.ID, err)
	}
	return nil
}

const ruleCols = `account, id, name, reason, filter, expires_at, created_at, updated_at`

func scanRule(sc interface{ Scan(...any) error }) (model.SuppressionRule, error) {
	var (
		r                model.SuppressionRule
		filter           string
		exp              sql.NullInt64
		created, updated int64
	)
	if err := sc.Scan(&r.Account, &r.ID, &r.Name, &r.Reason, &filter, &exp, &created, &updated); err != nil {
		return r, err
	}
	r.ExpiresAt, r.CreatedAt, r.UpdatedAt = ptrFromNull(exp), fromMicros(created), fromMicros(updated)
	if err := json.Unmarshal([]byte(filter), &r.Filter); err != nil {
		return r, fmt.Errorf("store: suppression rule %s filter: %w", r.ID, err)
	}
	return r, nil
}

// GetSuppressionRule returns one of the account's rules.
func (s *Store) GetSuppressionRule(ctx context.Context, account, id string) (model.SuppressionRule, error) {
	r, err := scanRule(s.queryRow(ctx, s.db, `SELECT `+ruleCols+` FROM suppression_rules WHERE account = ? AND id = ?`, account, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, notFound("suppression rule", id)
	}
	if err != nil {
		return r, fmt.Errorf("store: get suppression rule %s: %w", id, err)
	}
	return r, nil
}

// ListSuppressionRules returns the accounts' rules ordered by (account, ID).
func (s *Store) ListSuppressionRules(ctx context.Context, accounts []string) ([]model.SuppressionRule, error) {
	if err := checkAccounts(accounts); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, s.db, `SELECT `+ruleCols+` FROM suppression_rules WHERE account IN (`+placeholders(len(accounts))+`) ORDER BY account, id`, anys(accounts)...)
	if err != nil {
		return nil, fmt.Errorf("store: list suppression rules: %w", err)
	}
	defer rows.Close()
	var out []model.SuppressionRule
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteSuppressionRule deletes one of the account's rules.
func (s *Store) DeleteSuppressionRule(ctx context.Context, account, id string) error {
	res, err := s.exec(ctx, s.db, `DELETE FROM suppression_rules WHERE account = ? AND id = ?`, account, id)
	if err != nil {
		return fmt.Errorf("store: delete suppression rule %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("suppression rule", id)
	}
	return nil
}

// PutCoverage upserts coverage rows of one account (ApplyChanges does the same inside its transaction).
func (s *Store) PutCoverage(ctx context.Context, account string, cs ...model.Coverage) error {
	return s.ApplyChanges(ctx, Changes{Account: account, Coverage: cs})
}

func (s *Store) putCoverage(ctx context.Context, tx *sql.Tx, c model.Coverage) error {
	if c.ResourceID == "" || c.ScanType == "" || c.Status == "" {
		return fmt.Errorf("%w: coverage needs a resource, a scan type and a status", ErrInvalid)
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = s.now()
	}
	_, err := s.exec(ctx, tx, `INSERT INTO coverage (account, resource_id, scan_type, resource_type, status, reason, scan_mode, last_scanned_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account, resource_id, scan_type) DO UPDATE SET resource_type = excluded.resource_type,
			status = excluded.status, reason = excluded.reason, scan_mode = excluded.scan_mode,
			last_scanned_at = excluded.last_scanned_at, updated_at = excluded.updated_at`,
		c.Account, c.ResourceID, c.ScanType, c.ResourceType, c.Status, c.Reason, c.ScanMode, nullMicros(c.LastScannedAt), micros(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: put coverage %s/%s: %w", c.ResourceID, c.ScanType, err)
	}
	return nil
}

// CoverageQuery selects coverage rows; within a field values are alternatives.
type CoverageQuery struct {
	ResourceIDs   []string
	ResourceTypes []string
	ScanTypes     []string
	Statuses      []string
	Reasons       []string
	PageSize      int
	PageToken     string
}

func (q CoverageQuery) where(accounts []string) ([]string, []any) {
	where := []string{`account IN (` + placeholders(len(accounts)) + `)`}
	args := anys(accounts)
	in := func(col string, vals []string) {
		if len(vals) > 0 {
			where = append(where, col+` IN (`+placeholders(len(vals))+`)`)
			args = append(args, anys(vals)...)
		}
	}
	in("resource_id", q.ResourceIDs)
	in("resource_type", q.ResourceTypes)
	in("scan_type", q.ScanTypes)
	in("status", q.Statuses)
	in("reason", q.Reasons)
	return where, args
}

// CoveragePage is one page of coverage rows; NextToken is empty on the last page.
type CoveragePage struct {
	Coverage  []model.Coverage
	NextToken string
}

// ListCoverage lists the accounts' coverage ordered by (account, resource, scan type).
func (s *Store) ListCoverage(ctx context.Context, accounts []string, q CoverageQuery) (CoveragePage, error) {
	var page CoveragePage
	if err := checkAccounts(accounts); err != nil {
		return page, err
	}
	where, args := q.where(accounts)
	if q.PageToken != "" {
		var tok [3]string
		if err := decodeToken(q.PageToken, &tok); err != nil {
			return page, err
		}
		where = append(where, `(account, resource_id, scan_type) > (?, ?, ?)`)
		args = append(args, tok[0], tok[1], tok[2])
	}
	size := pageSize(q.PageSize)
	rows, err := s.query(ctx, s.db, `SELECT account, resource_id, resource_type, scan_type, status, reason, scan_mode, last_scanned_at, updated_at
		FROM coverage WHERE `+strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY account, resource_id, scan_type LIMIT %d`, size+1), args...)
	if err != nil {
		return page, fmt.Errorf("store: list coverage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c       model.Coverage
			scanned sql.NullInt64
			updated int64
		)
		if err := rows.Scan(&c.Account, &c.ResourceID, &c.ResourceType, &c.ScanType, &c.Status, &c.Reason, &c.ScanMode, &scanned, &updated); err != nil {
			return page, fmt.Errorf("store: list coverage: %w", err)
		}
		c.LastScannedAt, c.UpdatedAt = fromNull(scanned), fromMicros(updated)
		page.Coverage = append(page.Coverage, c)
	}
	if err := rows.Err(); err != nil {
		return page, err
	}
	if len(page.Coverage) > size {
		page.Coverage = page.Coverage[:size]
		l := page.Coverage[size-1]
		page.NextToken = encodeToken([3]string{l.Account, l.ResourceID, l.ScanType})
	}
	return page, nil
}

// CoverageGroup names a coverage statistic.
type CoverageGroup string

// Coverage statistics groupings.
const (
	CoverageByStatus       CoverageGroup = "status"
	CoverageByReason       CoverageGroup = "reason"
	CoverageByAccount      CoverageGroup = "account"
	CoverageByResourceType CoverageGroup = "resourceType"
	CoverageByScanType     CoverageGroup = "scanType"
)

// CountRow is one group of a count statistic.
type CountRow struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// CoverageStatistics counts the accounts' coverage rows matching q per group, largest first.
func (s *Store) CoverageStatistics(ctx context.Context, accounts []string, by CoverageGroup, q CoverageQuery) ([]CountRow, error) {
	if err := checkAccounts(accounts); err != nil {
		return nil, err
	}
	cols := map[CoverageGroup]string{CoverageByStatus: "status", CoverageByReason: "reason", CoverageByAccount: "account",
		CoverageByResourceType: "resource_type", CoverageByScanType: "scan_type"}
	col, ok := cols[by]
	if !ok {
		return nil, fmt.Errorf("%w: unknown coverage grouping %q", ErrInvalid, by)
	}
	where, args := q.where(accounts)
	rows, err := s.query(ctx, s.db, `SELECT `+col+`, COUNT(*) AS n FROM coverage WHERE `+strings.Join(where, " AND ")+
		` GROUP BY `+col+` ORDER BY n DESC, `+col, args...)
	if err != nil {
		return nil, fmt.Errorf("store: coverage statistics: %w", err)
	}
	defer rows.Close()
	var out []CountRow
	for rows.Next() {
		var r CountRow
		if err := rows.Scan(&r.Key, &r.Count); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AuditEntry records who did what, when and from where.
type AuditEntry struct {
	Seq        int64           `json:"seq"`
	Account    string          `json:"account"`
	Actor      string          `json:"actor"` // an API key ID, a user, "system"
	Action     string          `json:"action"`
	Target     string          `json:"target,omitempty"`
	RemoteAddr string          `json:"remoteAddr,omitempty"`
	Time       time.Time       `json:"time"`
	Detail     json.RawMessage `json:"detail,omitempty"`
}

// AppendAudit appends one entry (ApplyChanges can append entries with the change they record).
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) error {
	if e.Account == "" {
		return fmt.Errorf("%w: audit entry without an account", ErrInvalid)
	}
	return s.appendAudit(ctx, s.db, e)
}

// AppendAudits appends entries, of any accounts, in one transaction: all or none.
func (s *Store) AppendAudits(ctx context.Context, entries []AuditEntry) error {
	for _, e := range entries {
		if e.Account == "" {
			return fmt.Errorf("%w: audit entry without an account", ErrInvalid)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, e := range entries {
			if err := s.appendAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) appendAudit(ctx context.Context, q querier, e AuditEntry) error {
	if e.Actor == "" || e.Action == "" {
		return fmt.Errorf("%w: audit entry needs an actor and an action", ErrInvalid)
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	detail := "{}"
	if len(e.Detail) > 0 {
		if !json.Valid(e.Detail) {
			return fmt.Errorf("%w: audit detail is not JSON", ErrInvalid)
		}
		detail = string(e.Detail)
	}
	_, err := s.exec(ctx, q, `INSERT INTO audit_log (account, actor, action, target, remote_addr, at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.Account, e.Actor, e.Action, e.Target, e.RemoteAddr, micros(e.Time), detail)
	if err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	return nil
}

// AuditQuery selects audit entries; the zero value selects all.
type AuditQuery struct {
	Actor     string
	Action    string
	Since     time.Time
	Until     time.Time
	PageSize  int
	PageToken string
}

// AuditPage is one page of audit entries, newest first.
type AuditPage struct {
	Entries   []AuditEntry
	NextToken string
}

// ListAudit lists the accounts' audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, accounts []string, q AuditQuery) (AuditPage, error) {
	var page AuditPage
	if err := checkAccounts(accounts); err != nil {
		return page, err
	}
	where := []string{`account IN (` + placeholders(len(accounts)) + `)`}
	args := anys(accounts)
	if q.Actor != "" {
		where, args = append(where, `actor = ?`), append(args, q.Actor)
	}
	if q.Action != "" {
		where, args = append(where, `action = ?`), append(args, q.Action)
	}
	if !q.Since.IsZero() {
		where, args = append(where, `at >= ?`), append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		where, args = append(where, `at <= ?`), append(args, q.Until.UnixMicro())
	}
	if q.PageToken != "" {
		var seq string
		if err := decodeToken(q.PageToken, &seq); err != nil {
			return page, err
		}
		n, err := strconv.ParseInt(seq, 10, 64)
		if err != nil {
			return page, ErrBadToken
		}
		where, args = append(where, `seq < ?`), append(args, n)
	}
	size := pageSize(q.PageSize)
	rows, err := s.query(ctx, s.db, `SELECT seq, account, actor, action, target, remote_addr, at, detail FROM audit_log WHERE `+
		strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY seq DESC LIMIT %d`, size+1), args...)
	if err != nil {
		return page, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e      AuditEntry
			at     int64
			detail string
		)
		if err := rows.Scan(&e.Seq, &e.Account, &e.Actor, &e.Action, &e.Target, &e.RemoteAddr, &at, &detail); err != nil {
			return page, err
		}
		e.Time, e.Detail = fromMicros(at), json.RawMessage(detail)
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return page, err
	}
	if len(page.Entries) > size {
		page.Entries = page.Entries[:size]
		page.NextToken = encodeToken(strconv.FormatInt(page.Entries[size-1].Seq, 10))
	}
	return page, nil
}
