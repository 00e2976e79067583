package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/bootstrap"
	"github.com/vigil-sec/vigil/server/store"
)

// keyStore lets the authenticator look keys up in the store.
type keyStore struct{ st *store.Store }

func (k keyStore) Lookup(ctx context.Context, id string) (auth.StoredKey, error) {
	key, err := k.st.LookupAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return auth.StoredKey{}, auth.ErrUnknownKey
	}
	if err != nil {
		return auth.StoredKey{}, err
	}
	sk := auth.StoredKey{ID: key.ID, Hash: key.SecretHash, Account: key.Account, Role: auth.Role(key.Role), Name: key.Name,
		CreatedAt: key.CreatedAt}
	if key.ExpiresAt != nil {
		sk.ExpiresAt = *key.ExpiresAt
	}
	if key.RevokedAt != nil {
		sk.RevokedAt = *key.RevokedAt
	}
	return sk, nil
}

func toStoreKey(k auth.StoredKey) store.APIKey {
	out := store.APIKey{ID: k.ID, Account: k.Account, Name: k.Name, Role: string(k.Role), SecretHash: k.Hash, CreatedAt: k.CreatedAt}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt
		out.ExpiresAt = &t
	}
	return out
}

// adminKeys persists the first administrator key for bootstrap.
type adminKeys struct{ st *store.Store }

// adminKeyName marks the bootstrap key, so that a restart after its revocation mints none.
const adminKeyName = "bootstrap-admin"

func (a adminKeys) HasAdminKey(ctx context.Context) (bool, error) {
	keys, err := a.st.ListAPIKeys(ctx, DefaultAccount)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if k.Name == adminKeyName {
			return true, nil
		}
	}
	return false, nil
}

func (a adminKeys) PutAdminKey(ctx context.Context, key auth.StoredKey) error {
	if ok, err := a.HasAdminKey(ctx); err != nil || ok {
		if ok {
			return bootstrap.ErrAdminKeyExists
		}
		return err
	}
	key.Name = adminKeyName
	return a.st.CreateAPIKey(ctx, toStoreKey(key))
}

// auditLog writes the API's audit records to the store's audit log in batches: every observeFlush
// (with the observation times), before any read of the log, and at Close. Written one
// transaction per call, the record of every mutating call, an unchanged inventory resubmission's
// too, waited for SQLite's single writer behind the large transactions of new inventories (and
// cost PostgreSQL a commit). A crash loses at most observeFlush of records. Past auditMax pending
// records a call writes them itself, so memory stays bounded when the store is slow or down.
type auditLog struct {
	st      *store.Store
	mu      sync.Mutex
	pending []store.AuditEntry
	// flushMu orders flushes, so that records are written in the order of their calls.
	flushMu sync.Mutex
}

const auditMax = 10000

func (a *auditLog) Audit(ctx context.Context, rec api.AuditRecord) error {
	if rec.Account == "" {
		return nil // unauthenticated requests change nothing; they are logged, not audited per account
	}
	a.mu.Lock()
	full := len(a.pending) >= auditMax
	a.mu.Unlock()
	if full {
		if err := a.flush(ctx); err != nil {
			return err // the router logs the record as lost
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = append(a.pending, store.AuditEntry{Account: rec.Account, Actor: rec.KeyID,
		Action: fmt.Sprintf("%s -> %d", rec.Route, rec.Status), Target: rec.Target, RemoteAddr: rec.Remote,
		Time: rec.Time.UTC().Truncate(time.Microsecond)})
	return nil
}

// flush writes the pending records in one transaction; on failure they are kept, ahead of those
// that arrive meanwhile, for the next attempt.
func (a *auditLog) flush(ctx context.Context) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	batch := a.pending
	a.pending = nil
	a.mu.Unlock()
	if err := a.st.AppendAudits(ctx, batch); err != nil {
		a.mu.Lock()
		a.pending = append(batch, a.pending...)
		a.mu.Unlock()
		return fmt.Errorf("writing %d audit records (kept for the next attempt): %w", len(batch), err)
	}
	return nil
}

// orgDirectory answers organization relations from the store: a delegated administrator manages
// its organization's members; the management account manages the organization itself.
type orgDirectory struct{ st *store.Store }

func (o orgDirectory) Relation(ctx context.Context, principal, target string) (auth.Relation, error) {
	if principal == target {
		return auth.RelSelf, nil
	}
	acct, err := o.st.GetAccount(ctx, target)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.Organization == "") {
		return auth.RelNone, nil
	}
	if err != nil {
		return auth.RelNone, err
	}
	org, err := o.st.GetOrganization(ctx, acct.Organization)
	if errors.Is(err, store.ErrNotFound) {
		return auth.RelNone, nil
	}
	if err != nil {
		return auth.RelNone, err
	}
	switch principal {
	case org.DelegatedAdmin:
		return auth.RelDelegatedAdmin, nil
	case org.ManagementAccount:
		return auth.RelManagement, nil
	}
	return auth.RelNone, nil
}

func (o orgDirectory) Related(ctx context.Context, principal string) (map[string]auth.Relation, error) {
	out := map[string]auth.Relation{}
	acct, err := o.st.GetAccount(ctx, principal)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.Organization == "") {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	members, err := o.st.OrganizationMembers(ctx, acct.Organization)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.ID == principal {
			continue
		}
		rel, err := o.Relation(ctx, principal, m.ID)
		if err != nil {
			return nil, err
		}
		if rel != auth.RelNone {
			out[m.ID] = rel
		}
	}
	return out, nil
}
