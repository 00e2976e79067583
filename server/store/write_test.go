package store

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// A finding's package rows follow its packages through upserts that keep, change, duplicate and
// drop them, in batches larger than one bulk statement; its image repository is its resource's.
func TestUpsertFindingPackages(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
		seedResource(t, s, model.Resource{Account: acctA, ID: "sha256:ab", Type: model.ResourceImage, ImageRepository: "registry.example.com/app"})
		pkgs := func(ps ...string) func(*model.Finding) {
			return func(f *model.Finding) {
				f.Packages = nil
				for i := 0; i+1 < len(ps); i += 2 {
					f.Packages = append(f.Packages, model.VulnerablePackage{Name: ps[i], Version: ps[i+1], Ecosystem: "Debian:12"})
				}
			}
		}
		// 1,100 findings: more than one chunk (1,000) and several SQLite statements.
		var batch []model.Finding
		for i := range 1100 {
			res := "i-1"
			if i%2 == 1 {
				res = "sha256:ab"
			}
			batch = append(batch, finding(acctA, res, "CVE-2024-"+string(rune('a'+i%26))+strconv.Itoa(i), "HIGH", pkgs("libssl3", "3.0.11-1")))
		}
		batch[0] = finding(acctA, "i-1", "CVE-2024-0727", "HIGH", pkgs("libssl3", "3.0.11-1", "openssl", "3.0.11-1"))
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: batch}))
		count := func(f model.FindingFilter) int {
			t.Helper()
			n, err := s.CountFindings(ctx, []string{acctA}, f)
			must(t, err)
			return n
		}
		if n := count(model.FindingFilter{PackageNames: []string{"libssl3"}}); n != 1100 {
			t.Fatalf("libssl3 findings = %d, want 1100", n)
		}
		if n := count(model.FindingFilter{ImageRepositories: []string{"registry.example.com/app"}}); n != 550 {
			t.Fatalf("findings of the image repository = %d, want 550", n)
		}
		rows := func(id string) []string {
			t.Helper()
			r, err := s.query(ctx, s.db, `SELECT name || '@' || version FROM finding_packages WHERE account = ? AND finding_id = ? ORDER BY 1`, acctA, id)
			must(t, err)
			defer r.Close()
			var out []string
			for r.Next() {
				var v string
				must(t, r.Scan(&v))
				out = append(out, v)
			}
			must(t, r.Err())
			return out
		}
		id := batch[0].ID
		steps := []struct {
			opt  func(*model.Finding)
			want []string
		}{
			{pkgs("openssl", "3.0.11-1", "libssl3", "3.0.11-1"), []string{"libssl3@3.0.11-1", "openssl@3.0.11-1"}}, // same set, other order
			{pkgs("libssl3", "3.0.13-1"), []string{"libssl3@3.0.13-1"}},                                            // version changed, one dropped
			{pkgs("libssl3", "3.0.13-1", "libssl3", "3.0.13-1"), []string{"libssl3@3.0.13-1", "libssl3@3.0.13-1"}}, // listed twice
			{pkgs(), nil}, // none left
			{pkgs("openssl", "3.0.14-1"), []string{"openssl@3.0.14-1"}},
		}
		for i, st := range steps {
			f := finding(acctA, "i-1", "CVE-2024-0727", "CRITICAL", st.opt)
			// The same finding twice in one batch: the last wins.
			must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{finding(acctA, "i-1", "CVE-2024-0727", "LOW"), f}}))
			if got := rows(id); !slices.Equal(got, st.want) {
				t.Fatalf("step %d: package rows %q, want %q", i, got, st.want)
			}
			byRes, err := s.FindingsByVulnerability(ctx, acctA, map[string][]string{"i-1": {"CVE-2024-0727"}})
			must(t, err)
			got := byRes["i-1"]
			if len(got) != 1 || got[0].Severity != "CRITICAL" || len(got[0].Packages) != len(st.want) {
				t.Fatalf("step %d: stored finding %+v", i, got)
			}
		}
		if n := count(model.FindingFilter{PackageNames: []string{"libssl3"}}); n != 1099 {
			t.Fatalf("libssl3 findings at the end = %d, want 1099", n)
		}
		// A caller vouching that the package rows are kept (findings.Result.KeptPackages): the
		// document is rewritten, the rows are not even compared (here the caller is wrong, to
		// show it: the rows keep the stored version).
		kept := finding(acctA, "i-1", "CVE-2024-0727", "LOW", pkgs("openssl", "3.0.15-1"))
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{kept}, KeptPackages: []string{kept.ID}}))
		if got := rows(id); !slices.Equal(got, []string{"openssl@3.0.14-1"}) {
			t.Fatalf("kept package rows: %q", got)
		}
		if n := count(model.FindingFilter{Severities: []string{"LOW"}, PackageNames: []string{"openssl"}}); n != 1 {
			t.Fatalf("the kept finding's new severity with its package rows: %d findings", n)
		}
	})
}

// Deleting findings removes their documents and package rows; deleting a resource removes its
// packages and findings with theirs, and nothing of another resource.
func TestDeleteCascades(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		for _, r := range []string{"i-1", "i-2"} {
			seedResource(t, s, model.Resource{Account: acctA, ID: r, Type: model.ResourceHost})
			_, err := s.PutInventory(ctx, acctA, r, "h-"+r, debianHost())
			must(t, err)
			var fs []model.Finding
			for _, v := range []string{"CVE-2024-0727", "CVE-2023-5678", "CVE-2024-2511"} {
				fs = append(fs, finding(acctA, r, v, "HIGH", func(f *model.Finding) {
					f.Packages = []model.VulnerablePackage{{Name: "libssl3", Version: "3.0.11-1", Ecosystem: "Debian:12"}}
				}))
			}
			must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: fs}))
		}
		count := func(table, where string, args ...any) int {
			t.Helper()
			var n int
			must(t, s.queryRow(ctx, s.db, `SELECT COUNT(*) FROM `+table+` WHERE `+where, args...).Scan(&n))
			return n
		}
		pkgs := len(debianHost())
		check := func(when string, want map[string][4]int) {
			t.Helper()
			for r, w := range want {
				got := [4]int{
					count("packages", "account = ? AND resource_id = ?", acctA, r),
					count("findings", "account = ? AND resource_id = ?", acctA, r),
					count("finding_data", "account = ? AND id LIKE ?", acctA, acctA+"/"+r+"/%"),
					count("finding_packages", "account = ? AND finding_id LIKE ?", acctA, acctA+"/"+r+"/%"),
				}
				if got != w {
					t.Errorf("%s: %s has packages, findings, documents, package rows %v, want %v", when, r, got, w)
				}
			}
		}
		check("written", map[string][4]int{"i-1": {pkgs, 3, 3, 3}, "i-2": {pkgs, 3, 3, 3}})
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Delete: []string{fid(acctA, "i-1", "CVE-2024-0727"), fid(acctA, "i-1", "CVE-2023-5678")}}))
		check("two findings deleted", map[string][4]int{"i-1": {pkgs, 1, 1, 1}, "i-2": {pkgs, 3, 3, 3}})
		must(t, s.DeleteResource(ctx, acctA, "i-1"))
		check("resource deleted", map[string][4]int{"i-1": {0, 0, 0, 0}, "i-2": {pkgs, 3, 3, 3}})
		if _, err := s.PutInventory(ctx, acctA, "i-1", "h-again", debianHost()); !errors.Is(err, ErrNotFound) {
			t.Errorf("inventory of a deleted resource: %v, want ErrNotFound", err)
		}
		check("inventory refused", map[string][4]int{"i-1": {0, 0, 0, 0}})
	})
}

// Events are numbered, and so delivered, in the order ApplyChanges was given them, across bulk
// statements.
func TestEventOrder(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		var evs []model.OutboxEvent
		for i := range 1300 {
			id := "ev-" + strconv.Itoa((i*7919)%1300) // IDs out of order
			evs = append(evs, model.OutboxEvent{ID: id, Type: model.EventFindingCreated, Account: acctA, Subject: id})
		}
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Events: evs}))
		recs, err := s.ClaimEvents(ctx, 2000, time.Minute)
		must(t, err)
		if len(recs) != len(evs) {
			t.Fatalf("claimed %d events, want %d", len(recs), len(evs))
		}
		for i, r := range recs {
			if r.Event.ID != evs[i].ID || (i > 0 && r.Seq <= recs[i-1].Seq) {
				t.Fatalf("event %d: %s (seq %d), want %s after seq %d", i, r.Event.ID, r.Seq, evs[i].ID, recs[max(i-1, 0)].Seq)
			}
		}
	})
}
