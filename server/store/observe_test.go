package store

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Observing moves lastObservedAt (column and every read of the document) and nothing else; a
// resource's closed findings are not observed; the batched upsert keeps the last version of a
// finding named twice; ResourceFindingsNamed reads only the findings named.
func TestObserveAndNamedReads(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
		a := finding(acctA, "i-1", "CVE-2024-0001", "HIGH")
		b := finding(acctA, "i-1", "CVE-2024-0002", "LOW")
		c := finding(acctA, "i-1", "CVE-2024-0003", "MEDIUM", func(f *model.Finding) { f.Status = model.FindingClosed })
		a2 := a
		a2.Title = "second version"
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{a, b, c, a2}}))

		t1 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Observed: []string{b.ID}, ObservedAt: t1}))
		t2 := t1.Add(time.Hour)
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, ObservedResources: []string{"i-1"}, ObservedAt: t2}))
		if err := s.ApplyChanges(ctx, Changes{Account: acctA, Observed: []string{b.ID}}); err == nil {
			t.Error("observing without a time succeeded")
		}

		got, err := s.ResourceFindings(ctx, acctA, "i-1")
		must(t, err)
		byID := map[string]model.Finding{}
		for _, f := range got {
			byID[f.ID] = f
		}
		if f := byID[a.ID]; !f.LastObservedAt.Equal(t2) || f.Title != "second version" || !f.UpdatedAt.Equal(a.UpdatedAt) {
			t.Errorf("a: lastObserved %v title %q updated %v", f.LastObservedAt, f.Title, f.UpdatedAt)
		}
		if f := byID[b.ID]; !f.LastObservedAt.Equal(t2) {
			t.Errorf("b: lastObserved %v, want %v", f.LastObservedAt, t2)
		}
		if f := byID[c.ID]; !f.LastObservedAt.Equal(c.LastObservedAt) {
			t.Errorf("a closed finding was observed: %v", f.LastObservedAt)
		}
		one, err := s.GetFinding(ctx, []string{acctA}, b.ID)
		must(t, err)
		if !one.LastObservedAt.Equal(t2) {
			t.Errorf("GetFinding: lastObserved %v", one.LastObservedAt)
		}
		page, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{Sort: SortLastObserved})
		must(t, err)
		if len(page.Findings) != 3 || !page.Findings[0].LastObservedAt.Equal(t2) || !page.Findings[2].LastObservedAt.Equal(c.LastObservedAt) {
			t.Errorf("ListFindings by lastObserved: %+v", page.Findings)
		}

		named, err := s.ResourceFindingsNamed(ctx, acctA, "i-1", []string{a.ID}, []string{"CVE-2024-0003", "CVE-2099-9999"})
		must(t, err)
		if got := ids(named); !slices.Equal(got, []string{a.ID, c.ID}) {
			t.Errorf("named: %v", got)
		}
		if none, err := s.ResourceFindingsNamed(ctx, acctA, "i-1", nil, nil); err != nil || len(none) != 0 {
			t.Errorf("nothing named: %v %v", none, err)
		}
	})
}

// SaveResource reports a change only when a field differs, and rewrites tags only then.
func TestSaveResourceChanged(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		r := model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost, Tags: map[string]string{"env": "prod"}}
		for i, want := range []bool{true, false} {
			changed, err := s.SaveResource(ctx, r)
			must(t, err)
			if changed != want {
				t.Errorf("save %d: changed %v, want %v", i, changed, want)
			}
		}
		r.Tags = map[string]string{"env": "dev"}
		changed, err := s.SaveResource(ctx, r)
		must(t, err)
		got, err := s.GetResource(ctx, acctA, "i-1")
		must(t, err)
		if !changed || got.Tags["env"] != "dev" {
			t.Errorf("new tags: changed %v, stored %v", changed, got.Tags)
		}
		var tag string
		must(t, s.queryRow(ctx, s.db, `SELECT value FROM resource_tags WHERE account = ? AND resource_id = ? AND key = 'env'`, acctA, "i-1").Scan(&tag))
		if tag != "dev" {
			t.Errorf("resource_tags holds env=%s", tag)
		}
		h, err := s.InventoryHash(ctx, acctA, "i-1")
		if err != nil || h != "" {
			t.Errorf("inventory hash before any inventory: %q %v", h, err)
		}
	})
}
