package store

import (
	"cmp"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

// TestListingPlans lists a fleet large enough that findingPlan must choose between walking the sort
// index and seeking a filter's index, checks which it chooses, and checks that every plan returns the
// same pages as sorting the matches in Go, following page tokens to the end.
func TestListingPlans(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		// 40 hosts × 100 findings. Every finding lists "common"; one in 1,000 also lists "rare" and
		// one in 4 "quarter" (findings listing two packages); one in 20 is suppressed; no image and
		// no function.
		var all []model.Finding
		for r := 0; r < 40; r++ {
			res := fmt.Sprintf("i-%03d", r)
			seedResource(t, s, model.Resource{Account: acctA, ID: res, Type: model.ResourceHost})
			var batch []model.Finding
			for k := 0; k < 100; k++ {
				n := r*100 + k
				sev := []string{"LOW", "MEDIUM", "HIGH", "CRITICAL"}[n*7%4]
				f := finding(acctA, res, fmt.Sprintf("CVE-2026-%05d", k), sev, func(f *model.Finding) {
					f.EPSS = &model.EPSS{Score: float64(n*37%1000) / 1000}
					f.Packages = []model.VulnerablePackage{{Name: "common", Version: "1"}}
					if n%1000 == 7 {
						f.Packages = append(f.Packages, model.VulnerablePackage{Name: "rare", Version: "2"})
					}
					if n%4 == 1 {
						f.Packages = append(f.Packages, model.VulnerablePackage{Name: "quarter", Version: "3"})
					}
					if n%20 == 3 {
						f.Status = model.FindingSuppressed
					}
				})
				batch = append(batch, f)
			}
			must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: batch}))
			all = append(all, batch...)
		}
		const pageSize = 50
		for _, tc := range []struct {
			name   string
			f      model.FindingFilter
			match  func(model.Finding) bool
			sqlite string // the index SQLite reads
			seek   bool
			pgWalk bool // PostgreSQL's planner chooses (an order its index gives)
		}{
			{"dense package", model.FindingFilter{PackageNames: []string{"common"}}, func(model.Finding) bool { return true },
				"findings_sort_severity", false, false},
			{"rare package", model.FindingFilter{PackageNames: []string{"rare"}}, func(f model.Finding) bool { return lists(f, "rare") },
				"sqlite_autoindex_findings_1", true, false},
			{"resource type matching nothing", model.FindingFilter{ResourceTypes: []string{model.ResourceFunction}}, func(model.Finding) bool { return false },
				"findings_rtype", true, false},
			{"rare status", model.FindingFilter{Statuses: []string{model.FindingSuppressed}}, func(f model.Finding) bool { return f.Status == model.FindingSuppressed },
				"findings_status", true, false},
			// Between a fifth of probeRows (2,000 here) and probeRows: walked, on PostgreSQL against
			// the matches hashed.
			{"quarter package", model.FindingFilter{PackageNames: []string{"quarter"}}, func(f model.Finding) bool { return lists(f, "quarter") },
				"findings_sort_severity", false, false},
			{"one vulnerability", model.FindingFilter{VulnerabilityIDs: []string{"CVE-2026-00042"}}, func(f model.Finding) bool { return f.VulnerabilityID == "CVE-2026-00042" },
				"findings_vuln", true, true},
			{"dense status", model.FindingFilter{Statuses: []string{model.FindingActive}}, func(f model.Finding) bool { return f.Status == model.FindingActive },
				"findings_sort_severity", false, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				plan, err := s.findingPlan(ctx, []string{acctA}, tc.f, sortColumns[SortSeverity].index, pageSize)
				must(t, err)
				seek := tc.seek && (e.name == "sqlite" || !tc.pgWalk)
				if plan.seek != seek || e.name == "sqlite" && plan.from != "findings f INDEXED BY "+tc.sqlite {
					t.Errorf("plan %+v, want seek=%v on %s", plan, tc.seek, tc.sqlite)
				}
				if hash := e.name == "postgres" && tc.name == "quarter package"; plan.corr.hashPackages != hash {
					t.Errorf("plan %+v, want hashPackages=%v", plan, hash)
				}
				for _, q := range []struct {
					sort SortField
					asc  bool
				}{{SortSeverity, false}, {SortEPSS, true}} {
					var want []string
					var matches []model.Finding
					for _, f := range all {
						if tc.match(f) {
							matches = append(matches, f)
						}
					}
					slices.SortFunc(matches, func(a, b model.Finding) int {
						c := 0
						if q.sort == SortSeverity {
							c = cmp.Compare(severityRank[a.Severity], severityRank[b.Severity])
						} else {
							c = cmp.Compare(a.EPSS.Score, b.EPSS.Score)
						}
						if c == 0 {
							c = cmp.Compare(a.ID, b.ID)
						}
						if !q.asc {
							c = -c
						}
						return c
					})
					for _, f := range matches {
						want = append(want, f.ID)
					}
					var got []string
					fq := FindingQuery{Filter: tc.f, Sort: q.sort, Ascending: q.asc, PageSize: pageSize}
					for {
						p, err := s.ListFindings(ctx, []string{acctA}, fq)
						must(t, err)
						for _, f := range p.Findings {
							got = append(got, f.ID)
						}
						if p.NextToken == "" {
							break
						}
						fq.PageToken = p.NextToken
					}
					if !slices.Equal(got, want) {
						t.Errorf("sort %s asc=%v: got %d findings, want %d (first difference at %d)", q.sort, q.asc, len(got), len(want), firstDiff(got, want))
					}
				}
			})
		}
	})
}

// TestListingPlansFromStatistics: once PostgreSQL has statistics, a dense low-cardinality filter is
// walked on its estimate alone and rare ones are still counted and sought.
func TestListingPlansFromStatistics(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		if e.name != "postgres" {
			return
		}
		seedAccounts(t, s, acctA)
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
		var batch []model.Finding
		for k := 0; k < 5000; k++ {
			batch = append(batch, finding(acctA, "i-1", fmt.Sprintf("CVE-2026-%05d", k), "HIGH", func(f *model.Finding) {
				if k%100 == 0 {
					f.Status = model.FindingSuppressed
				}
			}))
		}
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: batch}))
		_, err := s.db.ExecContext(ctx, `ANALYZE findings`)
		must(t, err)
		for _, tc := range []struct {
			f    model.FindingFilter
			seek bool
		}{
			{model.FindingFilter{Statuses: []string{model.FindingActive}}, false},
			{model.FindingFilter{Statuses: []string{model.FindingSuppressed}}, true},
			{model.FindingFilter{ResourceTypes: []string{model.ResourceImage}}, true},
		} {
			plan, err := s.findingPlan(ctx, []string{acctA}, tc.f, sortColumns[SortSeverity].index, 100)
			must(t, err)
			if plan.seek != tc.seek {
				t.Errorf("%+v: plan %+v, want seek=%v", tc.f, plan, tc.seek)
			}
		}
	})
}

func lists(f model.Finding, pkg string) bool {
	return slices.ContainsFunc(f.Packages, func(p model.VulnerablePackage) bool { return p.Name == pkg })
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestOptimizeGathersStatistics: SQLite's planner has statistics for the findings indexes once
// Optimize ran after a load, and a second run is harmless.
func TestOptimizeGathersStatistics(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedFindings(t, s)
		must(t, s.Optimize(ctx))
		must(t, s.Optimize(ctx))
		if e.name != "sqlite" {
			return
		}
		var n int
		must(t, s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'findings' AND idx = 'findings_status'`).Scan(&n))
		if n != 1 {
			t.Errorf("findings_status has %d statistics rows, want 1", n)
		}
	})
}

// TestSortIndexFiltersInIndex: when a page walks a sort index, its low-cardinality filters are
// tested on the index entries, in both dialects' plans. On PostgreSQL an entry's INCLUDE column is
// only tested after its row's visibility, so a walk past many non-matching entries visited the
// heap for each wherever the visibility map was not yet set (after every large feed delta).
func TestSortIndexFiltersInIndex(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
		var batch []model.Finding
		for k := 0; k < 2000; k++ {
			batch = append(batch, finding(acctA, "i-1", fmt.Sprintf("CVE-2026-%05d", k), []string{"HIGH", "CRITICAL"}[k%2], func(f *model.Finding) {
				f.RiskScore.Score = float64(k%100) / 10
				if k%3 == 0 {
					f.FixAvailable = model.No
				}
			}))
		}
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: batch}))
		conn, err := s.db.Conn(ctx)
		must(t, err)
		defer conn.Close()
		explain := `EXPLAIN QUERY PLAN`
		if e.name == "postgres" {
			explain = `EXPLAIN`
			// Walk the sort index whatever this small table's costs say: the test is about what
			// the walk tests where.
			for _, set := range []string{`SET enable_seqscan = off`, `SET enable_bitmapscan = off`, `SET enable_sort = off`} {
				_, err := conn.ExecContext(ctx, set)
				must(t, err)
			}
			defer conn.ExecContext(ctx, `RESET ALL`)
		}
		for _, sf := range []SortField{SortRiskScore, SortUpdatedAt, SortSeverity} {
			col, index := sortColumns[sf].col, sortColumns[sf].index
			from := "findings f"
			if e.name == "sqlite" {
				from += " INDEXED BY " + index
			}
			text := planText(t, conn, explain+` SELECT f.id FROM `+from+` WHERE f.account = '`+acctA+`'
				AND f.severity_rank IN (5) AND f.fix_available IN ('NO') AND f.status IN ('ACTIVE')
				ORDER BY f.`+col+` DESC, f.id DESC LIMIT 50`)
			switch e.name {
			case "postgres":
				if !strings.Contains(text, index) || strings.Contains(text, "Filter:") {
					t.Errorf("sort %s: the filter is not an index condition of %s:\n%s", sf, index, text)
				}
			case "sqlite":
				if !strings.Contains(text, "COVERING INDEX "+index) {
					t.Errorf("sort %s: the walk is not answered by %s alone:\n%s", sf, index, text)
				}
			}
		}
	})
}

// TestResourceStateReadsIndexOnly: the open-finding figures every submission reads come from the
// resource index alone, not from each of the resource's finding rows.
func TestResourceStateReadsIndexOnly(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		for _, id := range []string{"i-1", "i-2", "i-3"} {
			seedResource(t, s, model.Resource{Account: acctA, ID: id, Type: model.ResourceHost})
			var batch []model.Finding
			for k := 0; k < 300; k++ {
				batch = append(batch, finding(acctA, id, fmt.Sprintf("CVE-2026-%05d", k), "HIGH"))
			}
			must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: batch}))
		}
		conn, err := s.db.Conn(ctx)
		must(t, err)
		defer conn.Close()
		explain, want := `EXPLAIN QUERY PLAN `, "COVERING INDEX findings_resource"
		if e.name == "postgres" {
			// An index-only scan is what the index makes possible; whether the planner takes it
			// depends on the visibility map, which VACUUM sets.
			_, err := conn.ExecContext(ctx, `VACUUM ANALYZE findings`)
			must(t, err)
			for _, set := range []string{`SET enable_seqscan = off`, `SET enable_bitmapscan = off`} {
				_, err := conn.ExecContext(ctx, set)
				must(t, err)
			}
			defer conn.ExecContext(ctx, `RESET ALL`)
			explain, want = `EXPLAIN `, "Index Only Scan using findings_resource"
		}
		if text := planText(t, conn, explain+s.rebind(resourceStateQuery), model.FindingActive, model.FindingClosed, acctA, "i-2"); !strings.Contains(text, want) {
			t.Errorf("the resource state is not read from the index alone:\n%s", text)
		}
		st, err := s.ResourceState(ctx, acctA, "i-2", model.ScanPackage)
		must(t, err)
		if st.ActiveFindings != 300 {
			t.Errorf("active findings = %d, want 300", st.ActiveFindings)
		}
	})
}

// planText runs an EXPLAIN on conn and returns its plan's lines (the last column of each row:
// SQLite's detail, PostgreSQL's only column).
func planText(t *testing.T, conn *sql.Conn, explain string, args ...any) string {
	t.Helper()
	rows, err := conn.QueryContext(ctx, explain, args...)
	must(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	must(t, err)
	var plan []string
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		must(t, rows.Scan(vals...))
		plan = append(plan, fmt.Sprint(*vals[len(vals)-1].(*any)))
	}
	must(t, rows.Err())
	return strings.Join(plan, "\n")
}
