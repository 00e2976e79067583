package cpe_test

import (
	"context"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/match/cpe"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feeds/nvd"
)

// fixture is a hand-written NVD API page of real CVEs with their real criteria and ranges
// (CVE-2021-44228, CVE-2019-0232, CVE-2022-42889, CVE-2020-36518) and one negated node on real
// PAN-OS versions (CVE-2024-3400).
const fixture = "../../vulndb/feeds/nvd/testdata/cpe-cves.json"

type sink struct{ vulns map[string]cpe.Vuln }

func (s *sink) Advisory(*model.Advisory) error { return nil }
func (s *sink) Skip(string, error)             {}
func (s *sink) Enrich(e *model.Enrichment) error {
	s.vulns[e.ID] = cpe.Vuln{ID: e.ID, Configurations: e.Configurations}
	return nil
}

// memStore answers CPEVulns the way the database does: by the vendor and product of vulnerable,
// non-negated criteria.
type memStore struct {
	vulns   map[string]cpe.Vuln
	lookups []string
}

func (m *memStore) CPEVulns(vendor, product string) ([]cpe.Vuln, error) {
	m.lookups = append(m.lookups, vendor+":"+product)
	var out []cpe.Vuln
	for _, v := range m.vulns {
	cfgs:
		for _, c := range v.Configurations {
			for _, n := range c.Nodes {
				for _, mm := range n.Matches {
					name, err := cpe.Parse(mm.Criteria)
					if err == nil && mm.Vulnerable && !n.Negate && name[cpe.Vendor] == vendor && name[cpe.Product] == product {
						out = append(out, v)
						break cfgs
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func loadFixture(t *testing.T) *memStore {
	t.Helper()
	f, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &sink{vulns: map[string]cpe.Vuln{}}
	if err := (&nvd.Parser{}).Parse(context.Background(), fixture, f, s); err != nil {
		t.Fatal(err)
	}
	return &memStore{vulns: s.vulns}
}

func ids(hs []cpe.Hit) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.ID+" "+h.Package.Name+"@"+h.Package.Version)
	}
	sort.Strings(out)
	return out
}

func TestLog4jBoundaries(t *testing.T) {
	st := loadFixture(t)
	tests := []struct {
		version string
		hit     bool
		fixed   string
	}{
		{"2.0-beta8", false, ""},
		{"2.0-beta9", true, ""}, // the 2.0:beta9 criterion
		{"2.0-rc1", true, ""},
		{"2.0-rc2", true, ""},
		{"2.0", true, ""},        // 2.0:- (no update)
		{"2.0.1", true, "2.3.1"}, // first range, start inclusive
		{"2.3", true, "2.3.1"},
		{"2.3.1", false, ""}, // end exclusive: the Java 6 security release
		{"2.3.2", false, ""}, // between ranges
		{"2.4", true, "2.12.2"},
		{"2.12.1", true, "2.12.2"},
		{"2.12.2", false, ""},
		{"2.12.4", false, ""},
		{"2.13.0", true, "2.15.0"},
		{"2.14.1", true, "2.15.0"},
		{"2.15.0-rc1", true, "2.15.0"}, // a pre-release sorts below its release
		{"2.15.0", false, ""},
		{"2.17.1", false, ""},
	}
	for _, tt := range tests {
		p := model.Package{Name: "org.apache.logging.log4j:log4j-core", Version: tt.version, Ecosystem: model.EcoMaven}
		inv := &model.Inventory{Packages: []model.Package{p}}
		hs, warn, err := cpe.Match(st, inv, cpe.Options{})
		if err != nil || len(warn) > 0 {
			t.Fatal(err, warn)
		}
		got := len(hs) == 1 && hs[0].ID == "CVE-2021-44228"
		if got != tt.hit || len(hs) > 1 {
			t.Errorf("log4j-core %s: hits %q, want hit=%v", tt.version, ids(hs), tt.hit)
			continue
		}
		if got && hs[0].Fixed != tt.fixed {
			t.Errorf("log4j-core %s: fixed %q, want %q", tt.version, hs[0].Fixed, tt.fixed)
		}
	}
}

func TestGeneratedCandidatesAreNarrow(t *testing.T) {
	st := loadFixture(t)
	inv := &model.Inventory{Packages: []model.Package{
		// log4j-api shares log4j's version but not Log4Shell: no "log4j" alias for it.
		{Name: "org.apache.logging.log4j:log4j-api", Version: "2.14.1", Ecosystem: model.EcoMaven},
		{Name: "com.fasterxml.jackson.core:jackson-databind", Version: "2.12.6", Ecosystem: model.EcoMaven},
		{Name: "com.fasterxml.jackson.core:jackson-databind", Version: "2.12.6.1", Ecosystem: model.EcoMaven},
		{Name: "com.fasterxml.jackson.core:jackson-databind", Version: "2.13.2", Ecosystem: model.EcoMaven},
		{Name: "com.fasterxml.jackson.core:jackson-databind", Version: "2.13.2.1", Ecosystem: model.EcoMaven},
		// NVD calls it commons_text: a generated guess does not reach it (an SBOM CPE does).
		{Name: "org.apache.commons:commons-text", Version: "1.9", Ecosystem: model.EcoMaven},
		// The JDBC driver is not the PostgreSQL server NVD calls postgresql:postgresql.
		{Name: "org.postgresql:postgresql", Version: "42.2.5", Ecosystem: model.EcoMaven},
		// No vendor can be read from an npm or PyPI name, and OS packages are the vendor's.
		{Name: "log4j", Version: "2.14.1", Ecosystem: model.EcoNPM},
		{Name: "liblog4j2-java", Version: "2.14.1", Ecosystem: "Debian:11", SourceName: "apache-log4j2"},
	}}
	hs, _, err := cpe.Match(st, inv, cpe.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CVE-2020-36518 com.fasterxml.jackson.core:jackson-databind@2.12.6", "CVE-2020-36518 com.fasterxml.jackson.core:jackson-databind@2.13.2"}
	if got := ids(hs); !slices.Equal(got, want) {
		t.Errorf("hits\n got %q\nwant %q", got, want)
	}
	if want := []string{"apache:log4j-api", "fasterxml:jackson-databind", "apache:commons-text"}; !slices.Equal(st.lookups, want) {
		t.Errorf("lookups %q, want %q", st.lookups, want)
	}
}

func TestSBOMCPEs(t *testing.T) {
	st := loadFixture(t)
	inv := &model.Inventory{Packages: []model.Package{
		{Name: "commons-text", Version: "1.9", Ecosystem: model.EcoMaven, CPEs: []string{"cpe:2.3:a:apache:commons_text:1.9:*:*:*:*:*:*:*"}},
		// A CPE's own version wins over the package's.
		{Name: "log4j", Version: "unknown", CPEs: []string{"cpe:2.3:a:apache:log4j:2.14.1:*:*:*:*:*:*:*"}},
		// Version in the CPE is ANY: the package version is used.
		{Name: "log4j-too", Version: "2.12.1", CPEs: []string{"cpe:2.3:a:apache:log4j:*:*:*:*:*:*:*:*"}},
		// The explicit update attribute: 2.0 beta9.
		{Name: "log4j-beta", Version: "2.0", CPEs: []string{"cpe:2.3:a:apache:log4j:2.0:beta9:*:*:*:*:*:*"}},
		{Name: "log4j-beta8", Version: "2.0", CPEs: []string{"cpe:2.3:a:apache:log4j:2.0:beta8:*:*:*:*:*:*"}},
		{Name: "bad", Version: "1", CPEs: []string{"cpe:2.3:a:apache"}},
		// An OS package with a CPE (as Syft writes them) is left to its vendor by default.
		{Name: "libcommons-text-java", Version: "1.9-1", Ecosystem: "Debian:11", CPEs: []string{"cpe:2.3:a:apache:commons_text:1.9:*:*:*:*:*:*:*"}},
	}}
	hs, warn, err := cpe.Match(st, inv, cpe.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CVE-2021-44228 log4j-beta@2.0",
		"CVE-2021-44228 log4j-too@2.12.1",
		"CVE-2021-44228 log4j@unknown",
		"CVE-2022-42889 commons-text@1.9",
	}
	if got := ids(hs); !slices.Equal(got, want) {
		t.Errorf("hits\n got %q\nwant %q", got, want)
	}
	if len(warn) != 1 || !strings.Contains(warn[0], `"cpe:2.3:a:apache"`) {
		t.Errorf("warnings %q", warn)
	}
	for _, h := range hs {
		if h.ID == "CVE-2022-42889" && (h.Fixed != "1.10.0" || !strings.Contains(h.Describe(), "(>= 1.5, < 1.10.0)")) {
			t.Errorf("commons-text hit: fixed %q, %s", h.Fixed, h.Describe())
		}
	}
	hs, _, _ = cpe.Match(st, inv, cpe.Options{OSPackages: true})
	if got := ids(hs); len(got) != 5 || !slices.Contains(got, "CVE-2022-42889 libcommons-text-java@1.9-1") {
		t.Errorf("with OSPackages: %q", got)
	}
}

// TestPlatforms: an AND configuration holds only when the platform is known to be there.
func TestPlatforms(t *testing.T) {
	st := loadFixture(t)
	tomcat := model.Package{Name: "tomcat", Version: "9.0.17", CPEs: []string{"cpe:2.3:a:apache:tomcat:9.0.17:*:*:*:*:*:*:*"}}
	// On Debian (and on an unknown OS) the Windows-only CGI bug does not apply.
	for _, o := range []*model.OS{nil, {Family: "debian", VersionID: "12"}} {
		hs, _, _ := cpe.Match(st, &model.Inventory{OS: o, Packages: []model.Package{tomcat}}, cpe.Options{})
		if len(hs) != 0 {
			t.Errorf("OS %+v: hits %q", o, ids(hs))
		}
	}
	// With Windows among the resource's names it does; 9.0.18 is past the inclusive end.
	win, _ := cpe.Parse("cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*")
	for v, want := range map[string]int{"9.0.17": 1, "9.0.18": 0, "9.0.0-M1": 1, "8.5.39": 1, "8.5.40": 0} {
		p := tomcat
		p.Version, p.CPEs = v, nil
		n, _ := cpe.Parse("cpe:2.3:a:apache:tomcat:*:*:*:*:*:*:*:*")
		ev := cpe.NewEvaluator([]cpe.Target{{Name: n, Package: &p}, {Name: win}})
		if got := ev.Evaluate(st.vulns["CVE-2019-0232"]); len(got) != want {
			t.Errorf("tomcat %s on Windows: %d hits, want %d", v, len(got), want)
		}
	}
	// The OS itself is never a hit: CVE-2020-36518 lists Debian 10 and 11 as vulnerable (they ship
	// jackson-databind), but a Debian 11 resource without the library has no finding.
	ev := cpe.NewEvaluator([]cpe.Target{{Name: mustOS(t, &model.OS{Family: "debian", VersionID: "11.7"})}})
	if got := ev.Evaluate(st.vulns["CVE-2020-36518"]); len(got) != 0 {
		t.Errorf("OS hit: %+v", got)
	}
	// Firmware on hardware Vigil cannot see: the Siemens configuration of Log4Shell never holds.
	fw := model.Package{Name: "fw", Version: "1", CPEs: []string{"cpe:2.3:o:siemens:sppa-t3000_ses3000_firmware:1:*:*:*:*:*:*:*"}}
	fwName, _ := cpe.Parse(fw.CPEs[0])
	if got := cpe.NewEvaluator([]cpe.Target{{Name: fwName, Package: &fw}}).Evaluate(st.vulns["CVE-2021-44228"]); len(got) != 0 {
		t.Errorf("firmware without its hardware: %+v", got)
	}
}

func mustOS(t *testing.T, o *model.OS) cpe.Name {
	n, ok := cpe.OSName(o)
	if !ok {
		t.Fatalf("no CPE for %+v", o)
	}
	return n
}

// TestNegate: a negated node excludes the versions it names.
func TestNegate(t *testing.T) {
	st := loadFixture(t)
	for v, want := range map[string]int{"10.2.8": 1, "10.2.9": 1, "10.2.9-h1": 0, "10.2.10": 0, "10.1.12": 0} {
		p := model.Package{Name: "pan-os", Version: v, CPEs: []string{"cpe:2.3:o:paloaltonetworks:pan-os:*:*:*:*:*:*:*:*"}}
		hs, _, _ := cpe.Match(st, &model.Inventory{Packages: []model.Package{p}}, cpe.Options{})
		if len(hs) != want {
			t.Errorf("pan-os %s: hits %q, want %d", v, ids(hs), want)
		}
	}
}
