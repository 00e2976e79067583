package vulndb

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

// After an import the in-memory index is patched for the packages the change log names, not
// rebuilt, in this process and in another one that refreshes; what it answers is what a fresh
// build answers. A gap in the change log (pruned entries) forces a rebuild instead.
func TestIndexPatchedFromChangeLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.sqlite")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path) // a second server process
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mod := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)
	pypi := func(id, pkg, fixed string, aliases ...string) model.Advisory {
		return model.Advisory{Source: "osv", ID: id, Aliases: aliases, Ecosystem: "PyPI", Package: pkg, Modified: mod,
			Ranges: []model.Range{{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "0"}, {Fixed: fixed}}}}}
	}
	requests := pypi("GHSA-j8r2-6x86-q33q", "requests", "2.31.0", "CVE-2023-32681")
	urllib3 := pypi("GHSA-v845-jxx5-vc9f", "urllib3", "1.26.17", "CVE-2023-43804")
	jinja := pypi("GHSA-h5c8-rqwp-cp95", "Jinja2", "3.1.3", "CVE-2024-22195")
	django := pypi("GHSA-qcgg-j2x8-h9g8", "Django", "4.2.11", "CVE-2024-27351")
	imp := func(db *DB, incremental bool, advs ...model.Advisory) {
		t.Helper()
		_, err := db.ImportSource(ctx, "osv", SourceMeta{Incremental: incremental}, func(_ context.Context, s feed.Sink) error {
			for i := range advs {
				if err := s.Advisory(&advs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pkgs := []string{"requests", "urllib3", "jinja2", "django", "numpy"}
	agree := func(db *DB, what string) {
		t.Helper()
		for _, p := range pkgs {
			got, err := db.Lookup(ctx, "PyPI", p)
			if err != nil {
				t.Fatal(err)
			}
			want, err := db.LookupDirect(ctx, "PyPI", p)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 && len(want) == 0 {
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: Lookup(%s) = %+v, the database holds %+v", what, p, got, want)
			}
		}
	}
	builds := func(db *DB) int {
		db.idxMu.Lock()
		defer db.idxMu.Unlock()
		return db.builds
	}

	imp(a, false, requests, urllib3, django)
	agree(a, "first import")
	agree(b, "first import, other process")

	// Re-rated with a new alias, one added under another spelling, one withdrawn.
	requests.Aliases = append(requests.Aliases, "PYSEC-2023-74")
	requests.Severity = model.SeverityMedium
	withdrawn := mod.Add(time.Hour)
	urllib3.Withdrawn = &withdrawn
	imp(a, true, requests, urllib3, jinja)
	if advs, _ := a.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 0 {
		t.Fatalf("a withdrawn advisory is still looked up: %+v", advs)
	}
	if advs, _ := a.Lookup(ctx, "PyPI", "jinja2"); len(advs) != 1 || advs[0].ID != jinja.ID {
		t.Fatalf("the added advisory is not looked up: %+v", advs)
	}
	if advs, _ := a.Lookup(ctx, "PyPI", "requests"); len(advs) != 1 || len(advs[0].Aliases) != 2 || advs[0].Severity != model.SeverityMedium {
		t.Fatalf("the changed advisory is looked up as it was: %+v", advs)
	}
	agree(a, "after a delta")
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	agree(b, "after a delta, other process")
	if n, m := builds(a), builds(b); n != 1 || m != 1 {
		t.Fatalf("indexes built %d and %d times; a delta should patch them", n, m)
	}

	// Patches stack: the second one keeps the first one's packages.
	django.Ranges[0].Events[1].Fixed = "4.2.12"
	imp(a, true, django)
	agree(a, "after a second delta")
	if builds(a) != 1 {
		t.Fatal("a second delta rebuilt the index")
	}

	// b is now two versions behind; pruning the log of the first leaves a gap it cannot patch.
	v, err := a.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	imp(a, true, pypi("GHSA-9wx4-h78v-vm56", "requests", "2.32.0", "CVE-2024-35195"))
	if err := a.PruneChanges(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	agree(b, "after a pruned change log")
	if builds(b) != 2 {
		t.Fatalf("b built its index %d times; a gap in the change log must rebuild it", builds(b))
	}
}
