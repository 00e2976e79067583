// Package fetch downloads feed files for the vulnerability-database updater: conditional GETs
// (If-None-Match / If-Modified-Since), retries with exponential backoff and jitter, a size cap,
// streaming to a temporary file with optional SHA-256 verification, cancellation and progress.
// A failed download never leaves a partial file behind.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Errors a caller may test with errors.Is.
var (
	ErrTooLarge = errors.New("download exceeds size cap")
	ErrChecksum = errors.New("SHA-256 mismatch")
)

// StatusError is an HTTP answer that is neither success nor 304, after any retries.
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string { return fmt.Sprintf("GET %s: HTTP %d", e.URL, e.Code) }

// Fetcher holds what stays the same across downloads. The zero value is usable.
type Fetcher struct {
	// Client is used for every request; nil means http.DefaultClient.
	Client *http.Client
	// Dir receives the temporary files; "" means os.TempDir().
	Dir string
	// UserAgent, when set, is sent with every request.
	UserAgent string
	// Retries is how many times a failed attempt (network error, 5xx, 408, 429, a body cut short)
	// is retried; negative means none, 0 means 4.
	Retries int
	// BaseDelay is the first backoff (doubled per attempt, with jitter); 0 means 1 s.
	BaseDelay time.Duration
	// MaxDelay caps one backoff, and a server's Retry-After; 0 means 2 min.
	MaxDelay time.Duration
	// Sleep waits for d or until ctx ends; nil means a timer. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Request describes one download.
type Request struct {
	URL string
	// ETag and LastModified come from the previous successful download; when set, they are sent as
	// If-None-Match and If-Modified-Since, and an unchanged file yields Result.NotModified.
	ETag         string
	LastModified string
	// SHA256 is the expected hex digest of the body; empty means not checked.
	SHA256 string
	// MaxBytes caps the body; 0 means 4 GiB.
	MaxBytes int64
	// Header holds extra request headers (e.g. an API key).
	Header http.Header
	// Progress, when set, is called as bytes arrive; total is -1 when the server does not say.
	Progress func(done, total int64)
}

// Result describes a finished download.
type Result struct {
	// NotModified is true when the server answered 304: Path is empty, nothing was downloaded.
	NotModified bool
	// Path is the temporary file holding the body; the caller renames or removes it.
	Path   string
	Size   int64
	SHA256 string
	// ETag and LastModified are the validators to send next time.
	ETag         string
	LastModified string
	Attempts     int
}

// Get downloads req.URL into a temporary file.
func (f *Fetcher) Get(ctx context.Context, req Request) (*Result, error) {
	retries := f.Retries
	switch {
	case retries == 0:
		retries = 4
	case retries < 0:
		retries = 0
	}
	for attempt := 0; ; attempt++ {
		res, retryAfter, err := f.attempt(ctx, req)
		if err == nil {
			res.Attempts = attempt + 1
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: %w", req.URL, ctx.Err())
		}
		var re *retryable
		if !errors.As(err, &re) {
			return nil, err
		}
		if attempt >= retries {
			return nil, fmt.Errorf("GET %s: giving up after %d attempts: %w", req.URL, attempt+1, re.err)
		}
		if err := f.sleep(ctx, f.delay(attempt, retryAfter)); err != nil {
			return nil, fmt.Errorf("GET %s: %w", req.URL, err)
		}
	}
}

// retryable marks an attempt's error as worth another try.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

func (f *Fetcher) attempt(ctx context.Context, req Request) (_ *Result, retryAfter time.Duration, err error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
	if err != nil {
		return nil, 0, err
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			hreq.Header.Add(k, v)
		}
	}
	if f.UserAgent != "" {
		hreq.Header.Set("User-Agent", f.UserAgent)
	}
	if req.ETag != "" {
		hreq.Header.Set("If-None-Match", req.ETag)
	}
	if req.LastModified != "" {
		hreq.Header.Set("If-Modified-Since", req.LastModified)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, 0, &retryable{fmt.Errorf("GET %s: %w", req.URL, err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return &Result{NotModified: true, ETag: or(resp.Header.Get("ETag"), req.ETag),
			LastModified: or(resp.Header.Get("Last-Modified"), req.LastModified)}, 0, nil
	case resp.StatusCode == http.StatusOK:
	default:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		serr := &StatusError{URL: req.URL, Code: resp.StatusCode}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
			return nil, parseRetryAfter(resp.Header.Get("Retry-After")), &retryable{serr}
		}
		return nil, 0, serr
	}

	max := req.MaxBytes
	if max <= 0 {
		max = 4 << 30
	}
	if resp.ContentLength > max {
		return nil, 0, fmt.Errorf("GET %s: %d bytes announced: %w (%d)", req.URL, resp.ContentLength, ErrTooLarge, max)
	}
	tmp, err := os.CreateTemp(f.Dir, "vigil-fetch-*")
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	pw := &progressWriter{total: resp.ContentLength, fn: req.Progress}
	// One byte past the cap tells "exactly max" from "more than max".
	n, err := io.Copy(io.MultiWriter(tmp, h, pw), io.LimitReader(resp.Body, max+1))
	if err != nil {
		// A connection cut mid-body: worth another try from the start.
		return nil, 0, &retryable{fmt.Errorf("GET %s: reading body after %d bytes: %w", req.URL, n, err)}
	}
	if n > max {
		return nil, 0, fmt.Errorf("GET %s: %w (%d)", req.URL, ErrTooLarge, max)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, 0, &retryable{fmt.Errorf("GET %s: got %d of %d bytes: %w", req.URL, n, resp.ContentLength, io.ErrUnexpectedEOF)}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if req.SHA256 != "" && !strings.EqualFold(sum, req.SHA256) {
		return nil, 0, fmt.Errorf("GET %s: %w: got %s, want %s", req.URL, ErrChecksum, sum, strings.ToLower(req.SHA256))
	}
	if err = tmp.Sync(); err == nil {
		err = tmp.Close()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	return &Result{
		Path:         tmp.Name(),
		Size:         n,
		SHA256:       sum,
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
	}, 0, nil
}

type progressWriter struct {
	done, total int64
	fn          func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
	return len(b), nil
}

// delay is the backoff before retry number attempt+1: exponential with "equal jitter" (half fixed,
// half random) so that many updaters do not retry in lockstep; a Retry-After wins.
func (f *Fetcher) delay(attempt int, retryAfter time.Duration) time.Duration {
	maxD := f.MaxDelay
	if maxD <= 0 {
		maxD = 2 * time.Minute
	}
	if retryAfter > 0 {
		return min(retryAfter, maxD)
	}
	base := f.BaseDelay
	if base <= 0 {
		base = time.Second
	}
	d := base << min(attempt, 30)
	if d <= 0 || d > maxD {
		d = maxD
	}
	return d/2 + rand.N(d/2+1)
}

func (f *Fetcher) sleep(ctx context.Context, d time.Duration) error {
	if f.Sleep != nil {
		return f.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseRetryAfter reads seconds or an HTTP date.
func parseRetryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
