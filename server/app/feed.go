package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/server/reeval"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// FeedResult says what one pass over the vulnerability database's change log did.
type FeedResult struct {
	From, To  vulndb.Version
	Changes   int // change-log entries read
	Resources int // resources re-evaluated
	Events    int // events written
}

// ApplyFeedUpdate re-evaluates what changed in the vulnerability database since the last pass:
// only the resources holding a package whose advisories were added, changed or withdrawn, and only
// those packages. It does not rescan the fleet.
func (s *Server) ApplyFeedUpdate(ctx context.Context) (FeedResult, error) {
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
	if err := s.VulnDB.Refresh(ctx); err != nil { // another process (vigil db update) may have written it
		return FeedResult{}, err
	}
	changes, to, err := s.VulnDB.Changes(ctx, s.dbVersion)
	if err != nil {
		return FeedResult{}, err
	}
	res := FeedResult{From: s.dbVersion, To: to, Changes: len(changes)}
	if len(changes) == 0 {
		s.dbVersion = to
		return res, nil
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	// The engine calls load from several goroutines, only for resources whose hits changed, and
	// says which stored findings it examines. Rules are read once per account.
	var (
		rulesMu sync.Mutex
		rulesOf = map[string][]model.SuppressionRule{}
	)
	load := func(ctx context.Context, ref reeval.Ref, need *reeval.Need) ([]model.Finding, []model.SuppressionRule, error) {
		var (
			prev []model.Finding
			err  error
		)
		if need == nil {
			prev, err = s.Store.ResourceFindings(ctx, ref.Account, ref.ResourceID)
		} else {
			prev, err = s.Store.ResourceFindingsNamed(ctx, ref.Account, ref.ResourceID, need.IDs, need.Vulns)
		}
		if err != nil {
			return nil, nil, err
		}
		rulesMu.Lock()
		defer rulesMu.Unlock()
		rules, ok := rulesOf[ref.Account]
		if !ok {
			if rules, err = s.Store.ListSuppressionRules(ctx, []string{ref.Account}); err != nil {
				return nil, nil, err
			}
			rulesOf[ref.Account] = rules
		}
		return prev, rules, nil
	}
	outs, err := s.engine.FeedDelta(ctx, reeval.DeltaFromChanges(changes), load, now)
	if err != nil {
		return res, fmt.Errorf("re-evaluating after a feed update: %w", err)
	}
	// Resources of one account are written a few thousand rows per transaction: one transaction
	// per resource would cost a commit each (10,000 of them for a Debian advisory).
	var batch store.Changes
	flush := func() error {
		if batch.Account == "" {
			return nil
		}
		err := s.Store.ApplyChanges(ctx, batch)
		batch = store.Changes{}
		return err
	}
	for _, o := range outs {
		if o.Unchanged {
			continue
		}
		res.Resources++
		res.Events += len(o.Result.Events)
		if batch.Account != o.Ref.Account || len(batch.Upsert)+len(batch.Events) > 4000 {
			if err := flush(); err != nil {
				return res, err
			}
			batch = store.Changes{Account: o.Ref.Account, ObservedAt: o.At}
		}
		batch.Upsert = append(batch.Upsert, o.Result.Upserts...)
		batch.Observed = append(batch.Observed, o.Result.Observed...)
		batch.Delete = append(batch.Delete, o.Result.Deletes...)
		batch.Events = append(batch.Events, o.Result.Events...)
	}
	if err := flush(); err != nil {
		return res, err
	}
	s.dbVersion = to
	s.log.Info("feed update applied", "from", res.From, "to", res.To, "changes", res.Changes,
		"resources", res.Resources, "events", res.Events)
	return res, nil
}

// WatchFeed applies feed updates as the vulnerability database changes (it is polled every
// interval: `vigil db update` in another process writes the same file), until ctx ends.
func (s *Server) WatchFeed(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.ApplyFeedUpdate(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("feed update", "error", err)
			}
		}
	}
}

// UpdateFeeds fetches the feeds (conditionally) and then re-evaluates what changed. Sources that
// cannot be reached keep their previous data; the error names them.
func (s *Server) UpdateFeeds(ctx context.Context, sources []vulndb.Source) (vulndb.UpdateReport, error) {
	rep, uerr := s.VulnDB.Update(ctx, vulndb.UpdateConfig{Sources: sources, UserAgent: "vigil-server"}, nil)
	for name, err := range rep.Failed {
		s.log.Error("vulnerability feed unreachable; its previous data is kept", "source", name, "error", err)
	}
	if _, err := s.ApplyFeedUpdate(ctx); err != nil {
		return rep, err
	}
	return rep, uerr
}

// ScheduleFeedUpdates runs UpdateFeeds now and then every interval until ctx ends.
func (s *Server) ScheduleFeedUpdates(ctx context.Context, sources []vulndb.Source, interval time.Duration) {
	for {
		if _, err := s.UpdateFeeds(ctx, sources); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduled feed update incomplete", "error", err, "next", s.now().Add(interval))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// Housekeep applies what time alone changes, for every resource: suppression rules that expired
// (their findings become active again) and retention (closed findings after 30 days, those of
// removed resources after 3 days are deleted).
func (s *Server) Housekeep(ctx context.Context) error {
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
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
