package score

import (
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

func TestParseRealVectors(t *testing.T) {
	tests := []struct {
		vector, version string
		base            float64
	}{
		// CVE-2021-44228 (Log4Shell), NVD v3.1 and v2.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "3.1", 10.0},
		{"AV:N/AC:M/Au:N/C:C/I:C/A:C", "2.0", 9.3},
		// CVE-2023-38545 (curl SOCKS5 heap overflow), NVD v3.1.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "3.1", 9.8},
		// CVE-2014-0160 (Heartbleed), NVD v3.0.
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "3.0", 7.5},
		// A v4.0 vector as GitHub publishes them.
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "4.0", 9.3},
	}
	for _, tc := range tests {
		ver, base, err := Parse(tc.vector)
		if err != nil || ver != tc.version || base != tc.base {
			t.Errorf("Parse(%s) = %s %.1f %v; want %s %.1f", tc.vector, ver, base, err, tc.version, tc.base)
		}
	}
	if _, _, err := Parse("CVSS:3.1/AV:X"); err == nil {
		t.Error("an invalid vector must fail")
	}
}

func TestSeverityBands(t *testing.T) {
	cases := map[float64]string{0: "INFORMATIONAL", 3.9: "LOW", 4.0: "MEDIUM", 6.9: "MEDIUM", 7.0: "HIGH", 8.9: "HIGH", 9.0: "CRITICAL", 10: "CRITICAL"}
	for s, want := range cases {
		if got := Severity("3.1", s); got != want {
			t.Errorf("Severity(3.1, %.1f) = %s, want %s", s, got, want)
		}
	}
	if got := Severity("2.0", 10); got != "HIGH" {
		t.Errorf("CVSS v2 has no critical band, got %s", got)
	}
}

func TestRiskAdjustments(t *testing.T) {
	log4shell := model.Finding{
		Severity: "CRITICAL", FixAvailable: model.Yes,
		CVSS: []model.CVSS{{Source: "ghsa", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"},
			{Source: "nvd", Vector: "AV:N/AC:M/Au:N/C:C/I:C/A:C"}, {Source: "nvd", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}},
		KEV: &model.KEV{DateAdded: time.Date(2021, 12, 10, 0, 0, 0, 0, time.UTC)},
	}
	Risk(&log4shell, Context{})
	if log4shell.RiskScore.Score != 10 || log4shell.RiskScore.BaseSource != "nvd CVSS 3.1" {
		t.Errorf("log4shell risk = %+v", log4shell.RiskScore)
	}
	if len(log4shell.RiskScore.Adjustments) != 1 || log4shell.RiskScore.Adjustments[0].Factor != "exploitation" {
		t.Errorf("want one exploitation adjustment, got %+v", log4shell.RiskScore.Adjustments)
	}

	unfixed := model.Finding{Severity: "MEDIUM", FixAvailable: model.No,
		CVSS: []model.CVSS{{Source: "nvd", Vector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"}},
		EPSS: &model.EPSS{Score: 0.0009, Percentile: 0.38}}
	exposed := false
	Risk(&unfixed, Context{NetworkExposed: &exposed})
	// 5.9 base, -0.5 low EPSS, -0.5 no fix, -1 not exposed.
	if unfixed.RiskScore.Base != 5.9 || unfixed.RiskScore.Score != 3.9 || len(unfixed.RiskScore.Adjustments) != 3 {
		t.Errorf("unfixed risk = %+v", unfixed.RiskScore)
	}

	untriaged := model.Finding{Severity: "UNTRIAGED", FixAvailable: model.Yes}
	Risk(&untriaged, Context{})
	if untriaged.RiskScore.Score != 5.0 {
		t.Errorf("an unrated finding should start mid-scale, got %+v", untriaged.RiskScore)
	}

	noVector := model.Finding{Severity: "HIGH", FixAvailable: model.Yes}
	Risk(&noVector, Context{})
	if noVector.RiskScore.Score != 8.0 {
		t.Errorf("a finding with only a vendor severity should start mid-band, got %+v", noVector.RiskScore)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
	f.Add("AV:N/AC:M/Au:N/C:C/I:C/A:C")
	f.Add("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
	f.Fuzz(func(t *testing.T, v string) {
		_, base, err := Parse(v)
		if err == nil && (base < 0 || base > 10) {
			t.Fatalf("Parse(%q) base %.1f out of range", v, base)
		}
	})
}
