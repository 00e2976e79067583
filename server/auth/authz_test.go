package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// want is the policy written out by hand, one row per action: which relations an ADMIN key may
// act in. READ_ONLY gets the same rows for read actions and nothing for mutating ones.
var want = map[Action][]Relation{
	ReadResources:         {RelSelf, RelDelegatedAdmin},
	WriteResources:        {RelSelf, RelDelegatedAdmin},
	ReadFindings:          {RelSelf, RelDelegatedAdmin},
	ReadCoverage:          {RelSelf, RelDelegatedAdmin},
	ReadSuppressionRules:  {RelSelf, RelDelegatedAdmin},
	WriteSuppressionRules: {RelSelf, RelDelegatedAdmin},
	ReadAccount:           {RelSelf, RelDelegatedAdmin, RelManagement},
	WriteAccount:          {RelSelf, RelDelegatedAdmin},
	ReadKeys:              {RelSelf},
	WriteKeys:             {RelSelf},
	ReadWebhooks:          {RelSelf},
	WriteWebhooks:         {RelSelf},
	ReadOrganization:      {RelSelf, RelDelegatedAdmin, RelManagement},
	WriteOrganization:     {RelSelf, RelManagement},
}

func TestAllowedEveryCombination(t *testing.T) {
	if len(want) != len(Actions) {
		t.Fatalf("table covers %d actions, policy has %d", len(want), len(Actions))
	}
	n := 0
	for _, role := range append(Roles, Role("SUPERUSER"), Role("")) {
		for _, rel := range Relations {
			for _, action := range Actions {
				exp := false
				for _, r := range want[action] {
					exp = exp || r == rel
				}
				switch role {
				case RoleReadOnly:
					exp = exp && !action.Mutates()
				case RoleAdmin:
				default:
					exp = false // unknown roles get nothing
				}
				if got := Allowed(role, rel, action); got != exp {
					t.Errorf("Allowed(%s, %s, %s) = %v, want %v", role, rel, action, got, exp)
				}
				n++
			}
		}
	}
	if n != 4*4*14 {
		t.Fatalf("checked %d combinations", n)
	}
}

// Organization: 100 manages, 200 is delegated admin, 300 and 400 are members; 900 is a
// standalone account; org B: 500 management, 600 member, no delegated admin.
var testOrg = StaticOrg{Orgs: []OrgMembers{
	{Management: "100", DelegatedAdmin: "200", Members: []string{"300", "400"}},
	{Management: "500", Members: []string{"600"}},
}}

func TestCanThroughOrg(t *testing.T) {
	ctx := context.Background()
	type c struct {
		principal, target string
		role              Role
		action            Action
		want              error
	}
	cases := []c{
		{"300", "300", RoleAdmin, WriteResources, nil},
		{"300", "300", RoleReadOnly, ReadFindings, nil},
		{"300", "300", RoleReadOnly, WriteSuppressionRules, ErrForbidden},
		{"300", "400", RoleAdmin, ReadFindings, ErrNotVisible}, // member → member
		{"300", "200", RoleAdmin, ReadFindings, ErrNotVisible}, // member → its admin
		{"200", "300", RoleAdmin, ReadFindings, nil},           // DA → member
		{"200", "300", RoleAdmin, WriteSuppressionRules, nil},  // DA manages member rules
		{"200", "300", RoleReadOnly, ReadCoverage, nil},        // read-only DA key reads
		{"200", "300", RoleReadOnly, WriteResources, ErrForbidden},
		{"200", "300", RoleAdmin, WriteKeys, ErrNotVisible},    // DA cannot mint member keys
		{"200", "100", RoleAdmin, ReadFindings, ErrNotVisible}, // DA does not manage management
		{"100", "300", RoleAdmin, ReadFindings, ErrNotVisible}, // management is not DA
		{"100", "300", RoleAdmin, ReadOrganization, nil},
		{"100", "200", RoleAdmin, WriteOrganization, nil},
		{"100", "300", RoleReadOnly, WriteOrganization, ErrForbidden},
		{"200", "600", RoleAdmin, ReadFindings, ErrNotVisible}, // other organization
		{"500", "600", RoleAdmin, ReadFindings, ErrNotVisible},
		{"900", "300", RoleAdmin, ReadResources, ErrNotVisible}, // standalone
		{"900", "nonexistent", RoleAdmin, ReadResources, ErrNotVisible},
	}
	for _, c := range cases {
		err := Can(ctx, testOrg, Principal{Account: c.principal, Role: c.role, KeyID: "k"}, c.action, c.target)
		name := fmt.Sprintf("%s(%s) %s on %s", c.principal, c.role, c.action, c.target)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestCanNoPrincipal(t *testing.T) {
	if err := Can(context.Background(), testOrg, Principal{}, ReadFindings, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("empty principal: %v", err)
	}
	if err := Can(context.Background(), nil, Principal{Account: "1", Role: RoleAdmin}, ReadFindings, "2"); !errors.Is(err, ErrNotVisible) {
		t.Fatalf("nil org: %v", err)
	}
}

type brokenOrg struct{}

func (brokenOrg) Relation(context.Context, string, string) (Relation, error) {
	return RelNone, errors.New("db down")
}

func TestCanOrgError(t *testing.T) {
	err := Can(context.Background(), brokenOrg{}, Principal{Account: "1", Role: RoleAdmin}, ReadFindings, "2")
	if err == nil || errors.Is(err, ErrForbidden) || errors.Is(err, ErrNotVisible) {
		t.Fatalf("want infrastructure error, got %v", err)
	}
	// The same account never needs the org.
	if err := Can(context.Background(), brokenOrg{}, Principal{Account: "1", Role: RoleAdmin}, ReadFindings, "1"); err != nil {
		t.Fatal(err)
	}
}

func TestScope(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		account string
		role    Role
		action  Action
		want    string
	}{
		{"300", RoleAdmin, ReadFindings, "[300]"},         // a member sees itself only
		{"200", RoleAdmin, ReadFindings, "[200 300 400]"}, // the DA, not the management account
		{"200", RoleReadOnly, ReadFindings, "[200 300 400]"},
		{"200", RoleReadOnly, WriteSuppressionRules, "[]"},
		{"200", RoleAdmin, WriteKeys, "[200]"},
		{"100", RoleAdmin, ReadFindings, "[100]"},
		{"100", RoleAdmin, WriteOrganization, "[100 200 300 400]"},
		{"900", RoleAdmin, ReadFindings, "[900]"},
		{"600", RoleAdmin, ReadFindings, "[600]"},
	}
	for _, c := range cases {
		got, err := Scope(ctx, testOrg, Principal{Account: c.account, Role: c.role, KeyID: "k"}, c.action)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("Scope(%s %s %s) = %v, want %s", c.account, c.role, c.action, got, c.want)
		}
		// Scope and Can agree on every account of the test organizations.
		for _, target := range []string{"100", "200", "300", "400", "500", "600", "900"} {
			in := slices.Contains(got, target)
			if err := Can(ctx, testOrg, Principal{Account: c.account, Role: c.role}, c.action, target); (err == nil) != in {
				t.Errorf("Scope and Can disagree: %s %s %s on %s: Can %v, in scope %v", c.account, c.role, c.action, target, err, in)
			}
		}
	}
}
