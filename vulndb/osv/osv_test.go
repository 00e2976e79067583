package osv

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

type collect struct {
	advs  []model.Advisory
	skips []string
}

func (c *collect) Advisory(a *model.Advisory) error { c.advs = append(c.advs, *a); return nil }
func (c *collect) Enrich(*model.Enrichment) error   { return errors.New("unexpected enrichment") }
func (c *collect) Skip(record string, err error)    { c.skips = append(c.skips, record+": "+err.Error()) }
func (c *collect) byPkg(name string) *model.Advisory {
	for i := range c.advs {
		if c.advs[i].Package == name {
			return &c.advs[i]
		}
	}
	return nil
}

func parseFixture(t *testing.T, name string) *collect {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	c := &collect{}
	if err := (Parser{}).Parse(context.Background(), name, bytes.NewReader(data), c); err != nil {
		t.Fatal(err)
	}
	if len(c.skips) > 0 {
		t.Fatalf("skipped: %v", c.skips)
	}
	return c
}

func TestConvertFixtures(t *testing.T) {
	tests := []struct {
		file      string
		pkg       string
		n         int // advisories in the record
		eco       string
		aliases   []string
		ranges    []model.Range
		versions  []string
		severity  string
		urgency   string
		cvss      []model.CVSS
		cwes      []string
		withdrawn bool
	}{
		{
			file: "GHSA-jfh8-c2jp-5v3q.json", pkg: "org.apache.logging.log4j:log4j-core", n: 2, eco: "Maven",
			aliases: []string{"CVE-2021-44228"},
			ranges: []model.Range{
				{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "2.13.0"}, {Fixed: "2.15.0"}}},
				{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "2.0-beta9"}, {Fixed: "2.3.1"}}},
				{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "2.4"}, {Fixed: "2.12.2"}}},
			},
			severity: "CRITICAL", urgency: "CRITICAL",
			cvss: []model.CVSS{{Source: "ghsa", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Score: 10}},
			cwes: []string{"CWE-20", "CWE-400", "CWE-502", "CWE-917"},
		},
		{
			file: "GO-2022-0969.json", pkg: "stdlib", n: 2, eco: "Go",
			aliases: []string{"CVE-2022-27664", "GHSA-69cg-p879-7622"},
			ranges: []model.Range{{Type: "SEMVER", Events: []model.Event{
				{Introduced: "0"}, {Fixed: "1.18.6"}, {Introduced: "1.19.0-0"}, {Fixed: "1.19.1"}}}},
			severity: "UNTRIAGED",
		},
		{
			file: "PYSEC-2021-59.json", pkg: "urllib3", n: 1, eco: "PyPI",
			aliases: []string{"CVE-2021-28363", "GHSA-5phf-pp7p-vc2r"},
			ranges: []model.Range{
				{Type: "GIT", Events: []model.Event{{Introduced: "0"}, {Fixed: "8d65ea1ecf6e2cdc27d42124e587c1b83a3118b0"}}},
				{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "1.26.0"}, {Fixed: "1.26.4"}}},
			},
			versions: []string{"1.26.0", "1.26.1", "1.26.2", "1.26.3"},
			severity: "UNTRIAGED",
		},
		{
			file: "RUSTSEC-2020-0071.json", pkg: "time", n: 1, eco: "crates.io",
			aliases:  []string{"CVE-2020-26235", "GHSA-wcg3-cvx6-7396"},
			ranges:   []model.Range{{Type: "SEMVER", Events: []model.Event{{Introduced: "0.0.0-0"}, {Fixed: "0.2.23"}}}},
			severity: "UNTRIAGED",
			cvss:     []model.CVSS{{Source: "rustsec", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:N/I:N/A:H", Score: 5.3}},
		},
		{
			file: "BIT-activemq-2020-1941.json", pkg: "activemq", n: 1, eco: "Bitnami",
			aliases:  []string{"CVE-2020-1941"},
			ranges:   []model.Range{{Type: "SEMVER", Events: []model.Event{{Introduced: "5.0.0"}, {LastAffected: "5.15.11"}}}},
			severity: "MEDIUM", urgency: "Medium",
			cvss: []model.CVSS{{Source: "bit", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", Score: 6.1}},
		},
		{
			file: "ALSA-2023-7877.json", pkg: "openssl-libs", n: 2, eco: "AlmaLinux:8",
			ranges:   []model.Range{{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "0"}, {Fixed: "1:1.1.1k-12.el8_9"}}}},
			severity: "UNTRIAGED",
		},
		{
			// Red Hat splits a product into repository streams; the stream is dropped so that the
			// record keys on the OS an inventory names ("Red Hat:enterprise_linux:9").
			file: "RHSA-2024-4312.json", pkg: "openssh-askpass", n: 4, eco: "Red Hat:enterprise_linux:9",
			ranges:   []model.Range{{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "0"}, {Fixed: "0:8.7p1-38.el9_4.1"}}}},
			severity: "HIGH", urgency: "Important",
		},
		{
			file: "GO-2024-2442.json", pkg: "github.com/gravitational/teleport", n: 1, eco: "Go",
			aliases:   []string{"GHSA-76cc-p55w-63g3"},
			ranges:    []model.Range{{Type: "SEMVER", Events: []model.Event{{Introduced: "0"}}}},
			severity:  "UNTRIAGED",
			withdrawn: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := parseFixture(t, tt.file)
			if len(c.advs) != tt.n {
				t.Fatalf("got %d advisories, want %d", len(c.advs), tt.n)
			}
			a := c.byPkg(tt.pkg)
			if a == nil {
				t.Fatalf("no advisory for %s", tt.pkg)
			}
			if a.Source != "osv" || a.Ecosystem != tt.eco {
				t.Errorf("source/ecosystem = %s/%s", a.Source, a.Ecosystem)
			}
			if !reflect.DeepEqual(a.Aliases, tt.aliases) {
				t.Errorf("aliases = %v, want %v", a.Aliases, tt.aliases)
			}
			if !reflect.DeepEqual(a.Ranges, tt.ranges) {
				t.Errorf("ranges = %+v, want %+v", a.Ranges, tt.ranges)
			}
			if !reflect.DeepEqual(a.Versions, tt.versions) {
				t.Errorf("versions = %v, want %v", a.Versions, tt.versions)
			}
			if a.Severity != tt.severity || a.Urgency != tt.urgency {
				t.Errorf("severity/urgency = %s/%q, want %s/%q", a.Severity, a.Urgency, tt.severity, tt.urgency)
			}
			if !reflect.DeepEqual(a.CVSS, tt.cvss) {
				t.Errorf("cvss = %+v, want %+v", a.CVSS, tt.cvss)
			}
			if !reflect.DeepEqual(a.CWEs, tt.cwes) {
				t.Errorf("cwes = %v, want %v", a.CWEs, tt.cwes)
			}
			if (a.Withdrawn != nil) != tt.withdrawn {
				t.Errorf("withdrawn = %v", a.Withdrawn)
			}
		})
	}
}

func TestGoZeroTimestamps(t *testing.T) {
	c := parseFixture(t, "GO-2022-0969.json")
	a := c.advs[0]
	if !a.Modified.IsZero() {
		t.Errorf("modified 0001-01-01 should read as zero, got %v", a.Modified)
	}
	if a.Published.IsZero() || a.Published.Year() != 2022 {
		t.Errorf("published = %v", a.Published)
	}
}

func TestMalformedRecordsSkipped(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"not json", `{"id": "GHSA-xxxx"`, "unexpected end"},
		{"no id", `{"affected":[{"package":{"ecosystem":"npm","name":"lodash"}}]}`, "no id"},
		{"no affected", `{"id":"GHSA-35jh-r3h4-6jhm","affected":[]}`, "no affected package"},
		{"two fields in one event", `{"id":"GHSA-35jh-r3h4-6jhm","affected":[{"package":{"ecosystem":"npm","name":"lodash"},
			"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"4.17.21"}]}]}]}`, "exactly one"},
		{"unknown range type", `{"id":"GHSA-35jh-r3h4-6jhm","affected":[{"package":{"ecosystem":"npm","name":"lodash"},
			"ranges":[{"type":"RPM","events":[{"introduced":"0"}]}]}]}`, "unknown type"},
		{"bad time", `{"id":"GHSA-35jh-r3h4-6jhm","published":"yesterday","affected":[{"package":{"ecosystem":"npm","name":"lodash"}}]}`, "published"},
		{"wrong type", `{"id":42}`, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &collect{}
			if err := (Parser{}).Parse(context.Background(), "x.json", strings.NewReader(tt.data), c); err != nil {
				t.Fatalf("a malformed record must be skipped, not fail the feed: %v", err)
			}
			if len(c.advs) != 0 || len(c.skips) != 1 || !strings.Contains(c.skips[0], tt.want) {
				t.Fatalf("advs=%d skips=%v, want one skip containing %q", len(c.advs), c.skips, tt.want)
			}
		})
	}
}

func TestNoRangesMeansAllVersions(t *testing.T) {
	c := &collect{}
	rec := `{"id":"RUSTSEC-2020-0036","summary":"failure is officially deprecated/unmaintained",
		"affected":[{"package":{"ecosystem":"crates.io","name":"failure"}}]}`
	if err := (Parser{}).Parse(context.Background(), "r.json", strings.NewReader(rec), c); err != nil {
		t.Fatal(err)
	}
	if len(c.advs) != 1 || !c.advs[0].Unfixed {
		t.Fatalf("got %+v", c.advs)
	}
}

func TestArrayOfRecords(t *testing.T) {
	a, _ := os.ReadFile("testdata/GO-2022-0969.json")
	b, _ := os.ReadFile("testdata/PYSEC-2021-59.json")
	data := "[" + string(a) + "," + string(b) + "]"
	c := &collect{}
	if err := (Parser{}).Parse(context.Background(), "q.json", strings.NewReader(data), c); err != nil {
		t.Fatal(err)
	}
	if len(c.advs) != 3 {
		t.Fatalf("got %d advisories, want 3", len(c.advs))
	}
}

func TestMapSeverity(t *testing.T) {
	for in, want := range map[string]string{
		"CRITICAL": "CRITICAL", "High": "HIGH", "Important": "HIGH", "MODERATE": "MEDIUM", "medium**": "MEDIUM",
		"low": "LOW", "negligible": "INFORMATIONAL", "": "UNTRIAGED", "not yet assigned": "UNTRIAGED",
	} {
		if got := MapSeverity(in); got != want {
			t.Errorf("MapSeverity(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestScoreCVSS(t *testing.T) {
	tests := []struct {
		vec, version string
		score        float64
		ok           bool
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "3.1", 10, true},
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.0", 9.8, true},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", "2.0", 7.5, true},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "4.0", 9.3, true},
		{"CVSS:3.1/AV:X", "", 0, false},
		{"garbage", "", 0, false},
	}
	for _, tt := range tests {
		c, ok := ScoreCVSS(tt.vec)
		if ok != tt.ok || (ok && (c.Version != tt.version || c.Score != tt.score)) {
			t.Errorf("ScoreCVSS(%s) = %+v %v, want %s %v %v", tt.vec, c, ok, tt.version, tt.score, tt.ok)
		}
	}
}

// buildZip makes an all.zip from the fixtures plus extra entries.
func buildZip(t testing.TB, extra map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create(filepath.Base(f))
		w.Write(data)
	}
	for name, data := range extra {
		w, _ := zw.Create(name)
		w.Write([]byte(data))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseZip(t *testing.T) {
	data := buildZip(t, map[string]string{"BROKEN-1.json": "{", "README.txt": "not a record"})
	c := &collect{}
	if err := ParseZip(context.Background(), "all.zip", bytes.NewReader(data), int64(len(data)), c); err != nil {
		t.Fatal(err)
	}
	// The zip holds every fixture: it must yield what they yield one by one.
	want := 0
	fixtures, _ := os.ReadDir("testdata")
	for _, e := range fixtures {
		want += len(parseFixture(t, e.Name()).advs)
	}
	if want == 0 || len(c.advs) != want {
		t.Errorf("got %d advisories, want %d", len(c.advs), want)
	}
	if len(c.skips) != 1 || !strings.Contains(c.skips[0], "BROKEN-1.json") {
		t.Errorf("skips = %v", c.skips)
	}

	t.Run("truncated", func(t *testing.T) {
		cut := data[:len(data)*2/3]
		c := &collect{}
		if err := ParseZip(context.Background(), "all.zip", bytes.NewReader(cut), int64(len(cut)), c); err == nil {
			t.Fatal("a truncated zip must fail the whole source")
		}
	})
	t.Run("corrupt entry", func(t *testing.T) {
		bad := bytes.Clone(data)
		// Flip a byte inside the first entry's data (after its 30-byte local header and name):
		// the CRC check must catch it.
		zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		off, _ := zr.File[0].DataOffset()
		bad[off+5] ^= 0xff
		c := &collect{}
		if err := ParseZip(context.Background(), "all.zip", bytes.NewReader(bad), int64(len(bad)), c); err == nil {
			t.Fatal("a corrupt entry must fail the whole source")
		}
	})
	t.Run("spooled reader", func(t *testing.T) {
		c := &collect{}
		if err := (ZipParser{TempDir: t.TempDir()}).Parse(context.Background(), "all.zip", bytes.NewReader(data), c); err != nil {
			t.Fatal(err)
		}
		if len(c.advs) != want {
			t.Errorf("got %d advisories, want %d", len(c.advs), want)
		}
	})
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Add([]byte(`[{"id":"X","affected":[{"package":{"ecosystem":"npm","name":"a"},"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/"}]}]}]`))
	f.Add([]byte(`{"id":"X","withdrawn":"2020-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ecosystem_specific":{"severity":"HIGH"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &collect{}
		if err := (Parser{}).Parse(context.Background(), "fuzz.json", bytes.NewReader(data), c); err != nil {
			t.Fatalf("Parse of in-memory bytes must not fail: %v", err)
		}
		for _, a := range c.advs {
			if a.ID == "" || a.Package == "" || a.Ecosystem == "" {
				t.Fatalf("advisory without key: %+v", a)
			}
		}
	})
}

func FuzzParseZip(f *testing.F) {
	f.Add(buildZip(f, nil))
	f.Add(buildZip(f, map[string]string{"X.json": `{"id":"X"}`})[:200])
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &collect{}
		// Any outcome but a panic is fine: a broken zip errors, bad records are skipped.
		_ = ParseZip(context.Background(), "fuzz.zip", bytes.NewReader(data), int64(len(data)), c)
	})
}
