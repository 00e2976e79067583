package app

import (
	"net/http"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

// API keys are managed by their own account only: not even a delegated admin mints or lists a
// member's keys (that would let it act as the member; see auth.Allowed).

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	acct := principal(r).Account
	if err := s.router.Authorize(r, auth.ReadKeys, acct); err != nil {
		return err
	}
	keys, err := s.Store.ListAPIKeys(r.Context(), acct)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []store.APIKey{}
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// KeyRequest creates an API key.
type KeyRequest struct {
	Name string `json:"name"`
	// Role is ADMIN or READ_ONLY.
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// Validate implements api.Validator.
func (k *KeyRequest) Validate() []api.FieldError {
	var errs []api.FieldError
	if n := strings.TrimSpace(k.Name); n == "" || len(n) > 128 {
		errs = append(errs, api.FieldError{Field: "name", Message: "is required (at most 128 characters): say what the key is for"})
	}
	if !auth.Role(k.Role).Valid() {
		errs = append(errs, api.FieldError{Field: "role", Message: "must be ADMIN or READ_ONLY"})
	}
	return errs
}

// CreatedKey is the answer to a key creation: the only time the secret is shown.
type CreatedKey struct {
	Key    store.APIKey `json:"key"`
	Secret string       `json:"secret"`
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, body *KeyRequest) error {
	acct := principal(r).Account
	if err := s.router.Authorize(r, auth.WriteKeys, acct); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var exp time.Time
	if body.ExpiresAt != nil {
		if !body.ExpiresAt.After(now) {
			return api.Validation(api.FieldError{Field: "expiresAt", Message: "must be in the future"})
		}
		exp = body.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	raw, sk, err := auth.Issue(auth.Hasher{}, acct, auth.Role(body.Role), strings.TrimSpace(body.Name), now, exp)
	if err != nil {
		return err
	}
	k := toStoreKey(sk)
	api.SetAuditTarget(r, "api-key/"+k.ID)
	if err := s.Store.CreateAPIKey(r.Context(), k); err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusCreated, CreatedKey{Key: k, Secret: raw})
}

// revokeKey revokes one of the caller's account's keys; a revoked key answers 401 at once.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	acct := principal(r).Account
	if err := s.router.Authorize(r, auth.WriteKeys, acct); err != nil {
		return err
	}
	id := r.PathValue("keyId")
	api.SetAuditTarget(r, "api-key/"+id)
	// Keep the account manageable: its last usable ADMIN key is not revoked through the API.
	keys, err := s.Store.ListAPIKeys(r.Context(), acct)
	if err != nil {
		return err
	}
	now, admins, target := s.now(), 0, false
	for _, k := range keys {
		if k.Role == string(auth.RoleAdmin) && k.Usable(now) {
			admins++
			target = target || k.ID == id
		}
	}
	if target && admins == 1 {
		return api.Conflict("this is the account's last usable ADMIN key; create another before revoking it")
	}
	if err := s.Store.RevokeAPIKey(r.Context(), acct, id); err != nil {
		return storeErr(err, "API key")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
