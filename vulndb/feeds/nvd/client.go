package nvd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

// DefaultBaseURL is the CVE API 2.0 endpoint.
const DefaultBaseURL = "https://services.nvd.nist.gov/rest/json/cves/2.0"

// MaxWindow is the longest lastModStartDate..lastModEndDate range the API accepts.
const MaxWindow = 120 * 24 * time.Hour

// Client fetches CVEs from the NVD CVE API 2.0, page by page, within NVD's rate limits (5 requests
// per rolling 30 s without an API key, 50 with one). The zero value works against the public API.
type Client struct {
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
	// BaseURL defaults to DefaultBaseURL.
	BaseURL string
	// APIKey is sent in the "apiKey" header when set, and raises the rate limit.
	APIKey string
	// PageSize is resultsPerPage, at most 2000 (the default).
	PageSize int
	// RateRequests per RateWindow; zero means NVD's published limits.
	RateRequests int
	RateWindow   time.Duration
	// MaxRetries per request for 403/429/5xx answers and network errors; 0 means 6.
	MaxRetries int
	// Backoff is the first retry delay, doubled each time (capped at 2 min); 0 means 6 s, NVD's
	// advice. A Retry-After header wins when present.
	Backoff time.Duration
	// MaxPageSize caps one response body; 0 means 512 MiB.
	MaxPageSize int64
	// Progress, when set, is called after each page with the records fetched so far in the
	// current window and that window's total.
	Progress func(done, total int)
	// Sleep waits for d or until ctx ends; nil means a timer. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now defaults to time.Now. Tests replace it.
	Now func() time.Time

	mu   sync.Mutex
	sent []time.Time // start times of recent requests, for the rolling window
}

// Query selects what Fetch gets. A zero Query fetches every CVE.
type Query struct {
	// LastModStart and LastModEnd select CVEs modified in that interval; a range longer than
	// MaxWindow is split into windows. LastModEnd zero means now.
	LastModStart, LastModEnd time.Time
	// Extra parameters passed as is (e.g. "noRejected": "", "cvssV3Severity": "CRITICAL").
	Extra url.Values
}

// Result says what Fetch did.
type Result struct {
	Requests int
	Records  int
	// Until is the end of the last window fetched: the next incremental run's LastModStart.
	Until time.Time
}

// StatusError is a non-retryable (or finally failed) HTTP answer.
type StatusError struct {
	Code    int
	Message string // NVD's "message" header, when given
}

func (e *StatusError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("HTTP %d: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("HTTP %d", e.Code)
}

// Fetch pages through the API and hands every CVE to sink as an Enrichment.
func (c *Client) Fetch(ctx context.Context, q Query, sink feed.Sink) (*Result, error) {
	res := &Result{}
	windows := [][2]time.Time{{}}
	if !q.LastModStart.IsZero() {
		end := q.LastModEnd
		if end.IsZero() {
			end = c.now()
		}
		if end.Before(q.LastModStart) {
			return nil, fmt.Errorf("nvd: lastModEnd %v before lastModStart %v", end, q.LastModStart)
		}
		windows = windows[:0]
		for from := q.LastModStart; ; from = from.Add(MaxWindow) {
			to := from.Add(MaxWindow)
			if !to.Before(end) {
				windows = append(windows, [2]time.Time{from, end})
				break
			}
			windows = append(windows, [2]time.Time{from, to})
		}
	}
	for _, w := range windows {
		if err := c.fetchWindow(ctx, q, w[0], w[1], sink, res); err != nil {
			return res, err
		}
		res.Until = w[1]
	}
	return res, nil
}

func (c *Client) fetchWindow(ctx context.Context, q Query, from, to time.Time, sink feed.Sink, res *Result) error {
	size := c.PageSize
	if size <= 0 || size > 2000 {
		size = 2000
	}
	done := 0
	for start := 0; ; {
		params := url.Values{}
		for k, v := range q.Extra {
			params[k] = v
		}
		params.Set("resultsPerPage", strconv.Itoa(size))
		params.Set("startIndex", strconv.Itoa(start))
		if !from.IsZero() {
			params.Set("lastModStartDate", from.UTC().Format("2006-01-02T15:04:05.000Z"))
			params.Set("lastModEndDate", to.UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		body, err := c.get(ctx, params, res)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("page startIndex=%d", start)
		page, err := (&Parser{}).ParsePage(ctx, name, bytes.NewReader(body), sink)
		if err != nil {
			return err
		}
		res.Records += page.Records
		done += page.Records
		if c.Progress != nil {
			c.Progress(done, page.TotalResults)
		}
		start += page.Records
		if start >= page.TotalResults {
			return nil
		}
		if page.Records == 0 {
			return fmt.Errorf("nvd: empty page at startIndex %d of %d", start, page.TotalResults)
		}
	}
}

// get fetches one page, whole, so that a retry never hands half a page twice to the sink.
func (c *Client) get(ctx context.Context, params url.Values, res *Result) ([]byte, error) {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	retries := c.MaxRetries
	if retries <= 0 {
		retries = 6
	}
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = 6 * time.Second
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := c.wait(ctx); err != nil {
			return nil, err
		}
		res.Requests++
		body, retryAfter, err := c.do(ctx, base+"?"+params.Encode())
		if err == nil {
			return body, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var se *StatusError
		if errors.As(err, &se) && !retryable(se.Code) {
			return nil, fmt.Errorf("nvd: %w", err)
		}
		lastErr = err
		if attempt >= retries {
			return nil, fmt.Errorf("nvd: giving up after %d attempts: %w", attempt+1, lastErr)
		}
		delay := min(backoff<<attempt, 2*time.Minute)
		if retryAfter > 0 {
			delay = retryAfter
		}
		if err := c.sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

func retryable(code int) bool {
	// NVD answers 403 when the rate limit is exceeded, besides 429 and 503.
	return code == http.StatusForbidden || code == http.StatusTooManyRequests || code >= 500
}

func (c *Client) do(ctx context.Context, u string) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	if c.APIKey != "" {
		req.Header.Set("apiKey", c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, retryAfter(resp.Header.Get("Retry-After"), c.now()), &StatusError{Code: resp.StatusCode, Message: resp.Header.Get("message")}
	}
	max := c.MaxPageSize
	if max <= 0 {
		max = 512 << 20
	}
	body, err := io.ReadAll(jsonx.CapReader(resp.Body, max))
	if err != nil {
		return nil, 0, fmt.Errorf("reading page: %w", err)
	}
	return body, 0, nil
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// wait blocks until one more request fits in the rolling rate window.
func (c *Client) wait(ctx context.Context) error {
	n, window := c.RateRequests, c.RateWindow
	if n <= 0 {
		n = 5
		if c.APIKey != "" {
			n = 50
		}
	}
	if window <= 0 {
		window = 30 * time.Second
	}
	c.mu.Lock()
	now := c.now()
	for len(c.sent) > 0 && now.Sub(c.sent[0]) >= window {
		c.sent = c.sent[1:]
	}
	var delay time.Duration
	if len(c.sent) >= n {
		delay = c.sent[len(c.sent)-n].Add(window).Sub(now)
	}
	c.sent = append(c.sent, now.Add(max(delay, 0)))
	c.mu.Unlock()
	if delay > 0 {
		return c.sleep(ctx, delay)
	}
	return nil
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
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
