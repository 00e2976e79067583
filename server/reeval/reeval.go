// Package reeval keeps a fleet's findings current without rescanning it. It holds, in memory,
// each resource's packages in a compact interned form (44 bytes a package), a pointer per package
// to the shared result of matching that package version, and an inverted index from package key
// (ecosystem, lookup name) to the resources holding it. Then:
//
//   - a new inventory is diffed against the previous one; only added or changed packages are
//     matched, and only the findings their hits name are regrouped and reconciled;
//   - a feed delta (vulndb.DB.Changes) names the keys whose advisories changed; the index gives the
//     resources holding them; each changed package version is matched once for the whole fleet;
//     only resources whose hits actually changed are loaded and reconciled, and only the findings
//     those hits name; enrichment changes (EPSS, KEV, NVD) regroup and rescore the findings whose
//     advisories name the ID.
//
// Either way findings.Process reconciles the fresh findings with the stored ones and yields the
// rows to write and the outbox events. The engine never touches storage: the caller passes the
// stored findings and rules (directly, or through a Loader for feed deltas) and writes the results
// in one transaction.
//
// Advisories are fetched once per key and shared by every resource (a cache in front of the
// match.Store), and match results once per package version. Both are correct only if every change
// to the database is reported through FeedDelta; a process that missed deltas (started late, fell
// behind) must Reset and resubmit the inventories.
package reeval

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/score"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/vulndb"
)

// Ref names a resource.
type Ref struct{ Account, ResourceID string }

// Config tunes an engine.
type Config struct {
	Findings findings.Config
	// Workers re-evaluate resources of a feed delta in parallel (default GOMAXPROCS).
	Workers int
}

// Engine is the in-memory re-evaluation state of a fleet. It is safe for concurrent use; calls are
// serialized, and a feed delta fans out over Config.Workers goroutines.
type Engine struct {
	cfg     Config
	cache   *cache
	matcher *match.Matcher

	// memo holds the outcome of matching each distinct (package, version) once: hosts of a fleet
	// share versions, so a fleet's worth of packages costs a few thousand matches, not millions.
	memoMu sync.Mutex
	memo   map[memoKey]*memoVal
	// stale holds, during a feed delta, the memo entries of changed keys: a new result equivalent to
	// the stale one replaces it by the stale pointer, which tells redo that nothing changed.
	stale map[memoKey]*memoVal

	mu      sync.Mutex
	strs    *strtab
	idx     *index
	handles map[Ref]uint32
	entries []*entry // by handle; nil when free
	free    []uint32
}

// rec is one installed package in compact form: interned strings, 44 bytes.
type rec struct {
	eco, name, ver, srcName, srcVer, arch, purl, loc, layer uint32
	// key1, key2 are index key IDs + 1 (0: none): the lookup names of the package.
	key1, key2 uint32
}

type entry struct {
	handle   uint32
	resource model.Resource
	exposure score.Context
	pkgs     []rec      // inventory order, deduplicated
	memo     []*memoVal // aligned with pkgs: each package's match (shared across the fleet)
}

// New returns an empty engine over a vulnerability store.
func New(store match.Store, cfg Config) *Engine {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	c := newCache(store)
	return &Engine{cfg: cfg, cache: c, matcher: match.New(c).WithParseCache(parseCacheSize), strs: newStrtab(), idx: newIndex(), handles: map[Ref]uint32{},
		memo: map[memoKey]*memoVal{}}
}

// memoKey is what the matcher reads of a package.
type memoKey struct{ eco, name, ver, srcName, srcVer uint32 }

type memoVal struct {
	key1, key2 uint32
	// rep is a package the match was made for: a feed delta matches the version again from it
	// (prematch) without looking through the holders' inventories.
	rep   rec
	advs  []*model.Advisory
	fixed []string
	warn  string
}

// Submission is a resource's new inventory with the state the caller holds for it.
type Submission struct {
	Resource  model.Resource
	Inventory *model.Inventory
	// Exposure feeds the risk score (network reachability of the resource).
	Exposure score.Context
	// Prev are the resource's stored findings (every status); Rules the suppression rules that govern it.
	Prev  []model.Finding
	Rules []model.SuppressionRule
	// Load, when set, replaces Prev: the engine asks for the stored findings it examines (need nil:
	// all of them). A changed inventory then reads only the findings its changed packages touch,
	// and the others, seen again, are not listed in Result.Observed: the caller observes the
	// resource's open findings itself.
	Load func(need *Need) ([]model.Finding, error)
}

// stored returns the findings a submission's pass examines.
func (s *Submission) stored(need *Need) ([]model.Finding, []model.SuppressionRule, error) {
	if s.Load == nil {
		return s.Prev, s.Rules, nil
	}
	prev, err := s.Load(need)
	return prev, s.Rules, err
}

// observe returns the result of seeing a resource's findings again, unchanged.
func (s *Submission) observe(r *model.Resource, now time.Time) (findings.Result, error) {
	prev, rules, err := s.stored(nil)
	if err != nil {
		return findings.Result{}, err
	}
	return findings.Observe(prev, rules, r, now), nil
}

// Outcome is the re-evaluation of one resource.
type Outcome struct {
	Ref Ref
	// Result is what to write. Its Findings hold the new state of the findings this pass examined;
	// after a changed inventory or a feed delta that is only the findings the change touched (the
	// others are as stored, except that IDs in Observed get lastObservedAt = now). A new resource,
	// an exposure change or an unchanged resubmission examine them all.
	Result findings.Result
	// At is the pass's time: the lastObservedAt of the Observed IDs.
	At time.Time
	// Matched counts packages matched against the database in this pass; Unchanged means the
	// inventory was identical and nothing was matched or regrouped.
	Matched   int
	Unchanged bool
	// Warnings list packages that could not be evaluated (unparseable versions).
	Warnings []string
}

// Submit records a resource's new inventory and returns its re-evaluated findings.
func (e *Engine) Submit(ctx context.Context, s Submission, now time.Time) (*Outcome, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ref := Ref{s.Resource.Account, s.Resource.ID}
	ent, existed := e.entryOf(ref)
	sameExposure := existed && sameContext(ent.exposure, s.Exposure)
	sameHash := existed && s.Resource.InventoryHash != "" && s.Resource.InventoryHash == ent.resource.InventoryHash
	ent.resource, ent.exposure = s.Resource, s.Exposure
	unchanged := func() (*Outcome, error) {
		res, err := s.observe(&ent.resource, now)
		if err != nil {
			return nil, err
		}
		return &Outcome{Ref: ref, At: now, Unchanged: true, Warnings: ent.warningList(), Result: res}, nil
	}
	if sameHash && sameExposure {
		// The caller vouches that the content is identical (model.Resource.InventoryHash).
		return unchanged()
	}

	// Fast path: the same packages in the same order (the common resubmission), compared record by
	// record without building any map.
	if existed && sameExposure && len(s.Inventory.Packages) == len(ent.pkgs) {
		same := true
		for i := range s.Inventory.Packages {
			if e.compact(&s.Inventory.Packages[i]) != ent.pkgs[i] {
				same = false
				break
			}
		}
		if same {
			return unchanged()
		}
	}
	// Compact the new inventory; remember the source package of each new record for matching.
	newPkgs := make([]rec, 0, len(s.Inventory.Packages))
	srcOf := make(map[rec]*model.Package, len(s.Inventory.Packages))
	for i := range s.Inventory.Packages {
		p := &s.Inventory.Packages[i]
		r := e.compact(p)
		if _, dup := srcOf[r]; dup {
			continue
		}
		srcOf[r] = p
		newPkgs = append(newPkgs, r)
	}
	oldMemo := make(map[rec]*memoVal, len(ent.pkgs))
	for i, r := range ent.pkgs {
		oldMemo[r] = ent.memo[i]
	}
	newMemo := make([]*memoVal, len(newPkgs))
	var added []int
	for i, r := range newPkgs {
		if mv, ok := oldMemo[r]; ok {
			newMemo[i] = mv
			delete(oldMemo, r)
			continue
		}
		added = append(added, i)
	}
	removed := oldMemo // what is left of the old packages
	if sameExposure && len(added) == 0 && len(removed) == 0 && sameOrder(ent.pkgs, newPkgs) {
		return unchanged()
	}
	// Full regrouping for a new resource or a new exposure (every score may move); otherwise only the
	// findings whose IDs the removed and added packages' hits name.
	var dirty map[string]bool
	if existed && sameExposure {
		dirty = map[string]bool{}
	}
	for _, mv := range removed {
		addIDs(dirty, mv.advs)
	}
	for _, i := range added {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		mv, err := e.memoFor(newPkgs[i], srcOf[newPkgs[i]])
		if err != nil {
			return nil, fmt.Errorf("reeval: %s/%s: %w", ref.Account, ref.ResourceID, err)
		}
		newMemo[i] = mv
		addIDs(dirty, mv.advs)
	}
	e.reindex(ent, ent.pkgs, newPkgs)
	ent.pkgs, ent.memo = newPkgs, newMemo
	res, err := e.evaluate(ent, s.stored, now, dirty, s.Load == nil, nil)
	if err != nil {
		return nil, err
	}
	return &Outcome{Ref: ref, At: now, Result: res, Matched: len(added), Warnings: ent.warningList()}, nil
}

// Restore records a resource's stored inventory without evaluating it: after a restart the stored
// findings already are its evaluation, and the engine needs only the packages, their matches and the
// index for later changes. Matching is shared as in Submit, so a fleet costs its distinct package
// versions. r.InventoryHash should be the stored hash, so that an unchanged resubmission is known.
func (e *Engine) Restore(ctx context.Context, r model.Resource, inv *model.Inventory, exposure score.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ref := Ref{r.Account, r.ID}
	ent, _ := e.entryOf(ref)
	pkgs := make([]rec, 0, len(inv.Packages))
	memo := make([]*memoVal, 0, len(inv.Packages))
	seen := make(map[rec]bool, len(inv.Packages))
	for i := range inv.Packages {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := &inv.Packages[i]
		rc := e.compact(p)
		if seen[rc] {
			continue
		}
		seen[rc] = true
		mv, err := e.memoFor(rc, p)
		if err != nil {
			return fmt.Errorf("reeval: %s/%s: %w", ref.Account, ref.ResourceID, err)
		}
		pkgs = append(pkgs, rc)
		memo = append(memo, mv)
	}
	e.reindex(ent, ent.pkgs, pkgs)
	ent.resource, ent.exposure, ent.pkgs, ent.memo = r, exposure, pkgs, memo
	return nil
}

// Resubmitted reports whether the engine holds the resource with this InventoryHash and exposure:
// its inventory is unchanged, nothing needs matching, and every open finding is simply observed
// again. It then records the resource's new descriptive fields. It lets a caller skip loading the
// stored findings that Submit would need.
func (e *Engine) Resubmitted(r model.Resource, exposure score.Context) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.handles[Ref{r.Account, r.ID}]
	if !ok || r.InventoryHash == "" {
		return false
	}
	ent := e.entries[h]
	if ent.resource.InventoryHash != r.InventoryHash || !sameContext(ent.exposure, exposure) {
		return false
	}
	ent.resource = r
	return true
}

// Remove forgets a resource (deleted or terminated); its stored findings are the caller's to close
// (findings.CloseRemoved) and delete (findings.Expired).
func (e *Engine) Remove(ref Ref) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.handles[ref]
	if !ok {
		return
	}
	ent := e.entries[h]
	e.reindex(ent, ent.pkgs, nil)
	delete(e.handles, ref)
	e.entries[h] = nil
	e.free = append(e.free, h)
}

// Reset forgets every resource and the advisory cache.
func (e *Engine) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cache = newCache(e.cache.inner)
	e.matcher = match.New(e.cache).WithParseCache(parseCacheSize)
	e.strs, e.idx, e.handles, e.entries, e.free = newStrtab(), newIndex(), map[Ref]uint32{}, nil, nil
	e.memo = map[memoKey]*memoVal{}
}

// Holders returns the resources holding a package key.
func (e *Engine) Holders(k Key) []Ref {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.idx.lookup(k)
	if !ok {
		return nil
	}
	var out []Ref
	for _, h := range e.idx.holders(id) {
		ent := e.entries[h]
		out = append(out, Ref{ent.resource.Account, ent.resource.ID})
	}
	return out
}

// Stats describe the engine's size.
type Stats struct {
	Resources, Packages, Keys, Pairs, Strings, HitPackages int
}

// Stats counts what the engine holds.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Resources: len(e.handles), Keys: len(e.idx.keys), Pairs: e.idx.pairs(), Strings: len(e.strs.s)}
	for _, ent := range e.entries {
		if ent != nil {
			s.Packages += len(ent.pkgs)
			for _, mv := range ent.memo {
				if len(mv.advs) > 0 {
					s.HitPackages++
				}
			}
		}
	}
	return s
}

// Delta is what changed in the vulnerability database.
type Delta struct {
	// Packages are the keys whose advisories were added, changed, withdrawn or removed.
	Packages []Key
	// Vulns are IDs whose enrichment (description, CVSS, EPSS, KEV) changed.
	Vulns []string
}

// DeltaFromChanges condenses vulndb change-log entries into a Delta (names normalized as the
// matcher looks them up).
func DeltaFromChanges(changes []vulndb.Change) Delta {
	var d Delta
	seenK := map[Key]bool{}
	seenV := map[string]bool{}
	for _, c := range changes {
		if c.Kind == vulndb.ChangeEnrichment {
			if c.VulnID != "" && !seenV[c.VulnID] {
				seenV[c.VulnID] = true
				d.Vulns = append(d.Vulns, c.VulnID)
			}
			continue
		}
		if c.Ecosystem == "" || c.Package == "" {
			continue
		}
		k := Key{c.Ecosystem, match.NormalizeName(c.Ecosystem, c.Package)}
		if !seenK[k] {
			seenK[k] = true
			d.Packages = append(d.Packages, k)
		}
	}
	return d
}

// Loader gives a feed delta the stored state it reconciles against: for each resource, the
// stored findings its pass examines (need: a resource's other findings are not touched by a feed
// delta; returning more, or all of them, is harmless) and the suppression rules that govern it.
// FeedDelta calls it from one goroutine with a batch of resources at a time, once they are
// regrouped, and only for resources whose hits changed: a store answers a batch with a few
// queries instead of one per resource.
type Loader interface {
	Load(ctx context.Context, refs []Ref, needs []*Need) (prev [][]model.Finding, rules [][]model.SuppressionRule, err error)
}

// LoadFunc is a Loader answering one resource at a time.
type LoadFunc func(ctx context.Context, ref Ref, need *Need) (prev []model.Finding, rules []model.SuppressionRule, err error)

// Load implements Loader.
func (f LoadFunc) Load(ctx context.Context, refs []Ref, needs []*Need) ([][]model.Finding, [][]model.SuppressionRule, error) {
	prev, rules := make([][]model.Finding, len(refs)), make([][]model.SuppressionRule, len(refs))
	for i, ref := range refs {
		var err error
		if prev[i], rules[i], err = f(ctx, ref, needs[i]); err != nil {
			return nil, nil, err
		}
	}
	return prev, rules, nil
}

// Need names the stored findings a feed-delta pass of one resource examines: those with one of
// IDs (the findings it recomputed) or whose vulnerability ID is one of Vulns (the changed IDs and
// every ID and alias of the hits regrouped with them). Vulns holds the vulnerability ID of every
// finding in IDs too, and a finding's ID derives from its resource and vulnerability ID, so a
// loader may select by (resource, vulnerability ID) alone.
type Need struct {
	IDs, Vulns []string
}

// FeedDelta re-evaluates the resources a database change affects: packages under changed keys are
// matched again (one store lookup per key for the whole fleet), resources whose hits name an
// enriched ID are regrouped and rescored. Outcomes come in resource order. A resource whose
// re-matched packages gave the same hits as before (an advisory modified in ways findings do not
// show, or one that does not affect the versions it holds) is neither loaded nor reconciled: its
// outcome has Unchanged set and an empty Result. Findings the delta did not touch are left alone.
func (e *Engine) FeedDelta(ctx context.Context, d Delta, load Loader, now time.Time) ([]Outcome, error) {
	var all []Outcome
	err := e.FeedDeltaEach(ctx, d, load, now, func(batch []Outcome) error {
		all = append(all, batch...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// FeedDeltaEach is FeedDelta handing the outcomes to each a batch at a time, in resource order, as
// they are ready: a caller writing them meanwhile (each may hand a batch to another goroutine and
// return) overlaps its writes with the engine's work on the next batch. A batch is the caller's
// once handed over. An error from each ends the pass with that error.
func (e *Engine) FeedDeltaEach(ctx context.Context, d Delta, load Loader, now time.Time, each func([]Outcome) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cache.forgetKeys(d.Packages)
	// changed[k] marks key IDs whose packages are matched again: a bitmap, not per-resource sets
	// (a Debian source package is held by every host of a fleet).
	changed := make([]bool, len(e.idx.keys))
	anyChanged := false
	for _, k := range d.Packages {
		if id, ok := e.idx.lookup(k); ok {
			changed[id] = true
			anyChanged = true
		}
	}
	e.memoMu.Lock()
	e.stale = map[memoKey]*memoVal{}
	if anyChanged {
		for mk, mv := range e.memo {
			if (mv.key1 != 0 && changed[mv.key1-1]) || (mv.key2 != 0 && changed[mv.key2-1]) {
				e.stale[mk] = mv
				delete(e.memo, mk)
			}
		}
	}
	e.memoMu.Unlock()
	defer func() {
		e.memoMu.Lock()
		e.stale = nil
		e.memoMu.Unlock()
	}()
	regroup := make([]bool, len(e.entries))
	rematch := make([]bool, len(e.entries))
	for _, k := range d.Packages {
		id, ok := e.idx.lookup(k)
		if !ok {
			continue
		}
		for _, h := range e.idx.holders(id) {
			rematch[h], regroup[h] = true, true
		}
	}
	for _, k := range e.cache.forgetVulns(d.Vulns) {
		if id, ok := e.idx.lookup(k); ok {
			for _, h := range e.idx.holders(id) {
				regroup[h] = true
			}
		}
	}
	// Fetch each changed key once, before fanning out, so workers share one lookup per key.
	for _, k := range d.Packages {
		if id, ok := e.idx.lookup(k); ok && len(e.idx.holders(id)) > 0 {
			if _, err := e.cache.Advisories(k.Ecosystem, k.Name); err != nil {
				return fmt.Errorf("reeval: looking up %s %s: %w", k.Ecosystem, k.Name, err)
			}
		}
	}
	var handles []uint32
	for h, ok := range regroup {
		if ok {
			handles = append(handles, uint32(h))
		}
	}
	if err := e.prematch(ctx); err != nil {
		return err
	}
	gc := newGroupCache()
	for lo := 0; lo < len(handles); lo += loadBatch {
		hi := min(lo+loadBatch, len(handles))
		out := make([]Outcome, hi-lo)
		if err := e.deltaBatch(ctx, handles[lo:hi], out, rematch, changed, d.Vulns, load, now, gc); err != nil {
			return err
		}
		if err := each(out); err != nil {
			return err
		}
	}
	return nil
}

// loadBatch is how many resources a feed delta regroups before loading their stored findings
// with one Loader call.
const loadBatch = 1000

// deltaBatch re-evaluates a batch of a feed delta's resources: regrouped on the workers, their
// stored findings loaded in one call, reconciled on the workers.
func (e *Engine) deltaBatch(ctx context.Context, handles []uint32, out []Outcome, rematch, changed []bool, vulns []string, load Loader, now time.Time, gc *groupCache) error {
	passes := make([]*pass, len(handles))
	err := e.fanOut(ctx, len(handles), func(i int) error {
		h := handles[i]
		keys := changed
		if !rematch[h] {
			keys = nil
		}
		var err error
		out[i], passes[i], err = e.redo(e.entries[h], keys, vulns, now, gc)
		return err
	})
	if err != nil {
		return err
	}
	var (
		refs  []Ref
		needs []*Need
		at    []int
	)
	for i, p := range passes {
		if p != nil {
			refs, needs, at = append(refs, out[i].Ref), append(needs, p.need), append(at, i)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	prev, rules, err := load.Load(ctx, refs, needs)
	if err != nil {
		return fmt.Errorf("reeval: loading the stored findings of %d resources: %w", len(refs), err)
	}
	if len(prev) != len(refs) || len(rules) != len(refs) {
		return fmt.Errorf("reeval: the loader answered %d of %d resources", len(prev), len(refs))
	}
	return e.fanOut(ctx, len(at), func(j int) error {
		i := at[j]
		out[i].Result = e.finish(passes[i], prev[j], rules[j], now)
		return nil
	})
}

// fanOut runs fn(0..n-1) on the workers and returns the first error.
func (e *Engine) fanOut(ctx context.Context, n int, fn func(i int) error) error {
	errs := make([]error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(e.cfg.Workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				errs[i] = fn(i)
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// prematch fills the memo again for every package version the delta made stale, spread over the
// workers, so that no two workers match the same version and per-resource work is lookups only.
// The stale versions are those the fleet's holders of the changed keys hold (their memo entries),
// so no holder's inventory is looked through: one advisory on a package held by thousands of hosts
// re-matched its dozen versions after reading every holder's 500 packages (17 ms of 38 at 10,000
// hosts). A version missing from the memo is matched by the resource that needs it.
func (e *Engine) prematch(ctx context.Context) error {
	e.memoMu.Lock()
	todo := make([]rec, 0, len(e.stale))
	for _, mv := range e.stale {
		todo = append(todo, mv.rep)
	}
	e.memoMu.Unlock()
	return e.fanOut(ctx, len(todo), func(i int) error {
		_, err := e.memoFor(todo[i], nil)
		return err
	})
}

// changedRec reports whether a package falls under a changed key (changed nil: none does).
func changedRec(r rec, changed []bool) bool {
	return changed != nil && ((r.key1 != 0 && changed[r.key1-1]) || (r.key2 != 0 && changed[r.key2-1]))
}

// redo regroups one resource of a feed delta: an Outcome with Unchanged set when its hits did not
// change, else the pass to reconcile once its stored findings are loaded. It touches only its own
// entry; the string table and index are read-only while a feed delta runs.
func (e *Engine) redo(ent *entry, changed []bool, vulns []string, now time.Time, gc *groupCache) (Outcome, *pass, error) {
	ref := Ref{ent.resource.Account, ent.resource.ID}
	dirty := map[string]bool{}
	for _, v := range vulns {
		dirty[v] = true
	}
	n := 0
	if changed != nil {
		for i, r := range ent.pkgs {
			if changedRec(r, changed) {
				n++
				mv, err := e.memoFor(r, nil)
				if err != nil {
					return Outcome{}, nil, fmt.Errorf("reeval: %s/%s: %w", ref.Account, ref.ResourceID, err)
				}
				diffIDs(dirty, ent.memo[i], mv)
				ent.memo[i] = mv
			}
		}
	}
	if len(dirty) == 0 {
		return Outcome{Ref: ref, At: now, Matched: n, Unchanged: true}, nil, nil
	}
	p, err := e.prepare(ent, dirty, false, gc)
	if err != nil {
		return Outcome{}, nil, err
	}
	return Outcome{Ref: ref, At: now, Matched: n, Warnings: ent.warningList()}, p, nil
}

// pass is one resource's evaluation between regrouping and reconciling: its fresh findings, and
// which stored findings it examines.
type pass struct {
	ent     *entry
	current []model.Finding
	need    *Need // nil: all of them
	ids     map[string]bool
	dirty   map[string]bool
	observe bool
}

// evaluate regroups the entry's hits, in inventory order as a full match would, and reconciles.
// With a dirty set it recomputes only the findings whose groups name a dirty ID and reconciles
// them against the stored findings that name one (or share an ID); the other stored findings are
// left as they are, except that observe (a new inventory: every finding was seen again) moves the
// lastObservedAt of the open ones and lists them in Observed. A feed delta does not observe them.
//
// get returns the stored findings and rules; with a dirty set it is told which findings the pass
// examines, once the hits are regrouped.
func (e *Engine) evaluate(ent *entry, get func(need *Need) ([]model.Finding, []model.SuppressionRule, error), now time.Time, dirty map[string]bool, observe bool, gc *groupCache) (findings.Result, error) {
	p, err := e.prepare(ent, dirty, observe, gc)
	if err != nil {
		return findings.Result{}, err
	}
	prev, rules, err := get(p.need)
	if err != nil {
		return findings.Result{}, err
	}
	return e.finish(p, prev, rules, now), nil
}

// prepare regroups the entry's hits (those a dirty ID reaches, with a dirty set) into fresh findings.
//
// gc, during a feed delta, shares the findings of identical groups across resources; current
// then comes in group order rather than sorted, which nothing below depends on (findings are
// reconciled by ID and results come in ID order).
func (e *Engine) prepare(ent *entry, dirty map[string]bool, observe bool, gc *groupCache) (*pass, error) {
	// Hits are rebuilt for the pass from the shared memo; packages are expanded from the compact
	// records only for the hits selected, so nothing per package outlives the call.
	n := 0
	for _, mv := range ent.memo {
		n += len(mv.advs)
	}
	lite := make([]liteHit, 0, n)
	for i, mv := range ent.memo {
		for j, a := range mv.advs {
			lite = append(lite, liteHit{pkg: i, adv: a, fixed: mv.fixed[j]})
		}
	}
	var vulns map[string]bool
	if dirty != nil {
		lite, vulns = closure(lite, dirty)
	}
	opts := match.Options{Account: ent.resource.Account, Resource: ent.resource.ID, Exposure: ent.exposure}
	var current []model.Finding
	var err error
	if gc != nil {
		current, err = e.groupFindings(ent, lite, opts, gc)
	} else {
		hits := make([]match.Hit, len(lite))
		var p *model.Package
		last := -1
		for k, h := range lite {
			if h.pkg != last {
				p, last = e.expand(ent.pkgs[h.pkg]), h.pkg
			}
			hits[k] = match.NewHit(p, h.adv, h.fixed)
		}
		current, err = e.matcher.Findings(hits, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("reeval: %s/%s: %w", ent.resource.Account, ent.resource.ID, err)
	}
	for i := range current {
		current[i].Account, current[i].ResourceID, current[i].ResourceType = ent.resource.Account, ent.resource.ID, ent.resource.Type
	}
	p := &pass{ent: ent, current: current, dirty: dirty, observe: observe}
	if dirty == nil {
		return p, nil
	}
	p.ids = make(map[string]bool, len(current))
	p.need = &Need{IDs: make([]string, 0, len(current)), Vulns: make([]string, 0, len(vulns))}
	for _, f := range current {
		p.ids[f.ID] = true
		p.need.IDs = append(p.need.IDs, f.ID)
		vulns[f.VulnerabilityID] = true
	}
	for id := range vulns {
		p.need.Vulns = append(p.need.Vulns, id)
	}
	sort.Strings(p.need.IDs)
	sort.Strings(p.need.Vulns)
	return p, nil
}

// finish reconciles a pass's fresh findings with the stored ones (prev: at least those its need
// names; others are left alone).
func (e *Engine) finish(p *pass, prev []model.Finding, rules []model.SuppressionRule, now time.Time) findings.Result {
	if p.need == nil {
		return findings.Process(prev, p.current, rules, &p.ent.resource, now, e.cfg.Findings)
	}
	// The others are only named (observe), never copied: a resource holds hundreds of findings.
	touched := make([]model.Finding, 0, len(p.current))
	var observed []string
	for i := range prev {
		f := &prev[i]
		if p.ids[f.ID] || p.dirty[f.VulnerabilityID] || slices.ContainsFunc(f.RelatedVulnerabilities, func(id string) bool { return p.dirty[id] }) {
			touched = append(touched, *f)
		} else if p.observe && f.Status != model.FindingClosed {
			observed = append(observed, f.ID)
		}
	}
	// Only the re-examined findings are returned: copying the resource's whole state on every pass
	// would cost more than the pass itself.
	res := findings.Process(touched, p.current, rules, &p.ent.resource, now, e.cfg.Findings)
	if len(observed) > 0 {
		res.Observed = append(res.Observed, observed...)
		sort.Strings(res.Observed)
	}
	return res
}

// liteHit is a hit before its package is expanded: the package's position in the entry.
type liteHit struct {
	pkg   int
	adv   *model.Advisory
	fixed string
}

// diffIDs adds to dirty the IDs of advisories present in only one of two match results of a
// package. Unchanged advisories keep their pointers across a feed delta (carryOver), so pointer
// identity is content identity here.
func diffIDs(dirty map[string]bool, old, new *memoVal) {
	if old == new {
		return
	}
	in := func(mv *memoVal, a *model.Advisory, fixed string) bool {
		for i, x := range mv.advs {
			if x == a && mv.fixed[i] == fixed {
				return true
			}
		}
		return false
	}
	for i, a := range old.advs {
		if !in(new, a, old.fixed[i]) {
			addAdvIDs(dirty, a)
		}
	}
	for i, a := range new.advs {
		if !in(old, a, new.fixed[i]) {
			addAdvIDs(dirty, a)
		}
	}
}

// carryOver makes a fresh match result share the previous result's advisory pointers wherever an
// advisory is unchanged (same source and ID, same content but for its published and modified
// times, same fixed version), and returns the previous result itself when nothing changed.
func carryOver(old, mv *memoVal) *memoVal {
	same := old.warn == mv.warn && len(old.advs) == len(mv.advs)
	for i, a := range mv.advs {
		reused := false
		for j, o := range old.advs {
			if o.Source == a.Source && o.ID == a.ID && old.fixed[j] == mv.fixed[i] && sameAdvisory(o, a) {
				mv.advs[i] = o
				reused = true
				same = same && j == i
				break
			}
		}
		same = same && reused
	}
	if same {
		return old
	}
	return mv
}

func sameAdvisory(a, b *model.Advisory) bool {
	x, y := *a, *b
	x.Modified, y.Modified = time.Time{}, time.Time{}
	x.Published, y.Published = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// closure selects the hits of every group (match.GroupHits) that names a dirty ID: a hit joins
// when its advisory's ID, an alias or a related ID is in the set, and then brings its ID and
// aliases in, until nothing more joins. This equals filtering match.GroupHits by dirty IDs without
// building the union of every hit of the resource. It also returns the final set: the dirty IDs
// and every ID and alias of the selected hits.
func closure(hits []liteHit, dirty map[string]bool) ([]liteHit, map[string]bool) {
	set := make(map[string]bool, len(dirty))
	for id := range dirty {
		set[id] = true
	}
	in := make([]bool, len(hits))
	n := 0
	// Another pass is needed only when the set grew: a hit that joins without naming a new ID
	// cannot make any other hit join. Consecutive hits of one advisory (the binary packages of a
	// Debian source package) are judged once.
	for grew := true; grew; {
		grew = false
		var lastAdv *model.Advisory
		lastIn := false
		for i, h := range hits {
			if in[i] {
				continue
			}
			a := h.adv
			if a == lastAdv && !lastIn {
				continue // judged a moment ago against the same set
			}
			lastAdv, lastIn = a, false
			if !set[a.ID] && !slices.ContainsFunc(a.Aliases, func(id string) bool { return set[id] }) &&
				!slices.ContainsFunc(a.Related, func(id string) bool { return set[id] }) {
				continue
			}
			in[i], lastIn = true, true
			n++
			if !set[a.ID] {
				set[a.ID], grew = true, true
			}
			for _, al := range a.Aliases {
				if strings.Contains(al, "-") && !set[al] {
					set[al], grew = true, true
				}
			}
		}
	}
	out := make([]liteHit, 0, n)
	for i, h := range hits {
		if in[i] {
			out = append(out, h)
		}
	}
	return out, set
}

// addIDs adds the IDs advisories name (their IDs, aliases, related IDs) to a dirty set (nil: no-op).
func addIDs(dirty map[string]bool, advs []*model.Advisory) {
	if dirty == nil {
		return
	}
	for _, a := range advs {
		addAdvIDs(dirty, a)
	}
}

func addAdvIDs(dirty map[string]bool, a *model.Advisory) {
	dirty[a.ID] = true
	for _, id := range a.Aliases {
		dirty[id] = true
	}
	for _, id := range a.Related {
		dirty[id] = true
	}
}

// memoFor returns the memoized match of a package version, matching it on a miss (p, when not
// nil, is the package as the inventory gave it).
func (e *Engine) memoFor(r rec, p *model.Package) (*memoVal, error) {
	mk := memoKey{r.eco, r.name, r.ver, r.srcName, r.srcVer}
	e.memoMu.Lock()
	mv := e.memo[mk]
	e.memoMu.Unlock()
	if mv != nil {
		return mv, nil
	}
	if p == nil {
		p = e.expand(r)
	}
	hs, warn, err := e.matcher.Package(p)
	if err != nil {
		return nil, fmt.Errorf("reeval: %s %s: %w", p.Ecosystem, p.Name, err)
	}
	mv = &memoVal{key1: r.key1, key2: r.key2, rep: r, warn: warn}
	for _, h := range hs {
		mv.advs = append(mv.advs, h.Advisory())
		mv.fixed = append(mv.fixed, h.Fixed())
	}
	e.memoMu.Lock()
	defer e.memoMu.Unlock()
	if cur := e.memo[mk]; cur != nil {
		return cur, nil // another worker got there first
	}
	if old := e.stale[mk]; old != nil {
		mv = carryOver(old, mv)
	}
	e.memo[mk] = mv
	return mv, nil
}

func (e *Engine) expand(r rec) *model.Package {
	s := e.strs.str
	p := &model.Package{Name: s(r.name), Version: s(r.ver), Ecosystem: s(r.eco), PURL: s(r.purl), SourceName: s(r.srcName),
		SourceVersion: s(r.srcVer), Arch: s(r.arch), LayerDigest: s(r.layer)}
	if r.loc != 0 {
		p.Locations = []string{s(r.loc)}
	}
	return p
}

func (e *Engine) compact(p *model.Package) rec {
	id := e.strs.id
	r := rec{eco: id(p.Ecosystem), name: id(p.Name), ver: id(p.Version), srcName: id(p.SourceName), srcVer: id(p.SourceVersion),
		arch: id(p.Arch), purl: id(p.PURL), layer: id(p.LayerDigest)}
	if len(p.Locations) > 0 {
		r.loc = id(p.Locations[0])
	}
	names := match.LookupNames(p)
	if len(names) > 0 {
		r.key1 = e.idx.keyID(Key{p.Ecosystem, names[0]}) + 1
	}
	if len(names) > 1 {
		r.key2 = e.idx.keyID(Key{p.Ecosystem, names[1]}) + 1
	}
	return r
}

func (e *Engine) entryOf(ref Ref) (*entry, bool) {
	if h, ok := e.handles[ref]; ok {
		return e.entries[h], true
	}
	var h uint32
	if n := len(e.free); n > 0 {
		h, e.free = e.free[n-1], e.free[:n-1]
	} else {
		h = uint32(len(e.entries))
		e.entries = append(e.entries, nil)
	}
	ent := &entry{handle: h}
	e.entries[h] = ent
	e.handles[ref] = h
	return ent, false
}

// reindex moves the entry's postings from the keys of old packages to those of new ones.
func (e *Engine) reindex(ent *entry, old, new []rec) {
	keys := func(rs []rec) map[uint32]bool {
		m := make(map[uint32]bool, len(rs))
		for _, r := range rs {
			if r.key1 != 0 {
				m[r.key1-1] = true
			}
			if r.key2 != 0 {
				m[r.key2-1] = true
			}
		}
		return m
	}
	was, is := keys(old), keys(new)
	for k := range is {
		if !was[k] {
			e.idx.add(k, ent.handle)
		}
	}
	for k := range was {
		if !is[k] {
			e.idx.remove(k, ent.handle)
			if len(e.idx.holders(k)) == 0 {
				e.cache.drop(e.idx.keys[k])
			}
		}
	}
}

func (ent *entry) warningList() []string {
	var out []string
	for _, mv := range ent.memo {
		if mv.warn != "" {
			out = append(out, mv.warn)
		}
	}
	return out
}

func sameOrder(a, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameContext(a, b score.Context) bool {
	if (a.NetworkExposed == nil) != (b.NetworkExposed == nil) || a.ExposedPorts != b.ExposedPorts {
		return false
	}
	return a.NetworkExposed == nil || *a.NetworkExposed == *b.NetworkExposed
}

// parseCacheSize bounds the parsed versions the matcher keeps (about 40 MB at most).
const parseCacheSize = 1 << 18
