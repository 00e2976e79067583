package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

// Aggregations sort by any count or by key, in either direction, and page without gaps.
func TestAggregatePage(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedFindings(t, s)
		both := []string{acctA, acctB}
		active := model.FindingFilter{Statuses: []string{model.FindingActive}}
		keys := func(rows []AggregateRow) []string {
			var out []string
			for _, r := range rows {
				out = append(out, r.Key)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			q    AggregateQuery
			want []string
		}{
			{"default", AggregateQuery{}, []string{"CVE-2021-44228", "CVE-2021-23337", "CVE-2024-0727", "CVE-2023-50495"}},
			{"all", AggregateQuery{Sort: AggSortAll}, []string{"CVE-2021-44228", "CVE-2024-0727", "CVE-2021-23337", "CVE-2023-50495"}},
			{"medium", AggregateQuery{Sort: AggSortMedium}, []string{"CVE-2024-0727", "CVE-2021-44228", "CVE-2021-23337", "CVE-2023-50495"}},
			{"critical ascending", AggregateQuery{Ascending: true}, []string{"CVE-2023-50495", "CVE-2024-0727", "CVE-2021-23337", "CVE-2021-44228"}},
			{"key", AggregateQuery{Sort: AggSortKey}, []string{"CVE-2021-23337", "CVE-2021-44228", "CVE-2023-50495", "CVE-2024-0727"}},
			{"key descending", AggregateQuery{Sort: AggSortKey, Descending: true}, []string{"CVE-2024-0727", "CVE-2023-50495", "CVE-2021-44228", "CVE-2021-23337"}},
		} {
			q := tc.q
			q.GroupBy, q.Filter = ByVulnerability, active
			full, err := s.AggregatePage(ctx, both, q)
			must(t, err)
			if got := keys(full.Rows); !slices.Equal(got, tc.want) || full.NextToken != "" {
				t.Errorf("%s: %v (next %q), want %v", tc.name, got, full.NextToken, tc.want)
			}
			// One group per page walks the same order.
			q.Limit = 1
			var walked []string
			for pages := 0; ; pages++ {
				p, err := s.AggregatePage(ctx, both, q)
				must(t, err)
				walked = append(walked, keys(p.Rows)...)
				if p.NextToken == "" || pages > 10 {
					break
				}
				q.PageToken = p.NextToken
			}
			if !slices.Equal(walked, tc.want) {
				t.Errorf("%s paged: %v", tc.name, walked)
			}
		}

		// The side counts: fixes, exploits and distinct resources (across accounts).
		p, err := s.AggregatePage(ctx, both, AggregateQuery{GroupBy: ByVulnerability, Filter: active})
		must(t, err)
		log4shell := p.Rows[0]
		if log4shell.Key != "CVE-2021-44228" || log4shell.FixAvailable != 2 || log4shell.ExploitAvailable != 1 || log4shell.Resources != 2 {
			t.Errorf("log4shell group: %+v", log4shell)
		}
		p, err = s.AggregatePage(ctx, []string{acctA}, AggregateQuery{GroupBy: ByPackage, Filter: model.FindingFilter{PackageNames: []string{"libssl3"}}})
		must(t, err)
		// The finding filter selects findings; their other packages form groups too.
		if len(p.Rows) != 2 {
			t.Fatalf("libssl3 findings by package: %+v", p.Rows)
		}
		if r := p.Rows[0]; r.Key != "libssl3" || r.Counts.Total != 2 || r.FixAvailable != 2 || r.Resources != 1 {
			t.Errorf("libssl3 group: %+v", p.Rows)
		}
		p, err = s.AggregatePage(ctx, []string{acctA}, AggregateQuery{GroupBy: ByResource, Sort: AggSortResources})
		must(t, err)
		for _, r := range p.Rows {
			if r.Resources != 1 || r.Account != acctA {
				t.Errorf("a resource group touches exactly its resource: %+v", r)
			}
		}

		// Tokens belong to one aggregation; unknown orders are refused.
		first, err := s.AggregatePage(ctx, both, AggregateQuery{GroupBy: ByVulnerability, Limit: 1})
		must(t, err)
		if _, err := s.AggregatePage(ctx, both, AggregateQuery{GroupBy: ByVulnerability, Sort: AggSortAll, Limit: 1, PageToken: first.NextToken}); !errors.Is(err, ErrBadToken) {
			t.Errorf("a token of another order: %v", err)
		}
		if _, err := s.AggregatePage(ctx, both, AggregateQuery{GroupBy: ByPackage, Limit: 1, PageToken: first.NextToken}); !errors.Is(err, ErrBadToken) {
			t.Errorf("a token of another grouping: %v", err)
		}
		if _, err := s.AggregatePage(ctx, both, AggregateQuery{GroupBy: ByVulnerability, PageToken: "%%%"}); !errors.Is(err, ErrBadToken) {
			t.Errorf("a garbage token: %v", err)
		}
		if _, err := s.AggregatePage(ctx, both, AggregateQuery{GroupBy: ByVulnerability, Sort: "newest"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("an unknown sort: %v", err)
		}
	})
}

// Resources are selected by ID and by tags, never across accounts.
func TestResourceFilters(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedFindings(t, s)
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-batch", Type: model.ResourceHost,
			Tags: map[string]string{"env": "prod", model.ExclusionTag: "true"}})
		list := func(accs []string, q ResourceQuery) []string {
			t.Helper()
			p, err := s.ListResources(ctx, accs, q)
			must(t, err)
			var out []string
			for _, r := range p.Resources {
				out = append(out, r.Account+"/"+r.ID)
			}
			return out
		}
		both := []string{acctA, acctB}
		for _, tc := range []struct {
			name string
			accs []string
			q    ResourceQuery
			want []string
		}{
			{"tag value", both, ResourceQuery{Tags: map[string]string{"env": "prod"}}, []string{acctA + "/i-batch", acctA + "/i-web", acctB + "/i-web"}},
			{"two tags", both, ResourceQuery{Tags: map[string]string{"env": "prod", "team": "web"}}, []string{acctA + "/i-web"}},
			{"any value", both, ResourceQuery{Tags: map[string]string{model.ExclusionTag: ""}}, []string{acctA + "/i-batch"}},
			{"ids", both, ResourceQuery{IDs: []string{"i-web", "sha256:1111"}}, []string{acctA + "/i-web", acctA + "/sha256:1111", acctB + "/i-web"}},
			{"ids and type", both, ResourceQuery{IDs: []string{"i-web", "sha256:1111"}, Types: []string{model.ResourceImage}}, []string{acctA + "/sha256:1111"}},
			{"other account's tag", []string{acctB}, ResourceQuery{Tags: map[string]string{"team": "web"}}, nil},
			{"no match", both, ResourceQuery{Tags: map[string]string{"env": "staging"}}, nil},
		} {
			if got := list(tc.accs, tc.q); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	})
}

// An aggregation page token from a client is either accepted or refused with ErrBadToken.
func FuzzAggregateToken(f *testing.F) {
	s, err := OpenSQLite(ctx, filepath.Join(f.TempDir(), "fuzz.db"), Options{})
	must(f, err)
	defer s.Close()
	seedFindings(f, s)
	p, err := s.AggregatePage(ctx, []string{acctA}, AggregateQuery{GroupBy: ByVulnerability, Limit: 1})
	must(f, err)
	f.Add(p.NextToken)
	f.Add("")
	f.Add(encodeToken(aggToken{By: ByVulnerability, Sort: AggSortCritical, Offset: -5}))
	f.Add(encodeToken(aggToken{By: ByVulnerability, Sort: AggSortCritical, Offset: 1 << 62}))
	f.Add(`eyJiIjoidnVsbmVyYWJpbGl0eSIsInMiOiJjcml0aWNhbCIsIm8iOjFlMzB9`)
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := s.AggregatePage(ctx, []string{acctA}, AggregateQuery{GroupBy: ByVulnerability, PageToken: tok})
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Fatalf("token %q: %v", tok, err)
		}
		if err == nil && len(p.Rows) > 6 {
			t.Fatalf("token %q: %d groups of 6", tok, len(p.Rows))
		}
	})
}

// TestPreparedStatementsKept: SQLite reads outside transactions reuse one prepared statement per
// text, up to a bound past which they run unprepared, and a bad text still reports its error.
func TestPreparedStatementsKept(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
		for i := 0; i < 3; i++ {
			if _, err := s.GetResource(ctx, acctA, "i-1"); err != nil {
				t.Fatal(err)
			}
		}
		kept := int(s.nstmts.Load())
		if e.name == "postgres" {
			if kept != 0 {
				t.Fatalf("PostgreSQL kept %d statements; its driver caches them", kept)
			}
			return
		}
		if kept == 0 {
			t.Fatal("no statement kept")
		}
		if _, err := s.GetResource(ctx, acctA, "i-1"); err != nil || int(s.nstmts.Load()) != kept {
			t.Fatalf("a repeated read prepared again: %d statements kept, then %d (err %v)", kept, s.nstmts.Load(), err)
		}
		var n int
		if err := s.queryRow(ctx, s.db, `SELECT nonexistent FROM resources`).Scan(&n); err == nil || !strings.Contains(err.Error(), "nonexistent") {
			t.Fatalf("a bad query's error = %v", err)
		}
		// Distinct texts from concurrent readers fill the cache to its bound exactly, and every
		// one of them still answers.
		var wg sync.WaitGroup
		errs := make(chan error, maxStmts+50)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < maxStmts+50; i += 8 {
					var n int
					if err := s.queryRow(ctx, s.db, fmt.Sprintf(`SELECT %d + count(*) FROM resources WHERE account = ?`, i), acctA).Scan(&n); err != nil || n != i+1 {
						errs <- fmt.Errorf("query %d: %d, %v", i, n, err)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		entries := 0
		s.stmts.Range(func(_, _ any) bool { entries++; return true })
		if got := int(s.nstmts.Load()); got != maxStmts || entries != maxStmts {
			t.Fatalf("%d statements counted, %d kept, bound %d", got, entries, maxStmts)
		}
	})
}
