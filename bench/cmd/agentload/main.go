// Command agentload simulates a fleet of vigil-agents against a real `vigil server`: each simulated
// agent makes its own key, enrolls with a real join token and CSR, and then talks mutual TLS 1.3 with
// its own client certificate, through the agent's own client (agent/client) and wire code
// (agent/runner.Wire, agent/protocol). Only the host is simulated: the inventory is collected once
// from --root (the os-packages sensor) and each agent varies it (a few packages missing, versions
// bumped by its deltas).
//
// Phases, each measured on its own:
//
//	enroll   N enrollments, --enroll-concurrency at a time
//	initial  every agent starts, spread evenly over one heartbeat period: heartbeat, full upload
//	steady   --duration of heartbeats every --heartbeat (each agent at its own offset) and an upload
//	         every --upload-every per agent (a --delta-fraction of them deltas, the rest unchanged)
//
// It prints latency percentiles per phase and operation, errors, the server's CPU (utime+stime from
// /proc/PID/stat) and RSS (VmRSS, VmHWM) when --server-pid is given, and its own CPU.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/collect"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/runner"
	"github.com/vigil-sec/vigil/agent/state"
	"github.com/vigil-sec/vigil/model"
)

type config struct {
	server, token, fingerprint, root, jsonOut string
	agents, enrollConc, packages, serverPID   int
	heartbeat, duration, uploadEvery, drain   time.Duration
	deltaFraction                             float64
}

func main() {
	var c config
	flag.StringVar(&c.server, "server", "", "server URL (https://host:port)")
	flag.StringVar(&c.token, "token", "", "join token with at least --agents uses")
	flag.StringVar(&c.fingerprint, "ca-fingerprint", "", "the server CA's sha256 fingerprint")
	flag.StringVar(&c.root, "root", "/", "root to collect the base inventory from (os-packages)")
	flag.IntVar(&c.packages, "packages", 0, "keep only the first N packages of the base inventory (0: all)")
	flag.IntVar(&c.agents, "agents", 5000, "simulated agents")
	flag.IntVar(&c.enrollConc, "enroll-concurrency", 16, "enrollments in flight at once")
	flag.IntVar(&c.serverPID, "server-pid", 0, "PID of the server process, for its CPU and memory")
	flag.DurationVar(&c.heartbeat, "heartbeat", 60*time.Second, "heartbeat period (the server's answer overrides it)")
	flag.DurationVar(&c.duration, "duration", 5*time.Minute, "length of the steady phase")
	flag.DurationVar(&c.uploadEvery, "upload-every", 30*time.Minute, "per-agent upload period in the steady phase (the agent's default collection interval is 30 min)")
	flag.DurationVar(&c.drain, "initial-timeout", 15*time.Minute, "longest wait for the initial full uploads")
	flag.Float64Var(&c.deltaFraction, "delta-fraction", 0.1, "share of steady-phase uploads that carry a change (one package upgraded)")
	flag.StringVar(&c.jsonOut, "json", "", "also write the figures as JSON to this file")
	flag.Parse()
	if c.server == "" || c.token == "" || c.fingerprint == "" {
		fmt.Fprintln(os.Stderr, "agentload: --server, --token and --ca-fingerprint are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(1)
	}
}

// --- measurements

const (
	phaseEnroll = iota
	phaseInitial
	phaseSteady
	nPhases
)

var phaseNames = [nPhases]string{"enroll", "initial", "steady"}

type opKey struct {
	phase int
	op    string
}

type recorder struct {
	mu     sync.Mutex
	lat    map[opKey][]time.Duration
	errs   map[opKey]int
	sample map[opKey]string
	phase  atomic.Int32
}

func newRecorder() *recorder {
	return &recorder{lat: map[opKey][]time.Duration{}, errs: map[opKey]int{}, sample: map[opKey]string{}}
}

// add records a latency measured elsewhere.
func (r *recorder) add(op string, d time.Duration) {
	k := opKey{int(r.phase.Load()), op}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[k] = append(r.lat[k], d)
}

// time runs fn and records its latency (or its error) under the current phase.
func (r *recorder) time(op string, fn func() error) error {
	k := opKey{int(r.phase.Load()), op}
	start := time.Now()
	err := fn()
	d := time.Since(start)
	if errors.Is(err, context.Canceled) {
		return err // the run is stopping: neither a latency nor a server error
	}
	// Refusals for load (429, 503 with Retry-After) are the server shedding work, which the agent
	// retries with backoff: counted apart from errors.
	var se *client.StatusError
	if errors.As(err, &se) && (se.Status == 429 || se.Status == 503) {
		k.op += fmt.Sprintf(" %d (retried)", se.Status)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs[k]++
		if _, ok := r.sample[k]; !ok {
			r.sample[k] = err.Error()
		}
		return err
	}
	r.lat[k] = append(r.lat[k], d)
	return nil
}

type opStats struct {
	Phase, Op          string
	Count, Errors      int
	P50, P95, P99, Max float64 // milliseconds
	PerSecond          float64
	FirstError         string `json:",omitempty"`
}

func (r *recorder) stats(phase int, wall time.Duration) []opStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ops []string
	for k := range r.lat {
		if k.phase == phase {
			ops = append(ops, k.op)
		}
	}
	for k := range r.errs {
		if k.phase == phase && !slices.Contains(ops, k.op) {
			ops = append(ops, k.op)
		}
	}
	sort.Strings(ops)
	var out []opStats
	for _, op := range ops {
		k := opKey{phase, op}
		l := slices.Clone(r.lat[k])
		slices.Sort(l)
		s := opStats{Phase: phaseNames[phase], Op: op, Count: len(l), Errors: r.errs[k], FirstError: r.sample[k]}
		if len(l) > 0 {
			pct := func(p float64) float64 {
				i := int(p*float64(len(l))+0.5) - 1
				i = max(0, min(i, len(l)-1))
				return ms(l[i])
			}
			s.P50, s.P95, s.P99, s.Max = pct(0.50), pct(0.95), pct(0.99), ms(l[len(l)-1])
		}
		if wall > 0 {
			s.PerSecond = float64(len(l)) / wall.Seconds()
		}
		out = append(out, s)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// procSample is one reading of a process: CPU seconds (user+system) and memory.
type procSample struct {
	at           time.Time
	cpu          float64
	rssKB, hwmKB int64
	fds, threads int
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces: the fields start after its closing parenthesis.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = float64(ut+st) / clkTck
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st2), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.hwmKB = n
		case "Threads":
			s.threads = int(n)
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
	}
	return s, nil
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// monitor samples the server every second; mark records phase boundaries.
type monitor struct {
	pid     int
	mu      sync.Mutex
	samples []procSample
}

func (m *monitor) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if s, err := readProc(m.pid); err == nil {
			m.mu.Lock()
			m.samples = append(m.samples, s)
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type procFigures struct {
	CPUSeconds     float64 // user+system over the phase
	CPUPercentCore float64 // of one core
	RSSMeanMB      float64
	RSSMaxMB       float64
	RSSEndMB       float64
	HWMMB          float64 // VmHWM at the end of the phase (peak since the process started)
	FDsEnd         int
	ThreadsEnd     int
}

func (m *monitor) between(from, to time.Time) (procFigures, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var in []procSample
	for _, s := range m.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			in = append(in, s)
		}
	}
	if len(in) < 2 {
		return procFigures{}, false
	}
	a, b := in[0], in[len(in)-1]
	f := procFigures{CPUSeconds: b.cpu - a.cpu, RSSEndMB: mb(b.rssKB), HWMMB: mb(b.hwmKB), FDsEnd: b.fds, ThreadsEnd: b.threads}
	if wall := b.at.Sub(a.at).Seconds(); wall > 0 {
		f.CPUPercentCore = 100 * f.CPUSeconds / wall
	}
	var sum float64
	for _, s := range in {
		sum += mb(s.rssKB)
		f.RSSMaxMB = max(f.RSSMaxMB, mb(s.rssKB))
	}
	f.RSSMeanMB = sum / float64(len(in))
	return f, true
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// --- the simulated hosts

// base is the inventory every simulated host starts from.
type base struct {
	inv *model.Inventory
}

// sim is one simulated agent. Its inventory is the base minus the packages in drop, with the
// versions of the packages in bump raised (each bump is one upgrade, as a delta carries it).
type sim struct {
	i       int
	id      string
	host    string
	machine string
	cl      *client.Client
	drop    map[int]bool
	bump    map[int]int
	acked   string // hash of the last acknowledged inventory
	rng     *mrand.Rand
}

func (s *sim) inventory(b *base) *protocol.Upload {
	inv := *b.inv
	inv.Packages = make([]model.Package, 0, len(b.inv.Packages))
	for j, p := range b.inv.Packages {
		if s.drop[j] {
			continue
		}
		if n := s.bump[j]; n > 0 {
			// A Debian binNMU-style rebuild: the smallest realistic version change.
			p.Version = fmt.Sprintf("%s+b%d", p.Version, n)
			p.PURL = ""
		}
		inv.Packages = append(inv.Packages, p)
	}
	inv.Started = time.Now().UTC()
	facts := &protocol.Facts{Hostname: s.host, MachineID: s.machine, OS: inv.OS, KernelVersion: "6.1.0-28-amd64",
		Addresses: []string{fmt.Sprintf("10.%d.%d.%d/16", s.i>>16&255, s.i>>8&255, s.i&255)}}
	return &protocol.Upload{Hash: protocol.InventoryHash(&inv), Full: &inv, Facts: facts, CollectedAt: inv.Started}
}

// upload sends the current inventory as the agent would: runner.Wire against the last
// acknowledged one, prev (full the first time or on NeedFull, else a delta or an unchanged
// upload). Only the acknowledged hash is kept between uploads (5,000 agents' package identities
// would not fit the generator's share of the machine): prev is rebuilt by the caller.
func (s *sim) upload(ctx context.Context, b *base, rec *recorder, op string, prev *protocol.Upload) error {
	p, body, err := s.prepare(b, prev)
	if err != nil {
		return err
	}
	return s.send(ctx, rec, op, p, body)
}

// prepare builds an upload and its wire body (kept for retries: an agent keeps its pending upload
// on disk and does not collect again to retry, and 5,000 simulated agents re-encoding theirs
// would starve the server of the CPU they share).
func (s *sim) prepare(b *base, prev *protocol.Upload) (*protocol.Upload, []byte, error) {
	p := s.inventory(b)
	var acked *state.Acked
	if prev != nil && s.acked != "" && prev.Hash == s.acked {
		acked = runner.AckedFor(prev, time.Now())
	}
	body, err := client.EncodeUpload(runner.Wire(p, acked, false))
	return p, body, err
}

func (s *sim) send(ctx context.Context, rec *recorder, op string, p *protocol.Upload, body []byte) error {
	var resp *protocol.UploadResponse
	err := rec.time(op, func() error {
		var err error
		resp, err = s.cl.Upload(ctx, body)
		return err
	})
	if err != nil {
		return err
	}
	if resp.NeedFull {
		full, _ := client.EncodeUpload(runner.Wire(p, nil, true))
		if err := rec.time("upload-full-after-needfull", func() error { resp, err = s.cl.Upload(ctx, full); return err }); err != nil {
			return err
		}
	}
	if resp.Hash != p.Hash {
		return fmt.Errorf("upload acknowledged %s, sent %s", resp.Hash, p.Hash)
	}
	s.acked = p.Hash
	return nil
}

func (s *sim) heartbeat(ctx context.Context, rec *recorder) (time.Duration, error) {
	hash := s.acked
	var resp *protocol.HeartbeatResponse
	err := rec.time("heartbeat", func() error {
		var err error
		resp, err = s.cl.Heartbeat(ctx, &protocol.Heartbeat{Version: "agentload", State: protocol.StateRunning,
			Sensors: []string{protocol.SensorOSPackages, protocol.SensorHostFacts}, InventoryHash: hash, Time: time.Now().UTC()})
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, in := range resp.Instructions {
		_ = rec.time("instruction-result", func() error {
			return s.cl.Report(ctx, in.ID, &protocol.InstructionResult{OK: false, Error: "agentload does not act on instructions"})
		})
	}
	return time.Duration(resp.HeartbeatSeconds) * time.Second, nil
}

// --- run

type report struct {
	Agents, Packages              int
	Enroll, Initial, Steady       phaseReport
	GeneratorCPUSeconds           float64
	GeneratorCPUPercentCoreSteady float64
	GeneratorGoMaxProcs           int
}

type phaseReport struct {
	Seconds float64
	Ops     []opStats
	Server  *procFigures `json:",omitempty"`
}

func run(ctx context.Context, c config) error {
	snap, err := (&collect.Collector{Root: c.root, Sensors: []string{protocol.SensorOSPackages}}).Collect(ctx)
	if err != nil {
		return err
	}
	inv := snap.Inventory
	if c.packages > 0 && len(inv.Packages) > c.packages {
		inv.Packages = inv.Packages[:c.packages]
	}
	if len(inv.Packages) == 0 {
		return fmt.Errorf("no packages under %s", c.root)
	}
	b := &base{inv: inv}
	osName := "?"
	if inv.OS != nil {
		osName = inv.OS.PrettyName
	}
	fmt.Printf("base inventory: %d packages from %s (%s)\n", len(inv.Packages), c.root, osName)

	rec := newRecorder()
	var mon *monitor
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	if c.serverPID > 0 {
		if _, err := readProc(c.serverPID); err != nil {
			return fmt.Errorf("server PID %d: %w", c.serverPID, err)
		}
		mon = &monitor{pid: c.serverPID}
		go mon.loop(mctx)
	}
	rep := report{Agents: c.agents, Packages: len(inv.Packages), GeneratorGoMaxProcs: runtime.GOMAXPROCS(0)}
	phaseEnd := func(pr *phaseReport, phase int, from time.Time) {
		to := time.Now()
		time.Sleep(1100 * time.Millisecond) // one more server sample inside the window's end
		pr.Seconds = to.Sub(from).Seconds()
		pr.Ops = rec.stats(phase, to.Sub(from))
		if mon != nil {
			if f, ok := mon.between(from, to.Add(time.Second)); ok {
				pr.Server = &f
			}
		}
		printPhase(phaseNames[phase], pr)
	}

	// Enrollment.
	sims := make([]*sim, c.agents)
	t0 := time.Now()
	rec.phase.Store(phaseEnroll)
	sem := make(chan struct{}, c.enrollConc)
	var wg sync.WaitGroup
	var enrollErr atomic.Value
	var done atomic.Int64
	for i := range sims {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			s, err := enroll(ctx, c, b, i, rec)
			if err != nil {
				enrollErr.CompareAndSwap(nil, err)
				return
			}
			sims[i] = s
			if n := done.Add(1); n%1000 == 0 {
				fmt.Printf("  enrolled %d in %s\n", n, time.Since(t0).Round(time.Second))
			}
		}(i)
	}
	wg.Wait()
	phaseEnd(&rep.Enroll, phaseEnroll, t0)
	sims = slices.DeleteFunc(sims, func(s *sim) bool { return s == nil })
	if len(sims) == 0 {
		return fmt.Errorf("no agent enrolled: %v", enrollErr.Load())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// Initial: each agent's first heartbeat and full upload, spread over one heartbeat period;
	// then the agents keep running until the steady phase ends.
	t1 := time.Now()
	rec.phase.Store(phaseInitial)
	var initialDone sync.WaitGroup
	initialDone.Add(len(sims))
	steadyStart := make(chan time.Time, 1)
	runCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	var agents sync.WaitGroup
	for k, s := range sims {
		agents.Add(1)
		go func() {
			defer agents.Done()
			live(runCtx, c, b, s, rec, time.Duration(k)*c.heartbeat/time.Duration(len(sims)), len(sims), &initialDone, steadyStart)
		}()
	}
	waitDone := make(chan struct{})
	go func() { initialDone.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(c.drain):
		fmt.Println("  initial uploads not all done before --initial-timeout; steady phase starts anyway")
	case <-ctx.Done():
		return ctx.Err()
	}
	phaseEnd(&rep.Initial, phaseInitial, t1)

	// Steady.
	t2 := time.Now()
	cpu0 := selfCPU()
	rec.phase.Store(phaseSteady)
	steadyStart <- t2
	close(steadyStart)
	select {
	case <-time.After(c.duration):
	case <-ctx.Done():
	}
	cpu1 := selfCPU()
	steadyWall := time.Since(t2)
	stopAgents()
	phaseEnd(&rep.Steady, phaseSteady, t2)
	agents.Wait()
	rep.GeneratorCPUSeconds = selfCPU()
	rep.GeneratorCPUPercentCoreSteady = 100 * (cpu1 - cpu0) / steadyWall.Seconds()
	fmt.Printf("generator: %.1f s CPU in all; %.1f%% of a core in the steady phase (GOMAXPROCS %d)\n",
		rep.GeneratorCPUSeconds, rep.GeneratorCPUPercentCoreSteady, rep.GeneratorGoMaxProcs)
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func enroll(ctx context.Context, c config, b *base, i int, rec *recorder) (*sim, error) {
	key, err := client.NewKey()
	if err != nil {
		return nil, err
	}
	s := &sim{i: i, host: fmt.Sprintf("load-%05d", i), machine: randHex(16), drop: map[int]bool{}, bump: map[int]int{},
		rng: mrand.New(mrand.NewPCG(uint64(i), 42))}
	csr, err := client.CSR(key, s.host)
	if err != nil {
		return nil, err
	}
	var resp *protocol.EnrollResponse
	// Enrollment is limited per client address (50/s) and every simulated agent shares this one:
	// wait and retry on 429 as `vigil-agent enroll` does. The refusals are counted apart.
	for attempt := 0; ; attempt++ {
		err = rec.time("enroll", func() error {
			return enrollOnce(ctx, c, b, s, key, csr, &resp)
		})
		var se *client.StatusError
		if !errors.As(err, &se) || se.Status != 429 || attempt > 100 {
			break
		}
		if !sleep(ctx, client.RetryWait(se.RetryAfter, s.rng.Float64())) {
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	s.id = resp.AgentID
	// Hosts differ: each lacks up to 3% of the base packages.
	n := len(b.inv.Packages)
	for range s.rng.IntN(n*3/100 + 1) {
		s.drop[s.rng.IntN(n)] = true
	}
	return s, nil
}

func enrollOnce(ctx context.Context, c config, b *base, s *sim, key crypto.Signer, csr string, out **protocol.EnrollResponse) error {
	{
		r, ca, err := client.Enroll(ctx, c.server, c.fingerprint, &protocol.EnrollRequest{Token: c.token, CSR: csr,
			Hostname: s.host, MachineID: s.machine, Version: "agentload", OS: b.inv.OS})
		if err != nil {
			return err
		}
		*out = r
		leaf, err := client.ParseCert([]byte(r.Certificate))
		if err != nil {
			return err
		}
		cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
		s.cl, err = client.New(c.server, ca, func() (*tls.Certificate, error) { return cert, nil })
		return err
	}
}

// live runs one agent: the initial heartbeat and full upload at offset, then heartbeats at the
// server's period and, once the steady phase starts, uploads every c.uploadEvery from an offset of
// its own.
func live(ctx context.Context, c config, b *base, s *sim, rec *recorder, offset time.Duration, n int,
	initialDone *sync.WaitGroup, steadyStart <-chan time.Time) {
	if !sleep(ctx, offset) {
		initialDone.Done()
		return
	}
	period, err := s.heartbeat(ctx, rec)
	if err != nil || period <= 0 {
		period = c.heartbeat
	}
	// Retry the full upload as the agent would: after the server's Retry-After, else its backoff.
	first := time.Now()
	p, body, err := s.prepare(b, nil)
	if err != nil {
		panic(err) // encoding an in-memory inventory cannot fail
	}
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := s.send(ctx, rec, "upload-full", p, body)
		if err == nil {
			rec.add("upload-full until accepted", time.Since(first))
			break
		}
		if errors.Is(err, context.Canceled) {
			break
		}
		wait := runner.Backoff(attempt, s.rng.Float64())
		if ra := client.RetryAfterOf(err); ra > 0 {
			wait = runner.RetryAfterWait(ra, s.rng.Float64())
		}
		if !sleep(ctx, wait) {
			break
		}
	}
	initialDone.Done()
	nextHB := time.Now().Add(period)
	var nextUpload time.Time // zero until the steady phase starts
	for {
		wait := time.Until(nextHB)
		if !nextUpload.IsZero() && time.Until(nextUpload) < wait {
			wait = time.Until(nextUpload)
		}
		var started <-chan time.Time
		if nextUpload.IsZero() {
			started = steadyStart
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case t2, ok := <-started:
			t.Stop()
			if !ok {
				t2 = time.Now()
			}
			nextUpload = t2.Add(time.Duration(s.i%n) * c.uploadEvery / time.Duration(n))
			continue
		case <-t.C:
		}
		if now := time.Now(); !now.Before(nextHB) {
			if p, err := s.heartbeat(ctx, rec); err == nil && p > 0 {
				period = p
			}
			nextHB = nextHB.Add(period)
			if nextHB.Before(now) { // fell behind (a slow server): do not burst to catch up
				nextHB = now.Add(period)
			}
		}
		if !nextUpload.IsZero() && !time.Now().Before(nextUpload) {
			op, prev := "upload-unchanged", s.inventory(b)
			if s.rng.Float64() < c.deltaFraction {
				s.bump[s.rng.IntN(len(b.inv.Packages))]++
				op = "upload-delta"
			}
			_ = s.upload(ctx, b, rec, op, prev)
			nextUpload = nextUpload.Add(c.uploadEvery)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func printPhase(name string, pr *phaseReport) {
	fmt.Printf("== %s: %.0f s\n", name, pr.Seconds)
	fmt.Printf("  %-27s %7s %6s %7s %9s %9s %9s %9s\n", "operation", "count", "errors", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms")
	for _, o := range pr.Ops {
		fmt.Printf("  %-27s %7d %6d %7.1f %9.1f %9.1f %9.1f %9.1f\n", o.Op, o.Count, o.Errors, o.PerSecond, o.P50, o.P95, o.P99, o.Max)
		if o.FirstError != "" {
			fmt.Printf("    first error: %.300s\n", o.FirstError)
		}
	}
	if f := pr.Server; f != nil {
		fmt.Printf("  server: %.1f s CPU = %.1f%% of a core; RSS mean %.0f MB, max %.0f MB, end %.0f MB; peak (VmHWM) %.0f MB; %d fds, %d threads\n",
			f.CPUSeconds, f.CPUPercentCore, f.RSSMeanMB, f.RSSMaxMB, f.RSSEndMB, f.HWMMB, f.FDsEnd, f.ThreadsEnd)
	}
}
