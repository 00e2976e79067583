package vulndb

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// vulndataDir is the shared offline mirror; tests using it skip when it is absent.
const vulndataDir = "/work/shared/vulndata"

// openVulndata imports the mirror into a new database. The database stays open when keep is set
// (benchmarks share one across sub-benchmarks; the process exit closes it).
func openVulndata(t testing.TB, keep bool) *DB {
	t.Helper()
	if _, err := os.Stat(filepath.Join(vulndataDir, "osv")); err != nil {
		t.Skip("vulndata mirror not present")
	}
	ctx := context.Background()
	dir := t.TempDir()
	if keep {
		dir, _ = os.MkdirTemp("", "vigil-vulndb-bench-")
		benchDir = dir
	}
	if d := os.Getenv("VIGIL_VULNDATA_KEEP"); d != "" {
		dir = d // keep the database for inspection
	}
	db, err := Open(ctx, filepath.Join(dir, "vuln.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !keep {
		t.Cleanup(func() { db.Close() })
	}
	start, cpu0 := time.Now(), cpuTime()
	rep, err := db.ImportMirror(ctx, vulndataDir, MirrorOptions{}, nil)
	t.Logf("import of %s: %v wall, %v CPU (user+system, all threads)", vulndataDir, time.Since(start).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond))
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
	db := openVulndata(t, false)
	ctx := context.Background()
	st, err := db.BuildIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("index: %d packages, %d advisories, built in %v, heap %.1f MiB (arena %.1f MiB); db file %.1f MiB",
		st.Packages, st.Advisories, st.BuildTime, float64(st.HeapBytes)/(1<<20), float64(st.ArenaBytes)/(1<<20), float64(db.FileSize())/(1<<20))
	defer func() {
		heap, err := db.IndexHeap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("index with every package decoded: +%.1f MiB", float64(heap)/(1<<20))
	}()
	// Importing the same data again changes nothing (hashes are deterministic) and is cheaper.
	v0, _ := db.Version(ctx)
	start, cpu0 := time.Now(), cpuTime()
	rep, _ := db.ImportMirror(ctx, vulndataDir, MirrorOptions{}, nil)
	t.Logf("re-import (no changes): %v wall, %v CPU", time.Since(start).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond))
	for _, r := range rep.Results {
		if r.Changes() != 0 {
			t.Errorf("%s: re-import made %d changes", r.Source, r.Changes())
		}
	}
	if v1, _ := db.Version(ctx); v1 != v0 {
		t.Errorf("version moved on a no-op re-import: %d -> %d", v0, v1)
	}

	// A Bitnami advisory joined with its KEV entry through the CVE (ActiveMQ OpenWire RCE).
	v, err := db.Vulnerability(ctx, "BIT-activemq-2023-46604")
	if err != nil || v == nil {
		t.Fatalf("Vulnerability: %v %v", v, err)
	}
	if v.ID != "CVE-2023-46604" || v.KEV == nil || v.KEV.VendorProject != "Apache" || len(v.Advisories) == 0 {
		t.Errorf("CVE-2023-46604 = id %s kev %+v advisories %d", v.ID, v.KEV, len(v.Advisories))
	}
	for _, c := range []struct{ eco, name, id string }{
		{"Go", "github.com/containers/buildah", "GO-2022-0345"},
		{"crates.io", "convec", "RUSTSEC-2020-0125"},
		{"PyPI", "Plone", "PYSEC-2014-65"},
		{"AlmaLinux:8", "lftp", "ALBA-2020:4665"},
		{"Bitnami", "apache", "BIT-apache-2022-22719"},
		{"Alpine:v3.11", "openssl", "CVE-2019-1551"},
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

var benchDir string

func TestMain(m *testing.M) {
	if p := os.Getenv("VIGIL_VULNDB_KILL_CHILD"); p != "" {
		killChild(p)
	}
	code := m.Run()
	if benchDB != nil {
		benchDB.Close()
	}
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// cpuTime is the process's CPU time so far: under a loaded machine it says more than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
