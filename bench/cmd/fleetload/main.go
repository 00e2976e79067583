// Command fleetload measures Vigil's server at fleet scale through its real HTTP API: it starts
// the server in this process (the same app.New as `vigil server`, over TLS 1.3 on loopback, every
// request authenticated with the administrator key), loads a synthetic fleet (bench/fleet: hosts of
// 500 real Debian, npm and PyPI packages) and prints each figure of the server issue against its goal:
//
//   - first load: every host new (the fleet's initial findings and events);
//   - an unchanged inventory resubmitted: server time per request (handler, JSON decoding included);
//   - sustained submissions per second: unchanged only, and a mix of 90% unchanged, 9% changed
//     (one to three packages upgraded) and 1% new hosts;
//   - a feed delta of 1,000 modified advisories, and one new advisory affecting 1% of hosts, from
//     the vulnerability database's change log to findings and outbox events in the store;
//   - listing findings with filters through the API, p50 and p99;
//   - a restart: the time until the server is ready again.
//
// CPU times are the whole process's (server and load generator), plus PostgreSQL's processes with
// -postmaster-pid: on a shared machine they tell work apart from waiting. Usage:
//
//	fleetload -dir /tmp/x [-postgres URL] [-hosts 10000] [-clients 16] [-seconds 20]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/bench/fleet"
	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.dir, "dir", "", "data directory (created; the vulnerability database is built there)")
	flag.StringVar(&cfg.postgres, "postgres", "", "PostgreSQL URL; empty: SQLite in -dir")
	flag.IntVar(&cfg.hosts, "hosts", 10_000, "hosts in the fleet")
	flag.IntVar(&cfg.pkgs, "packages", 500, "packages per host")
	flag.IntVar(&cfg.clients, "clients", 16, "concurrent API clients")
	flag.Float64Var(&cfg.seconds, "seconds", 20, "duration of each sustained-rate phase")
	flag.StringVar(&cfg.pgPidFile, "postmaster-pid", "", "PostgreSQL's postmaster.pid: CPU figures then include the cluster's processes")
	flag.StringVar(&cfg.profile, "cpuprofile", "", "write a CPU profile here (of the -profile-phase phase, or of the whole run)")
	flag.StringVar(&cfg.profilePhase, "profile-phase", "", "profile only this phase: load, settle, unchanged, sustained, mix, delta, one, list, floor, restart")
	flag.IntVar(&cfg.rerate, "rerate-shift", 0, "shifts the severities the feed delta gives its re-rated advisories, and the ID of the one new\n"+
		"advisory (a reused directory's delta re-rates them again, and adds another, with a new shift)")
	flag.DurationVar(&cfg.observeEvery, "observe-every", 0, "granularity of findings' lastObservedAt (0: the server's default)")
	flag.StringVar(&cfg.phases, "phases", "", "run only these phases, comma-separated (default all); with -dir holding an earlier run's data\n"+
		"(its vulnerability database is then used as it is), e.g. -phases load,settle once, copy the directory, then -phases delta,one")
	flag.Parse()
	if cfg.dir == "" {
		fmt.Fprintln(os.Stderr, "fleetload: -dir is required")
		os.Exit(2)
	}
	if cfg.profile != "" && cfg.profilePhase == "" {
		f, err := os.Create(cfg.profile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleetload:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.pgPidFile != "" {
		b, err := os.ReadFile(cfg.pgPidFile)
		if err == nil {
			pgPid, err = strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleetload: -postmaster-pid:", err)
			os.Exit(2)
		}
	}
	if err := run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fleetload:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type config struct {
	dir, postgres         string
	hosts, pkgs, clients  int
	seconds               float64
	profile, profilePhase string
	pgPidFile             string
	phases                string
	rerate                int
	observeEvery          time.Duration
}

// pgPid is the postmaster whose processes' CPU time counts with ours (0: none).
var pgPid int

// cpuTime is this process's user + system CPU time, plus that of the PostgreSQL cluster's
// processes (the postmaster and its children) when -postmaster-pid is given.
func cpuTime() time.Duration { return fleet.CPUTime(pgPid) }

// timer records server time per request kind: the handler's wall time, from the request's
// headers read to the response written.
type timer struct {
	mu   sync.Mutex
	durs map[string][]time.Duration
}

func (t *timer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(start)
		kind := r.Header.Get("X-Bench-Kind")
		if kind == "" {
			return
		}
		t.mu.Lock()
		t.durs[kind] = append(t.durs[kind], d)
		t.mu.Unlock()
	})
}

func (t *timer) take(kind string) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.durs[kind]
	delete(t.durs, kind)
	return d
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(float64(len(s))*p))-1)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) + " ms"
}

type bench struct {
	cfg    config
	corpus *fleet.Corpus
	db     *vulndb.DB
	srv    *app.Server
	hs     *http.Server
	base   string
	client *http.Client
	keys   []string // hosts submit with one of these, as agents hold their own credentials
	tm     *timer
	gen    []int // per host: upgrades sent
	extra  atomic.Int64
	// delta is the feed delta's span, for the floor phase: the findings it updated.
	delta struct{ from, to time.Time }
}

func run(ctx context.Context, cfg config) error {
	b := &bench{cfg: cfg, tm: &timer{durs: map[string][]time.Duration{}}, gen: make([]int, cfg.hosts)}
	var err error
	fmt.Printf("# fleetload: %d hosts × %d packages, %d clients, store %s, GOMAXPROCS %d\n", cfg.hosts, cfg.pkgs, cfg.clients,
		map[bool]string{true: "PostgreSQL", false: "SQLite"}[cfg.postgres != ""], runtime.GOMAXPROCS(0))
	if b.corpus, err = fleet.Load(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.dir, 0o700); err != nil {
		return err
	}
	if err := b.buildVulnDB(ctx); err != nil {
		return err
	}
	if err := b.start(ctx); err != nil {
		return err
	}
	defer func() { b.stop() }()
	if err := b.loadState(); err != nil {
		return err
	}

	phases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"load", b.firstLoad},
		{"settle", b.settle},
		{"unchanged", b.unchangedLatency},
		{"sustained", func(ctx context.Context) error { return b.sustained(ctx, "unchanged", 1) }},
		{"mix", func(ctx context.Context) error { return b.sustained(ctx, "mix 90/9/1", 0.9) }},
		{"delta", b.feedDelta},
		{"one", b.onePercent},
		{"list", b.listing},
		{"floor", b.storeFloor},
		{"restart", b.restart},
	}
	for _, p := range phases {
		if cfg.phases != "" && !slices.Contains(strings.Split(cfg.phases, ","), p.name) {
			continue
		}
		if p.name == cfg.profilePhase {
			f, err := os.Create(cfg.profile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		err := p.fn(ctx)
		if p.name == cfg.profilePhase {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// runState is what a sustained phase changed in the fleet: each host's generation and the hosts it
// added. A later run on the same directory starts from it, so that its changed inventories are
// changed and its new hosts new (not the earlier run's, which the store already holds).
type runState struct {
	Gens  []int `json:"gens"`
	Extra int64 `json:"extra"`
}

func (b *bench) statePath() string { return filepath.Join(b.cfg.dir, "fleetload-state.json") }

func (b *bench) loadState() error {
	data, err := os.ReadFile(b.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st runState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", b.statePath(), err)
	}
	copy(b.gen, st.Gens)
	b.extra.Store(st.Extra)
	return nil
}

func (b *bench) saveState() error {
	data, err := json.Marshal(runState{Gens: b.gen, Extra: b.extra.Load()})
	if err != nil {
		return err
	}
	return os.WriteFile(b.statePath(), data, 0o600)
}

// buildVulnDB imports the corpus's advisories as two sources, osv (PyPI and npm) and debian,
// unless the directory holds an earlier run's database.
func (b *bench) buildVulnDB(ctx context.Context) error {
	path := filepath.Join(b.cfg.dir, "vulndb.sqlite")
	_, statErr := os.Stat(path)
	var err error
	if b.db, err = vulndb.Open(ctx, path); err != nil {
		return err
	}
	if statErr == nil {
		return nil
	}
	bySource := map[string][]model.Advisory{}
	for _, a := range b.corpus.Advisories {
		bySource[a.Source] = append(bySource[a.Source], a)
	}
	for src, advs := range bySource {
		if _, err := b.importAdvisories(ctx, src, advs, false); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) importAdvisories(ctx context.Context, source string, advs []model.Advisory, incremental bool) (vulndb.ImportResult, error) {
	return b.db.ImportSource(ctx, source, vulndb.SourceMeta{URL: "bench://" + source, Incremental: incremental}, func(ctx context.Context, sink feed.Sink) error {
		for i := range advs {
			if err := sink.Advisory(&advs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *bench) start(ctx context.Context) error {
	t0, c0 := time.Now(), cpuTime()
	srv, err := app.New(ctx, app.Config{DataDir: b.cfg.dir, Postgres: b.cfg.postgres, VulnDB: filepath.Join(b.cfg.dir, "vulndb.sqlite"),
		ObserveEvery: b.cfg.observeEvery, Hostname: "localhost", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return err
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	b.srv = srv
	// The API limits each key to 50 requests per second: a fleet's hosts submit with their own
	// credentials, here 100 keys shared by the hosts (created on a reused directory too).
	for i := 0; i < 100; i++ {
		pk, err := auth.NewKey()
		if err != nil {
			return err
		}
		if err := srv.Store.CreateAPIKey(ctx, store.APIKey{ID: pk.ID, Account: app.DefaultAccount, Name: fmt.Sprintf("fleetload-%d", i),
			Role: string(auth.RoleAdmin), SecretHash: auth.Hasher{}.Hash(pk), CreatedAt: time.Now()}); err != nil {
			return err
		}
		b.keys = append(b.keys, pk.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.hs = &http.Server{Handler: b.tm.wrap(srv.Handler()), TLSConfig: srv.TLSConfig(), ReadHeaderTimeout: 10 * time.Second}
	go b.hs.ServeTLS(ln, "", "")
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: b.cfg.clients * 2}
	b.client = &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	b.base = "https://" + ln.Addr().String()
	fmt.Printf("server start: %s wall, %s CPU\n", wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
	return nil
}

func (b *bench) stop() {
	if b.hs != nil {
		b.hs.Close()
	}
	if b.srv != nil {
		b.srv.Close()
	}
}

type submission struct {
	Inventory model.Inventory `json:"inventory"`
}

// submit sends host h's inventory (generation gen) and returns the answer.
func (b *bench) submit(ctx context.Context, kind string, h, gen int) (app.SubmissionResult, error) {
	var out app.SubmissionResult
	inv := b.corpus.InventoryGen(h, gen, b.cfg.pkgs)
	body, err := json.Marshal(submission{Inventory: *inv})
	if err != nil {
		return out, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/v1/resources/host/%s/inventory", b.base, hostID(h)), bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Authorization", "Bearer "+b.keys[h%len(b.keys)])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Bench-Kind", kind)
	resp, err := b.client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("host %d: %s: %s", h, resp.Status, data)
	}
	return out, json.Unmarshal(data, &out)
}

// parallel runs fn(i) for i in [0, n) over the clients, or until deadline; it returns how many ran.
func (b *bench) parallel(n int, deadline time.Time, fn func(i int) error) (int, error) {
	var (
		next  atomic.Int64
		done  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for c := 0; c < b.cfg.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || (!deadline.IsZero() && time.Now().After(deadline)) {
					return
				}
				if err := fn(i); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(done.Load()), first
}

func (b *bench) firstLoad(ctx context.Context) error {
	var created atomic.Int64
	t0, c0 := time.Now(), cpuTime()
	step := max(1, b.cfg.hosts/10)
	n, err := b.parallel(b.cfg.hosts, time.Time{}, func(i int) error {
		r, err := b.submit(ctx, "new", i, b.gen[i]) // a reused directory: its hosts as stored
		created.Add(int64(r.Created))
		if (i+1)%step == 0 {
			fmt.Fprintf(os.Stderr, "  loaded %d hosts in %s\n", i+1, time.Since(t0).Round(time.Second))
		}
		return err
	})
	if err != nil {
		return err
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	d := b.tm.take("new")
	fmt.Printf("first load: %d new hosts in %s (%.0f/s), %d findings created; CPU %s (%.2f ms/host); server time p50 %s p99 %s\n",
		n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(), created.Load(), cpu.Round(time.Millisecond),
		float64(cpu.Microseconds())/1000/float64(n), ms(pct(d, 0.5)), ms(pct(d, 0.99)))
	return nil
}

// settle brings the store to the state a running server's would be in some minutes after a large
// load: PostgreSQL's autovacuum would have vacuumed and analyzed the new tables (left to itself it
// runs during the next phases and its I/O lands in their figures); SQLite gets the statistics that
// housekeeping gathers (Store.Optimize).
func (b *bench) settle(ctx context.Context) error {
	t0 := time.Now()
	what := "PRAGMA optimize"
	var err error
	if b.cfg.postgres != "" {
		what = "VACUUM ANALYZE"
		_, err = b.srv.Store.DB().ExecContext(ctx, `VACUUM ANALYZE`)
	} else {
		err = b.srv.Store.Optimize(ctx)
	}
	if err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	fmt.Printf("settle (%s, as autovacuum or housekeeping would after the load): %s\n", what, time.Since(t0).Round(time.Millisecond))
	return nil
}

// unchangedLatency: one client resubmits unchanged inventories one at a time.
func (b *bench) unchangedLatency(ctx context.Context) error {
	const n = 300
	c0 := cpuTime()
	for i := 0; i < n; i++ {
		h := int(fleet.Hash32("unchanged", strconv.Itoa(i)) % uint32(b.cfg.hosts))
		r, err := b.submit(ctx, "unchanged1", h, b.gen[h])
		if err != nil {
			return err
		}
		if !r.Unchanged {
			return fmt.Errorf("host %d: resubmission not seen as unchanged", h)
		}
	}
	cpu := cpuTime() - c0
	d := b.tm.take("unchanged1")
	fmt.Printf("unchanged resubmission (1 client, %d): server time p50 %s p90 %s p99 %s (goal <= 2 ms); CPU %.2f ms/request incl. client\n",
		n, ms(pct(d, 0.5)), ms(pct(d, 0.9)), ms(pct(d, 0.99)), float64(cpu.Microseconds())/1000/n)
	return nil
}

// sustained submits for cfg.seconds with every client busy: a share of unchanged resubmissions,
// the rest split 9:1 between changed inventories (one to three packages upgraded) and new hosts.
func (b *bench) sustained(ctx context.Context, name string, share float64) error {
	var kinds [3]atomic.Int64
	deadline := time.Now().Add(time.Duration(b.cfg.seconds * float64(time.Second)))
	var genMu sync.Mutex
	// One submission per host at a time: two of one host's generations sent at once could be
	// stored in either order, and the host's next unchanged resubmission would not be unchanged.
	var hostMu [4096]sync.Mutex
	t0, c0 := time.Now(), cpuTime()
	n, err := b.parallel(math.MaxInt32, deadline, func(i int) error {
		u := float64(fleet.Hash32(name, strconv.Itoa(i))%10000) / 10000
		h := int(fleet.Hash32(name, "host", strconv.Itoa(i)) % uint32(b.cfg.hosts))
		if u < share+(1-share)*0.9 { // an existing host: unchanged or changed
			hostMu[h%len(hostMu)].Lock()
			defer hostMu[h%len(hostMu)].Unlock()
		}
		switch {
		case u < share:
			genMu.Lock()
			g := b.gen[h]
			genMu.Unlock()
			kinds[0].Add(1)
			_, err := b.submit(ctx, name, h, g)
			return err
		case u < share+(1-share)*0.9:
			// Changed: generations only grow.
			genMu.Lock()
			b.gen[h]++
			g := b.gen[h]
			genMu.Unlock()
			kinds[1].Add(1)
			_, err := b.submit(ctx, name, h, g)
			return err
		default:
			kinds[2].Add(1)
			_, err := b.submit(ctx, name, b.cfg.hosts+int(b.extra.Add(1)), 0)
			return err
		}
	})
	if err != nil {
		return err
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	if err := b.saveState(); err != nil {
		return err
	}
	d := b.tm.take(name)
	// The load generator's own share: building and encoding a body (its TLS is not counted here).
	g0 := cpuTime()
	for i := 0; i < 200; i++ {
		inv := b.corpus.InventoryGen(i%b.cfg.hosts, 0, b.cfg.pkgs)
		if _, err := json.Marshal(submission{Inventory: *inv}); err != nil {
			return err
		}
	}
	gen := (cpuTime() - g0) / 200
	fmt.Printf("  (of which the load generator builds and encodes a body: %.2f ms)\n", float64(gen.Microseconds())/1000)
	fmt.Printf("sustained %s: %d submissions in %s = %.0f/s (goal >= 500/s) [unchanged %d, changed %d, new %d]; CPU %.2f ms/submission incl. client; server time p50 %s p99 %s\n",
		name, n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(), kinds[0].Load(), kinds[1].Load(), kinds[2].Load(),
		float64(cpu.Microseconds())/1000/float64(n), ms(pct(d, 0.5)), ms(pct(d, 0.99)))
	return nil
}

// feedDelta republishes 1,000 advisories (900 with a new modified time only, 100 re-rated) and
// times the server's re-evaluation of the change log.
func (b *bench) feedDelta(ctx context.Context) error {
	advs := b.corpus.Advisories
	bySource := map[string][]model.Advisory{}
	seen := map[string]bool{}
	now := time.Now().UTC().Truncate(time.Second)
	for j := 0; len(seen) < 1000; j++ {
		i := int(fleet.Hash32("mod", strconv.Itoa(j)) % uint32(len(advs)))
		if seen[advs[i].ID] {
			continue
		}
		seen[advs[i].ID] = true
		a := advs[i]
		a.Modified = now
		if j%10 == 0 {
			a.Severity = []string{model.SeverityLow, model.SeverityMedium, model.SeverityHigh, model.SeverityCritical}[(j+b.cfg.rerate)%4]
			advs[i] = a
		}
		bySource[a.Source] = append(bySource[a.Source], a)
	}
	for src, list := range bySource {
		if _, err := b.importAdvisories(ctx, src, list, true); err != nil {
			return err
		}
	}
	b.delta.from = time.Now()
	err := b.applyFeed("feed delta of 1,000 modified advisories", "2 s")
	b.delta.to = time.Now()
	return err
}

// hostID is the resource ID fleetload gives host h.
func hostID(h int) string { return fmt.Sprintf("i-%08x", h) }

// storeFloor times the least a store could do for two of the scale figures, with bare statements
// instead of the server's code:
//   - the feed delta's findings: one UPDATE changing the severity, risk score and update time of the
//     rows the delta updated, with no reads, documents or events, in a transaction that is rolled
//     back (the commit's own writes are not counted, and the fleet is left as it was);
//   - a new host's writes: copies of a stored host's finding rows, documents, finding packages,
//     events and inventory rows, inserted by INSERT … SELECT in one committed transaction per host
//     (then deleted, untimed), for 20 hosts.
//
// It runs after the listing so that its dead rows do not weigh on the phases that measure the server.
func (b *bench) storeFloor(ctx context.Context) error {
	db := b.srv.Store.DB()
	bind := b.srv.Store.Rebind
	if !b.delta.from.IsZero() {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		t0, c0 := time.Now(), cpuTime()
		res, err := tx.ExecContext(ctx, bind(`UPDATE findings SET severity_rank = CASE WHEN severity_rank >= 5 THEN 1 ELSE severity_rank + 1 END,
			risk_score = risk_score + 0.5, updated_at = updated_at + 1 WHERE updated_at BETWEEN ? AND ?`), b.delta.from.UnixMicro(), b.delta.to.UnixMicro())
		wall, cpu := time.Since(t0), cpuTime()-c0
		if rerr := tx.Rollback(); err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		n, _ := res.RowsAffected()
		fmt.Printf("store floor for the feed delta: one UPDATE of the %d finding rows it updated (severity, risk score, update time; no reads, documents or events), rolled back: %s wall, %s CPU\n",
			n, wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
	}

	const hosts = 20
	const cols = `resource_type, type, vulnerability_id, severity, severity_rank, status, fix_available, exploit_available, epss, risk_score, first_observed, last_observed, updated_at, image_repository`
	const pkgCols = `ecosystem, name, version, source_name, source_version, purl, location, layer, arch, extractor`
	steps := []string{
		`INSERT INTO findings (account, id, resource_id, ` + cols + `) SELECT account, id || '-floor', resource_id, ` + cols + ` FROM findings WHERE account = ? AND resource_id = ?`,
		`INSERT INTO finding_data (account, id, data) SELECT d.account, d.id || '-floor', d.data FROM findings f JOIN finding_data d ON d.account = f.account AND d.id = f.id
			WHERE f.account = ? AND f.resource_id = ? AND f.id NOT LIKE '%-floor'`,
		`INSERT INTO finding_packages (account, finding_id, name, version, ecosystem, layer) SELECT p.account, p.finding_id || '-floor', p.name, p.version, p.ecosystem, p.layer
			FROM findings f JOIN finding_packages p ON p.account = f.account AND p.finding_id = f.id WHERE f.account = ? AND f.resource_id = ? AND f.id NOT LIKE '%-floor'`,
		`INSERT INTO outbox (event_id, type, account, subject, event_time, data, state, next_attempt_at, delivered_at)
			SELECT 'floor-' || d.id, 'vigil.finding.created', d.account, d.id, 0, d.data, 'delivered', 0, 0
			FROM findings f JOIN finding_data d ON d.account = f.account AND d.id = f.id WHERE f.account = ? AND f.resource_id = ? AND f.id NOT LIKE '%-floor'`,
		`INSERT INTO packages (account, resource_id, ` + pkgCols + `) SELECT account, resource_id, ` + pkgCols + ` FROM packages WHERE account = ? AND resource_id = ?`,
	}
	var (
		total, totalCPU time.Duration
		rows            [5]int64 // per step
	)
	for i := 0; i < hosts; i++ {
		rid := hostID((i*b.cfg.hosts/hosts + 7) % b.cfg.hosts)
		var maxPkg, maxEvent int64
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM packages`).Scan(&maxPkg); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM outbox`).Scan(&maxEvent); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		t0, c0 := time.Now(), cpuTime()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for j, q := range steps {
			res, err := tx.ExecContext(ctx, bind(q), app.DefaultAccount, rid)
			if err != nil {
				tx.Rollback()
				return fmt.Errorf("floor: new host %s: %w", rid, err)
			}
			n, _ := res.RowsAffected()
			rows[j] += n
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("floor: new host %s: %w", rid, err)
		}
		total += time.Since(t0)
		totalCPU += cpuTime() - c0
		cleanup := []struct {
			q    string
			args []any
		}{
			{`DELETE FROM findings WHERE account = ? AND resource_id = ? AND id LIKE '%-floor'`, []any{app.DefaultAccount, rid}},
			{`DELETE FROM packages WHERE account = ? AND resource_id = ? AND seq > ?`, []any{app.DefaultAccount, rid, maxPkg}},
			{`DELETE FROM outbox WHERE seq > ? AND event_id LIKE 'floor-%'`, []any{maxEvent}},
		}
		for _, c := range cleanup {
			if _, err := db.ExecContext(ctx, bind(c.q), c.args...); err != nil {
				return fmt.Errorf("floor: clean up %s: %w", rid, err)
			}
		}
	}
	fmt.Printf("store floor for a new host: its finding rows, documents, finding packages, events and inventory rows copied from a stored host by INSERT … SELECT, one committed transaction per host: %s wall, %s CPU per host (%d hosts; rows per host: %d findings, %d documents, %d finding packages, %d events, %d packages)\n",
		(total / hosts).Round(100*time.Microsecond), (totalCPU / hosts).Round(100*time.Microsecond), hosts,
		rows[0]/hosts, rows[1]/hosts, rows[2]/hosts, rows[3]/hosts, rows[4]/hosts)
	return nil
}

func (b *bench) applyFeed(what, goal string) error {
	t0, c0 := time.Now(), cpuTime()
	res, err := b.srv.ApplyFeedUpdate(context.Background())
	if err != nil {
		return err
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	fmt.Printf("%s: %s wall, %s CPU (goal <= %s); %d change-log entries, %d resources reconciled, %d events\n",
		what, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), goal, res.Changes, res.Resources, res.Events)
	return nil
}

// onePercent adds one advisory affecting the PyPI version held by the number of hosts closest to 1%.
func (b *bench) onePercent(ctx context.Context) error {
	type pv struct{ name, ver string }
	count := map[pv]int{}
	for h := 0; h < b.cfg.hosts; h++ {
		for _, p := range b.corpus.InventoryGen(h, b.gen[h], b.cfg.pkgs).Packages {
			if p.Ecosystem == "PyPI" {
				count[pv{p.Name, p.Version}]++
			}
		}
	}
	target := b.cfg.hosts / 100
	var best pv
	bestD := -1
	for k, n := range count {
		d := n - target
		if d < 0 {
			d = -d
		}
		if bestD < 0 || d < bestD || (d == bestD && (k.name < best.name || k.name == best.name && k.ver < best.ver)) {
			best, bestD = k, d
		}
	}
	a := model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-ONE-%06d", 1+b.cfg.rerate), Ecosystem: "PyPI", Package: best.name, Severity: model.SeverityCritical,
		Summary: "synthetic benchmark advisory", Versions: []string{best.ver}, Modified: time.Now().UTC().Truncate(time.Second)}
	if _, err := b.importAdvisories(ctx, "osv", []model.Advisory{a}, true); err != nil {
		return err
	}
	all := 0
	for k, c := range count {
		if k.name == best.name {
			all += c
		}
	}
	return b.applyFeed(fmt.Sprintf("one new advisory (PyPI %s %s: held by %d hosts; %d hold %s)", best.name, best.ver, count[best],
		all, match.NormalizeName("PyPI", best.name)), "100 ms")
}

// listing asks for findings with filters through the API.
func (b *bench) listing(ctx context.Context) error {
	queries := []string{
		"", "status=ACTIVE", "status=ACTIVE&severity=CRITICAL", "status=ACTIVE&severity=HIGH&sortBy=updatedAt",
		"severity=CRITICAL&fixAvailable=NO&sortBy=riskScore", "packageName=urllib3", "packageName=openssl",
		"resourceId=i-00000007", "vulnerabilityId=VIGIL-BENCH-DEB-00007", "epssMin=0.5&sortBy=epss", "sortBy=lastObservedAt",
		"resourceType=host&status=ACTIVE&sortBy=riskScore", "resourceType=image",
	}
	var worst time.Duration
	for _, q := range queries {
		for i := 0; i < 40; i++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/v1/findings?pageSize=100&"+q, nil)
			req.Header.Set("Authorization", "Bearer "+b.keys[i%len(b.keys)])
			req.Header.Set("X-Bench-Kind", "list")
			resp, err := b.client.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("list %q: %s", q, resp.Status)
			}
		}
		d := b.tm.take("list")
		p99 := pct(d, 0.99)
		worst = max(worst, p99)
		fmt.Printf("  list ?%-50s p50 %s p99 %s\n", q, ms(pct(d, 0.5)), ms(p99))
	}
	var total int
	if err := b.srv.Store.DB().QueryRow(`SELECT COUNT(*) FROM findings`).Scan(&total); err != nil {
		return err
	}
	fmt.Printf("listing findings with filters over %d findings: worst p99 %s (goal <= 50 ms)\n", total, ms(worst))
	return nil
}

func (b *bench) restart(ctx context.Context) error {
	b.stop()
	b.srv, b.hs = nil, nil
	// The cluster's backends exit with the old server's connections: count this process only.
	pgPid = 0
	fmt.Print("restart (this process's CPU only): ")
	if err := b.start(ctx); err != nil {
		return err
	}
	return nil
}
