package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// received is one request as a receiver saw it.
type received struct {
	ID, Attempt, ContentType string
	Env                      Envelope
	VerifyErr                error
}

// receiver is a webhook endpoint on 127.0.0.1 that verifies every request the way the README
// tells receivers to, then answers as respond says (200 when nil).
type receiver struct {
	srv     *httptest.Server
	secret  string
	now     func() time.Time
	respond func(n int, w http.ResponseWriter, r *http.Request) // n counts requests from 1

	mu       sync.Mutex
	got      []received
	inflight int
	peak     int
}

func newReceiver(t *testing.T, secret string, now func() time.Time) *receiver {
	rc := &receiver{secret: secret, now: now}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.inflight++
	rc.peak = max(rc.peak, rc.inflight)
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inflight--
		rc.mu.Unlock()
	}()
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxEnvelopeSize+1))
	rec := received{ID: r.Header.Get(HeaderEventID), Attempt: r.Header.Get(HeaderAttempt), ContentType: r.Header.Get("Content-Type")}
	rec.VerifyErr = Verify(r.Header.Get(HeaderSignature), body, rc.now(), 0, rc.secret)
	env, err := ParseEnvelope(body)
	if err != nil && rec.VerifyErr == nil {
		rec.VerifyErr = err
	}
	rec.Env = env
	rc.mu.Lock()
	rc.got = append(rc.got, rec)
	n := len(rc.got)
	rc.mu.Unlock()
	if rc.respond != nil {
		rc.respond(n, w, r)
	}
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *receiver) ids() []string {
	var ids []string
	for _, r := range rc.requests() {
		ids = append(ids, r.ID)
	}
	return ids
}

func event(id, account, typ string, at time.Time) model.OutboxEvent {
	return model.OutboxEvent{ID: id, Type: typ, Account: account, Subject: "res-" + id, Time: at,
		Data: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id))}
}

type harness struct {
	clk    *clock
	outbox *MemOutbox
	sinks  *MemSinks
	d      *Dispatcher

	mu       sync.Mutex
	attempts []Attempt
	errs     []error
}

func newHarness(t *testing.T, cfg Config, sinks ...Sink) *harness {
	t.Helper()
	h := &harness{clk: newClock(), sinks: NewMemSinks(sinks...)}
	h.outbox = NewMemOutbox(h.clk.Now)
	if cfg.Source == "" {
		cfg.Source = "urn:vigil:test"
	}
	if cfg.Now == nil {
		cfg.Now = h.clk.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = func() float64 { return 1 } // the top of the jitter range: deterministic
	}
	cfg.OnAttempt = func(a Attempt) {
		h.mu.Lock()
		h.attempts = append(h.attempts, a)
		h.mu.Unlock()
	}
	cfg.OnError = func(err error) {
		h.mu.Lock()
		h.errs = append(h.errs, err)
		h.mu.Unlock()
	}
	d, err := NewDispatcher(h.outbox, h.sinks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

func (h *harness) runOnce(t *testing.T) int {
	t.Helper()
	n, err := h.d.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) > 0 {
		t.Fatalf("dispatcher errors: %v", h.errs)
	}
	return n
}

func (h *harness) outcomes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, a := range h.attempts {
		out = append(out, fmt.Sprintf("%s/%s#%d:%s", a.EventID, a.SinkID, a.Number, a.Outcome))
	}
	slices.Sort(out)
	return out
}

func sink(id, account, url, secret string, types ...string) Sink {
	return Sink{ID: id, Account: account, URL: url, Secret: secret, Types: types, Enabled: true}
}

func TestDeliverAndRoute(t *testing.T) {
	clk := newClock()
	a := newReceiver(t, "sec-a", clk.Now)
	b := newReceiver(t, "sec-b", clk.Now)
	admin := newReceiver(t, "sec-admin", clk.Now)
	off := newReceiver(t, "sec-off", clk.Now)
	disabled := sink("off", "acct-a", off.srv.URL, "sec-off")
	disabled.Enabled = false
	h := newHarness(t, Config{
		// The delegated admin "acct-admin" sees acct-a's events; nobody else sees others'.
		Visible: func(sinkAcct, evAcct string) bool {
			return sinkAcct == evAcct || sinkAcct == "acct-admin" && evAcct == "acct-a"
		},
	},
		sink("a", "acct-a", a.srv.URL, "sec-a"),
		sink("b", "acct-b", b.srv.URL, "sec-b", "vigil.finding.*"),
		sink("admin", "acct-admin", admin.srv.URL, "sec-admin", model.EventFindingCreated),
		disabled,
	)
	h.clk = clk
	h.outbox.now = clk.Now
	t0 := clk.Now()
	h.outbox.Enqueue(
		event("e1", "acct-a", model.EventFindingCreated, t0),
		event("e2", "acct-a", model.EventCoverageChanged, t0.Add(time.Second)),
		event("e3", "acct-b", model.EventFindingClosed, t0.Add(2*time.Second)),
		event("e4", "acct-b", model.EventScanCompleted, t0.Add(3*time.Second)),
		event("e5", "acct-c", model.EventFindingCreated, t0.Add(4*time.Second)),
	)
	if n := h.runOnce(t); n != 5 {
		t.Fatalf("claimed %d, want 5", n)
	}
	check := func(name string, rc *receiver, want ...string) {
		t.Helper()
		got := rc.ids()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s received %v, want %v", name, got, want)
		}
		for _, r := range rc.requests() {
			if r.VerifyErr != nil {
				t.Errorf("%s: %s failed verification: %v", name, r.ID, r.VerifyErr)
			}
			if r.ContentType != ContentType || r.Attempt != "1" || r.Env.ID != r.ID || r.Env.Source != "urn:vigil:test" {
				t.Errorf("%s: request %+v", name, r)
			}
		}
	}
	check("a", a, "e1", "e2")
	check("b", b, "e3") // e4 filtered by type
	check("admin", admin, "e1")
	check("disabled", off)
	if p := h.outbox.Pending(); len(p) != 0 {
		t.Errorf("pending after delivery: %v", p)
	}
	// e5 had no sink at all and is complete without any attempt.
	if _, _, _, done := h.outbox.State("e5"); !done {
		t.Error("e5 not complete")
	}
	if n := h.runOnce(t); n != 0 {
		t.Errorf("second round claimed %d", n)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	rc.respond = func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "database is restarting", http.StatusServiceUnavailable)
		}
	}
	h := newHarness(t, Config{Now: clk.Now, BackoffBase: 10 * time.Second, BackoffCap: time.Minute}, sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingUpdated, clk.Now()))

	h.runOnce(t)
	attempts, due, lastErr, done := h.outbox.State("e1")
	// Rand is 1: the full ceiling, BackoffBase·2⁰.
	if attempts != 1 || !due.Equal(clk.Now().Add(10*time.Second)) || done || !strings.Contains(lastErr, "503") || !strings.Contains(lastErr, "database is restarting") {
		t.Fatalf("after 503: attempts=%d due=%s done=%v err=%q", attempts, due, done, lastErr)
	}
	if n := h.runOnce(t); n != 0 {
		t.Fatalf("claimed %d before the backoff ended", n)
	}
	clk.Advance(10 * time.Second)
	h.runOnce(t)
	attempts, due, _, _ = h.outbox.State("e1")
	if attempts != 2 || !due.Equal(clk.Now().Add(20*time.Second)) {
		t.Fatalf("after second 503: attempts=%d due=%s", attempts, due)
	}
	clk.Advance(20 * time.Second)
	h.runOnce(t)
	if _, _, _, done := h.outbox.State("e1"); !done {
		t.Fatal("not delivered on the third attempt")
	}
	var nums []string
	for _, r := range rc.requests() {
		if r.ID != "e1" || r.VerifyErr != nil {
			t.Errorf("request %+v", r)
		}
		nums = append(nums, r.Attempt)
	}
	if !slices.Equal(nums, []string{"1", "2", "3"}) {
		t.Errorf("attempt headers %v", nums)
	}
	want := []string{"e1/s1#1:retry", "e1/s1#2:retry", "e1/s1#3:delivered"}
	if got := h.outcomes(); !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}

func TestRetryAfter(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	rc.respond = func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}
	h := newHarness(t, Config{Now: clk.Now, Rand: func() float64 { return 0.5 }, BackoffBase: 10 * time.Second},
		sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	t0 := clk.Now()
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingUpdated, t0))
	h.runOnce(t)
	if _, due, _, _ := h.outbox.State("e1"); !due.Equal(t0.Add(120 * time.Second)) {
		t.Fatalf("due %s, want Retry-After 120s (not the 5s backoff)", due.Sub(t0))
	}
	// A new event for the same sink during the wait is deferred without a request.
	clk.Advance(60 * time.Second)
	h.outbox.Enqueue(event("e2", "acct", model.EventFindingUpdated, clk.Now()))
	h.runOnce(t)
	if got := len(rc.requests()); got != 1 {
		t.Fatalf("%d requests during Retry-After", got)
	}
	if _, due, _, _ := h.outbox.State("e2"); !due.Equal(t0.Add(120 * time.Second)) {
		t.Fatalf("e2 due %s, want the end of the sink's wait", due.Sub(t0))
	}
	clk.Advance(61 * time.Second)
	h.runOnce(t)
	if p := h.outbox.Pending(); len(p) != 0 {
		t.Fatalf("pending %v", p)
	}
	want := []string{"e1/s1#1:retry", "e1/s1#2:delivered", "e2/s1#1:deferred", "e2/s1#2:delivered"}
	if got := h.outcomes(); !slices.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"soon", 0}, {"30", 30 * time.Second},
		{"99999999999999999999", time.Hour}, {"7200", time.Hour},
		{"Mon, 23 Nov 2026 12:02:00 GMT", 2 * time.Minute},
		{"Mon, 23 Nov 2026 11:00:00 GMT", 0},
		{"Tue, 24 Nov 2026 12:00:00 GMT", time.Hour},
	} {
		if got := parseRetryAfter(tc.v, now, time.Hour); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestPermanentFailureDeadLetters(t *testing.T) {
	clk := newClock()
	bad := newReceiver(t, "s", clk.Now)
	bad.respond = func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"unknown field"}`, http.StatusUnprocessableEntity)
	}
	good := newReceiver(t, "s", clk.Now)
	h := newHarness(t, Config{Now: clk.Now}, sink("bad", "acct", bad.srv.URL, "s"), sink("good", "acct", good.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingClosed, clk.Now()))
	h.runOnce(t)
	dl := h.outbox.DeadLetters()
	if len(dl) != 1 || dl[0].SinkID != "bad" || dl[0].Event.ID != "e1" || !strings.Contains(dl[0].Reason, "422") ||
		!strings.Contains(dl[0].Reason, "unknown field") {
		t.Fatalf("dead letters %+v", dl)
	}
	if _, _, _, done := h.outbox.State("e1"); !done {
		t.Fatal("event not complete")
	}
	if len(bad.requests()) != 1 || len(good.requests()) != 1 {
		t.Fatalf("requests: bad %d good %d", len(bad.requests()), len(good.requests()))
	}
}

func TestGoneDisablesSink(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	rc.respond = func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) }
	h := newHarness(t, Config{Now: clk.Now, Concurrency: 1}, sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()),
		event("e2", "acct", model.EventFindingCreated, clk.Now().Add(time.Second)))
	h.runOnce(t)
	s, _ := h.sinks.Get("s1")
	if s.Enabled || !strings.Contains(s.DisabledReason, "410") {
		t.Fatalf("sink after 410: %+v", s)
	}
	// With one request at a time, e2 learns of the 410 without asking the receiver again.
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests after a 410", n)
	}
	if dl := h.outbox.DeadLetters(); len(dl) != 2 {
		t.Errorf("dead letters %+v", dl)
	}
	h.outbox.Enqueue(event("e3", "acct", model.EventFindingCreated, clk.Now()))
	h.runOnce(t)
	if n := len(rc.requests()); n != 1 {
		t.Errorf("disabled sink got more requests: %d", n)
	}
	// An operator re-enables it: deliveries resume.
	rc.respond = nil
	s.Enabled = true
	h.sinks.Put(s)
	h.outbox.Enqueue(event("e4", "acct", model.EventFindingCreated, clk.Now()))
	h.runOnce(t)
	if got := rc.ids(); !slices.Equal(got, []string{"e1", "e4"}) {
		t.Errorf("after re-enabling: %v", got)
	}
}

func TestSlowReceiverTimesOut(t *testing.T) {
	clk := newClock()
	release := make(chan struct{})
	rc := newReceiver(t, "s", clk.Now)
	rc.respond = func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	defer close(release)
	h := newHarness(t, Config{Now: clk.Now, Timeout: 200 * time.Millisecond}, sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()))
	start := time.Now()
	h.runOnce(t)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("round took %s with a 200ms timeout", el)
	}
	attempts, _, lastErr, done := h.outbox.State("e1")
	if attempts != 1 || done || !strings.Contains(lastErr, "deadline exceeded") {
		t.Fatalf("attempts=%d done=%v err=%q", attempts, done, lastErr)
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	rc.respond = func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }
	h := newHarness(t, Config{Now: clk.Now, MaxAttempts: 3, BackoffBase: time.Second}, sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()))
	for range 5 {
		h.runOnce(t)
		clk.Advance(time.Hour)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	dl := h.outbox.DeadLetters()
	if len(dl) != 1 || !strings.Contains(dl[0].Reason, "gave up after 3 attempts") || !strings.Contains(dl[0].Reason, "502") {
		t.Fatalf("dead letters %+v", dl)
	}
}

func TestSettledSinksAreNotResent(t *testing.T) {
	clk := newClock()
	ok := newReceiver(t, "s", clk.Now)
	flaky := newReceiver(t, "s", clk.Now)
	flaky.respond = func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
	h := newHarness(t, Config{Now: clk.Now}, sink("ok", "acct", ok.srv.URL, "s"), sink("flaky", "acct", flaky.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()))
	h.runOnce(t)
	clk.Advance(time.Hour)
	h.runOnce(t)
	if len(ok.requests()) != 1 || len(flaky.requests()) != 2 {
		t.Fatalf("requests: ok %d flaky %d", len(ok.requests()), len(flaky.requests()))
	}
	if _, _, _, done := h.outbox.State("e1"); !done {
		t.Fatal("not complete")
	}
}

func TestNetworkErrorRetries(t *testing.T) {
	// A port nobody listens on: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/hook"
	l.Close()
	h := newHarness(t, Config{}, sink("s1", "acct", url, "s"))
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, h.clk.Now()))
	h.runOnce(t)
	attempts, _, lastErr, done := h.outbox.State("e1")
	if attempts != 1 || done || !strings.Contains(lastErr, "refused") {
		t.Fatalf("attempts=%d done=%v err=%q", attempts, done, lastErr)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	clk := newClock()
	target := newReceiver(t, "s", clk.Now)
	rc := newReceiver(t, "s", clk.Now)
	rc.respond = func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL, http.StatusTemporaryRedirect)
	}
	h := newHarness(t, Config{Now: clk.Now}, sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()))
	h.runOnce(t)
	if n := len(target.requests()); n != 0 {
		t.Fatalf("redirect followed: target got %d requests", n)
	}
	if dl := h.outbox.DeadLetters(); len(dl) != 1 || !strings.Contains(dl[0].Reason, "307") {
		t.Fatalf("dead letters %+v", dl)
	}
}

func TestGuardRefusesAtDial(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	// A name, so URL validation passes and the check happens on the resolved address.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rc.srv.URL, "http://"))
	url := "http://localhost:" + port + "/hook"
	guard := AddressGuard{DenyLoopback: true}
	if err := ValidateURL(url, guard); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{Now: clk.Now, Guard: guard}, sink("s1", "acct", url, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()))
	h.runOnce(t)
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("guarded receiver got %d requests", n)
	}
	if dl := h.outbox.DeadLetters(); len(dl) != 1 || !strings.Contains(dl[0].Reason, "refused by the address guard") {
		t.Fatalf("dead letters %+v", dl)
	}
}

func TestUnencodableEventDeadLetters(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	h := newHarness(t, Config{Now: clk.Now}, sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(model.OutboxEvent{ID: "e1", Type: model.EventFindingCreated, Account: "acct", Data: json.RawMessage(`{`)})
	h.runOnce(t)
	if dl := h.outbox.DeadLetters(); len(dl) != 1 || !strings.Contains(dl[0].Reason, "not valid JSON") {
		t.Fatalf("dead letters %+v", dl)
	}
	if _, _, _, done := h.outbox.State("e1"); !done || len(rc.requests()) != 0 {
		t.Fatal("bad event was sent or left pending")
	}
}

func TestSinkNewerThanEventSkipped(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	s := sink("s1", "acct", rc.srv.URL, "s")
	s.CreatedAt = clk.Now()
	h := newHarness(t, Config{Now: clk.Now}, s)
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("old", "acct", model.EventFindingCreated, clk.Now().Add(-time.Minute)),
		event("new", "acct", model.EventFindingCreated, clk.Now()))
	h.runOnce(t)
	if got := rc.ids(); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("received %v", got)
	}
}

func TestSecretRotation(t *testing.T) {
	clk := newClock()
	oldRecv := newReceiver(t, "old-secret", clk.Now)
	newRecv := newReceiver(t, "new-secret", clk.Now)
	mk := func(id, url string) Sink {
		s := sink(id, "acct", url, "new-secret")
		s.PreviousSecret = "old-secret"
		return s
	}
	h := newHarness(t, Config{Now: clk.Now}, mk("o", oldRecv.srv.URL), mk("n", newRecv.srv.URL))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()))
	h.runOnce(t)
	for _, rc := range []*receiver{oldRecv, newRecv} {
		r := rc.requests()
		if len(r) != 1 || r[0].VerifyErr != nil {
			t.Fatalf("receiver with %s: %+v", rc.secret, r)
		}
	}
}

func TestConcurrencyBoundAndOrder(t *testing.T) {
	for _, conc := range []int{1, 3} {
		t.Run(strconv.Itoa(conc), func(t *testing.T) {
			clk := newClock()
			rc := newReceiver(t, "s", clk.Now)
			rc.respond = func(int, http.ResponseWriter, *http.Request) { time.Sleep(20 * time.Millisecond) }
			h := newHarness(t, Config{Now: clk.Now, Concurrency: conc, Batch: 12}, sink("s1", "acct", rc.srv.URL, "s"))
			h.outbox.now = clk.Now
			var want []string
			// Enqueued out of order: the outbox hands them out by event time.
			for i := 11; i >= 0; i-- {
				id := fmt.Sprintf("e%02d", i)
				h.outbox.Enqueue(event(id, "acct", model.EventFindingUpdated, clk.Now().Add(time.Duration(i)*time.Second)))
				want = append([]string{id}, want...)
			}
			h.runOnce(t)
			rc.mu.Lock()
			peak := rc.peak
			rc.mu.Unlock()
			if peak > conc {
				t.Errorf("peak %d concurrent requests, bound %d", peak, conc)
			}
			got := rc.ids()
			if conc == 1 && !slices.Equal(got, want) {
				t.Errorf("order with Concurrency 1: %v", got)
			}
			if len(got) != 12 {
				t.Errorf("%d requests", len(got))
			}
		})
	}
}

func TestRunStopsOnCancelWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		started := make(chan struct{}, 16)
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // until the body is read, the server does not notice a hang-up
			started <- struct{}{}
			<-r.Context().Done() // a receiver that never answers
		}))
		defer rc.Close()
		fast := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		defer fast.Close()

		outbox := NewMemOutbox(nil)
		sinks := NewMemSinks(sink("stuck", "acct", rc.URL, "s"), sink("fast", "acct", fast.URL, "s"))
		d, err := NewDispatcher(outbox, sinks, Config{Source: "urn:vigil:test", PollInterval: 10 * time.Millisecond, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, time.Now()))
		d.Notify()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("no request reached the receiver")
		}
		// Cancel only once the fast sink's delivery was recorded: it must be kept.
		for end := time.Now().Add(5 * time.Second); !slices.Contains(outbox.Calls(), "delivered e1 fast"); {
			if time.Now().After(end) {
				t.Fatalf("fast delivery not recorded: %v", outbox.Calls())
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not stop after cancel")
		}
		// The stuck delivery stays leased for a later claim: no failure, no completion.
		if slices.ContainsFunc(outbox.Calls(), func(c string) bool { return strings.HasPrefix(c, "failed") || strings.HasPrefix(c, "complete") }) {
			t.Errorf("stopped round settled the stuck delivery: %v", outbox.Calls())
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestRunKeepsGoingAfterOutboxErrors(t *testing.T) {
	failing := &flakyOutbox{MemOutbox: NewMemOutbox(nil), fail: 2}
	var mu sync.Mutex
	var errs []error
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	d, err := NewDispatcher(failing, NewMemSinks(sink("s", "acct", srv.URL, "x")), Config{
		Source: "urn:vigil:test", PollInterval: 5 * time.Millisecond,
		OnError: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	failing.Enqueue(event("e1", "acct", model.EventFindingCreated, time.Now()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil && hits.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	d.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	if hits.Load() != 1 || len(errs) != 2 || !strings.Contains(errs[0].Error(), "database is locked") {
		t.Fatalf("hits %d errs %v", hits.Load(), errs)
	}
}

type flakyOutbox struct {
	*MemOutbox
	mu   sync.Mutex
	fail int
}

func (f *flakyOutbox) ClaimEvents(ctx context.Context, n int, lease time.Duration) ([]Claim, error) {
	f.mu.Lock()
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		return nil, errors.New("database is locked")
	}
	f.mu.Unlock()
	return f.MemOutbox.ClaimEvents(ctx, n, lease)
}

func TestBackoff(t *testing.T) {
	d, err := NewDispatcher(NewMemOutbox(nil), NewMemSinks(), Config{Source: "urn:x", BackoffBase: time.Second,
		BackoffCap: time.Minute, Rand: func() float64 { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for n, w := range want {
		if got := d.backoff(n); got != w*time.Second {
			t.Errorf("backoff(%d) = %s, want %s", n, got, w*time.Second)
		}
	}
	for _, n := range []int{62, 63, 64, 1000} {
		if got := d.backoff(n); got != time.Minute {
			t.Errorf("backoff(%d) = %s, want the cap", n, got)
		}
	}
	d.cfg.Rand = func() float64 { return 0.25 }
	if got := d.backoff(3); got != 2*time.Second {
		t.Errorf("jittered backoff(3) = %s, want 2s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Source: "urn:x", Lease: time.Second, Timeout: time.Second},
	} {
		if _, err := NewDispatcher(NewMemOutbox(nil), NewMemSinks(), cfg); err == nil {
			t.Errorf("NewDispatcher(%+v): no error", cfg)
		}
	}
}

// TestLeaseExpiryRedelivers: a dispatcher that claimed events and died (never settled them) does not
// lose them: after the lease another dispatcher delivers them.
func TestLeaseExpiryRedelivers(t *testing.T) {
	clk := newClock()
	rc := newReceiver(t, "s", clk.Now)
	h := newHarness(t, Config{Now: clk.Now, Lease: time.Minute, Timeout: 10 * time.Second}, sink("s1", "acct", rc.srv.URL, "s"))
	h.outbox.now = clk.Now
	h.outbox.Enqueue(event("e1", "acct", model.EventFindingCreated, clk.Now()))
	if c, _ := h.outbox.ClaimEvents(context.Background(), 10, time.Minute); len(c) != 1 {
		t.Fatal("crashed dispatcher's claim failed")
	}
	if n := h.runOnce(t); n != 0 {
		t.Fatalf("claimed a leased event: %d", n)
	}
	clk.Advance(time.Minute)
	if n := h.runOnce(t); n != 1 {
		t.Fatalf("after the lease: claimed %d", n)
	}
	if got := rc.ids(); !slices.Equal(got, []string{"e1"}) {
		t.Fatalf("received %v", got)
	}
}
