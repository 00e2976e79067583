package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/api/apitest"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// log4shellGHSA is GitHub's advisory for Log4Shell (its two ECOSYSTEM ranges for log4j-core).
const log4shellGHSA = `{"id": "GHSA-jfh8-c2jp-5v3q", "modified": "2024-02-20T00:00:00Z", "published": "2021-12-10T00:00:40Z",
 "aliases": ["CVE-2021-44228"], "summary": "Remote code injection in Log4j",
 "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
   "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]},
              {"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.12.2"}]}]}],
 "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],
 "references": [{"type": "WEB", "url": "https://logging.apache.org/log4j/2.x/security.html"}],
 "database_specific": {"severity": "CRITICAL", "cwe_ids": ["CWE-20", "CWE-400", "CWE-502", "CWE-917"]}}`

// testClock is a settable clock for a server under test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// readFleet is a server with a small fleet, and keys: the default account's admin and read-only
// keys and another account's admin key.
type readFleet struct {
	srv                *Server
	clock              *testClock
	admin, ro, foreign *client
	foreignKey         string
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(to), 0o755)
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func newReadFleet(t *testing.T, postgres string) *readFleet {
	t.Helper()
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	osvZip(t, mirror, "Maven", log4shellGHSA)
	// CISA's KEV catalogue and FIRST's EPSS scores as published (the feeds' own test data).
	copyFile(t, "../../vulndb/feeds/kev/testdata/kev.json", filepath.Join(mirror, "kev", "known_exploited_vulnerabilities.json"))
	copyFile(t, "../../vulndb/feeds/epss/testdata/epss_scores-2025-08-25.csv", filepath.Join(mirror, "epss", "epss_scores-2025-08-25.csv"))
	vdb, err := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	clock := &testClock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	srv, err := New(ctx, Config{DataDir: data, Postgres: postgres, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	key := func(acct string, role auth.Role) string {
		if acct != DefaultAccount {
			if err := srv.Store.PutAccount(ctx, model.Account{ID: acct, Name: acct, Role: model.AccountStandalone, CreatedAt: clock.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		raw, sk, err := auth.Issue(auth.Hasher{}, acct, role, "test", clock.Now(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Store.CreateAPIKey(ctx, toStoreKey(sk)); err != nil {
			t.Fatal(err)
		}
		return raw
	}
	f := &readFleet{srv: srv, clock: clock}
	f.foreignKey = key("other", auth.RoleAdmin)
	f.admin = &client{t: t, base: ts.URL, key: srv.AdminKey(), http: ts.Client()}
	f.ro = &client{t: t, base: ts.URL, key: key(DefaultAccount, auth.RoleReadOnly), http: ts.Client()}
	f.foreign = &client{t: t, base: ts.URL, key: f.foreignKey, http: ts.Client()}

	lodash := model.Package{Name: "lodash", Version: "4.17.15", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.15", Locations: []string{"/srv/app/package-lock.json"}}
	log4j := model.Package{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: "Maven",
		PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", Locations: []string{"/opt/app/lib/log4j-core-2.14.1.jar"}}
	debian := &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}
	submit := func(res model.Resource, inv model.Inventory) {
		t.Helper()
		res.Account = DefaultAccount
		if _, err := srv.Submit(ctx, res, &inv); err != nil {
			t.Fatal(err)
		}
	}
	submit(model.Resource{ID: "web-1", Type: model.ResourceHost, Tags: map[string]string{"env": "prod", "team": "web"},
		Metadata: map[string]string{"platform": "DEBIAN_12"}}, model.Inventory{OS: debian, Packages: []model.Package{lodash, log4j}})
	imgLodash := lodash
	imgLodash.LayerDigest = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
	submit(model.Resource{ID: "sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d", Type: model.ResourceImage,
		ImageRepository: "registry.example.com/team/api"}, model.Inventory{Packages: []model.Package{imgLodash}})
	submit(model.Resource{ID: "batch-1", Type: model.ResourceHost, Tags: map[string]string{"env": "prod", model.ExclusionTag: "true"}},
		model.Inventory{OS: debian})
	return f
}

const imageID = "sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d"

func TestReadAPISQLite(t *testing.T) { testReadAPI(t, "") }

func TestReadAPIPostgres(t *testing.T) {
	testReadAPI(t, pgDSN(t))
}

func testReadAPI(t *testing.T, postgres string) {
	f := newReadFleet(t, postgres)
	t.Run("aggregations", f.aggregations)
	t.Run("details", f.details)
	t.Run("rules", f.rules)
	t.Run("coverage statistics", f.coverageStatistics)
	t.Run("resources", f.resources) // last: it deletes a resource
	t.Run("foreign account walk", f.walk)
}

type problem struct {
	Status int
	Errors []api.FieldError
}

// problem sends a request expected to fail and returns its status and field errors.
func (c *client) problem(method, path string, body any) problem {
	c.t.Helper()
	resp := c.send(method, path, body)
	defer resp.Body.Close()
	p := problem{Status: resp.StatusCode}
	json.NewDecoder(resp.Body).Decode(&p)
	return p
}

func (f *readFleet) aggregations(t *testing.T) {
	type groups struct {
		Groups    []store.AggregateRow `json:"groups"`
		NextToken string               `json:"nextToken"`
		SortBy    string               `json:"sortBy"`
		SortOrder string               `json:"sortOrder"`
	}
	get := func(c *client, q string) groups {
		t.Helper()
		var g groups
		if st := c.do("GET", "/v1/findings/aggregations?"+q, nil, &g); st != 200 {
			t.Fatalf("aggregations?%s: %d", q, st)
		}
		return g
	}
	g := get(f.admin, "aggregationType=vulnerability")
	if len(g.Groups) != 2 || g.Groups[0].Key != "CVE-2021-44228" || g.Groups[0].Counts.Critical != 1 ||
		g.Groups[1].Key != "CVE-2021-23337" || g.Groups[1].Counts.High != 2 || g.Groups[1].Resources != 2 || g.SortOrder != "DESC" {
		t.Errorf("by vulnerability: %+v", g)
	}
	if g := get(f.admin, "aggregationType=vulnerability&sortBy=all"); g.Groups[0].Key != "CVE-2021-23337" {
		t.Errorf("sorted by all: %+v", g.Groups)
	}
	if g := get(f.admin, "aggregationType=vulnerability&sortBy=key&sortOrder=DESC"); g.Groups[0].Key != "CVE-2021-44228" {
		t.Errorf("sorted by key descending: %+v", g.Groups)
	}
	// The ListFindings filters apply.
	if g := get(f.admin, "aggregationType=resource&tag=team=web"); len(g.Groups) != 1 || g.Groups[0].Key != "web-1" ||
		g.Groups[0].Account != DefaultAccount || g.Groups[0].Counts.Total != 2 || g.Groups[0].ExploitAvailable != 1 {
		t.Errorf("by resource for team=web: %+v", g.Groups)
	}
	if g := get(f.admin, "aggregationType=imageLayer"); len(g.Groups) != 1 || !strings.HasPrefix(g.Groups[0].Key, "sha256:5f70bf18") {
		t.Errorf("by layer: %+v", g.Groups)
	}
	if g := get(f.admin, "aggregationType=imageRepository"); len(g.Groups) != 1 || g.Groups[0].Key != "registry.example.com/team/api" {
		t.Errorf("by repository: %+v", g.Groups)
	}
	if g := get(f.admin, "aggregationType=package&severity=CRITICAL"); len(g.Groups) != 1 || g.Groups[0].Key != "org.apache.logging.log4j:log4j-core" {
		t.Errorf("critical by package: %+v", g.Groups)
	}
	if g := get(f.admin, "aggregationType=resourceType"); len(g.Groups) != 2 || g.Groups[0].Key != model.ResourceHost {
		t.Errorf("by resource type: %+v", g.Groups)
	}
	if g := get(f.admin, "aggregationType=account"); len(g.Groups) != 1 || g.Groups[0].Counts.Total != 3 {
		t.Errorf("by account: %+v", g.Groups)
	}
	// Pages of one group follow the order.
	var keys []string
	q := "aggregationType=vulnerability&maxResults=1"
	for i := 0; i < 5; i++ {
		g := get(f.admin, q)
		for _, r := range g.Groups {
			keys = append(keys, r.Key)
		}
		if g.NextToken == "" {
			break
		}
		q = "aggregationType=vulnerability&maxResults=1&nextToken=" + url.QueryEscape(g.NextToken)
	}
	if !slices.Equal(keys, []string{"CVE-2021-44228", "CVE-2021-23337"}) {
		t.Errorf("paged: %v", keys)
	}
	// Bad requests name the field.
	for q, field := range map[string]string{
		"aggregationType=title":                 "aggregationType",
		"":                                      "aggregationType",
		"aggregationType=package&sortBy=newest": "sortBy",
		"aggregationType=package&sortOrder=UP":  "sortOrder",
		"aggregationType=package&severity=SEVERE":     "severity",
		"aggregationType=package&nextToken=xyz":       "nextToken",
		"aggregationType=package&maxResults=100000":   "maxResults",
		"aggregationType=package&epssMin=not-numeric": "epssMin",
	} {
		p := f.admin.problem("GET", "/v1/findings/aggregations?"+q, nil)
		if (p.Status != 400 && p.Status != 422) || len(p.Errors) == 0 || p.Errors[0].Field != field {
			t.Errorf("?%s: %+v, want a 4xx naming %s", q, p, field)
		}
	}
	// Another account sees nothing, and may not name this one.
	if g := get(f.foreign, "aggregationType=vulnerability"); len(g.Groups) != 0 {
		t.Errorf("a foreign account sees %+v", g.Groups)
	}
	if st := f.foreign.do("GET", "/v1/findings/aggregations?aggregationType=vulnerability&account="+DefaultAccount, nil, nil); st != 404 {
		t.Errorf("a foreign account naming this one: %d", st)
	}
	if g := get(f.ro, "aggregationType=vulnerability"); len(g.Groups) != 2 {
		t.Errorf("a read-only key: %+v", g.Groups)
	}
}

func (f *readFleet) findingID(t *testing.T, vuln, resource string) string {
	t.Helper()
	var list findingList
	f.admin.do("GET", "/v1/findings?status=ACTIVE,SUPPRESSED,CLOSED&vulnerabilityId="+vuln+"&resourceId="+url.QueryEscape(resource), nil, &list)
	if len(list.Findings) != 1 {
		t.Fatalf("%s on %s: %d findings", vuln, resource, len(list.Findings))
	}
	return list.Findings[0].ID
}

func (f *readFleet) details(t *testing.T) {
	id := f.findingID(t, "CVE-2021-44228", "web-1")
	var d FindingDetails
	if st := f.admin.do("GET", "/v1/findings/"+id+"/details", nil, &d); st != 200 {
		t.Fatalf("details: %d", st)
	}
	v := d.Vulnerability
	if v == nil {
		t.Fatal("no vulnerability intelligence")
	}
	day := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	if v.KEV == nil || !v.KEV.DateAdded.Equal(day("2021-12-10")) || !v.KEV.DueDate.Equal(day("2021-12-24")) || v.KEV.KnownRansomware != "Known" {
		t.Errorf("KEV: %+v", v.KEV)
	}
	if v.EPSS == nil || v.EPSS.Score != 0.94358 || v.EPSS.Percentile != 0.99957 {
		t.Errorf("EPSS: %+v", v.EPSS)
	}
	if !slices.Contains(v.CWEs, "CWE-502") || !slices.Contains(v.References, "https://logging.apache.org/log4j/2.x/security.html") {
		t.Errorf("CWEs %v, references %v", v.CWEs, v.References)
	}
	if !slices.ContainsFunc(v.CVSS, func(c model.CVSS) bool { return c.Vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H" }) {
		t.Errorf("CVSS: %+v", v.CVSS)
	}
	if v.ID != "CVE-2021-44228" || !slices.Contains(v.Aliases, "GHSA-jfh8-c2jp-5v3q") || v.Description == "" ||
		!slices.ContainsFunc(v.Advisories, func(a AdvisorySummary) bool { return a.ID == "GHSA-jfh8-c2jp-5v3q" && a.Ecosystem == "Maven" }) {
		t.Errorf("vulnerability: %+v", v)
	}
	if !slices.Contains(v.Sources, "kev") || !slices.Contains(v.Sources, "epss") {
		t.Errorf("sources: %v", v.Sources)
	}
	if d.ScoreBreakdown.Base == 0 || d.ScoreBreakdown.BaseVector == "" || !reflect.DeepEqual(d.ScoreBreakdown, d.Finding.RiskScore) {
		t.Errorf("score breakdown: %+v", d.ScoreBreakdown)
	}
	if d.Finding.ID != id || d.Finding.ExploitAvailable != model.Yes {
		t.Errorf("finding: %+v", d.Finding)
	}
	if st := f.foreign.do("GET", "/v1/findings/"+id+"/details", nil, nil); st != 404 {
		t.Errorf("a foreign account's details: %d", st)
	}
	if st := f.admin.do("GET", "/v1/findings/no-such-finding/details", nil, nil); st != 404 {
		t.Errorf("an unknown finding: %d", st)
	}

	// The batch answers per finding, in order, and hides other accounts' findings.
	var b BatchDetails
	if st := f.admin.do("POST", "/v1/findings/details/batch-get", BatchDetailsRequest{FindingIDs: []string{id, "nope"}}, &b); st != 200 ||
		len(b.Details) != 1 || b.Details[0].Vulnerability.KEV == nil || len(b.Errors) != 1 || b.Errors[0].Code != "FINDING_DETAILS_NOT_FOUND" {
		t.Errorf("batch: %d %+v", st, b)
	}
	b = BatchDetails{}
	if f.foreign.do("POST", "/v1/findings/details/batch-get", BatchDetailsRequest{FindingIDs: []string{id}}, &b); len(b.Details) != 0 || len(b.Errors) != 1 {
		t.Errorf("a foreign batch: %+v", b)
	}
	many := make([]string, 11)
	for i := range many {
		many[i] = fmt.Sprint("f-", i)
	}
	if p := f.admin.problem("POST", "/v1/findings/details/batch-get", BatchDetailsRequest{FindingIDs: many}); p.Status != 422 || p.Errors[0].Field != "findingIds" {
		t.Errorf("11 findings: %+v", p)
	}
}

func (f *readFleet) statuses(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, res := range []string{"web-1", imageID} {
		fs, err := f.srv.Store.ResourceFindings(context.Background(), DefaultAccount, res)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fs {
			out[res+" "+fd.VulnerabilityID] = fd.Status
		}
	}
	return out
}

func (f *readFleet) eventCount(t *testing.T, typ string) int {
	t.Helper()
	rows, err := f.srv.Store.DB().QueryContext(context.Background(), `SELECT type FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var s string
		rows.Scan(&s)
		if s == typ {
			n++
		}
	}
	return n
}

func (f *readFleet) rules(t *testing.T) {
	const lodashCVE = "CVE-2021-23337"
	webLodash, imgLodash, webLog4j := "web-1 "+lodashCVE, imageID+" "+lodashCVE, "web-1 CVE-2021-44228"
	var rule model.SuppressionRule
	if st := f.admin.do("POST", "/v1/suppression-rules", RuleRequest{Name: "lodash", Reason: "templates are trusted",
		Filter: model.FindingFilter{VulnerabilityIDs: []string{lodashCVE}}}, &rule); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if st := f.statuses(t); st[webLodash] != model.FindingSuppressed || st[imgLodash] != model.FindingSuppressed || st[webLog4j] != model.FindingActive {
		t.Fatalf("after create: %v", st)
	}
	var got model.SuppressionRule
	if st := f.ro.do("GET", "/v1/suppression-rules/"+rule.ID, nil, &got); st != 200 || got.ID != rule.ID || got.Reason != rule.Reason {
		t.Errorf("get: %d %+v", st, got)
	}
	if st := f.admin.do("GET", "/v1/suppression-rules/sr-none", nil, nil); st != 404 {
		t.Errorf("get an unknown rule: %d", st)
	}

	// Narrowing the filter to the host: the image's finding is active again, with an event.
	updatedBefore := f.eventCount(t, model.EventFindingUpdated)
	f.clock.Advance(time.Minute)
	var upd model.SuppressionRule
	if st := f.admin.do("PATCH", "/v1/suppression-rules/"+rule.ID, map[string]any{
		"filter": model.FindingFilter{VulnerabilityIDs: []string{lodashCVE}, ResourceTypes: []string{model.ResourceHost}}}, &upd); st != 200 {
		t.Fatalf("patch: %d", st)
	}
	if upd.Name != "lodash" || upd.Reason != rule.Reason || !upd.UpdatedAt.After(rule.UpdatedAt) || !upd.CreatedAt.Equal(rule.CreatedAt) {
		t.Errorf("patched rule: %+v (was %+v)", upd, rule)
	}
	if st := f.statuses(t); st[webLodash] != model.FindingSuppressed || st[imgLodash] != model.FindingActive {
		t.Errorf("after narrowing: %v", st)
	}
	if n := f.eventCount(t, model.EventFindingUpdated); n != updatedBefore+1 {
		t.Errorf("narrowing the rule wrote %d finding.updated events, want 1", n-updatedBefore)
	}
	// Event IDs derive from the time of the change; each change here happens a second later.
	f.clock.Advance(time.Second)
	// Widening it to log4j too suppresses that at once; the new reason becomes the evidence.
	f.admin.do("PATCH", "/v1/suppression-rules/"+rule.ID, map[string]any{"reason": "accepted until the rebuild",
		"filter": model.FindingFilter{ResourceIDs: []string{"web-1"}}}, &upd)
	var fd model.Finding
	f.admin.do("GET", "/v1/findings/"+f.findingID(t, "CVE-2021-44228", "web-1"), nil, &fd)
	if fd.Status != model.FindingSuppressed || fd.Suppression == nil || fd.Suppression.Reason != "accepted until the rebuild" {
		t.Errorf("after widening: %+v", fd.Suppression)
	}
	// An expiry in the past ends it; null makes it permanent again.
	f.clock.Advance(time.Second)
	if st := f.admin.do("PATCH", "/v1/suppression-rules/"+rule.ID, map[string]any{"expiresAt": f.clock.Now().Add(-time.Hour)}, &upd); st != 200 || upd.ExpiresAt == nil {
		t.Fatalf("expire: %d %+v", st, upd)
	}
	if st := f.statuses(t); st[webLodash] != model.FindingActive || st[webLog4j] != model.FindingActive {
		t.Errorf("after expiry: %v", st)
	}
	f.clock.Advance(time.Second)
	upd = model.SuppressionRule{}
	if st := f.admin.do("PATCH", "/v1/suppression-rules/"+rule.ID, json.RawMessage(`{"expiresAt": null}`), &upd); st != 200 || upd.ExpiresAt != nil {
		t.Fatalf("unexpire: %d %+v", st, upd)
	}
	if st := f.statuses(t); st[webLodash] != model.FindingSuppressed || st[imgLodash] != model.FindingActive {
		t.Errorf("after removing the expiry: %v", st)
	}

	// Validation names the fields; nothing changes.
	for body, field := range map[string]string{
		`{"name": "  "}`:                          "name",
		`{"reason": ""}`:                          "reason",
		`{"filter": {}}`:                          "filter",
		`{"filter": {"severities": ["SEVERE"]}}`:  "filter.severities",
		`{"filter": {"fixAvailable": ["MAYBE"]}}`: "filter.fixAvailable",
		`{"expiresAt": "next tuesday"}`:           "expiresAt",
		`{}`:                                      "(body)",
		`{"action": "SUPPRESS"}`:                  "action",
		`{"filter": {"severities": "CRITICAL"}}`:  "filter.severities",
	} {
		p := f.admin.problem("PATCH", "/v1/suppression-rules/"+rule.ID, json.RawMessage(body))
		if (p.Status != 400 && p.Status != 422) || len(p.Errors) == 0 || p.Errors[0].Field != field {
			t.Errorf("%s: %+v, want a 4xx naming %s", body, p, field)
		}
	}
	f.admin.do("GET", "/v1/suppression-rules/"+rule.ID, nil, &got)
	if got.Name != "lodash" || got.Reason != "accepted until the rebuild" {
		t.Errorf("a refused patch changed the rule: %+v", got)
	}
	// A read-only key may read, not change; another account sees nothing.
	if st := f.ro.do("PATCH", "/v1/suppression-rules/"+rule.ID, map[string]any{"name": "x"}, nil); st != 403 {
		t.Errorf("read-only patch: %d", st)
	}
	for _, m := range []string{"GET", "PATCH"} {
		if st := f.foreign.do(m, "/v1/suppression-rules/"+rule.ID, map[string]any{"name": "x"}, nil); st != 404 {
			t.Errorf("foreign %s: %d", m, st)
		}
	}
	// Leave no rule behind for the other subtests.
	f.clock.Advance(time.Second)
	if st := f.admin.do("DELETE", "/v1/suppression-rules/"+rule.ID, nil, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
}

func (f *readFleet) coverageStatistics(t *testing.T) {
	type stats struct {
		Counts []store.CountRow `json:"countsByGroup"`
		Total  int              `json:"totalCounts"`
	}
	get := func(c *client, q string) stats {
		t.Helper()
		var s stats
		if st := c.do("GET", "/v1/coverage/statistics?"+q, nil, &s); st != 200 {
			t.Fatalf("statistics?%s: %d", q, st)
		}
		return s
	}
	row := func(k string, n int) store.CountRow { return store.CountRow{Key: k, Count: n} }
	for q, want := range map[string][]store.CountRow{
		"groupBy=reason":                           {row(model.ReasonSuccessful, 2), row(model.ReasonExcludedByTag, 1)},
		"groupBy=status":                           {row(model.CoverageActive, 2), row(model.CoverageInactive, 1)},
		"groupBy=resourceType":                     {row(model.ResourceHost, 2), row(model.ResourceImage, 1)},
		"groupBy=account":                          {row(DefaultAccount, 3)},
		"groupBy=scanType":                         {row(model.ScanPackage, 3)},
		"groupBy=reason&status=INACTIVE":           {row(model.ReasonExcludedByTag, 1)},
		"groupBy=status&resourceType=image":        {row(model.CoverageActive, 1)},
		"groupBy=status&resourceId=batch-1":        {row(model.CoverageInactive, 1)},
		"groupBy=reason&account=" + DefaultAccount: {row(model.ReasonSuccessful, 2), row(model.ReasonExcludedByTag, 1)},
	} {
		s := get(f.ro, q)
		total := 0
		for _, r := range want {
			total += r.Count
		}
		if !slices.Equal(s.Counts, want) || s.Total != total {
			t.Errorf("%s: %+v, want %v", q, s, want)
		}
	}
	if p := f.admin.problem("GET", "/v1/coverage/statistics?groupBy=region", nil); p.Status != 422 || p.Errors[0].Field != "groupBy" {
		t.Errorf("unknown groupBy: %+v", p)
	}
	if s := get(f.foreign, "groupBy=status"); len(s.Counts) != 0 || s.Total != 0 {
		t.Errorf("foreign: %+v", s)
	}
	if st := f.foreign.do("GET", "/v1/coverage/statistics?groupBy=status&account="+DefaultAccount, nil, nil); st != 404 {
		t.Errorf("foreign naming this account: %d", st)
	}
}

func (f *readFleet) resources(t *testing.T) {
	ctx := context.Background()
	type list struct {
		Resources []ResourceView `json:"resources"`
		NextToken string         `json:"nextToken"`
	}
	ids := func(c *client, q string) []string {
		t.Helper()
		var l list
		if st := c.do("GET", "/v1/resources?"+q, nil, &l); st != 200 {
			t.Fatalf("resources?%s: %d", q, st)
		}
		var out []string
		for _, r := range l.Resources {
			out = append(out, r.ID)
			if r.Excluded != (r.Tags[model.ExclusionTag] != "") {
				t.Errorf("%s: excluded %v with tags %v", r.ID, r.Excluded, r.Tags)
			}
		}
		return out
	}
	for q, want := range map[string][]string{
		"":                          {"batch-1", imageID, "web-1"},
		"tag=env=prod":              {"batch-1", "web-1"},
		"tag=env=prod&tag=team=web": {"web-1"},
		"tag=" + model.ExclusionTag: {"batch-1"},
		"resourceType=image":        {imageID},
		"resourceId=web-1,batch-1":  {"batch-1", "web-1"},
		"resourceType=host&resourceId=" + url.QueryEscape(imageID): nil,
	} {
		if got := ids(f.ro, q); !slices.Equal(got, want) {
			t.Errorf("?%s: %v, want %v", q, got, want)
		}
	}
	var l list
	f.admin.do("GET", "/v1/resources?maxResults=2", nil, &l)
	if len(l.Resources) != 2 || l.NextToken == "" {
		t.Fatalf("first page: %+v", l)
	}
	if got := ids(f.admin, "maxResults=2&nextToken="+url.QueryEscape(l.NextToken)); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("second page: %v", got)
	}
	for q, field := range map[string]string{"resourceType=vm": "resourceType", "includeRemoved=maybe": "includeRemoved", "tag==x": "tag", "nextToken=zzz": "nextToken"} {
		if p := f.admin.problem("GET", "/v1/resources?"+q, nil); (p.Status != 400 && p.Status != 422) || p.Errors[0].Field != field {
			t.Errorf("?%s: %+v", q, p)
		}
	}
	if got := ids(f.foreign, ""); len(got) != 0 {
		t.Errorf("a foreign account lists %v", got)
	}

	var d ResourceDetail
	if st := f.ro.do("GET", "/v1/resources/host/web-1", nil, &d); st != 200 || d.Metadata["platform"] != "DEBIAN_12" || d.Tags["team"] != "web" ||
		len(d.Coverage) != 1 || d.Coverage[0].Reason != model.ReasonSuccessful || d.ActiveFindings.Critical != 1 || d.ActiveFindings.High != 1 {
		t.Errorf("get: %d %+v", st, d)
	}
	if st := f.admin.do("GET", "/v1/resources/image/web-1", nil, nil); st != 404 {
		t.Errorf("the wrong type: %d", st)
	}
	if st := f.foreign.do("GET", "/v1/resources/host/web-1", nil, nil); st != 404 {
		t.Errorf("foreign get: %d", st)
	}
	for _, c := range []*client{f.foreign, f.ro} {
		want := map[*client]int{f.foreign: 404, f.ro: 403}[c]
		if st := c.do("DELETE", "/v1/resources/image/"+imageID, nil, nil); st != want {
			t.Errorf("delete by a key that may not: %d, want %d", st, want)
		}
	}

	f.clock.Advance(time.Second)
	// Deleting closes the image's findings at once and announces it; coverage says why.
	closedBefore := f.eventCount(t, model.EventFindingClosed)
	if st := f.admin.do("DELETE", "/v1/resources/image/"+imageID, nil, nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st := f.statuses(t); st[imageID+" CVE-2021-23337"] != model.FindingClosed || st["web-1 CVE-2021-23337"] != model.FindingActive {
		t.Errorf("after delete: %v", st)
	}
	if n := f.eventCount(t, model.EventFindingClosed); n != closedBefore+1 {
		t.Errorf("%d finding.closed events, want 1", n-closedBefore)
	}
	if got := ids(f.admin, ""); slices.Contains(got, imageID) {
		t.Errorf("a removed resource is listed: %v", got)
	}
	if got := ids(f.admin, "includeRemoved=true&resourceType=image"); !slices.Equal(got, []string{imageID}) {
		t.Errorf("includeRemoved: %v", got)
	}
	f.admin.do("GET", "/v1/resources/image/"+imageID, nil, &d)
	if d.RemovedAt == nil || len(d.Coverage) != 1 || d.Coverage[0].Reason != model.ReasonResourceTerminated || d.ActiveFindings.Total != 0 {
		t.Errorf("the removed resource: %+v", d)
	}
	if st := f.admin.do("DELETE", "/v1/resources/image/"+imageID, nil, nil); st != 204 {
		t.Errorf("deleting again: %d", st)
	}
	must(t, f.srv.audit.flush(ctx)) // the API's audit read flushes; this reads the store itself
	audit, err := f.srv.Store.ListAudit(ctx, []string{DefaultAccount}, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(audit.Entries, func(e store.AuditEntry) bool {
		return e.Target == "image/"+imageID && strings.HasPrefix(e.Action, "DELETE /v1/resources/") && strings.HasSuffix(e.Action, "204")
	}) {
		t.Errorf("no audit entry for the deletion")
	}
	// A feed update or housekeeping before the retention ends keeps the closed findings; after it
	// they are gone.
	f.clock.Advance(2 * 24 * time.Hour)
	must(t, f.srv.Housekeep(ctx))
	if st := f.statuses(t); st[imageID+" CVE-2021-23337"] != model.FindingClosed {
		t.Errorf("within retention: %v", st)
	}
	f.clock.Advance(2 * 24 * time.Hour)
	must(t, f.srv.Housekeep(ctx))
	if st := f.statuses(t); st[imageID+" CVE-2021-23337"] != "" || st["web-1 CVE-2021-23337"] != model.FindingActive {
		t.Errorf("after retention: %v", st)
	}
	// The resource itself, its inventory and coverage go with them.
	if got := ids(f.admin, "includeRemoved=true"); slices.Contains(got, imageID) || len(got) != 2 {
		t.Errorf("after retention the resources are %v", got)
	}
	if pkgs, err := f.srv.Store.Inventory(ctx, DefaultAccount, imageID); err != nil || len(pkgs) != 0 {
		t.Errorf("the removed image's inventory: %v %v", pkgs, err)
	}
	var cov struct{ Coverage []model.Coverage }
	f.admin.do("GET", "/v1/coverage?resourceId="+url.QueryEscape(imageID), nil, &cov)
	if len(cov.Coverage) != 0 {
		t.Errorf("the removed image's coverage: %+v", cov.Coverage)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// walk sends every read-side route to the fleet's objects with another account's key (403 or
// 404 everywhere), and repeats the GETs with the owner's key (never 401, 403 or 404).
func (f *readFleet) walk(t *testing.T) {
	var rule model.SuppressionRule
	if st := f.admin.do("POST", "/v1/suppression-rules", RuleRequest{Name: "walk", Reason: "walk",
		Filter: model.FindingFilter{Severities: []string{model.SeverityLow}}}, &rule); st != 201 {
		t.Fatalf("create: %d", st)
	}
	findingID := f.findingID(t, "CVE-2021-44228", "web-1")
	mine := map[string]bool{}
	var routes []api.Route
	for _, r := range f.srv.router.Routes() {
		switch r.OperationID {
		case "ListFindingAggregations", "GetFindingDetails", "BatchGetFindingDetails", "GetSuppressionRule", "UpdateSuppressionRule",
			"ListCoverageStatistics", "ListResources", "GetResource", "DeleteResource":
			routes = append(routes, r)
			mine[r.OperationID] = true
		}
	}
	if len(mine) != 9 {
		t.Fatalf("routes found: %v", mine)
	}
	n := apitest.ForeignAccountWalk(t, f.srv.Handler(), routes, apitest.Walk{
		ForeignKey: f.foreignKey,
		OwnerKey:   f.admin.key,
		PathValue: func(r api.Route, p string) string {
			switch p {
			case "findingId":
				return findingID
			case "ruleId":
				return rule.ID
			case "resourceType":
				return model.ResourceHost
			}
			return "web-1"
		},
		Body: func(r api.Route) []byte {
			if r.OperationID == "BatchGetFindingDetails" {
				return []byte(`{"findingIds": ["` + findingID + `"]}`)
			}
			return []byte(`{"name": "renamed"}`)
		},
		// Listings name the victim's account: a foreign caller must not reach it.
		Query: func(r api.Route) string {
			switch r.OperationID {
			case "ListFindingAggregations":
				return "account=" + DefaultAccount + "&aggregationType=resource"
			case "ListCoverageStatistics":
				return "account=" + DefaultAccount + "&groupBy=status"
			case "ListResources", "BatchGetFindingDetails":
				return "account=" + DefaultAccount
			}
			return ""
		},
	})
	if n != 9 {
		t.Errorf("the walk checked %d routes", n)
	}
}

// A delegated administrator reads and changes a member's rule, and the change applies to the
// member's findings; the organization's management account may not.
func TestDelegatedAdminUpdatesMemberRule(t *testing.T) {
	ctx := context.Background()
	f := newReadFleet(t, "")
	srv := f.srv
	now := f.clock.Now()
	must(t, srv.Store.PutOrganization(ctx, store.Organization{ID: "org-acme", ManagementAccount: "acme-mgmt", DelegatedAdmin: "acme-sec", CreatedAt: now}))
	keys := map[string]*client{}
	for _, id := range []string{"acme-mgmt", "acme-sec", "acme-web"} {
		must(t, srv.Store.PutAccount(ctx, model.Account{ID: id, Name: id, Organization: "org-acme", Role: model.AccountMember, CreatedAt: now}))
		raw, sk, err := auth.Issue(auth.Hasher{}, id, auth.RoleAdmin, "test", now, time.Time{})
		must(t, err)
		must(t, srv.Store.CreateAPIKey(ctx, toStoreKey(sk)))
		keys[id] = &client{t: t, base: f.admin.base, key: raw, http: f.admin.http}
	}
	inv := inventory("4.17.15", "1.2.0")
	_, err := srv.Submit(ctx, model.Resource{Account: "acme-web", ID: "web-9", Type: model.ResourceHost}, &inv)
	must(t, err)
	var rule model.SuppressionRule
	if st := keys["acme-web"].do("POST", "/v1/suppression-rules", RuleRequest{Name: "minimist", Reason: "not reachable",
		Filter: model.FindingFilter{PackageNames: []string{"minimist"}}}, &rule); st != 201 {
		t.Fatalf("create: %d", st)
	}
	if st := keys["acme-sec"].do("GET", "/v1/suppression-rules/"+rule.ID, nil, nil); st != 200 {
		t.Errorf("the delegated admin reads a member's rule: %d", st)
	}
	f.clock.Advance(time.Second)
	var upd model.SuppressionRule
	if st := keys["acme-sec"].do("PATCH", "/v1/suppression-rules/"+rule.ID, map[string]any{
		"filter": model.FindingFilter{PackageNames: []string{"lodash"}}}, &upd); st != 200 || upd.Account != "acme-web" {
		t.Fatalf("the delegated admin patches it: %d %+v", st, upd)
	}
	fs, err := srv.Store.ResourceFindings(ctx, "acme-web", "web-9")
	must(t, err)
	if len(fs) != 1 || fs[0].VulnerabilityID != "CVE-2021-23337" || fs[0].Status != model.FindingSuppressed {
		t.Errorf("the member's findings after the change: %+v", fs)
	}
	if st := keys["acme-mgmt"].do("PATCH", "/v1/suppression-rules/"+rule.ID, map[string]any{"name": "x"}, nil); st != 404 {
		t.Errorf("the management account patches a member's rule: %d", st)
	}
	if st := f.admin.do("GET", "/v1/suppression-rules/"+rule.ID, nil, nil); st != 404 {
		t.Errorf("an unrelated account reads it: %d", st)
	}
	for who, c := range map[string]*client{"the management account": keys["acme-mgmt"], "an unrelated account": f.admin} {
		if st := c.do("DELETE", "/v1/suppression-rules/"+rule.ID, nil, nil); st != 404 {
			t.Errorf("%s deletes a member's rule: %d", who, st)
		}
	}
	f.clock.Advance(time.Second)
	if st := keys["acme-sec"].do("DELETE", "/v1/suppression-rules/"+rule.ID, nil, nil); st != 204 {
		t.Fatalf("the delegated admin deletes it: %d", st)
	}
	fs, err = srv.Store.ResourceFindings(ctx, "acme-web", "web-9")
	must(t, err)
	if len(fs) != 1 || fs[0].Status != model.FindingActive {
		t.Errorf("the member's findings after the deletion: %+v", fs)
	}
}

// A suppression-rule patch from a client decodes and validates without panicking, and whatever it
// accepts names a change whose expiry parses.
func FuzzRulePatch(f *testing.F) {
	for _, s := range []string{`{"name": "x"}`, `{"expiresAt": null}`, `{"expiresAt": "2026-12-01T00:00:00Z"}`,
		`{"filter": {"severities": ["LOW"], "resourceTags": {"env": ""}}}`, `{"expiresAt": 5}`, `{}`, `[]`, `{"reason": "` + strings.Repeat("a", 600) + `"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p RulePatch
		err := api.DecodeJSONBytes(b, &p)
		var prob *api.Problem
		if err != nil && !asProblem(err, &prob) {
			t.Fatalf("%q: %v is not a problem", b, err)
		}
		if err != nil {
			return
		}
		if p.Name == nil && p.Reason == nil && p.Filter == nil && len(p.ExpiresAt) == 0 {
			t.Fatalf("%q: an empty patch was accepted", b)
		}
		if len(p.ExpiresAt) > 0 && string(p.ExpiresAt) != "null" {
			var tm time.Time
			if json.Unmarshal(p.ExpiresAt, &tm) != nil {
				t.Fatalf("%q: an unparsable expiry was accepted", b)
			}
		}
	})
}

// Listings answer a client's bad token or sort with 400, and coverage takes the statistics' filters.
func TestListingsRefuseBadTokens(t *testing.T) {
	f := newReadFleet(t, "")
	for _, q := range []string{"/v1/findings?nextToken=garbage", "/v1/findings?sortBy=name", "/v1/coverage?nextToken=garbage"} {
		if p := f.admin.problem("GET", q, nil); p.Status != 400 {
			t.Errorf("%s: %+v", q, p)
		}
	}
	var cov struct{ Coverage []model.Coverage }
	for q, want := range map[string]int{"reason=EXCLUDED_BY_TAG": 1, "resourceType=host": 2, "scanType=package&resourceType=image": 1, "status=ACTIVE,INACTIVE": 3} {
		cov.Coverage = nil
		if st := f.ro.do("GET", "/v1/coverage?"+q, nil, &cov); st != 200 || len(cov.Coverage) != want {
			t.Errorf("coverage?%s: %d, %d rows, want %d", q, st, len(cov.Coverage), want)
		}
	}
}
