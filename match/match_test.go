package match

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// memStore is an in-memory Store for tests.
type memStore struct {
	advs  map[string][]model.Advisory
	vulns map[string]*model.Vulnerability
}

func (s *memStore) Advisories(eco, name string) ([]model.Advisory, error) {
	return s.advs[eco+"|"+NormalizeName(eco, name)], nil
}

func (s *memStore) Vulnerability(id string) (*model.Vulnerability, error) { return s.vulns[id], nil }

func newStore(advs ...model.Advisory) *memStore {
	s := &memStore{advs: map[string][]model.Advisory{}, vulns: map[string]*model.Vulnerability{}}
	for _, a := range advs {
		k := a.Ecosystem + "|" + NormalizeName(a.Ecosystem, a.Package)
		s.advs[k] = append(s.advs[k], a)
	}
	return s
}

func fixedRange(intro, fixed string) []model.Range {
	return []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{{Introduced: intro}, {Fixed: fixed}}}}
}

func findByID(fs []model.Finding, id string) *model.Finding {
	for i := range fs {
		if fs[i].VulnerabilityID == id {
			return &fs[i]
		}
	}
	return nil
}

func TestLanguagePackagesAndAliasMerge(t *testing.T) {
	xnet := "golang.org/x/net"
	store := newStore(
		// lodash: two distinct vulnerabilities.
		model.Advisory{Source: "osv", ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"}, Ecosystem: "npm", Package: "lodash",
			Ranges: fixedRange("0", "4.17.21"), Severity: "HIGH"},
		model.Advisory{Source: "osv", ID: "GHSA-p6mc-m468-83gw", Aliases: []string{"CVE-2020-8203"}, Ecosystem: "npm", Package: "lodash",
			Ranges: []model.Range{{Type: model.RangeSemver, Events: []model.Event{{Introduced: "3.7.0"}, {Fixed: "4.17.19"}}}}},
		// x/net: the Go vulndb record and the GitHub advisory name the same CVE, and must merge into one finding.
		model.Advisory{Source: "osv", ID: "GO-2022-0969", Aliases: []string{"CVE-2022-27664", "GHSA-69cg-p879-7622"}, Ecosystem: "Go", Package: xnet,
			Ranges: []model.Range{{Type: model.RangeSemver, Events: []model.Event{{Introduced: "0"}, {Fixed: "0.0.0-20220906165146-f3363e06e74c"}}}}},
		model.Advisory{Source: "osv", ID: "GHSA-69cg-p879-7622", Aliases: []string{"CVE-2022-27664"}, Ecosystem: "Go", Package: xnet,
			Ranges: fixedRange("0", "0.0.0-20220906165146-f3363e06e74c"), Severity: "HIGH"},
		// The Go standard library, keyed "stdlib".
		model.Advisory{Source: "osv", ID: "GO-2024-2687", Aliases: []string{"CVE-2023-45288"}, Ecosystem: "Go", Package: "stdlib",
			Ranges: []model.Range{{Type: model.RangeSemver, Events: []model.Event{{Introduced: "0"}, {Fixed: "1.21.9"}, {Introduced: "1.22.0-0"}, {Fixed: "1.22.2"}}}}},
		// PyPI names compare after PEP 503 normalisation; a withdrawn record is ignored.
		model.Advisory{Source: "osv", ID: "PYSEC-2021-142", Aliases: []string{"CVE-2020-14343"}, Ecosystem: "PyPI", Package: "pyyaml",
			Ranges: fixedRange("0", "5.4")},
		model.Advisory{Source: "osv", ID: "GHSA-withdrawn-0000-0000", Ecosystem: "PyPI", Package: "PyYAML",
			Ranges: fixedRange("0", "99"), Withdrawn: &time.Time{}},
		// last_affected closes after the version; explicit version lists match exactly.
		model.Advisory{Source: "osv", ID: "GHSA-last-affected", Ecosystem: "crates.io", Package: "regex",
			Ranges: []model.Range{{Type: model.RangeSemver, Events: []model.Event{{Introduced: "1.0.0"}, {LastAffected: "1.5.4"}}}}},
		model.Advisory{Source: "osv", ID: "PYSEC-2023-listed", Ecosystem: "PyPI", Package: "requests", Versions: []string{"2.28.1", "2.28.2"}},
	)
	store.vulns["CVE-2022-27664"] = &model.Vulnerability{ID: "CVE-2022-27664", Description: "HTTP/2 server hang in golang.org/x/net",
		CVSS: []model.CVSS{{Source: "nvd", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}},
		EPSS: &model.EPSS{Score: 0.0021, Percentile: 0.6}}
	inv := &model.Inventory{Packages: []model.Package{
		{Name: "lodash", Version: "4.17.15", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.15", Locations: []string{"/app/package-lock.json"}},
		{Name: xnet, Version: "v0.0.0-20201021035429-f5854403a974", Ecosystem: "Go", Locations: []string{"/app/server"}},
		{Name: "stdlib", Version: "1.20.14", Ecosystem: "Go", Locations: []string{"/app/server"}},
		{Name: "PyYAML", Version: "5.3.1", Ecosystem: "PyPI"},
		{Name: "regex", Version: "1.5.4", Ecosystem: "crates.io"},
		{Name: "regex", Version: "1.5.5", Ecosystem: "crates.io", Locations: []string{"/other/Cargo.lock"}},
		{Name: "requests", Version: "2.28.1", Ecosystem: "PyPI"},
	}}
	res, err := New(store).Match(context.Background(), inv, Options{Resource: "app"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // vulnerability -> fixed version of its first package
		"CVE-2021-23337": "4.17.21", "CVE-2020-8203": "4.17.19", "CVE-2022-27664": "0.0.0-20220906165146-f3363e06e74c",
		"CVE-2023-45288": "1.21.9", "CVE-2020-14343": "5.4", "GHSA-last-affected": "", "PYSEC-2023-listed": "",
	}
	if len(res.Findings) != len(want) {
		var ids []string
		for _, f := range res.Findings {
			ids = append(ids, f.VulnerabilityID)
		}
		t.Fatalf("got findings %v, want %d", ids, len(want))
	}
	for id, fixed := range want {
		f := findByID(res.Findings, id)
		if f == nil {
			t.Errorf("missing %s", id)
			continue
		}
		if got := f.Packages[0].FixedInVersion; got != fixed {
			t.Errorf("%s fixed in %q, want %q", id, got, fixed)
		}
	}
	net := findByID(res.Findings, "CVE-2022-27664")
	if strings.Join(net.RelatedVulnerabilities, ",") != "GHSA-69cg-p879-7622,GO-2022-0969" || len(net.Packages) != 1 {
		t.Errorf("x/net finding not merged: %+v", net)
	}
	if net.Severity != "HIGH" || net.SeveritySource != "nvd" || net.EPSS == nil || net.Description == "" {
		t.Errorf("x/net severity/enrichment: %s %s %+v", net.Severity, net.SeveritySource, net.EPSS)
	}
	if la := findByID(res.Findings, "GHSA-last-affected"); len(la.Packages) != 1 || la.Packages[0].Version != "1.5.4" || la.FixAvailable != model.No {
		t.Errorf("last_affected: %+v", la)
	}
	// The same inventory gives the same finding IDs.
	again, _ := New(store).Match(context.Background(), inv, Options{Resource: "app"})
	if again.Findings[0].ID != res.Findings[0].ID || res.Findings[0].ID == "" {
		t.Error("finding IDs are not stable")
	}
}

func TestDebianMatchesSourcePackageAndVendorSeverity(t *testing.T) {
	store := newStore(
		model.Advisory{Source: "debian", ID: "CVE-2023-5678", Ecosystem: "Debian:12", Package: "openssl",
			Ranges: fixedRange("0", "3.0.13-1~deb12u1"), Severity: "MEDIUM", Urgency: "medium"},
		model.Advisory{Source: "debian", ID: "CVE-2024-2511", Ecosystem: "Debian:12", Package: "openssl",
			Unfixed: true, Note: "no-dsa: Minor issue", Severity: "LOW", Urgency: "low"},
		// Fixed in exactly the installed source version: not affected even though the binary carries a binNMU suffix.
		model.Advisory{Source: "debian", ID: "CVE-2022-48303", Ecosystem: "Debian:12", Package: "tar",
			Ranges: fixedRange("0", "1.34+dfsg-1.2")},
		// Another release's advisory never applies.
		model.Advisory{Source: "debian", ID: "CVE-2023-5678", Ecosystem: "Debian:11", Package: "openssl",
			Ranges: fixedRange("0", "1.1.1w-0+deb11u2")},
	)
	store.vulns["CVE-2023-5678"] = &model.Vulnerability{ID: "CVE-2023-5678",
		CVSS: []model.CVSS{{Source: "nvd", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}}
	inv := &model.Inventory{Packages: []model.Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2"},
		{Name: "openssl", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2"},
		{Name: "tar", Version: "1.34+dfsg-1.2+b1", Ecosystem: "Debian:12", SourceName: "tar", SourceVersion: "1.34+dfsg-1.2"},
	}}
	res, err := New(store).Match(context.Background(), inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 2 {
		t.Fatalf("want 2 findings, got %+v", res.Findings)
	}
	f := findByID(res.Findings, "CVE-2023-5678")
	if f == nil || len(f.Packages) != 2 || f.Packages[0].FixedInVersion != "3.0.13-1~deb12u1" || f.FixAvailable != model.Yes {
		t.Fatalf("openssl finding: %+v", f)
	}
	// The vendor's rating wins over the NVD's HIGH for OS packages.
	if f.Severity != "MEDIUM" || f.SeveritySource != "debian" {
		t.Errorf("severity %s from %s, want MEDIUM from debian", f.Severity, f.SeveritySource)
	}
	u := findByID(res.Findings, "CVE-2024-2511")
	if u == nil || u.FixAvailable != model.No || u.Advisories[0].Note != "no-dsa: Minor issue" {
		t.Errorf("unfixed finding: %+v", u)
	}
	res, _ = New(store).Match(context.Background(), inv, Options{IgnoreUnfixed: true})
	if len(res.Findings) != 1 {
		t.Errorf("--ignore-unfixed should leave 1 finding, got %d", len(res.Findings))
	}
}

func TestUnparseableVersionIsReportedNotMatched(t *testing.T) {
	store := newStore(model.Advisory{Source: "osv", ID: "GHSA-x", Ecosystem: "npm", Package: "left-pad", Ranges: fixedRange("0", "1.3.0")})
	inv := &model.Inventory{Packages: []model.Package{{Name: "left-pad", Version: "not a version!", Ecosystem: "npm"}}}
	res, err := New(store).Match(context.Background(), inv, Options{})
	if err != nil || len(res.Findings) != 0 || len(res.Warnings) != 1 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

// AlmaLinux errata name their CVEs as related: the finding keeps the erratum's ID, lists the CVEs,
// and takes their exploitation evidence, without merging distinct CVEs into one.
func TestErratumRelatedCVEs(t *testing.T) {
	store := newStore(model.Advisory{Source: "osv", ID: "ALSA-2023:7877", Related: []string{"CVE-2023-3817", "CVE-2023-5678"},
		Ecosystem: "AlmaLinux:9", Package: "openssl-libs", Ranges: fixedRange("0", "1:3.0.7-24.el9"), Severity: "LOW"})
	store.vulns["CVE-2023-5678"] = &model.Vulnerability{ID: "CVE-2023-5678", EPSS: &model.EPSS{Score: 0.02, Percentile: 0.8}}
	inv := &model.Inventory{Packages: []model.Package{{Name: "openssl-libs", Version: "1:3.0.7-18.el9_2", Ecosystem: "AlmaLinux:9",
		SourceName: "openssl", SourceVersion: "1:3.0.7-18.el9_2"}}}
	res, err := New(store).Match(context.Background(), inv, Options{})
	if err != nil || len(res.Findings) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	f := res.Findings[0]
	if f.VulnerabilityID != "ALSA-2023:7877" || strings.Join(f.RelatedVulnerabilities, ",") != "CVE-2023-3817,CVE-2023-5678" ||
		f.EPSS == nil || f.Packages[0].FixedInVersion != "1:3.0.7-24.el9" || f.Severity != "LOW" {
		t.Fatalf("erratum finding: %+v", f)
	}
}
