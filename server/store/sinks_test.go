package store

import (
	"errors"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// latestMigration is the highest migration number embedded for SQLite (both dialects have the
// same list): the schema version a fresh store must report.
func latestMigration(t testing.TB) int64 {
	t.Helper()
	ents, err := fs.ReadDir(migrations, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	var max int64
	for _, e := range ents {
		n, err := strconv.ParseInt(strings.SplitN(e.Name(), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		max = maxOf(max, n)
	}
	return max
}

func maxOf(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func TestMigrationListsMatch(t *testing.T) {
	a, _ := fs.ReadDir(migrations, "migrations/sqlite")
	b, _ := fs.ReadDir(migrations, "migrations/postgres")
	names := func(es []fs.DirEntry) (out []string) {
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	if !slices.Equal(names(a), names(b)) {
		t.Errorf("SQLite and PostgreSQL migrations differ: %v vs %v", names(a), names(b))
	}
}

func TestSinks(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, "acct-a", "acct-b")
		created := e.clock.Now()
		a1 := Sink{ID: "wh-a1", Account: "acct-a", URL: "https://hooks.example.com/a1", Secret: "whsec_aaaaaaaaaaaaaaaa",
			EventTypes: []string{"vigil.finding.*"}, Enabled: true, Description: "pager"}
		must(t, s.CreateSink(ctx, a1))
		must(t, s.CreateSink(ctx, Sink{ID: "wh-b1", Account: "acct-b", URL: "https://hooks.example.com/b1", Secret: "whsec_bbbbbbbbbbbbbbbb", Enabled: true}))
		if err := s.CreateSink(ctx, Sink{ID: "wh-a1", Account: "acct-b", URL: "https://x.example.com", Secret: "whsec_cccccccccccccccc"}); err == nil {
			t.Error("a second sink with a taken ID was accepted")
		}
		if err := s.CreateSink(ctx, Sink{ID: "wh-x", Account: "acct-a"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("a sink without URL and secret: %v", err)
		}

		got, err := s.GetSink(ctx, []string{"acct-a"}, "wh-a1")
		must(t, err)
		if got.URL != a1.URL || got.Secret != a1.Secret || !got.Enabled || !slices.Equal(got.EventTypes, a1.EventTypes) ||
			got.Description != "pager" || !got.CreatedAt.Equal(created) {
			t.Errorf("round trip: %+v", got)
		}
		// Another account's sink is not found, however it is asked for.
		if _, err := s.GetSink(ctx, []string{"acct-b"}, "wh-a1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("foreign get: %v", err)
		}
		if err := s.DeleteSink(ctx, "acct-b", "wh-a1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("foreign delete: %v", err)
		}
		got.Account = "acct-b"
		if err := s.UpdateSink(ctx, got); !errors.Is(err, ErrNotFound) {
			t.Errorf("foreign update: %v", err)
		}
		list, err := s.ListSinks(ctx, []string{"acct-a"})
		must(t, err)
		if len(list) != 1 || list[0].ID != "wh-a1" {
			t.Errorf("list acct-a: %+v", list)
		}
		all, err := s.AllSinks(ctx)
		must(t, err)
		if len(all) != 2 {
			t.Errorf("all sinks: %d", len(all))
		}

		// Rotation, then the dispatcher disabling it on 410, then re-enabling.
		e.clock.Advance(time.Minute)
		got, _ = s.GetSink(ctx, []string{"acct-a"}, "wh-a1")
		got.PreviousSecret, got.Secret = got.Secret, "whsec_dddddddddddddddd"
		got.EventTypes = nil
		must(t, s.UpdateSink(ctx, got))
		must(t, s.DisableSink(ctx, "wh-a1", "410 Gone"))
		got, _ = s.GetSink(ctx, []string{"acct-a"}, "wh-a1")
		if got.Enabled || got.DisabledReason != "410 Gone" || got.PreviousSecret != a1.Secret || got.Secret != "whsec_dddddddddddddddd" ||
			len(got.EventTypes) != 0 || !got.UpdatedAt.After(got.CreatedAt) {
			t.Errorf("after rotation and disable: %+v", got)
		}
		if err := s.DisableSink(ctx, "wh-nope", "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("disabling a missing sink: %v", err)
		}
		must(t, s.DeleteSink(ctx, "acct-a", "wh-a1"))
		if _, err := s.GetSink(ctx, []string{"acct-a"}, "wh-a1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func TestOrganizationSettingsAndMembership(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, "mgmt", "m1", "m2", "lone")
		must(t, s.CreateAccount(ctx, model.Account{ID: "m3", Role: model.AccountMember, Enabled: []string{"host"}}))
		if err := s.CreateAccount(ctx, model.Account{ID: "m3", Role: model.AccountStandalone}); !errors.Is(err, ErrExists) {
			t.Errorf("creating a taken account ID: %v", err)
		}
		if a, err := s.GetAccount(ctx, "m3"); err != nil || a.Role != model.AccountMember || len(a.Enabled) != 1 {
			t.Errorf("the first account must stay: %+v %v", a, err)
		}
		must(t, s.PutOrganization(ctx, Organization{ID: "org-1", ManagementAccount: "mgmt"}))
		must(t, s.PutOrganization(ctx, Organization{ID: "org-2", ManagementAccount: "lone"}))
		if got, err := s.AutoEnable(ctx, "org-1"); err != nil || len(got) != 0 {
			t.Errorf("unset auto-enable: %v %v", got, err)
		}
		must(t, s.SetAutoEnable(ctx, "org-1", []string{model.ResourceHost, "network"}))
		must(t, s.SetAutoEnable(ctx, "org-1", []string{model.ResourceImage}))
		if got, err := s.AutoEnable(ctx, "org-1"); err != nil || !slices.Equal(got, []string{model.ResourceImage}) {
			t.Errorf("auto-enable: %v %v", got, err)
		}
		must(t, s.SetMembership(ctx, Membership{Organization: "org-1", Account: "m1", Status: MemberEnabled}))
		must(t, s.SetMembership(ctx, Membership{Organization: "org-1", Account: "m2", Status: MemberEnabled}))
		must(t, s.SetMembership(ctx, Membership{Organization: "org-1", Account: "m2", Status: MemberRemoved}))
		if err := s.SetMembership(ctx, Membership{Organization: "org-2", Account: "m1", Status: MemberEnabled}); !errors.Is(err, ErrExists) {
			t.Errorf("an account in two organizations: %v", err)
		}
		ms, err := s.ListMemberships(ctx, "org-1")
		must(t, err)
		if len(ms) != 2 || ms[0].Account != "m1" || ms[0].Status != MemberEnabled || ms[1].Status != MemberRemoved {
			t.Errorf("memberships: %+v", ms)
		}
		if _, err := s.GetMembership(ctx, "lone"); !errors.Is(err, ErrNotFound) {
			t.Errorf("no membership: %v", err)
		}
		orgs, err := s.ListOrganizations(ctx)
		must(t, err)
		if len(orgs) != 2 || orgs[0].ID != "org-1" || orgs[1].ManagementAccount != "lone" {
			t.Errorf("organizations: %+v", orgs)
		}
	})
}
