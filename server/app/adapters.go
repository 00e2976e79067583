package app

import (
	"context"
	"errors"
	"fmt"
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

// auditor writes the API's audit records to the store's audit log.
type auditor struct{ st *store.Store }

func (a auditor) Audit(ctx context.Context, rec api.AuditRecord) error {
	if rec.Account == "" {
		return nil // unauthenticated requests change nothing; they are logged, not audited per account
	}
	return a.st.AppendAudit(ctx, store.AuditEntry{Account: rec.Account, Actor: rec.KeyID,
		Action: fmt.Sprintf("%s -> %d", rec.Route, rec.Status), Target: rec.Target, RemoteAddr: rec.Remote,
		Time: rec.Time.UTC().Truncate(time.Microsecond)})
}
