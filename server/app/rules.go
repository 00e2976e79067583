package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

// findRule returns the rule with the ID from the first of the accounts that holds one.
func (s *Server) findRule(ctx context.Context, accts []string, id string) (model.SuppressionRule, error) {
	for _, a := range accts {
		rule, err := s.Store.GetSuppressionRule(ctx, a, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		return rule, err
	}
	return model.SuppressionRule{}, api.NotFound("no such rule")
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadSuppressionRules)
	if err != nil {
		return err
	}
	rule, err := s.findRule(r.Context(), accts, r.PathValue("ruleId"))
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, rule)
}

// RulePatch changes a suppression rule: absent fields stay as they are. ExpiresAt is a timestamp,
// or null to make the rule permanent.
type RulePatch struct {
	Name      *string              `json:"name,omitempty"`
	Reason    *string              `json:"reason,omitempty"`
	Filter    *model.FindingFilter `json:"filter,omitempty"`
	ExpiresAt json.RawMessage      `json:"expiresAt,omitempty"`
}

// Validate implements api.Validator for what can be checked without the stored rule.
func (p *RulePatch) Validate() []api.FieldError {
	var errs []api.FieldError
	if p.Name != nil && strings.TrimSpace(*p.Name) == "" {
		errs = append(errs, api.FieldError{Field: "name", Message: "must not be empty"})
	}
	if p.Name != nil && len(*p.Name) > 128 {
		errs = append(errs, api.FieldError{Field: "name", Message: "must be at most 128 characters"})
	}
	if p.Reason != nil && strings.TrimSpace(*p.Reason) == "" {
		errs = append(errs, api.FieldError{Field: "reason", Message: "must not be empty: say why these findings are accepted"})
	}
	if p.Reason != nil && len(*p.Reason) > 512 {
		errs = append(errs, api.FieldError{Field: "reason", Message: "must be at most 512 characters"})
	}
	if p.Filter != nil {
		if b, _ := json.Marshal(p.Filter); string(b) == "{}" {
			errs = append(errs, api.FieldError{Field: "filter", Message: "must select something; an empty filter would suppress every finding"})
		}
		errs = append(errs, filterErrors(*p.Filter)...)
	}
	if len(p.ExpiresAt) > 0 && !bytes.Equal(p.ExpiresAt, []byte("null")) {
		var t time.Time
		if err := json.Unmarshal(p.ExpiresAt, &t); err != nil {
			errs = append(errs, api.FieldError{Field: "expiresAt", Message: "must be an RFC 3339 timestamp or null"})
		}
	}
	if p.Name == nil && p.Reason == nil && p.Filter == nil && len(p.ExpiresAt) == 0 {
		errs = append(errs, api.FieldError{Field: "(body)", Message: "change at least one of name, reason, filter, expiresAt"})
	}
	return errs
}

// filterErrors checks a rule filter's enumerated values, as ListFindings checks its parameters.
func filterErrors(f model.FindingFilter) []api.FieldError {
	var errs []api.FieldError
	check := func(field string, vals []string, allowed ...string) {
		for _, v := range vals {
			ok := false
			for _, a := range allowed {
				ok = ok || v == a
			}
			if !ok {
				errs = append(errs, api.FieldError{Field: "filter." + field, Message: fmt.Sprintf("unknown value %q; one of %s", v, strings.Join(allowed, ", "))})
			}
		}
	}
	check("severities", f.Severities, model.SeverityCritical, model.SeverityHigh, model.SeverityMedium, model.SeverityLow,
		model.SeverityInformational, model.SeverityUntriaged)
	check("statuses", f.Statuses, model.FindingActive, model.FindingSuppressed, model.FindingClosed)
	check("resourceTypes", f.ResourceTypes, model.ResourceHost, model.ResourceImage, model.ResourceFunction)
	check("fixAvailable", f.FixAvailable, model.Yes, model.No, model.Partial)
	check("exploitAvailable", f.ExploitAvailable, model.Yes, model.No)
	return errs
}

func (s *Server) updateRule(w http.ResponseWriter, r *http.Request, body *RulePatch) error {
	accts, err := s.scope(r, auth.ReadSuppressionRules)
	if err != nil {
		return err
	}
	id := r.PathValue("ruleId")
	api.SetAuditTarget(r, id)
	rule, err := s.findRule(r.Context(), accts, id)
	if err != nil {
		return err
	}
	if err := s.router.Authorize(r, auth.WriteSuppressionRules, rule.Account); err != nil {
		return err
	}
	if body.Name != nil {
		rule.Name = *body.Name
	}
	if body.Reason != nil {
		rule.Reason = *body.Reason
	}
	if body.Filter != nil {
		rule.Filter = *body.Filter
	}
	if len(body.ExpiresAt) > 0 {
		rule.ExpiresAt = nil
		if !bytes.Equal(body.ExpiresAt, []byte("null")) {
			var t time.Time
			_ = json.Unmarshal(body.ExpiresAt, &t) // Validate checked it
			t = t.UTC().Truncate(time.Microsecond)
			rule.ExpiresAt = &t
		}
	}
	rule.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
	if err := s.Store.PutSuppressionRule(r.Context(), rule); err != nil {
		return err
	}
	// Findings the rule no longer matches become ACTIVE again, newly matched ones SUPPRESSED,
	// each with its event.
	if err := s.reapplyRules(r.Context(), rule.Account); err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, rule)
}
