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
		benchDB = openVulndata(b)
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
