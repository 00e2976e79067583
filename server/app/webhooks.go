package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/store"
)

// storeOutbox lets the webhook dispatcher work on the store's transactional outbox. The store
// settles whole events; which sinks already got an event during its current round of retries is
// kept here, in memory: after a crash those sinks may get the event once more, which at-least-once
// delivery allows (receivers drop repeated event ids).
type storeOutbox struct {
	st *store.Store
	mu sync.Mutex
	// per event id: its outbox sequence, the sinks settled so far, and dead-letter reasons
	seq     map[string]int64
	settled map[string][]string
	dead    map[string][]string
}

func newStoreOutbox(st *store.Store) *storeOutbox {
	return &storeOutbox{st: st, seq: map[string]int64{}, settled: map[string][]string{}, dead: map[string][]string{}}
}

func (o *storeOutbox) ClaimEvents(ctx context.Context, max int, lease time.Duration) ([]events.Claim, error) {
	recs, err := o.st.ClaimEvents(ctx, max, lease)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]events.Claim, 0, len(recs))
	for _, r := range recs {
		o.seq[r.Event.ID] = r.Seq
		out = append(out, events.Claim{Event: r.Event, Attempts: r.Attempts, Settled: append([]string(nil), o.settled[r.Event.ID]...)})
	}
	return out, nil
}

func (o *storeOutbox) MarkDelivered(_ context.Context, eventID, sinkID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.settled[eventID] = append(o.settled[eventID], sinkID)
	return nil
}

func (o *storeOutbox) DeadLetter(_ context.Context, eventID, sinkID, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.settled[eventID] = append(o.settled[eventID], sinkID)
	o.dead[eventID] = append(o.dead[eventID], sinkID+": "+reason)
	return nil
}

func (o *storeOutbox) MarkFailed(ctx context.Context, eventID string, next time.Time, lastErr string) error {
	o.mu.Lock()
	seq, ok := o.seq[eventID]
	o.mu.Unlock()
	if !ok {
		return nil // claimed by an earlier process; its lease will run out
	}
	return o.st.MarkFailed(ctx, seq, next, lastErr)
}

func (o *storeOutbox) Complete(ctx context.Context, eventID string) error {
	o.mu.Lock()
	seq, ok := o.seq[eventID]
	dead := o.dead[eventID]
	delete(o.seq, eventID)
	delete(o.settled, eventID)
	delete(o.dead, eventID)
	o.mu.Unlock()
	if !ok {
		return nil
	}
	if len(dead) > 0 {
		return o.st.DeadLetter(ctx, seq, strings.Join(dead, "; "))
	}
	return o.st.MarkDelivered(ctx, seq)
}

// Webhook is a webhook endpoint given in the server's configuration; it receives every account's
// events. (Per-account sinks managed through the API come with the webhook endpoints.)
type Webhook struct {
	URL    string
	Secret string
	Types  []string
}

// allAccounts is the sink account of configured webhooks.
const allAccounts = "*"

func (s *Server) dispatcher() (*events.Dispatcher, error) {
	var sinks []events.Sink
	for i, w := range s.cfg.Webhooks {
		if err := events.ValidateURL(w.URL, events.AddressGuard{}); err != nil {
			return nil, err
		}
		sinks = append(sinks, events.Sink{ID: fmt.Sprintf("config-%d", i+1), Account: allAccounts, URL: w.URL,
			Secret: w.Secret, Types: w.Types, Enabled: true})
	}
	return events.NewDispatcher(s.outbox, events.NewMemSinks(sinks...), events.Config{
		Source: "urn:vigil:" + firstNonEmpty(s.cfg.Hostname, "server"),
		Visible: func(sinkAccount, eventAccount string) bool {
			return sinkAccount == allAccounts || sinkAccount == eventAccount
		},
		OnError: func(err error) { s.log.Error("webhook delivery", "error", err) },
		Now:     s.now,
	})
}

// DeliverEvents runs webhook delivery until ctx ends. Without configured webhooks events stay in
// the outbox (readable, and deliverable once a webhook is configured).
func (s *Server) DeliverEvents(ctx context.Context) error {
	if len(s.cfg.Webhooks) == 0 {
		return nil
	}
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
