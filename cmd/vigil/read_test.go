package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// testServer starts a Vigil server over TLS with a host and an image holding a vulnerable lodash,
// and returns the flags that reach it.
func testServer(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	vdb, err := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vdb.ImportMirror(ctx, mirror(t), vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	srv, err := app.New(ctx, app.Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	lodash := model.Package{Name: "lodash", Version: "4.17.15", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.15",
		Locations: []string{"/srv/app/package-lock.json"}}
	host := model.Inventory{OS: &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}, Packages: []model.Package{lodash,
		{Name: "libssl3", Version: "3.0.11-1~deb12u2", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2", Ecosystem: "Debian:12"}}}
	if _, err := srv.Submit(ctx, model.Resource{Account: app.DefaultAccount, ID: "web-1", Type: model.ResourceHost,
		Tags: map[string]string{"env": "prod"}}, &host); err != nil {
		t.Fatal(err)
	}
	image := model.Inventory{Packages: []model.Package{lodash}}
	if _, err := srv.Submit(ctx, model.Resource{Account: app.DefaultAccount, ID: "sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d",
		Type: model.ResourceImage, ImageRepository: "registry.example.com/team/api"}, &image); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return []string{"--server", ts.URL, "--api-key", srv.AdminKey(), "--ca-fingerprint", srv.CAFingerprint()}
}

func TestServerReadCommands(t *testing.T) {
	conn := testServer(t)
	cli := func(args ...string) string {
		t.Helper()
		out, err := run(t, append(args, conn...)...)
		if err != nil {
			t.Fatalf("vigil %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	cliErr := func(args ...string) error {
		t.Helper()
		_, err := run(t, append(args, conn...)...)
		if err == nil {
			t.Fatalf("vigil %s succeeded", strings.Join(args, " "))
		}
		return err
	}
	decode := func(out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}

	// Aggregations.
	var groups []store.AggregateRow
	decode(cli("findings", "aggregate", "--by", "vulnerability", "-o", "json"), &groups)
	if len(groups) != 3 || groups[0].Key != "CVE-2021-23337" || groups[0].Counts.High != 2 || groups[0].Resources != 2 {
		t.Errorf("by vulnerability: %+v", groups)
	}
	out := cli("findings", "aggregate", "--by", "resource", "--severity", "HIGH")
	if !strings.Contains(out, "ACCOUNT") || !strings.Contains(out, "web-1") || !strings.Contains(out, "sha256:9c7a54a9") {
		t.Errorf("by resource:\n%s", out)
	}
	decode(cli("findings", "aggregate", "--by", "package", "--resource-type", "host", "-o", "json"), &groups)
	if len(groups) != 2 {
		t.Errorf("host packages: %+v", groups)
	}
	if err := cliErr("findings", "aggregate", "--by", "title"); !strings.Contains(err.Error(), "aggregationType") {
		t.Errorf("an unknown grouping: %v", err)
	}

	// A finding's details.
	var findings []model.Finding
	decode(cli("findings", "--vulnerability", "CVE-2021-23337", "--resource", "web-1", "--json"), &findings)
	if len(findings) != 1 {
		t.Fatalf("findings: %+v", findings)
	}
	out = cli("findings", "get", findings[0].ID)
	for _, want := range []string{"CVE-2021-23337", "Risk score", "CVSS 3.1", "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", "CWE-77", "GHSA-35jh-r3h4-6jhm", "lodash 4.17.15 (npm), fixed in 4.17.21"} {
		if !strings.Contains(out, want) {
			t.Errorf("findings get lacks %q:\n%s", want, out)
		}
	}
	var d app.FindingDetails
	decode(cli("findings", "get", findings[0].ID, "-o", "json"), &d)
	if d.Finding.ID != findings[0].ID || d.Vulnerability == nil || d.ScoreBreakdown.Base == 0 {
		t.Errorf("details as JSON: %+v", d)
	}
	if err := cliErr("findings", "get", "vf-none"); !strings.Contains(err.Error(), "404") {
		t.Errorf("an unknown finding: %v", err)
	}

	// Suppression rules: create, narrow, inspect, delete.
	var rule model.SuppressionRule
	decode(cli("filters", "create", "--name", "lodash", "--reason", "templates are trusted", "--vulnerability", "CVE-2021-23337", "-o", "json"), &rule)
	if rule.ID == "" || rule.ExpiresAt != nil {
		t.Fatalf("created: %+v", rule)
	}
	suppressed := func() []string {
		t.Helper()
		var fs []model.Finding
		decode(cli("findings", "--status", "SUPPRESSED", "--json"), &fs)
		var out []string
		for _, f := range fs {
			out = append(out, f.ResourceID)
		}
		return out
	}
	if got := suppressed(); len(got) != 2 {
		t.Errorf("after create: %v", got)
	}
	decode(cli("filters", "update", rule.ID, "--vulnerability", "CVE-2021-23337", "--resource-type", "image", "--expires", "720h", "-o", "json"), &rule)
	if rule.ExpiresAt == nil || rule.Name != "lodash" {
		t.Errorf("updated: %+v", rule)
	}
	if got := suppressed(); len(got) != 1 || !strings.HasPrefix(got[0], "sha256:") {
		t.Errorf("after narrowing to images: %v", got)
	}
	id := rule.ID
	rule = model.SuppressionRule{}
	decode(cli("filters", "update", id, "--no-expiry", "--reason", "rebuilt weekly", "-o", "json"), &rule)
	if rule.ExpiresAt != nil || rule.Reason != "rebuilt weekly" {
		t.Errorf("no expiry: %+v", rule)
	}
	out = cli("filters", "list")
	if !strings.Contains(out, rule.ID) || !strings.Contains(out, "resourceTypes=image") || !strings.Contains(out, "never") {
		t.Errorf("filters list:\n%s", out)
	}
	out = cli("filters", "get", rule.ID)
	if !strings.Contains(out, "rebuilt weekly") {
		t.Errorf("filters get:\n%s", out)
	}
	if err := cliErr("filters", "update", rule.ID); !strings.Contains(err.Error(), "nothing to change") {
		t.Errorf("an empty update: %v", err)
	}
	if err := cliErr("filters", "update", rule.ID, "--severity", "SEVERE"); !strings.Contains(err.Error(), "filter.severities") {
		t.Errorf("a bad severity: %v", err)
	}
	if err := cliErr("filters", "create", "--name", "x", "--vulnerability", "CVE-2021-23337"); !strings.Contains(err.Error(), "reason") {
		t.Errorf("a rule without a reason: %v", err)
	}
	cli("filters", "delete", rule.ID)
	if got := suppressed(); len(got) != 0 {
		t.Errorf("after delete: %v", got)
	}

	// Coverage statistics.
	var stats app.CoverageStatistics
	decode(cli("coverage", "stats", "--group-by", "resourceType", "-o", "json"), &stats)
	if stats.Total != 2 || len(stats.Counts) != 2 {
		t.Errorf("coverage by type: %+v", stats)
	}
	if out := cli("coverage", "stats", "--group-by", "reason"); !strings.Contains(out, model.ReasonSuccessful) || !strings.Contains(out, "TOTAL") {
		t.Errorf("coverage by reason:\n%s", out)
	}
	if out := cli("coverage"); !strings.Contains(out, "web-1") || !strings.Contains(out, "sha256:") {
		t.Errorf("coverage still lists:\n%s", out)
	}
	var cov []model.Coverage
	decode(cli("coverage", "--resource-type", "image", "-o", "json"), &cov)
	if len(cov) != 1 || cov[0].ResourceType != model.ResourceImage {
		t.Errorf("image coverage: %+v", cov)
	}
	decode(cli("coverage", "stats", "--group-by", "status", "--resource", "web-1", "-o", "json"), &stats)
	if stats.Total != 1 {
		t.Errorf("one resource's coverage by status: %+v", stats)
	}

	// Resources.
	out = cli("resources", "list", "--tag", "env=prod")
	if !strings.Contains(out, "web-1") || strings.Contains(out, "sha256:") {
		t.Errorf("resources with env=prod:\n%s", out)
	}
	out = cli("resources", "get", "host", "web-1")
	if !strings.Contains(out, "ACTIVE FINDINGS") || !strings.Contains(out, "COVERAGE package") {
		t.Errorf("resources get:\n%s", out)
	}
	img := "sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d"
	cli("resources", "delete", "image", img)
	var views []app.ResourceView
	decode(cli("resources", "list", "-o", "json"), &views)
	if len(views) != 1 || views[0].ID != "web-1" {
		t.Errorf("after delete: %+v", views)
	}
	if out := cli("resources", "list", "--include-removed", "--type", "image"); !strings.Contains(out, "removed") {
		t.Errorf("removed image:\n%s", out)
	}
	if err := cliErr("resources", "get", "host", "nope"); !strings.Contains(err.Error(), "404") {
		t.Errorf("an unknown resource: %v", err)
	}
	if _, err := run(t, "resources", "list"); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Errorf("without a server: %v", err)
	}
	if err := cliErr("resources", "list", "-o", "yaml"); !strings.Contains(err.Error(), "table or json") {
		t.Errorf("an unknown output: %v", err)
	}
}
