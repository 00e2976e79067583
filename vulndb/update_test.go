package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/vulndb/feeds/fetch"
	"github.com/vigil-sec/vigil/vulndb/feeds/nvd"
)

func zipOf(t testing.TB, records map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range records {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// feedServer serves one file per path with an ETag, honouring If-None-Match, and can be told to
// misbehave.
type feedServer struct {
	mu    sync.Mutex
	files map[string][]byte
	mode  string // "", "500", "cut", "truncate"
	hits  map[string]int
	cond  map[string]int // conditional requests answered 304
}

func (s *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, ok := s.files[r.URL.Path]
	mode := s.mode
	s.hits[r.URL.Path]++
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	etag := fmt.Sprintf(`"%x"`, hashOf(data))
	switch mode {
	case "500":
		http.Error(w, "backend unavailable", http.StatusInternalServerError)
		return
	case "cut":
		// Promise the whole file, send a third, drop the connection.
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/3])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case "truncate":
		// A well-formed HTTP response whose body is a truncated zip (a broken mirror).
		w.Header().Set("ETag", etag+"-t")
		w.Write(data[:len(data)*3/4])
		return
	}
	if r.Header.Get("If-None-Match") == etag {
		s.mu.Lock()
		s.cond[r.URL.Path]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", "Sun, 22 Nov 2026 10:00:00 GMT")
	w.Write(data)
}

func (s *feedServer) set(mode string, files map[string][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = mode
	if files != nil {
		s.files = files
	}
}

func TestUpdateOverHTTP(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	goZip := zipOf(t, map[string][]byte{
		"GO-2022-0969.json": fixture(t, "GO-2022-0969.json"),
		"GO-2024-2442.json": fixture(t, "GO-2024-2442.json"),
	})
	mavenZip := zipOf(t, map[string][]byte{"GHSA-jfh8-c2jp-5v3q.json": fixture(t, "GHSA-jfh8-c2jp-5v3q.json")})
	fs := &feedServer{hits: map[string]int{}, cond: map[string]int{}}
	fs.set("", map[string][]byte{"/Go/all.zip": goZip, "/Maven/all.zip": mavenZip})
	srv := httptest.NewServer(fs)
	defer srv.Close()

	cfg := UpdateConfig{
		Sources: DefaultSources(SourceOptions{OSVBase: srv.URL, OSVEcosystems: []string{"Go", "Maven"}}),
		// No retries: each failure mode must surface on the first attempt.
		Fetcher: &fetch.Fetcher{Dir: t.TempDir(), Retries: -1},
	}
	var phases []string
	var pmu sync.Mutex
	progress := func(p Progress) {
		pmu.Lock()
		phases = append(phases, p.Source+":"+p.Phase)
		pmu.Unlock()
	}
	rep, err := db.Update(ctx, cfg, progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Added != 2 || rep.Results[1].Added != 2 {
		t.Fatalf("first update: %+v", rep)
	}
	if !strings.Contains(strings.Join(phases, " "), "osv/Go:done") {
		t.Errorf("progress = %v", phases)
	}
	baseline := func(when string) {
		t.Helper()
		advs, err := db.Lookup(ctx, "Go", "stdlib")
		if err != nil || len(advs) != 1 || advs[0].ID != "GO-2022-0969" {
			t.Fatalf("%s: previous data not usable: %v %v", when, ids(advs), err)
		}
		advs, _ = db.Lookup(ctx, "Maven", "org.apache.logging.log4j:log4j-core")
		if len(advs) != 1 {
			t.Fatalf("%s: log4j lost", when)
		}
	}
	baseline("after first update")
	v1, _ := db.Version(ctx)

	// Unchanged upstream: 304, no download, no new version, state refreshed.
	rep, err = db.Update(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.NotModified) != 2 || fs.cond["/Go/all.zip"] != 1 {
		t.Fatalf("304 not honoured: %+v cond=%v", rep, fs.cond)
	}
	if v, _ := db.Version(ctx); v != v1 {
		t.Errorf("version moved on 304: %d -> %d", v1, v)
	}

	// Upstream changes, but the server fails in every way: the previous data stays.
	goZip2 := zipOf(t, map[string][]byte{
		"GO-2022-0969.json": fixture(t, "GO-2022-0969.json", `"fixed": "1.19.1"`, `"fixed": "1.19.2"`),
	})
	for _, mode := range []string{"500", "cut", "truncate"} {
		fs.set(mode, map[string][]byte{"/Go/all.zip": goZip2, "/Maven/all.zip": mavenZip})
		rep, err := db.Update(ctx, cfg, nil)
		if err == nil || rep.Failed["osv/Go"] == nil {
			t.Fatalf("%s: update did not fail: %+v", mode, rep)
		}
		t.Logf("%s: %v", mode, rep.Failed["osv/Go"])
		baseline(mode)
		if advs, _ := db.Lookup(ctx, "Go", "stdlib"); advs[0].Ranges[0].Events[3].Fixed != "1.19.1" {
			t.Fatalf("%s: half-imported data visible", mode)
		}
		st, _ := db.Status(ctx, nil, 0)
		if st[0].Name != "osv/Go" || st[0].LastError == "" {
			t.Errorf("%s: status = %+v", mode, st[0])
		}
		if v, _ := db.Version(ctx); v != v1 {
			t.Errorf("%s: version moved", mode)
		}
	}

	// A pinned checksum that the (otherwise fine) download does not match.
	fs.set("", nil)
	pinned := cfg
	pinned.Sources = append([]Source(nil), cfg.Sources...)
	pinned.Sources[0].SHA256 = strings.Repeat("0", 64)
	rep, err = db.Update(ctx, pinned, nil)
	if err == nil || !errors.Is(rep.Failed["osv/Go"], fetch.ErrChecksum) {
		t.Fatalf("checksum mismatch not reported: %v", err)
	}
	baseline("checksum")

	// The server recovers: the change arrives, the error clears, the change log says what moved.
	fs.set("", nil)
	rep, err = db.Update(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Source != "osv/Go" || rep.Results[0].Changed != 1 || len(rep.NotModified) != 1 {
		t.Fatalf("recovery update: %+v", rep)
	}
	changes, _, _ := db.Changes(ctx, v1)
	if len(changes) != 1 || changes[0].Package != "stdlib" || changes[0].Kind != ChangeChanged {
		t.Errorf("changes = %+v", changes)
	}
	st, _ := db.Status(ctx, cfg.Sources, time.Hour)
	for _, s := range st {
		if s.LastError != "" || s.Stale || s.ETag == "" {
			t.Errorf("status = %+v", s)
		}
	}
}

func TestUpdateMissingParser(t *testing.T) {
	db := newDB(t)
	cfg := UpdateConfig{Sources: []Source{{Name: "kev", Kind: KindKEV, URL: "http://127.0.0.1:1/kev.json"}}, Parsers: DefaultParsers()}
	delete(cfg.Parsers, KindKEV)
	rep, err := db.Update(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(rep.Failed["kev"].Error(), "no parser") {
		t.Fatalf("err = %v", err)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportMirror(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "osv", "Go", "all.zip"), zipOf(t, map[string][]byte{"GO-2022-0969.json": fixture(t, "GO-2022-0969.json")}))
	writeFile(t, filepath.Join(dir, "osv", "PyPI", "all.zip"), zipOf(t, map[string][]byte{"PYSEC-2021-59.json": fixture(t, "PYSEC-2021-59.json")}))
	writeFile(t, filepath.Join(dir, "osv", "Broken", "all.zip"), []byte("PK\x03\x04 this is not a zip"))
	writeFile(t, filepath.Join(dir, "alpine", "v3.11", "main.json"), []byte(`{"apkurl":"{{urlprefix}}/{{distroversion}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk",
 "archs":["x86_64"],"reponame":"main","urlprefix":"http://dl-cdn.alpinelinux.org/alpine","distroversion":"v3.11",
 "packages":[{"pkg":{"name":"openssl","secfixes":{"1.1.1d-r3":["CVE-2019-1551"],"1.1.1g-r0":["CVE-2020-1967"]}}}]}`))

	srcs, err := ScanMirror(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "osv/Broken,osv/Go,osv/PyPI,alpine/v3.11/main" {
		t.Fatalf("sources = %v", names)
	}
	db := newDB(t)
	rep, err := db.ImportMirror(ctx, dir, MirrorOptions{}, nil)
	if err == nil || rep.Failed["osv/Broken"] == nil || len(rep.Failed) != 1 {
		t.Fatalf("broken zip must fail alone: %v %+v", err, rep.Failed)
	}
	if len(rep.Results) != 3 {
		t.Fatalf("results = %+v", rep.Results)
	}
	// The first fill of the empty database ran without secondary indexes; they are back (plus the
	// three that stay: vdb_enrichments_id, vdb_changes_version, vdb_cpe_index_id).
	var n int
	if err := db.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='index' AND name LIKE 'vdb_%'`).Scan(&n); err != nil || n != len(secondaryIndexes)+3 {
		t.Errorf("indexes after a bulk fill: %d, %v", n, err)
	}
	for _, c := range [][2]string{{"Go", "stdlib"}, {"PyPI", "urllib3"}, {"Alpine:v3.11", "openssl"}} {
		if advs, _ := db.Lookup(ctx, c[0], c[1]); len(advs) == 0 {
			t.Errorf("Lookup(%s, %s) empty", c[0], c[1])
		}
	}
}

func TestUpdateNVDAPI(t *testing.T) {
	ctx := context.Background()
	page, err := os.ReadFile("testdata/nvd-page-log4shell.json")
	if err != nil {
		t.Fatal(err)
	}
	empty := []byte(`{"resultsPerPage":0,"startIndex":0,"totalResults":0,"format":"NVD_CVE","version":"2.0","timestamp":"2026-11-23T10:00:00.000","vulnerabilities":[]}`)
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		if r.URL.Query().Get("lastModStartDate") != "" {
			w.Write(empty)
			return
		}
		w.Write(page)
	}))
	defer srv.Close()

	db := newDB(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	noSleep := func(ctx context.Context, d time.Duration) error { return nil }
	cfg := UpdateConfig{
		Sources: []Source{{Name: "nvd", Kind: KindNVD, URL: srv.URL + "/rest/json/cves/2.0"}},
		NVD:     &nvd.Client{Sleep: noSleep, Now: func() time.Time { return now }},
	}
	rep, err := db.Update(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Enrichments != 1 {
		t.Fatalf("first run: %+v", rep)
	}
	v, err := db.Vulnerability(ctx, "CVE-2021-44228")
	if err != nil || v == nil || !strings.HasPrefix(v.Description, "Apache Log4j2") || len(v.CVSS) == 0 {
		t.Fatalf("nvd enrichment = %+v, %v", v, err)
	}
	// The second run asks only for what changed since the first, and keeps what it does not
	// mention.
	now = now.Add(24 * time.Hour)
	if _, err := db.Update(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	if len(queries) != 2 || !strings.Contains(queries[1], "lastModStartDate=2026-11-23T12%3A00%3A00.000Z") {
		t.Fatalf("queries = %v", queries)
	}
	if v, _ := db.Vulnerability(ctx, "CVE-2021-44228"); v == nil {
		t.Fatal("incremental run removed data")
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Skipf("feed fixture missing: %v", err)
	}
	writeFile(t, to, data)
}

// TestMirrorAllKinds wires every parser through a mirror directory, using the feed packages' own
// hand-written fixtures for the non-OSV formats.
func TestMirrorAllKinds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "osv", "Maven", "all.zip"), zipOf(t, map[string][]byte{"GHSA-jfh8-c2jp-5v3q.json": fixture(t, "GHSA-jfh8-c2jp-5v3q.json")}))
	copyFile(t, "feeds/debian/testdata/tracker.json", filepath.Join(dir, "debian", "tracker.json"))
	copyFile(t, "feeds/kev/testdata/kev.json", filepath.Join(dir, "kev", "known_exploited_vulnerabilities.json"))
	copyFile(t, "feeds/epss/testdata/epss_scores-2025-08-25.csv", filepath.Join(dir, "epss", "epss_scores-2025-08-25.csv"))
	copyFile(t, "feeds/nvd/testdata/page.json", filepath.Join(dir, "nvd", "page.json"))

	db := newDB(t)
	rep, err := db.ImportMirror(ctx, dir, MirrorOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 5 {
		t.Fatalf("results = %+v", rep.Results)
	}
	v, err := db.Vulnerability(ctx, "GHSA-jfh8-c2jp-5v3q")
	if err != nil || v == nil {
		t.Fatal(v, err)
	}
	if v.ID != "CVE-2021-44228" || v.KEV == nil || v.EPSS == nil || v.EPSS.Score <= 0.9 || v.Description == "" {
		t.Errorf("merged vulnerability = %+v", v)
	}
	sources := map[string]bool{}
	for _, e := range v.Enrichments {
		sources[e.Source] = true
	}
	if !sources["nvd"] || !sources["kev"] || !sources["epss"] {
		t.Errorf("enrichment sources = %v", sources)
	}
	advs, err := db.Lookup(ctx, "Debian:12", "openssl")
	if err != nil || len(advs) == 0 {
		t.Fatalf("Debian:12 openssl: %v %v", advs, err)
	}
	found := false
	for _, a := range advs {
		found = found || VulnID(a.ID, a.Aliases) == "CVE-2023-5678"
	}
	if !found {
		t.Errorf("CVE-2023-5678 not among %v", ids(advs))
	}
}
