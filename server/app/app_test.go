package app

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/api/apitest"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// osvZip writes an OSV all.zip of the given records into dir/osv/<eco>/all.zip.
func osvZip(t *testing.T, dir, eco string, records ...string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, r := range records {
		w, _ := zw.Create(fmt.Sprintf("r%d.json", i))
		w.Write([]byte(r))
	}
	zw.Close()
	p := filepath.Join(dir, "osv", eco, "all.zip")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

const lodashGHSA = `{"id": "GHSA-35jh-r3h4-6jhm", "modified": "2024-02-20T00:00:00Z", "aliases": ["CVE-2021-23337"],
 "summary": "Command Injection in lodash", "database_specific": {"severity": "HIGH"},
 "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
   "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}`

const minimistGHSA = `{"id": "GHSA-xvch-5gv4-984h", "modified": "2024-02-20T00:00:00Z", "aliases": ["CVE-2021-44906"],
 "summary": "Prototype Pollution in minimist", "database_specific": {"severity": "CRITICAL"},
 "affected": [{"package": {"ecosystem": "npm", "name": "minimist"},
   "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.2.4"}, {"introduced": "1.0.0"}, {"fixed": "1.2.6"}]}]}]}`

type client struct {
	t    *testing.T
	base string
	key  string
	http *http.Client
}

// send makes an authenticated request with body (nil: none) as JSON.
func (c *client) send(method, path string, body any) *http.Response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *client) do(method, path string, body any, out any) int {
	c.t.Helper()
	resp := c.send(method, path, body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		c.t.Logf("%s %s -> %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func inventory(lodash, minimist string) model.Inventory {
	return model.Inventory{Source: model.SourceInfo{Kind: "dir", Name: "/"},
		OS: &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}, Packages: []model.Package{
			{Name: "lodash", Version: lodash, Ecosystem: "npm", PURL: "pkg:npm/lodash@" + lodash, Locations: []string{"/srv/app/package-lock.json"}},
			{Name: "minimist", Version: minimist, Ecosystem: "npm", PURL: "pkg:npm/minimist@" + minimist, Locations: []string{"/srv/app/package-lock.json"}},
		}}
}

// receiver is a webhook endpoint that verifies every delivery's signature.
type receiver struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []string // event types, in arrival order
	ids    map[string]bool
	bad    int
}

func newReceiver(t *testing.T, secret string) *receiver {
	rc := &receiver{secret: secret, ids: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err := events.Verify(r.Header.Get(events.HeaderSignature), body, time.Now(), 0, rc.secret); err != nil {
			rc.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		env, err := events.ParseEnvelope(body)
		if err != nil {
			rc.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if !rc.ids[env.ID] { // at-least-once: drop repeats
			rc.ids[env.ID] = true
			rc.got = append(rc.got, env.Type)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

type findingList struct {
	Findings  []model.Finding `json:"findings"`
	NextToken string          `json:"nextToken"`
}

func TestServerEndToEndSQLite(t *testing.T) { endToEnd(t, "") }

// The same behaviour on PostgreSQL, with a throwaway cluster (required in CI).
func TestServerEndToEndPostgres(t *testing.T) {
	endToEnd(t, pgDSN(t))
}

func endToEnd(t *testing.T, postgres string) {
	ctx := context.Background()
	data := t.TempDir()
	mirror := t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	vdb, err := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()

	hook := newReceiver(t, "whsec-test")
	srv, err := New(ctx, Config{DataDir: data, Postgres: postgres,
		Webhooks: []Webhook{{URL: hook.srv.URL, Secret: "whsec-test"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.AdminKey(), "vgl_") || srv.CAFingerprint() == "" {
		t.Fatalf("first start must mint an admin key and a CA: %q %q", srv.AdminKey(), srv.CAFingerprint())
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	defer ts.Close()
	pool := srv.boot.CAPool
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}}}
	c := &client{t: t, base: ts.URL, key: srv.AdminKey(), http: hc}

	// 1. An inventory with a vulnerable lodash: one finding.
	var sub SubmissionResult
	if st := c.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Tags: map[string]string{"env": "prod"},
		Inventory: inventory("4.17.15", "1.2.0")}, &sub); st != 200 || sub.Findings != 1 || sub.Created != 1 {
		t.Fatalf("submit: %d %+v", st, sub)
	}
	var list findingList
	c.do("GET", "/v1/findings?severity=HIGH", nil, &list)
	if len(list.Findings) != 1 || list.Findings[0].VulnerabilityID != "CVE-2021-23337" || list.Findings[0].ResourceID != "web-1" {
		t.Fatalf("findings: %+v", list.Findings)
	}
	lodashID := list.Findings[0].ID
	if st := c.do("GET", "/v1/findings?severity=BOGUS", nil, nil); st != 422 && st != 400 {
		t.Errorf("an invalid filter must be a 4xx, got %d", st)
	}

	// 2. An unchanged resubmission is recognised.
	c.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub)
	if !sub.Unchanged || sub.Created != 0 {
		t.Errorf("unchanged resubmission: %+v", sub)
	}

	// 3. A suppression rule applies at once.
	var rule model.SuppressionRule
	if st := c.do("POST", "/v1/suppression-rules", RuleRequest{Name: "lodash accepted", Reason: "template input is trusted",
		Filter: model.FindingFilter{VulnerabilityIDs: []string{"CVE-2021-23337"}}}, &rule); st != 201 {
		t.Fatalf("create rule: %d", st)
	}
	var f model.Finding
	c.do("GET", "/v1/findings/"+lodashID, nil, &f)
	if f.Status != model.FindingSuppressed {
		t.Errorf("the rule must suppress at once, status %s", f.Status)
	}
	if st := c.do("POST", "/v1/suppression-rules", RuleRequest{Name: "everything", Reason: "lazy"}, nil); st != 422 {
		t.Errorf("an empty filter must be refused with 422, got %d", st)
	}
	if st := c.do("DELETE", "/v1/suppression-rules/"+rule.ID, nil, nil); st != 204 {
		t.Fatalf("delete rule: %d", st)
	}
	c.do("GET", "/v1/findings/"+lodashID, nil, &f)
	if f.Status != model.FindingActive {
		t.Errorf("deleting the rule must reactivate the finding, status %s", f.Status)
	}

	// 4. A feed update adds minimist's advisory; the next submission with lodash fixed closes one
	//    finding and opens the other.
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	if _, err := srv.VulnDB.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	// The feed delta alone opens minimist's finding: no rescan, no resubmission.
	fr, err := srv.ApplyFeedUpdate(ctx)
	if err != nil || fr.Resources != 1 || fr.Events != 1 {
		t.Fatalf("feed update: %+v %v", fr, err)
	}
	c.do("GET", "/v1/findings?vulnerabilityId=CVE-2021-44906", nil, &list)
	if len(list.Findings) != 1 || list.Findings[0].Severity != model.SeverityCritical {
		t.Fatalf("the new advisory's finding: %+v", list.Findings)
	}
	c.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.21", "1.2.0")}, &sub)
	if sub.Closed != 1 || sub.Created != 0 || sub.Findings != 1 {
		t.Fatalf("after lodash was upgraded: %+v", sub)
	}
	c.do("GET", "/v1/findings?status=CLOSED", nil, &list)
	if len(list.Findings) != 1 || list.Findings[0].ID != lodashID {
		t.Fatalf("lodash's finding must be closed under its stable ID: %+v", list.Findings)
	}

	// 5. Events went to the outbox with the changes, and out to the webhook, signed.
	d, err := srv.dispatcher()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := d.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hook.mu.Lock()
	types := map[string]int{}
	for _, e := range hook.got {
		types[e]++
	}
	badSig := hook.bad
	hook.mu.Unlock()
	if types[model.EventFindingCreated] != 2 || types[model.EventFindingClosed] != 1 || badSig != 0 {
		t.Errorf("webhook received %v, %d with bad signatures", types, badSig)
	}
	if left, _ := srv.Store.ClaimEvents(ctx, 100, time.Minute); len(left) != 0 {
		t.Errorf("%d events still undelivered in the outbox", len(left))
	}

	// 6. Coverage.
	var cov struct{ Coverage []model.Coverage }
	c.do("GET", "/v1/coverage", nil, &cov)
	if len(cov.Coverage) != 1 || cov.Coverage[0].Reason != model.ReasonSuccessful {
		t.Errorf("coverage: %+v", cov.Coverage)
	}

	// 7. Keys: forged, and another account's.
	bad := &client{t: t, base: ts.URL, key: "vgl_aaaaaaaaaaaaaaaa_" + strings.Repeat("b", 52), http: hc}
	if st := bad.do("GET", "/v1/findings", nil, nil); st != 401 {
		t.Errorf("a forged key must get 401, got %d", st)
	}
	if err := srv.Store.PutAccount(ctx, model.Account{ID: "other", Name: "Other", Role: model.AccountStandalone, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	raw, sk, err := auth.Issue(auth.Hasher{}, "other", auth.RoleAdmin, "test", time.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.CreateAPIKey(ctx, toStoreKey(sk)); err != nil {
		t.Fatal(err)
	}
	other := &client{t: t, base: ts.URL, key: raw, http: hc}
	other.do("GET", "/v1/findings?status=ACTIVE,CLOSED", nil, &list)
	if len(list.Findings) != 0 {
		t.Errorf("another account sees %d findings", len(list.Findings))
	}
	// The default account's management objects, for the walk to aim at.
	victim := seedManagement(t, c, hook.srv.URL)
	n := apitest.ForeignAccountWalk(t, srv.Handler(), srv.router.Routes(), apitest.Walk{
		ForeignKey: raw,
		PathValue: func(r api.Route, p string) string {
			switch p {
			case "findingId":
				return lodashID
			case "ruleId":
				return rule.ID
			case "resourceType":
				return "host"
			}
			if v, ok := victim.pathValue(p); ok {
				return v
			}
			return "web-1"
		},
		Body: func(r api.Route) []byte {
			if b := victim.body(r); b != nil {
				return b
			}
			switch {
			case strings.Contains(r.Path, "inventory"):
				return []byte(`{"account": "default", "inventory": {"packages": []}}`)
			case strings.HasSuffix(r.Path, "/heartbeat"):
				return []byte(`{"heartbeatSeconds": 120}`)
			case strings.HasSuffix(r.Path, "/instructions"):
				return []byte(`{"type": "COLLECT_NOW"}`)
			case strings.HasPrefix(r.Path, "/v1/agent-join-tokens"):
				return []byte(`{"name": "stolen"}`)
			case strings.HasSuffix(r.Path, "/batch-get"):
				return []byte(`{"findingIds": ["` + lodashID + `"]}`)
			}
			return []byte(`{"name": "x", "reason": "y", "filter": {"severities": ["LOW"]}}`)
		},
		// The agent administration routes act on ?account= (the caller's own by default).
		Query: func(r api.Route) string {
			if strings.HasPrefix(r.Path, "/v1/agent") || r.Path == "/v1/audit-log" || r.Path == "/v1/webhook-dead-letters" {
				return "account=" + DefaultAccount
			}
			// The other listings name the victim's account too (with their required parameters).
			switch r.Path {
			case "/v1/findings/aggregations":
				return "account=" + DefaultAccount + "&aggregationType=resource"
			case "/v1/coverage/statistics":
				return "account=" + DefaultAccount + "&groupBy=status"
			case "/v1/resources", "/v1/findings/details/batch-get":
				return "account=" + DefaultAccount
			}
			return ""
		},
		// Listings and creations act on the caller's own account: there is no victim data to reach.
		Skip: func(r api.Route) bool {
			return r.Path == "/v1/findings" || r.Path == "/v1/coverage" || r.Path == "/v1/suppression-rules" || ownAccountOnly(r)
		},
	})
	if n < 3 {
		t.Errorf("the foreign-account walk checked only %d routes", n)
	}
	// The OpenAPI document lists exactly the registered routes.
	doc, err := srv.router.OpenAPI(api.Info{Title: "Vigil", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	apitest.CheckOpenAPI(t, doc, srv.router.Routes())

	// 8. A restart keeps everything and mints no second admin key.
	srv.Close()
	srv2, err := New(ctx, Config{DataDir: data, Postgres: postgres})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if srv2.AdminKey() != "" {
		t.Error("a restart must not mint another admin key")
	}
	page, err := srv2.Store.ListFindings(ctx, []string{DefaultAccount}, store.FindingQuery{})
	if err != nil || len(page.Findings) != 2 {
		t.Errorf("after restart: %d findings, %v", len(page.Findings), err)
	}
}
