package agents

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
)

func writeRelease(t *testing.T, dir, version, goos, arch string, bin []byte, key ed25519.PrivateKey) {
	t.Helper()
	d := filepath.Join(dir, version, goos, arch)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	if err := os.WriteFile(filepath.Join(d, ReleaseBinary), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, sum[:])) + "\n"
	if err := os.WriteFile(filepath.Join(d, ReleaseSignature), []byte(sig), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReleases(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	bin := []byte("\x7fELF vigil-agent 0.4.0 linux/amd64")
	writeRelease(t, dir, "0.4.0", "linux", "amd64", bin, priv)
	writeRelease(t, dir, "0.4.1", "linux", "amd64", []byte("tampered"), otherKey)
	h := newHarness(t, "memory", func(c *Config) { c.ReleasesDir, c.ReleaseKey = dir, pub })
	e := h.enroll("upd-1")

	resp, err := e.client.Get(h.srv.URL + protocol.PathReleases + "0.4.0/linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(bin) {
		t.Fatalf("release: %d %q", resp.StatusCode, body)
	}
	sum := sha256.Sum256(body)
	if got := resp.Header.Get(protocol.HeaderReleaseSHA256); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256 header %q", got)
	}
	sig, err := base64.StdEncoding.DecodeString(resp.Header.Get(protocol.HeaderReleaseSignature))
	if err != nil || !ed25519.Verify(pub, sum[:], sig) {
		t.Fatalf("signature header does not verify: %v", err)
	}
	for path, want := range map[string]int{
		"0.4.1/linux/amd64":       http.StatusServiceUnavailable, // signed by another key
		"0.9.9/linux/amd64":       http.StatusNotFound,
		"0.4.0/linux/..%2f..":     http.StatusNotFound,
		"..%2f..%2fetc/linux/x86": http.StatusNotFound,
		"0.4.0/Linux/amd64":       http.StatusNotFound,
	} {
		resp, err := e.client.Get(h.srv.URL + protocol.PathReleases + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// Releases need a client certificate too.
	resp, err = h.client(nil).Get(h.srv.URL + protocol.PathReleases + "0.4.0/linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("release without a certificate: %d", resp.StatusCode)
	}
}

// keyStore holds the test's API keys.
type keyStore map[string]auth.StoredKey

func (k keyStore) Lookup(_ context.Context, id string) (auth.StoredKey, error) {
	sk, ok := k[id]
	if !ok {
		return sk, auth.ErrUnknownKey
	}
	return sk, nil
}

// TestMountedOnRouter mounts both route sets on the real API router, as server/app will: the
// agent routes public (they authenticate by certificate or join token), the admin routes behind
// API keys and the router's authorization.
func TestMountedOnRouter(t *testing.T) {
	h := newHarness(t, "sqlite")
	ks := keyStore{}
	now := time.Now()
	admin, sk, err := auth.Issue(auth.Hasher{}, testAccount, auth.RoleAdmin, "admin", now, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ks[sk.ID] = sk
	reader, rk, _ := auth.Issue(auth.Hasher{}, testAccount, auth.RoleReadOnly, "reader", now, time.Time{})
	ks[rk.ID] = rk
	rt := api.New(api.Config{Auth: &auth.Authenticator{Store: ks}})
	h.svc.cfg.Authorize = rt.Authorize
	for _, r := range h.svc.AgentRoutes() {
		opts := []api.RouteOption{api.Public(), api.Doc(r.OperationID, r.Summary, "agents")}
		if r.BodyLimit > 0 {
			opts = append(opts, api.BodyLimit(r.BodyLimit))
		}
		rt.Handle(r.Pattern, r.Handler, opts...)
	}
	for _, r := range h.svc.AdminRoutes() {
		rt.Handle(r.Pattern, r.Handler, api.Doc(r.OperationID, r.Summary, "agents"))
	}
	if _, err := rt.OpenAPI(api.Info{Title: "t", Version: "1"}); err != nil {
		t.Fatalf("OpenAPI: %v", err)
	}
	srv := httptest.NewUnstartedServer(rt)
	srv.TLS = h.boot.TLSConfig()
	srv.StartTLS()
	defer srv.Close()
	h.srv = srv

	call := func(c *http.Client, key, method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode < 300 {
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatalf("%s: %v", data, err)
			}
		}
		return resp.StatusCode
	}
	plain := h.client(nil)
	if code := call(plain, "", "GET", "/v1/agents", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("admin route without a key: %d", code)
	}
	if code := call(plain, reader, "POST", "/v1/agent-join-tokens", `{"name":"x"}`, nil); code != http.StatusForbidden {
		t.Fatalf("read-only key creating a token: %d", code)
	}
	var created CreatedToken
	if code := call(plain, admin, "POST", "/v1/agent-join-tokens", `{"name":"fleet","maxUses":2,"validitySeconds":3600}`, &created); code != http.StatusCreated {
		t.Fatalf("create token: %d", code)
	}
	if !strings.HasPrefix(created.Token, tokenPrefix) || created.MaxUses != 2 {
		t.Fatalf("created %+v", created)
	}
	var toks struct{ Tokens []map[string]any }
	call(plain, admin, "GET", "/v1/agent-join-tokens", "", &toks)
	if len(toks.Tokens) != 1 || toks.Tokens[0]["hash"] != nil || toks.Tokens[0]["token"] != nil {
		t.Fatalf("token list shows a secret or hash: %+v", toks)
	}
	code, e := h.enrollWith(created.Token, "routed-1")
	if code != 200 {
		t.Fatalf("enroll through the router: %d", code)
	}
	if code, _ := h.heartbeat(e, protocol.StateRunning); code != 200 {
		t.Fatalf("heartbeat through the router: %d", code)
	}
	if code := call(plain, admin, "POST", "/v1/agents/"+e.id+"/instructions", `{"type":"RUN_COMMAND"}`, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid instruction: %d", code)
	}
	if code := call(plain, admin, "POST", "/v1/agents/"+e.id+"/instructions", `{"type":"SET_INTERVAL","intervalSeconds":900}`, nil); code != http.StatusCreated {
		t.Fatalf("queue instruction: %d", code)
	}
	if code := call(plain, admin, "POST", "/v1/agents/"+e.id+"/instructions?account=other", `{"type":"COLLECT_NOW"}`, nil); code != http.StatusNotFound && code != http.StatusForbidden {
		t.Fatalf("instruction for another account: %d", code)
	}
	if _, hb := h.heartbeat(e, protocol.StateRunning); len(hb.Instructions) != 1 || hb.Instructions[0].IntervalSeconds != 900 {
		t.Fatalf("heartbeat instructions %+v", hb.Instructions)
	}
	var list struct{ Agents []AgentView }
	call(plain, reader, "GET", "/v1/agents", "", &list)
	if len(list.Agents) != 1 || list.Agents[0].PingStatus != PingOnline || list.Agents[0].Hostname != "routed-1" {
		t.Fatalf("agents %+v", list.Agents)
	}
	if code := call(plain, admin, "POST", "/v1/agents/"+e.id+"/revoke", "", nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	if code, _ := h.heartbeat(e, protocol.StateRunning); code != http.StatusForbidden {
		t.Fatalf("revoked agent through the router: %d", code)
	}
	if code := call(plain, admin, "POST", "/v1/agent-join-tokens/"+created.ID+"/revoke", "", nil); code != http.StatusNoContent {
		t.Fatalf("revoke token: %d", code)
	}
	if code, _ := h.enrollWith(created.Token, "routed-2"); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", code)
	}
}

// requireAgent checks validity at the service clock even where the TLS layer did not.
func TestRequireAgentChecksExpiry(t *testing.T) {
	h := newHarness(t, "memory")
	e := h.enroll("direct")
	leaf, err := x509.ParseCertificate(e.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	called := false
	hf := h.svc.requireAgent(func(http.ResponseWriter, *http.Request) error { called = true; return nil })
	req := httptest.NewRequest("POST", protocol.PathHeartbeat, nil)
	req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
	if err := hf(httptest.NewRecorder(), req); err != nil || !called {
		t.Fatalf("valid: %v %v", err, called)
	}
	h.clock.Add(8 * 24 * time.Hour)
	called = false
	err = hf(httptest.NewRecorder(), req)
	if p := api.ProblemFor(err); p.Status != http.StatusUnauthorized || called {
		t.Fatalf("expired: %v", err)
	}
}

func TestConfigureTLS(t *testing.T) {
	h := newHarness(t, "memory")
	inner := &tls.Config{MinVersion: tls.VersionTLS12}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return inner, nil }}
	ConfigureTLS(cfg, h.boot.CAPool)
	per, _ := cfg.GetConfigForClient(nil)
	for _, c := range []*tls.Config{cfg, per} {
		if c.MinVersion != tls.VersionTLS13 || c.ClientAuth != tls.VerifyClientCertIfGiven || c.ClientCAs != h.boot.CAPool {
			t.Fatalf("config %+v", c)
		}
	}
	if inner.MinVersion != tls.VersionTLS12 {
		t.Fatal("ConfigureTLS modified the shared inner configuration")
	}
}
