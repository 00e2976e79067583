package reeval

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	synth "github.com/vigil-sec/vigil/bench/fleet"
	"github.com/vigil-sec/vigil/model"
)

var oneVer string

// TEMPORARY profiling harness (not committed).
func BenchmarkZProf(b *testing.B) {
	bf := getFleet(b)
	ctx := context.Background()
	prof := os.Getenv("ZPROF")
	kind := os.Getenv("ZKIND")
	runtime.GC()
	runtime.MemProfileRate = 64 << 10
	if prof != "" {
		f, _ := os.Create(prof + ".heap0")
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
		f, _ = os.Create(prof + ".cpu")
		pprof.StartCPUProfile(f)
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			f, _ = os.Create(prof + ".heap1")
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}()
	}
	kinds := []string{kind, kind, kind}
	if kind == "all" {
		kinds = []string{"one", "one", "one", "mod", "mod", "mod", "new", "new", "new"}
	}
	var onePkg *Key
	for _, kind := range kinds {
		var d Delta
		seen := map[Key]bool{}
		if kind == "one" {
			if onePkg == nil {
				// the PyPI package version held by ~1% of hosts, as BenchmarkAdvisoryOnePercent picks
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
				k := Key{s(best.eco), s(best.name)}
				onePkg = &k
				_ = s(best.ver)
				bf.toggle = false
				oneVer = s(best.ver)
			}
			bf.nextID++
			k := bf.store.add(model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-ONE-%06d", bf.nextID), Ecosystem: onePkg.Ecosystem, Package: onePkg.Name,
				Severity: model.SeverityCritical, Summary: "synthetic benchmark advisory", Versions: []string{oneVer}})
			d.Packages = []Key{k}
		} else if kind == "new" {
			keys := bf.engine.idx.keys
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
		} else {
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
		}
		now := bf.tick()
		cpu0 := cpuTime()
		t0 := time.Now()
		outs, err := bf.engine.FeedDelta(ctx, d, bf.fl.load, now)
		if err != nil {
			b.Fatal(err)
		}
		ev := 0
		for _, o := range outs {
			ev += len(o.Result.Events)
		}
		b.Logf("%s: wall %v cpu %v events %d", kind, time.Since(t0), cpuTime()-cpu0, ev)
		bf.save(outs)
	}
}
