package app

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/server/store"
)

// observeFlush is how long an unchanged resubmission's observation times (coverage lastScannedAt,
// findings' lastObservedAt) wait in memory before they are written together with the others'.
const observeFlush = 200 * time.Millisecond

// observations batches the only writes of unchanged resubmissions, so that such a submission takes
// no write transaction: on SQLite it never queues behind a large one, on PostgreSQL it costs no
// commit. Reads that show those times write the pending ones first (flushObserved), so a client
// reads what it submitted; a crash loses at most observeFlush of observation times, nothing else.
type observations struct {
	mu      sync.Mutex
	pending map[[3]string]store.Observation
	// flushMu orders flushes, so that a batch taken later is never written before one taken earlier.
	flushMu sync.Mutex
	stop    chan struct{}
	done    chan struct{}
}

// noteObserved records an observation; a later one of the same resource and scan type replaces it.
func (s *Server) noteObserved(o store.Observation) {
	s.obs.mu.Lock()
	defer s.obs.mu.Unlock()
	if s.obs.pending == nil {
		s.obs.pending = map[[3]string]store.Observation{}
	}
	k := [3]string{o.Account, o.ResourceID, o.ScanType}
	if prev, ok := s.obs.pending[k]; ok {
		if prev.At.After(o.At) {
			o.At = prev.At
		}
		if prev.FindingsBefore.After(o.FindingsBefore) {
			o.FindingsBefore = prev.FindingsBefore
		}
	}
	s.obs.pending[k] = o
}

// flushObserved writes the pending observations. On failure they are kept for the next attempt
// (Observe only moves times forward, so writing one twice or late is harmless).
func (s *Server) flushObserved(ctx context.Context) error {
	s.obs.flushMu.Lock()
	defer s.obs.flushMu.Unlock()
	s.obs.mu.Lock()
	batch := s.obs.pending
	s.obs.pending = nil
	s.obs.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	list := make([]store.Observation, 0, len(batch))
	for _, o := range batch {
		list = append(list, o)
	}
	if err := s.Store.Observe(ctx, list); err != nil {
		for _, o := range list {
			s.noteObserved(o)
		}
		return err
	}
	return nil
}

// runObserver writes the pending observation times and audit records every observeFlush until
// Close, then once more.
func (s *Server) runObserver() {
	defer close(s.obs.done)
	t := time.NewTicker(observeFlush)
	defer t.Stop()
	for {
		select {
		case <-s.obs.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.flushObserved(ctx); err != nil {
				s.log.Error("writing observation times at close", "error", err)
			}
			if err := s.audit.flush(ctx); err != nil {
				s.log.Error("audit records lost at close", "error", err)
			}
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := s.flushObserved(ctx); err != nil {
				s.log.Warn("writing observation times (kept for the next attempt)", "error", err)
			}
			if err := s.audit.flush(ctx); err != nil {
				s.log.Warn("writing audit records", "error", err)
			}
			cancel()
		}
	}
}

// beforeRead writes the pending observations before a read that shows observation times, so that
// a client reads the times of what it submitted. A failure is logged, not the read's: the read
// then shows times at most observeFlush old.
func (s *Server) beforeRead(ctx context.Context) {
	if err := s.flushObserved(ctx); err != nil {
		s.log.Warn("writing observation times before a read", "error", err)
	}
}
