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

func TestOrgTx(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, "mgmt", "taken")
		must(t, s.InOrgTx(ctx, func(tx *OrgTx) error {
			if err := tx.CreateAccount(model.Account{ID: "taken", Role: model.AccountMember}); !errors.Is(err, ErrExists) {
				t.Errorf("creating a taken account: %v", err)
			}
			must(t, tx.CreateAccount(model.Account{ID: "m1", Name: "one", Role: model.AccountMember, Enabled: []string{"host"}}))
			must(t, tx.CreateOrganization(Organization{ID: "org-1", ManagementAccount: "mgmt"}))
			if err := tx.CreateOrganization(Organization{ID: "org-1", ManagementAccount: "taken"}); !errors.Is(err, ErrExists) {
				t.Errorf("creating a taken organization: %v", err)
			}
			must(t, tx.SetMembership(Membership{Organization: "org-1", Account: "m1", Status: MemberEnabled}))
			must(t, tx.SetDelegatedAdmin("org-1", "m1"))
			a, err := tx.Account("m1")
			must(t, err)
			a.Organization, a.Role = "org-1", model.AccountDelegated
			return tx.UpdateAccount(a)
		}))
		o, err := s.GetOrganization(ctx, "org-1")
		must(t, err)
		a, err := s.GetAccount(ctx, "m1")
		must(t, err)
		if o.DelegatedAdmin != "m1" || a.Role != model.AccountDelegated || a.Organization != "org-1" || a.Name != "one" {
			t.Errorf("after commit: %+v %+v", o, a)
		}
		// An error rolls everything back.
		boom := errors.New("boom")
		err = s.InOrgTx(ctx, func(tx *OrgTx) error {
			must(t, tx.SetDelegatedAdmin("org-1", ""))
			must(t, tx.SetMembership(Membership{Organization: "org-1", Account: "m1", Status: MemberRemoved}))
			if err := tx.SetMembership(Membership{Organization: "org-2", Account: "m1", Status: MemberEnabled}); !errors.Is(err, ErrExists) {
				t.Errorf("a membership in a second organization: %v", err)
			}
			ms, err := tx.Memberships("org-1")
			if err != nil || len(ms) != 1 || ms[0].Status != MemberRemoved {
				t.Errorf("memberships inside the transaction: %+v %v", ms, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InOrgTx: %v", err)
		}
		o, _ = s.GetOrganization(ctx, "org-1")
		m, _ := s.GetMembership(ctx, "m1")
		if o.DelegatedAdmin != "m1" || m.Status != MemberEnabled {
			t.Errorf("not rolled back: %+v %+v", o, m)
		}
		if err := s.InOrgTx(ctx, func(tx *OrgTx) error { return tx.SetDelegatedAdmin("org-nope", "x") }); !errors.Is(err, ErrNotFound) {
			t.Errorf("a missing organization: %v", err)
		}
	})
}

// A second transaction reading an organization waits for the first one that read it to end, so
// check-then-set decisions (at most one delegated admin) cannot interleave.
func TestOrgTxSerialises(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, "mgmt")
		must(t, s.PutOrganization(ctx, Organization{ID: "org-1", ManagementAccount: "mgmt"}))
		locked := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- s.InOrgTx(ctx, func(tx *OrgTx) error {
				if _, err := tx.Organization("org-1"); err != nil {
					return err
				}
				close(locked)
				time.Sleep(300 * time.Millisecond)
				return tx.SetDelegatedAdmin("org-1", "first")
			})
		}()
		<-locked
		var seen string
		must(t, s.InOrgTx(ctx, func(tx *OrgTx) error {
			o, err := tx.Organization("org-1")
			seen = o.DelegatedAdmin
			return err
		}))
		must(t, <-done)
		if seen != "first" {
			t.Errorf("the second transaction read delegated admin %q before the first committed", seen)
		}
	})
}
