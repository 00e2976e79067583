package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Outcome is what one delivery attempt led to.
type Outcome string

const (
	// Delivered: the receiver answered 2xx.
	Delivered Outcome = "delivered"
	// Retry: 408, 429, 5xx or a network error/timeout; the event comes back after a backoff.
	Retry Outcome = "retry"
	// Deferred: not attempted, the sink asked to wait (Retry-After) and the wait is not over.
	Deferred Outcome = "deferred"
	// Dead: a permanent failure (other 4xx, 3xx, a refused address, an unusable URL or event);
	// or the last allowed attempt failed. The delivery is dead-lettered.
	Dead Outcome = "dead_letter"
	// Disabled: the receiver answered 410 Gone; the sink is disabled and the delivery dead-lettered.
	Disabled Outcome = "sink_disabled"
)

// Attempt describes one delivery attempt, for metrics and logs (Config.OnAttempt).
type Attempt struct {
	EventID   string
	EventType string
	SinkID    string
	// Number is 1 for the first attempt of this event.
	Number   int
	Status   int // HTTP status; 0 when there was no response
	Outcome  Outcome
	Err      error // why it was not delivered
	Duration time.Duration
	// RetryAfter is the wait the receiver asked for, if any.
	RetryAfter time.Duration
}

// Config tunes a Dispatcher. Zero fields take the defaults shown.
type Config struct {
	// Source is the CloudEvents "source" of every event, e.g. "urn:vigil:<server-id>". Required.
	Source string
	// Batch is how many events one claim takes (32).
	Batch int
	// Lease is how long claimed events stay reserved (5m). It must cover a whole batch:
	// roughly ceil(Batch × matching sinks / Concurrency) × Timeout.
	Lease time.Duration
	// Concurrency bounds simultaneous HTTP requests (8).
	Concurrency int
	// Timeout bounds one attempt: connect, send, response headers and body (10s).
	Timeout time.Duration
	// BackoffBase, BackoffCap: the delay before retry n (n from 0) is uniformly random in
	// [0, min(BackoffCap, BackoffBase·2ⁿ)] — exponential backoff with full jitter (5s, 1h).
	BackoffBase time.Duration
	BackoffCap  time.Duration
	// MaxAttempts is the number of delivery rounds before the remaining sinks are dead-lettered (15).
	MaxAttempts int
	// MaxRetryAfter caps a receiver's Retry-After (6h).
	MaxRetryAfter time.Duration
	// PollInterval is the wait between claims when the outbox had nothing due (1s). Notify
	// shortens it.
	PollInterval time.Duration
	// Visible reports whether a sink owned by sinkAccount may receive an event of eventAccount.
	// Nil means only the same account. The server passes a function that also lets a delegated
	// administrator see its members.
	Visible func(sinkAccount, eventAccount string) bool
	// Guard refuses destination addresses; off by default (see AddressGuard).
	Guard AddressGuard
	// UserAgent is sent with every request ("Vigil-Webhook/1").
	UserAgent string
	// OnAttempt is called after every attempt (from several goroutines at once).
	OnAttempt func(Attempt)
	// OnError is called with outbox and sink-store errors the loop survives.
	OnError func(error)
	// Now and Rand are the clock and the jitter source (time.Now, math/rand/v2 Float64), for tests.
	Now  func() time.Time
	Rand func() float64
}

func (c *Config) defaults() error {
	if err := ValidateSource(c.Source); err != nil {
		return err
	}
	setD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	setI := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	setI(&c.Batch, 32)
	setI(&c.Concurrency, 8)
	setI(&c.MaxAttempts, 15)
	setD(&c.Lease, 5*time.Minute)
	setD(&c.Timeout, 10*time.Second)
	setD(&c.BackoffBase, 5*time.Second)
	setD(&c.BackoffCap, time.Hour)
	setD(&c.MaxRetryAfter, 6*time.Hour)
	setD(&c.PollInterval, time.Second)
	if c.Lease < 2*c.Timeout {
		return fmt.Errorf("events: lease %s is shorter than two attempt timeouts (%s)", c.Lease, c.Timeout)
	}
	if c.Visible == nil {
		c.Visible = func(sinkAccount, eventAccount string) bool { return sinkAccount == eventAccount }
	}
	if c.UserAgent == "" {
		c.UserAgent = "Vigil-Webhook/1"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return nil
}

// Dispatcher moves events from an Outbox to webhook sinks. Several dispatchers, in one process
// or several sharing a database, may run against the same outbox: the lease keeps them apart.
type Dispatcher struct {
	cfg    Config
	outbox Outbox
	sinks  SinkStore
	client *http.Client
	wake   chan struct{}

	mu       sync.Mutex
	cooldown map[string]time.Time // sink id → no attempt before (from Retry-After)
	gone     map[string]bool      // sinks that answered 410 during the current round
}

// NewDispatcher returns a dispatcher; call Run to start it.
func NewDispatcher(outbox Outbox, sinks SinkStore, cfg Config) (*Dispatcher, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second, Control: cfg.Guard.control}
	tr.DialContext = dialer.DialContext
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	if cfg.Guard != (AddressGuard{}) {
		// A proxy would make the connection for us, out of the guard's sight.
		tr.Proxy = nil
	}
	return &Dispatcher{
		cfg:    cfg,
		outbox: outbox,
		sinks:  sinks,
		client: &http.Client{
			Transport: tr,
			// Redirects are not followed: a sink must name its final URL, and a redirect could
			// otherwise lead past URL validation.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake:     make(chan struct{}, 1),
		cooldown: map[string]time.Time{},
		gone:     map[string]bool{},
	}, nil
}

// Notify wakes a waiting dispatcher, e.g. right after a transaction wrote outbox events. It never
// blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled, then returns nil once in-flight requests have ended. Events
// it had claimed but not settled come back to any dispatcher when their lease runs out. Call Run
// (or RunOnce) from one goroutine per Dispatcher; run several Dispatchers for more throughput.
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.client.CloseIdleConnections()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		n, err := d.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.report(err)
		}
		if err == nil && n == d.cfg.Batch {
			continue // more may be due right now
		}
		timer.Reset(d.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
			timer.Stop() // since Go 1.23 a later Reset cannot see a stale tick
		case <-timer.C:
		}
	}
}

func (d *Dispatcher) report(err error) {
	if d.cfg.OnError != nil && err != nil {
		d.cfg.OnError(err)
	}
}

// job is one (event, sink) delivery of a round.
type job struct {
	claim *Claim
	sink  Sink
	body  []byte
	res   result
}

type result struct {
	outcome Outcome
	err     error
	notBef  time.Time // for Retry/Deferred: earliest next attempt this sink wants
}

// RunOnce claims one batch, delivers it and settles it in the outbox. It returns the number of
// events claimed.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	// The sink list is read fresh each round, so a sink disabled on 410 stays out through its
	// Enabled flag and comes back when an operator re-enables it; "gone" only covers this round.
	d.mu.Lock()
	clear(d.gone)
	now := d.cfg.Now()
	for id, until := range d.cooldown {
		if !now.Before(until) {
			delete(d.cooldown, id)
		}
	}
	d.mu.Unlock()
	sinks, err := d.sinks.ListSinks(ctx)
	if err != nil {
		return 0, fmt.Errorf("events: list sinks: %w", err)
	}
	claims, err := d.outbox.ClaimEvents(ctx, d.cfg.Batch, d.cfg.Lease)
	if err != nil {
		return 0, fmt.Errorf("events: claim: %w", err)
	}
	if len(claims) == 0 {
		return 0, nil
	}
	// Settling must happen even when ctx was cancelled mid-round: a delivered event left
	// unrecorded would be sent again.
	settleCtx := context.WithoutCancel(ctx)

	jobs := make([][]*job, len(claims))
	var errs []error
	for i := range claims {
		c := &claims[i]
		targets := d.targets(sinks, c)
		if len(targets) == 0 {
			errs = append(errs, d.outbox.Complete(settleCtx, c.Event.ID))
			continue
		}
		body, err := d.body(c.Event)
		for _, s := range targets {
			j := &job{claim: c, sink: s, body: body}
			if err != nil {
				// An event that cannot be encoded never will be: dead-letter it for each sink.
				at := Attempt{EventID: c.Event.ID, EventType: c.Event.Type, SinkID: s.ID, Number: c.Attempts + 1}
				j.res = d.finish(settleCtx, j, at, result{outcome: Dead, err: err})
			}
			jobs[i] = append(jobs[i], j)
		}
	}

	// Deliver, oldest event first, at most Concurrency at once.
	sem := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, js := range jobs {
		for _, j := range js {
			if j.res.outcome != "" {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				j.res = d.deliver(ctx, j)
			})
		}
	}
	wg.Wait()

	for i, js := range jobs {
		if len(js) > 0 {
			errs = append(errs, d.settle(ctx, settleCtx, &claims[i], js))
		}
	}
	return len(claims), errors.Join(errs...)
}

// targets lists the enabled sinks that should receive the claim's event and have not yet.
func (d *Dispatcher) targets(sinks []Sink, c *Claim) []Sink {
	var out []Sink
	for _, s := range sinks {
		switch {
		case !s.Enabled, d.isGone(s.ID), slices.Contains(c.Settled, s.ID),
			!s.Wants(c.Event.Type), !d.cfg.Visible(s.Account, c.Event.Account),
			!s.CreatedAt.IsZero() && !c.Event.Time.IsZero() && c.Event.Time.Before(s.CreatedAt):
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *Dispatcher) body(ev model.OutboxEvent) ([]byte, error) {
	env, err := NewEnvelope(d.cfg.Source, ev)
	if err != nil {
		return nil, err
	}
	return env.Encode()
}

func (d *Dispatcher) isGone(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gone[id]
}

// deliver makes one attempt and, for outcomes that settle the pair, records them at once, so the
// window in which a crash causes a duplicate is as short as it can be.
func (d *Dispatcher) deliver(ctx context.Context, j *job) result {
	settleCtx := context.WithoutCancel(ctx)
	at := Attempt{EventID: j.claim.Event.ID, EventType: j.claim.Event.Type, SinkID: j.sink.ID, Number: j.claim.Attempts + 1}

	d.mu.Lock()
	until, cooling := d.cooldown[j.sink.ID]
	gone := d.gone[j.sink.ID]
	d.mu.Unlock()
	now := d.cfg.Now()
	switch {
	case gone:
		// Disabled by an earlier job of this batch.
		return d.finish(settleCtx, j, at, result{outcome: Dead, err: errors.New("sink disabled (410 Gone)")})
	case cooling && now.Before(until):
		at.Outcome = Deferred
		d.observe(at)
		return result{outcome: Deferred, notBef: until, err: fmt.Errorf("sink asked to wait until %s", until.UTC().Format(time.RFC3339))}
	}

	start := time.Now()
	status, retryAfter, snippet, err := d.post(ctx, j, now, at.Number)
	at.Status, at.Duration, at.RetryAfter = status, time.Since(start), retryAfter
	if err == nil && status/100 != 2 {
		err = &StatusError{Status: status, Body: snippet}
	}

	var res result
	switch {
	case err == nil:
		res.outcome = Delivered
	case ctx.Err() != nil:
		// Stopped: neither a failure of the sink nor a success; the lease brings the event back.
		at.Outcome = Retry
		d.observe(at)
		return result{outcome: Retry, err: ctx.Err(), notBef: now}
	case errors.Is(err, errPermanent) || errors.Is(err, ErrAddressRefused):
		res = result{outcome: Dead, err: err}
	case status == 0:
		res = result{outcome: Retry, err: err} // network error or timeout
	case status == http.StatusGone:
		res = result{outcome: Disabled, err: err}
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		res = result{outcome: Retry, err: err}
	default:
		res = result{outcome: Dead, err: err} // other 4xx, and 3xx since redirects are not followed
	}
	if res.outcome == Retry {
		res.notBef = now.Add(d.backoff(j.claim.Attempts))
		if retryAfter > 0 {
			until := now.Add(retryAfter)
			if until.After(res.notBef) {
				res.notBef = until
			}
			d.mu.Lock()
			if until.After(d.cooldown[j.sink.ID]) {
				d.cooldown[j.sink.ID] = until
			}
			d.mu.Unlock()
		}
	}
	return d.finish(settleCtx, j, at, res)
}

// finish records settling outcomes in the outbox and reports the attempt.
func (d *Dispatcher) finish(ctx context.Context, j *job, at Attempt, res result) result {
	at.Outcome, at.Err = res.outcome, res.err
	var err error
	switch res.outcome {
	case Delivered:
		err = d.outbox.MarkDelivered(ctx, j.claim.Event.ID, j.sink.ID)
	case Dead:
		err = d.outbox.DeadLetter(ctx, j.claim.Event.ID, j.sink.ID, res.err.Error())
	case Disabled:
		d.mu.Lock()
		d.gone[j.sink.ID] = true
		d.mu.Unlock()
		reason := fmt.Sprintf("receiver answered 410 Gone to event %s", j.claim.Event.ID)
		err = errors.Join(
			d.sinks.DisableSink(ctx, j.sink.ID, reason),
			d.outbox.DeadLetter(ctx, j.claim.Event.ID, j.sink.ID, res.err.Error()))
	}
	if err != nil {
		d.report(fmt.Errorf("events: settle event %s for sink %s: %w", j.claim.Event.ID, j.sink.ID, err))
	}
	d.observe(at)
	return res
}

func (d *Dispatcher) observe(at Attempt) {
	if d.cfg.OnAttempt != nil {
		d.cfg.OnAttempt(at)
	}
}

// settle ends a claim's round: complete, retry later, or give up on the sinks still failing.
func (d *Dispatcher) settle(ctx, settleCtx context.Context, c *Claim, js []*job) error {
	var (
		next    time.Time
		pending []*job
		msgs    []string
	)
	for _, j := range js {
		if j.res.outcome != Retry && j.res.outcome != Deferred {
			continue
		}
		pending = append(pending, j)
		msgs = append(msgs, j.sink.ID+": "+j.res.err.Error())
		if next.IsZero() || j.res.notBef.Before(next) {
			next = j.res.notBef
		}
	}
	if len(pending) == 0 {
		return d.outbox.Complete(settleCtx, c.Event.ID)
	}
	if ctx.Err() != nil {
		return nil // stopped mid-round: leave the claim leased
	}
	lastErr := strings.Join(msgs, "; ")
	if c.Attempts+1 >= d.cfg.MaxAttempts {
		var errs []error
		for _, j := range pending {
			reason := fmt.Sprintf("gave up after %d attempts: %s", c.Attempts+1, j.res.err)
			errs = append(errs, d.outbox.DeadLetter(settleCtx, c.Event.ID, j.sink.ID, reason))
		}
		errs = append(errs, d.outbox.Complete(settleCtx, c.Event.ID))
		return errors.Join(errs...)
	}
	return d.outbox.MarkFailed(settleCtx, c.Event.ID, next, lastErr)
}

// backoff returns the delay before retry n (0-based): full jitter over an exponential ceiling.
func (d *Dispatcher) backoff(n int) time.Duration {
	ceil := d.cfg.BackoffCap
	if n < 62 {
		if b := d.cfg.BackoffBase << n; b > 0 && b>>n == d.cfg.BackoffBase && b < ceil {
			ceil = b
		}
	}
	return time.Duration(d.cfg.Rand() * float64(ceil))
}

var errPermanent = errors.New("permanent")

// maxResponseRead bounds how much of a reply is read (to reuse the connection) and kept (for
// the error message).
const (
	maxResponseRead = 64 << 10
	maxErrorSnippet = 256
)

// post makes one HTTP request. It returns the status, the Retry-After wait if the reply had one,
// the start of a non-2xx reply's body, and an error for anything short of a response.
func (d *Dispatcher) post(ctx context.Context, j *job, now time.Time, attempt int) (int, time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.sink.URL, bytes.NewReader(j.body))
	if err != nil {
		return 0, 0, "", fmt.Errorf("%w: sink URL: %w", errPermanent, err)
	}
	h := req.Header
	h.Set("Content-Type", ContentType)
	h.Set("User-Agent", d.cfg.UserAgent)
	h.Set(HeaderEventID, j.claim.Event.ID)
	h.Set(HeaderAttempt, strconv.Itoa(attempt))
	h.Set(HeaderSignature, Sign(j.body, now, j.sink.Secret, j.sink.PreviousSecret))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	// Read (a bounded amount) so the connection can be reused; a reply that breaks off after a
	// 2xx status line still counts as delivered: the status is the answer.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, 0, "", nil
	}
	ra := parseRetryAfter(resp.Header.Get("Retry-After"), now, d.cfg.MaxRetryAfter)
	snippet := strings.ToValidUTF8(strings.TrimSpace(string(body[:min(len(body), maxErrorSnippet)])), "?")
	return resp.StatusCode, ra, snippet, nil
}

// parseRetryAfter reads delta-seconds or an HTTP-date (RFC 9110 §10.2.3), capped at limit.
func parseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || n > uint64(limit/time.Second) {
			return limit
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), limit)
}

// StatusError is a non-2xx reply: its status and the start of its body.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("receiver answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("receiver answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}
