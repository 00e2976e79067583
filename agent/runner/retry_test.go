package runner

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/agenttest"
	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/state"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/agents"
)

// counting counts the upload calls that reach the server.
type counting struct {
	API
	n atomic.Int64
}

func (c *counting) Upload(ctx context.Context, gz []byte) (*protocol.UploadResponse, error) {
	c.n.Add(1)
	return c.API.Upload(ctx, gz)
}

// TestUploadHonoursRetryAfter: the real server's upload admission answers 503 with Retry-After
// (15 s) while its only slot is taken; the agent waits that long plus jitter, not its own 3.75 s
// first backoff, and then gets through.
func TestUploadHonoursRetryAfter(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var hold atomic.Bool
	var submitted atomic.Int64
	hold.Store(true)
	rs := agenttest.Real(t, agenttest.RealOptions{Config: func(c *agents.Config) {
		c.MaxUploads, c.UploadWait = 1, 50*time.Millisecond
		c.Sink = agents.SinkFunc(func(context.Context, model.Resource, *model.Inventory) error {
			if hold.Load() {
				entered <- struct{}{}
				<-release
			}
			submitted.Add(1)
			return nil
		})
	}})
	h := &host{pkgs: []model.Package{deb("bash", "5.2.15-2+b7")}}
	r1 := enrolledAt(t, rs.URL, rs.Fingerprint, rs.Token(t, 1), h)
	r2 := enrolledAt(t, rs.URL, rs.Fingerprint, rs.Token(t, 1), h)
	ctx := context.Background()
	for _, r := range []*Runner{r1, r2} {
		if err := r.CollectAndStore(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	unblock := func() { once.Do(func() { hold.Store(false); close(release) }) }
	t.Cleanup(unblock) // a failing test must not leave the server's handler (and its Close) waiting
	done := make(chan error, 1)
	go func() { done <- r1.Flush(ctx) }()
	<-entered // r1's upload holds the only slot
	err := r2.Flush(ctx)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 503 || se.RetryAfter != 15*time.Second {
		t.Fatalf("r2's upload while the slot is taken: %v (%+v)", err, se)
	}
	clk := r2.Clock.(*fakeClock)
	// Rand is 0.5: 15 s + a quarter of 15 s.
	if wait := r2.nextTry.Sub(clk.Now()); wait != 18750*time.Millisecond {
		t.Fatalf("r2 waits %v after Retry-After 15, want 18.75 s", wait)
	}
	unblock()
	if err := <-done; err != nil {
		t.Fatalf("r1: %v", err)
	}
	clk.Advance(18 * time.Second)
	if err := r2.Flush(ctx); !errors.Is(err, errWaiting) {
		t.Fatalf("r2 before the wait elapsed: %v", err)
	}
	clk.Advance(time.Second)
	if err := r2.Flush(ctx); err != nil {
		t.Fatalf("r2 once the wait elapsed: %v", err)
	}
	if n := submitted.Load(); n != 2 {
		t.Fatalf("%d inventories submitted, want 2", n)
	}
}

// TestUploadHonoursRateLimit: the real API router's per-certificate rate limit answers 429 with
// Retry-After 1; the agent waits 1 s plus jitter.
func TestUploadHonoursRateLimit(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{Rate: 0.5, Burst: 1})
	h := &host{pkgs: []model.Package{deb("bash", "5.2.15-2+b7")}}
	r := enrolledAt(t, rs.URL, rs.Fingerprint, rs.Token(t, 1), h)
	ctx := context.Background()
	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Heartbeat(ctx); err != nil { // spends the certificate's burst
		t.Fatal(err)
	}
	err := r.Flush(ctx)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 429 || se.RetryAfter != 2*time.Second {
		t.Fatalf("upload right after a heartbeat: %v (%+v)", err, se)
	}
	clk := r.Clock.(*fakeClock)
	if wait := r.nextTry.Sub(clk.Now()); wait != 2500*time.Millisecond {
		t.Fatalf("waits %v after Retry-After 2, want 2.5 s", wait)
	}
}

// TestUploadRefusedScanNotEnabled: the real server refuses the uploads of an account without host
// scanning. The agent records why (heartbeat errors, the state directory), does not retry for
// half an hour or more, even when new snapshots come, and sends at once on COLLECT_NOW once an
// administrator enabled host scanning.
func TestUploadRefusedScanNotEnabled(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{Enabled: []string{model.ResourceImage}})
	h := &host{pkgs: []model.Package{deb("bash", "5.2.15-2+b7")}}
	r := enrolledAt(t, rs.URL, rs.Fingerprint, rs.Token(t, 1), h)
	api := &counting{API: r.API}
	r.API = api
	clk := r.Clock.(*fakeClock)
	ctx := context.Background()
	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	err := r.Flush(ctx)
	if !client.ScanNotEnabled(err) {
		t.Fatalf("upload for an account without host scanning: %v", err)
	}
	if wait := r.nextTry.Sub(clk.Now()); wait != 45*time.Minute {
		t.Fatalf("waits %v after the refusal, want 45 min (Rand 0.5)", wait)
	}
	if errs := r.errors(); len(errs) != 1 || !strings.Contains(errs[0], "has not enabled host scanning") ||
		!strings.Contains(errs[0], `"scanTypes": ["host"]`) {
		t.Fatalf("heartbeat errors %q", errs)
	}
	rec, lerr := r.State.LoadRefused()
	if lerr != nil || rec == nil || !rec.RetryAt.Equal(r.nextTry.UTC()) {
		t.Fatalf("refusal record %+v %v", rec, lerr)
	}
	if c := rs.Coverage(t, r.Config.AgentID); c.Status != model.CoverageInactive || c.Reason != model.ReasonPendingDisable {
		t.Fatalf("coverage %s/%s", c.Status, c.Reason)
	}
	if !r.State.Exists(state.PendingFile) {
		t.Fatal("the refused inventory was dropped")
	}
	// A restarted agent keeps the wait.
	r2 := &Runner{State: r.State, Config: r.Config, API: api, Collect: h.collect, Clock: clk}
	r2.init()
	r2.resumeRefusal()
	if err := r2.Flush(ctx); !errors.Is(err, errWaiting) || !r2.nextTry.Equal(r.nextTry.UTC()) {
		t.Fatalf("restarted during the refusal: %v, next try %v (want %v)", err, r2.nextTry, r.nextTry)
	}
	// New snapshots (the host changes, the interval passes) do not cut the wait short.
	for i := 0; i < 5; i++ {
		h.pkgs = append(h.pkgs, deb("pkg"+string(rune('a'+i)), "1.0-1"))
		clk.Advance(5 * time.Minute)
		if err := r.CollectAndStore(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); !errors.Is(err, errWaiting) {
			t.Fatalf("flush %d during the refusal: %v", i, err)
		}
	}
	if n := api.n.Load(); n != 1 {
		t.Fatalf("%d uploads sent during the refusal, want 1", n)
	}
	// Enabled; an administrator asks for a collection.
	rs.SetEnabled(t, model.ResourceHost)
	if res := r.Handle(ctx, protocol.Instruction{ID: "ins-1", Type: protocol.InstructionCollectNow}); !res.OK {
		t.Fatalf("COLLECT_NOW: %+v", res)
	}
	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("upload once enabled: %v", err)
	}
	if n := rs.Submitted.Load(); n != 1 {
		t.Fatalf("%d inventories submitted, want 1", n)
	}
	if rec, _ := r.State.LoadRefused(); rec != nil || len(r.errors()) != 0 {
		t.Fatalf("after the accepted upload: record %+v, errors %q", rec, r.errors())
	}
	if c := rs.Coverage(t, r.Config.AgentID); c.Reason != model.ReasonSuccessful {
		t.Fatalf("coverage once accepted: %s/%s", c.Status, c.Reason)
	}
	// A later refusal after the wait elapses is tried again, on time, without COLLECT_NOW.
	rs.SetEnabled(t)
	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); !client.ScanNotEnabled(err) {
		t.Fatalf("%v", err)
	}
	clk.Advance(45 * time.Minute)
	before := api.n.Load()
	if err := r.Flush(ctx); !client.ScanNotEnabled(err) || api.n.Load() != before+1 {
		t.Fatalf("retry after the wait: %v, %d uploads", err, api.n.Load()-before)
	}
}

func TestRetryWaits(t *testing.T) {
	tests := []struct {
		ra   time.Duration
		r    float64
		want time.Duration
	}{
		{15 * time.Second, 0, 15 * time.Second},
		{15 * time.Second, 0.5, 18750 * time.Millisecond},
		{0, 0, time.Second}, // never sooner than a second
		{time.Hour, 0, MaxRetryAfter},
		{time.Hour, 0.999999, MaxRetryAfter * 3 / 2},
	}
	for _, tc := range tests {
		if got := RetryAfterWait(tc.ra, tc.r); got.Round(time.Millisecond) != tc.want {
			t.Errorf("RetryAfterWait(%v, %v) = %v, want %v", tc.ra, tc.r, got, tc.want)
		}
	}
	if lo, hi := NotEnabledWait(0), NotEnabledWait(0.999999); lo != 30*time.Minute || hi.Round(time.Second) != time.Hour {
		t.Errorf("NotEnabledWait spans %v to %v, want 30 min to 1 h", lo, hi)
	}
}
