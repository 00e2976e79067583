package vulndb

import (
	"context"
	"fmt"
	"testing"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

// syntheticNVD delivers n CVEs shaped like NVD's: 2,000 products over 500 vendors, each CVE with
// one OR node of three ranges and, every fifth one, an AND configuration with an OS platform.
func syntheticNVD(n int, withConfigs bool) func(ctx context.Context, sink feed.Sink) error {
	return func(ctx context.Context, sink feed.Sink) error {
		for i := 0; i < n; i++ {
			crit := fmt.Sprintf("cpe:2.3:a:vendor%d:product%d:*:*:*:*:*:*:*:*", i%500, i%2000)
			cfgs := []model.CPEConfig{{Nodes: []model.CPENode{{Operator: "OR", Matches: []model.CPEMatch{
				{Criteria: crit, Vulnerable: true, VersionEndExcluding: "1.2.3"},
				{Criteria: crit, Vulnerable: true, VersionStartIncluding: "2.0", VersionEndExcluding: "2.4.1"},
				{Criteria: crit, Vulnerable: true, VersionStartIncluding: "3.0", VersionEndIncluding: "3.1"},
			}}}}}
			if i%5 == 0 {
				cfgs = append(cfgs, model.CPEConfig{Operator: "AND", Nodes: []model.CPENode{
					{Operator: "OR", Matches: []model.CPEMatch{{Criteria: crit, Vulnerable: true}}},
					{Operator: "OR", Matches: []model.CPEMatch{{Criteria: "cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*"}}},
				}})
			}
			e := &model.Enrichment{ID: fmt.Sprintf("CVE-2099-%05d", i), Description: "synthetic",
				CVSS: []model.CVSS{{Source: "nvd", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8}}, Configurations: cfgs}
			if !withConfigs {
				e.Configurations = nil
			}
			if err := sink.Enrich(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// BenchmarkCPEImport imports 20,000 synthetic NVD CVEs into an empty database, without and with
// their configurations; BenchmarkCPELookup looks up one (vendor, product) that 10 of them name.
func BenchmarkCPEImport(b *testing.B) {
	ctx := context.Background()
	for _, with := range []bool{false, true} {
		b.Run(fmt.Sprintf("configurations=%v", with), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db := newDB(b)
				b.StartTimer()
				if _, err := db.ImportSource(ctx, "nvd", SourceMeta{}, syntheticNVD(20000, with)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCPELookup(b *testing.B) {
	ctx := context.Background()
	db := newDB(b)
	if _, err := db.ImportSource(ctx, "nvd", SourceMeta{}, syntheticNVD(20000, true)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		vs, err := db.CPEVulns(ctx, "vendor7", "product7")
		if err != nil || len(vs) != 10 {
			b.Fatal(len(vs), err)
		}
	}
}
