// Package client is the agent's side of the wire contract (agent/protocol): enrollment over HTTPS
// with the server's CA pinned by fingerprint, then mutual TLS with the issued client certificate
// and the issued CA as the only trust anchor. TLS 1.3 only.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
)

// Limits on what the server sends back.
const (
	maxResponse = 1 << 20   // JSON answers
	MaxRelease  = 256 << 20 // a release binary
)

// ErrFingerprint is returned when the server's CA does not match the pinned fingerprint.
var ErrFingerprint = errors.New("the server's CA does not match the pinned fingerprint")

// StatusError is a non-2xx answer.
type StatusError struct {
	Op     string
	Status int
	Body   string
	// Type and Detail are the problem type and detail of an RFC 9457 answer (empty otherwise).
	Type, Detail string
	// RetryAfter is the wait the server asked for (Retry-After, seconds or an HTTP date); zero when
	// it asked for none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: server answered %d: %s", e.Op, e.Status, e.Detail)
	}
	return fmt.Sprintf("%s: server answered %d: %s", e.Op, e.Status, e.Body)
}

// ScanNotEnabled reports whether err is the server refusing an upload because the agent's account
// has not enabled package scanning of hosts (protocol.ProblemScanNotEnabled).
func ScanNotEnabled(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Type == protocol.ProblemScanNotEnabled
}

// RetryAfterOf is the wait a 429 or 503 answer asked for; zero for other errors and when the server
// named none.
func RetryAfterOf(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) && (se.Status == http.StatusTooManyRequests || se.Status == http.StatusServiceUnavailable) {
		return se.RetryAfter
	}
	return 0
}

// maxRetryAfter bounds a Retry-After read from the wire, so a wrong or hostile value cannot
// overflow a duration; callers cap it further.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date (relative to now).
// Invalid, negative or past values give zero; larger than a day is a day.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = maxRetryAfter
		if n < int64(maxRetryAfter/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// Retryable reports whether an error is worth retrying later: transport failures and 5xx, 408, 429.
func Retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= 500 || se.Status == http.StatusTooManyRequests || se.Status == http.StatusRequestTimeout
	}
	return err != nil && !errors.Is(err, ErrFingerprint) && !errors.Is(err, context.Canceled)
}

// Fingerprint is "sha256:<hex>" of a certificate's DER, as the server prints it.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NormalizeFingerprint accepts "sha256:<hex>", bare hex, and hex with colons, in any case.
func NormalizeFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	h = strings.TrimPrefix(h, "sha256:")
	h = strings.ReplaceAll(h, ":", "")
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("CA fingerprint %q: want sha256:<64 hex digits>", s)
	}
	return "sha256:" + h, nil
}

// NewKey generates the agent's key: ECDSA P-256, on the host.
func NewKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// CSR returns a PEM certificate request for key. The server ignores the subject and names the
// agent itself; the hostname is only a hint for operators reading raw requests.
func CSR(key crypto.Signer, hostname string) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: hostname}}, key)
	if err != nil {
		return "", fmt.Errorf("certificate request: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// pinnedConfig verifies the server by a CA that is identified only by its fingerprint: the chain
// the server presents must contain a certificate with that fingerprint, and the leaf must verify
// against it for the server's name.
func pinnedConfig(fingerprint, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The standard verification has no trust anchor yet; VerifyConnection does it with the pin.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates {
				if subtle.ConstantTimeCompare([]byte(Fingerprint(c)), []byte(fingerprint)) == 1 {
					ca = c
				}
			}
			if ca == nil || len(cs.PeerCertificates) == 0 {
				return ErrFingerprint
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: pool, Intermediates: inter, DNSName: serverName,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("%w: %w", ErrFingerprint, err)
			}
			return nil
		},
	}
}

// Enroll sends an enrollment request to server, trusting it only if its CA matches fingerprint.
// The CA in the answer must be that same CA.
func Enroll(ctx context.Context, server, fingerprint string, req *protocol.EnrollRequest) (*protocol.EnrollResponse, *x509.Certificate, error) {
	fp, err := NormalizeFingerprint(fingerprint)
	if err != nil {
		return nil, nil, err
	}
	u, err := baseURL(server)
	if err != nil {
		return nil, nil, err
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: pinnedConfig(fp, u.Hostname()), ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment,
		// One request: a pooled connection would outlive the call (and hold a server connection).
		DisableKeepAlives: true,
	}}
	var resp protocol.EnrollResponse
	if err := do(ctx, hc, http.MethodPost, u.JoinPath(protocol.PathEnroll).String(), req, &resp, "enroll"); err != nil {
		return nil, nil, err
	}
	ca, err := ParseCert([]byte(resp.CA))
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: the CA in the answer: %w", err)
	}
	if Fingerprint(ca) != fp {
		return nil, nil, fmt.Errorf("enroll: the CA in the answer: %w", ErrFingerprint)
	}
	if _, err := ParseCert([]byte(resp.Certificate)); err != nil {
		return nil, nil, fmt.Errorf("enroll: the certificate in the answer: %w", err)
	}
	return &resp, ca, nil
}

// EnrollPolicy bounds EnrollRetrying. Zero fields take the defaults.
type EnrollPolicy struct {
	// Attempts is the most requests sent (default 8).
	Attempts int
	// Within is how long to keep trying: a retry whose wait would end later is not made (default
	// 2 minutes).
	Within time.Duration
	// Rand returns jitter in [0,1) (default math/rand/v2).
	Rand func() float64
	// Sleep waits d or until ctx ends (default a timer).
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry is told of each retry before its wait (the command prints it; libraries do not).
	OnRetry func(err error, attempt int, wait time.Duration)
}

// ErrGaveUp wraps the last refusal when EnrollRetrying stops retrying.
var ErrGaveUp = errors.New("gave up")

// enrollRetryable: the server asked to come back later, before the request did anything (a 429
// comes from the rate limit in front of enrollment; a 503 with Retry-After from a server or proxy
// not ready). The join token is not spent by either, so sending it again is safe.
func enrollRetryable(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Status == http.StatusTooManyRequests || (se.Status == http.StatusServiceUnavailable && se.RetryAfter > 0)
}

// EnrollRetrying is Enroll, retried while the server answers 429 (or 503 with Retry-After): after
// the Retry-After it sent, else 1 s doubling, in both cases plus up to half again of jitter
// (RetryWait) so that hosts enrolled together spread out. It never retries sooner than the server
// asked: it stops after p.Attempts requests, or at once when the server asks to wait beyond
// p.Within, returning the last refusal wrapped in ErrGaveUp. Any other error is returned at once.
func EnrollRetrying(ctx context.Context, server, fingerprint string, req *protocol.EnrollRequest, p EnrollPolicy) (*protocol.EnrollResponse, *x509.Certificate, error) {
	if p.Attempts <= 0 {
		p.Attempts = 8
	}
	if p.Within <= 0 {
		p.Within = 2 * time.Minute
	}
	if p.Rand == nil {
		p.Rand = mrand.Float64
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		resp, ca, err := Enroll(ctx, server, fingerprint, req)
		if err == nil || !enrollRetryable(err) {
			return resp, ca, err
		}
		var se *StatusError
		errors.As(err, &se)
		base := se.RetryAfter
		if base <= 0 {
			base = time.Second << min(attempt-1, 6)
		}
		wait := RetryWait(base, p.Rand())
		elapsed := time.Since(start)
		switch {
		case attempt >= p.Attempts:
			return nil, nil, fmt.Errorf("%w after %d attempt(s) in %s: %w", ErrGaveUp, attempt, elapsed.Round(time.Second), err)
		case elapsed+base > p.Within:
			return nil, nil, fmt.Errorf("%w after %d attempt(s) in %s: the server asked to wait %s, beyond the %s allowed: %w",
				ErrGaveUp, attempt, elapsed.Round(time.Second), base.Round(time.Second), p.Within, err)
		}
		if p.OnRetry != nil {
			p.OnRetry(err, attempt, wait)
		}
		if err := p.Sleep(ctx, wait); err != nil {
			return nil, nil, err
		}
	}
}

// RetryWait is the wait before retrying after the server asked for d: never sooner than asked
// (and at least a second), plus up to half again (r in [0,1)) so that clients refused together
// do not return together.
func RetryWait(d time.Duration, r float64) time.Duration {
	d = max(d, time.Second)
	return d + time.Duration(r*float64(d/2))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ParseCert parses the first PEM certificate.
func ParseCert(pemBytes []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func baseURL(server string) (*url.URL, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", server, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want https://host[:port]", server)
	}
	return u, nil
}

// Client talks to the server over mutual TLS.
type Client struct {
	base *url.URL
	hc   *http.Client
}

// New returns a client trusting only ca and presenting the certificate cert returns at each
// handshake (so a renewed certificate is used without a new client).
func New(server string, ca *x509.Certificate, cert func() (*tls.Certificate, error)) (*Client, error) {
	u, err := baseURL(server)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13,
			RootCAs:    pool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return cert()
			},
		},
		ForceAttemptHTTP2:   true,
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	return &Client{base: u, hc: &http.Client{Timeout: 5 * time.Minute, Transport: tr}}, nil
}

// CloseIdle drops pooled connections (after a certificate renewal, new handshakes use the new one).
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

// Heartbeat sends a heartbeat.
func (c *Client) Heartbeat(ctx context.Context, hb *protocol.Heartbeat) (*protocol.HeartbeatResponse, error) {
	var resp protocol.HeartbeatResponse
	err := do(ctx, c.hc, http.MethodPost, c.base.JoinPath(protocol.PathHeartbeat).String(), hb, &resp, "heartbeat")
	return &resp, err
}

// Report sends an instruction's result.
func (c *Client) Report(ctx context.Context, id string, res *protocol.InstructionResult) error {
	return do(ctx, c.hc, http.MethodPost, c.base.JoinPath(protocol.PathInstructions, id).String(), res, nil, "instruction result")
}

// Renew asks for a certificate for a new key.
func (c *Client) Renew(ctx context.Context, req *protocol.RenewRequest) (*protocol.RenewResponse, error) {
	var resp protocol.RenewResponse
	err := do(ctx, c.hc, http.MethodPost, c.base.JoinPath(protocol.PathRenew).String(), req, &resp, "renew")
	return &resp, err
}

// Upload sends an upload body that is already gzip-compressed JSON (see EncodeUpload).
func (c *Client) Upload(ctx context.Context, gz []byte) (*protocol.UploadResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base.JoinPath(protocol.PathInventory).String(), bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	var resp protocol.UploadResponse
	if err := send(c.hc, req, &resp, "upload"); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Release downloads a release binary and its headers; the caller verifies them.
func (c *Client) Release(ctx context.Context, version, goos, goarch string) (body []byte, sha, sig string, err error) {
	u := c.base.JoinPath(protocol.PathReleases, version, goos, goarch).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", "", fmt.Errorf("release %s: %w", version, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, "", "", statusError("release "+version, resp, b)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, MaxRelease+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("release %s: %w", version, err)
	}
	if len(body) > MaxRelease {
		return nil, "", "", fmt.Errorf("release %s: larger than %d bytes", version, MaxRelease)
	}
	return body, resp.Header.Get(protocol.HeaderReleaseSHA256), resp.Header.Get(protocol.HeaderReleaseSignature), nil
}

// EncodeUpload is the wire form of an upload: gzip-compressed JSON.
func EncodeUpload(u *protocol.Upload) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := json.NewEncoder(zw).Encode(u); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func do(ctx context.Context, hc *http.Client, method, u string, in, out any, op string) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(hc, req, out, op)
}

func send(hc *http.Client, req *http.Request, out any, op string) error {
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		return statusError(op, resp, b)
	}
	if len(b) > maxResponse {
		return fmt.Errorf("%s: answer larger than %d bytes", op, maxResponse)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: decoding the answer: %w", op, err)
	}
	return nil
}

// statusError describes a non-2xx answer whose body is b: the problem's type and detail when it
// is one, and the Retry-After asked for.
func statusError(op string, resp *http.Response, b []byte) *StatusError {
	e := &StatusError{Op: op, Status: resp.StatusCode, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var p struct{ Type, Detail string }
	if json.Unmarshal(b, &p) == nil {
		e.Type = p.Type
		e.Detail = truncate(strings.TrimSpace(p.Detail), 512)
	}
	e.Body = truncate(strings.TrimSpace(string(b)), 512)
	return e
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Ping proves the server is reachable over mutual TLS with the current certificate: a GET of the
// server's liveness endpoint, which has no side effect (a heartbeat would consume instructions).
// Any answer below 500 counts: a listener that mounts only the agent routes answers 404, and that
// still proves the handshake and the server.
func (c *Client) Ping(ctx context.Context) error {
	err := do(ctx, c.hc, http.MethodGet, c.base.JoinPath("/healthz").String(), nil, nil, "ping")
	var se *StatusError
	if errors.As(err, &se) && se.Status < 500 {
		return nil
	}
	return err
}
