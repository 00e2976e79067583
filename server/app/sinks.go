package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/store"
)

// Webhook sinks per account. A sink belongs to one account and receives that account's events;
// a delegated admin's sink also receives the events of its associated members (it sees their
// findings anyway). Sinks are managed by their own account only (auth.Allowed: a delegated admin
// does not manage a member's webhooks).

// SinkRequest creates a sink.
type SinkRequest struct {
	URL string `json:"url"`
	// Secret signs deliveries (at least 16 bytes); empty: the server draws one and returns it once.
	Secret      string   `json:"secret,omitempty"`
	EventTypes  []string `json:"eventTypes,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
	Description string   `json:"description,omitempty"`
}

// SinkUpdate changes a sink; absent fields stay.
type SinkUpdate struct {
	URL        *string   `json:"url,omitempty"`
	EventTypes *[]string `json:"eventTypes,omitempty"`
	// Enabled true also clears the reason the dispatcher disabled the sink (a 410 Gone).
	Enabled     *bool   `json:"enabled,omitempty"`
	Description *string `json:"description,omitempty"`
	// Secret sets a new signing secret; the old one keeps signing too (a second v1 value) until
	// ClearPreviousSecret, so receivers can move at their own pace. RotateSecret draws the new
	// secret on the server and returns it once.
	Secret              *string `json:"secret,omitempty"`
	RotateSecret        bool    `json:"rotateSecret,omitempty"`
	ClearPreviousSecret bool    `json:"clearPreviousSecret,omitempty"`
}

// SinkView is a sink as the API shows it: never its secrets.
type SinkView struct {
	store.Sink
	// Rotating says a previous secret still signs deliveries.
	Rotating bool `json:"rotating"`
	// Secret is set only in the answer that created it on the server.
	Secret string `json:"secret,omitempty"`
}

func sinkView(k store.Sink) SinkView {
	if k.EventTypes == nil {
		k.EventTypes = []string{}
	}
	return SinkView{Sink: k, Rotating: k.PreviousSecret != ""}
}

// MaxSinksPerAccount bounds an account's webhook sinks, and so the fan-out of each of its events.
const MaxSinksPerAccount = 20

// validateSink checks a sink with the events package's rules and the server's address guard.
func (s *Server) validateSink(k store.Sink) error {
	if len(k.Description) > 256 {
		return api.Validation(api.FieldError{Field: "description", Message: "at most 256 bytes"})
	}
	err := events.ValidateSink(events.Sink{ID: k.ID, Account: k.Account, URL: k.URL, Secret: k.Secret,
		PreviousSecret: k.PreviousSecret, Types: k.EventTypes}, s.cfg.WebhookGuard)
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "events: "), "sink "+k.ID+": ")
	msg = strings.TrimPrefix(msg, "events: ")
	field := "url"
	switch {
	case strings.Contains(msg, "secret"):
		field = "secret"
	case strings.Contains(msg, "event type"):
		field = "eventTypes"
	}
	return api.Validation(api.FieldError{Field: field, Message: msg})
}

func (s *Server) listSinks(w http.ResponseWriter, r *http.Request) error {
	acct := principal(r).Account
	if err := s.router.Authorize(r, auth.ReadWebhooks, acct); err != nil {
		return err
	}
	sinks, err := s.Store.ListSinks(r.Context(), []string{acct})
	if err != nil {
		return err
	}
	out := []SinkView{}
	for _, k := range sinks {
		out = append(out, sinkView(k))
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out})
}

func (s *Server) createSink(w http.ResponseWriter, r *http.Request, body *SinkRequest) error {
	acct := principal(r).Account
	if err := s.router.Authorize(r, auth.WriteWebhooks, acct); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	k := store.Sink{ID: "wh-" + randomID(), Account: acct, URL: body.URL, Secret: body.Secret, EventTypes: body.EventTypes,
		Enabled: body.Enabled == nil || *body.Enabled, Description: body.Description, CreatedAt: now, UpdatedAt: now}
	generated := k.Secret == ""
	if generated {
		k.Secret = events.NewSecret()
	}
	if err := s.validateSink(k); err != nil {
		return err
	}
	api.SetAuditTarget(r, "webhook/"+k.ID)
	if have, err := s.Store.ListSinks(r.Context(), []string{acct}); err != nil {
		return err
	} else if len(have) >= MaxSinksPerAccount {
		return api.Conflict(fmt.Sprintf("an account has at most %d webhooks", MaxSinksPerAccount))
	}
	if err := s.Store.CreateSink(r.Context(), k); err != nil {
		return err
	}
	s.notifyDispatcher()
	v := sinkView(k)
	if generated {
		v.Secret = k.Secret
	}
	return api.WriteJSON(w, http.StatusCreated, v)
}

func (s *Server) ownSink(r *http.Request, action auth.Action) (store.Sink, error) {
	acct := principal(r).Account
	if err := s.router.Authorize(r, action, acct); err != nil {
		return store.Sink{}, err
	}
	id := r.PathValue("sinkId")
	if action.Mutates() {
		api.SetAuditTarget(r, "webhook/"+id)
	}
	k, err := s.Store.GetSink(r.Context(), []string{acct}, id)
	return k, storeErr(err, "webhook")
}

func (s *Server) getSink(w http.ResponseWriter, r *http.Request) error {
	k, err := s.ownSink(r, auth.ReadWebhooks)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, sinkView(k))
}

func (s *Server) updateSink(w http.ResponseWriter, r *http.Request, body *SinkUpdate) error {
	k, err := s.ownSink(r, auth.WriteWebhooks)
	if err != nil {
		return err
	}
	if body.Secret != nil && body.RotateSecret {
		return api.Validation(api.FieldError{Field: "rotateSecret", Message: "give a secret or ask for one, not both"})
	}
	if body.URL != nil {
		k.URL = *body.URL
	}
	if body.EventTypes != nil {
		k.EventTypes = *body.EventTypes
	}
	if body.Description != nil {
		k.Description = *body.Description
	}
	if body.Enabled != nil {
		k.Enabled = *body.Enabled
		if k.Enabled {
			k.DisabledReason = ""
		}
	}
	var drawn string
	if body.RotateSecret {
		drawn = events.NewSecret()
		body.Secret = &drawn
	}
	if body.Secret != nil && *body.Secret != k.Secret {
		k.PreviousSecret, k.Secret = k.Secret, *body.Secret
	}
	if body.ClearPreviousSecret {
		k.PreviousSecret = ""
	}
	if err := s.validateSink(k); err != nil {
		return err
	}
	k.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
	if err := s.Store.UpdateSink(r.Context(), k); err != nil {
		return storeErr(err, "webhook")
	}
	s.notifyDispatcher()
	v := sinkView(k)
	v.Secret = drawn
	return api.WriteJSON(w, http.StatusOK, v)
}

func (s *Server) deleteSink(w http.ResponseWriter, r *http.Request) error {
	k, err := s.ownSink(r, auth.WriteWebhooks)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteSink(r.Context(), k.Account, k.ID); err != nil {
		return storeErr(err, "webhook")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DeadLetterView is one event given up on: the reasons name each failing sink.
type DeadLetterView struct {
	Seq       int64     `json:"seq"`
	EventID   string    `json:"eventId"`
	Type      string    `json:"type"`
	Account   string    `json:"account"`
	Subject   string    `json:"subject,omitempty"`
	Time      time.Time `json:"time"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError"`
}

// listDeadLetters lists dead-lettered events of the accounts whose events the caller's sinks
// may receive: its own and, for a delegated admin, its members'.
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadFindings)
	if err != nil {
		return err
	}
	size, token, err := api.PageParams(r)
	if err != nil {
		return err
	}
	out := []DeadLetterView{}
	if len(accts) == 0 {
		return api.WriteJSON(w, http.StatusOK, map[string]any{"deadLetters": out})
	}
	page, err := s.Store.ListDeadLetters(r.Context(), accts, size, token)
	if err != nil {
		return storeErr(err, "dead letter")
	}
	for _, rec := range page.Records {
		out = append(out, DeadLetterView{Seq: rec.Seq, EventID: rec.Event.ID, Type: rec.Event.Type, Account: rec.Event.Account,
			Subject: rec.Event.Subject, Time: rec.Event.Time, Attempts: rec.Attempts, LastError: rec.LastError})
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"deadLetters": out, "nextToken": page.NextToken})
}

// retryDeadLetter puts a dead event back in the outbox: every sink that wants it receives it again
// (receivers deduplicate by event id). Admin keys of the event's account or its delegated admin.
func (s *Server) retryDeadLetter(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r, "retry dead letters"); err != nil {
		return err
	}
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq <= 0 {
		return api.NotFound("no such dead letter")
	}
	api.SetAuditTarget(r, "dead-letter/"+strconv.FormatInt(seq, 10))
	accts, err := s.scope(r, auth.WriteResources)
	if err != nil {
		return err
	}
	for _, a := range accts {
		err := s.Store.RetryDeadLetter(r.Context(), a, seq)
		if err == nil {
			s.notifyDispatcher()
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return api.NotFound("no such dead letter")
}

// sinkSource is the dispatcher's SinkStore: the configured webhooks plus every account's sinks
// from the store, read fresh each round. It also keeps the delegated-admin map Visible uses,
// refreshed at the same time.
type sinkSource struct {
	st     *store.Store
	config *events.MemSinks
	log    func(error)

	mu sync.Mutex
	// members maps a delegated admin to the accounts whose events its sinks receive.
	members map[string]map[string]bool
}

func (ss *sinkSource) ListSinks(ctx context.Context) ([]events.Sink, error) {
	out, err := ss.config.ListSinks(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := ss.st.AllSinks(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range stored {
		out = append(out, events.Sink{ID: k.ID, Account: k.Account, URL: k.URL, Secret: k.Secret, PreviousSecret: k.PreviousSecret,
			Types: k.EventTypes, Enabled: k.Enabled, DisabledReason: k.DisabledReason, CreatedAt: k.CreatedAt})
	}
	members, err := ss.delegations(ctx)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	ss.members = members
	ss.mu.Unlock()
	return out, nil
}

func (ss *sinkSource) delegations(ctx context.Context) (map[string]map[string]bool, error) {
	orgs, err := ss.st.ListOrganizations(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{}
	for _, o := range orgs {
		if o.DelegatedAdmin == "" {
			continue
		}
		ms, err := ss.st.OrganizationMembers(ctx, o.ID)
		if err != nil {
			return nil, err
		}
		set := map[string]bool{}
		for _, m := range ms {
			set[m.ID] = true
		}
		out[o.DelegatedAdmin] = set
	}
	return out, nil
}

func (ss *sinkSource) DisableSink(ctx context.Context, id, reason string) error {
	if strings.HasPrefix(id, "config-") {
		return ss.config.DisableSink(ctx, id, reason)
	}
	return ss.st.DisableSink(ctx, id, reason)
}

// visible: configured webhooks see every account; a sink sees its account's events, and a
// delegated admin's sink its associated members' too.
func (ss *sinkSource) visible(sinkAccount, eventAccount string) bool {
	if sinkAccount == allAccounts || sinkAccount == eventAccount {
		return true
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.members[sinkAccount][eventAccount]
}

var _ events.SinkStore = (*sinkSource)(nil)

// notifyDispatcher wakes the running dispatcher (if any) after a change that may make events due.
func (s *Server) notifyDispatcher() {
	if d := s.mgmt.dispatcher.Load(); d != nil {
		d.Notify()
	}
}

func configSinks(hooks []Webhook) ([]events.Sink, error) {
	var sinks []events.Sink
	for i, w := range hooks {
		if err := events.ValidateURL(w.URL, events.AddressGuard{}); err != nil {
			return nil, fmt.Errorf("webhook %d: %w", i+1, err)
		}
		sinks = append(sinks, events.Sink{ID: fmt.Sprintf("config-%d", i+1), Account: allAccounts, URL: w.URL,
			Secret: w.Secret, Types: w.Types, Enabled: true})
	}
	return sinks, nil
}
