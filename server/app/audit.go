package app

import (
	"net/http"
	"time"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

// listAudit reads the audit log: every mutating API call (who: the key id; what: the route and
// its status; which object; when; from where). An account reads its own entries; a delegated
// admin also its members' (those whose resources it sees); ?account= narrows to one.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadResources)
	if err != nil {
		return err
	}
	if len(accts) == 0 {
		return api.WriteJSON(w, http.StatusOK, map[string]any{"entries": []store.AuditEntry{}})
	}
	size, token, err := api.PageParams(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	aq := store.AuditQuery{Actor: q.Get("actor"), Action: q.Get("action"), PageSize: size, PageToken: token}
	var errs []api.FieldError
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &aq.Since}, {"until", &aq.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				errs = append(errs, api.FieldError{Field: p.name, Message: "must be an RFC 3339 time"})
			}
			*p.dst = t
		}
	}
	if len(errs) > 0 {
		return api.Validation(errs...)
	}
	// The records of calls that completed are in the log before it is read.
	if err := s.audit.flush(r.Context()); err != nil {
		return err
	}
	page, err := s.Store.ListAudit(r.Context(), accts, aq)
	if err != nil {
		return storeErr(err, "audit entry")
	}
	if page.Entries == nil {
		page.Entries = []store.AuditEntry{}
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"entries": page.Entries, "nextToken": page.NextToken})
}
