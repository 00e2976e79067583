package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

func findings() []model.Finding {
	return []model.Finding{
		{VulnerabilityID: "CVE-2021-44228", RelatedVulnerabilities: []string{"GHSA-jfh8-c2jp-5v3q"}, Status: model.FindingActive,
			Packages: []model.VulnerablePackage{{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1",
				PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}}},
		{VulnerabilityID: "CVE-2023-5678", Status: model.FindingActive,
			Packages: []model.VulnerablePackage{{Name: "libssl3", SourceName: "openssl", Version: "3.0.11-1~deb12u1",
				PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&distro=debian-12"}}},
		{VulnerabilityID: "CVE-2022-24785", RelatedVulnerabilities: []string{"GHSA-8hfj-j24r-96c4"}, Status: model.FindingActive,
			Packages: []model.VulnerablePackage{{Name: "moment", Version: "2.29.1", PURL: "pkg:npm/moment@2.29.1"}}},
	}
}

func TestIgnoreFileRulesAndExpiry(t *testing.T) {
	doc := `ignore:
  - vulnerability: GHSA-jfh8-c2jp-5v3q
    reason: JNDI lookups disabled with log4j2.formatMsgNoLookups
    expires: 2026-12-31
  - vulnerability: CVE-2023-5678
    package: openssl
    reason: DH_check not called with untrusted parameters
    expires: 2026-01-01
`
	rules, err := ParseIgnoreFile(strings.NewReader(doc), ".vigilignore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fs := findings()
	warns := (&Policy{Rules: rules}).Apply(fs, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	if fs[0].Status != model.FindingSuppressed || fs[0].Suppression.Rule != "ignore-file" {
		t.Errorf("a rule naming a related ID must suppress: %+v", fs[0])
	}
	if fs[1].Status != model.FindingActive || len(warns) != 1 {
		t.Errorf("an expired rule must not suppress and must warn: %+v %v", fs[1].Status, warns)
	}
	if fs[2].Status != model.FindingActive {
		t.Errorf("unrelated finding suppressed")
	}
}

func TestIgnoreFileRejectsRulesWithoutReason(t *testing.T) {
	for _, doc := range []string{
		"ignore:\n  - vulnerability: CVE-2023-5678\n",
		"ignore:\n  - reason: x\n",
		"ignore:\n  - vulnerability: CVE-2023-5678\n    reason: x\n    expires: next week\n",
		"ignore:\n  - vulnerability: CVE-2023-5678\n    reason: x\n    typo: 1\n",
	} {
		if _, err := ParseIgnoreFile(strings.NewReader(doc), "f"); err == nil {
			t.Errorf("accepted %q", doc)
		}
	}
}

func TestOpenVEX(t *testing.T) {
	doc := `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://example.com/vex/1","author":"sec@example.com",
	"statements":[
	 {"vulnerability":{"name":"CVE-2022-24785"},"products":[{"@id":"pkg:oci/app","subcomponents":[{"@id":"pkg:npm/moment@2.29.1"}]}],
	  "status":"not_affected","justification":"vulnerable_code_not_in_execute_path"},
	 {"vulnerability":"CVE-2021-44228","products":[{"@id":"pkg:maven/org.apache.logging.log4j/log4j-core@2.17.1"}],"status":"not_affected",
	  "justification":"component_not_present"},
	 {"vulnerability":{"name":"CVE-2023-5678"},"status":"affected"}]}`
	st, err := ParseOpenVEX(strings.NewReader(doc), "app.vex.json")
	if err != nil {
		t.Fatal(err)
	}
	fs := findings()
	(&Policy{VEX: st}).Apply(fs, time.Now())
	if fs[2].Status != model.FindingSuppressed || !strings.Contains(fs[2].Suppression.Reason, "vulnerable_code_not_in_execute_path") {
		t.Errorf("moment should be suppressed by VEX: %+v", fs[2])
	}
	if fs[0].Status != model.FindingActive {
		t.Error("a statement about another version must not suppress")
	}
	if fs[1].Status != model.FindingActive {
		t.Error("an 'affected' statement must not suppress")
	}
	if _, err := ParseOpenVEX(strings.NewReader(`{"@context":"https://cyclonedx.org"}`), "x"); err == nil {
		t.Error("a non-OpenVEX document must be rejected")
	}
}

func FuzzParseIgnoreFile(f *testing.F) {
	f.Add("ignore:\n  - vulnerability: CVE-2023-5678\n    reason: x\n    expires: 2027-01-01\n")
	f.Fuzz(func(t *testing.T, doc string) { _, _ = ParseIgnoreFile(strings.NewReader(doc), "fuzz") })
}

func FuzzParseOpenVEX(f *testing.F) {
	f.Add(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":"CVE-1","status":"not_affected"}]}`)
	f.Fuzz(func(t *testing.T, doc string) { _, _ = ParseOpenVEX(strings.NewReader(doc), "fuzz") })
}
