package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/agenttest"
	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/protocol"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"15", 15 * time.Second},
		{" 1 ", time.Second},
		{"0", 0},
		{"-5", 0},
		{"", 0},
		{"soon", 0},
		{"1.5", 0},
		{"99999999999999999999", 0}, // overflows int64: neither a number nor a date
		{"9223372036854775807", 24 * time.Hour},
		{"86401", 24 * time.Hour},
		{"Sun, 06 Dec 2026 22:00:30 GMT", 30 * time.Second},
		{"Sun, 06 Dec 2026 21:59:00 GMT", 0}, // in the past
		{"Sunday, 06-Dec-26 22:01:00 GMT", time.Minute},
	}
	for _, tc := range tests {
		got := client.ParseRetryAfter(tc.in, now)
		if got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"15", "0", "-1", "Sun, 06 Dec 2026 22:00:30 GMT", "Sunday, 06-Dec-26 22:01:00 GMT", "Sun Dec  6 22:00:30 2026", "1e9", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d := client.ParseRetryAfter(s, now); d < 0 || d > 24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, 24h]", s, d)
		}
	})
}

// spend sends one request to the enrollment endpoint, spending the client address's burst.
func spend(t *testing.T, rs *agenttest.RealServer) {
	t.Helper()
	// Only the request's arrival matters here, not whom it reaches.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Post(rs.URL+protocol.PathEnroll, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestEnrollRetrying runs against the real server's rate limit (the API router in front of
// server/agents): a 429 is retried after its Retry-After, the attempts are bounded, and a
// Retry-After beyond the allowed time gives up at once without spending the token.
func TestEnrollRetrying(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{Rate: 0.5, Burst: 1}) // Retry-After 2 once the burst is spent
	token := rs.Token(t, 1)
	req := func() *protocol.EnrollRequest {
		key, _ := client.NewKey()
		csr, _ := client.CSR(key, "web-01")
		return &protocol.EnrollRequest{Token: token, CSR: csr, Hostname: "web-01", Version: "test"}
	}
	ctx := context.Background()

	// Attempts bound: sleeping nothing, the second attempt is refused too.
	spend(t, rs)
	var slept []time.Duration
	_, _, err := client.EnrollRetrying(ctx, rs.URL, rs.Fingerprint, req(), client.EnrollPolicy{Attempts: 2, Rand: func() float64 { return 0.5 },
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }})
	var se *client.StatusError
	if !errors.Is(err, client.ErrGaveUp) || !errors.As(err, &se) || se.Status != http.StatusTooManyRequests {
		t.Fatalf("two refused attempts: %v", err)
	}
	if len(slept) != 1 || slept[0] != 2500*time.Millisecond {
		t.Fatalf("waits %v, want [2.5s] (Retry-After 2 plus a quarter)", slept)
	}

	// Retried after the real wait, then enrolled.
	time.Sleep(2 * time.Second)
	spend(t, rs)
	var retries int
	start := time.Now()
	resp, _, err := client.EnrollRetrying(ctx, rs.URL, rs.Fingerprint, req(), client.EnrollPolicy{
		OnRetry: func(err error, attempt int, wait time.Duration) {
			retries++
			if wait < 2*time.Second || wait >= 3*time.Second {
				t.Errorf("wait %v after Retry-After 2", wait)
			}
		}})
	if err != nil || resp.AgentID == "" {
		t.Fatalf("enrollment: %v", err)
	}
	if retries != 1 || time.Since(start) < 2*time.Second {
		t.Fatalf("%d retries in %v", retries, time.Since(start))
	}
}

// TestEnrollGivesUpBeyondWithin: a Retry-After longer than the allowed time is not waited for.
func TestEnrollGivesUpBeyondWithin(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{Rate: 0.001, Burst: 1}) // Retry-After 1000
	spend(t, rs)
	key, _ := client.NewKey()
	csr, _ := client.CSR(key, "web-01")
	start := time.Now()
	_, _, err := client.EnrollRetrying(context.Background(), rs.URL, rs.Fingerprint,
		&protocol.EnrollRequest{Token: rs.Token(t, 1), CSR: csr, Hostname: "web-01"}, client.EnrollPolicy{Within: time.Minute})
	if !errors.Is(err, client.ErrGaveUp) || !strings.Contains(err.Error(), "beyond the 1m0s allowed") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}

// TestEnrollOtherErrorsNotRetried: a refused token (401) is final.
func TestEnrollOtherErrorsNotRetried(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{})
	key, _ := client.NewKey()
	csr, _ := client.CSR(key, "web-01")
	n := 0
	_, _, err := client.EnrollRetrying(context.Background(), rs.URL, rs.Fingerprint,
		&protocol.EnrollRequest{Token: "vjt_wrong", CSR: csr, Hostname: "web-01"},
		client.EnrollPolicy{OnRetry: func(error, int, time.Duration) { n++ }})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || n != 0 || errors.Is(err, client.ErrGaveUp) {
		t.Fatalf("err %v after %d retries", err, n)
	}
}
