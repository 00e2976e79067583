package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// Job kinds the server's workers run. Event delivery is not among them: the outbox has its own
// leases (store.ClaimEvents), so every process's dispatcher shares the work without jobs.
const (
	// JobFeedUpdate fetches the vulnerability feeds (or imports the configured mirror) and then
	// enqueues a JobReevaluate. Fleet-wide at most one waits or runs (dedupe key = the kind).
	JobFeedUpdate = "vulndb.update"
	// JobReevaluate applies the vulnerability database's changes to the stored findings (one per
	// fleet at a time, dedupe key = the kind).
	JobReevaluate = "reeval.feed"
	// JobHousekeep expires suppression rules and old findings, and purges finished jobs.
	JobHousekeep = "housekeeping"
	// JobAgentsRefresh brings agent ping status and host coverage up to date (every minute).
	JobAgentsRefresh = "agents.refresh"
)

var jobKinds = []string{JobFeedUpdate, JobReevaluate, JobHousekeep, JobAgentsRefresh}

// stateFindingsVersion names the store watermark of the vulnerability database version whose
// changes the stored findings reflect (raised by whoever applies a delta).
const stateFindingsVersion = "reeval.vulndb_version"

// Defaults of the job settings in Config.
const (
	defaultWorkers        = 2
	defaultJobLease       = 2 * time.Minute
	defaultJobPoll        = time.Second
	defaultFeedPoll       = 30 * time.Second
	defaultHousekeepEvery = time.Hour
	agentsRefreshEvery    = time.Minute
	defaultScheduleTick   = 15 * time.Second
	defaultFeedMaxAge     = 48 * time.Hour
	jobRetention          = 7 * 24 * time.Hour
)

// FeedUpdateRequest is the body of POST /v1/vulndb/update (and a JobFeedUpdate's payload).
type FeedUpdateRequest struct {
	// Force ignores ETag / Last-Modified and fetches everything.
	Force bool `json:"force,omitempty"`
}

func (s *Server) workers() int {
	switch {
	case s.cfg.Workers < 0:
		return 0
	case s.cfg.Workers == 0:
		return defaultWorkers
	}
	return s.cfg.Workers
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// workerID names this process's workers in job rows: host, pid and a random suffix, so that two
// processes on one host (or one restarted with the same pid) never share an identity.
func workerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", firstNonEmpty(host, "vigil"), os.Getpid(), hex.EncodeToString(b))
}

// RunBackground runs the process's share of the server's background work until ctx ends: the job
// workers, the schedules (feed updates every Config.UpdateEvery, housekeeping every
// Config.HousekeepEvery; whichever process gets there first enqueues, once per interval
// fleet-wide) and the watcher that notices vulnerability database changes made outside the
// server. It returns when every goroutine has stopped.
func (s *Server) RunBackground(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < s.workers(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.workLoop(ctx, fmt.Sprintf("%s/w%d", s.worker, i+1))
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.scheduleLoop(ctx) }()
	go func() { defer wg.Done(); s.watchLoop(ctx) }()
	wg.Wait()
}

// poke wakes this process's idle workers (after it enqueued something).
func (s *Server) poke() {
	for {
		select {
		case s.wake <- struct{}{}:
		default:
			return
		}
	}
}

func (s *Server) workLoop(ctx context.Context, worker string) {
	poll := orDefault(s.cfg.JobPoll, defaultJobPoll)
	for ctx.Err() == nil {
		kind, err := s.RunOneJob(ctx, worker)
		if err != nil && ctx.Err() == nil {
			s.log.Error("job queue", "worker", worker, "error", err)
		}
		if kind != "" {
			continue
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-time.After(poll):
		}
	}
}

// RunOneJob claims one ready job as worker and runs it: done on success, retried with backoff or
// dead on failure. While it runs its lease is renewed; a process that dies leaves the lease to
// expire, and another process's worker claims the job again. It returns the kind of the job it
// ran, "" when nothing was ready.
func (s *Server) RunOneJob(ctx context.Context, worker string) (kind string, err error) {
	lease := orDefault(s.cfg.JobLease, defaultJobLease)
	j, err := s.Store.Claim(ctx, worker, jobKinds, lease)
	if errors.Is(err, store.ErrNoJob) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	jctx, cancel := context.WithCancel(ctx)
	beat := make(chan struct{})
	go func() {
		defer close(beat)
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				if err := s.Store.Heartbeat(jctx, j.ID, worker, lease); errors.Is(err, store.ErrLeaseLost) {
					s.log.Warn("job lease lost; abandoning it", "job", j.ID, "kind", j.Kind)
					cancel()
					return
				}
			}
		}
	}()
	start := time.Now()
	runErr := s.runJob(jctx, j)
	cancel()
	<-beat
	if ctx.Err() != nil {
		// Shutting down: the lease expires and another process (or this one, restarted) takes over.
		return j.Kind, nil
	}
	if runErr == nil {
		s.log.Info("job done", "job", j.ID, "kind", j.Kind, "attempt", j.Attempts, "took", time.Since(start).Round(time.Millisecond))
		return j.Kind, s.Store.Complete(ctx, j.ID, worker)
	}
	dead, err := s.Store.Fail(ctx, j.ID, worker, runErr)
	s.log.Error("job failed", "job", j.ID, "kind", j.Kind, "attempt", j.Attempts, "dead", dead, "error", runErr)
	return j.Kind, err
}

func (s *Server) runJob(ctx context.Context, j *store.Job) error {
	switch j.Kind {
	case JobFeedUpdate:
		var req FeedUpdateRequest
		if len(j.Payload) > 0 {
			if err := json.Unmarshal(j.Payload, &req); err != nil {
				return store.Permanent(fmt.Errorf("bad payload: %w", err))
			}
		}
		return s.runFeedUpdate(ctx, req)
	case JobReevaluate:
		_, err := s.ApplyFeedUpdate(ctx)
		return err
	case JobAgentsRefresh:
		accts, err := s.allAccounts(ctx)
		if err != nil {
			return err
		}
		_, err = s.Agents.Refresh(ctx, accts)
		return err
	case JobHousekeep:
		if err := s.Housekeep(ctx); err != nil {
			return err
		}
		if _, err := s.Store.PurgeJobs(ctx, s.now().Add(-jobRetention)); err != nil {
			return err
		}
		// The planner's statistics follow the fleet's growth (SQLite keeps none unless asked;
		// nothing to do when little changed). Outside the fleet lock: submissions go on.
		return s.Store.Optimize(ctx)
	}
	return store.Permanent(fmt.Errorf("unknown job kind %q", j.Kind))
}

// EnqueueFeedUpdate queues a feed update (or returns the one already waiting or running).
func (s *Server) EnqueueFeedUpdate(ctx context.Context, req FeedUpdateRequest) (id int64, created bool, err error) {
	payload, _ := json.Marshal(req)
	id, created, err = s.Store.Enqueue(ctx, store.JobSpec{Kind: JobFeedUpdate, Payload: payload, DedupeKey: JobFeedUpdate, MaxAttempts: 3})
	if err == nil {
		s.poke()
	}
	return id, created, err
}

func (s *Server) enqueueReevaluation(ctx context.Context) (int64, error) {
	id, _, err := s.Store.Enqueue(ctx, store.JobSpec{Kind: JobReevaluate, DedupeKey: JobReevaluate})
	if err == nil {
		s.poke()
	}
	return id, err
}

// runFeedUpdate fetches the configured sources (or imports the mirror). A source that cannot be
// reached keeps its previous data and records its error in the database's source state; the job
// fails with every such error (and is retried), after queueing the re-evaluation of whatever the
// other sources changed.
func (s *Server) runFeedUpdate(ctx context.Context, req FeedUpdateRequest) error {
	if len(s.cfg.FeedSources) == 0 && s.cfg.FeedMirror == "" {
		return store.Permanent(errors.New("no vulnerability feed sources configured (and no mirror directory)"))
	}
	// Import on top of the fleet's newest database, not behind it (another host's process may have
	// published one since this process last looked).
	if err := s.followPublished(ctx, adoptOrPublish); err != nil {
		return err
	}
	before, err := s.VulnDB.Version(ctx)
	if err != nil {
		return err
	}
	var rep vulndb.UpdateReport
	var uerr error
	if s.cfg.FeedMirror != "" {
		rep, uerr = s.VulnDB.ImportMirror(ctx, s.cfg.FeedMirror, vulndb.MirrorOptions{}, nil)
	} else {
		rep, uerr = s.VulnDB.Update(ctx, vulndb.UpdateConfig{Sources: s.cfg.FeedSources, Force: req.Force,
			NVDAPIKey: s.cfg.NVDAPIKey, UserAgent: "vigil-server", Fetcher: s.cfg.FeedFetcher}, nil)
	}
	after, err := s.VulnDB.Version(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	if after != before {
		// The other hosts' processes adopt it before they apply it.
		if err := s.followPublished(context.WithoutCancel(ctx), adoptOrPublish); err != nil {
			return fmt.Errorf("publishing the updated vulnerability database: %w", err)
		}
		if _, err := s.enqueueReevaluation(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("queueing the re-evaluation: %w", err)
		}
	}
	if uerr == nil {
		s.log.Info("vulnerability feeds updated", "changed", len(rep.Results), "notModified", len(rep.NotModified), "version", after)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	names := make([]string, 0, len(rep.Failed))
	for n := range rep.Failed {
		names = append(names, n)
	}
	sort.Strings(names)
	msgs := make([]string, 0, len(names))
	for _, n := range names {
		s.log.Error("vulnerability feed unreachable; its previous data is kept", "source", n, "error", rep.Failed[n])
		msgs = append(msgs, describeFeedError(n, s.sourceURL(n), rep.Failed[n]))
	}
	total := len(s.cfg.FeedSources)
	if s.cfg.FeedMirror != "" {
		total = len(rep.Results) + len(rep.NotModified) + len(rep.Failed)
	}
	return fmt.Errorf("%d of %d feed sources failed (their previous data is kept): %s", len(names), total, strings.Join(msgs, "; "))
}

func (s *Server) sourceURL(name string) string {
	for _, src := range s.cfg.FeedSources {
		if src.Name == name {
			return src.URL
		}
	}
	return ""
}

// describeFeedError says in a line why a source failed: "cannot reach URL: connection refused"
// for network failures, else the error as the updater gave it.
func describeFeedError(name, url string, err error) string {
	var errno syscall.Errno
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case url == "":
	case errors.As(err, &dns):
		return fmt.Sprintf("%s: cannot reach %s: cannot resolve %s", name, url, dns.Name)
	case errors.As(err, &errno):
		return fmt.Sprintf("%s: cannot reach %s: %s", name, url, errno.Error())
	case errors.As(err, &op):
		return fmt.Sprintf("%s: cannot reach %s: %v", name, url, op.Err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("%s: cannot reach %s: timed out", name, url)
	}
	return fmt.Sprintf("%s: %v", name, err)
}

// scheduleLoop enqueues the periodic jobs when they are due. Every process runs it; the store's
// compare-and-set lets one process enqueue per interval.
func (s *Server) scheduleLoop(ctx context.Context) {
	tick := orDefault(s.cfg.ScheduleTick, defaultScheduleTick)
	for {
		s.scheduleDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
	}
}

func (s *Server) scheduleDue(ctx context.Context) {
	if s.cfg.UpdateEvery > 0 && (len(s.cfg.FeedSources) > 0 || s.cfg.FeedMirror != "") {
		payload, _ := json.Marshal(FeedUpdateRequest{})
		if _, ok, err := s.Store.EnqueueDue(ctx, JobFeedUpdate, s.cfg.UpdateEvery,
			store.JobSpec{Kind: JobFeedUpdate, Payload: payload, DedupeKey: JobFeedUpdate, MaxAttempts: 3}); err != nil && ctx.Err() == nil {
			s.log.Error("scheduling the feed update", "error", err)
		} else if ok {
			s.poke()
		}
	}
	for _, p := range []struct {
		kind  string
		every time.Duration
	}{
		{JobHousekeep, orDefault(s.cfg.HousekeepEvery, defaultHousekeepEvery)},
		{JobAgentsRefresh, agentsRefreshEvery},
	} {
		// A short job that cannot usefully retry: the next interval's run is the retry.
		if _, ok, err := s.Store.EnqueueDue(ctx, p.kind, p.every, store.JobSpec{Kind: p.kind, DedupeKey: p.kind, MaxAttempts: 1}); err != nil && ctx.Err() == nil {
			s.log.Error("scheduling a job", "kind", p.kind, "error", err)
		} else if ok {
			s.poke()
		}
	}
}

// watchLoop notices vulnerability database changes nobody has applied yet (`vigil db update --db`
// or a bundle import by hand, or a feed update job that died before queueing its re-evaluation)
// and queues a re-evaluation; and it brings this process's engine up to a version another
// process applied, so that its next submission does not pay for it.
func (s *Server) watchLoop(ctx context.Context) {
	poll := orDefault(s.cfg.FeedPoll, defaultFeedPoll)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
		if err := s.followFeed(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("following the vulnerability database", "error", err)
		}
	}
}

func (s *Server) followFeed(ctx context.Context) error {
	if err := s.followPublished(ctx, adoptOrPublish); err != nil {
		return err
	}
	v, err := s.VulnDB.Version(ctx)
	if err != nil {
		return err
	}
	applied, _, err := s.Store.State(ctx, stateFindingsVersion)
	if err != nil {
		return err
	}
	s.submitMu.Lock()
	behind := v != s.dbVersion || !s.engineSynced.Load() // an emptied engine waits for a pass too
	s.submitMu.Unlock()
	if int64(v) < applied {
		s.log.Warn("this process's vulnerability database is behind the stored findings (a process of another host applied a newer one it has not published, or processes of one host do not share their file)",
			"version", v, "findingsVersion", applied, "file", s.VulnDB.Path())
	}
	switch {
	case int64(v) > applied:
		_, err = s.enqueueReevaluation(ctx)
	case behind:
		_, err = s.ApplyFeedUpdate(ctx)
	}
	return err
}
