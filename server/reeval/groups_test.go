package reeval

import (
	"context"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/score"
)

// A feed delta builds each distinct group's finding once and copies it to every resource holding
// the same hits. Resources here share packages but differ in account, exposure (which moves the
// risk score) and package order (which orders a finding's packages); each must end with exactly
// the findings a fresh full match of its own inventory gives, IDs included, and events must name
// the resource's own findings.
func TestFeedDeltaSharedGroupsEqualFullMatch(t *testing.T) {
	pysec := model.Advisory{Source: "osv", ID: "PYSEC-2023-74", Ecosystem: "PyPI", Package: "requests", Ranges: rng("2.3.0", "2.31.0")}
	store := newStore(lodashProto, openssl, pysec)
	store.vulns["CVE-2023-32681"] = &model.Vulnerability{ID: "CVE-2023-32681", Description: "Proxy-Authorization header leak",
		EPSS: &model.EPSS{Score: 0.62, Percentile: 0.98}}
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	yes, no := true, false
	type res struct {
		r   model.Resource
		inv *model.Inventory
		exp score.Context
	}
	other := host("i-other")
	other.Account = "444455556666"
	fleetRes := []res{
		{host("i-1"), inventory(pLodash, pLibssl, pOpenssl, pRequests), score.Context{}},
		{host("i-2"), inventory(pLodash, pLibssl, pOpenssl, pRequests), score.Context{}},
		{host("i-3"), inventory(pLodash, pLibssl, pOpenssl, pRequests), score.Context{NetworkExposed: &yes, ExposedPorts: "443"}},
		{host("i-4"), inventory(pLodash, pLibssl, pOpenssl, pRequests), score.Context{NetworkExposed: &no}},
		{host("i-5"), inventory(pRequests, pOpenssl, pLibssl, pLodash), score.Context{}},
		{other, inventory(pLodash, pLibssl, pOpenssl, pRequests), score.Context{}},
	}
	now := now0
	for _, x := range fleetRes {
		prev, rules, _ := fl.load(context.Background(), Ref{x.r.Account, x.r.ID}, nil)
		o, err := e.Submit(context.Background(), Submission{Resource: x.r, Inventory: x.inv, Exposure: x.exp, Prev: prev, Rules: rules}, now)
		if err != nil {
			t.Fatal(err)
		}
		fl.save(*o)
	}
	var keys []Key
	for _, a := range []model.Advisory{lodashTemplate, requests,
		{Source: "osv", ID: "CVE-2023-32681", Aliases: []string{"PYSEC-2023-74"}, Ecosystem: "PyPI", Package: "requests", Ranges: rng("2.3.0", "2.31.0")}} {
		keys = append(keys, store.add(a))
	}
	// openssl re-rated: every resource regroups the same Debian group.
	o2 := openssl
	o2.Severity = model.SeverityCritical
	store.mu.Lock()
	store.advs[Key{"Debian:12", "openssl"}] = []model.Advisory{o2}
	store.mu.Unlock()
	keys = append(keys, Key{"Debian:12", "openssl"})
	now = now.Add(time.Hour)
	outs, err := e.FeedDelta(context.Background(), Delta{Packages: keys}, LoadFunc(fl.load), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(fleetRes) {
		t.Fatalf("%d outcomes", len(outs))
	}
	for _, o := range outs {
		for _, ev := range o.Result.Events {
			if ev.Account != o.Ref.Account || !hasID(o.Result.Findings, ev.Subject) {
				t.Errorf("%s: event %s for account %s", o.Ref.ResourceID, ev.ID, ev.Account)
			}
		}
		fl.save(o)
	}
	for _, x := range fleetRes {
		full, err := match.New(store).Match(context.Background(), x.inv, match.Options{Account: x.r.Account, Resource: x.r.ID, Exposure: x.exp})
		if err != nil {
			t.Fatal(err)
		}
		got := open(fl.stored[Ref{x.r.Account, x.r.ID}])
		if len(got) != len(full.Findings) {
			t.Fatalf("%s: %d findings, full match %d", x.r.ID, len(got), len(full.Findings))
		}
		for _, f := range full.Findings {
			g := got[f.VulnerabilityID]
			if g.Account != x.r.Account || g.ResourceID != x.r.ID {
				t.Errorf("%s %s: placed on %s/%s", x.r.ID, f.VulnerabilityID, g.Account, g.ResourceID)
			}
			g.Account, g.ResourceID, g.ResourceType = "", "", ""
			g.FirstObservedAt, g.LastObservedAt, g.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
			if !reflect.DeepEqual(g, f) {
				t.Errorf("%s %s:\nincremental %+v\nfull        %+v", x.r.ID, f.VulnerabilityID, g, f)
			}
		}
	}
}

func hasID(fs []model.Finding, id string) bool {
	for _, f := range fs {
		if f.ID == id {
			return true
		}
	}
	return false
}

// groupFindings gives, finding for finding, what the matcher gives for the same hits.
func TestGroupFindingsEqualMatcher(t *testing.T) {
	pysec := model.Advisory{Source: "osv", ID: "PYSEC-2023-74", Aliases: []string{"CVE-2023-32681"}, Ecosystem: "PyPI", Package: "requests", Ranges: rng("2.3.0", "2.31.0")}
	store := newStore(lodashProto, lodashTemplate, openssl, pysec, requests)
	e := New(store, Config{})
	yes := true
	for i, inv := range []*model.Inventory{inventory(pLodash, pLibssl, pOpenssl, pRequests), inventory(pRequests, pOpenssl, pLodash, pLibssl)} {
		r := host("i-g")
		r.ID += string(rune('0' + i))
		if _, err := e.Submit(context.Background(), Submission{Resource: r, Inventory: inv}, now0); err != nil {
			t.Fatal(err)
		}
		ent := e.entries[e.handles[Ref{r.Account, r.ID}]]
		var lite []liteHit
		var hits []match.Hit
		for i, mv := range ent.memo {
			for j, a := range mv.advs {
				lite = append(lite, liteHit{pkg: i, adv: a, fixed: mv.fixed[j]})
				hits = append(hits, match.NewHit(e.expand(ent.pkgs[i]), a, mv.fixed[j]))
			}
		}
		gc := newGroupCache()
		for _, exp := range []score.Context{{}, {NetworkExposed: &yes, ExposedPorts: "22"}} {
			opts := match.Options{Account: r.Account, Resource: r.ID, Exposure: exp}
			want, err := e.matcher.Findings(hits, opts)
			if err != nil {
				t.Fatal(err)
			}
			for pass := 0; pass < 2; pass++ { // the second pass is served from the cache
				got, err := e.groupFindings(ent, lite, opts, gc)
				if err != nil {
					t.Fatal(err)
				}
				sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
				w := append([]model.Finding(nil), want...)
				sort.Slice(w, func(i, j int) bool { return w[i].ID < w[j].ID })
				if !reflect.DeepEqual(got, w) {
					t.Errorf("inventory %d, exposure %v, pass %d:\ngot  %+v\nwant %+v", i, exp.NetworkExposed != nil, pass, got, w)
				}
			}
		}
	}
}
