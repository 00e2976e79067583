package reeval

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	synth "github.com/vigil-sec/vigil/bench/fleet"
	"github.com/vigil-sec/vigil/model"
)

// Benchmarks over a synthetic fleet (see fleet_test.go). VIGIL_BENCH_HOSTS sets the fleet size
// (default 10,000 hosts × 500 packages); the fleet is built once per test binary run.
//
//	go test -run XXX -bench . -benchtime 3x ./server/reeval/

type benchFleet struct {
	corpus *synth.Corpus
	store  *memStore
	engine *Engine
	fl     *fleet
	hosts  int
	now    time.Time
	load   time.Duration
	heapMB float64
	nextID int
	toggle bool // BenchmarkChangedPackage: which of two inventories was sent last
}

var (
	fleetOnce sync.Once
	theFleet  *benchFleet
	fleetErr  error
)

func benchHosts() int {
	if n, err := strconv.Atoi(os.Getenv("VIGIL_BENCH_HOSTS")); err == nil && n > 0 {
		return n
	}
	return 10_000
}

// cpuTime is the process's user + system CPU time: on a shared machine it tells the work apart
// from the wait.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

func getFleet(b *testing.B) *benchFleet {
	b.Helper()
	if !synth.Available() {
		b.Skip("benchmark corpus not present")
	}
	fleetOnce.Do(func() {
		ctx := context.Background()
		c, err := synth.Load(ctx)
		if err != nil {
			fleetErr = err
			return
		}
		bf := &benchFleet{corpus: c, store: newMemStore(c), hosts: benchHosts(), now: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
			fl: &fleet{stored: map[Ref][]model.Finding{}}}
		bf.engine = New(bf.store, Config{})
		start := time.Now()
		for i := 0; i < bf.hosts; i++ {
			r := model.Resource{Account: "111122223333", ID: fmt.Sprintf("i-%08x", i), Type: model.ResourceHost}
			o, err := bf.engine.Submit(ctx, Submission{Resource: r, Inventory: c.Inventory(i, 500)}, bf.now)
			if err != nil {
				fleetErr = err
				return
			}
			bf.fl.stored[o.Ref] = o.Result.Findings
		}
		bf.load = time.Since(start)
		bf.heapMB = heapMB()
		theFleet = bf
	})
	if fleetErr != nil {
		b.Fatal(fleetErr)
	}
	return theFleet
}

func (bf *benchFleet) tick() time.Time {
	bf.now = bf.now.Add(time.Minute)
	return bf.now
}

func (bf *benchFleet) save(outs []Outcome) {
	for _, o := range outs {
		if len(o.Result.Findings) > 0 || len(o.Result.Observed) > 0 || len(o.Result.Deletes) > 0 {
			bf.fl.stored[o.Ref] = apply(bf.fl.stored[o.Ref], o)
		}
	}
}

// BenchmarkFleetLoad reports the one-off cost of loading the fleet and the memory it holds.
func BenchmarkFleetLoad(b *testing.B) {
	bf := getFleet(b)
	st := bf.engine.Stats()
	findings := 0
	for _, fs := range bf.fl.stored {
		findings += len(fs)
	}
	for i := 0; i < b.N; i++ {
		_ = bf.engine.Stats()
	}
	b.ReportMetric(bf.load.Seconds(), "load-s")
	b.ReportMetric(bf.heapMB, "heap-MB")
	b.ReportMetric(float64(st.Pairs*4)/(1<<20), "postings-MB")
	b.ReportMetric(float64(st.Packages), "packages")
	b.ReportMetric(float64(st.Keys), "keys")
	b.ReportMetric(float64(findings)/float64(bf.hosts), "findings/host")
}

// BenchmarkAdvisoryOnePercent — (b): one new advisory whose package about 1% of hosts hold.
func BenchmarkAdvisoryOnePercent(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	// The (package, version) whose holder count is closest to 1% of the fleet: the new advisory
	// affects exactly that version (every holder of the package is re-matched, 1% gain a finding).
	target := bf.hosts / 100
	type pv struct{ eco, name, ver uint32 }
	count := map[pv]int{}
	for _, ent := range bf.engine.entries {
		for _, r := range ent.pkgs {
			if bf.engine.strs.str(r.eco) == "PyPI" {
				count[pv{r.eco, r.name, r.ver}]++
			}
		}
	}
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
	s := bf.engine.strs.str
	b.Logf("advisory on %s %s %s, held by %d hosts", s(best.eco), s(best.name), s(best.ver), count[best])
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bf.nextID++
		k := bf.store.add(model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-ONE-%06d", bf.nextID), Ecosystem: s(best.eco), Package: s(best.name),
			Severity: model.SeverityCritical, Summary: "synthetic benchmark advisory", Versions: []string{s(best.ver)}})
		now := bf.tick()
		cpu0 := cpuTime()
		b.StartTimer()
		outs, err := bf.engine.FeedDelta(ctx, Delta{Packages: []Key{k}}, LoadFunc(bf.fl.load), now)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric((cpuTime()-cpu0).Seconds()*1000, "cpu-ms")
		created, touched := 0, 0
		for _, o := range outs {
			if !o.Unchanged {
				touched++
			}
			for _, e := range o.Result.Events {
				if e.Type == model.EventFindingCreated {
					created++
				}
			}
		}
		bf.save(outs)
		b.ReportMetric(float64(len(outs)), "rematched-resources")
		b.ReportMetric(float64(touched), "reconciled-resources")
		b.ReportMetric(float64(created), "created")
		b.StartTimer()
	}
}

// BenchmarkUnchangedResubmit — (c): a host resubmits the inventory it sent last time: "diffed"
// compares the 500 packages; "hash" is recognised by model.Resource.InventoryHash.
func BenchmarkUnchangedResubmit(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	r := model.Resource{Account: "111122223333", ID: fmt.Sprintf("i-%08x", 7), Type: model.ResourceHost}
	inv := bf.corpus.Inventory(7, 500)
	prev := bf.fl.stored[Ref{r.Account, r.ID}]
	for _, hash := range []string{"", "sha256:0b5e7a"} {
		name := "diffed"
		if hash != "" {
			name = "hash"
		}
		b.Run(name, func(b *testing.B) {
			r.InventoryHash = hash
			if _, err := bf.engine.Submit(ctx, Submission{Resource: r, Inventory: inv, Prev: prev}, bf.now); err != nil {
				b.Fatal(err) // records the hash
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				o, err := bf.engine.Submit(ctx, Submission{Resource: r, Inventory: inv, Prev: prev}, bf.now)
				if err != nil {
					b.Fatal(err)
				}
				if !o.Unchanged {
					b.Fatal("resubmission seen as a change")
				}
			}
			b.ReportMetric(float64(len(prev)), "findings")
		})
	}
}

// BenchmarkChangedPackage: a host upgrades one package (one re-match, regroup, reconcile).
func BenchmarkChangedPackage(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	r := model.Resource{Account: "111122223333", ID: fmt.Sprintf("i-%08x", 9), Type: model.ResourceHost}
	invs := [2]*model.Inventory{bf.corpus.Inventory(9, 500), bf.corpus.Inventory(9, 500)}
	invs[1].Packages[0].Version += "+b1"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ref := Ref{r.Account, r.ID}
		bf.toggle = !bf.toggle
		inv := invs[0]
		if bf.toggle {
			inv = invs[1]
		}
		o, err := bf.engine.Submit(ctx, Submission{Resource: r, Inventory: inv, Prev: bf.fl.stored[ref]}, bf.tick())
		if err != nil {
			b.Fatal(err)
		}
		if o.Matched != 1 {
			b.Fatalf("matched %d", o.Matched)
		}
		bf.fl.stored[ref] = apply(bf.fl.stored[ref], *o)
	}
}

// BenchmarkFeedDelta1000 — (a): a feed delta of 1,000 advisories.
//
//   - modified: 1,000 existing advisories republished (900 with only a new modified time, 100 with a
//     new severity), the usual shape of a day of OSV and tracker churn;
//   - new: 1,000 new advisories on packages the fleet holds, each affecting one of the versions
//     hosts run (about a third of each package's holders) — the worst case, where most of the
//     fleet gains findings.
func BenchmarkFeedDelta1000(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	run := func(b *testing.B, makeDelta func() Delta) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			d := makeDelta()
			now := bf.tick()
			cpu0 := cpuTime()
			b.StartTimer()
			outs, err := bf.engine.FeedDelta(ctx, d, LoadFunc(bf.fl.load), now)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric((cpuTime() - cpu0).Seconds(), "cpu-s")
			events, touched := 0, 0
			for _, o := range outs {
				events += len(o.Result.Events)
				if !o.Unchanged {
					touched++
				}
			}
			bf.save(outs)
			b.ReportMetric(float64(len(d.Packages)), "keys")
			b.ReportMetric(float64(len(outs)), "rematched-resources")
			b.ReportMetric(float64(touched), "reconciled-resources")
			b.ReportMetric(float64(events), "events")
			b.StartTimer()
		}
	}
	b.Run("modified", func(b *testing.B) {
		run(b, func() Delta {
			var d Delta
			seen := map[Key]bool{}
			advs := bf.corpus.Advisories
			for j := 0; j < 1000; j++ {
				bf.nextID++
				a := advs[synth.Hash32("mod", strconv.Itoa(bf.nextID))%uint32(len(advs))]
				a.Modified = bf.now.Add(time.Duration(bf.nextID) * time.Second)
				if j%10 == 0 {
					a.Severity = []string{model.SeverityLow, model.SeverityMedium, model.SeverityHigh, model.SeverityCritical}[bf.nextID%4]
				}
				k := bf.store.replace(a)
				if !seen[k] {
					seen[k] = true
					d.Packages = append(d.Packages, k)
				}
			}
			return d
		})
	})
	b.Run("new", func(b *testing.B) {
		keys := bf.engine.idx.keys
		run(b, func() Delta {
			var d Delta
			seen := map[Key]bool{}
			for j := 0; j < 1000; j++ {
				bf.nextID++
				k := keys[synth.Hash32("delta", strconv.Itoa(bf.nextID))%uint32(len(keys))]
				vs := bf.corpus.KeyVersions[synth.Key(k)]
				bf.store.add(model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-NEW-%06d", bf.nextID), Ecosystem: k.Ecosystem, Package: k.Name,
					Severity: model.SeverityHigh, Summary: "synthetic benchmark advisory", Versions: []string{vs[bf.nextID%len(vs)]}})
				if !seen[k] {
					seen[k] = true
					d.Packages = append(d.Packages, k)
				}
			}
			return d
		})
	})
}

// BenchmarkEngineMemory loads a fleet into an engine alone (outcomes discarded) and reports the
// heap it holds: the compact packages, the index, hits, memo and advisory cache.
func BenchmarkEngineMemory(b *testing.B) {
	if !synth.Available() {
		b.Skip("benchmark corpus not present")
	}
	ctx := context.Background()
	c, err := synth.Load(ctx)
	if err != nil {
		b.Fatal(err)
	}
	store := newMemStore(c)
	hosts := benchHosts()
	for i := 0; i < b.N; i++ {
		before := heapMB()
		e := New(store, Config{})
		now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
		for h := 0; h < hosts; h++ {
			r := model.Resource{Account: "111122223333", ID: fmt.Sprintf("i-%08x", h), Type: model.ResourceHost}
			if _, err := e.Submit(ctx, Submission{Resource: r, Inventory: c.Inventory(h, 500)}, now); err != nil {
				b.Fatal(err)
			}
		}
		after := heapMB()
		st := e.Stats()
		b.ReportMetric(after-before, "engine-MB")
		b.ReportMetric(float64(st.Pairs*4)/(1<<20), "postings-MB")
		b.ReportMetric(float64(st.Packages), "packages")
		b.ReportMetric(float64(st.HitPackages), "hit-packages")
		b.ReportMetric(float64(st.Strings), "strings")
		runtime.KeepAlive(e)
	}
}
