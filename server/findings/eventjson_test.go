package findings

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// The encoder's layout check holds for today's model: if this fails, a model type changed and
// marshalFinding has fallen back to encoding/json (still correct, but slow) until it is updated.
func TestEventJSONLayoutCurrent(t *testing.T) {
	if !layoutOK() {
		t.Fatal("model.Finding's layout differs from what marshalFinding writes: update appendFinding and layoutOK")
	}
}

// marshalFinding writes byte for byte what json.Marshal does: event IDs hash these bytes.
func TestMarshalFindingEqualsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 123456789, time.UTC)
	paris := time.FixedZone("CET", 3600)
	until := time.Date(2027, 1, 1, 0, 0, 0, 0, paris)
	yes := true
	_ = yes
	full := model.Finding{
		ID: "vf-0123456789abcdef01234567", Type: model.FindingPackageVulnerability, Account: "111122223333",
		ResourceID: "i-0a1b2c3d", ResourceType: "host", VulnerabilityID: "CVE-2024-3094",
		RelatedVulnerabilities: []string{"GHSA-rxwq-x6h5-x525", "DSA-5649-1"},
		Title:                  "CVE-2024-3094 - xz-utils, liblzma5",
		Description:            "Malicious code was discovered in the upstream tarballs of xz, starting with version 5.6.0.\nThrough a series of complex obfuscations, the liblzma build process extracts a prebuilt object file <script>&\"quoted\" \\ \t é — \u2028 end",
		Severity:               model.SeverityCritical, SeveritySource: "nvd", Status: model.FindingSuppressed,
		FixAvailable: model.Yes, ExploitAvailable: model.Yes,
		RiskScore: model.RiskScore{Score: 10, Base: 10, BaseSource: "nvd CVSS 3.1", BaseVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
			Adjustments: []model.Adjustment{{Factor: "exploitation", Delta: 2, Reason: "known exploited: in CISA KEV since 2024-03-29"},
				{Factor: "network", Delta: -1, Reason: "not reachable from the network"}, {Factor: "x", Delta: 1e-7, Reason: "tiny"},
				{Factor: "y", Delta: 1.5e21, Reason: "huge"}, {Factor: "z", Delta: math.Copysign(0, -1), Reason: "negative zero"}}},
		CVSS: []model.CVSS{{Source: "nvd", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Score: 10},
			{Source: "osv", Version: "4.0", Vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", Score: 9.3}},
		EPSS: &model.EPSS{Score: 0.84513, Percentile: 0.99312, Date: at},
		KEV: &model.KEV{DateAdded: time.Date(2024, 3, 29, 0, 0, 0, 0, time.UTC), VendorProject: "XZ Utils", Product: "XZ Utils",
			Name: "XZ Utils Embedded Malicious Code Vulnerability", KnownRansomware: "Unknown"},
		CWEs:       []string{"CWE-506"},
		References: []string{"https://www.openwall.com/lists/oss-security/2024/03/29/4", "https://example.org/?a=1&b=<2>"},
		Packages: []model.VulnerablePackage{
			{Name: "liblzma5", Version: "5.6.0-0.2", Ecosystem: "Debian:12", PURL: "pkg:deb/debian/liblzma5@5.6.0-0.2?arch=amd64", SourceName: "xz-utils",
				SourceVersion: "5.6.0-0.2", Arch: "amd64", FixedInVersion: "5.6.1+really5.4.5-1", FilePath: "/var/lib/dpkg/status", LayerDigest: "sha256:abc"},
			{Name: "xz-utils", Version: "5.6.0-0.2", Ecosystem: "Debian:12"},
		},
		Advisories:      []model.AdvisoryRef{{Source: "debian", ID: "CVE-2024-3094", Note: "backdoor"}, {Source: "osv", ID: "GHSA-rxwq-x6h5-x525"}},
		Suppression:     &model.SuppressionEvidence{Rule: "sr-1", Reason: "accepted <risk>", Until: &until},
		FirstObservedAt: at, LastObservedAt: at.In(paris), UpdatedAt: at.Add(time.Nanosecond),
	}
	bare := model.Finding{} // nil packages encode as null; empty strings that are not omitted
	emptySlices := model.Finding{ID: "vf-2", RelatedVulnerabilities: []string{}, CVSS: []model.CVSS{}, CWEs: []string{}, References: []string{},
		Packages: []model.VulnerablePackage{}, Advisories: []model.AdvisoryRef{}, RiskScore: model.RiskScore{Adjustments: []model.Adjustment{}}}
	invalid := model.Finding{ID: "vf-3", Title: "bad \xff utf-8 \x7f del", Description: "ctl \x01\x1f \b\f\r\n"}
	for name, f := range map[string]model.Finding{"full": full, "bare": bare, "empty slices": emptySlices, "invalid": invalid} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalFinding(&f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\ngot  %s\nwant %s", name, got, want)
		}
	}
	// What encoding/json refuses, marshalFinding refuses too.
	nan := model.Finding{RiskScore: model.RiskScore{Score: math.NaN()}}
	if _, err := marshalFinding(&nan); err == nil {
		t.Error("NaN risk score encoded")
	}
	far := model.Finding{UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := marshalFinding(&far); err == nil {
		t.Error("year 10000 encoded")
	}
}

// Any text and any score encode as encoding/json encodes them.
func FuzzMarshalFinding(f *testing.F) {
	f.Add("CVE-2024-3094", "xz <backdoor> & \"more\"", "pkg", 9.8, int64(1733486400123456789))
	f.Add("", "\xff\u2028\x00", "", 1e-9, int64(0))
	f.Fuzz(func(t *testing.T, id, text, name string, score float64, ns int64) {
		fd := model.Finding{ID: id, VulnerabilityID: id, Title: text, Description: text, RelatedVulnerabilities: []string{text},
			RiskScore: model.RiskScore{Score: score, Base: -score, Adjustments: []model.Adjustment{{Factor: name, Delta: score / 3, Reason: text}}},
			CVSS:      []model.CVSS{{Source: name, Vector: text, Score: score}}, Packages: []model.VulnerablePackage{{Name: name, Version: text}},
			Advisories: []model.AdvisoryRef{{Source: name, ID: id, Note: text}}, UpdatedAt: time.Unix(0, ns).UTC()}
		want, werr := json.Marshal(fd)
		got, gerr := marshalFinding(&fd)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v)\nwant %s (%v)", got, gerr, want, werr)
		}
	})
}
