package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb"
)

// After a restart, the engine is rebuilt from the stored inventories; the next submission must
// still close what it fixed and open what it introduced.
func TestSubmissionAfterRestart(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	vdb, _ := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	res := model.Resource{Account: DefaultAccount, ID: "web-1", Type: model.ResourceHost}
	srv, err := New(ctx, Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory("4.17.15", "1.2.0")
	if _, err := srv.Submit(ctx, res, &inv); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	srv, err = New(ctx, Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fixed := inventory("4.17.21", "1.2.0")
	out, err := srv.Submit(ctx, res, &fixed)
	if err != nil {
		t.Fatal(err)
	}
	if out.Closed != 1 || out.Findings != 1 {
		t.Fatalf("after the restart: %+v", out)
	}
}

func TestDebianSubmissionAfterRestart(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(mirror, "debian", "tracker.json"), `{"openssl": {"CVE-2023-5678": {"description": "x", "scope": "local",
	 "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.11-1~deb12u2"}, "fixed_version": "3.0.13-1~deb12u1", "urgency": "low"}}}}}`)
	vdb, _ := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	deb := func(v string) model.Inventory {
		return model.Inventory{OS: &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}, Packages: []model.Package{
			{Name: "libssl3", Version: v, Ecosystem: "Debian:12", SourceName: "openssl", SourceVersion: v, Arch: "amd64",
				PURL: "pkg:deb/debian/libssl3@" + v + "?arch=amd64&distro=debian-12", Locations: []string{"/var/lib/dpkg/status"}}}}
	}
	res := model.Resource{Account: DefaultAccount, ID: "agt-1", Type: model.ResourceHost}
	srv, err := New(ctx, Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	inv := deb("3.0.11-1~deb12u2")
	if out, err := srv.Submit(ctx, res, &inv); err != nil || out.Findings != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	srv.Close()
	srv, err = New(ctx, Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fixed := deb("3.0.13-1~deb12u1")
	// As the agent service does: the resource as stored, carrying the previous inventory's hash.
	stored, err := srv.Store.GetResource(ctx, DefaultAccount, "agt-1")
	if err != nil || stored.InventoryHash == "" {
		t.Fatalf("stored resource: %+v %v", stored, err)
	}
	out, err := srv.Submit(ctx, stored, &fixed)
	if err != nil {
		t.Fatal(err)
	}
	if out.Closed != 1 || out.Findings != 0 {
		t.Fatalf("after the restart: %+v", out)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Advisories imported while no server runs (an offline `vigil db update`) reach the stored findings
// on the first feed pass after the restart, although the engine's restored state would already
// reflect them.
func TestAdvisoriesAddedWhileDown(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	vdbPath := filepath.Join(data, "vulndb.sqlite")
	vdb, _ := vulndb.Open(ctx, vdbPath)
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	res := model.Resource{Account: DefaultAccount, ID: "web-1", Type: model.ResourceHost}
	srv, err := New(ctx, Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory("4.17.15", "1.2.0")
	if _, err := srv.Submit(ctx, res, &inv); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ApplyFeedUpdate(ctx); err != nil { // records the applied version, as the poll job does
		t.Fatal(err)
	}
	srv.Close()

	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	vdb, _ = vulndb.Open(ctx, vdbPath)
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()

	srv, err = New(ctx, Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.ApplyFeedUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	fs, err := srv.Store.ResourceFindings(ctx, DefaultAccount, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{}
	for _, f := range fs {
		if f.Status == model.FindingActive {
			open[f.Packages[0].Name] = true
		}
	}
	if len(fs) != 2 || !open["lodash"] || !open["minimist"] {
		t.Fatalf("after the restart, want the lodash finding kept and a minimist one opened: %+v", fs)
	}
	// The next submission of the same inventory changes nothing.
	out, err := srv.Submit(ctx, res, &inv)
	if err != nil || out.Created != 0 || out.Closed != 0 || out.Findings != 2 {
		t.Fatalf("resubmission: %+v, %v", out, err)
	}
}
