package fetch

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var body = strings.Repeat("CVE-2021-44228,0.94358,0.99957\n", 4000) // 124 KB

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// recorder is a fake Sleep.
type recorder struct{ sleeps []time.Duration }

func (r *recorder) Sleep(ctx context.Context, d time.Duration) error {
	r.sleeps = append(r.sleeps, d)
	return ctx.Err()
}

func newFetcher(t *testing.T, srv *httptest.Server) (*Fetcher, *recorder) {
	rec := &recorder{}
	return &Fetcher{Client: srv.Client(), Dir: t.TempDir(), Sleep: rec.Sleep, UserAgent: "vigil-test"}, rec
}

// assertNoTemp fails when a download left a file behind.
func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left %d file(s) in %s", len(entries), dir)
	}
}

const etag = `"66cb4d43-1e3c0"`
const lastMod = "Sun, 25 Aug 2025 17:04:19 GMT"

func conditional(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", lastMod)
	if r.Header.Get("If-None-Match") == etag || r.Header.Get("If-Modified-Since") == lastMod {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(body))
}

func TestGetAndNotModified(t *testing.T) {
	var agent atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent.Store(r.Header.Get("User-Agent"))
		conditional(w, r)
	}))
	defer srv.Close()
	f, _ := newFetcher(t, srv)
	var last [2]int64
	calls := 0
	res, err := f.Get(context.Background(), Request{URL: srv.URL, SHA256: strings.ToUpper(sum(body)),
		Progress: func(done, total int64) { calls++; last = [2]int64{done, total} }})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(res.Path)
	if string(data) != body || res.Size != int64(len(body)) || res.SHA256 != sum(body) || res.ETag != etag || res.LastModified != lastMod || res.NotModified {
		t.Errorf("result = %+v (%d bytes on disk)", res, len(data))
	}
	if calls == 0 || last != [2]int64{int64(len(body)), int64(len(body))} {
		t.Errorf("progress: %d calls, last %v", calls, last)
	}
	if agent.Load() != "vigil-test" {
		t.Errorf("User-Agent = %v", agent.Load())
	}
	os.Remove(res.Path)
	for name, req := range map[string]Request{
		"etag":          {URL: srv.URL, ETag: etag},
		"last-modified": {URL: srv.URL, LastModified: lastMod},
	} {
		res, err := f.Get(context.Background(), req)
		if err != nil || !res.NotModified || res.Path != "" || res.ETag != etag {
			t.Errorf("%s: %+v, %v; want NotModified", name, res, err)
		}
	}
	assertNoTemp(t, f.Dir)
}

func TestRetries(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(http.StatusBadGateway)
		case 2:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		case 3:
			cut(w, 1000) // a connection cut mid-body is retried too
		default:
			conditional(w, r)
		}
	}))
	defer srv.Close()
	f, rec := newFetcher(t, srv)
	f.BaseDelay = time.Second
	res, err := f.Get(context.Background(), Request{URL: srv.URL, SHA256: sum(body)})
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(res.Path)
	if res.Attempts != 4 || len(rec.sleeps) != 3 {
		t.Fatalf("attempts %d, sleeps %v", res.Attempts, rec.sleeps)
	}
	// attempt 0: 1 s with jitter in [0.5 s, 1 s]; then Retry-After 3 s; then 4 s jittered to [2 s, 4 s].
	if d := rec.sleeps[0]; d < 500*time.Millisecond || d > time.Second {
		t.Errorf("first backoff %v", d)
	}
	if rec.sleeps[1] != 3*time.Second {
		t.Errorf("Retry-After not honoured: %v", rec.sleeps[1])
	}
	if d := rec.sleeps[2]; d < 2*time.Second || d > 4*time.Second {
		t.Errorf("third backoff %v", d)
	}
}

// cut announces the whole body, sends only part of it and drops the connection.
func cut(w http.ResponseWriter, send int) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/csv\r\n\r\n%s", len(body), body[:send])
	buf.Flush()
}

func TestConnectionCut(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		cut(w, 50_000)
	}))
	defer srv.Close()
	f, _ := newFetcher(t, srv)
	f.Retries = 2
	var seen int64
	res, err := f.Get(context.Background(), Request{URL: srv.URL, Progress: func(done, total int64) { seen = max(seen, done) }})
	if err == nil {
		t.Fatalf("got %+v, want an error", res)
	}
	if !strings.Contains(err.Error(), "giving up after 3 attempts") || n.Load() != 3 {
		t.Errorf("err = %v after %d requests", err, n.Load())
	}
	if seen == 0 {
		t.Error("no progress reported before the cut")
	}
	assertNoTemp(t, f.Dir)
}

func TestFailures(t *testing.T) {
	chunked := func(w http.ResponseWriter, r *http.Request) {
		// No Content-Length: the cap must be enforced while streaming.
		bw := bufio.NewWriter(w)
		bw.WriteString(body)
		bw.Flush()
	}
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		req      Request
		want     error
		requests int32
	}{
		{"checksum", conditional, Request{SHA256: sum("something else")}, ErrChecksum, 1},
		{"announced too large", conditional, Request{MaxBytes: 1000}, ErrTooLarge, 1},
		{"streamed too large", chunked, Request{MaxBytes: 1000}, ErrTooLarge, 1},
		{"not found", http.NotFound, Request{}, &StatusError{}, 1},
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, Request{}, &StatusError{}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				tt.handler(w, r)
			}))
			defer srv.Close()
			f, _ := newFetcher(t, srv)
			tt.req.URL = srv.URL
			_, err := f.Get(context.Background(), tt.req)
			var se *StatusError
			switch want := tt.want.(type) {
			case *StatusError:
				if !errors.As(err, &se) {
					t.Errorf("err = %v, want a StatusError", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
			}
			if n.Load() != tt.requests {
				t.Errorf("%d requests, want %d", n.Load(), tt.requests)
			}
			assertNoTemp(t, f.Dir)
		})
	}
	// Exactly at the cap is fine.
	srv := httptest.NewServer(http.HandlerFunc(chunked))
	defer srv.Close()
	f, _ := newFetcher(t, srv)
	res, err := f.Get(context.Background(), Request{URL: srv.URL, MaxBytes: int64(len(body))})
	if err != nil || res.Size != int64(len(body)) {
		t.Errorf("at the cap: %+v, %v", res, err)
	}
}

func TestCancelMidBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write([]byte(body[:10_000]))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	f, _ := newFetcher(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := f.Get(ctx, Request{URL: srv.URL, Progress: func(done, total int64) {
		if done >= 10_000 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	assertNoTemp(t, f.Dir)
}

// countingTransport proves the configured client is the one used.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestCustomClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(conditional))
	defer srv.Close()
	tr := &countingTransport{}
	f := &Fetcher{Client: &http.Client{Transport: tr}, Dir: t.TempDir()}
	res, err := f.Get(context.Background(), Request{URL: srv.URL, Header: http.Header{"Apikey": {"k"}}})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(res.Path)
	if tr.n.Load() != 1 {
		t.Errorf("custom transport used %d times", tr.n.Load())
	}
}
