package vulndb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// vulndataDir is the shared offline mirror; tests using it skip when it is absent.
const vulndataDir = "/work/shared/vulndata"

func openVulndata(t testing.TB) *DB {
	t.Helper()
	if _, err := os.Stat(filepath.Join(vulndataDir, "osv")); err != nil {
		t.Skip("vulndata mirror not present")
	}
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "vuln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	start := time.Now()
	rep, err := db.ImportMirror(ctx, vulndataDir, MirrorOptions{}, nil)
	t.Logf("import of %s: %v", vulndataDir, time.Since(start))
	for name, e := range rep.Failed {
		t.Logf("failed %s: %v", name, e)
	}
	_ = err // sources without a parser yet (kev/nvd/epss) fail alone; checked below per source
	for _, r := range rep.Results {
		t.Logf("%-24s advisories=%-6d enrichments=%-5d skipped=%-3d added=%-6d %v", r.Source, r.Advisories, r.Enrichments, r.Skipped, r.Added, r.Duration.Round(time.Millisecond))
		for _, s := range r.SkipSamples[:min(3, len(r.SkipSamples))] {
			t.Logf("    skipped %s", s)
		}
	}
	return db
}

// TestVulndata imports the whole shared mirror and reports the figures the design asks for
// (import time, database size, index memory). Run with -v to see them.
func TestVulndata(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	db := openVulndata(t)
	ctx := context.Background()
	st, err := db.BuildIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("index: %d packages, %d advisories, built in %v, heap %.1f MiB; db file %.1f MiB",
		st.Packages, st.Advisories, st.BuildTime, float64(st.HeapBytes)/(1<<20), float64(db.FileSize())/(1<<20))
	for _, c := range []struct{ eco, name, id string }{
		{"Go", "github.com/containers/buildah", "GO-2022-0345"},
		{"crates.io", "convec", "RUSTSEC-2020-0125"},
		{"PyPI", "Plone", "PYSEC-2014-65"},
		{"AlmaLinux:8", "lftp", "ALBA-2020:4665"},
		{"Bitnami", "apache", "BIT-apache-2022-22719"},
	} {
		advs, err := db.Lookup(ctx, c.eco, c.name)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range advs {
			found = found || a.ID == c.id
		}
		if !found {
			t.Errorf("Lookup(%s, %s): %d advisories, %s missing", c.eco, c.name, len(advs), c.id)
		}
	}
}
