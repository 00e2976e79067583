package scan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/report/sbom"
)

func report() *Report {
	inv := &model.Inventory{Source: model.SourceInfo{Kind: "dir", Name: "/srv/app"}, Packages: []model.Package{
		{Name: "lodash", Version: "4.17.15", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.15", Locations: []string{"/srv/app/package-lock.json"}},
		{Name: "minimist", Version: "1.2.0", Ecosystem: "npm", PURL: "pkg:npm/minimist@1.2.0", Locations: []string{"/srv/app/package-lock.json"}},
	}}
	r := &Report{Target: inv.Source, Inventory: inv, Findings: []model.Finding{
		{VulnerabilityID: "CVE-2021-23337", RelatedVulnerabilities: []string{"GHSA-35jh-r3h4-6jhm"}, Severity: "HIGH", Status: "ACTIVE",
			Title: "CVE-2021-23337 - lodash", RiskScore: model.RiskScore{Score: 7.2}, FixAvailable: "YES",
			CVSS:     []model.CVSS{{Source: "nvd", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", Score: 7.2}},
			Packages: []model.VulnerablePackage{{Name: "lodash", Version: "4.17.15", PURL: "pkg:npm/lodash@4.17.15", FixedInVersion: "4.17.21", FilePath: "/srv/app/package-lock.json"}}},
		{VulnerabilityID: "CVE-2021-44906", Severity: "CRITICAL", Status: "SUPPRESSED", RiskScore: model.RiskScore{Score: 9.8},
			Suppression: &model.SuppressionEvidence{Rule: "openvex", Reason: "not_affected"},
			Packages:    []model.VulnerablePackage{{Name: "minimist", Version: "1.2.0", PURL: "pkg:npm/minimist@1.2.0", FixedInVersion: "1.2.6"}}},
	}}
	Summarize(r)
	return r
}

func TestSummaryAndTable(t *testing.T) {
	r := report()
	if r.Summary.High != 1 || r.Summary.Critical != 0 || r.Summary.Suppressed != 1 || r.Summary.Packages != 2 {
		t.Fatalf("summary = %+v", r.Summary)
	}
	var buf bytes.Buffer
	WriteTable(&buf, []*Report{r}, false, false)
	out := buf.String()
	if !strings.Contains(out, "HIGH (1)") || !strings.Contains(out, "4.17.21") || strings.Contains(out, "CVE-2021-44906") {
		t.Fatalf("table:\n%s", out)
	}
	buf.Reset()
	WriteTable(&buf, []*Report{r}, false, true)
	if !strings.Contains(buf.String(), "CVE-2021-44906 (suppressed)") {
		t.Fatalf("suppressed findings must show with showSuppressed:\n%s", buf.String())
	}
}

func TestSARIF(t *testing.T) {
	var buf bytes.Buffer
	if err := SARIF(&buf, []*Report{report()}, "test"); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct{ ID string } `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID, Level string
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs[0].Results) != 1 || log.Runs[0].Results[0].Level != "error" ||
		len(log.Runs[0].Tool.Driver.Rules) != 1 || log.Runs[0].Tool.Driver.Rules[0].ID != "CVE-2021-23337" {
		t.Fatalf("sarif = %s", buf.String())
	}
}

func TestCycloneDXVulnerabilitiesReferenceComponents(t *testing.T) {
	var buf bytes.Buffer
	if err := CycloneDX(&buf, []*Report{report()}, sbom.Tool{Name: "vigil", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	var bom struct {
		Components []struct {
			Ref  string `json:"bom-ref"`
			PURL string `json:"purl"`
		} `json:"components"`
		Vulnerabilities []struct {
			ID       string
			Affects  []struct{ Ref string }  `json:"affects"`
			Analysis *struct{ State string } `json:"analysis"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(buf.Bytes(), &bom); err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	for _, c := range bom.Components {
		refs[c.Ref] = c.PURL
	}
	if len(bom.Vulnerabilities) != 2 || refs[bom.Vulnerabilities[0].Affects[0].Ref] != "pkg:npm/lodash@4.17.15" {
		t.Fatalf("vulnerabilities do not reference components: %s", buf.String())
	}
	if bom.Vulnerabilities[1].Analysis == nil || bom.Vulnerabilities[1].Analysis.State != "not_affected" {
		t.Fatalf("a suppressed finding should carry a not_affected analysis")
	}
}
