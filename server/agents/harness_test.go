package agents

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/bootstrap"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/server/store/pgtest"
)

var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

const testAccount = "acme"

// clock is a settable clock shared by the service and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sink records submissions.
type sink struct {
	mu   sync.Mutex
	subs []submission
	fail error
}

type submission struct {
	res model.Resource
	inv *model.Inventory
}

func (s *sink) Submit(_ context.Context, res model.Resource, inv *model.Inventory) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.subs = append(s.subs, submission{res, inv})
	return nil
}

func (s *sink) all() []submission {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]submission(nil), s.subs...)
}

type harness struct {
	t     *testing.T
	svc   *Service
	st    Storage
	fleet *store.Store
	boot  *bootstrap.Result
	clock *clock
	sink  *sink
	srv   *httptest.Server
	cfg   Config
}

// backends are the storages the HTTP tests run on; postgres skips without PostgreSQL.
var backends = []string{"memory", "sqlite", "postgres"}

func newHarness(t *testing.T, backend string, tweak ...func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC().Truncate(time.Microsecond)}
	boot, err := bootstrap.Bootstrap(ctx, bootstrap.Options{Dir: t.TempDir(), Hostname: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	var fleet *store.Store
	switch backend {
	case "postgres":
		fleet, err = store.OpenPostgres(ctx, pg.Database(t), store.Options{Now: clk.Now})
	default:
		fleet, err = store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "vigil.sqlite"), store.Options{Now: clk.Now})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	if err := fleet.PutAccount(ctx, model.Account{ID: testAccount, Name: "Acme", Role: model.AccountStandalone,
		Enabled: []string{model.ResourceHost}, CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	var st Storage = NewMemory()
	if backend != "memory" {
		if st, err = NewSQL(ctx, fleet.DB(), fleet.Dialect()); err != nil {
			t.Fatal(err)
		}
	}
	sk := &sink{}
	cfg := Config{Storage: st, Fleet: fleet, Sink: sk, CA: boot.CA, CAKey: boot.CAKey, Now: clk.Now,
		Authorize: func(*http.Request, auth.Action, string) error { return nil }}
	for _, f := range tweak {
		f(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(svc.Handler())
	// The handshake verifies client certificates at the test clock, like the service does.
	tc := boot.TLSConfig()
	perConn := tc.GetConfigForClient
	tc.Time = clk.Now
	tc.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := perConn(hi)
		if c != nil {
			c.Time = clk.Now
		}
		return c, err
	}
	srv.TLS = tc
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &harness{t: t, svc: svc, st: st, fleet: fleet, boot: boot, clock: clk, sink: sk, srv: srv, cfg: cfg}
}

// client returns an HTTPS client trusting the server CA and presenting cert (if any).
func (h *harness) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: h.boot.CAPool, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

func newKeyCSR(t testing.TB) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "claimed-name"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func tlsCert(t testing.TB, certPEM string, key *ecdsa.PrivateKey) *tls.Certificate {
	t.Helper()
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair([]byte(certPEM), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// do sends a JSON (or raw) request and decodes a JSON answer into out; it returns the status.
func (h *harness) do(c *http.Client, method, path string, body, out any, hdr ...string) int {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// refused reports whether an agent call is refused: a failed handshake or a 401.
func (h *harness) refused(c *http.Client) bool {
	h.t.Helper()
	resp, err := c.Post(h.srv.URL+protocol.PathHeartbeat, "application/json", strings.NewReader(`{"state":"RUNNING"}`))
	if err != nil {
		return true
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusUnauthorized
}

// renew gives e a new certificate.
func (h *harness) renew(e *enrolled) {
	h.t.Helper()
	key, csr := newKeyCSR(h.t)
	var rr protocol.RenewResponse
	if code := h.do(e.client, "POST", protocol.PathRenew, protocol.RenewRequest{CSR: csr}, &rr); code != 200 {
		h.t.Fatalf("renew: %d", code)
	}
	e.key, e.cert = key, tlsCert(h.t, rr.Certificate, key)
	e.client = h.client(e.cert)
}

func (h *harness) token(maxUses int, validity time.Duration) string {
	h.t.Helper()
	_, secret, err := h.svc.CreateToken(context.Background(), TokenSpec{Account: testAccount, Name: "test", MaxUses: maxUses, Validity: validity})
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

var debianOS = &model.OS{Family: "debian", Name: "Debian GNU/Linux", VersionID: "12", Codename: "bookworm",
	PrettyName: "Debian GNU/Linux 12 (bookworm)", Ecosystem: "Debian:12"}

// enrolled is an agent with its client certificate.
type enrolled struct {
	id     string
	key    *ecdsa.PrivateKey
	cert   *tls.Certificate
	client *http.Client
	resp   protocol.EnrollResponse
}

func (h *harness) enrollWith(token, hostname string) (int, *enrolled) {
	h.t.Helper()
	key, csr := newKeyCSR(h.t)
	var resp protocol.EnrollResponse
	code := h.do(h.client(nil), "POST", protocol.PathEnroll, protocol.EnrollRequest{Token: token, CSR: csr, Hostname: hostname,
		MachineID: "4c4c4544004d3610804cb4c04f4e5931", Version: "0.3.0", OS: debianOS}, &resp)
	if code != http.StatusOK {
		return code, nil
	}
	cert := tlsCert(h.t, resp.Certificate, key)
	return code, &enrolled{id: resp.AgentID, key: key, cert: cert, client: h.client(cert), resp: resp}
}

func (h *harness) enroll(hostname string) *enrolled {
	h.t.Helper()
	code, e := h.enrollWith(h.token(1, time.Hour), hostname)
	if code != http.StatusOK {
		h.t.Fatalf("enroll: status %d", code)
	}
	return e
}

func (h *harness) heartbeat(e *enrolled, state string) (int, protocol.HeartbeatResponse) {
	h.t.Helper()
	var out protocol.HeartbeatResponse
	code := h.do(e.client, "POST", protocol.PathHeartbeat, protocol.Heartbeat{Version: "0.3.0", State: state,
		Sensors: []string{protocol.SensorOSPackages, protocol.SensorPorts}, Time: h.clock.Now()}, &out)
	return code, out
}

func gz(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func (h *harness) upload(e *enrolled, u protocol.Upload) (int, protocol.UploadResponse) {
	h.t.Helper()
	var out protocol.UploadResponse
	code := h.do(e.client, "PUT", protocol.PathInventory, gz(h.t, u), &out, "Content-Encoding", "gzip")
	return code, out
}

func (h *harness) coverage(resourceID string) model.Coverage {
	h.t.Helper()
	page, err := h.fleet.ListCoverage(context.Background(), []string{testAccount}, store.CoverageQuery{ResourceIDs: []string{resourceID}, ScanTypes: []string{model.ScanPackage}})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(page.Coverage) != 1 {
		h.t.Fatalf("coverage of %s: %d rows", resourceID, len(page.Coverage))
	}
	return page.Coverage[0]
}
