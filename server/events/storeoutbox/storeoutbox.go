// Package storeoutbox adapts the server store's event-level outbox (server/store: one delivery state
// per event, keyed by sequence number) to events.Outbox, which settles each (event, sink) pair.
//
// The store keeps no per-sink state, so this adapter keeps it in memory: within one process a
// retry skips the sinks that already received the event. After a restart, or when another server
// process claims the event after a lease expired, every matching sink receives it again. That is
// still at-least-once delivery (receivers deduplicate by event id), only with more duplicates than
// a per-sink table would give. When an event is complete it is marked delivered in the store,
// unless some sink had it dead-lettered: then the whole event is dead-lettered with the reasons
// of each failed sink and the list of sinks that did receive it, so it shows in the dead-letter
// list; retrying it there resends to every sink.
package storeoutbox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/store"
)

// Store is what the adapter needs of *store.Store.
type Store interface {
	ClaimEvents(ctx context.Context, batch int, lease time.Duration) ([]store.OutboxRecord, error)
	MarkDelivered(ctx context.Context, seqs ...int64) error
	MarkFailed(ctx context.Context, seq int64, next time.Time, cause string) error
	DeadLetter(ctx context.Context, seq int64, cause string) error
}

// forget is how long per-sink state of an event that was never completed here (another process
// took it over) is kept.
const forget = 48 * time.Hour

// Outbox implements events.Outbox over a Store.
type Outbox struct {
	st  Store
	now func() time.Time

	mu     sync.Mutex
	events map[string]*state
}

type state struct {
	seq       int64
	delivered []string
	dead      []string // "sink: reason"
	touched   time.Time
}

var _ events.Outbox = (*Outbox)(nil)

// New returns an adapter over st.
func New(st Store) *Outbox {
	return &Outbox{st: st, now: time.Now, events: map[string]*state{}}
}

func (o *Outbox) ClaimEvents(ctx context.Context, max int, lease time.Duration) ([]events.Claim, error) {
	recs, err := o.st.ClaimEvents(ctx, max, lease)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for id, s := range o.events {
		if now.Sub(s.touched) > forget {
			delete(o.events, id)
		}
	}
	out := make([]events.Claim, 0, len(recs))
	for _, r := range recs {
		s := o.events[r.Event.ID]
		if s == nil || s.seq != r.Seq {
			s = &state{seq: r.Seq}
			o.events[r.Event.ID] = s
		}
		s.touched = now
		c := events.Claim{Event: r.Event, Attempts: r.Attempts}
		c.Settled = append(slices.Clone(s.delivered), sinkIDs(s.dead)...)
		out = append(out, c)
	}
	return out, nil
}

func sinkIDs(dead []string) []string {
	out := make([]string, len(dead))
	for i, d := range dead {
		out[i], _, _ = strings.Cut(d, ": ")
	}
	return out
}

func (o *Outbox) get(eventID string) (*state, error) {
	s := o.events[eventID]
	if s == nil {
		return nil, fmt.Errorf("storeoutbox: event %s was not claimed by this process", eventID)
	}
	s.touched = o.now()
	return s, nil
}

func (o *Outbox) MarkDelivered(_ context.Context, eventID, sinkID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, err := o.get(eventID)
	if err != nil {
		return err
	}
	if !slices.Contains(s.delivered, sinkID) {
		s.delivered = append(s.delivered, sinkID)
	}
	return nil
}

func (o *Outbox) DeadLetter(_ context.Context, eventID, sinkID, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, err := o.get(eventID)
	if err != nil {
		return err
	}
	if !slices.Contains(sinkIDs(s.dead), sinkID) {
		s.dead = append(s.dead, sinkID+": "+reason)
	}
	return nil
}

func (o *Outbox) MarkFailed(ctx context.Context, eventID string, next time.Time, lastErr string) error {
	o.mu.Lock()
	s, err := o.get(eventID)
	o.mu.Unlock()
	if err != nil {
		return err
	}
	return o.st.MarkFailed(ctx, s.seq, next, lastErr)
}

func (o *Outbox) Complete(ctx context.Context, eventID string) error {
	o.mu.Lock()
	s, err := o.get(eventID)
	if err == nil {
		delete(o.events, eventID)
	}
	o.mu.Unlock()
	if err != nil {
		return err
	}
	if len(s.dead) == 0 {
		return o.st.MarkDelivered(ctx, s.seq)
	}
	cause := strings.Join(s.dead, "; ")
	if len(s.delivered) > 0 {
		cause += "; delivered to " + strings.Join(s.delivered, ", ")
	}
	return o.st.DeadLetter(ctx, s.seq, cause)
}
