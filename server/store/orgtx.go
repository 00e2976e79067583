package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-sec/vigil/model"
)

// OrgTx reads and changes accounts, organizations and memberships in one transaction, so that an
// organization's invariants (at most one delegated admin, a member's account and membership
// agreeing) hold under concurrent requests. Rows read are locked until the end (SELECT … FOR
// UPDATE on PostgreSQL; SQLite write transactions are serialised from their start).
type OrgTx struct {
	s   *Store
	tx  *sql.Tx
	ctx context.Context
}

// InOrgTx runs fn in a transaction; it commits when fn returns nil.
func (s *Store) InOrgTx(ctx context.Context, fn func(t *OrgTx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return fn(&OrgTx{s: s, tx: tx, ctx: ctx}) })
}

func (t *OrgTx) forUpdate() string {
	if t.s.dialect == Postgres {
		return ` FOR UPDATE`
	}
	return ""
}

// Account returns an account, locked.
func (t *OrgTx) Account(id string) (model.Account, error) {
	a, err := scanAccount(t.s.queryRow(t.ctx, t.tx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`+t.forUpdate(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, notFound("account", id)
	}
	if err != nil {
		return a, fmt.Errorf("store: get account %s: %w", id, err)
	}
	return a, nil
}

// CreateAccount inserts a new account (ErrExists when the ID is taken).
func (t *OrgTx) CreateAccount(a model.Account) error {
	if a.ID == "" || a.Role == "" {
		return fmt.Errorf("%w: account needs an ID and a role", ErrInvalid)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = t.s.now()
	}
	enabled, err := json.Marshal(nonNil(a.Enabled))
	if err != nil {
		return err
	}
	res, err := t.s.exec(t.ctx, t.tx, `INSERT INTO accounts (id, name, organization, role, enabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Name, a.Organization, a.Role, string(enabled), micros(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: create account %s: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: account %s", ErrExists, a.ID)
	}
	return nil
}

// UpdateAccount writes an existing account's name, organization, role and scan types.
func (t *OrgTx) UpdateAccount(a model.Account) error {
	enabled, err := json.Marshal(nonNil(a.Enabled))
	if err != nil {
		return err
	}
	res, err := t.s.exec(t.ctx, t.tx, `UPDATE accounts SET name = ?, organization = ?, role = ?, enabled = ? WHERE id = ?`,
		a.Name, a.Organization, a.Role, string(enabled), a.ID)
	if err != nil {
		return fmt.Errorf("store: update account %s: %w", a.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("account", a.ID)
	}
	return nil
}

// Organization returns an organization, locked.
func (t *OrgTx) Organization(id string) (Organization, error) {
	var (
		o       Organization
		created int64
	)
	err := t.s.queryRow(t.ctx, t.tx, `SELECT id, name, management_account, delegated_admin, created_at FROM organizations WHERE id = ?`+t.forUpdate(), id).
		Scan(&o.ID, &o.Name, &o.ManagementAccount, &o.DelegatedAdmin, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return o, notFound("organization", id)
	}
	if err != nil {
		return o, fmt.Errorf("store: get organization %s: %w", id, err)
	}
	o.CreatedAt = fromMicros(created)
	return o, nil
}

// CreateOrganization inserts a new organization (ErrExists when the ID is taken).
func (t *OrgTx) CreateOrganization(o Organization) error {
	if o.ID == "" || o.ManagementAccount == "" {
		return fmt.Errorf("%w: organization needs an ID and a management account", ErrInvalid)
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = t.s.now()
	}
	res, err := t.s.exec(t.ctx, t.tx, `INSERT INTO organizations (id, name, management_account, delegated_admin, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, o.ID, o.Name, o.ManagementAccount, o.DelegatedAdmin, micros(o.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: create organization %s: %w", o.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: organization %s", ErrExists, o.ID)
	}
	return nil
}

// SetDelegatedAdmin sets (account != "") or clears (account == "") the organization's delegated
// admin.
func (t *OrgTx) SetDelegatedAdmin(org, account string) error {
	res, err := t.s.exec(t.ctx, t.tx, `UPDATE organizations SET delegated_admin = ? WHERE id = ?`, account, org)
	if err != nil {
		return fmt.Errorf("store: organization %s delegated admin: %w", org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("organization", org)
	}
	return nil
}

// Membership returns an account's membership, locked (ErrNotFound when it has none).
func (t *OrgTx) Membership(account string) (Membership, error) {
	var (
		m  Membership
		at int64
	)
	err := t.s.queryRow(t.ctx, t.tx, `SELECT organization, account, status, updated_at FROM organization_members WHERE account = ?`+t.forUpdate(), account).
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

// SetMembership records an account's membership; an account in another organization is ErrExists.
func (t *OrgTx) SetMembership(m Membership) error {
	if m.Organization == "" || m.Account == "" || m.Status == "" {
		return fmt.Errorf("%w: membership needs an organization, an account and a status", ErrInvalid)
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = t.s.now()
	}
	if cur, err := t.Membership(m.Account); err == nil && cur.Organization != m.Organization {
		return fmt.Errorf("%w: account %s belongs to organization %s", ErrExists, m.Account, cur.Organization)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err := t.s.exec(t.ctx, t.tx, `INSERT INTO organization_members (organization, account, status, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (organization, account) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
		m.Organization, m.Account, m.Status, micros(m.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: membership %s in %s: %w", m.Account, m.Organization, err)
	}
	return nil
}

// Memberships returns the organization's memberships ordered by account.
func (t *OrgTx) Memberships(org string) ([]Membership, error) {
	return t.s.memberships(t.ctx, t.tx, org)
}

// AutoEnable returns the organization's auto-enabled scan types.
func (t *OrgTx) AutoEnable(org string) ([]string, error) {
	var raw string
	err := t.s.queryRow(t.ctx, t.tx, `SELECT auto_enable FROM organization_settings WHERE organization = ?`, org).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: organization %s settings: %w", org, err)
	}
	var out []string
	return out, json.Unmarshal([]byte(raw), &out)
}
