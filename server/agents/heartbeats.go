package agents

import (
	"context"
	"sync"
	"time"
)

// DefaultHeartbeatFlush is how long a routine heartbeat's timestamp may wait in memory before it
// is written, together with every other one that arrived meanwhile.
const DefaultHeartbeatFlush = 2 * time.Second

// heartbeatBatch defers routine heartbeats — nothing but the time changed — and writes them in
// one transaction: 5,000 agents at one heartbeat a minute are 83 single-row writes a second, each
// taking SQLite's one write lock, against one batch every 2 s. Heartbeats that change the agent's
// state, version, sensors or errors are written at once. A crash loses at most the last 2 s of
// timestamps, well within the two heartbeat periods after which an agent counts as lost.
type heartbeatBatch struct {
	mu      sync.Mutex
	pending map[string]time.Time
	timer   *time.Timer
	flushMu sync.Mutex // one flush at a time, so timestamps reach the store in order
}

// queueHeartbeat records that agent id was heard from at t, to be written within the flush delay.
func (s *Service) queueHeartbeat(id string, t time.Time) {
	b := &s.hb
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string]time.Time{}
	}
	if t.After(b.pending[id]) {
		b.pending[id] = t
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(s.cfg.HeartbeatFlush, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.flushHeartbeats(ctx); err != nil {
				s.log.Error("writing agent heartbeats", "error", err)
			}
		})
	}
}

// flushHeartbeats writes the pending heartbeats. Readers that show or judge heartbeats (the admin
// API, Refresh) call it first, so this process never shows an older heartbeat than it received.
func (s *Service) flushHeartbeats(ctx context.Context) error {
	b := &s.hb
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	batch := b.pending
	b.pending = nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.st.TouchHeartbeats(ctx, batch)
	if err != nil {
		// Put them back for the next flush rather than lose them.
		b.mu.Lock()
		for id, t := range batch {
			if t.After(b.pending[id]) {
				if b.pending == nil {
					b.pending = map[string]time.Time{}
				}
				b.pending[id] = t
			}
		}
		b.mu.Unlock()
	}
	return err
}
