package vulndb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/osv"
)

func newDB(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "vuln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fixture reads an OSV record of vulndb/osv/testdata, optionally edited by string replacement
// (pairs of old, new).
func fixture(t testing.TB, name string, edits ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("osv", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(edits); i += 2 {
		if !bytes.Contains(data, []byte(edits[i])) {
			t.Fatalf("%s: %q not found", name, edits[i])
		}
		data = bytes.ReplaceAll(data, []byte(edits[i]), []byte(edits[i+1]))
	}
	return data
}

func importOSV(t testing.TB, db *DB, source string, records ...[]byte) ImportResult {
	t.Helper()
	res, err := db.ImportSource(context.Background(), source, SourceMeta{URL: "test:" + source}, func(ctx context.Context, sink feed.Sink) error {
		for i, r := range records {
			if err := osv.ParseBytes(ctx, string(rune('a'+i)), r, sink); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func ids(advs []model.Advisory) []string {
	var out []string
	for _, a := range advs {
		out = append(out, a.ID)
	}
	sort.Strings(out)
	return out
}

func TestLookupAndVulnerability(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	res := importOSV(t, db, "osv/test",
		fixture(t, "GHSA-jfh8-c2jp-5v3q.json"), fixture(t, "GO-2022-0969.json"), fixture(t, "PYSEC-2021-59.json"),
		fixture(t, "GO-2024-2442.json"), fixture(t, "ALSA-2023-7877.json"))
	if res.Added != 7 || res.Advisories != 8 || res.Version != 1 {
		t.Fatalf("result = %+v, want 7 added (the withdrawn one is not), 8 received, version 1", res)
	}

	tests := []struct {
		eco, name string
		want      []string
	}{
		{"Maven", "org.apache.logging.log4j:log4j-core", []string{"GHSA-jfh8-c2jp-5v3q"}},
		{"Go", "stdlib", []string{"GO-2022-0969"}},
		{"Go", "golang.org/x/net", []string{"GO-2022-0969"}},
		{"PyPI", "urllib3", []string{"PYSEC-2021-59"}},
		{"PyPI", "URLLib3", []string{"PYSEC-2021-59"}}, // PEP 503
		{"AlmaLinux:8", "openssl", []string{"ALSA-2023:7877"}},
		{"AlmaLinux:9", "openssl", nil},
		{"Go", "github.com/gravitational/teleport", nil}, // withdrawn
		{"Go", "Stdlib", nil},                            // Go paths are case-sensitive
		{"Maven", "org.apache.logging.log4j:log4j-api", nil},
	}
	for _, tt := range tests {
		got, err := db.Lookup(ctx, tt.eco, tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if g := ids(got); !reflect.DeepEqual(g, tt.want) {
			t.Errorf("Lookup(%s, %s) = %v, want %v", tt.eco, tt.name, g, tt.want)
		}
	}
	got, _ := db.Lookup(ctx, "Maven", "org.apache.logging.log4j:log4j-core")
	a := got[0]
	if len(a.Ranges) != 3 || a.Severity != "CRITICAL" || len(a.CVSS) != 1 || a.CVSS[0].Score != 10 ||
		a.Summary != "Remote code injection in Log4j" || len(a.CWEs) != 4 || a.Details != "" {
		t.Errorf("lookup advisory = %+v", a)
	}

	// Enrichments from another source, merged by CVE.
	_, err := db.ImportSource(ctx, "kev", SourceMeta{}, func(ctx context.Context, sink feed.Sink) error {
		return sink.Enrich(&model.Enrichment{ID: "CVE-2021-44228", KEV: &model.KEV{
			DateAdded: time.Date(2021, 12, 10, 0, 0, 0, 0, time.UTC), VendorProject: "Apache", Product: "Log4j2",
			KnownRansomware: "Known"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ImportSource(ctx, "nvd", SourceMeta{}, func(ctx context.Context, sink feed.Sink) error {
		return sink.Enrich(&model.Enrichment{ID: "CVE-2021-44228", Description: "Apache Log4j2 2.0-beta9 through 2.15.0 ...",
			CVSS: []model.CVSS{{Source: "nvd", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Score: 10}},
			CWEs: []string{"CWE-917"}})
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, id := range []string{"CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q"} {
		v, err := db.Vulnerability(ctx, id)
		if err != nil || v == nil {
			t.Fatalf("Vulnerability(%s) = %v, %v", id, v, err)
		}
		if v.ID != "CVE-2021-44228" {
			t.Errorf("Vulnerability(%s).ID = %s", id, v.ID)
		}
		if len(v.Advisories) != 2 || v.Advisories[0].Details == "" || len(v.Advisories[0].References) != 2 {
			t.Errorf("advisories = %+v", v.Advisories)
		}
		if v.KEV == nil || v.KEV.KnownRansomware != "Known" || !strings.HasPrefix(v.Description, "Apache Log4j2") {
			t.Errorf("enrichments not merged: %+v", v)
		}
		if len(v.CVSS) != 2 { // nvd and ghsa scored the same vector
			t.Errorf("cvss = %+v", v.CVSS)
		}
		if !reflect.DeepEqual(v.CWEs, []string{"CWE-917", "CWE-20", "CWE-400", "CWE-502"}) {
			t.Errorf("cwes = %v", v.CWEs)
		}
	}
	// An errata fixing several CVEs keeps its own ID.
	v, err := db.Vulnerability(ctx, "ALSA-2023:7877")
	if err != nil || v == nil || v.ID != "ALSA-2023:7877" || len(v.Advisories) != 2 {
		t.Fatalf("ALSA: %+v %v", v, err)
	}
	if v, err := db.Vulnerability(ctx, "CVE-1999-0001"); v != nil || err != nil {
		t.Errorf("unknown ID = %+v, %v", v, err)
	}
}

func TestChanges(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	log4j := fixture(t, "GHSA-jfh8-c2jp-5v3q.json")
	goRec := fixture(t, "GO-2022-0969.json")
	pysec := fixture(t, "PYSEC-2021-59.json")
	res := importOSV(t, db, "osv/x", log4j, goRec, pysec)
	if res.Version != 1 || res.Added != 5 {
		t.Fatalf("first import: %+v", res)
	}

	// Same data again: nothing changes, the version stays.
	res = importOSV(t, db, "osv/x", log4j, goRec, pysec)
	if res.Version != 1 || res.Changes() != 0 {
		t.Fatalf("re-import: %+v", res)
	}

	// golang.org/x/net's fix moves, urllib3 is withdrawn, log4j disappears from the feed.
	goRec2 := fixture(t, "GO-2022-0969.json", "0.0.0-20220906165146-f3363e06e74c", "0.0.0-20220906165146-f3363e06e74d")
	pysec2 := fixture(t, "PYSEC-2021-59.json", `"modified": "2021-03-23T18:15:00Z",`, `"modified": "2024-01-01T00:00:00Z", "withdrawn": "2024-01-01T00:00:00Z",`)
	res = importOSV(t, db, "osv/x", goRec2, pysec2)
	if res.Version != 2 || res.Changed != 1 || res.Withdrawn != 1 || res.Removed != 2 || res.Added != 0 {
		t.Fatalf("third import: %+v", res)
	}
	changes, cur, err := db.Changes(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if cur != 2 {
		t.Errorf("current version = %d", cur)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Kind+" "+c.Ecosystem+"/"+c.Package+" "+c.VulnID)
	}
	sort.Strings(got)
	want := []string{
		"changed Go/golang.org/x/net CVE-2022-27664",
		"removed Maven/org.apache.logging.log4j:log4j-core CVE-2021-44228",
		"removed Maven/org.ops4j.pax.logging:pax-logging-log4j2 CVE-2021-44228",
		"withdrawn PyPI/urllib3 CVE-2021-28363",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %v\nwant %v", got, want)
	}
	if all, _, _ := db.Changes(ctx, 0); len(all) != 5+4 {
		t.Errorf("changes since 0: %d", len(all))
	}
	// The index follows the changes.
	if advs, _ := db.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 0 {
		t.Errorf("withdrawn advisory still matched: %v", ids(advs))
	}
	advs, _ := db.Lookup(ctx, "Go", "golang.org/x/net")
	if len(advs) != 1 || advs[0].Ranges[0].Events[1].Fixed != "0.0.0-20220906165146-f3363e06e74d" {
		t.Errorf("changed advisory = %+v", advs)
	}
	if err := db.PruneChanges(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if all, _, _ := db.Changes(ctx, 0); len(all) != 4 {
		t.Errorf("after prune: %d", len(all))
	}
}

func TestFailedImportKeepsPreviousData(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	importOSV(t, db, "osv/Go", fixture(t, "GO-2022-0969.json"))
	if _, err := db.Lookup(ctx, "Go", "stdlib"); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection reset")
	_, err := db.ImportSource(ctx, "osv/Go", SourceMeta{}, func(ctx context.Context, sink feed.Sink) error {
		// Half of a new feed arrives, then the source dies.
		if err := osv.ParseBytes(ctx, "a", fixture(t, "GO-2024-2442.json"), sink); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	advs, err := db.Lookup(ctx, "Go", "stdlib")
	if err != nil || len(advs) != 1 {
		t.Fatalf("previous data lost: %v %v", advs, err)
	}
	if v, _ := db.Version(ctx); v != 1 {
		t.Errorf("version = %d", v)
	}
	st, _ := db.Status(ctx, nil, time.Hour)
	if len(st) != 1 || !strings.Contains(st[0].LastError, "connection reset") || st[0].Advisories != 2 || st[0].LastSuccess.IsZero() {
		t.Errorf("status = %+v", st)
	}

	// A cancelled import also rolls back.
	cctx, cancel := context.WithCancel(ctx)
	_, err = db.ImportSource(cctx, "osv/Go", SourceMeta{}, func(ctx context.Context, sink feed.Sink) error {
		cancel()
		return osv.ParseBytes(ctx, "a", fixture(t, "GO-2024-2442.json"), sink)
	})
	if err == nil {
		t.Fatal("cancelled import succeeded")
	}
	if advs, _ := db.Lookup(ctx, "Go", "stdlib"); len(advs) != 1 {
		t.Fatal("previous data lost after cancel")
	}
}

func TestStatusStale(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	importOSV(t, db, "osv/Go", fixture(t, "GO-2022-0969.json"))
	now = now.Add(30 * time.Hour)
	st, err := db.Status(ctx, []Source{{Name: "osv/Go"}, {Name: "osv/PyPI"}}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Name != "osv/Go" || !st[0].Stale || st[0].Age != 30*time.Hour || st[0].Advisories != 2 {
		t.Errorf("osv/Go = %+v", st[0])
	}
	if st[1].Name != "osv/PyPI" || !st[1].Stale || !st[1].LastSuccess.IsZero() {
		t.Errorf("osv/PyPI = %+v", st[1])
	}
	st, _ = db.Status(ctx, nil, 48*time.Hour)
	if st[0].Stale {
		t.Error("30h-old source stale under a 48h limit")
	}
}

func TestEnrichmentPiecesMerge(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	res, err := db.ImportSource(ctx, "nvd", SourceMeta{}, func(ctx context.Context, sink feed.Sink) error {
		if err := sink.Enrich(&model.Enrichment{ID: "CVE-2022-27664", Description: "In net/http in Go before 1.18.6 and 1.19.x before 1.19.1"}); err != nil {
			return err
		}
		return sink.Enrich(&model.Enrichment{ID: "CVE-2022-27664", CWEs: []string{"NVD-CWE-Other"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Enriched != 1 {
		t.Errorf("enriched = %d, want 1 change for one CVE", res.Enriched)
	}
	v, err := db.Vulnerability(ctx, "CVE-2022-27664")
	if err != nil || v == nil || v.Description == "" || len(v.CWEs) != 1 {
		t.Fatalf("v = %+v, %v", v, err)
	}
}

func TestVulnID(t *testing.T) {
	tests := []struct {
		id      string
		aliases []string
		want    string
	}{
		{"GHSA-jfh8-c2jp-5v3q", []string{"CVE-2021-44228"}, "CVE-2021-44228"},
		{"GO-2022-0969", []string{"CVE-2022-27664", "GHSA-69cg-p879-7622"}, "CVE-2022-27664"},
		{"CVE-2021-44228", nil, "CVE-2021-44228"},
		{"GO-2024-2442", []string{"GHSA-76cc-p55w-63g3"}, "GO-2024-2442"},
		{"ALSA-2023:7877", []string{"CVE-2023-3446", "CVE-2023-3817"}, "ALSA-2023:7877"},
		{"CVE-2021-44228", []string{"CVE-2021-44228"}, "CVE-2021-44228"},
	}
	for _, tt := range tests {
		if got := VulnID(tt.id, tt.aliases); got != tt.want {
			t.Errorf("VulnID(%s, %v) = %s, want %s", tt.id, tt.aliases, got, tt.want)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct{ eco, in, want string }{
		{"PyPI", "Django", "django"},
		{"PyPI", "zope.interface", "zope-interface"},
		{"PyPI", "Foo__Bar-.baz", "foo-bar-baz"},
		{"PyPI", "-x-", "-x-"},
		{"npm", "JSONStream", "JSONStream"},
		{"Go", "github.com/BurntSushi/toml", "github.com/BurntSushi/toml"},
		{"Maven", "org.apache.logging.log4j:log4j-core", "org.apache.logging.log4j:log4j-core"},
	}
	for _, tt := range tests {
		if got := NormalizeName(tt.eco, tt.in); got != tt.want {
			t.Errorf("NormalizeName(%s, %s) = %s, want %s", tt.eco, tt.in, got, tt.want)
		}
	}
}

func TestRefreshSeesOtherWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vuln.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path) // a second process, in effect
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	importOSV(t, a, "osv/Go", fixture(t, "GO-2022-0969.json"))
	if advs, _ := b.Lookup(ctx, "Go", "stdlib"); len(advs) != 1 {
		t.Fatal("b does not see a's import")
	}
	importOSV(t, a, "osv/PyPI", fixture(t, "PYSEC-2021-59.json"))
	if advs, _ := b.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 0 {
		t.Fatal("b's index should still be the old one before Refresh")
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if advs, _ := b.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 1 {
		t.Fatal("Refresh did not pick up the other writer's import")
	}
}

func TestConcurrentLookupsDuringImports(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	importOSV(t, db, "osv/Go", fixture(t, "GO-2022-0969.json"))
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				advs, err := db.Lookup(ctx, "Go", "stdlib")
				if err != nil || len(advs) != 1 {
					errs <- fmt.Errorf("lookup during import: %v %v", len(advs), err)
					return
				}
			}
		}()
	}
	for i := range 10 {
		edit := fmt.Sprintf(`"fixed": "1.19.%d"`, i+1)
		importOSV(t, db, "osv/Go", fixture(t, "GO-2022-0969.json", `"fixed": "1.19.1"`, edit))
		importOSV(t, db, "osv/PyPI", fixture(t, "PYSEC-2021-59.json"))
	}
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestEnrichmentChangeInSecondPiece(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	imp := func(cwe string) ImportResult {
		res, err := db.ImportSource(ctx, "nvd", SourceMeta{}, func(ctx context.Context, sink feed.Sink) error {
			if err := sink.Enrich(&model.Enrichment{ID: "CVE-2022-27664", Description: "In net/http in Go before 1.18.6"}); err != nil {
				return err
			}
			return sink.Enrich(&model.Enrichment{ID: "CVE-2022-27664", CWEs: []string{cwe}})
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	imp("NVD-CWE-Other")
	if res := imp("NVD-CWE-Other"); res.Enriched != 0 {
		t.Errorf("unchanged import logged %d changes", res.Enriched)
	}
	// Only the second piece differs: the change must still be logged, once.
	if res := imp("CWE-400"); res.Enriched != 1 {
		t.Errorf("changed import logged %d changes, want 1", res.Enriched)
	}
}
