package vulndb

import (
	"context"
	"sync"
	"testing"
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
