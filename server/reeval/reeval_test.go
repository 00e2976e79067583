package reeval

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/score"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/vulndb"
)

// countingStore is an in-memory match.Store that counts lookups per key.
type countingStore struct {
	mu      sync.Mutex
	advs    map[Key][]model.Advisory
	vulns   map[string]*model.Vulnerability
	lookups map[Key]int
	vlook   int
}

func newStore(advs ...model.Advisory) *countingStore {
	s := &countingStore{advs: map[Key][]model.Advisory{}, vulns: map[string]*model.Vulnerability{}, lookups: map[Key]int{}}
	for _, a := range advs {
		s.add(a)
	}
	return s
}

func (s *countingStore) add(a model.Advisory) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{a.Ecosystem, match.NormalizeName(a.Ecosystem, a.Package)}
	s.advs[k] = append(s.advs[k], a)
	return k
}

func (s *countingStore) Advisories(eco, name string) ([]model.Advisory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{eco, match.NormalizeName(eco, name)}
	s.lookups[k]++
	// A copy, as a database would decode fresh records.
	return append([]model.Advisory(nil), s.advs[k]...), nil
}

func (s *countingStore) Vulnerability(id string) (*model.Vulnerability, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vlook++
	return s.vulns[id], nil
}

func (s *countingStore) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.lookups {
		n += c
	}
	return n
}

func (s *countingStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups = map[Key]int{}
	s.vlook = 0
}

func rng(intro, fixed string) []model.Range {
	return []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{{Introduced: intro}, {Fixed: fixed}}}}
}

// Real advisories (IDs, packages and fixed versions as published).
var (
	lodashTemplate = model.Advisory{Source: "osv", ID: "GHSA-35jh-r3h4-6jhm", Aliases: []string{"CVE-2021-23337"}, Ecosystem: "npm",
		Package: "lodash", Ranges: rng("0", "4.17.21"), Severity: model.SeverityHigh}
	lodashProto = model.Advisory{Source: "osv", ID: "GHSA-jf85-cpcp-j695", Aliases: []string{"CVE-2019-10744"}, Ecosystem: "npm",
		Package: "lodash", Ranges: rng("0", "4.17.12"), Severity: model.SeverityCritical}
	bodyParser = model.Advisory{Source: "osv", ID: "GHSA-qwcr-r2fm-qrc7", Aliases: []string{"CVE-2024-45590"}, Ecosystem: "npm",
		Package: "body-parser", Ranges: rng("0", "1.20.3"), Severity: model.SeverityHigh}
	requests = model.Advisory{Source: "osv", ID: "GHSA-j8r2-6x86-q33q", Aliases: []string{"CVE-2023-32681"}, Ecosystem: "PyPI",
		Package: "requests", Ranges: rng("2.3.0", "2.31.0"), Severity: model.SeverityMedium}
	openssl = model.Advisory{Source: "debian", ID: "CVE-2024-6119", Ecosystem: "Debian:12", Package: "openssl",
		Ranges: rng("0", "3.0.14-1~deb12u2"), Severity: model.SeverityHigh}
)

func inventory(pkgs ...model.Package) *model.Inventory { return &model.Inventory{Packages: pkgs} }

var (
	pLodash     = model.Package{Name: "lodash", Version: "4.17.11", Ecosystem: "npm", Locations: []string{"/srv/app/node_modules/lodash/package.json"}}
	pBodyParser = model.Package{Name: "body-parser", Version: "1.20.2", Ecosystem: "npm", Locations: []string{"/srv/app/node_modules/body-parser/package.json"}}
	pExpress    = model.Package{Name: "express", Version: "4.19.2", Ecosystem: "npm"}
	pRequests   = model.Package{Name: "requests", Version: "2.28.1", Ecosystem: "PyPI"}
	pLibssl     = model.Package{Name: "libssl3", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2", Arch: "amd64"}
	pOpenssl    = model.Package{Name: "openssl", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2", Arch: "amd64"}
	pBash       = model.Package{Name: "bash", Version: "5.2.15-2+b2", Ecosystem: "Debian:12", SourceName: "bash", Arch: "amd64"}
)

func host(id string) model.Resource {
	return model.Resource{Account: "111122223333", ID: id, Type: model.ResourceHost}
}

// fleet keeps stored findings as a server would, to feed Loader and Submission.Prev.
type fleet struct {
	mu     sync.Mutex
	stored map[Ref][]model.Finding
	rules  []model.SuppressionRule
}

// load returns what a store would: with a need, only the findings it names (by ID or
// vulnerability ID), so that the tests hold the engine to asking for everything it examines.
func (f *fleet) load(_ context.Context, ref Ref, need *Need) ([]model.Finding, []model.SuppressionRule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if need == nil {
		return f.stored[ref], f.rules, nil
	}
	want := make(map[string]bool, len(need.IDs)+len(need.Vulns))
	for _, id := range need.IDs {
		want[id] = true
	}
	vulns := make(map[string]bool, len(need.Vulns))
	for _, id := range need.Vulns {
		vulns[id] = true
	}
	var out []model.Finding
	for _, fd := range f.stored[ref] {
		if want[fd.ID] || vulns[fd.VulnerabilityID] {
			out = append(out, fd)
		}
	}
	return out, f.rules, nil
}

// save applies an outcome as a store would: upsert the examined findings, observe the others.
func (f *fleet) save(o Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stored[o.Ref] = apply(f.stored[o.Ref], o)
}

func apply(stored []model.Finding, o Outcome) []model.Finding {
	byID := map[string]model.Finding{}
	for _, f := range stored {
		byID[f.ID] = f
	}
	for _, f := range o.Result.Findings {
		byID[f.ID] = f
	}
	for _, id := range o.Result.Observed {
		f := byID[id]
		f.LastObservedAt = o.At
		byID[id] = f
	}
	for _, id := range o.Result.Deletes {
		delete(byID, id)
	}
	out := make([]model.Finding, 0, len(byID))
	for _, f := range byID {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *fleet) submit(t *testing.T, e *Engine, r model.Resource, inv *model.Inventory, now time.Time) *Outcome {
	t.Helper()
	prev, rules, _ := f.load(context.Background(), Ref{r.Account, r.ID}, nil)
	o, err := e.Submit(context.Background(), Submission{Resource: r, Inventory: inv, Prev: prev, Rules: rules}, now)
	if err != nil {
		t.Fatal(err)
	}
	f.save(*o)
	return o
}

func open(fs []model.Finding) map[string]model.Finding {
	m := map[string]model.Finding{}
	for _, f := range fs {
		if f.Status != model.FindingClosed {
			m[f.VulnerabilityID] = f
		}
	}
	return m
}

func eventTypes(o Outcome) map[string]string {
	m := map[string]string{}
	byID := map[string]string{}
	for _, f := range o.Result.Findings {
		byID[f.ID] = f.VulnerabilityID
	}
	for _, e := range o.Result.Events {
		m[byID[e.Subject]] = e.Type
	}
	return m
}

var now0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestSubmitMatchesOnlyChangedPackages(t *testing.T) {
	store := newStore(lodashTemplate, lodashProto, bodyParser, requests, openssl)
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	h := host("i-0a1b2c3d")
	inv := inventory(pLodash, pBodyParser, pExpress, pRequests, pLibssl, pOpenssl, pBash)

	// First inventory: every package matched, one lookup per distinct key (openssl is looked up once
	// for libssl3 and openssl).
	o := fl.submit(t, e, h, inv, now0)
	if o.Matched != 7 || store.total() != 6 {
		t.Errorf("first submit: matched %d, lookups %d (%v); want 7 and 6", o.Matched, store.total(), store.lookups)
	}
	got := open(o.Result.Findings)
	for _, id := range []string{"CVE-2021-23337", "CVE-2019-10744", "CVE-2024-45590", "CVE-2023-32681", "CVE-2024-6119"} {
		f, ok := got[id]
		if !ok {
			t.Fatalf("no finding %s: %v", id, got)
		}
		if f.Account != h.Account || f.ResourceID != h.ID || f.ResourceType != model.ResourceHost || f.Status != model.FindingActive {
			t.Errorf("%s placed wrong: %+v", id, f)
		}
	}
	if len(got["CVE-2024-6119"].Packages) != 2 {
		t.Errorf("openssl finding lists %d packages, want libssl3 and openssl", len(got["CVE-2024-6119"].Packages))
	}
	if len(o.Result.Events) != 5 {
		t.Errorf("events = %d, want 5 created", len(o.Result.Events))
	}
	// The findings are those of a full match of the same inventory.
	full, err := match.New(store).Match(context.Background(), inv, match.Options{Account: h.Account, Resource: h.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Findings) != 5 {
		t.Fatalf("full match: %d", len(full.Findings))
	}
	for _, f := range full.Findings {
		g := got[f.VulnerabilityID]
		if g.ID != f.ID || !reflect.DeepEqual(g.Packages, f.Packages) || !reflect.DeepEqual(g.RiskScore, f.RiskScore) {
			t.Errorf("%s differs from a full match", f.VulnerabilityID)
		}
	}

	// Unchanged resubmission: nothing matched, nothing looked up, every finding observed.
	store.reset()
	o = fl.submit(t, e, h, inventory(pLodash, pBodyParser, pExpress, pRequests, pLibssl, pOpenssl, pBash), now0.Add(time.Hour))
	if !o.Unchanged || o.Matched != 0 || store.total() != 0 || store.vlook != 0 || len(o.Result.Events) != 0 || len(o.Result.Observed) != 5 {
		t.Errorf("unchanged: %+v lookups %d", o, store.total())
	}

	// lodash upgraded to 4.17.21 and a new package (bash removed): only the two new records matched.
	store.reset()
	up := pLodash
	up.Version = "4.17.21"
	minimist := model.Package{Name: "minimist", Version: "1.2.8", Ecosystem: "npm"}
	o = fl.submit(t, e, h, inventory(up, pBodyParser, pExpress, pRequests, pLibssl, pOpenssl, minimist), now0.Add(2*time.Hour))
	if o.Matched != 2 {
		t.Errorf("matched %d, want 2 (lodash, minimist)", o.Matched)
	}
	if store.total() != 1 || store.lookups[Key{"npm", "minimist"}] != 1 {
		t.Errorf("lookups = %v, want only minimist (lodash's advisories are cached)", store.lookups)
	}
	ev := eventTypes(*o)
	if ev["CVE-2021-23337"] != model.EventFindingClosed || ev["CVE-2019-10744"] != model.EventFindingClosed || len(ev) != 2 {
		t.Errorf("events = %v, want the two lodash findings closed", ev)
	}
	if len(o.Result.Observed) != 3 {
		t.Errorf("observed = %v", o.Result.Observed)
	}
	if hs := e.Holders(Key{"Debian:12", "bash"}); len(hs) != 0 {
		t.Errorf("bash still indexed: %v", hs)
	}
	if hs := e.Holders(Key{"npm", "minimist"}); len(hs) != 1 {
		t.Errorf("minimist not indexed: %v", hs)
	}

	// Downgrade again within the reopen window: the lodash findings reopen with their first sighting kept.
	o = fl.submit(t, e, h, inventory(pLodash, pBodyParser, pExpress, pRequests, pLibssl, pOpenssl, minimist), now0.Add(3*time.Hour))
	ev = eventTypes(*o)
	if ev["CVE-2021-23337"] != model.EventFindingUpdated || !open(o.Result.Findings)["CVE-2021-23337"].FirstObservedAt.Equal(now0) {
		t.Errorf("reopen: %v", ev)
	}
}

func TestFeedDeltaTouchesOnlyAffected(t *testing.T) {
	store := newStore(bodyParser, openssl)
	e := New(store, Config{Workers: 2})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	a, b, c := host("i-aaaa"), host("i-bbbb"), host("i-cccc")
	fl.submit(t, e, a, inventory(pLodash, pBodyParser, pLibssl, pOpenssl), now0)
	fl.submit(t, e, b, inventory(pExpress, pBodyParser, pBash), now0)
	lodash2 := pLodash
	lodash2.Version = "4.17.21"
	fl.submit(t, e, c, inventory(lodash2, pRequests), now0)
	if hs := e.Holders(Key{"npm", "lodash"}); len(hs) != 2 {
		t.Fatalf("lodash holders = %v", hs)
	}

	// A feed update adds the lodash template-injection advisory.
	store.reset()
	k := store.add(lodashTemplate)
	outs, err := e.FeedDelta(context.Background(), Delta{Packages: []Key{k}}, LoadFunc(fl.load), now0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if store.total() != 1 || store.lookups[k] != 1 {
		t.Errorf("lookups = %v, want one for npm/lodash for the whole fleet", store.lookups)
	}
	if len(outs) != 2 || outs[0].Ref.ResourceID != "i-aaaa" || outs[1].Ref.ResourceID != "i-cccc" {
		t.Fatalf("outcomes for %v, want i-aaaa and i-cccc", refs(outs))
	}
	for _, o := range outs {
		if o.Matched != 1 {
			t.Errorf("%s: matched %d packages, want only lodash", o.Ref.ResourceID, o.Matched)
		}
		fl.save(o)
	}
	if ev := eventTypes(outs[0]); len(ev) != 1 || ev["CVE-2021-23337"] != model.EventFindingCreated {
		t.Errorf("i-aaaa events = %v", ev)
	}
	// body-parser and openssl were not re-examined: left alone, not even observed.
	if len(outs[0].Result.Observed) != 0 || len(outs[0].Result.Upserts) != 1 || len(outs[0].Result.Findings) != 1 {
		t.Errorf("i-aaaa observed %v, upserts %d, findings %d", outs[0].Result.Observed, len(outs[0].Result.Upserts), len(outs[0].Result.Findings))
	}
	if len(outs[1].Result.Events) != 0 { // 4.17.21 is fixed
		t.Errorf("i-cccc events = %v", outs[1].Result.Events)
	}

	// The advisory is withdrawn: the finding closes on i-aaaa only.
	store.reset()
	store.mu.Lock()
	w := now0
	store.advs[k][0].Withdrawn = &w
	store.mu.Unlock()
	outs, err = e.FeedDelta(context.Background(), DeltaFromChanges([]vulndb.Change{{Kind: vulndb.ChangeWithdrawn,
		AdvisoryKey: vulndb.AdvisoryKey{Source: "osv", ID: "GHSA-35jh-r3h4-6jhm", Ecosystem: "npm", Package: "lodash"}}}), LoadFunc(fl.load), now0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ev := eventTypes(outs[0]); ev["CVE-2021-23337"] != model.EventFindingClosed {
		t.Errorf("withdrawal: %v", ev)
	}
	for _, o := range outs {
		fl.save(o)
	}

	// A key nobody holds costs nothing.
	store.reset()
	outs, err = e.FeedDelta(context.Background(), Delta{Packages: []Key{{"PyPI", "django"}}}, LoadFunc(fl.load), now0.Add(3*time.Hour))
	if err != nil || len(outs) != 0 || store.total() != 0 {
		t.Errorf("unheld key: %d outcomes, %d lookups, %v", len(outs), store.total(), err)
	}

	// An enrichment change (EPSS of CVE-2024-45590 jumps) rescores the holders of body-parser
	// without matching anything.
	store.reset()
	store.mu.Lock()
	store.vulns["CVE-2024-45590"] = &model.Vulnerability{ID: "CVE-2024-45590", EPSS: &model.EPSS{Score: 0.42, Percentile: 0.97}}
	store.mu.Unlock()
	outs, err = e.FeedDelta(context.Background(), DeltaFromChanges([]vulndb.Change{{Kind: vulndb.ChangeEnrichment,
		AdvisoryKey: vulndb.AdvisoryKey{Source: "epss", VulnID: "CVE-2024-45590"}}}), LoadFunc(fl.load), now0.Add(4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Ref.ResourceID != "i-aaaa" || outs[1].Ref.ResourceID != "i-bbbb" || store.total() != 0 {
		t.Fatalf("enrichment outcomes %v, lookups %d", refs(outs), store.total())
	}
	for _, o := range outs {
		if o.Matched != 0 {
			t.Errorf("enrichment matched %d packages", o.Matched)
		}
		if ev := eventTypes(o); len(ev) != 1 || ev["CVE-2024-45590"] != model.EventFindingUpdated {
			t.Errorf("%s enrichment events %v", o.Ref.ResourceID, ev)
		}
		if f := open(o.Result.Findings)["CVE-2024-45590"]; f.EPSS == nil || f.EPSS.Score != 0.42 {
			t.Errorf("EPSS not applied: %+v", f.EPSS)
		}
	}
}

func refs(os []Outcome) []string {
	var out []string
	for _, o := range os {
		out = append(out, o.Ref.ResourceID)
	}
	return out
}

// After any sequence of inventory changes and feed deltas, the engine's findings equal a fresh
// full match of the final inventory against the final database.
func TestIncrementalEqualsFullMatch(t *testing.T) {
	store := newStore(lodashProto, openssl)
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	h := host("i-0a1b2c3d")
	fl.submit(t, e, h, inventory(pLodash, pLibssl, pExpress), now0)
	fl.submit(t, e, h, inventory(pLodash, pLibssl, pOpenssl, pBodyParser, pRequests), now0.Add(time.Hour))
	var keys []Key
	for _, a := range []model.Advisory{lodashTemplate, bodyParser, requests} {
		keys = append(keys, store.add(a))
	}
	outs, err := e.FeedDelta(context.Background(), Delta{Packages: keys}, LoadFunc(fl.load), now0.Add(2*time.Hour))
	if err != nil || len(outs) != 1 {
		t.Fatalf("%v %d", err, len(outs))
	}
	fl.save(outs[0])
	final := inventory(pLodash, pLibssl, pOpenssl, pBodyParser, pRequests)
	full, err := match.New(store).Match(context.Background(), final, match.Options{Account: h.Account, Resource: h.ID})
	if err != nil {
		t.Fatal(err)
	}
	got := open(fl.stored[Ref{h.Account, h.ID}])
	if len(got) != len(full.Findings) {
		t.Fatalf("incremental %d findings, full %d", len(got), len(full.Findings))
	}
	for _, f := range full.Findings {
		g := got[f.VulnerabilityID]
		g.Account, g.ResourceID, g.ResourceType = "", "", ""
		g.FirstObservedAt, g.LastObservedAt, g.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, f) {
			t.Errorf("%s:\nincremental %+v\nfull        %+v", f.VulnerabilityID, g, f)
		}
	}
}

// A restarted engine restores the stored inventory without evaluating it; a feed delta then
// gives the same findings as a fresh match, and an unchanged resubmission is known by its hash.
func TestRestoreThenFeedDeltaEqualsFullMatch(t *testing.T) {
	store := newStore(lodashProto, openssl)
	first := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	h := host("i-0a1b2c3d")
	h.InventoryHash = "sha256:restore"
	inv := inventory(pLodash, pLibssl, pOpenssl, pBodyParser, pRequests)
	fl.submit(t, first, h, inv, now0)

	e := New(store, Config{}) // the restarted server's engine
	if err := e.Restore(context.Background(), h, inv, score.Context{}); err != nil {
		t.Fatal(err)
	}
	if hs := e.Holders(Key{"npm", "lodash"}); len(hs) != 1 {
		t.Fatalf("lodash holders after restore = %v", hs)
	}
	if !e.Resubmitted(h, score.Context{}) {
		t.Error("an unchanged resubmission after a restore is not recognised")
	}
	var keys []Key
	for _, a := range []model.Advisory{lodashTemplate, bodyParser, requests} {
		keys = append(keys, store.add(a))
	}
	outs, err := e.FeedDelta(context.Background(), Delta{Packages: keys}, LoadFunc(fl.load), now0.Add(time.Hour))
	if err != nil || len(outs) != 1 {
		t.Fatalf("%v %d", err, len(outs))
	}
	fl.save(outs[0])
	full, err := match.New(store).Match(context.Background(), inv, match.Options{Account: h.Account, Resource: h.ID})
	if err != nil {
		t.Fatal(err)
	}
	got := open(fl.stored[Ref{h.Account, h.ID}])
	if len(got) != len(full.Findings) {
		t.Fatalf("after restore %d findings, full %d", len(got), len(full.Findings))
	}
	for _, f := range full.Findings {
		g := got[f.VulnerabilityID]
		g.Account, g.ResourceID, g.ResourceType = "", "", ""
		g.FirstObservedAt, g.LastObservedAt, g.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, f) {
			t.Errorf("%s:\nafter restore %+v\nfull          %+v", f.VulnerabilityID, g, f)
		}
	}
}

func TestSuppressionRulesFlowThrough(t *testing.T) {
	store := newStore(lodashTemplate, bodyParser)
	e := New(store, Config{})
	dev := host("i-dev")
	dev.Tags = map[string]string{"env": "dev"}
	fl := &fleet{stored: map[Ref][]model.Finding{}, rules: []model.SuppressionRule{{ID: "rule-1", Account: dev.Account, Reason: "dev",
		Filter: model.FindingFilter{ResourceTags: map[string]string{"env": "dev"}, PackageNames: []string{"lodash"}}}}}
	o := fl.submit(t, e, dev, inventory(pLodash, pBodyParser), now0)
	got := open(o.Result.Findings)
	if got["CVE-2021-23337"].Status != model.FindingSuppressed || got["CVE-2024-45590"].Status != model.FindingActive {
		t.Errorf("statuses: %v", got)
	}
	// The rule is deleted; the next unchanged resubmission lifts the suppression.
	fl.rules = nil
	o = fl.submit(t, e, dev, inventory(pLodash, pBodyParser), now0.Add(time.Hour))
	if !o.Unchanged || open(o.Result.Findings)["CVE-2021-23337"].Status != model.FindingActive || len(o.Result.Events) != 1 {
		t.Errorf("unsuppress on resubmission: %+v", o.Result.Events)
	}
}

func TestExposureChangeRescores(t *testing.T) {
	store := newStore(bodyParser)
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	h := host("i-web")
	fl.submit(t, e, h, inventory(pBodyParser), now0)
	exposed := true
	prev, _, _ := fl.load(context.Background(), Ref{h.Account, h.ID}, nil)
	o, err := e.Submit(context.Background(), Submission{Resource: h, Inventory: inventory(pBodyParser), Prev: prev,
		Exposure: scoreContext(&exposed)}, now0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if o.Unchanged || o.Matched != 0 {
		t.Errorf("an exposure change must regroup without matching: unchanged %v matched %d", o.Unchanged, o.Matched)
	}
}

func TestRemoveAndReuseHandles(t *testing.T) {
	store := newStore(lodashTemplate)
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	fl.submit(t, e, host("i-1"), inventory(pLodash, pExpress), now0)
	fl.submit(t, e, host("i-2"), inventory(pLodash), now0)
	e.Remove(Ref{"111122223333", "i-1"})
	if hs := e.Holders(Key{"npm", "lodash"}); len(hs) != 1 || hs[0].ResourceID != "i-2" {
		t.Errorf("holders after remove = %v", hs)
	}
	if hs := e.Holders(Key{"npm", "express"}); len(hs) != 0 {
		t.Errorf("express holders = %v", hs)
	}
	fl.submit(t, e, host("i-3"), inventory(pLodash), now0)
	hs := e.Holders(Key{"npm", "lodash"})
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ResourceID)
	}
	sort.Strings(ids)
	if !reflect.DeepEqual(ids, []string{"i-2", "i-3"}) {
		t.Errorf("holders = %v", ids)
	}
	if s := e.Stats(); s.Resources != 2 || s.Packages != 2 || s.Pairs != 2 {
		t.Errorf("stats = %+v", s)
	}
	e.Reset()
	if s := e.Stats(); s.Resources != 0 || s.Pairs != 0 {
		t.Errorf("after reset %+v", s)
	}
}

func TestDeltaFromChanges(t *testing.T) {
	d := DeltaFromChanges([]vulndb.Change{
		{Kind: vulndb.ChangeAdded, AdvisoryKey: vulndb.AdvisoryKey{Source: "osv", ID: "GHSA-qmf9-6jqf-j8fq", Ecosystem: "PyPI", Package: "Django"}},
		{Kind: vulndb.ChangeChanged, AdvisoryKey: vulndb.AdvisoryKey{Source: "osv", ID: "PYSEC-2023-225", Ecosystem: "PyPI", Package: "django"}},
		{Kind: vulndb.ChangeRemoved, AdvisoryKey: vulndb.AdvisoryKey{Source: "debian", ID: "CVE-2024-6119", Ecosystem: "Debian:12", Package: "openssl"}},
		{Kind: vulndb.ChangeEnrichment, AdvisoryKey: vulndb.AdvisoryKey{Source: "kev", VulnID: "CVE-2023-4863"}},
		{Kind: vulndb.ChangeEnrichment, AdvisoryKey: vulndb.AdvisoryKey{Source: "epss", VulnID: "CVE-2023-4863"}},
	})
	want := Delta{Packages: []Key{{"PyPI", "django"}, {"Debian:12", "openssl"}}, Vulns: []string{"CVE-2023-4863"}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("delta = %+v", d)
	}
}

var _ = findings.DefaultConfig

// Republished advisories cost nothing per resource when findings cannot change, and a changed
// advisory touches only its own finding.
func TestFeedDeltaModifiedAdvisories(t *testing.T) {
	store := newStore(lodashTemplate, lodashProto)
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	h := host("i-0a1b2c3d")
	fl.submit(t, e, h, inventory(pLodash), now0)
	loads := 0
	load := func(ctx context.Context, ref Ref, need *Need) ([]model.Finding, []model.SuppressionRule, error) {
		loads++
		return fl.load(ctx, ref, need)
	}
	k := Key{"npm", "lodash"}
	store.mu.Lock()
	store.advs[k][0].Modified = now0.Add(time.Hour) // republished, nothing else changed
	store.mu.Unlock()
	outs, err := e.FeedDelta(context.Background(), Delta{Packages: []Key{k}}, LoadFunc(load), now0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || !outs[0].Unchanged || outs[0].Matched != 1 || loads != 0 {
		t.Errorf("republication: %+v, loads %d", outs, loads)
	}
	// The proto-pollution advisory is re-rated MEDIUM by its source: only that finding moves.
	store.mu.Lock()
	store.advs[k][1].Severity = model.SeverityMedium
	store.mu.Unlock()
	outs, err = e.FeedDelta(context.Background(), Delta{Packages: []Key{k}}, LoadFunc(load), now0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	o := outs[0]
	if o.Unchanged || loads != 1 {
		t.Fatalf("severity change not evaluated: %+v", o)
	}
	if len(o.Result.Upserts) != 1 || o.Result.Upserts[0].VulnerabilityID != "CVE-2019-10744" || o.Result.Upserts[0].Severity != model.SeverityMedium {
		t.Errorf("upserts = %+v", o.Result.Upserts)
	}
	if ev := eventTypes(o); len(ev) != 1 || ev["CVE-2019-10744"] != model.EventFindingUpdated {
		t.Errorf("events = %v", ev)
	}
	if len(o.Result.Findings) != 1 {
		t.Errorf("%d findings examined, want only the re-rated one", len(o.Result.Findings))
	}
	fl.save(o)
	if n := len(open(fl.stored[Ref{h.Account, h.ID}])); n != 2 {
		t.Errorf("stored state has %d open findings", n)
	}
}

// A new advisory whose aliases join two existing findings merges them: one closes, the other
// becomes the merged finding — as a full match would group them.
func TestFeedDeltaAliasMerge(t *testing.T) {
	ghsa := model.Advisory{Source: "osv", ID: "GHSA-j8r2-6x86-q33q", Ecosystem: "PyPI", Package: "requests", Ranges: rng("0", "2.31.0"), Severity: model.SeverityMedium}
	pysec := model.Advisory{Source: "osv", ID: "PYSEC-2023-74", Ecosystem: "PyPI", Package: "requests", Ranges: rng("2.3.0", "2.31.0")}
	store := newStore(ghsa, pysec)
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	h := host("i-py")
	o := fl.submit(t, e, h, inventory(pRequests, pExpress), now0)
	if len(open(o.Result.Findings)) != 2 {
		t.Fatalf("findings = %v", open(o.Result.Findings))
	}
	// The CVE record names both as aliases.
	k := store.add(model.Advisory{Source: "osv", ID: "CVE-2023-32681", Aliases: []string{"GHSA-j8r2-6x86-q33q", "PYSEC-2023-74"},
		Ecosystem: "PyPI", Package: "requests", Ranges: rng("2.3.0", "2.31.0")})
	outs, err := e.FeedDelta(context.Background(), Delta{Packages: []Key{k}}, LoadFunc(fl.load), now0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := open(outs[0].Result.Findings)
	if len(got) != 1 || got["CVE-2023-32681"].ID == "" {
		t.Fatalf("after merge: %v", got)
	}
	full, _ := match.New(store).Match(context.Background(), inventory(pRequests, pExpress), match.Options{Account: h.Account, Resource: h.ID})
	if len(full.Findings) != 1 || full.Findings[0].ID != got["CVE-2023-32681"].ID || !reflect.DeepEqual(full.Findings[0].RelatedVulnerabilities, got["CVE-2023-32681"].RelatedVulnerabilities) {
		t.Errorf("merged finding differs from a full match: %+v", full.Findings)
	}
	closed := 0
	for _, ev := range outs[0].Result.Events {
		if ev.Type == model.EventFindingClosed {
			closed++
		}
	}
	if closed != 2 {
		t.Errorf("closed events = %d, want the GHSA and PYSEC findings closed", closed)
	}
}

// closure selects exactly the groups of match.GroupHits that name a dirty ID (or a superset of
// whole groups).
func TestClosureSelectsWholeGroups(t *testing.T) {
	store := newStore(lodashTemplate, lodashProto, bodyParser,
		model.Advisory{Source: "osv", ID: "CVE-2021-23337", Aliases: []string{"GHSA-35jh-r3h4-6jhm"}, Ecosystem: "npm", Package: "lodash", Ranges: rng("0", "4.17.21")})
	m := match.New(store)
	var hits []match.Hit
	for _, p := range []model.Package{pLodash, pBodyParser} {
		p := p
		hs, _, _ := m.Package(&p)
		hits = append(hits, hs...)
	}
	for _, id := range []string{"CVE-2021-23337", "GHSA-35jh-r3h4-6jhm", "CVE-2024-45590", "CVE-2019-10744"} {
		var want []match.Hit
		for _, g := range match.GroupHits(hits) {
			for _, h := range g {
				if h.Advisory().ID == id || slices.Contains(h.Advisory().Aliases, id) {
					want = append(want, g...)
					break
				}
			}
		}
		lite := make([]liteHit, len(hits))
		for i, h := range hits {
			lite[i] = liteHit{pkg: i, adv: h.Advisory(), fixed: h.Fixed()}
		}
		got, _ := closure(lite, map[string]bool{id: true})
		if len(got) != len(want) {
			t.Errorf("%s: closure %d hits, groups %d", id, len(got), len(want))
		}
	}
}

// With an inventory hash, an identical resubmission is recognised without reading the packages.
func TestSubmitInventoryHash(t *testing.T) {
	store := newStore(bodyParser)
	e := New(store, Config{})
	fl := &fleet{stored: map[Ref][]model.Finding{}}
	h := host("i-hash")
	h.InventoryHash = "sha256:5f1d"
	fl.submit(t, e, h, inventory(pBodyParser, pExpress), now0)
	// Same hash: trusted, even though the packages given differ (the caller vouches).
	if o := fl.submit(t, e, h, inventory(pBodyParser), now0.Add(time.Hour)); !o.Unchanged || len(o.Result.Observed) != 1 {
		t.Errorf("same hash: %+v", o)
	}
	h.InventoryHash = "sha256:9c2e"
	if o := fl.submit(t, e, h, inventory(pBodyParser), now0.Add(2*time.Hour)); o.Unchanged {
		t.Error("a new hash must be diffed")
	}
}
