package vulndb

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

var (
	benchOnce sync.Once
	benchDB   *DB
)

// BenchmarkLookup measures one package lookup against all of vulndata (the index is built before
// the timer starts). The cases span a typical package and the worst one (Go's stdlib).
func BenchmarkLookup(b *testing.B) {
	benchOnce.Do(func() {
		benchDB = openVulndata(b, true)
		if _, err := benchDB.BuildIndex(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
	ctx := context.Background()
	for _, c := range []struct{ name, eco, pkg string }{
		{"typical", "Bitnami", "apache"},
		{"pypi-normalized", "PyPI", "Django"},
		{"miss", "npm", "left-pad"},
		{"alma-openssl", "AlmaLinux:8", "openssl"},
		{"worst-go-stdlib", "Go", "stdlib"},
	} {
		b.Run(c.name, func(b *testing.B) {
			advs, _ := benchDB.Lookup(ctx, c.eco, c.pkg)
			b.ReportMetric(float64(len(advs)), "advisories")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := benchDB.Lookup(ctx, c.eco, c.pkg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookupCold measures a package's first lookup, which decodes its advisories from the
// arena (later lookups hit the cache measured by BenchmarkLookup).
func BenchmarkLookupCold(b *testing.B) {
	benchOnce.Do(func() {
		benchDB = openVulndata(b, true)
		if _, err := benchDB.BuildIndex(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
	ctx := context.Background()
	idx, err := benchDB.loadIndex(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, eco, pkg string }{
		{"typical-pypi-urllib3", "PyPI", "urllib3"},
		{"typical-crate-time", "crates.io", "time"},
		{"alma-openssl", "AlmaLinux:8", "openssl"},
		{"bitnami-apache", "Bitnami", "apache"},
		{"worst-go-stdlib", "Go", "stdlib"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := &idx.slots[idx.keys[pkgKey(c.eco, c.pkg)]]
			b.ReportMetric(float64(len(s.ents)), "advisories")
			b.ReportAllocs()
			for b.Loop() {
				s.decoded.Store(nil)
				if _, err := idx.decode(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookupColdAll decodes every package of the database once per iteration (the cost of a
// first lookup of each) and reports the distribution per package: most packages have a handful of
// advisories, a few (Go's stdlib, Bitnami's images) hundreds.
func BenchmarkLookupColdAll(b *testing.B) {
	benchOnce.Do(func() {
		benchDB = openVulndata(b, true)
		if _, err := benchDB.BuildIndex(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
	idx, err := benchDB.loadIndex(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	per := make([]time.Duration, 0, len(idx.slots))
	for b.Loop() {
		per = per[:0]
		for i := range idx.slots {
			s := &idx.slots[i]
			s.decoded.Store(nil)
			t0 := time.Now()
			if _, err := idx.decode(s); err != nil {
				b.Fatal(err)
			}
			per = append(per, time.Since(t0))
		}
	}
	slices.Sort(per)
	var sum time.Duration
	for _, d := range per {
		sum += d
	}
	q := func(f float64) float64 { return float64(per[int(f*float64(len(per)-1))].Nanoseconds()) }
	b.ReportMetric(float64(len(per)), "packages")
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(per)), "mean-ns/pkg")
	b.ReportMetric(q(0.5), "p50-ns/pkg")
	b.ReportMetric(q(0.99), "p99-ns/pkg")
	b.ReportMetric(q(0.999), "p999-ns/pkg")
	b.ReportMetric(q(1), "max-ns/pkg")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIndexAfterImport measures what the first lookup after a one-advisory import costs on all
// of vulndata: the index is patched for the package the change log names (a full rebuild is
// reported beside it as rebuild-ms).
func BenchmarkIndexAfterImport(b *testing.B) {
	benchOnce.Do(func() {
		benchDB = openVulndata(b, true)
	})
	ctx := context.Background()
	st, err := benchDB.BuildIndex(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	n := 0
	for b.Loop() {
		n++
		a := model.Advisory{Source: "bench", ID: "VIGIL-BENCH-PATCH-1", Ecosystem: "PyPI", Package: "requests",
			Modified: time.Unix(int64(1_700_000_000+n), 0).UTC(), Versions: []string{"2.0.0"}}
		if _, err := benchDB.ImportSource(ctx, "bench", SourceMeta{Incremental: true}, func(_ context.Context, s feed.Sink) error {
			return s.Advisory(&a)
		}); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		advs, err := benchDB.Lookup(ctx, "PyPI", "requests")
		took += time.Since(t0)
		if err != nil || !slices.ContainsFunc(advs, func(x model.Advisory) bool { return x.ID == a.ID && x.Modified.Equal(a.Modified) }) {
			b.Fatalf("the import is not looked up: %v", err)
		}
	}
	b.ReportMetric(float64(took.Microseconds())/1000/float64(n), "patch-ms")
	b.ReportMetric(float64(st.BuildTime.Microseconds())/1000, "rebuild-ms")
}
