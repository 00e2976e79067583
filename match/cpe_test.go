package match

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/match/cpe"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feeds/nvd"
)

// cpeStore adds NVD configurations to memStore.
type cpeStore struct {
	*memStore
	vulns map[string]cpe.Vuln
}

func (s *cpeStore) CPEVulns(vendor, product string) ([]cpe.Vuln, error) {
	var out []cpe.Vuln
	for _, id := range []string{"CVE-2019-0232", "CVE-2020-36518", "CVE-2021-44228", "CVE-2022-42889", "CVE-2024-3400"} {
		v, ok := s.vulns[id]
		if !ok {
			continue
		}
		if strings.Contains(v.Configurations[0].Nodes[0].Matches[0].Criteria, ":"+vendor+":"+product+":") {
			out = append(out, v)
		}
	}
	return out, nil
}

type nvdSink struct{ s *cpeStore }

func (n nvdSink) Advisory(*model.Advisory) error { return nil }
func (n nvdSink) Skip(string, error)             {}
func (n nvdSink) Enrich(e *model.Enrichment) error {
	n.s.vulns[e.ID] = cpe.Vuln{ID: e.ID, Configurations: e.Configurations}
	n.s.memStore.vulns[e.ID] = &model.Vulnerability{ID: e.ID, Description: e.Description, CVSS: e.CVSS, CWEs: e.CWEs}
	return nil
}

func newCPEStore(t *testing.T, advs ...model.Advisory) *cpeStore {
	t.Helper()
	s := &cpeStore{memStore: newStore(advs...), vulns: map[string]cpe.Vuln{}}
	f, err := os.Open("../vulndb/feeds/nvd/testdata/cpe-cves.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := (&nvd.Parser{}).Parse(context.Background(), "cpe-cves.json", f, nvdSink{s}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCPEMatchingMergesByAlias(t *testing.T) {
	// The GitHub advisory for Log4Shell in the Maven ecosystem (GHSA-jfh8-c2jp-5v3q), as osv.dev
	// serves it: 2.13.0 ≤ v < 2.15.0 among its ranges.
	ghsa := model.Advisory{Source: "osv", ID: "GHSA-jfh8-c2jp-5v3q", Aliases: []string{"CVE-2021-44228"}, Ecosystem: model.EcoMaven,
		Package: "org.apache.logging.log4j:log4j-core", Ranges: fixedRange("2.13.0", "2.15.0"), Severity: model.SeverityCritical}
	store := newCPEStore(t, ghsa)
	inv := &model.Inventory{Packages: []model.Package{
		{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: model.EcoMaven, Locations: []string{"/app/lib/log4j-core-2.14.1.jar"}},
		{Name: "commons-text", Version: "1.9", Ecosystem: model.EcoMaven, CPEs: []string{"cpe:2.3:a:apache:commons_text:1.9:*:*:*:*:*:*:*"}},
	}}
	m := New(store)

	off, err := m.Match(context.Background(), inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(off.Findings) != 1 || off.Findings[0].VulnerabilityID != "CVE-2021-44228" || len(off.Findings[0].Advisories) != 1 {
		t.Fatalf("CPE off: %+v", off.Findings)
	}

	on, err := m.Match(context.Background(), inv, Options{CPE: CPEOptions{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(on.Findings) != 2 {
		t.Fatalf("CPE on: %d findings: %+v", len(on.Findings), on.Findings)
	}
	l := findByID(on.Findings, "CVE-2021-44228")
	if l == nil || len(l.Packages) != 1 || l.Packages[0].FixedInVersion != "2.15.0" {
		t.Fatalf("Log4Shell: %+v", l)
	}
	var srcs []string
	for _, a := range l.Advisories {
		srcs = append(srcs, a.Source+" "+a.ID)
	}
	slices.Sort(srcs)
	if !slices.Equal(srcs, []string{"nvd-cpe CVE-2021-44228", "osv GHSA-jfh8-c2jp-5v3q"}) {
		t.Errorf("Log4Shell advisories: %q (one finding per vulnerability, both sources)", srcs)
	}
	if !slices.Contains(l.RelatedVulnerabilities, "GHSA-jfh8-c2jp-5v3q") {
		t.Errorf("related: %q", l.RelatedVulnerabilities)
	}
	ct := findByID(on.Findings, "CVE-2022-42889")
	if ct == nil || ct.Severity != model.SeverityCritical || ct.SeveritySource != "nvd" || ct.FixAvailable != model.Yes ||
		ct.Packages[0].FixedInVersion != "1.10.0" || !strings.Contains(ct.Advisories[0].Note, "cpe:2.3:a:apache:commons_text") {
		t.Errorf("commons-text: %+v", ct)
	}

	// GroupHits puts the GHSA hit and the CPE hit of Log4Shell in one group.
	h, _, err := m.Package(&inv.Packages[0])
	if err != nil {
		t.Fatal(err)
	}
	ch, _, err := m.CPEHits(inv, CPEOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := GroupHits(append(h, ch...)); len(g) != 2 || len(g[0]) != 2 {
		t.Errorf("groups: %d, first %d hits", len(g), len(g[0]))
	}
}

func TestCPEMatchingNeedsAStore(t *testing.T) {
	inv := &model.Inventory{Packages: []model.Package{{Name: "x", Version: "1", CPEs: []string{"cpe:2.3:a:v:p:1"}}}}
	_, err := New(newStore()).Match(context.Background(), inv, Options{CPE: CPEOptions{Enabled: true}})
	if err == nil || !strings.Contains(err.Error(), "CPE") {
		t.Errorf("err = %v", err)
	}
}
