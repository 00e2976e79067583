package vulndb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

// LookupDirect answers as Lookup does, and Enrichments gathers CVSS from every source's record
// that names the ID (here a Bitnami record scoring a CVE that the Go record leaves unscored).
func TestLookupDirectAndEnrichments(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "v.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mod := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	fill := func(advs ...model.Advisory) func(context.Context, feed.Sink) error {
		return func(_ context.Context, s feed.Sink) error {
			for i := range advs {
				if err := s.Advisory(&advs[i]); err != nil {
					return err
				}
			}
			return nil
		}
	}
	goRec := model.Advisory{Source: "osv", ID: "GO-2024-2687", Aliases: []string{"CVE-2023-45288"}, Ecosystem: "Go", Package: "stdlib",
		Modified: mod, Ranges: []model.Range{{Type: "SEMVER", Events: []model.Event{{Introduced: "0"}, {Fixed: "1.21.9"}}}}}
	bitRec := model.Advisory{Source: "osv", ID: "BIT-golang-2023-45288", Aliases: []string{"CVE-2023-45288"}, Ecosystem: "Bitnami", Package: "golang",
		Modified: mod, Ranges: []model.Range{{Type: "SEMVER", Events: []model.Event{{Introduced: "0"}, {Fixed: "1.21.9"}}}},
		CVSS: []model.CVSS{{Source: "bit", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", Score: 7.5}}}
	if _, err := db.ImportSource(ctx, "osv/test", SourceMeta{}, fill(goRec, bitRec)); err != nil {
		t.Fatal(err)
	}
	direct, err := db.LookupDirect(ctx, "Go", "stdlib")
	if err != nil || len(direct) != 1 || direct[0].ID != "GO-2024-2687" || len(direct[0].Ranges) != 1 {
		t.Fatalf("LookupDirect = %+v, %v", direct, err)
	}
	indexed, _ := db.Lookup(ctx, "Go", "stdlib")
	if len(indexed) != 1 || indexed[0].ID != direct[0].ID {
		t.Fatalf("Lookup and LookupDirect disagree: %+v", indexed)
	}
	v, err := db.Enrichments(ctx, "CVE-2023-45288")
	if err != nil || v == nil || len(v.CVSS) != 1 || v.CVSS[0].Score != 7.5 {
		t.Fatalf("Enrichments = %+v, %v", v, err)
	}
	if v, err := db.Enrichments(ctx, "CVE-1999-0001"); err != nil || v != nil {
		t.Fatalf("an unknown ID has no enrichment: %+v %v", v, err)
	}
}
