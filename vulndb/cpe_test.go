package vulndb

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/nvd"
)

const cpeFixture = "feeds/nvd/testdata/cpe-cves.json"

func importNVD(t testing.TB, db *DB, meta SourceMeta, page []byte) ImportResult {
	t.Helper()
	res, err := db.ImportSource(context.Background(), "nvd", meta, func(ctx context.Context, sink feed.Sink) error {
		return (&nvd.Parser{}).Parse(ctx, "page.json", bytes.NewReader(page), sink)
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func cpeChanges(t *testing.T, db *DB, since Version) []string {
	t.Helper()
	chs, _, err := db.Changes(context.Background(), since)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range chs {
		if c.Kind == ChangeCPE {
			if c.Ecosystem != CPEEcosystem {
				t.Errorf("cpe change with ecosystem %q", c.Ecosystem)
			}
			out = append(out, c.VulnID+" "+c.Package)
		}
	}
	slices.Sort(out)
	return out
}

func TestCPEConfigurations(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	page, err := os.ReadFile(cpeFixture)
	if err != nil {
		t.Fatal(err)
	}
	res := importNVD(t, db, SourceMeta{}, page)
	if res.Enrichments != 5 || res.CPEChanged == 0 {
		t.Fatalf("import: %+v", res)
	}
	// Indexed by the vendor and product of vulnerable criteria outside negated nodes: not by the
	// Windows platform, the Siemens hardware or the negated PAN-OS hotfix alone.
	want := []string{
		"CVE-2019-0232 apache:tomcat",
		"CVE-2020-36518 debian:debian_linux",
		"CVE-2020-36518 fasterxml:jackson-databind",
		"CVE-2021-44228 apache:log4j",
		"CVE-2021-44228 siemens:sppa-t3000_ses3000_firmware",
		"CVE-2022-42889 apache:commons_text",
		"CVE-2024-3400 paloaltonetworks:pan-os",
	}
	if got := cpeChanges(t, db, 0); !slices.Equal(got, want) {
		t.Errorf("changes\n got %q\nwant %q", got, want)
	}
	vs, err := db.CPEVulns(ctx, "apache", "log4j")
	if err != nil || len(vs) != 1 || vs[0].ID != "CVE-2021-44228" || len(vs[0].Configurations) != 2 {
		t.Fatalf("CPEVulns(apache, log4j) = %+v, %v", vs, err)
	}
	if n := len(vs[0].Configurations[0].Nodes[0].Matches); n != 7 {
		t.Errorf("log4j criteria: %d, want 7", n)
	}
	if vs, _ := db.CPEVulns(ctx, "microsoft", "windows"); len(vs) != 0 {
		t.Errorf("platform-only criteria indexed: %+v", vs)
	}
	if n, err := db.CPECount(ctx); err != nil || n != 5 {
		t.Errorf("CPECount = %d, %v", n, err)
	}
	// The configurations live in their own table, not in the enrichment body.
	var body string
	if err := db.db.QueryRowContext(ctx, `SELECT body FROM vdb_enrichments WHERE source='nvd' AND id='CVE-2021-44228'`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, "cpe:2.3") || !strings.Contains(body, "CWE-917") {
		t.Errorf("enrichment body: %s", body)
	}

	// The same page again: nothing changes, the version stays.
	v1, _ := db.Version(ctx)
	if res := importNVD(t, db, SourceMeta{}, page); res.Changes() != 0 {
		t.Errorf("re-import: %+v", res)
	}

	// An incremental update: Log4Shell's first range edited, commons-text's configurations gone
	// (re-sent without any); the others are not mentioned and stay.
	edited := bytes.Replace(page, []byte(`"versionEndExcluding": "2.3.1"`), []byte(`"versionEndExcluding": "2.3.2"`), 1)
	start := bytes.Index(edited, []byte(`"id": "CVE-2022-42889"`))
	cfg := bytes.Index(edited[start:], []byte(`"configurations"`)) + start
	end := bytes.Index(edited[cfg:], []byte(`"references"`)) + cfg
	edited = append(append(append([]byte{}, edited[:cfg]...), []byte(`"configurations": [], `)...), edited[end:]...)
	res = importNVD(t, db, SourceMeta{Incremental: true}, edited)
	want = []string{"CVE-2021-44228 apache:log4j", "CVE-2021-44228 siemens:sppa-t3000_ses3000_firmware", "CVE-2022-42889 apache:commons_text"}
	if got := cpeChanges(t, db, v1); !slices.Equal(got, want) {
		t.Errorf("incremental changes\n got %q\nwant %q", got, want)
	}
	if vs, _ := db.CPEVulns(ctx, "apache", "commons_text"); len(vs) != 0 {
		t.Errorf("commons_text still indexed: %+v", vs)
	}
	vs, _ = db.CPEVulns(ctx, "apache", "log4j")
	if len(vs) != 1 || vs[0].Configurations[0].Nodes[0].Matches[0].VersionEndExcluding != "2.3.2" {
		t.Errorf("edited log4j: %+v", vs)
	}
	if vs, _ := db.CPEVulns(ctx, "apache", "tomcat"); len(vs) != 1 {
		t.Errorf("tomcat lost by an incremental import: %+v", vs)
	}

	// A full import that no longer lists a CVE removes its configurations.
	v2, _ := db.Version(ctx)
	one := []byte(`{"format":"NVD_CVE","vulnerabilities":[{"cve":{"id":"CVE-2019-0232","configurations":[{"nodes":[{"operator":"OR","cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:a:apache:tomcat:*:*:*:*:*:*:*:*","versionEndIncluding":"9.0.17"}]}]}]}}]}`)
	importNVD(t, db, SourceMeta{}, one)
	got := cpeChanges(t, db, v2)
	if len(got) != 6 || !slices.Contains(got, "CVE-2019-0232 apache:tomcat") || !slices.Contains(got, "CVE-2020-36518 fasterxml:jackson-databind") {
		t.Errorf("full import changes: %q", got)
	}
	if n, _ := db.CPECount(ctx); n != 1 {
		t.Errorf("CPECount after full import = %d", n)
	}
}

// TestUpgradeSchema1 opens a schema-1 database whose NVD enrichments hold flattened criteria: it
// is upgraded in place, and the NVD source is marked for a full fetch.
func TestUpgradeSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	sdb, err := openFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.ExecContext(ctx, schema); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO vdb_meta(key,value) VALUES('schema','1'),('version','7')`,
		`INSERT INTO vdb_sources(name, url, etag, last_modified, last_success) VALUES('nvd','https://nvd','','2026-01-01T00:00:00Z',1700000000),('kev','https://kev','"abc"','',1700000000)`,
		`INSERT INTO vdb_enrichments(source,id,hash,body) VALUES('nvd','CVE-2021-44228',x'00','{"source":"nvd","id":"CVE-2021-44228","cpes":[{"criteria":"cpe:2.3:a:apache:log4j:*:*:*:*:*:*:*:*","vulnerable":true}]}'),
			('kev','CVE-2021-44228',x'00','{"source":"kev","id":"CVE-2021-44228"}')`,
	} {
		if _, err := sdb.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	sdb.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	db.db.QueryRowContext(ctx, `SELECT value FROM vdb_meta WHERE key='schema'`).Scan(&v)
	if v != "2" {
		t.Errorf("schema %s after upgrade", v)
	}
	sts := map[string][2]any{}
	rows, _ := db.db.QueryContext(ctx, `SELECT name, last_modified, last_success, etag FROM vdb_sources`)
	for rows.Next() {
		var name, lm, etag string
		var ls sql.NullInt64
		rows.Scan(&name, &lm, &ls, &etag)
		sts[name] = [2]any{lm + "|" + etag, ls.Int64}
	}
	rows.Close()
	if sts["nvd"] != [2]any{"|", int64(0)} || sts["kev"] != [2]any{`|"abc"`, int64(1700000000)} {
		t.Errorf("sources after upgrade: %v", sts)
	}
	if n, _ := db.Version(ctx); n != 7 {
		t.Errorf("version %d", n)
	}
}
