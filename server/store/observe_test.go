package store

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Observing moves lastObservedAt (column and every read of the document) and nothing else; a
// resource's closed findings are not observed; the batched upsert keeps the last version of a
// finding named twice; FindingsByVulnerability reads only the findings named, per resource.
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
		must(t, s.Observe(ctx, []Observation{{Account: acctA, ResourceID: "i-1", ScanType: model.ScanPackage, At: t2, FindingsBefore: t2}}))
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

		// A second resource holding CVE-2024-0001 too: only the pairs asked for are read.
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-2", Type: model.ResourceHost})
		d := finding(acctA, "i-2", "CVE-2024-0001", "HIGH")
		e2 := finding(acctA, "i-2", "CVE-2024-0002", "HIGH")
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{d, e2}}))
		named, err := s.FindingsByVulnerability(ctx, acctA, map[string][]string{
			"i-1": {"CVE-2024-0003", "CVE-2024-0001", "CVE-2099-9999"}, "i-2": {"CVE-2024-0002"}, "i-9": {"CVE-2024-0001"}})
		must(t, err)
		want := []string{a.ID, c.ID}
		slices.Sort(want)
		if got := ids(named["i-1"]); !slices.Equal(got, want) || len(named) != 2 || !slices.Equal(ids(named["i-2"]), []string{e2.ID}) {
			t.Errorf("named: %v", named)
		}
		if f := named["i-1"]; len(f) == 2 && (f[0].Title == "" || f[0].LastObservedAt.IsZero()) {
			t.Errorf("named findings are not whole: %+v", f[0])
		}
		if other, err := s.FindingsByVulnerability(ctx, acctB, map[string][]string{"i-1": {"CVE-2024-0001"}}); err != nil || len(other) != 0 {
			t.Errorf("another account's findings were read: %v %v", other, err)
		}
		if none, err := s.FindingsByVulnerability(ctx, acctA, nil); err != nil || len(none) != 0 {
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
		if r, err := s.GetResource(ctx, acctA, "i-1"); err != nil || r.InventoryHash != "" {
			t.Errorf("inventory hash before any inventory: %q %v", r.InventoryHash, err)
		}
	})
}

// Observations only move times forward: one written late (after a newer change) neither moves a
// time back nor touches a status, and findings observed more recently than FindingsBefore keep
// their time. ResourceState reports the figures the submission path decides on.
func TestObserveAndResourceState(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, "111111111111")
		seedResource(t, s, model.Resource{Account: "111111111111", ID: "i-web", Type: model.ResourceHost})
		old := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		recent := time.Date(2026, 11, 23, 11, 30, 0, 0, time.UTC)
		closed := finding("111111111111", "i-web", "CVE-2023-44487", "HIGH", func(f *model.Finding) { f.Status = model.FindingClosed })
		fresh := finding("111111111111", "i-web", "CVE-2024-6387", "HIGH", func(f *model.Finding) { f.LastObservedAt = recent })
		cov := model.Coverage{Account: "111111111111", ResourceID: "i-web", ResourceType: model.ResourceHost, ScanType: model.ScanPackage,
			Status: model.CoverageActive, Reason: model.ReasonSuccessful, ScanMode: "upload", LastScannedAt: recent}
		must(t, s.ApplyChanges(ctx, Changes{Account: "111111111111", Coverage: []model.Coverage{cov}, Upsert: []model.Finding{
			finding("111111111111", "i-web", "CVE-2022-0778", "HIGH"), closed, fresh}}))

		st, err := s.ResourceState(ctx, "111111111111", "i-web", model.ScanPackage)
		must(t, err)
		if st.ActiveFindings != 2 || !st.OldestObserved.Equal(old) || st.Coverage == nil || st.Coverage.Status != model.CoverageActive ||
			!st.Coverage.LastScannedAt.Equal(recent) {
			t.Fatalf("state: %+v (coverage %+v)", st, st.Coverage)
		}
		if none, err := s.ResourceState(ctx, "111111111111", "i-none", model.ScanPackage); err != nil || none.ActiveFindings != 0 ||
			!none.OldestObserved.IsZero() || none.Coverage != nil {
			t.Fatalf("state of an unknown resource: %+v %v", none, err)
		}

		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		must(t, s.Observe(ctx, []Observation{{Account: "111111111111", ResourceID: "i-web", ScanType: model.ScanPackage,
			At: now, FindingsBefore: now.Add(-time.Hour)}}))
		got := map[string]time.Time{}
		all, err := s.ResourceFindings(ctx, "111111111111", "i-web")
		must(t, err)
		for _, f := range all {
			got[f.VulnerabilityID] = f.LastObservedAt
		}
		if !got["CVE-2022-0778"].Equal(now) || !got["CVE-2024-6387"].Equal(recent) || !got["CVE-2023-44487"].Equal(old) {
			t.Errorf("lastObservedAt after observing: %v (want the old open one moved, the recent and the closed one kept)", got)
		}

		// Meanwhile the coverage changed (the resource was excluded): a late observation moves
		// neither its status nor its time back.
		later := now.Add(time.Minute)
		excl := cov
		excl.Status, excl.Reason, excl.LastScannedAt = model.CoverageInactive, model.ReasonExcludedByTag, later
		must(t, s.PutCoverage(ctx, "111111111111", excl))
		must(t, s.Observe(ctx, []Observation{{Account: "111111111111", ResourceID: "i-web", ScanType: model.ScanPackage, At: now}}))
		st, err = s.ResourceState(ctx, "111111111111", "i-web", model.ScanPackage)
		must(t, err)
		if st.Coverage.Status != model.CoverageInactive || st.Coverage.Reason != model.ReasonExcludedByTag || !st.Coverage.LastScannedAt.Equal(later) {
			t.Errorf("coverage after a late observation: %+v", st.Coverage)
		}
	})
}

// Reading by (resource, vulnerability) pairs probes the resource index with its whole key and scans
// nothing, here under the sampled statistics PRAGMA optimize left at 2.3 M findings. (The join this
// replaced stalled at that scale but plans well here too: the test pins the probe, it does not
// reproduce the stall.)
func TestFindingsByVulnerabilityPlan(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		if e.name != "sqlite" {
			t.Skip("PostgreSQL plans the join itself from its statistics")
		}
		seedAccounts(t, s, acctA)
		for r := 0; r < 12; r++ {
			res := "i-" + strconv.Itoa(r)
			seedResource(t, s, model.Resource{Account: acctA, ID: res, Type: model.ResourceHost})
			var batch []model.Finding
			for k := 0; k < 200; k++ {
				batch = append(batch, finding(acctA, res, "CVE-2025-"+strconv.Itoa(10000+k), "HIGH"))
			}
			must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: batch}))
		}
		must(t, s.Optimize(ctx))
		// The statistics PRAGMA optimize's sample gave at 2.3 M findings of one account.
		conn, err := s.db.Conn(ctx)
		must(t, err)
		defer conn.Close()
		for idx, stat := range map[string]string{"findings_resource": "2291267 1001 201 1", "findings_vuln": "2291267 1001 251 251 1",
			"sqlite_autoindex_findings_1": "2291267 1001 1", "findings_sort_severity": "2291267 1001 1001 1 1 1 1"} {
			_, err := conn.ExecContext(ctx, `DELETE FROM sqlite_stat1 WHERE idx = ?`, idx)
			must(t, err)
			_, err = conn.ExecContext(ctx, `INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('findings', ?, ?)`, idx, stat)
			must(t, err)
		}
		_, err = conn.ExecContext(ctx, `ANALYZE sqlite_schema`) // reload them
		must(t, err)
		rows, err := conn.QueryContext(ctx, `EXPLAIN QUERY PLAN `+s.byVulnerabilityQuery(), acctA, "i-1", "CVE-2025-10001")
		must(t, err)
		defer rows.Close()
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			must(t, rows.Scan(&id, &parent, &unused, &detail))
			plan = append(plan, detail)
		}
		must(t, rows.Err())
		if all := strings.Join(plan, "\n"); strings.Contains(all, "SCAN") ||
			!strings.Contains(all, "SEARCH f USING INDEX findings_resource (account=? AND resource_id=? AND vulnerability_id=?)") {
			t.Errorf("plan:\n%s", strings.Join(plan, "\n"))
		}
		got, err := s.FindingsByVulnerability(ctx, acctA, map[string][]string{"i-1": {"CVE-2025-10001", "CVE-2025-10002"}})
		must(t, err)
		if len(got["i-1"]) != 2 {
			t.Errorf("read %d findings, want 2", len(got["i-1"]))
		}
	})
}
