package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/api/apitest"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/bootstrap"
)

// Accounts: organization with management 900000000000, delegated admin 300000000000 and members
// 100000000000 and 200000000000; 400000000000 is standalone.
const (
	acctA    = "100000000000"
	acctB    = "200000000000"
	acctDA   = "300000000000"
	acctLone = "400000000000"
	acctMgmt = "900000000000"
)

var org = auth.StaticOrg{Orgs: []auth.OrgMembers{
	{Management: acctMgmt, DelegatedAdmin: acctDA, Members: []string{acctA, acctB}},
}}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t        *testing.T
	rt       *api.Router
	srv      *httptest.Server
	client   *http.Client
	keys     map[string]string // name → raw key
	calls    atomic.Int64      // handler bodies reached
	audits   []api.AuditRecord
	auditsMu sync.Mutex
	logs     *bytes.Buffer
	logsMu   *sync.Mutex
	clock    *clock
	reg      *prometheus.Registry
	pages    *api.PageTokens
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// resources owned by accounts, for the sample endpoints.
var resources = map[string]string{"i-0a1b2c3d4e5f60718": acctA, "i-0b2c3d4e5f6071829": acctB}

type ruleBody struct {
	Account    string   `json:"account"`
	Name       string   `json:"name"`
	Reason     string   `json:"reason"`
	Severities []string `json:"severities"`
}

func (b *ruleBody) Validate() []api.FieldError {
	var fe []api.FieldError
	if b.Name == "" {
		fe = append(fe, api.FieldError{Field: "name", Message: "required"})
	}
	for i, s := range b.Severities {
		switch s {
		case "INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNTRIAGED":
		default:
			fe = append(fe, api.FieldError{Field: fmt.Sprintf("severities[%d]", i), Message: "unknown severity " + s})
		}
	}
	return fe
}

func newEnv(t *testing.T, mod func(*api.Config)) *env {
	t.Helper()
	e := &env{t: t, keys: map[string]string{}, logs: &bytes.Buffer{}, logsMu: &sync.Mutex{}, clock: &clock{t: t0}, reg: prometheus.NewRegistry()}
	store := &auth.MemKeyStore{}
	h := auth.Hasher{Pepper: []byte("test pepper, 32 bytes long......")}
	issue := func(name, account string, role auth.Role, expires time.Time) string {
		raw, sk, err := auth.Issue(h, account, role, name, t0.Add(-time.Hour), expires)
		if err != nil {
			t.Fatal(err)
		}
		store.Put(sk)
		e.keys[name] = raw
		return sk.ID
	}
	issue("a-admin", acctA, auth.RoleAdmin, time.Time{})
	issue("a-ro", acctA, auth.RoleReadOnly, time.Time{})
	issue("b-admin", acctB, auth.RoleAdmin, time.Time{})
	issue("da-admin", acctDA, auth.RoleAdmin, time.Time{})
	issue("da-ro", acctDA, auth.RoleReadOnly, time.Time{})
	issue("mgmt-admin", acctMgmt, auth.RoleAdmin, time.Time{})
	issue("lone-admin", acctLone, auth.RoleAdmin, time.Time{})
	issue("a-expired", acctA, auth.RoleAdmin, t0.Add(-time.Minute))
	rid := issue("a-revoked", acctA, auth.RoleAdmin, time.Time{})
	if err := store.Revoke(rid, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	e.pages = &api.PageTokens{Key: []byte("page token key, 32 bytes long..."), Now: e.clock.Now}

	cfg := api.Config{
		Auth:   &auth.Authenticator{Store: store, Hasher: h, Now: e.clock.Now},
		Org:    org,
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{e.logsMu, e.logs}, nil)),
		Rate:   1000, Burst: 1000,
		Auditor: api.AuditorFunc(func(_ context.Context, r api.AuditRecord) error {
			e.auditsMu.Lock()
			defer e.auditsMu.Unlock()
			e.audits = append(e.audits, r)
			return nil
		}),
		Metrics: e.reg, Gatherer: e.reg,
		Now: e.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	e.rt = api.New(cfg)
	e.routes()
	bs, err := bootstrap.Bootstrap(context.Background(), bootstrap.Options{Dir: t.TempDir(), Hostname: "vigil.test"})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(e.rt) // listens on 127.0.0.1
	e.srv.TLS = bs.TLSConfig()
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	tr := &http.Transport{}
	tr.TLSClientConfig = bs.TLSConfig().Clone()
	tr.TLSClientConfig.Certificates = nil
	tr.TLSClientConfig.RootCAs = bs.CAPool
	e.client = &http.Client{Transport: tr}
	return e
}

func (e *env) routes() {
	rt := e.rt
	rt.HandleOps()
	rt.Handle("GET /v1/resources/{resourceId}", func(w http.ResponseWriter, r *http.Request) error {
		owner, ok := resources[r.PathValue("resourceId")]
		if !ok {
			return api.ErrNotFound
		}
		if err := rt.Authorize(r, auth.ReadResources, owner); err != nil {
			return err
		}
		e.calls.Add(1)
		return api.WriteJSON(w, 200, map[string]string{"resourceId": r.PathValue("resourceId"), "account": owner})
	}, api.Doc("getResource", "Get a resource", "resources"))
	rt.Handle("DELETE /v1/resources/{resourceId}", func(w http.ResponseWriter, r *http.Request) error {
		owner, ok := resources[r.PathValue("resourceId")]
		if !ok {
			return api.ErrNotFound
		}
		if err := rt.Authorize(r, auth.WriteResources, owner); err != nil {
			return err
		}
		api.SetAuditTarget(r, "account/"+owner+"/resource/"+r.PathValue("resourceId"))
		e.calls.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}, api.Doc("deleteResource", "Delete a resource", "resources"), api.Success(204, ""))
	rt.Handle("POST /v1/suppression-rules", api.JSONHandler(func(w http.ResponseWriter, r *http.Request, b *ruleBody) error {
		p, _ := auth.PrincipalFrom(r.Context())
		if b.Account == "" {
			b.Account = p.Account
		}
		if err := rt.Authorize(r, auth.WriteSuppressionRules, b.Account); err != nil {
			return err
		}
		e.calls.Add(1)
		return api.WriteJSON(w, 201, b)
	}), api.Doc("createSuppressionRule", "Create a suppression rule", "suppression"),
		api.Schemas(map[string]any{"type": "object"}, map[string]any{"type": "object"}), api.Success(201, ""))
	rt.Handle("GET /v1/findings", func(w http.ResponseWriter, r *http.Request) error {
		p, _ := auth.PrincipalFrom(r.Context())
		acct := r.URL.Query().Get("account")
		if acct == "" {
			acct = p.Account
		}
		if err := rt.Authorize(r, auth.ReadFindings, acct); err != nil {
			return err
		}
		size, tok, err := api.PageParams(r)
		if err != nil {
			return err
		}
		scope := "findings|" + acct
		start := 0
		if tok != "" {
			if err := e.pages.Decode(scope, tok, &start); err != nil {
				return err
			}
		}
		e.calls.Add(1)
		const total = 7
		page := api.Page[int]{Items: []int{}}
		for i := start; i < total && i < start+size; i++ {
			page.Items = append(page.Items, i)
		}
		if next := start + size; next < total {
			if page.NextToken, err = e.pages.Encode(scope, next); err != nil {
				return err
			}
		}
		return api.WriteJSON(w, 200, page)
	}, api.Doc("listFindings", "List findings", "findings"), api.Paginated(),
		api.Query(api.Param{Name: "account", Description: "Account whose findings to list (default: the key's)."}))
	rt.Handle("PUT /v1/accounts/{accountId}/scan-types", api.JSONHandler(func(w http.ResponseWriter, r *http.Request, b *struct {
		Enabled []string `json:"enabled"`
	}) error {
		if err := rt.Authorize(r, auth.WriteAccount, r.PathValue("accountId")); err != nil {
			return err
		}
		e.calls.Add(1)
		return api.WriteJSON(w, 200, b)
	}), api.Doc("updateScanTypes", "Enable scan types", "accounts"), api.Schemas(map[string]any{"type": "object"}, nil))
	rt.Handle("POST /v1/boom", func(w http.ResponseWriter, r *http.Request) error {
		panic("boom")
	}, api.Doc("boom", "Panics", "test"))
	if err := rt.HandleOpenAPI(api.Info{Title: "Vigil", Version: "test"}); err != nil {
		e.t.Fatal(err)
	}
}

type resp struct {
	status  int
	header  http.Header
	body    []byte
	problem api.Problem
}

func (e *env) do(method, path, key string, body io.Reader, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+e.keys[key])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, body: b}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(b, &out.problem); err != nil {
			e.t.Fatalf("problem body %q: %v", b, err)
		}
		if out.problem.Status != res.StatusCode || out.problem.Type == "" || out.problem.Title == "" {
			e.t.Fatalf("incomplete problem %s", b)
		}
		if out.problem.Instance != res.Header.Get("X-Request-Id") || out.problem.Instance == "" {
			e.t.Fatalf("problem instance %q, request id %q", out.problem.Instance, res.Header.Get("X-Request-Id"))
		}
	} else if res.StatusCode >= 400 && path != "/readyz" { // readyz answers its own status body
		e.t.Fatalf("%s %s: error %d without problem+json: %s", method, path, res.StatusCode, b)
	}
	return out
}

const resA = "/v1/resources/i-0a1b2c3d4e5f60718"

func TestAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	raw := e.keys["a-admin"]
	forged := raw[:len(raw)-3] + "aaa"
	if forged == raw {
		forged = raw[:len(raw)-3] + "baa"
	}
	unknown, _ := auth.NewKey()
	cases := []struct {
		name string
		hdr  []string
		want int
	}{
		{"bearer", []string{"Authorization", "Bearer " + raw}, 200},
		{"bearer lowercase scheme", []string{"Authorization", "bearer " + raw}, 200},
		{"x-api-key", []string{"X-Api-Key", raw}, 200},
		{"read-only key reads", []string{"X-Api-Key", e.keys["a-ro"]}, 200},
		{"none", nil, 401},
		{"basic scheme", []string{"Authorization", "Basic " + raw}, 401},
		{"both headers", []string{"Authorization", "Bearer " + raw, "X-Api-Key", raw}, 401},
		{"malformed", []string{"Authorization", "Bearer vgl_nope"}, 401},
		{"forged secret", []string{"Authorization", "Bearer " + forged}, 401},
		{"unknown key id", []string{"Authorization", "Bearer " + unknown.String()}, 401},
		{"expired", []string{"Authorization", "Bearer " + e.keys["a-expired"]}, 401},
		{"revoked", []string{"Authorization", "Bearer " + e.keys["a-revoked"]}, 401},
	}
	var details []string
	for _, c := range cases {
		before := e.calls.Load()
		r := e.do("GET", resA, "", nil, c.hdr...)
		if r.status != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, r.status, c.want, r.body)
		}
		reached := e.calls.Load() != before
		if reached != (c.want == 200) {
			t.Errorf("%s: handler reached = %v", c.name, reached)
		}
		if c.want == 401 {
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: no WWW-Authenticate", c.name)
			}
			if c.hdr != nil && len(c.hdr) == 2 && strings.HasPrefix(c.hdr[1], "Bearer vgl_") {
				details = append(details, r.problem.Detail)
			}
		}
	}
	// Forged, unknown, expired, revoked and malformed keys are indistinguishable to the client.
	for _, d := range details {
		if d != details[0] {
			t.Errorf("401 details differ: %q vs %q", d, details[0])
		}
	}
	// The log says why.
	e.logsMu.Lock()
	logs := e.logs.String()
	e.logsMu.Unlock()
	for _, why := range []string{"API key expired", "API key revoked", "secret does not match"} {
		if !strings.Contains(logs, why) {
			t.Errorf("log lacks %q", why)
		}
	}
	if strings.Contains(logs, raw[len(raw)-20:]) {
		t.Error("a key secret reached the log")
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t, nil)
	body := func(s string) io.Reader { return strings.NewReader(s) }
	ct := []string{"Content-Type", "application/json"}
	cases := []struct {
		name, method, path, key, body string
		want                          int
	}{
		{"own resource", "GET", resA, "a-admin", "", 200},
		{"member reads other member", "GET", resA, "b-admin", "", 404},
		{"standalone reads member", "GET", resA, "lone-admin", "", 404},
		{"delegated admin reads member", "GET", resA, "da-admin", "", 200},
		{"read-only delegated admin reads member", "GET", resA, "da-ro", "", 200},
		{"management does not read findings data", "GET", resA, "mgmt-admin", "", 404},
		{"read-only deletes own", "DELETE", resA, "a-ro", "", 403},
		{"read-only DA deletes member's", "DELETE", resA, "da-ro", "", 403},
		{"foreign deletes", "DELETE", resA, "b-admin", "", 404},
		{"DA deletes member's", "DELETE", resA, "da-admin", "", 204},
		{"missing resource", "GET", "/v1/resources/i-nope", "a-admin", "", 404},
		{"findings own", "GET", "/v1/findings", "a-admin", "", 200},
		{"findings foreign account", "GET", "/v1/findings?account=" + acctB, "a-admin", "", 404},
		{"findings DA for member", "GET", "/v1/findings?account=" + acctB, "da-admin", "", 200},
		{"rule in own account", "POST", "/v1/suppression-rules", "a-admin", `{"name":"n"}`, 201},
		{"rule in foreign account", "POST", "/v1/suppression-rules", "a-admin", `{"name":"n","account":"` + acctB + `"}`, 404},
		{"DA rule for member", "POST", "/v1/suppression-rules", "da-admin", `{"name":"n","account":"` + acctB + `"}`, 201},
		{"read-only rule", "POST", "/v1/suppression-rules", "a-ro", `{"name":"n"}`, 403},
		{"scan types own", "PUT", "/v1/accounts/" + acctA + "/scan-types", "a-admin", `{"enabled":["package"]}`, 200},
		{"scan types foreign", "PUT", "/v1/accounts/" + acctB + "/scan-types", "a-admin", `{"enabled":["package"]}`, 404},
	}
	for _, c := range cases {
		var b io.Reader
		var hdr []string
		if c.body != "" {
			b, hdr = body(c.body), ct
		}
		r := e.do(c.method, c.path, c.key, b, hdr...)
		if r.status != c.want {
			t.Errorf("%s: %s %s as %s = %d, want %d (%s)", c.name, c.method, c.path, c.key, r.status, c.want, r.body)
		}
	}
}

func TestStrictJSON(t *testing.T) {
	e := newEnv(t, nil)
	big := `{"name":"` + strings.Repeat("a", 9<<20) + `"}`
	cases := []struct {
		name, ct, body string
		chunked        bool
		want           int
		field          string
	}{
		{"valid", "application/json", `{"name":"ignore test fixtures","reason":"x","severities":["LOW"]}`, false, 201, ""},
		{"charset utf-8", "application/json; charset=utf-8", `{"name":"n"}`, false, 201, ""},
		{"unknown field", "application/json", `{"name":"n","severity":"LOW"}`, false, 400, "severity"},
		{"trailing object", "application/json", `{"name":"n"}{"name":"m"}`, false, 400, ""},
		{"trailing garbage", "application/json", `{"name":"n"} x`, false, 400, ""},
		{"malformed", "application/json", `{"name":}`, false, 400, ""},
		{"truncated", "application/json", `{"name":"n"`, false, 400, ""},
		{"wrong type", "application/json", `{"name":7}`, false, 400, "name"},
		{"array for object", "application/json", `[1,2]`, false, 400, ""},
		{"empty", "application/json", ``, false, 400, ""},
		{"text/plain", "text/plain", `{"name":"n"}`, false, 415, ""},
		{"no content type", "", `{"name":"n"}`, false, 415, ""},
		{"latin-1", "application/json; charset=iso-8859-1", `{"name":"n"}`, false, 415, ""},
		{"validation", "application/json", `{"name":"","severities":["LOW","SEVERE"]}`, false, 422, "name"},
		{"too large with length", "application/json", big, false, 413, ""},
		{"too large chunked", "application/json", big, true, 413, ""},
	}
	for _, c := range cases {
		before := e.calls.Load()
		var body io.Reader = strings.NewReader(c.body)
		if c.chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		var hdr []string
		if c.ct != "" {
			hdr = []string{"Content-Type", c.ct}
		}
		r := e.do("POST", "/v1/suppression-rules", "a-admin", body, hdr...)
		if r.status != c.want {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.want, r.body)
			continue
		}
		if reached := e.calls.Load() != before; reached != (c.want < 300) {
			t.Errorf("%s: handler reached = %v", c.name, reached)
		}
		if c.field != "" && (len(r.problem.Errors) == 0 || r.problem.Errors[0].Field != c.field) {
			t.Errorf("%s: errors %+v, want field %s", c.name, r.problem.Errors, c.field)
		}
		if c.want == 422 && len(r.problem.Errors) != 2 {
			t.Errorf("validation errors %+v", r.problem.Errors)
		}
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.Rate, c.Burst = 0.5, 2 })
	for i := 0; i < 2; i++ {
		if r := e.do("GET", resA, "a-admin", nil); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := e.do("GET", resA, "a-admin", nil)
	if r.status != 429 || r.header.Get("Retry-After") != "2" {
		t.Fatalf("third request: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	// Another key of the same account has its own bucket.
	if r := e.do("GET", resA, "a-ro", nil); r.status != 200 {
		t.Fatalf("other key limited: %d", r.status)
	}
	e.clock.Add(1500 * time.Millisecond)
	if r := e.do("GET", resA, "a-admin", nil); r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("after 1.5s: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	e.clock.Add(500 * time.Millisecond)
	if r := e.do("GET", resA, "a-admin", nil); r.status != 200 {
		t.Fatalf("after refill: %d", r.status)
	}
}

func TestAuditMutationsOnly(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	e.do("GET", resA, "a-admin", nil)
	e.do("GET", "/v1/findings", "a-admin", nil)
	e.do("GET", "/healthz", "", nil)
	e.do("POST", "/v1/suppression-rules", "a-admin", strings.NewReader(`{"name":"n"}`), "Content-Type", "application/json",
		"X-Forwarded-For", "203.0.113.9, 10.1.1.1")
	e.do("DELETE", resA, "a-ro", nil)
	e.do("DELETE", resA, "", nil)
	e.do("DELETE", resA, "da-admin", nil)
	func() {
		defer func() { recover() }()
		e.do("POST", "/v1/boom", "a-admin", nil)
	}()
	e.auditsMu.Lock()
	defer e.auditsMu.Unlock()
	want := []struct {
		account, keyName, route, target, remote string
		status                                  int
	}{
		{acctA, "a-admin", "POST /v1/suppression-rules", "/v1/suppression-rules", "10.1.1.1", 201},
		{acctA, "a-ro", "DELETE /v1/resources/{resourceId}", resA, "127.0.0.1", 403},
		{"", "", "DELETE /v1/resources/{resourceId}", resA, "127.0.0.1", 401},
		{acctDA, "da-admin", "DELETE /v1/resources/{resourceId}", "account/" + acctA + "/resource/i-0a1b2c3d4e5f60718", "127.0.0.1", 204},
		{acctA, "a-admin", "POST /v1/boom", "/v1/boom", "127.0.0.1", 500},
	}
	if len(e.audits) != len(want) {
		t.Fatalf("%d audit records, want %d: %+v", len(e.audits), len(want), e.audits)
	}
	for i, w := range want {
		a := e.audits[i]
		keyID := ""
		if w.keyName != "" {
			p, _ := auth.ParseKey(e.keys[w.keyName])
			keyID = p.ID
		}
		if a.Account != w.account || a.KeyID != keyID || a.Route != w.route || a.Target != w.target ||
			a.Remote != w.remote || a.Status != w.status || a.RequestID == "" || !a.Time.Equal(t0) {
			t.Errorf("audit %d: %+v, want %+v", i, a, w)
		}
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("POST", "/v1/boom", "a-admin", nil)
	if r.status != 500 || r.problem.Detail != "" {
		t.Fatalf("panic: %d %s", r.status, r.body)
	}
	e.logsMu.Lock()
	logs := e.logs.String()
	e.logsMu.Unlock()
	if !strings.Contains(logs, `"panic":"boom"`) {
		t.Fatal("panic not logged")
	}
	// The server still serves.
	if r := e.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatal("server dead after panic")
	}
}

func TestUnmatched(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.do("GET", "/v1/nothing-here", "a-admin", nil); r.status != 404 {
		t.Fatalf("unknown path: %d", r.status)
	}
	r := e.do("PATCH", resA, "a-admin", nil)
	if r.status != 405 || !strings.Contains(r.header.Get("Allow"), "DELETE") {
		t.Fatalf("wrong method: %d Allow=%q", r.status, r.header.Get("Allow"))
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.do("GET", "/healthz", "", nil); r.status != 200 || !strings.Contains(string(r.body), `"ok"`) {
		t.Fatalf("healthz %d %s", r.status, r.body)
	}
	var dbErr atomic.Value
	dbErr.Store("")
	e.rt.Ready.Add("database", func(ctx context.Context) error {
		if s := dbErr.Load().(string); s != "" {
			return errors.New(s)
		}
		return nil
	})
	e.rt.Ready.Add("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	e.rt.Ready.Timeout = 50 * time.Millisecond
	r := e.do("GET", "/readyz", "", nil)
	if r.status != 503 || !strings.Contains(string(r.body), `"slow":"context deadline exceeded"`) {
		t.Fatalf("readyz with a hung check: %d %s", r.status, r.body)
	}
	e.rt.Ready.Add("slow", func(context.Context) error { return nil })
	if r := e.do("GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	dbErr.Store("connection refused")
	if r := e.do("GET", "/readyz", "", nil); r.status != 503 || !strings.Contains(string(r.body), "connection refused") {
		t.Fatalf("readyz with db down: %d %s", r.status, r.body)
	}
	dbErr.Store("")
	e.rt.Ready.SetDraining()
	if r := e.do("GET", "/readyz", "", nil); r.status != 503 {
		t.Fatalf("readyz draining: %d", r.status)
	}

	e.do("GET", resA, "a-admin", nil)
	e.do("GET", resA, "b-admin", nil)
	e.do("GET", "/v1/resources/i-0b2c3d4e5f6071829", "b-admin", nil)
	e.do("GET", "/no/such/path", "", nil)
	m := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`vigil_http_requests_total{code="200",method="GET",route="GET /v1/resources/{resourceId}"} 2`,
		`vigil_http_requests_total{code="404",method="GET",route="GET /v1/resources/{resourceId}"} 1`,
		`vigil_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`vigil_http_request_duration_seconds_bucket{code="200",method="GET",route="GET /v1/resources/{resourceId}",le="0.001"}`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(m.body), "i-0a1b2c3d4e5f60718") {
		t.Error("raw paths in metric labels")
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("GET", "/healthz", "", nil, "X-Request-Id", "client-chosen")
	if id := r.header.Get("X-Request-Id"); id == "" || id == "client-chosen" {
		t.Fatalf("untrusted client set the request id: %q", id)
	}
	e2 := newEnv(t, func(c *api.Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	if id := e2.do("GET", "/healthz", "", nil, "X-Request-Id", "lb-7f3a").header.Get("X-Request-Id"); id != "lb-7f3a" {
		t.Fatalf("proxy request id dropped: %q", id)
	}
	if id := e2.do("GET", "/healthz", "", nil, "X-Request-Id", "bad id").header.Get("X-Request-Id"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("bad request id kept: %q", id)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, nil)
	var all []int
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		path := "/v1/findings?maxResults=3"
		if tok != "" {
			path += "&nextToken=" + tok
		}
		r := e.do("GET", path, "a-admin", nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var p api.Page[int]
		json.Unmarshal(r.body, &p)
		all = append(all, p.Items...)
		if p.NextToken == "" {
			break
		}
		tok = p.NextToken
		// The token is bound to the account: B cannot replay A's listing position.
		if r := e.do("GET", "/v1/findings?nextToken="+tok, "b-admin", nil); r.status != 400 || r.problem.Errors[0].Field != "nextToken" {
			t.Fatalf("token replayed in another account: %d %s", r.status, r.body)
		}
	}
	if fmt.Sprint(all) != "[0 1 2 3 4 5 6]" {
		t.Fatalf("pages %v", all)
	}
	for _, bad := range []string{"maxResults=0", "maxResults=501", "maxResults=x", "nextToken=abc", "nextToken=" + tok[:len(tok)-2] + "AA"} {
		if r := e.do("GET", "/v1/findings?"+bad, "a-admin", nil); r.status != 400 {
			t.Errorf("%s: %d", bad, r.status)
		}
	}
}

func TestPageTokenExpiry(t *testing.T) {
	c := &clock{t: t0}
	pt := &api.PageTokens{Key: []byte("k"), TTL: time.Hour, Now: c.Now}
	tok, err := pt.Encode("s", map[string]string{"after": "CVE-2024-3094"})
	if err != nil {
		t.Fatal(err)
	}
	var cur map[string]string
	if err := pt.Decode("s", tok, &cur); err != nil || cur["after"] != "CVE-2024-3094" {
		t.Fatalf("%v %v", err, cur)
	}
	if err := pt.Decode("s2", tok, &cur); err == nil {
		t.Fatal("other scope accepted")
	}
	if err := (&api.PageTokens{Key: []byte("other"), Now: c.Now}).Decode("s", tok, &cur); err == nil {
		t.Fatal("other key accepted")
	}
	c.Add(time.Hour)
	if err := pt.Decode("s", tok, &cur); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("GET", "/v1/openapi.json", "", nil)
	if r.status != 200 {
		t.Fatal(r.status)
	}
	apitest.CheckOpenAPI(t, r.body, e.rt.Routes())
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("doc: %v", err)
	}
	op := doc["paths"].(map[string]any)["/v1/resources/{resourceId}"].(map[string]any)["get"].(map[string]any)
	if op["operationId"] != "getResource" || op["parameters"] == nil || op["responses"].(map[string]any)["401"] == nil {
		t.Fatalf("operation %v", op)
	}

	list := doc["paths"].(map[string]any)["/v1/findings"].(map[string]any)["get"].(map[string]any)
	if ps, _ := json.Marshal(list["parameters"]); !strings.Contains(string(ps), `"name":"nextToken"`) || !strings.Contains(string(ps), `"in":"query"`) {
		t.Fatalf("query parameters not documented: %s", ps)
	}

	// The check catches a document that misses a route and one that lists a phantom.
	var d map[string]any
	json.Unmarshal(r.body, &d)
	paths := d["paths"].(map[string]any)
	delete(paths, "/v1/findings")
	paths["/v1/phantom"] = map[string]any{"get": map[string]any{}}
	stale, _ := json.Marshal(d)
	rec := &recordingTB{TB: t}
	apitest.CheckOpenAPI(rec, stale, e.rt.Routes())
	if len(rec.errs) != 2 || !strings.Contains(strings.Join(rec.errs, "\n"), "GET /v1/findings") || !strings.Contains(strings.Join(rec.errs, "\n"), "phantom") {
		t.Fatalf("stale document not caught: %q", rec.errs)
	}
}

// recordingTB collects failures instead of failing, to test the helpers themselves.
type recordingTB struct {
	testing.TB
	errs []string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Logf(string, ...any)       {}
func (r *recordingTB) Errorf(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }

func walkFor(e *env) apitest.Walk {
	return apitest.Walk{
		ForeignKey: e.keys["b-admin"],
		OwnerKey:   e.keys["a-admin"],
		PathValue: func(r api.Route, p string) string {
			switch p {
			case "resourceId":
				return "i-0a1b2c3d4e5f60718"
			case "accountId":
				return acctA
			}
			return "x"
		},
		Query: func(r api.Route) string { return "account=" + acctA },
		Body: func(r api.Route) []byte {
			switch r.Pattern {
			case "POST /v1/suppression-rules":
				return []byte(`{"name":"n","account":"` + acctA + `"}`)
			case "PUT /v1/accounts/{accountId}/scan-types":
				return []byte(`{"enabled":["package"]}`)
			}
			return nil
		},
		Skip: func(r api.Route) bool { return r.Pattern == "POST /v1/boom" },
	}
}

func TestForeignAccountWalk(t *testing.T) {
	e := newEnv(t, nil)
	n := apitest.ForeignAccountWalk(t, e.rt, e.rt.Routes(), walkFor(e))
	if n != 5 {
		t.Fatalf("walked %d routes, want 5", n)
	}
}

// TestForeignAccountWalkCatchesMissingCheck proves the walk fails an endpoint that forgets to
// authorize.
func TestForeignAccountWalkCatchesMissingCheck(t *testing.T) {
	e := newEnv(t, nil)
	e.rt.Handle("GET /v1/resources/{resourceId}/leak", func(w http.ResponseWriter, r *http.Request) error {
		return api.WriteJSON(w, 200, map[string]string{"account": resources[r.PathValue("resourceId")]})
	})
	rec := &recordingTB{TB: t}
	apitest.ForeignAccountWalk(rec, e.rt, e.rt.Routes(), walkFor(e))
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "/leak") {
		t.Fatalf("leak not caught: %q", rec.errs)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cases := []struct {
		peer, xff, want string
	}{
		{"198.51.100.4:5000", "", "198.51.100.4"},
		{"198.51.100.4:5000", "203.0.113.9", "198.51.100.4"},               // untrusted peer: header ignored
		{"10.0.0.2:5000", "203.0.113.9", "203.0.113.9"},                    // one trusted proxy
		{"10.0.0.2:5000", "1.2.3.4, 203.0.113.9, 10.0.0.3", "203.0.113.9"}, // spoofed left-most ignored
		{"10.0.0.2:5000", "10.0.0.5, 10.0.0.3", "10.0.0.5"},                // all trusted: the farthest
		{"10.0.0.2:5000", "garbage, 203.0.113.9", "203.0.113.9"},
		{"10.0.0.2:5000", "203.0.113.9, garbage", "10.0.0.2"},
		{"[::1]:5000", "2001:db8::7", "2001:db8::7"},
		{"[::ffff:10.0.0.2]:5000", "203.0.113.9", "203.0.113.9"},
	}
	for _, c := range cases {
		var got string
		rt := api.New(api.Config{Auth: &auth.Authenticator{Store: &auth.MemKeyStore{}}, TrustedProxies: trusted,
			Auditor: api.AuditorFunc(func(_ context.Context, r api.AuditRecord) error { got = r.Remote; return nil })})
		rt.Handle("POST /x", func(w http.ResponseWriter, r *http.Request) error { return nil }, api.Public())
		req := httptest.NewRequest("POST", "/x", nil)
		req.RemoteAddr = c.peer
		if c.xff != "" {
			req.Header.Set("X-Forwarded-For", c.xff)
		}
		rt.ServeHTTP(httptest.NewRecorder(), req)
		if got != c.want {
			t.Errorf("peer %s XFF %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"n"}`, `{"name":"n","x":1}`, `{"name":"n"} {}`, `[`, `{"severities":["LOW",7]}`, `null`, `{"name":"\ud800"}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var body ruleBody
		err := api.DecodeJSONBytes(b, &body)
		if err == nil {
			return
		}
		var p *api.Problem
		if !errors.As(err, &p) {
			t.Fatalf("non-problem error %v", err)
		}
		if p.Status != 400 && p.Status != 422 {
			t.Fatalf("status %d for %q", p.Status, b)
		}
	})
}

func TestFailedAuthenticationLimit(t *testing.T) {
	var lookups atomic.Int64
	e := newEnv(t, func(c *api.Config) {
		c.FailedAuthRate, c.FailedAuthBurst = 0.5, 3
		inner := c.Auth
		c.Auth = authFunc(func(ctx context.Context, raw string) (auth.Principal, error) {
			lookups.Add(1)
			return inner.Authenticate(ctx, raw)
		})
	})
	bad, _ := auth.NewKey()
	for i := 0; i < 3; i++ {
		if r := e.do("GET", resA, "", nil, "X-Api-Key", bad.String()); r.status != 401 {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	// The fourth attempt from this address is refused before any lookup, even with a good key.
	before := lookups.Load()
	r := e.do("GET", resA, "a-admin", nil)
	if r.status != 429 || r.header.Get("Retry-After") != "2" || lookups.Load() != before {
		t.Fatalf("after failures: %d Retry-After %q lookups +%d", r.status, r.header.Get("Retry-After"), lookups.Load()-before)
	}
	e.clock.Add(2 * time.Second)
	if r := e.do("GET", resA, "a-admin", nil); r.status != 200 {
		t.Fatalf("after the wait: %d", r.status)
	}
	// Successful requests do not spend the failure budget.
	for i := 0; i < 10; i++ {
		if r := e.do("GET", resA, "a-admin", nil); r.status != 200 {
			t.Fatalf("good request %d: %d", i, r.status)
		}
	}
}

type authFunc func(ctx context.Context, raw string) (auth.Principal, error)

func (f authFunc) Authenticate(ctx context.Context, raw string) (auth.Principal, error) {
	return f(ctx, raw)
}

func FuzzPageToken(f *testing.F) {
	pt := &api.PageTokens{Key: []byte("fuzz key"), Now: func() time.Time { return t0 }}
	good, _ := pt.Encode("scope", map[string]any{"after": "GHSA-qxp5-gwg8-xv66", "n": 3})
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add("e30.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		var cur map[string]any
		err := pt.Decode("scope", tok, &cur)
		if err == nil && tok != good {
			// Only a MAC'd token may decode; anything else the fuzzer finds is a forgery.
			t.Fatalf("forged token accepted: %q", tok)
		}
		if err != nil {
			var p *api.Problem
			if !errors.As(err, &p) || p.Status != 400 {
				t.Fatalf("error %v is not a 400 problem", err)
			}
		}
	})
}

// Agents behind one NAT address share it; each verified client certificate has a bucket of its own.
func TestRateLimitPerClientCertificate(t *testing.T) {
	rt := api.New(api.Config{Auth: &auth.Authenticator{Store: &auth.MemKeyStore{}}, Rate: 0.5, Burst: 1})
	rt.Handle("POST /x", func(w http.ResponseWriter, r *http.Request) error { return nil }, api.Public())
	call := func(serial int64) int {
		req := httptest.NewRequest("POST", "/x", nil)
		req.RemoteAddr = "203.0.113.9:4000"
		if serial > 0 {
			req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{SerialNumber: big.NewInt(serial)}}}}
		}
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		return w.Code
	}
	if a, b, c := call(1), call(2), call(0); a != 200 || b != 200 || c != 200 {
		t.Fatalf("first calls of two agents and an anonymous client: %d %d %d", a, b, c)
	}
	if a, b, c := call(1), call(2), call(0); a != 429 || b != 429 || c != 429 {
		t.Fatalf("second calls: %d %d %d, want 429 each (one bucket per certificate, one for the address)", a, b, c)
	}
	if got := call(3); got != 200 {
		t.Fatalf("a third agent from the same address: %d", got)
	}
}
