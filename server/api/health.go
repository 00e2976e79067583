package api

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Readiness holds named checks run by GET /readyz (database reachable, migrations applied,
// vulnerability DB loaded…). A server that is shutting down calls SetDraining so balancers stop
// sending before connections close.
type Readiness struct {
	mu       sync.RWMutex
	checks   map[string]func(context.Context) error
	draining atomic.Bool
	// Timeout bounds each check (default 2s).
	Timeout time.Duration
}

// Add registers (or replaces) a check.
func (rd *Readiness) Add(name string, check func(context.Context) error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.checks == nil {
		rd.checks = map[string]func(context.Context) error{}
	}
	rd.checks[name] = check
}

// SetDraining makes readiness fail from now on.
func (rd *Readiness) SetDraining() { rd.draining.Store(true) }

// Check runs every check concurrently; the result maps names to "ok" or the error text.
func (rd *Readiness) Check(ctx context.Context) (map[string]string, bool) {
	rd.mu.RLock()
	names := make([]string, 0, len(rd.checks))
	for n := range rd.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	fns := make([]func(context.Context) error, len(names))
	for i, n := range names {
		fns[i] = rd.checks[n]
	}
	rd.mu.RUnlock()
	timeout := rd.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			errs[i] = runCheck(cctx, fn)
		}()
	}
	wg.Wait()
	out := map[string]string{}
	ok := !rd.draining.Load()
	if !ok {
		out["draining"] = "server is shutting down"
	}
	for i, n := range names {
		if errs[i] != nil {
			out[n], ok = errs[i].Error(), false
		} else {
			out[n] = "ok"
		}
	}
	return out, ok
}

// runCheck returns when the check does or the context ends, whichever is first.
func runCheck(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var statusSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"status": map[string]any{"type": "string"},
		"checks": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
	},
	"required": []string{"status"},
}

func (rt *Router) healthz(w http.ResponseWriter, r *http.Request) error {
	return WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (rt *Router) readyz(w http.ResponseWriter, r *http.Request) error {
	checks, ok := rt.Ready.Check(r.Context())
	status, code := "ok", http.StatusOK
	if !ok {
		status, code = "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	return WriteJSON(w, code, map[string]any{"status": status, "checks": checks})
}
