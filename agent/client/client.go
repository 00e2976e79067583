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
	"net"
	"net/http"
	"net/url"
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
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: server answered %d: %s", e.Op, e.Status, e.Body)
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
		return nil, "", "", &StatusError{Op: "release " + version, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
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
		if len(b) > 512 {
			b = b[:512]
		}
		return &StatusError{Op: op, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
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
