package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sink is a webhook endpoint an account manages through the API. The dispatcher (server/events)
// signs every delivery with Secret (and PreviousSecret during a rotation), so the secret is
// stored as given; the API never returns it.
type Sink struct {
	ID             string    `json:"sinkId"`
	Account        string    `json:"account"`
	URL            string    `json:"url"`
	Secret         string    `json:"-"`
	PreviousSecret string    `json:"-"`
	EventTypes     []string  `json:"eventTypes"`
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabledReason,omitempty"`
	Description    string    `json:"description,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// ErrExists is returned when a row with the same key already exists.
var ErrExists = errors.New("store: already exists")

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateSink stores a new sink; it fails with ErrExists if the ID is taken.
func (s *Store) CreateSink(ctx context.Context, k Sink) error {
	if k.ID == "" || k.Account == "" || k.URL == "" || k.Secret == "" {
		return fmt.Errorf("%w: sink needs an ID, an account, a URL and a secret", ErrInvalid)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	if k.UpdatedAt.IsZero() {
		k.UpdatedAt = k.CreatedAt
	}
	types, err := json.Marshal(nonNil(k.EventTypes))
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, s.db, `INSERT INTO webhook_sinks (id, account, url, secret, previous_secret, event_types, enabled,
			disabled_reason, description, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Account, k.URL, k.Secret, k.PreviousSecret, string(types), boolInt(k.Enabled), k.DisabledReason,
		k.Description, micros(k.CreatedAt), micros(k.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: create sink %s: %w", k.ID, err)
	}
	return nil
}

// UpdateSink replaces the mutable fields of the account's sink (URL, secrets, types, enabled,
// disabled reason, description) and sets UpdatedAt.
func (s *Store) UpdateSink(ctx context.Context, k Sink) error {
	types, err := json.Marshal(nonNil(k.EventTypes))
	if err != nil {
		return err
	}
	if k.UpdatedAt.IsZero() {
		k.UpdatedAt = s.now()
	}
	res, err := s.exec(ctx, s.db, `UPDATE webhook_sinks SET url = ?, secret = ?, previous_secret = ?, event_types = ?,
			enabled = ?, disabled_reason = ?, description = ?, updated_at = ?
		WHERE account = ? AND id = ?`,
		k.URL, k.Secret, k.PreviousSecret, string(types), boolInt(k.Enabled), k.DisabledReason, k.Description,
		micros(k.UpdatedAt), k.Account, k.ID)
	if err != nil {
		return fmt.Errorf("store: update sink %s: %w", k.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("sink", k.ID)
	}
	return nil
}

const sinkCols = `id, account, url, secret, previous_secret, event_types, enabled, disabled_reason, description, created_at, updated_at`

func scanSink(sc interface{ Scan(...any) error }) (Sink, error) {
	var (
		k                Sink
		types            string
		enabled          int64
		created, updated int64
	)
	if err := sc.Scan(&k.ID, &k.Account, &k.URL, &k.Secret, &k.PreviousSecret, &types, &enabled, &k.DisabledReason,
		&k.Description, &created, &updated); err != nil {
		return k, err
	}
	k.Enabled = enabled != 0
	k.CreatedAt, k.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := json.Unmarshal([]byte(types), &k.EventTypes); err != nil {
		return k, fmt.Errorf("store: sink %s: event types: %w", k.ID, err)
	}
	return k, nil
}

// GetSink returns a sink that belongs to one of accounts.
func (s *Store) GetSink(ctx context.Context, accounts []string, id string) (Sink, error) {
	if err := checkAccounts(accounts); err != nil {
		return Sink{}, err
	}
	k, err := scanSink(s.queryRow(ctx, s.db, `SELECT `+sinkCols+` FROM webhook_sinks WHERE id = ? AND account IN (`+
		placeholders(len(accounts))+`)`, append([]any{id}, anys(accounts)...)...))
	if errors.Is(err, sql.ErrNoRows) {
		return k, notFound("sink", id)
	}
	if err != nil {
		return k, fmt.Errorf("store: get sink %s: %w", id, err)
	}
	return k, nil
}

// ListSinks returns the accounts' sinks ordered by account and ID. An account has few sinks, so
// there is no pagination.
func (s *Store) ListSinks(ctx context.Context, accounts []string) ([]Sink, error) {
	if err := checkAccounts(accounts); err != nil {
		return nil, err
	}
	return s.listSinks(ctx, ` WHERE account IN (`+placeholders(len(accounts))+`)`, anys(accounts)...)
}

// AllSinks returns every account's sinks, for the dispatcher.
func (s *Store) AllSinks(ctx context.Context) ([]Sink, error) { return s.listSinks(ctx, "") }

func (s *Store) listSinks(ctx context.Context, where string, args ...any) ([]Sink, error) {
	rows, err := s.query(ctx, s.db, `SELECT `+sinkCols+` FROM webhook_sinks`+where+` ORDER BY account, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list sinks: %w", err)
	}
	defer rows.Close()
	var out []Sink
	for rows.Next() {
		k, err := scanSink(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteSink deletes the account's sink.
func (s *Store) DeleteSink(ctx context.Context, account, id string) error {
	res, err := s.exec(ctx, s.db, `DELETE FROM webhook_sinks WHERE account = ? AND id = ?`, account, id)
	if err != nil {
		return fmt.Errorf("store: delete sink %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("sink", id)
	}
	return nil
}

// DisableSink turns a sink off with a reason (the dispatcher does this on 410 Gone). It is keyed
// by ID alone: the dispatcher serves every account.
func (s *Store) DisableSink(ctx context.Context, id, reason string) error {
	res, err := s.exec(ctx, s.db, `UPDATE webhook_sinks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?`,
		reason, micros(s.now()), id)
	if err != nil {
		return fmt.Errorf("store: disable sink %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("sink", id)
	}
	return nil
}

// ListOrganizations returns every organization, ordered by ID.
func (s *Store) ListOrganizations(ctx context.Context) ([]Organization, error) {
	rows, err := s.query(ctx, s.db, `SELECT id, name, management_account, delegated_admin, created_at FROM organizations ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list organizations: %w", err)
	}
	defer rows.Close()
	var out []Organization
	for rows.Next() {
		var (
			o       Organization
			created int64
		)
		if err := rows.Scan(&o.ID, &o.Name, &o.ManagementAccount, &o.DelegatedAdmin, &created); err != nil {
			return nil, err
		}
		o.CreatedAt = fromMicros(created)
		out = append(out, o)
	}
	return out, rows.Err()
}

// AutoEnable returns the scan types the organization enables for new members (none if never set).
func (s *Store) AutoEnable(ctx context.Context, org string) ([]string, error) {
	var raw string
	err := s.queryRow(ctx, s.db, `SELECT auto_enable FROM organization_settings WHERE organization = ?`, org).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: organization %s settings: %w", org, err)
	}
	var out []string
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, fmt.Errorf("store: organization %s auto-enable: %w", org, err)
	}
	return out, nil
}

// SetAutoEnable sets the scan types the organization enables for new members.
func (s *Store) SetAutoEnable(ctx context.Context, org string, scanTypes []string) error {
	b, err := json.Marshal(nonNil(scanTypes))
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, s.db, `INSERT INTO organization_settings (organization, auto_enable, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (organization) DO UPDATE SET auto_enable = excluded.auto_enable, updated_at = excluded.updated_at`,
		org, string(b), micros(s.now()))
	if err != nil {
		return fmt.Errorf("store: organization %s auto-enable: %w", org, err)
	}
	return nil
}

// Member relationship statuses (Inspector's RelationshipStatus, the subset Vigil uses).
const (
	MemberEnabled = "ENABLED" // associated: the delegated admin manages it
	MemberRemoved = "REMOVED" // disassociated: standalone, may be associated again
)

// Membership is one account's standing in an organization.
type Membership struct {
	Organization string    `json:"organizationId"`
	Account      string    `json:"accountId"`
	Status       string    `json:"relationshipStatus"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// SetMembership records an account's standing in an organization. An account belongs to at most
// one organization: recording it in another fails with ErrExists.
func (s *Store) SetMembership(ctx context.Context, m Membership) error {
	if m.Organization == "" || m.Account == "" || m.Status == "" {
		return fmt.Errorf("%w: membership needs an organization, an account and a status", ErrInvalid)
	}
	if cur, err := s.GetMembership(ctx, m.Account); err == nil && cur.Organization != m.Organization {
		return fmt.Errorf("%w: account %s belongs to organization %s", ErrExists, m.Account, cur.Organization)
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = s.now()
	}
	_, err := s.exec(ctx, s.db, `INSERT INTO organization_members (organization, account, status, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (organization, account) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
		m.Organization, m.Account, m.Status, micros(m.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: membership %s in %s: %w", m.Account, m.Organization, err)
	}
	return nil
}

// GetMembership returns the account's membership (ErrNotFound when it belongs to no organization).
func (s *Store) GetMembership(ctx context.Context, account string) (Membership, error) {
	var (
		m  Membership
		at int64
	)
	err := s.queryRow(ctx, s.db, `SELECT organization, account, status, updated_at FROM organization_members WHERE account = ?`, account).
		Scan(&m.Organization, &m.Account, &m.Status, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return m, notFound("membership", account)
	}
	if err != nil {
		return m, fmt.Errorf("store: membership of %s: %w", account, err)
	}
	m.UpdatedAt = fromMicros(at)
	return m, nil
}

// ListMemberships returns the organization's memberships ordered by account.
func (s *Store) ListMemberships(ctx context.Context, org string) ([]Membership, error) {
	return s.memberships(ctx, s.db, org)
}

// memberships reads an organization's memberships through q (the pool, or an OrgTx's transaction).
func (s *Store) memberships(ctx context.Context, q querier, org string) ([]Membership, error) {
	rows, err := s.query(ctx, q, `SELECT organization, account, status, updated_at FROM organization_members WHERE organization = ? ORDER BY account`, org)
	if err != nil {
		return nil, fmt.Errorf("store: memberships of %s: %w", org, err)
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var (
			m  Membership
			at int64
		)
		if err := rows.Scan(&m.Organization, &m.Account, &m.Status, &at); err != nil {
			return nil, err
		}
		m.UpdatedAt = fromMicros(at)
		out = append(out, m)
	}
	return out, rows.Err()
}
