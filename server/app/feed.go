package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/server/reeval"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
	"golang.org/x/sync/errgroup"
)

// FeedResult says what one pass over the vulnerability database's change log did.
type FeedResult struct {
	From, To  vulndb.Version
	Changes   int // change-log entries read
	Resources int // resources re-evaluated
	Events    int // events written
	// Synced counts resources evaluated afresh because another process stored their inventory
	// (their events are in Events too).
	Synced int
}

// ApplyFeedUpdate re-evaluates what changed in the vulnerability database since this process's
// engine last looked: only the resources holding a package whose advisories were added, changed
// or withdrawn, and only those packages. It does not rescan the fleet.
//
// Several processes may share the store, each with its own engine. So it runs under the exclusive
// fleet lock (no submission anywhere is reconciling findings meanwhile), applies the delta to the
// resources whose inventory the engine holds as stored, then evaluates afresh those another
// process received since (staleResources), and writes only what differs from the stored findings. Whichever process applies a
// version first writes its findings and events; the others, following later, find the stored
// findings already current and write nothing, so each change's events are written once.
func (s *Server) ApplyFeedUpdate(ctx context.Context) (FeedResult, error) {
	// The version another host's process imported and published, before any lock is taken.
	if err := s.followPublished(ctx, adoptOnly); err != nil {
		return FeedResult{}, err
	}
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
	release, err := s.lockExclusive(ctx)
	if err != nil {
		return FeedResult{}, err
	}
	defer release()
	return s.applyFeedLocked(ctx)
}

// applyFeedLocked is ApplyFeedUpdate for a caller holding submitMu and the exclusive fleet lock.
func (s *Server) applyFeedLocked(ctx context.Context) (FeedResult, error) {
	if err := s.VulnDB.Refresh(ctx); err != nil { // another process may have written it
		return FeedResult{}, err
	}
	// Resources another process stored an inventory of since this engine looked are left out of
	// the delta (it would re-evaluate what the engine holds, not what is stored) and evaluated
	// afresh from the store after it, when the engine's advisories are those of the new version,
	// like the stored findings another process may already have written for them.
	var stale []reeval.Ref
	if !s.engineSynced.Load() || s.Store.Dialect() == store.Postgres {
		var err error
		if stale, err = s.staleResources(ctx); err != nil {
			return FeedResult{}, fmt.Errorf("catching up with stored inventories: %w", err)
		}
	}
	changes, to, err := s.VulnDB.Changes(ctx, s.dbVersion)
	if err != nil {
		return FeedResult{}, err
	}
	res := FeedResult{From: s.dbVersion, To: to, Changes: len(changes)}
	if len(changes) > 0 {
		if err := s.applyDelta(ctx, changes, &res); err != nil {
			s.forgetFleet()
			return res, err
		}
	}
	synced, events, err := s.evaluateStored(ctx, stale)
	res.Synced, res.Events = synced, res.Events+events
	if err != nil {
		s.forgetFleet()
		return res, fmt.Errorf("catching up with stored inventories: %w", err)
	}
	s.engineSynced.Store(true)
	s.dbVersion = to
	if err := s.Store.RaiseState(ctx, stateFindingsVersion, int64(to)); err != nil {
		return res, err
	}
	if len(changes) > 0 || synced > 0 {
		s.log.Info("feed update applied", "from", res.From, "to", res.To, "changes", res.Changes,
			"resources", res.Resources, "events", res.Events, "synced", synced)
	}
	return res, nil
}

// forgetFleet empties the engine after a pass that failed part way. The engine had already taken
// the new advisories into what it holds for every resource, written or not, so the next pass
// would find nothing to change on the resources whose writes were lost. Empty, and unsynced, it
// finds every stored resource unknown on the next pass and evaluates each afresh from the store,
// writing only what differs, as after a restart that finds the database moved.
func (s *Server) forgetFleet() {
	s.engine.Reset()
	s.engineSynced.Store(false)
}

// applyDelta re-evaluates the resources the engine holds against the change-log entries and writes
// what changed. The engine asks for the stored findings of resources whose hits changed, a batch
// at a time, naming the ones it examines; rules are read once per account. Each batch's results
// are written while the engine works on the next one.
func (s *Server) applyDelta(ctx context.Context, changes []vulndb.Change, res *FeedResult) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []reeval.Outcome, 1)
	written := make(chan error, 1)
	go func() {
		err := s.writeDelta(ctx, batches, res)
		if err != nil {
			cancel() // the engine stops at its next batch
		}
		for range batches { // the engine never blocks on a writer that gave up
		}
		written <- err
	}()
	err := s.engine.FeedDeltaEach(ctx, reeval.DeltaFromChanges(changes), &deltaLoader{st: s.Store, rules: map[string][]model.SuppressionRule{}}, now,
		func(b []reeval.Outcome) error {
			batches <- b
			return nil
		})
	close(batches)
	if werr := <-written; werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("re-evaluating after a feed update: %w", err)
	}
	return nil
}

// deltaWriteRows is about how many rows (findings and events) one transaction of a feed delta
// writes; tests lower it.
var deltaWriteRows = 4000

// writeDelta writes a feed delta's outcomes as they come. Resources of one account are written a
// few thousand rows per transaction: one transaction per resource would cost a commit each (10,000
// of them for a Debian advisory). On PostgreSQL two transactions are written at once: each
// resource is in one batch only, and its findings and events are independent of the others', so
// the order between batches does not matter; a single writer left a core idle while PostgreSQL
// maintained the findings' indexes. SQLite has one writer.
func (s *Server) writeDelta(ctx context.Context, batches <-chan []reeval.Outcome, res *FeedResult) error {
	writers := 1
	if s.Store.Dialect() == store.Postgres {
		writers = 2
	}
	g, gctx := errgroup.WithContext(ctx) // the first failure cancels the other writer's transaction
	g.SetLimit(writers)
	var batch store.Changes
	flush := func() {
		if c := batch; c.Account != "" {
			g.Go(func() error { return s.Store.ApplyChanges(gctx, c) }) // waits for a free writer
		}
		batch = store.Changes{}
	}
	stopped := false
	for outs := range batches {
		if gctx.Err() != nil { // a writer failed, or the caller's context ended
			stopped = true
			break
		}
		for _, o := range outs {
			if o.Unchanged {
				continue
			}
			res.Resources++
			res.Events += len(o.Result.Events)
			if batch.Account != o.Ref.Account || len(batch.Upsert)+len(batch.Events) > deltaWriteRows {
				flush()
				batch = store.Changes{Account: o.Ref.Account, ObservedAt: o.At}
			}
			batch.Upsert = append(batch.Upsert, o.Result.Upserts...)
			batch.KeptPackages = append(batch.KeptPackages, o.Result.KeptPackages...)
			batch.Observed = append(batch.Observed, o.Result.Observed...)
			batch.Delete = append(batch.Delete, o.Result.Deletes...)
			batch.Events = append(batch.Events, o.Result.Events...)
		}
	}
	if !stopped {
		flush() // if the context ended meanwhile, the write fails and Wait says so
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if stopped {
		return ctx.Err() // batches were left unwritten: the pass must not count as applied
	}
	return nil
}

// deltaLoader answers a feed delta's batches: one read per account of the batch, by (resource,
// vulnerability ID) pairs.
type deltaLoader struct {
	st    *store.Store
	rules map[string][]model.SuppressionRule // by account
}

func (l *deltaLoader) Load(ctx context.Context, refs []reeval.Ref, needs []*reeval.Need) ([][]model.Finding, [][]model.SuppressionRule, error) {
	byAccount := map[string]map[string][]string{}
	for i, ref := range refs {
		m := byAccount[ref.Account]
		if m == nil {
			m = map[string][]string{}
			byAccount[ref.Account] = m
		}
		m[ref.ResourceID] = needs[i].Vulns
	}
	found := map[string]map[string][]model.Finding{}
	for acct, vulns := range byAccount {
		fs, err := l.st.FindingsByVulnerability(ctx, acct, vulns)
		if err != nil {
			return nil, nil, err
		}
		found[acct] = fs
		if _, ok := l.rules[acct]; !ok {
			rules, err := l.st.ListSuppressionRules(ctx, []string{acct})
			if err != nil {
				return nil, nil, err
			}
			l.rules[acct] = rules
		}
	}
	prev, rules := make([][]model.Finding, len(refs)), make([][]model.SuppressionRule, len(refs))
	for i, ref := range refs {
		prev[i], rules[i] = found[ref.Account][ref.ResourceID], l.rules[ref.Account]
	}
	return prev, rules, nil
}

// fullHashesEvery is how often a feed pass on PostgreSQL reads every resource's inventory hash
// instead of only those changed since its last read: the changed ones do not include resources
// another process deleted, which the engine should let go of.
const fullHashesEvery = 10 * time.Minute

// staleResources compares the inventory hash the engine holds for each resource with the stored
// one. A resource another process stored a different inventory of, or one the engine does not
// know, is returned (and forgotten by the engine); one the store no longer has or marks removed is
// forgotten. With one process nothing differs. A synced engine reads only the resources changed
// since its last read (the store's mark), and all of them every fullHashesEvery. Caller holds
// submitMu exclusively.
func (s *Server) staleResources(ctx context.Context) ([]reeval.Ref, error) {
	full := !s.engineSynced.Load() || s.hashMark == 0 || time.Since(s.hashesReadAll) >= fullHashesEvery
	since := s.hashMark
	if full {
		since = 0
	}
	stored, mark, err := s.Store.InventoryHashes(ctx, since)
	if err != nil {
		return nil, err
	}
	s.hashMark = mark
	if full {
		s.hashesReadAll = time.Now()
	}
	var known map[reeval.Ref]string // what the engine holds, for a full read
	if full {
		known = s.engine.Known()
	}
	var out []reeval.Ref
	for _, r := range stored {
		ref := reeval.Ref{Account: r.Account, ResourceID: r.ID}
		var (
			h  string
			ok bool
		)
		if full {
			h, ok = known[ref]
			delete(known, ref)
		} else {
			h, ok = s.engine.Hash(ref)
		}
		switch {
		case r.Removed || r.Hash == "":
			if ok {
				s.engine.Remove(ref)
			}
		case ok && h == r.Hash:
		default:
			if ok {
				s.engine.Remove(ref)
			}
			out = append(out, ref)
		}
	}
	for ref := range known { // deleted from the store by another process
		s.engine.Remove(ref)
	}
	slices.SortFunc(out, func(a, b reeval.Ref) int { // evaluated in a stable order
		return cmp.Or(strings.Compare(a.Account, b.Account), strings.Compare(a.ResourceID, b.ResourceID))
	})
	return out, nil
}

// evaluateStored gives the engine the stored inventories of refs, each evaluated in full against
// its stored findings, and writes what differs (with events), so that the engine and the stored
// findings agree again. It returns how many it evaluated and the events it wrote.
func (s *Server) evaluateStored(ctx context.Context, refs []reeval.Ref) (n, events int, err error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	for _, ref := range refs {
		res, err := s.Store.GetResource(ctx, ref.Account, ref.ResourceID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, events, err
		}
		pkgs, err := s.Store.Inventory(ctx, ref.Account, ref.ResourceID)
		if err != nil {
			return n, events, err
		}
		// An empty inventory is evaluated too: the engine then holds its hash and stops asking.
		prev, err := s.Store.ResourceFindings(ctx, ref.Account, ref.ResourceID)
		if err != nil {
			return n, events, err
		}
		rules, err := s.Store.ListSuppressionRules(ctx, []string{ref.Account})
		if err != nil {
			return n, events, err
		}
		out, err := s.engine.Submit(ctx, reeval.Submission{Resource: res, Inventory: &model.Inventory{Packages: pkgs}, Prev: prev, Rules: rules}, now)
		if err != nil {
			return n, events, err
		}
		n++
		// Only real differences: re-reading an inventory is not observing the resource again.
		if rr := out.Result; len(rr.Upserts) > 0 || len(rr.Deletes) > 0 || len(rr.Events) > 0 {
			if err := s.Store.ApplyChanges(ctx, store.Changes{Account: ref.Account, Upsert: rr.Upserts, KeptPackages: rr.KeptPackages, Delete: rr.Deletes, Events: rr.Events}); err != nil {
				return n, events, err
			}
			events += len(rr.Events)
		}
	}
	return n, events, nil
}

// versionCheckEvery bounds how often submissions read the vulnerability database's version. A
// submission in between may match with advisories one version old; this process's next
// application of that version (at the next check, or by the watcher) re-matches the changed
// packages of every resource it holds and writes the difference, so the lag is bounded.
const versionCheckEvery = time.Second

// catchUp applies the vulnerability database's changes before a submission when the database
// moved past the version this process's engine reflects (checked at most every
// versionCheckEvery): under submitMu exclusively and the exclusive fleet lock.
func (s *Server) catchUp(ctx context.Context) error {
	s.holdMu.Lock()
	due := time.Since(s.versionChecked) >= versionCheckEvery
	if due {
		s.versionChecked = time.Now()
	}
	s.holdMu.Unlock()
	if !due {
		return nil
	}
	// A version another host's process published is adopted first (one small read when none is).
	// Failing that, submissions go on with this process's database; the watcher and the next
	// feed pass try again.
	if err := s.followPublished(ctx, adoptOnly); err != nil && ctx.Err() == nil {
		s.log.Error("adopting the published vulnerability database", "error", err)
	}
	v, err := s.VulnDB.Version(ctx)
	if err != nil {
		return err
	}
	s.submitMu.RLock()
	current := v == s.dbVersion
	s.submitMu.RUnlock()
	if current {
		return nil
	}
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
	if v == s.dbVersion {
		return nil // another submission caught up meanwhile
	}
	rel, err := s.lockExclusive(ctx)
	if err != nil {
		return err
	}
	defer rel()
	_, err = s.applyFeedLocked(ctx)
	return err
}

// enterSubmit prepares this process for one submission (the caller holds submitMu shared and the
// resource's lock) and returns the resource as stored (found false for a new one): it makes sure
// the process holds the fleet lock shared, and makes the engine forget the resource if another
// process stored a different inventory of it since, so that the submission is evaluated in full
// against the stored findings.
func (s *Server) enterSubmit(ctx context.Context, ref reeval.Ref) (stored model.Resource, found bool, err error) {
	if err := s.holdShared(ctx); err != nil {
		return stored, false, err
	}
	stored, err = s.Store.GetResource(ctx, ref.Account, ref.ResourceID)
	if errors.Is(err, store.ErrNotFound) {
		return stored, false, nil
	}
	if err != nil {
		return stored, false, err
	}
	// One process (SQLite): the engine saw every inventory.
	if s.Store.Dialect() == store.Postgres {
		if h, ok := s.engine.Hash(ref); ok && h != stored.InventoryHash {
			s.engine.Remove(ref)
		}
	}
	return stored, true, nil
}

// A process keeps the fleet lock shared across consecutive submissions, so that they cost no lock
// round trip and never wait for one another. A watcher lets it go when a session of another process
// waits for the lock (a feed pass wanting it exclusively) or after holdIdle without submissions.
const (
	holdPoll = 20 * time.Millisecond
	holdIdle = time.Second
)

// fleetHold is the shared fleet lock a process holds across submissions (guarded by holdMu).
type fleetHold struct {
	release func()
	used    time.Time // the last submission under it
	gen     int       // counts holds; a watcher watches one
}

// holdShared makes sure this process holds the fleet lock shared (caller holds submitMu shared).
func (s *Server) holdShared(ctx context.Context) error {
	if s.Store.Dialect() != store.Postgres {
		return nil // one process: the lock is a no-op
	}
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	s.hold.used = time.Now()
	if s.hold.release != nil {
		return nil
	}
	rel, err := s.Store.FleetLock(ctx, false)
	if err != nil {
		return err
	}
	s.hold.release = rel
	s.hold.gen++
	go s.watchHold(s.hold.gen)
	return nil
}

// watchHold releases hold gen once another session waits for the fleet lock or it has been idle
// for holdIdle. Submissions stop only for that release (submitMu exclusively: none may be between
// its shared hold and its writes), not every time the hold ages.
func (s *Server) watchHold(gen int) {
	t := time.NewTicker(holdPoll)
	defer t.Stop()
	for range t.C {
		s.holdMu.Lock()
		live, idle := s.hold.gen == gen && s.hold.release != nil, time.Since(s.hold.used) > holdIdle
		s.holdMu.Unlock()
		if !live {
			return
		}
		if !idle {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			wanted, err := s.Store.FleetLockWanted(ctx)
			cancel()
			if err == nil && !wanted {
				continue
			}
			// An error (the database unreachable): let the lock go rather than hold it blind.
		}
		s.submitMu.Lock()
		s.holdMu.Lock()
		if s.hold.gen == gen {
			s.dropSharedLocked()
		}
		s.holdMu.Unlock()
		s.submitMu.Unlock()
		return
	}
}

// dropShared releases the shared hold, if any (caller holds submitMu exclusively).
func (s *Server) dropShared() {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	s.dropSharedLocked()
}

func (s *Server) dropSharedLocked() {
	if s.hold.release != nil {
		s.hold.release()
		s.hold.release = nil
	}
}

// lockExclusive takes the fleet lock exclusive (caller holds submitMu), first dropping this
// process's own shared hold, which would otherwise block it.
func (s *Server) lockExclusive(ctx context.Context) (release func(), err error) {
	s.dropShared()
	return s.Store.FleetLock(ctx, true)
}

// Housekeep applies what time alone changes, for every resource: suppression rules that expired
// (their findings become active again) and retention (closed findings after 30 days, those of
// removed resources after 3 days are deleted).
func (s *Server) Housekeep(ctx context.Context) error {
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
	release, err := s.lockExclusive(ctx)
	if err != nil {
		return err
	}
	defer release()
	accounts, err := s.allAccounts(ctx)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	for _, acct := range accounts {
		rules, err := s.Store.ListSuppressionRules(ctx, []string{acct})
		if err != nil {
			return err
		}
		q := store.ResourceQuery{PageSize: 1000, IncludeRemoved: true}
		for {
			page, err := s.Store.ListResources(ctx, []string{acct}, q)
			if err != nil {
				return err
			}
			for _, res := range page.Resources {
				purged, err := s.purgeRemoved(ctx, res, now)
				if err != nil {
					return err
				}
				if purged {
					continue
				}
				fs, err := s.Store.ResourceFindings(ctx, acct, res.ID)
				if err != nil {
					return err
				}
				r := findings.ApplyRules(fs, rules, &res, now)
				del := findings.Expired(fs, &res, now, s.cfg.Lifecycle)
				if len(r.Upserts) == 0 && len(r.Events) == 0 && len(del) == 0 {
					continue
				}
				if err := s.Store.ApplyChanges(ctx, store.Changes{Account: acct, Upsert: r.Upserts, Events: r.Events, Delete: del}); err != nil {
					return err
				}
			}
			if page.NextToken == "" {
				break
			}
			q.PageToken = page.NextToken
		}
	}
	return nil
}
