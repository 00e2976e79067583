package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Organization groups one management account, at most one delegated administrator and members
// (accounts whose Organization field names it).
type Organization struct {
	ID                string    `json:"organizationId"`
	Name              string    `json:"name,omitempty"`
	ManagementAccount string    `json:"managementAccount"`
	DelegatedAdmin    string    `json:"delegatedAdmin,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
}

// APIKey is a stored API key. Only a hash of the secret is kept; hashing and verification belong to
// the auth package.
type APIKey struct {
	ID         string     `json:"keyId"`
	Account    string     `json:"account"`
	Name       string     `json:"name,omitempty"`
	Role       string     `json:"role"`
	SecretHash []byte     `json:"-"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

// Usable reports whether the key is neither revoked nor expired at now.
func (k *APIKey) Usable(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// PutAccount creates or updates an account. A zero CreatedAt is set to now on creation.
func (s *Store) PutAccount(ctx context.Context, a model.Account) error {
	if a.ID == "" || a.Role == "" {
		return fmt.Errorf("%w: account needs an ID and a role", ErrInvalid)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	enabled, err := json.Marshal(nonNil(a.Enabled))
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, s.db, `INSERT INTO accounts (id, name, organization, role, enabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, organization = excluded.organization,
			role = excluded.role, enabled = excluded.enabled`,
		a.ID, a.Name, a.Organization, a.Role, string(enabled), micros(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: put account %s: %w", a.ID, err)
	}
	return nil
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

const accountCols = `id, name, organization, role, enabled, created_at`

func scanAccount(sc interface{ Scan(...any) error }) (model.Account, error) {
	var (
		a       model.Account
		enabled string
		created int64
	)
	if err := sc.Scan(&a.ID, &a.Name, &a.Organization, &a.Role, &enabled, &created); err != nil {
		return a, err
	}
	a.CreatedAt = fromMicros(created)
	if err := json.Unmarshal([]byte(enabled), &a.Enabled); err != nil {
		return a, fmt.Errorf("store: account %s: enabled scan types: %w", a.ID, err)
	}
	if len(a.Enabled) == 0 {
		a.Enabled = nil
	}
	return a, nil
}

// GetAccount returns one account.
func (s *Store) GetAccount(ctx context.Context, id string) (model.Account, error) {
	a, err := scanAccount(s.queryRow(ctx, s.db, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, notFound("account", id)
	}
	if err != nil {
		return a, fmt.Errorf("store: get account %s: %w", id, err)
	}
	return a, nil
}

// ListAccounts returns the given accounts that exist, ordered by ID.
func (s *Store) ListAccounts(ctx context.Context, accounts []string) ([]model.Account, error) {
	if err := checkAccounts(accounts); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, s.db, `SELECT `+accountCols+` FROM accounts WHERE id IN (`+placeholders(len(accounts))+`) ORDER BY id`, anys(accounts)...)
	if err != nil {
		return nil, fmt.Errorf("store: list accounts: %w", err)
	}
	defer rows.Close()
	var out []model.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// PutOrganization creates or updates an organization. The management and delegated admin accounts
// are expected to carry the organization's ID in their Organization field.
func (s *Store) PutOrganization(ctx context.Context, o Organization) error {
	if o.ID == "" || o.ManagementAccount == "" {
		return fmt.Errorf("%w: organization needs an ID and a management account", ErrInvalid)
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = s.now()
	}
	_, err := s.exec(ctx, s.db, `INSERT INTO organizations (id, name, management_account, delegated_admin, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, management_account = excluded.management_account,
			delegated_admin = excluded.delegated_admin`,
		o.ID, o.Name, o.ManagementAccount, o.DelegatedAdmin, micros(o.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: put organization %s: %w", o.ID, err)
	}
	return nil
}

// GetOrganization returns one organization.
func (s *Store) GetOrganization(ctx context.Context, id string) (Organization, error) {
	var (
		o       Organization
		created int64
	)
	err := s.queryRow(ctx, s.db, `SELECT id, name, management_account, delegated_admin, created_at FROM organizations WHERE id = ?`, id).
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

// OrganizationMembers returns every account of the organization (management, delegated admin and
// members), ordered by ID.
func (s *Store) OrganizationMembers(ctx context.Context, orgID string) ([]model.Account, error) {
	rows, err := s.query(ctx, s.db, `SELECT `+accountCols+` FROM accounts WHERE organization = ? AND organization <> '' ORDER BY id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("store: organization %s members: %w", orgID, err)
	}
	defer rows.Close()
	var out []model.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// VisibleAccounts returns the accounts whose rows the given account may read: itself, plus every
// account of its organization when it is that organization's delegated administrator (Inspector's
// rule: the delegated admin sees and manages all members; the management account and members see
// their own resources only).
func (s *Store) VisibleAccounts(ctx context.Context, account string) ([]string, error) {
	a, err := s.GetAccount(ctx, account)
	if err != nil {
		return nil, err
	}
	if a.Organization == "" {
		return []string{a.ID}, nil
	}
	o, err := s.GetOrganization(ctx, a.Organization)
	if errors.Is(err, ErrNotFound) || (err == nil && o.DelegatedAdmin != a.ID) {
		return []string{a.ID}, nil
	}
	if err != nil {
		return nil, err
	}
	members, err := s.OrganizationMembers(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(members))
	for _, m := range members {
		out = append(out, m.ID)
	}
	return out, nil
}

// CreateAPIKey stores a new key for k.Account. It fails if the ID exists.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) error {
	if k.ID == "" || k.Account == "" || k.Role == "" || len(k.SecretHash) == 0 {
		return fmt.Errorf("%w: API key needs an ID, an account, a role and a secret hash", ErrInvalid)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	_, err := s.exec(ctx, s.db, `INSERT INTO api_keys (id, account, name, role, secret_hash, created_at, last_used_at, expires_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Account, k.Name, k.Role, k.SecretHash, micros(k.CreatedAt), ptrMicros(k.LastUsedAt), ptrMicros(k.ExpiresAt), ptrMicros(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("store: create API key %s: %w", k.ID, err)
	}
	return nil
}

const apiKeyCols = `id, account, name, role, secret_hash, created_at, last_used_at, expires_at, revoked_at`

func scanAPIKey(sc interface{ Scan(...any) error }) (APIKey, error) {
	var (
		k                      APIKey
		created                int64
		lastUsed, exp, revoked sql.NullInt64
	)
	if err := sc.Scan(&k.ID, &k.Account, &k.Name, &k.Role, &k.SecretHash, &created, &lastUsed, &exp, &revoked); err != nil {
		return k, err
	}
	k.CreatedAt = fromMicros(created)
	k.LastUsedAt, k.ExpiresAt, k.RevokedAt = ptrFromNull(lastUsed), ptrFromNull(exp), ptrFromNull(revoked)
	return k, nil
}

// LookupAPIKey returns a key by ID regardless of account: it is how a request is authenticated, before
// its account is known. The caller must verify the secret against SecretHash and check Usable.
func (s *Store) LookupAPIKey(ctx context.Context, id string) (APIKey, error) {
	k, err := scanAPIKey(s.queryRow(ctx, s.db, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, notFound("API key", id)
	}
	if err != nil {
		return k, fmt.Errorf("store: lookup API key %s: %w", id, err)
	}
	return k, nil
}

// TouchAPIKey records that the key was used at t.
func (s *Store) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	_, err := s.exec(ctx, s.db, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, micros(t), id)
	if err != nil {
		return fmt.Errorf("store: touch API key %s: %w", id, err)
	}
	return nil
}

// ListAPIKeys returns the account's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, account string) ([]APIKey, error) {
	rows, err := s.query(ctx, s.db, `SELECT `+apiKeyCols+` FROM api_keys WHERE account = ? ORDER BY created_at DESC, id`, account)
	if err != nil {
		return nil, fmt.Errorf("store: list API keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes the account's key; revoking twice keeps the first time.
func (s *Store) RevokeAPIKey(ctx context.Context, account, id string) error {
	res, err := s.exec(ctx, s.db, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE account = ? AND id = ?`, micros(s.now()), account, id)
	if err != nil {
		return fmt.Errorf("store: revoke API key %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("API key", id)
	}
	return nil
}
