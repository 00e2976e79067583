package events

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Claim is one outbox event handed to a dispatcher under a lease.
type Claim struct {
	Event model.OutboxEvent
	// Attempts counts the delivery rounds already made for the event (MarkFailed calls).
	Attempts int
	// Settled lists the sinks that already received the event or had it dead-lettered; this
	// round skips them, so a retry for one failing sink does not resend to the others.
	Settled []string
}

// Outbox is the dispatcher's view of the transactional outbox. The server's store implements it
// on SQLite and PostgreSQL; MemOutbox implements it in memory.
//
// Semantics an implementation must keep:
//   - ClaimEvents returns up to max events that are due (next attempt time reached, not finished)
//     and not leased, oldest first, and leases them until now+lease. Other dispatchers (other
//     server processes) must not claim a leased event; with PostgreSQL use SELECT ... FOR UPDATE
//     SKIP LOCKED and an UPDATE of the lease column in one transaction. An event whose lease ran
//     out (its dispatcher died) is due again: that is what makes delivery at-least-once.
//   - MarkDelivered and DeadLetter settle one (event, sink) pair; later claims list the sink in
//     Claim.Settled. DeadLetter keeps the event and the reason for an operator to inspect/replay.
//   - MarkFailed ends a round that left some sink unsettled: it releases the lease, increments
//     Attempts, stores the error and makes the event due again at nextAttempt.
//   - Complete ends the event: every matching sink was settled. The row may then be deleted or
//     kept for a retention period.
//
// All methods are idempotent: a dispatcher whose lease expired may still call them.
type Outbox interface {
	ClaimEvents(ctx context.Context, max int, lease time.Duration) ([]Claim, error)
	MarkDelivered(ctx context.Context, eventID, sinkID string) error
	DeadLetter(ctx context.Context, eventID, sinkID, reason string) error
	MarkFailed(ctx context.Context, eventID string, nextAttempt time.Time, lastErr string) error
	Complete(ctx context.Context, eventID string) error
}

// DeadLetter is one (event, sink) delivery given up on.
type DeadLetter struct {
	Event    model.OutboxEvent
	SinkID   string
	Reason   string
	Attempts int
}

// MemOutbox is an in-memory Outbox for tests and single-process tools.
type MemOutbox struct {
	mu    sync.Mutex
	now   func() time.Time
	seq   int
	byID  map[string]*memEntry
	dead  []DeadLetter
	calls []string
}

type memEntry struct {
	ev        model.OutboxEvent
	seq       int
	attempts  int
	due       time.Time
	leaseTill time.Time
	settled   []string
	done      bool
	lastErr   string
}

// NewMemOutbox returns an empty outbox reading time from now (time.Now when nil).
func NewMemOutbox(now func() time.Time) *MemOutbox {
	if now == nil {
		now = time.Now
	}
	return &MemOutbox{now: now, byID: map[string]*memEntry{}}
}

// Enqueue adds events, as the server's transaction would. An id already present is ignored,
// which is what a primary key does.
func (m *MemOutbox) Enqueue(evs ...model.OutboxEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		if _, ok := m.byID[ev.ID]; ok {
			continue
		}
		m.seq++
		m.byID[ev.ID] = &memEntry{ev: ev, seq: m.seq}
	}
}

func (m *MemOutbox) ClaimEvents(ctx context.Context, max int, lease time.Duration) ([]Claim, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var due []*memEntry
	for _, e := range m.byID {
		if !e.done && !now.Before(e.due) && !now.Before(e.leaseTill) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *memEntry) int {
		if c := a.ev.Time.Compare(b.ev.Time); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	if len(due) > max {
		due = due[:max]
	}
	out := make([]Claim, 0, len(due))
	for _, e := range due {
		e.leaseTill = now.Add(lease)
		out = append(out, Claim{Event: e.ev, Attempts: e.attempts, Settled: slices.Clone(e.settled)})
	}
	return out, nil
}

func (m *MemOutbox) entry(eventID string) (*memEntry, error) {
	e, ok := m.byID[eventID]
	if !ok {
		return nil, fmt.Errorf("events: outbox has no event %q", eventID)
	}
	return e, nil
}

func (m *MemOutbox) MarkDelivered(_ context.Context, eventID, sinkID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.entry(eventID)
	if err != nil {
		return err
	}
	m.calls = append(m.calls, "delivered "+eventID+" "+sinkID)
	if !slices.Contains(e.settled, sinkID) {
		e.settled = append(e.settled, sinkID)
	}
	return nil
}

func (m *MemOutbox) DeadLetter(_ context.Context, eventID, sinkID, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.entry(eventID)
	if err != nil {
		return err
	}
	m.calls = append(m.calls, "dead "+eventID+" "+sinkID)
	if !slices.Contains(e.settled, sinkID) {
		e.settled = append(e.settled, sinkID)
		m.dead = append(m.dead, DeadLetter{Event: e.ev, SinkID: sinkID, Reason: reason, Attempts: e.attempts + 1})
	}
	return nil
}

func (m *MemOutbox) MarkFailed(_ context.Context, eventID string, next time.Time, lastErr string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.entry(eventID)
	if err != nil {
		return err
	}
	m.calls = append(m.calls, "failed "+eventID)
	e.attempts++
	e.due, e.leaseTill, e.lastErr = next, time.Time{}, lastErr
	return nil
}

func (m *MemOutbox) Complete(_ context.Context, eventID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.entry(eventID)
	if err != nil {
		return err
	}
	m.calls = append(m.calls, "complete "+eventID)
	e.done, e.leaseTill = true, time.Time{}
	return nil
}

// Pending returns the ids of events not yet complete, oldest first.
func (m *MemOutbox) Pending() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var es []*memEntry
	for _, e := range m.byID {
		if !e.done {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *memEntry) int { return a.seq - b.seq })
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ev.ID
	}
	return ids
}

// State reports an event's attempts, next due time, last error and whether it is complete.
func (m *MemOutbox) State(eventID string) (attempts int, due time.Time, lastErr string, done bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[eventID]; ok {
		return e.attempts, e.due, e.lastErr, e.done
	}
	return 0, time.Time{}, "", false
}

// DeadLetters returns the dead-lettered deliveries in the order they happened.
func (m *MemOutbox) DeadLetters() []DeadLetter {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.dead)
}

// Calls returns the log of settling calls ("delivered <event> <sink>", "dead ...", "failed
// <event>", "complete <event>"), for tests.
func (m *MemOutbox) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// MemSinks is an in-memory SinkStore.
type MemSinks struct {
	mu    sync.Mutex
	sinks []Sink
}

// NewMemSinks returns a store holding copies of sinks.
func NewMemSinks(sinks ...Sink) *MemSinks {
	return &MemSinks{sinks: slices.Clone(sinks)}
}

func (m *MemSinks) ListSinks(ctx context.Context) ([]Sink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sinks), nil
}

func (m *MemSinks) DisableSink(_ context.Context, id, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.sinks {
		if m.sinks[i].ID == id {
			m.sinks[i].Enabled, m.sinks[i].DisabledReason = false, reason
			return nil
		}
	}
	return fmt.Errorf("events: no sink %q", id)
}

// Put adds or replaces a sink.
func (m *MemSinks) Put(s Sink) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.sinks {
		if m.sinks[i].ID == s.ID {
			m.sinks[i] = s
			return
		}
	}
	m.sinks = append(m.sinks, s)
}

// Get returns a sink by id.
func (m *MemSinks) Get(id string) (Sink, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sinks {
		if s.ID == id {
			return s, true
		}
	}
	return Sink{}, false
}
