package match

import (
	"context"
	"reflect"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

// TestFindingsFromHitsEqualsMatch proves that regrouping per-package hits, gathered package by
// package and in any order, gives the same findings as one Match over the inventory.
func TestFindingsFromHitsEqualsMatch(t *testing.T) {
	store := newStore(
		model.Advisory{Source: "osv", ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"}, Ecosystem: "npm", Package: "lodash",
			Ranges: fixedRange("0", "4.17.21"), Severity: "HIGH"},
		model.Advisory{Source: "osv", ID: "GHSA-jf85-cpcp-j695", Aliases: []string{"CVE-2019-10744"}, Ecosystem: "npm", Package: "lodash",
			Ranges: fixedRange("0", "4.17.12"), Severity: "CRITICAL"},
		model.Advisory{Source: "osv", ID: "GHSA-qwcr-r2fm-qrc7", Aliases: []string{"CVE-2024-45590"}, Ecosystem: "npm", Package: "body-parser",
			Ranges: fixedRange("0", "1.20.3"), Severity: "HIGH"},
	)
	inv := &model.Inventory{Packages: []model.Package{
		{Name: "lodash", Version: "4.17.11", Ecosystem: "npm", Locations: []string{"/app/node_modules/lodash/package.json"}},
		{Name: "body-parser", Version: "1.20.2", Ecosystem: "npm"},
		{Name: "express", Version: "4.19.2", Ecosystem: "npm"},
	}}
	m := New(store)
	opts := Options{Account: "acct", Resource: "i-0abc"}
	want, err := m.Match(context.Background(), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	var hits []Hit
	for i := len(inv.Packages) - 1; i >= 0; i-- {
		hs, _, err := m.Package(&inv.Packages[i])
		if err != nil {
			t.Fatal(err)
		}
		hits = append(hits, hs...)
	}
	if len(hits) != 3 {
		t.Fatalf("hits = %d, want 3", len(hits))
	}
	for _, h := range hits {
		if h.Package() == nil || h.Advisory() == nil {
			t.Fatal("hit without package or advisory")
		}
		if h.Advisory().ID == "GHSA-qwcr-r2fm-qrc7" && h.Fixed() != "1.20.3" {
			t.Errorf("fixed = %q", h.Fixed())
		}
	}
	got, err := m.Findings(hits, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want.Findings) {
		t.Errorf("Findings(hits) differs from Match:\n got %+v\nwant %+v", got, want.Findings)
	}
	rebuilt := []Hit{NewHit(hits[0].Package(), hits[0].Advisory(), hits[0].Fixed())}
	if fs, _ := m.Findings(rebuilt, opts); len(fs) != 1 {
		t.Errorf("NewHit findings = %d", len(fs))
	}
}

func TestLookupNames(t *testing.T) {
	tests := []struct {
		p    model.Package
		want []string
	}{
		{model.Package{Name: "libssl3", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", SourceName: "openssl"}, []string{"openssl"}},
		{model.Package{Name: "bash", Version: "5.2.15-2+b2", Ecosystem: "Debian:12"}, []string{"bash"}},
		{model.Package{Name: "openssl-libs", Version: "1:3.0.7-27.el9", Ecosystem: "AlmaLinux:9", SourceName: "openssl"}, []string{"openssl", "openssl-libs"}},
		{model.Package{Name: "Django", Version: "4.2.7", Ecosystem: "PyPI"}, []string{"django"}},
		{model.Package{Name: "zope.interface", Version: "6.1", Ecosystem: "PyPI"}, []string{"zope-interface"}},
		{model.Package{Name: "@babel/traverse", Version: "7.22.5", Ecosystem: "npm"}, []string{"@babel/traverse"}},
	}
	for _, tc := range tests {
		if got := LookupNames(&tc.p); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LookupNames(%s %s) = %v, want %v", tc.p.Ecosystem, tc.p.Name, got, tc.want)
		}
	}
}

func TestGroupHits(t *testing.T) {
	xnet := "golang.org/x/net"
	store := newStore(
		model.Advisory{Source: "osv", ID: "GO-2022-0969", Aliases: []string{"CVE-2022-27664", "GHSA-69cg-p879-7622"}, Ecosystem: "Go", Package: xnet,
			Ranges: fixedRange("0", "0.0.0-20220906165146-f3363e06e74c")},
		model.Advisory{Source: "osv", ID: "GHSA-69cg-p879-7622", Aliases: []string{"CVE-2022-27664"}, Ecosystem: "Go", Package: xnet,
			Ranges: fixedRange("0", "0.0.0-20220906165146-f3363e06e74c")},
		model.Advisory{Source: "osv", ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"}, Ecosystem: "npm", Package: "lodash",
			Ranges: fixedRange("0", "4.17.21")},
	)
	m := New(store)
	pkgs := []model.Package{
		{Name: xnet, Version: "v0.0.0-20220722155237-a158d28d115b", Ecosystem: "Go"},
		{Name: "lodash", Version: "4.17.20", Ecosystem: "npm"},
	}
	var hits []Hit
	for i := range pkgs {
		hs, _, err := m.Package(&pkgs[i])
		if err != nil {
			t.Fatal(err)
		}
		hits = append(hits, hs...)
	}
	groups := GroupHits(hits)
	if len(groups) != 2 || len(groups[0]) != 2 || len(groups[1]) != 1 {
		t.Fatalf("groups = %d (%v)", len(groups), groups)
	}
	opts := Options{Account: "a", Resource: "r"}
	all, _ := m.Findings(hits, opts)
	var parts []model.Finding
	for _, g := range groups {
		fs, _ := m.Findings(g, opts)
		parts = append(parts, fs...)
	}
	SortFindings(parts)
	if !reflect.DeepEqual(all, parts) {
		t.Errorf("findings of groups differ from findings of all hits")
	}
}

// A matcher with a parse cache gives the same results as one without, also for unparseable
// versions, and stays within its bound.
func TestParseCache(t *testing.T) {
	store := newStore(
		model.Advisory{Source: "osv", ID: "PYSEC-2023-74", Aliases: []string{"CVE-2023-32681"}, Ecosystem: "PyPI", Package: "requests",
			Versions: []string{"2.3.0", "2.28.1", "2.28.2", "2.30.0", "not a version"},
			Ranges:   []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{{Introduced: "2.3.0"}, {Fixed: "2.31.0"}}}}},
	)
	plain := New(store)
	cached := plain.WithParseCache(3)
	for _, v := range []string{"2.28.1", "2.28.1.0", "2.31.0", "2.2", "bogus!", "2.30.0", "2.28.1"} {
		p := model.Package{Name: "requests", Version: v, Ecosystem: "PyPI"}
		want, wwarn, _ := plain.Package(&p)
		got, gwarn, _ := cached.Package(&p)
		if len(want) != len(got) || wwarn != gwarn {
			t.Errorf("%s: cached %d hits %q, plain %d hits %q", v, len(got), gwarn, len(want), wwarn)
		}
		for i := range want {
			if want[i].Fixed() != got[i].Fixed() {
				t.Errorf("%s: fixed %s vs %s", v, got[i].Fixed(), want[i].Fixed())
			}
		}
	}
	if n := cached.parse.n; n > 3 {
		t.Errorf("cache holds %d entries, bound 3", n)
	}
}
