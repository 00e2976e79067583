package reeval

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Benchmarks over a synthetic fleet (see fleet_test.go). VIGIL_BENCH_HOSTS sets the fleet size
// (default 10,000 hosts × 500 packages); the fleet is built once per test binary run.
//
//	go test -run XXX -bench . -benchtime 3x ./server/reeval/

type benchFleet struct {
	corpus *corpus
	store  *memStore
	engine *Engine
	fl     *fleet
	hosts  int
	now    time.Time
	load   time.Duration
	heapMB float64
	nextID int
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

func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

func getFleet(b *testing.B) *benchFleet {
	b.Helper()
	if _, err := os.Stat(pypiZip); err != nil {
		b.Skip("benchmark corpus not present")
	}
	fleetOnce.Do(func() {
		ctx := context.Background()
		c, err := loadCorpus(ctx)
		if err != nil {
			fleetErr = err
			return
		}
		bf := &benchFleet{corpus: c, store: c.store(), hosts: benchHosts(), now: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
			fl: &fleet{stored: map[Ref][]model.Finding{}}}
		bf.engine = New(bf.store, Config{})
		start := time.Now()
		for i := 0; i < bf.hosts; i++ {
			r := model.Resource{Account: "111122223333", ID: fmt.Sprintf("i-%08x", i), Type: model.ResourceHost}
			o, err := bf.engine.Submit(ctx, Submission{Resource: r, Inventory: c.inventory(i, 500)}, bf.now)
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
		bf.fl.stored[o.Ref] = o.Result.Findings
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

// BenchmarkFeedDelta1000 — (a): 1,000 new advisories on random keys across the three ecosystems.
func BenchmarkFeedDelta1000(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	keys := bf.engine.idx.keys
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var d Delta
		seen := map[Key]bool{}
		for j := 0; j < 1000; j++ {
			bf.nextID++
			k := keys[hash32("delta", strconv.Itoa(bf.nextID))%uint32(len(keys))]
			// Affects one of the versions hosts hold: about a third of the key's holders.
			vs := bf.corpus.keyVersions[k]
			bf.store.add(model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-NEW-%06d", bf.nextID), Ecosystem: k.Ecosystem, Package: k.Name,
				Severity: model.SeverityHigh, Summary: "synthetic benchmark advisory", Versions: []string{vs[bf.nextID%len(vs)]}})
			if !seen[k] {
				seen[k] = true
				d.Packages = append(d.Packages, k)
			}
		}
		now := bf.tick()
		b.StartTimer()
		outs, err := bf.engine.FeedDelta(ctx, d, bf.fl.load, now)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		events := 0
		for _, o := range outs {
			events += len(o.Result.Events)
		}
		bf.save(outs)
		b.ReportMetric(float64(len(outs)), "resources")
		b.ReportMetric(float64(events), "events")
		b.StartTimer()
	}
}

// BenchmarkAdvisoryOnePercent — (b): one new advisory whose package about 1% of hosts hold.
func BenchmarkAdvisoryOnePercent(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	// The key whose holder count is closest to 1% of the fleet.
	target := bf.hosts / 100
	var best Key
	bestD := -1
	for id, k := range bf.engine.idx.keys {
		d := len(bf.engine.idx.postings[id]) - target
		if d < 0 {
			d = -d
		}
		if bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bf.nextID++
		k := bf.store.add(model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-ONE-%06d", bf.nextID), Ecosystem: best.Ecosystem, Package: best.Name,
			Severity: model.SeverityCritical, Summary: "synthetic benchmark advisory",
			Ranges: []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{{Introduced: "0"}, {Fixed: "99999"}}}}})
		now := bf.tick()
		b.StartTimer()
		outs, err := bf.engine.FeedDelta(ctx, Delta{Packages: []Key{k}}, bf.fl.load, now)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		created := 0
		for _, o := range outs {
			for _, e := range o.Result.Events {
				if e.Type == model.EventFindingCreated {
					created++
				}
			}
		}
		bf.save(outs)
		b.ReportMetric(float64(len(outs)), "resources")
		b.ReportMetric(float64(created), "created")
		b.StartTimer()
	}
}

// BenchmarkUnchangedResubmit — (c): a host resubmits the inventory it sent last time.
func BenchmarkUnchangedResubmit(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	r := model.Resource{Account: "111122223333", ID: fmt.Sprintf("i-%08x", 7), Type: model.ResourceHost}
	inv := bf.corpus.inventory(7, 500)
	prev := bf.fl.stored[Ref{r.Account, r.ID}]
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
}

// BenchmarkChangedPackage: a host upgrades one package (one re-match, regroup, reconcile).
func BenchmarkChangedPackage(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	r := model.Resource{Account: "111122223333", ID: fmt.Sprintf("i-%08x", 9), Type: model.ResourceHost}
	invs := [2]*model.Inventory{bf.corpus.inventory(9, 500), bf.corpus.inventory(9, 500)}
	invs[1].Packages[0].Version += "+b1"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ref := Ref{r.Account, r.ID}
		bf.nextID++
		o, err := bf.engine.Submit(ctx, Submission{Resource: r, Inventory: invs[bf.nextID%2], Prev: bf.fl.stored[ref]}, bf.tick())
		if err != nil {
			b.Fatal(err)
		}
		if o.Matched != 1 {
			b.Fatalf("matched %d", o.Matched)
		}
		bf.fl.stored[ref] = o.Result.Findings
	}
}
