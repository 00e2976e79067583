package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Role is what a key may do within the accounts it can reach.
//
// A role is a set of allowed actions (see roleAllows). Adding a role — say FINDINGS_TRIAGE, allowed
// to read everything and write suppression rules — means adding a constant, a line in Valid and a
// case in roleAllows; the organization scoping below applies to every role unchanged.
type Role string

const (
	RoleAdmin    Role = "ADMIN"
	RoleReadOnly Role = "READ_ONLY"
)

// Roles lists every role, for validation and table tests.
var Roles = []Role{RoleAdmin, RoleReadOnly}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleReadOnly }

// Action is one kind of operation on one kind of object: "<object>:<verb>".
type Action string

const (
	ReadResources         Action = "resources:read"
	WriteResources        Action = "resources:write" // create, update, delete, submit inventory
	ReadFindings          Action = "findings:read"
	ReadCoverage          Action = "coverage:read"
	ReadSuppressionRules  Action = "suppression-rules:read"
	WriteSuppressionRules Action = "suppression-rules:write"
	ReadAccount           Action = "account:read"  // account settings, enabled scan types
	WriteAccount          Action = "account:write" // enable/disable scan types
	ReadKeys              Action = "keys:read"
	WriteKeys             Action = "keys:write"
	ReadWebhooks          Action = "webhooks:read"
	WriteWebhooks         Action = "webhooks:write"
	ReadOrganization      Action = "organization:read"  // members, delegated admin
	WriteOrganization     Action = "organization:write" // associate members, designate the delegated admin
)

// Actions lists every action, for table tests.
var Actions = []Action{
	ReadResources, WriteResources, ReadFindings, ReadCoverage, ReadSuppressionRules,
	WriteSuppressionRules, ReadAccount, WriteAccount, ReadKeys, WriteKeys, ReadWebhooks,
	WriteWebhooks, ReadOrganization, WriteOrganization,
}

// Mutates reports whether the action changes state.
func (a Action) Mutates() bool {
	switch a {
	case WriteResources, WriteSuppressionRules, WriteAccount, WriteKeys, WriteWebhooks, WriteOrganization:
		return true
	}
	return false
}

// Relation is how the principal's account stands to the target account.
type Relation int

const (
	// RelNone: unrelated accounts (or a plain member looking at another member).
	RelNone Relation = iota
	// RelSelf: the same account.
	RelSelf
	// RelDelegatedAdmin: the principal's account is the delegated admin of the target's
	// organization and the target is an associated member.
	RelDelegatedAdmin
	// RelManagement: the principal's account is the management account of the target's
	// organization (and not also its delegated admin).
	RelManagement
)

// Relations lists every relation, for table tests.
var Relations = []Relation{RelNone, RelSelf, RelDelegatedAdmin, RelManagement}

func (r Relation) String() string {
	switch r {
	case RelSelf:
		return "self"
	case RelDelegatedAdmin:
		return "delegated-admin"
	case RelManagement:
		return "management"
	}
	return "none"
}

// Org answers organization questions; server/store implements it. Relation must return RelSelf
// when the accounts are equal and RelNone for unknown accounts (never an error for those), so
// that probing for account ids learns nothing.
type Org interface {
	Relation(ctx context.Context, principalAccount, targetAccount string) (Relation, error)
}

// Authorization errors. ErrNotVisible means the target is outside everything the principal can
// see: handlers answer 404 for a single object and 403 for an explicit account parameter.
// ErrForbidden means the principal can see the target but its role may not do this: 403.
var (
	ErrForbidden  = errors.New("forbidden")
	ErrNotVisible = errors.New("not visible to this account")
)

// Allowed is the whole policy as a pure function: may a key with role, whose account stands in
// relation rel to the target account, perform action? It follows Amazon Inspector's
// multi-account model:
//   - every account manages its own data (role permitting);
//   - the delegated admin sees and manages its members' resources, findings, coverage,
//     suppression rules and scan settings, but not their API keys or webhooks (minting a key in
//     a member account would let the admin act as the member; webhooks carry the member's data
//     to endpoints the member did not choose);
//   - the management account designates the delegated admin and sees the organization, but does
//     not see members' findings unless it is itself the delegated admin;
//   - READ_ONLY keys never mutate.
func Allowed(role Role, rel Relation, action Action) bool {
	if !roleAllows(role, action) {
		return false
	}
	switch rel {
	case RelSelf:
		return true
	case RelDelegatedAdmin:
		switch action {
		case ReadResources, WriteResources, ReadFindings, ReadCoverage, ReadSuppressionRules,
			WriteSuppressionRules, ReadAccount, WriteAccount, ReadOrganization:
			return true
		}
	case RelManagement:
		switch action {
		case ReadAccount, ReadOrganization, WriteOrganization:
			return true
		}
	}
	return false
}

func roleAllows(role Role, action Action) bool {
	switch role {
	case RoleAdmin:
		return true
	case RoleReadOnly:
		return !action.Mutates()
	}
	return false
}

// visible reports whether any role could do anything to the target in relation rel: it tells a
// "you may not" (403) from a "there is nothing here for you" (404).
func visible(rel Relation, action Action) bool {
	return Allowed(RoleAdmin, rel, action) || Allowed(RoleAdmin, rel, readOf(action))
}

func readOf(a Action) Action {
	switch a {
	case WriteResources:
		return ReadResources
	case WriteSuppressionRules:
		return ReadSuppressionRules
	case WriteAccount:
		return ReadAccount
	case WriteKeys:
		return ReadKeys
	case WriteWebhooks:
		return ReadWebhooks
	case WriteOrganization:
		return ReadOrganization
	}
	return a
}

// Can decides whether p may perform action on data owned by targetAccount. It returns nil,
// ErrForbidden or ErrNotVisible (wrapped with detail), or an Org lookup error.
func Can(ctx context.Context, org Org, p Principal, action Action, targetAccount string) error {
	if p.Account == "" || !p.Role.Valid() {
		return fmt.Errorf("%w: no valid principal", ErrForbidden)
	}
	rel := RelSelf
	if targetAccount != p.Account {
		if org == nil {
			rel = RelNone
		} else {
			var err error
			rel, err = org.Relation(ctx, p.Account, targetAccount)
			if err != nil {
				return fmt.Errorf("organization relation %s→%s: %w", p.Account, targetAccount, err)
			}
		}
	}
	if Allowed(p.Role, rel, action) {
		return nil
	}
	if !visible(rel, action) {
		return fmt.Errorf("%w: account %s", ErrNotVisible, targetAccount)
	}
	return fmt.Errorf("%w: role %s may not %s (%s)", ErrForbidden, p.Role, action, rel)
}

// StaticOrg is an in-memory Org for tests: organizations by id, each with a management account,
// an optional delegated admin and members.
type StaticOrg struct {
	Orgs []OrgMembers
}

// OrgMembers describes one organization.
type OrgMembers struct {
	Management     string
	DelegatedAdmin string
	Members        []string
}

// Relation implements Org.
func (s StaticOrg) Relation(_ context.Context, principal, target string) (Relation, error) {
	if principal == target {
		return RelSelf, nil
	}
	for _, o := range s.Orgs {
		in := target == o.Management || target == o.DelegatedAdmin
		for _, m := range o.Members {
			in = in || m == target
		}
		if !in {
			continue
		}
		switch principal {
		case o.DelegatedAdmin:
			// The delegated admin manages members, never the management account.
			if target != o.Management {
				return RelDelegatedAdmin, nil
			}
		case o.Management:
			return RelManagement, nil
		}
	}
	return RelNone, nil
}

// OrgDirectory is an Org that can also list the accounts related to a principal's account, for
// listings that span accounts (a delegated admin's "all findings"). server/store implements it.
type OrgDirectory interface {
	Org
	// Related returns every account other than principalAccount that stands in a relation other
	// than RelNone to it, with that relation.
	Related(ctx context.Context, principalAccount string) (map[string]Relation, error)
}

// Scope lists the accounts whose data p may perform action on: its own account and every related
// account the policy admits, sorted with p's own first. A listing endpoint intersects a
// requested account filter with it (an explicitly requested account outside it answers 404).
func Scope(ctx context.Context, dir OrgDirectory, p Principal, action Action) ([]string, error) {
	if p.Account == "" || !p.Role.Valid() {
		return nil, fmt.Errorf("%w: no valid principal", ErrForbidden)
	}
	var out []string
	if Allowed(p.Role, RelSelf, action) {
		out = append(out, p.Account)
	}
	if dir == nil {
		return out, nil
	}
	rel, err := dir.Related(ctx, p.Account)
	if err != nil {
		return nil, fmt.Errorf("accounts related to %s: %w", p.Account, err)
	}
	var others []string
	for acct, r := range rel {
		if acct != p.Account && Allowed(p.Role, r, action) {
			others = append(others, acct)
		}
	}
	slices.Sort(others)
	return append(out, others...), nil
}

// Related implements OrgDirectory.
func (s StaticOrg) Related(ctx context.Context, principal string) (map[string]Relation, error) {
	out := map[string]Relation{}
	for _, o := range s.Orgs {
		for _, a := range append([]string{o.Management, o.DelegatedAdmin}, o.Members...) {
			if a == "" || a == principal {
				continue
			}
			if r, _ := s.Relation(ctx, principal, a); r != RelNone {
				out[a] = r
			}
		}
	}
	return out, nil
}
