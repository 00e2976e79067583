package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/server/store/pgtest"
	"github.com/vigil-sec/vigil/vulndb"
	"github.com/vigil-sec/vigil/vulndb/feeds/fetch"
)

// pgDSN gives the test a fresh database in a throwaway cluster (skipped without PostgreSQL unless
// VIGIL_REQUIRE_POSTGRES=1).
func pgDSN(t *testing.T) string {
	t.Helper()
	c := pgtest.Start(t)
	name, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.DSN(name)
}

// seedVulnDB imports the mirror into a vulnerability database file.
func seedVulnDB(t *testing.T, path, mirror string) {
	t.Helper()
	ctx := context.Background()
	vdb, err := vulndb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer vdb.Close()
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// apiClient serves srv over TLS on loopback and returns a client with key.
func apiClient(t *testing.T, srv *Server, key string) *client {
	t.Helper()
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.boot.CAPool, ServerName: "localhost", MinVersion: tls.VersionTLS13}}}
	return &client{t: t, base: ts.URL, key: key, http: hc}
}

// outbox lists the stored events as "type subject", in order.
func outbox(t *testing.T, s *store.Store) []string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT type, subject FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ, subj string
		if err := rows.Scan(&typ, &subj); err != nil {
			t.Fatal(err)
		}
		out = append(out, typ+" "+subj)
	}
	return out
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// findingStates maps vulnerability ID → status of a resource's stored findings.
func findingStates(t *testing.T, s *store.Store, resource string) map[string]string {
	t.Helper()
	fs, err := s.ResourceFindings(context.Background(), DefaultAccount, resource)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range fs {
		out[f.VulnerabilityID] = f.Status
	}
	return out
}

// runJobs runs ready jobs as worker until none is left and returns their kinds.
func runJobs(t *testing.T, srv *Server, worker string) []string {
	t.Helper()
	var kinds []string
	for i := 0; i < 20; i++ {
		kind, err := srv.RunOneJob(context.Background(), worker)
		if err != nil {
			t.Fatal(err)
		}
		if kind == "" {
			return kinds
		}
		kinds = append(kinds, kind)
	}
	t.Fatal("jobs keep coming")
	return nil
}

// Two servers share one PostgreSQL database and one vulnerability database file. An inventory
// submitted to A is re-evaluated by a feed update job that B runs: B first catches up with the
// inventory A stored, then writes the new finding and its event — once. A, following the same
// database version later, writes nothing more. Inventories crossing between the two stay right.
// twoServers starts two servers sharing a throwaway PostgreSQL database and a vulnerability
// database seeded with lodash's advisory from mirror (feed updates import mirror).
func twoServers(t *testing.T) (a, b *Server, mirror string) {
	dsn := pgDSN(t)
	shared, mirror := filepath.Join(t.TempDir(), "vulndb.sqlite"), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	seedVulnDB(t, shared, mirror)
	a = newTestServer(t, Config{Postgres: dsn, VulnDB: shared, FeedMirror: mirror})
	b = newTestServer(t, Config{Postgres: dsn, VulnDB: shared, FeedMirror: mirror})
	return a, b, mirror
}

func TestTwoServersFeedUpdateOnOther(t *testing.T) {
	ctx := context.Background()
	a, b, mirror := twoServers(t)
	ca := apiClient(t, a, a.AdminKey())
	cb := apiClient(t, b, a.AdminKey()) // one key store: A's key works on B

	var sub SubmissionResult
	if st := ca.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); st != 200 || sub.Created != 1 {
		t.Fatalf("submit to A: %d %+v", st, sub)
	}

	// minimist's advisory is published; an administrator asks A for an update, B's worker runs it.
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	var q FeedUpdateQueued
	if st := ca.do("POST", "/v1/vulndb/update", FeedUpdateRequest{}, &q); st != 202 || !q.Created || q.JobID == 0 {
		t.Fatalf("POST /v1/vulndb/update: %d %+v", st, q)
	}
	var again FeedUpdateQueued
	if cb.do("POST", "/v1/vulndb/update", nil, &again); again.JobID != q.JobID || again.Created {
		t.Errorf("a second request while the first waits must return it: %+v, want job %d", again, q.JobID)
	}
	if kinds := runJobs(t, b, "B/w1"); strings.Join(kinds, ",") != JobFeedUpdate+","+JobReevaluate {
		t.Fatalf("B ran %v", kinds)
	}
	if got := findingStates(t, a.Store, "web-1"); got["CVE-2021-44906"] != model.FindingActive || got["CVE-2021-23337"] != model.FindingActive {
		t.Fatalf("after B's re-evaluation: %v", got)
	}
	ev := outbox(t, a.Store)
	if n := countPrefix(ev, model.EventFindingCreated); n != 2 {
		t.Fatalf("events %v: want 2 created (lodash by A's submission, minimist by B's job)", ev)
	}
	var job JobView
	if ca.do("GET", fmt.Sprintf("/v1/jobs/%d", q.JobID), nil, &job); job.State != store.JobDone || !strings.HasPrefix(job.Worker, "B/") {
		t.Errorf("job as A sees it: %+v", job)
	}

	// A follows: its engine catches up (the stored findings already reflect the delta), and an
	// unchanged resubmission to A writes no event.
	fr, err := a.ApplyFeedUpdate(ctx)
	if err != nil || fr.Events != 0 || fr.Changes == 0 {
		t.Fatalf("A following: %+v %v", fr, err)
	}
	if ca.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); sub.Created != 0 || sub.Closed != 0 || sub.Findings != 2 {
		t.Errorf("resubmission to A: %+v", sub)
	}
	if ev2 := outbox(t, a.Store); len(ev2) != len(ev) {
		t.Errorf("A's catch-up wrote events: %v", ev2[len(ev):])
	}

	// lodash is upgraded through B (closes its finding), then the old inventory comes back
	// through A, whose engine still holds the old one: the finding must reopen.
	if cb.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.21", "1.2.0")}, &sub); sub.Closed != 1 {
		t.Fatalf("upgrade through B: %+v", sub)
	}
	if ca.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); sub.Findings != 2 {
		t.Fatalf("downgrade through A: %+v", sub)
	}
	if got := findingStates(t, a.Store, "web-1"); got["CVE-2021-23337"] != model.FindingActive {
		t.Errorf("lodash's finding after the downgrade through A: %v", got)
	}
	ev = outbox(t, a.Store)
	if n := countPrefix(ev, model.EventFindingClosed); n != 1 {
		t.Errorf("events %v: want one closed", ev)
	}
	if n := countPrefix(ev, model.EventFindingUpdated); n != 1 {
		t.Errorf("events %v: want one updated (the reopening)", ev)
	}

	// A resource first stored through A is matched against the newest database by B's next job
	// even though B never received it (B catches up from the store).
	if ca.do("PUT", "/v1/resources/host/web-2/inventory", InventorySubmission{Inventory: inventory("4.17.21", "1.2.0")}, &sub); sub.Created != 1 {
		t.Fatalf("web-2 through A: %+v", sub)
	}
	osvZip(t, mirror, "npm", minimistGHSA) // lodash's advisory withdrawn upstream
	if _, _, err := b.EnqueueFeedUpdate(ctx, FeedUpdateRequest{}); err != nil {
		t.Fatal(err)
	}
	runJobs(t, b, "B/w1")
	if got := findingStates(t, a.Store, "web-1"); got["CVE-2021-23337"] != model.FindingClosed || got["CVE-2021-44906"] != model.FindingActive {
		t.Errorf("web-1 after lodash's advisory was removed: %v", got)
	}
	if got := findingStates(t, a.Store, "web-2"); got["CVE-2021-44906"] != model.FindingActive || len(got) != 1 {
		t.Errorf("web-2: %v", got)
	}
	var st FeedStatus
	if ca.do("GET", "/v1/vulndb/status", nil, &st); st.FindingsVersion != st.Version || st.LastUpdateJob == nil || st.LastUpdateJob.State != store.JobDone {
		t.Errorf("status: %+v", st)
	}
}

// hangingFeed serves an OSV zip, except that the first request hangs until its client goes away.
func hangingFeed(t *testing.T, zip []byte) (url string, started <-chan struct{}) {
	first := make(chan struct{})
	var once sync.Once
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hang := false
		once.Do(func() { hang = true; close(first) })
		if hang {
			<-r.Context().Done()
			return
		}
		w.Write(zip)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/npm/all.zip", first
}

// A feed update whose worker dies mid-download (its context is gone, its lease is not renewed) is
// taken over by the other server once the lease expires, and completed there.
func TestJobTakenOverAfterLeaseExpiry(t *testing.T) {
	dsn := pgDSN(t)
	ctx := context.Background()
	shared, mirror := filepath.Join(t.TempDir(), "vulndb.sqlite"), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	seedVulnDB(t, shared, mirror)
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	zip, err := os.ReadFile(filepath.Join(mirror, "osv", "npm", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	url, started := hangingFeed(t, zip)
	cfg := Config{Postgres: dsn, VulnDB: shared, JobLease: 3 * time.Second,
		FeedSources: []vulndb.Source{{Name: "osv/npm", Kind: vulndb.KindOSV, URL: url}}, FeedFetcher: &fetch.Fetcher{Retries: -1}}
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfg)
	inv := inventory("4.17.15", "1.2.0")
	if _, err := a.Submit(ctx, model.Resource{Account: DefaultAccount, ID: "web-1", Type: model.ResourceHost}, &inv); err != nil {
		t.Fatal(err)
	}
	id, _, err := a.EnqueueFeedUpdate(ctx, FeedUpdateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// A's worker claims the job and hangs in the download; then A "dies".
	actx, kill := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.RunOneJob(actx, "A/w1")
	}()
	<-started
	kill()
	<-done
	j, _ := a.Store.GetJob(ctx, id)
	if j.State != store.JobRunning || j.Worker != "A/w1" {
		t.Fatalf("the dead worker's job: %+v", j)
	}
	if kind, err := b.RunOneJob(ctx, "B/w1"); kind != "" || err != nil {
		t.Fatalf("B took a job whose lease is still valid: %v %v", kind, err)
	}
	time.Sleep(3100 * time.Millisecond)
	if kinds := runJobs(t, b, "B/w1"); strings.Join(kinds, ",") != JobFeedUpdate+","+JobReevaluate {
		t.Fatalf("B ran %v after the lease expired", kinds)
	}
	j, _ = a.Store.GetJob(ctx, id)
	if j.State != store.JobDone || j.Worker != "B/w1" || j.Attempts != 2 {
		t.Errorf("the job after the takeover: %+v", j)
	}
	if got := findingStates(t, a.Store, "web-1"); got["CVE-2021-44906"] != model.FindingActive {
		t.Errorf("findings after the takeover: %v", got)
	}
	if n := countPrefix(outbox(t, a.Store), model.EventFindingCreated+" "); n != 2 {
		t.Errorf("%d created events, want 2", n)
	}
}

// fakeClock is a settable clock shared by both servers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Both servers run their full background loops (schedulers ticking every 5 ms, two workers each):
// one feed update per interval is enqueued fleet-wide, and each is run once.
func TestSchedulerOncePerIntervalAcrossServers(t *testing.T) {
	dsn := pgDSN(t)
	shared, mirror := filepath.Join(t.TempDir(), "vulndb.sqlite"), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	clk := &fakeClock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	cfg := Config{Postgres: dsn, VulnDB: shared, FeedMirror: mirror, UpdateEvery: 6 * time.Hour, ScheduleTick: 5 * time.Millisecond,
		JobPoll: 5 * time.Millisecond, FeedPoll: 20 * time.Millisecond, Now: clk.Now}
	servers := []*Server{newTestServer(t, cfg), newTestServer(t, cfg)}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.RunBackground(ctx) }()
	}
	defer func() { stop(); wg.Wait() }()
	wait := func(want int) []*store.Job {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			jobs, err := servers[0].Store.RecentJobs(context.Background(), store.JobFilter{Kind: JobFeedUpdate})
			if err != nil {
				t.Fatal(err)
			}
			settled := len(jobs) >= want
			for _, j := range jobs {
				settled = settled && j.State == store.JobDone
			}
			if settled {
				time.Sleep(100 * time.Millisecond) // twenty more scheduler ticks on each server
				jobs, _ = servers[0].Store.RecentJobs(context.Background(), store.JobFilter{Kind: JobFeedUpdate})
				return jobs
			}
			if time.Now().After(deadline) {
				t.Fatalf("feed update jobs %d, want %d done", len(jobs), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if jobs := wait(1); len(jobs) != 1 || jobs[0].Attempts != 1 {
		t.Fatalf("first interval: %d jobs (%+v)", len(jobs), jobs)
	}
	clk.Advance(time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	for {
		hk, _ := servers[0].Store.RecentJobs(context.Background(), store.JobFilter{Kind: JobHousekeep})
		if len(hk) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an hour later: %d housekeeping jobs, want 2", len(hk))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if jobs, _ := servers[0].Store.RecentJobs(context.Background(), store.JobFilter{Kind: JobFeedUpdate}); len(jobs) != 1 {
		t.Fatalf("an hour later: %d feed updates, want still 1", len(jobs))
	}
	clk.Advance(5 * time.Hour)
	if jobs := wait(2); len(jobs) != 2 {
		t.Fatalf("second interval: %d jobs", len(jobs))
	}
	// Hourly housekeeping: at the start, an hour later, and once (not five times) after the jump.
	if hk, _ := servers[0].Store.RecentJobs(context.Background(), store.JobFilter{Kind: JobHousekeep}); len(hk) != 3 {
		t.Errorf("%d housekeeping jobs, want 3", len(hk))
	}
	// The first update filled the empty database: a re-evaluation followed.
	if re, _ := servers[0].Store.RecentJobs(context.Background(), store.JobFilter{Kind: JobReevaluate}); len(re) == 0 {
		t.Error("no re-evaluation after the first feed update")
	}
}

// A source that cannot be reached: the update job fails with a line naming the URL and the
// cause, keeps the previous data, and /v1/vulndb/status shows it (SQLite, one process, the same
// worker code).
func TestUnreachableSourceInStatus(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	// A port nothing listens on: take one, then close it.
	ln := httptest.NewServer(http.NotFoundHandler())
	dead := ln.URL + "/npm/all.zip"
	ln.Close()
	srv := newTestServer(t, Config{DataDir: data, UpdateEvery: 6 * time.Hour, FeedFetcher: &fetch.Fetcher{Retries: -1},
		FeedSources: []vulndb.Source{{Name: "osv/npm", Kind: vulndb.KindOSV, URL: dead}}})
	c := apiClient(t, srv, srv.AdminKey())
	var q FeedUpdateQueued
	if st := c.do("POST", "/v1/vulndb/update", nil, &q); st != 202 {
		t.Fatalf("POST: %d", st)
	}
	if kind, err := srv.RunOneJob(ctx, "w1"); kind != JobFeedUpdate || err != nil {
		t.Fatalf("run: %v %v", kind, err)
	}
	var st FeedStatus
	if code := c.do("GET", "/v1/vulndb/status", nil, &st); code != 200 {
		t.Fatalf("status: %d", code)
	}
	j := st.LastUpdateJob
	want := "osv/npm: cannot reach " + dead + ": connection refused"
	if j == nil || j.ID != q.JobID || j.State != store.JobPending || !strings.Contains(j.LastError, want) {
		t.Fatalf("last update job %+v, want pending for a retry with %q", j, want)
	}
	if !st.Stale || len(st.Sources) != 1 || st.Sources[0].Name != "osv/npm" || !st.Sources[0].Stale ||
		!strings.Contains(st.Sources[0].LastError, "connection refused") || st.Sources[0].AgeSeconds != nil {
		t.Errorf("sources %+v stale %v", st.Sources, st.Stale)
	}
	if !strings.Contains(strings.Join(st.Warnings, "\n"), want) {
		t.Errorf("warnings %q do not say why", st.Warnings)
	}
	if st.NextScheduledUpdate != nil {
		t.Errorf("nothing was scheduled yet, next %v", st.NextScheduledUpdate)
	}
	// Jobs are listed for the administrator, refused to other accounts' keys and read-only keys.
	var list struct{ Jobs []JobView }
	if code := c.do("GET", "/v1/jobs?kind=vulndb.update", nil, &list); code != 200 || len(list.Jobs) != 1 {
		t.Errorf("GET /v1/jobs: %d %+v", code, list.Jobs)
	}
	if code := c.do("GET", "/v1/jobs?state=bogus", nil, nil); code != 422 {
		t.Errorf("a bad state filter: %d", code)
	}
}

// The server's administrator account alone may queue updates and see jobs; a read-only key of it
// may read the status.
func TestFeedEndpointsAuthorization(t *testing.T) {
	ctx := context.Background()
	srv := newTestServer(t, Config{})
	if err := srv.Store.PutAccount(ctx, model.Account{ID: "tenant", Name: "Tenant", Role: model.AccountStandalone, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	key := func(acct string, role auth.Role) string {
		raw, sk, err := auth.Issue(auth.Hasher{}, acct, role, "test", time.Now(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Store.CreateAPIKey(ctx, toStoreKey(sk)); err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tenantAdmin := apiClient(t, srv, key("tenant", auth.RoleAdmin))
	rootReader := apiClient(t, srv, key(DefaultAccount, auth.RoleReadOnly))
	for _, c := range []struct {
		cl           *client
		method, path string
		want         int
	}{
		{tenantAdmin, "POST", "/v1/vulndb/update", 403},
		{tenantAdmin, "GET", "/v1/vulndb/status", 403},
		{tenantAdmin, "GET", "/v1/jobs", 403},
		{rootReader, "POST", "/v1/vulndb/update", 403},
		{rootReader, "GET", "/v1/jobs", 403},
		{rootReader, "GET", "/v1/vulndb/status", 200},
	} {
		var out map[string]any
		if got := c.cl.do(c.method, c.path, nil, &out); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	if jobs, _ := srv.Store.RecentJobs(ctx, store.JobFilter{}); len(jobs) != 0 {
		t.Errorf("refused requests queued %d jobs", len(jobs))
	}
}

// Two servers apply the same new database version at the same moment, each knowing half of the
// fleet from its own submissions: the fleet lock makes one of them write every new finding and
// event, and the other find them written. (Without it both would reconcile from the same stored
// state and write each created event twice.)
func TestConcurrentDeltaWritesEventsOnce(t *testing.T) {
	dsn := pgDSN(t)
	ctx := context.Background()
	shared, mirror := filepath.Join(t.TempDir(), "vulndb.sqlite"), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	seedVulnDB(t, shared, mirror)
	a := newTestServer(t, Config{Postgres: dsn, VulnDB: shared})
	b := newTestServer(t, Config{Postgres: dsn, VulnDB: shared})
	const hosts = 40
	for i := 0; i < hosts; i++ {
		srv := []*Server{a, b}[i%2]
		inv := inventory("4.17.15", "1.2.0")
		if _, err := srv.Submit(ctx, model.Resource{Account: DefaultAccount, ID: fmt.Sprintf("web-%d", i), Type: model.ResourceHost}, &inv); err != nil {
			t.Fatal(err)
		}
	}
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	if _, err := a.VulnDB.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]FeedResult, 2)
	for i, srv := range []*Server{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if results[i], err = srv.ApplyFeedUpdate(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := countPrefix(outbox(t, a.Store), model.EventFindingCreated+" "); n != 2*hosts {
		t.Errorf("%d created events, want %d (lodash and minimist on each host, once)", n, 2*hosts)
	}
	if results[0].Events+results[1].Events != hosts {
		t.Errorf("the two passes wrote %d and %d events, want %d in all", results[0].Events, results[1].Events, hosts)
	}
	for i := 0; i < hosts; i++ {
		if got := findingStates(t, a.Store, fmt.Sprintf("web-%d", i)); len(got) != 2 || got["CVE-2021-44906"] != model.FindingActive {
			t.Fatalf("web-%d: %v", i, got)
		}
	}
}

// One server on SQLite runs the same loops: a feed update asked for through the API is fetched by
// its workers and re-evaluates the fleet, with no process but this one.
func TestFeedUpdateJobSQLite(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	seedVulnDB(t, filepath.Join(data, "vulndb.sqlite"), mirror)
	srv := newTestServer(t, Config{DataDir: data, FeedMirror: mirror, JobPoll: 10 * time.Millisecond})
	c := apiClient(t, srv, srv.AdminKey())
	var sub SubmissionResult
	if c.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); sub.Created != 1 {
		t.Fatalf("submit: %+v", sub)
	}
	bg, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.RunBackground(bg); close(done) }()
	defer func() { stop(); <-done }()
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	var q FeedUpdateQueued
	if st := c.do("POST", "/v1/vulndb/update", FeedUpdateRequest{Force: true}, &q); st != 202 {
		t.Fatalf("POST: %d", st)
	}
	deadline := time.Now().Add(20 * time.Second)
	for findingStates(t, srv.Store, "web-1")["CVE-2021-44906"] != model.FindingActive {
		if time.Now().After(deadline) {
			t.Fatalf("no finding for the new advisory; jobs: %+v", mustJobs(t, srv))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var j JobView
	if c.do("GET", fmt.Sprintf("/v1/jobs/%d", q.JobID), nil, &j); j.State != store.JobDone || string(j.Payload) != `{"force":true}` {
		t.Errorf("the update job: %+v", j)
	}
	if n := countPrefix(outbox(t, srv.Store), model.EventFindingCreated+" "); n != 2 {
		t.Errorf("%d created events, want 2", n)
	}
}

func mustJobs(t *testing.T, srv *Server) []store.Job {
	jobs, err := srv.Store.RecentJobs(context.Background(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]store.Job, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, *j)
	}
	return out
}

// A process keeps the fleet lock shared across submissions, but lets it go as soon as another
// process waits for it exclusively: well before the hold's idle timeout.
func TestSharedHoldYieldsToWaiter(t *testing.T) {
	ctx := context.Background()
	a, b, _ := twoServers(t)
	ca := apiClient(t, a, a.AdminKey())
	var sub SubmissionResult
	if st := ca.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); st != 200 {
		t.Fatalf("submit to A: %d", st)
	}
	a.holdMu.Lock()
	held := a.hold.release != nil
	a.holdMu.Unlock()
	if !held {
		t.Fatal("A does not hold the fleet lock after a submission")
	}
	start := time.Now()
	release, err := b.lockExclusive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited >= holdIdle/2 {
		t.Errorf("B waited %s for the exclusive lock: A kept its hold until idle", waited)
	}
	release()
	// A takes the lock shared again for its next submission.
	if st := ca.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.21", "1.2.0")}, &sub); st != 200 || sub.Closed != 1 {
		t.Fatalf("A after B's exclusive hold: %d %+v", st, sub)
	}
}

// A feed delta written a few rows per transaction (two transactions at a time on PostgreSQL), one
// of which fails (a trigger refuses one host's finding): the pass reports the error and does not
// record the version, and the next pass writes what is missing, every finding and event exactly
// once.
func TestDeltaWriteFailureRetriedSQLite(t *testing.T) { deltaWriteFailure(t, "") }

func TestDeltaWriteFailureRetriedPostgres(t *testing.T) { deltaWriteFailure(t, pgDSN(t)) }

func deltaWriteFailure(t *testing.T, dsn string) {
	ctx := context.Background()
	defer func(n int) { deltaWriteRows = n }(deltaWriteRows)
	deltaWriteRows = 3 // a batch of one or two hosts: many transactions
	shared, mirror := filepath.Join(t.TempDir(), "vulndb.sqlite"), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	seedVulnDB(t, shared, mirror)
	srv := newTestServer(t, Config{Postgres: dsn, DataDir: t.TempDir(), VulnDB: shared})
	const hosts = 40
	for i := 0; i < hosts; i++ {
		inv := inventory("4.17.15", "1.2.0")
		if _, err := srv.Submit(ctx, model.Resource{Account: DefaultAccount, ID: fmt.Sprintf("web-%d", i), Type: model.ResourceHost}, &inv); err != nil {
			t.Fatal(err)
		}
	}
	allow := refuseFindings(t, srv, dsn, "web-17")
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	if _, err := srv.VulnDB.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ApplyFeedUpdate(ctx); err == nil || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("the pass with a failing write: %v", err)
	}
	allow()
	if _, err := srv.ApplyFeedUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(outbox(t, srv.Store), model.EventFindingCreated+" "); n != 2*hosts {
		t.Errorf("%d created events, want %d (lodash and minimist on each host, once)", n, 2*hosts)
	}
	for i := 0; i < hosts; i++ {
		if got := findingStates(t, srv.Store, fmt.Sprintf("web-%d", i)); len(got) != 2 || got["CVE-2021-44906"] != model.FindingActive {
			t.Errorf("web-%d: %v", i, got)
		}
	}
}

// lodashMinimistServer is a server on SQLite (dsn empty) or PostgreSQL whose vulnerability database
// holds the lodash and minimist advisories.
func lodashMinimistServer(t *testing.T, dsn string) *Server {
	shared, mirror := filepath.Join(t.TempDir(), "vulndb.sqlite"), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	seedVulnDB(t, shared, mirror)
	return newTestServer(t, Config{Postgres: dsn, DataDir: t.TempDir(), VulnDB: shared})
}

// refuseFindings makes the store refuse, with a trigger, every finding written for the resources
// (a real failure in the middle of a write); allow lifts it.
func refuseFindings(t *testing.T, srv *Server, dsn string, resources ...string) (allow func()) {
	t.Helper()
	ctx := context.Background()
	db := srv.Store.DB()
	in := "('" + strings.Join(resources, "', '") + "')"
	// Inserts and updates: SQLite's store updates an existing finding with a plain UPDATE.
	refuse := []string{`CREATE TRIGGER refuse_findings BEFORE INSERT ON findings WHEN NEW.resource_id IN ` + in + `
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
		`CREATE TRIGGER refuse_finding_updates BEFORE UPDATE ON findings WHEN NEW.resource_id IN ` + in + `
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`}
	drop := []string{`DROP TRIGGER refuse_findings`, `DROP TRIGGER refuse_finding_updates`}
	if dsn != "" {
		refuse = []string{`CREATE OR REPLACE FUNCTION refuse_findings() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF NEW.resource_id IN ` + in + ` THEN RAISE EXCEPTION 'refused by the test'; END IF;
		   RETURN NEW;
		 END $$`,
			`CREATE TRIGGER refuse_findings BEFORE INSERT OR UPDATE ON findings FOR EACH ROW EXECUTE FUNCTION refuse_findings()`}
		drop = []string{`DROP TRIGGER refuse_findings ON findings`}
	}
	for _, stmt := range refuse {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for _, stmt := range drop {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A submission whose findings cannot be written fails. The resource's findings are then written by
// the same inventory submitted again (web-1), or by the next feed pass (web-2, on SQLite too, where
// a pass otherwise trusts the engine to hold every stored inventory): the engine must not take the
// failed submission for the stored state.
func TestSubmissionWriteFailureRetriedSQLite(t *testing.T) { submissionWriteFailure(t, "") }

func TestSubmissionWriteFailureRetriedPostgres(t *testing.T) { submissionWriteFailure(t, pgDSN(t)) }

func submissionWriteFailure(t *testing.T, dsn string) {
	ctx := context.Background()
	srv := lodashMinimistServer(t, dsn)
	fixed, vulnerable := inventory("4.17.21", "1.2.6"), inventory("4.17.15", "1.2.0")
	hosts := []model.Resource{{Account: DefaultAccount, ID: "web-1", Type: model.ResourceHost}, {Account: DefaultAccount, ID: "web-2", Type: model.ResourceHost}}
	for _, res := range hosts {
		if sub, err := srv.Submit(ctx, res, &fixed); err != nil || sub.Findings != 0 {
			t.Fatalf("%s, the fixed inventory: %+v, %v", res.ID, sub, err)
		}
	}
	allow := refuseFindings(t, srv, dsn, "web-1", "web-2")
	for _, res := range hosts {
		if _, err := srv.Submit(ctx, res, &vulnerable); err == nil || !strings.Contains(err.Error(), "refused by the test") {
			t.Fatalf("%s, the submission with a failing write: %v", res.ID, err)
		}
	}
	allow()
	if sub, err := srv.Submit(ctx, hosts[0], &vulnerable); err != nil || sub.Created != 2 {
		t.Fatalf("web-1, the same inventory again: %+v, %v; want 2 findings created", sub, err)
	}
	fr, err := srv.ApplyFeedUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fr.Synced != 1 || fr.Events != 2 {
		t.Errorf("the feed pass: %+v, want web-2 evaluated from the store with 2 events", fr)
	}
	for _, res := range hosts {
		got := findingStates(t, srv.Store, res.ID)
		if got["CVE-2021-44906"] != model.FindingActive || got["CVE-2021-23337"] != model.FindingActive {
			t.Errorf("%s: findings %v", res.ID, got)
		}
	}
	if n := countPrefix(outbox(t, srv.Store), model.EventFindingCreated+" "); n != 4 {
		t.Errorf("%d created events, want 4", n)
	}
}

// A resource removal whose closes cannot be written leaves the resource as it was, and removing it
// again closes its findings: marked removed with findings left open, the retry would have found
// nothing to do.
func TestRemovalWriteFailureRetriedSQLite(t *testing.T) { removalWriteFailure(t, "") }

func TestRemovalWriteFailureRetriedPostgres(t *testing.T) { removalWriteFailure(t, pgDSN(t)) }

func removalWriteFailure(t *testing.T, dsn string) {
	ctx := context.Background()
	srv := lodashMinimistServer(t, dsn)
	res := model.Resource{Account: DefaultAccount, ID: "web-1", Type: model.ResourceHost}
	inv := inventory("4.17.15", "1.2.0")
	if sub, err := srv.Submit(ctx, res, &inv); err != nil || sub.Created != 2 {
		t.Fatalf("submit: %+v, %v", sub, err)
	}
	stored := func() model.Resource {
		r, err := srv.Store.GetResource(ctx, DefaultAccount, "web-1")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	allow := refuseFindings(t, srv, dsn, "web-1")
	if err := srv.RemoveResource(ctx, stored()); err == nil || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("the removal with a failing write: %v", err)
	}
	if r := stored(); r.RemovedAt != nil {
		t.Fatalf("the failed removal marked the resource removed at %v", r.RemovedAt)
	}
	allow()
	if err := srv.RemoveResource(ctx, stored()); err != nil {
		t.Fatal(err)
	}
	if r := stored(); r.RemovedAt == nil {
		t.Error("the resource is not marked removed")
	}
	if got := findingStates(t, srv.Store, "web-1"); got["CVE-2021-44906"] != model.FindingClosed || got["CVE-2021-23337"] != model.FindingClosed {
		t.Errorf("findings after the removal: %v", got)
	}
	if n := countPrefix(outbox(t, srv.Store), model.EventFindingClosed+" "); n != 2 {
		t.Errorf("%d closed events, want 2", n)
	}
}
