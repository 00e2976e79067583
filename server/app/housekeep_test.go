package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb"
)

// Time alone expires suppression rules and deletes old closed findings.
func TestHousekeeping(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	vdb, err := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	srv, err := New(ctx, Config{DataDir: data, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res := model.Resource{Account: DefaultAccount, ID: "web-1", Type: model.ResourceHost}
	inv := inventory("4.17.15", "1.2.0")
	if _, err := srv.Submit(ctx, res, &inv); err != nil {
		t.Fatal(err)
	}
	expires := now.Add(24 * time.Hour)
	if err := srv.Store.PutSuppressionRule(ctx, model.SuppressionRule{ID: "sr-1", Account: DefaultAccount, Name: "minimist",
		Reason: "not reachable", Filter: model.FindingFilter{PackageNames: []string{"minimist"}}, ExpiresAt: &expires,
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := srv.reapplyRules(ctx, DefaultAccount); err != nil {
		t.Fatal(err)
	}
	fixed := inventory("4.17.21", "1.2.0")
	now = now.Add(time.Hour)
	if _, err := srv.Submit(ctx, res, &fixed); err != nil { // lodash's finding closes
		t.Fatal(err)
	}
	status := func() map[string]string {
		fs, err := srv.Store.ResourceFindings(ctx, DefaultAccount, "web-1")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, f := range fs {
			out[f.VulnerabilityID] = f.Status
		}
		return out
	}
	if st := status(); st["CVE-2021-23337"] != model.FindingClosed || st["CVE-2021-44906"] != model.FindingSuppressed {
		t.Fatalf("before: %v", st)
	}
	now = now.Add(2 * 24 * time.Hour) // the rule has expired
	if err := srv.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if st := status(); st["CVE-2021-44906"] != model.FindingActive || st["CVE-2021-23337"] != model.FindingClosed {
		t.Fatalf("after the rule expired: %v", st)
	}
	now = now.Add(31 * 24 * time.Hour) // closed for more than 30 days
	if err := srv.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if st := status(); len(st) != 1 || st["CVE-2021-44906"] != model.FindingActive {
		t.Fatalf("after retention: %v", st)
	}
}
