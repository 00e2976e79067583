package nvd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

// fakeAPI serves total CVEs (CVE-2024-0001…) the way the CVE API 2.0 pages them, and records
// every request's query.
type fakeAPI struct {
	mu      sync.Mutex
	total   int
	queries []string
	keys    []string
	// fail, when set, may answer a request instead (return true when it did).
	fail func(w http.ResponseWriter, n int) bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.queries)
	f.queries = append(f.queries, r.URL.RawQuery)
	f.keys = append(f.keys, r.Header.Get("apiKey"))
	f.mu.Unlock()
	if f.fail != nil && f.fail(w, n) {
		return
	}
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("resultsPerPage"))
	start, _ := strconv.Atoi(q.Get("startIndex"))
	var recs []string
	for i := start; i < min(start+per, f.total); i++ {
		recs = append(recs, fmt.Sprintf(`{"cve": {"id": "CVE-2024-%04d", "published": "2024-01-02T03:04:05.000", "lastModified": "2024-02-03T04:05:06.000", "descriptions": [{"lang": "en", "value": "test %d"}]}}`, i+1, i))
	}
	fmt.Fprintf(w, `{"resultsPerPage": %d, "startIndex": %d, "totalResults": %d, "format": "NVD_CVE", "version": "2.0", "timestamp": "2025-08-25T00:00:00.000", "vulnerabilities": [%s]}`,
		len(recs), start, f.total, strings.Join(recs, ","))
}

// fakeClock makes Sleep advance Now, and records the sleeps.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func newClient(srv *httptest.Server, clock *fakeClock) *Client {
	return &Client{HTTP: srv.Client(), BaseURL: srv.URL, Now: clock.Now, Sleep: clock.Sleep}
}

func TestFetchPaging(t *testing.T) {
	api := &fakeAPI{total: 5}
	srv := httptest.NewServer(api)
	defer srv.Close()
	clock := &fakeClock{now: time.Date(2025, 8, 25, 0, 0, 0, 0, time.UTC)}
	c := newClient(srv, clock)
	c.PageSize = 2
	c.APIKey = "test-key"
	var progress []string
	c.Progress = func(done, total int) { progress = append(progress, fmt.Sprintf("%d/%d", done, total)) }
	var sink feedtest.Sink
	res, err := c.Fetch(context.Background(), Query{}, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 3 || res.Records != 5 || len(sink.Enrichments) != 5 {
		t.Fatalf("result %+v, %d enrichments", res, len(sink.Enrichments))
	}
	if sink.Enrichments[4].ID != "CVE-2024-0005" || sink.Enrichments[4].Description != "test 4" {
		t.Errorf("last = %+v", sink.Enrichments[4])
	}
	wantQ := []string{"resultsPerPage=2&startIndex=0", "resultsPerPage=2&startIndex=2", "resultsPerPage=2&startIndex=4"}
	if strings.Join(api.queries, " ") != strings.Join(wantQ, " ") {
		t.Errorf("queries = %q, want %q", api.queries, wantQ)
	}
	for _, k := range api.keys {
		if k != "test-key" {
			t.Errorf("apiKey header = %q", k)
		}
	}
	if strings.Join(progress, " ") != "2/5 4/5 5/5" {
		t.Errorf("progress = %q", progress)
	}
	if len(clock.sleeps) != 0 {
		t.Errorf("slept %v with an API key and 3 requests", clock.sleeps)
	}
}

func TestFetchWindows(t *testing.T) {
	api := &fakeAPI{total: 1}
	srv := httptest.NewServer(api)
	defer srv.Close()
	clock := &fakeClock{now: time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)}
	c := newClient(srv, clock)
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := c.Fetch(context.Background(), Query{LastModStart: from}, &feedtest.Sink{})
	if err != nil {
		t.Fatal(err)
	}
	// 244 days: 120 + 120 + 4.
	want := []string{
		"lastModEndDate=2024-04-30T00%3A00%3A00.000Z&lastModStartDate=2024-01-01T00%3A00%3A00.000Z&resultsPerPage=2000&startIndex=0",
		"lastModEndDate=2024-08-28T00%3A00%3A00.000Z&lastModStartDate=2024-04-30T00%3A00%3A00.000Z&resultsPerPage=2000&startIndex=0",
		"lastModEndDate=2024-09-01T00%3A00%3A00.000Z&lastModStartDate=2024-08-28T00%3A00%3A00.000Z&resultsPerPage=2000&startIndex=0",
	}
	if strings.Join(api.queries, "\n") != strings.Join(want, "\n") {
		t.Errorf("queries:\n%s\nwant\n%s", strings.Join(api.queries, "\n"), strings.Join(want, "\n"))
	}
	if !res.Until.Equal(clock.now) || res.Records != 3 {
		t.Errorf("result = %+v", res)
	}
	if _, err := c.Fetch(context.Background(), Query{LastModStart: from, LastModEnd: from.Add(-time.Hour)}, &feedtest.Sink{}); err == nil {
		t.Error("end before start: want an error")
	}
}

func TestRateLimit(t *testing.T) {
	api := &fakeAPI{total: 12}
	srv := httptest.NewServer(api)
	defer srv.Close()
	for _, tt := range []struct {
		name       string
		key        string
		wantSleeps int
	}{
		{"no key: 5 per 30 s", "", 2}, // 12 requests: waits before the 6th and the 11th
		{"key: 50 per 30 s", "k", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			c := newClient(srv, clock)
			c.APIKey = tt.key
			c.PageSize = 1
			start := clock.now
			if _, err := c.Fetch(context.Background(), Query{}, &feedtest.Sink{}); err != nil {
				t.Fatal(err)
			}
			if len(clock.sleeps) != tt.wantSleeps {
				t.Fatalf("sleeps = %v, want %d", clock.sleeps, tt.wantSleeps)
			}
			if tt.wantSleeps > 0 && clock.now.Sub(start) != 60*time.Second {
				t.Errorf("12 requests took %v of fake time, want 60s", clock.now.Sub(start))
			}
		})
	}
}

func TestRetries(t *testing.T) {
	api := &fakeAPI{total: 1}
	api.fail = func(w http.ResponseWriter, n int) bool {
		switch n {
		case 0:
			w.Header().Set("message", "Request forbidden by administrative rules.")
			w.WriteHeader(http.StatusForbidden)
		case 1:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			return false
		}
		return true
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newClient(srv, clock)
	c.RateRequests = 100
	var sink feedtest.Sink
	res, err := c.Fetch(context.Background(), Query{}, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 4 || len(sink.Enrichments) != 1 {
		t.Errorf("result %+v", res)
	}
	// 6 s backoff, then Retry-After 7 s, then 24 s (6 s doubled twice).
	if fmt.Sprint(clock.sleeps) != "[6s 7s 24s]" {
		t.Errorf("sleeps = %v", clock.sleeps)
	}
}

func TestPermanentErrors(t *testing.T) {
	api := &fakeAPI{}
	api.fail = func(w http.ResponseWriter, n int) bool {
		w.Header().Set("message", "Invalid apiKey.")
		w.WriteHeader(http.StatusNotFound)
		return true
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	clock := &fakeClock{now: time.Now()}
	c := newClient(srv, clock)
	_, err := c.Fetch(context.Background(), Query{}, &feedtest.Sink{})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.Message != "Invalid apiKey." || len(api.queries) != 1 {
		t.Errorf("err = %v after %d requests; want one 404", err, len(api.queries))
	}

	api2 := &fakeAPI{fail: func(w http.ResponseWriter, n int) bool { w.WriteHeader(http.StatusServiceUnavailable); return true }}
	srv2 := httptest.NewServer(api2)
	defer srv2.Close()
	c2 := newClient(srv2, clock)
	c2.MaxRetries = 2
	c2.RateRequests = 100
	_, err = c2.Fetch(context.Background(), Query{}, &feedtest.Sink{})
	if !errors.As(err, &se) || se.Code != 503 || len(api2.queries) != 3 {
		t.Errorf("err = %v after %d requests; want 503 after 3", err, len(api2.queries))
	}

	// A page that is not JSON is a hard error, not a retry loop.
	srv3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>maintenance</html>")) }))
	defer srv3.Close()
	if _, err := newClient(srv3, clock).Fetch(context.Background(), Query{}, &feedtest.Sink{}); err == nil {
		t.Error("HTML page: want an error")
	}
}

func TestFetchCancel(t *testing.T) {
	api := &fakeAPI{fail: func(w http.ResponseWriter, n int) bool { w.WriteHeader(http.StatusServiceUnavailable); return true }}
	srv := httptest.NewServer(api)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{HTTP: srv.Client(), BaseURL: srv.URL, Backoff: time.Hour}
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := c.Fetch(ctx, Query{}, &feedtest.Sink{})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Errorf("err = %v after %v", err, time.Since(start))
	}
}
