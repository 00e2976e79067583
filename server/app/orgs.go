package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

// orgFor returns the organization if the caller may act on it: the operator, its management
// account or its delegated admin; anyone else gets 404 (the organization's existence is not
// revealed). With mutate, a read-only key gets 403.
func (s *Server) orgFor(r *http.Request, id string, mutate bool) (store.Organization, error) {
	org, err := s.Store.GetOrganization(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return org, api.NotFound("no such organization")
	}
	if err != nil {
		return org, err
	}
	p := principal(r)
	if !isRoot(r) && p.Account != org.ManagementAccount && (org.DelegatedAdmin == "" || p.Account != org.DelegatedAdmin) {
		return org, api.NotFound("no such organization")
	}
	if mutate {
		if err := requireAdmin(r, "change the organization"); err != nil {
			return org, err
		}
	}
	api.SetAuditTarget(r, "organization/"+org.ID)
	return org, nil
}

// requireManagement: only the management account (or the operator) designates the delegated admin.
func requireManagement(r *http.Request, org store.Organization) error {
	if isRoot(r) || principal(r).Account == org.ManagementAccount {
		return nil
	}
	return fmt.Errorf("%w: only the management account %s may do this", auth.ErrForbidden, org.ManagementAccount)
}

// OrganizationView describes an organization and its configuration (Inspector's
// DescribeOrganizationConfiguration plus the delegated admin).
type OrganizationView struct {
	ID                string    `json:"organizationId"`
	Name              string    `json:"name,omitempty"`
	ManagementAccount string    `json:"managementAccountId"`
	DelegatedAdmin    string    `json:"delegatedAdminAccountId,omitempty"`
	AutoEnable        []string  `json:"autoEnable"`
	Members           int       `json:"associatedMembers"`
	CreatedAt         time.Time `json:"createdAt"`
}

func (s *Server) orgView(ctx context.Context, org store.Organization) (OrganizationView, error) {
	v := OrganizationView{ID: org.ID, Name: org.Name, ManagementAccount: org.ManagementAccount, DelegatedAdmin: org.DelegatedAdmin,
		CreatedAt: org.CreatedAt}
	auto, err := s.Store.AutoEnable(ctx, org.ID)
	if err != nil {
		return v, err
	}
	v.AutoEnable = normalizeScanTypes(auto)
	if v.AutoEnable == nil {
		v.AutoEnable = []string{}
	}
	ms, err := s.Store.ListMemberships(ctx, org.ID)
	if err != nil {
		return v, err
	}
	for _, m := range ms {
		if m.Status == store.MemberEnabled {
			v.Members++
		}
	}
	return v, nil
}

// CreateOrganizationRequest creates an organization.
type CreateOrganizationRequest struct {
	OrganizationID string `json:"organizationId"`
	Name           string `json:"name,omitempty"`
	// ManagementAccountID defaults to the caller's (the operator's) account.
	ManagementAccountID string `json:"managementAccountId,omitempty"`
}

// Validate implements api.Validator.
func (c *CreateOrganizationRequest) Validate() []api.FieldError {
	if !accountIDPattern.MatchString(c.OrganizationID) {
		return []api.FieldError{{Field: "organizationId", Message: "must be 1 to 64 lowercase letters, digits, '.', '_' or '-'"}}
	}
	return nil
}

// createOrganization (the operator) makes a named account, by default the operator's own, the
// management account of a new organization. The account must not belong to one already.
func (s *Server) createOrganization(w http.ResponseWriter, r *http.Request, body *CreateOrganizationRequest) error {
	ctx := r.Context()
	if err := requireAdmin(r, "create organizations"); err != nil {
		return err
	}
	// Accounts are the operator's to hand out, and a management account creates members: so
	// organizations are set up by the operator too.
	if !isRoot(r) {
		return fmt.Errorf("%w: only the operator (an ADMIN key of account %q) creates organizations", auth.ErrForbidden, DefaultAccount)
	}
	mgmt := firstNonEmpty(body.ManagementAccountID, principal(r).Account)
	api.SetAuditTarget(r, "organization/"+body.OrganizationID)
	org := store.Organization{ID: body.OrganizationID, Name: body.Name, ManagementAccount: mgmt, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	err := s.Store.InOrgTx(ctx, func(t *store.OrgTx) error {
		a, err := t.Account(mgmt)
		if err != nil {
			return storeErr(err, "account")
		}
		if _, err := t.Membership(mgmt); a.Organization != "" || err == nil {
			return api.Conflict("account " + mgmt + " already belongs to an organization")
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := t.CreateOrganization(org); err != nil {
			return storeErr(err, "organization")
		}
		a.Organization, a.Role = org.ID, model.AccountManagement
		if err := t.UpdateAccount(a); err != nil {
			return err
		}
		return t.SetMembership(store.Membership{Organization: org.ID, Account: mgmt, Status: store.MemberEnabled})
	})
	if err != nil {
		return err
	}
	v, err := s.orgView(ctx, org)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusCreated, v)
}

func (s *Server) getOrganization(w http.ResponseWriter, r *http.Request) error {
	org, err := s.orgFor(r, r.PathValue("organizationId"), false)
	if err != nil {
		return err
	}
	v, err := s.orgView(r.Context(), org)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, v)
}

// OrganizationConfiguration is Inspector's UpdateOrganizationConfiguration body.
type OrganizationConfiguration struct {
	// AutoEnable lists the scan types enabled for every new member.
	AutoEnable []string `json:"autoEnable"`
}

// Validate implements api.Validator.
func (c *OrganizationConfiguration) Validate() []api.FieldError {
	return validateScanTypes("autoEnable", c.AutoEnable)
}

// updateOrgConfiguration: the delegated admin (as in Inspector) or the management account.
func (s *Server) updateOrgConfiguration(w http.ResponseWriter, r *http.Request, body *OrganizationConfiguration) error {
	org, err := s.orgFor(r, r.PathValue("organizationId"), true)
	if err != nil {
		return err
	}
	if err := s.Store.SetAutoEnable(r.Context(), org.ID, normalizeScanTypes(body.AutoEnable)); err != nil {
		return err
	}
	v, err := s.orgView(r.Context(), org)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, v)
}

// MemberView is one account of an organization (Inspector's Member).
type MemberView struct {
	AccountID               string    `json:"accountId"`
	Name                    string    `json:"name"`
	Role                    string    `json:"role"`
	RelationshipStatus      string    `json:"relationshipStatus"`
	DelegatedAdminAccountID string    `json:"delegatedAdminAccountId,omitempty"`
	EnabledScanTypes        []string  `json:"enabledScanTypes"`
	UpdatedAt               time.Time `json:"updatedAt"`
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	org, err := s.orgFor(r, r.PathValue("organizationId"), false)
	if err != nil {
		return err
	}
	ms, err := s.Store.ListMemberships(ctx, org.ID)
	if err != nil {
		return err
	}
	out := []MemberView{}
	for _, m := range ms {
		a, err := s.Store.GetAccount(ctx, m.Account)
		if err != nil {
			return err
		}
		v := MemberView{AccountID: a.ID, Name: a.Name, Role: a.Role, RelationshipStatus: m.Status,
			EnabledScanTypes: normalizeScanTypes(a.Enabled), UpdatedAt: m.UpdatedAt}
		if v.EnabledScanTypes == nil {
			v.EnabledScanTypes = []string{}
		}
		if m.Status == store.MemberEnabled {
			v.DelegatedAdminAccountID = org.DelegatedAdmin
		}
		out = append(out, v)
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"members": out})
}

// MemberRequest names an account.
type MemberRequest struct {
	AccountID string `json:"accountId"`
}

// Validate implements api.Validator.
func (m *MemberRequest) Validate() []api.FieldError {
	if m.AccountID == "" {
		return []api.FieldError{{Field: "accountId", Message: "is required"}}
	}
	return nil
}

// associateMember (Inspector's AssociateMember) by the management account or the delegated admin:
// an account of the organization that was disassociated is associated again; the operator may
// also bring a standalone account into the organization, which then gets the organization's
// auto-enabled scan types.
func (s *Server) associateMember(w http.ResponseWriter, r *http.Request, body *MemberRequest) error {
	ctx := r.Context()
	org, err := s.orgFor(r, r.PathValue("organizationId"), true)
	if err != nil {
		return err
	}
	api.SetAuditTarget(r, "organization/"+org.ID+"/member/"+body.AccountID)
	var a model.Account
	err = s.Store.InOrgTx(ctx, func(t *store.OrgTx) error {
		org, err := t.Organization(org.ID)
		if err != nil {
			return err
		}
		if a, err = t.Account(body.AccountID); errors.Is(err, store.ErrNotFound) {
			return api.NotFound("no such account in the organization")
		} else if err != nil {
			return err
		}
		m, err := t.Membership(a.ID)
		isNew := errors.Is(err, store.ErrNotFound)
		switch {
		case err != nil && !isNew:
			return err
		case isNew && !isRoot(r):
			// Only accounts already in the organization: a member cannot be taken from elsewhere.
			return api.NotFound("no such account in the organization")
		case isNew && a.Organization != "":
			return api.Conflict("account " + a.ID + " belongs to another organization")
		case !isNew && m.Organization != org.ID:
			if isRoot(r) {
				return api.Conflict("account " + a.ID + " belongs to another organization")
			}
			return api.NotFound("no such account in the organization")
		}
		if isNew {
			auto, err := t.AutoEnable(org.ID)
			if err != nil {
				return err
			}
			a.Enabled = normalizeScanTypes(append(normalizeScanTypes(a.Enabled), auto...))
		}
		if a.ID != org.ManagementAccount && a.ID != org.DelegatedAdmin {
			a.Role = model.AccountMember
		}
		a.Organization = org.ID
		if err := t.UpdateAccount(a); err != nil {
			return err
		}
		return storeErr(t.SetMembership(store.Membership{Organization: org.ID, Account: a.ID, Status: store.MemberEnabled}), "membership")
	})
	if err != nil {
		return err
	}
	v, err := s.accountView(ctx, a)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, v)
}

// disassociateMember (Inspector's DisassociateMember): the member becomes standalone and keeps
// its settings and data; the delegated admin no longer sees it. The management account and the
// delegated admin cannot be disassociated.
func (s *Server) disassociateMember(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	org, err := s.orgFor(r, r.PathValue("organizationId"), true)
	if err != nil {
		return err
	}
	id := r.PathValue("accountId")
	api.SetAuditTarget(r, "organization/"+org.ID+"/member/"+id)
	err = s.Store.InOrgTx(ctx, func(t *store.OrgTx) error {
		org, err := t.Organization(org.ID)
		if err != nil {
			return err
		}
		m, err := t.Membership(id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && m.Organization != org.ID) {
			return api.NotFound("no such account in the organization")
		}
		if err != nil {
			return err
		}
		if id == org.ManagementAccount || id == org.DelegatedAdmin {
			return api.Conflict("the management account and the delegated admin cannot be disassociated")
		}
		return disassociate(t, org.ID, id)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func disassociate(t *store.OrgTx, org, id string) error {
	a, err := t.Account(id)
	if err != nil {
		return err
	}
	a.Organization, a.Role = "", model.AccountStandalone
	if err := t.UpdateAccount(a); err != nil {
		return err
	}
	return t.SetMembership(store.Membership{Organization: org, Account: id, Status: store.MemberRemoved})
}

// enableDelegatedAdmin (Inspector's EnableDelegatedAdminAccount): the management account names
// an associated account of its organization. There is at most one: naming another while one is
// set is a conflict (disable the current one first).
func (s *Server) enableDelegatedAdmin(w http.ResponseWriter, r *http.Request, body *MemberRequest) error {
	ctx := r.Context()
	org, err := s.orgFor(r, r.PathValue("organizationId"), true)
	if err != nil {
		return err
	}
	if err := requireManagement(r, org); err != nil {
		return err
	}
	api.SetAuditTarget(r, "organization/"+org.ID+"/delegated-admin/"+body.AccountID)
	err = s.Store.InOrgTx(ctx, func(t *store.OrgTx) error {
		if org, err = t.Organization(org.ID); err != nil {
			return err
		}
		switch org.DelegatedAdmin {
		case body.AccountID:
			return nil
		case "":
		default:
			return api.Conflict("the organization already has a delegated admin (" + org.DelegatedAdmin + "); disable it first")
		}
		m, err := t.Membership(body.AccountID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (m.Organization != org.ID || m.Status != store.MemberEnabled)) {
			return api.NotFound("no associated account " + body.AccountID + " in the organization")
		}
		if err != nil {
			return err
		}
		a, err := t.Account(body.AccountID)
		if err != nil {
			return err
		}
		if a.ID != org.ManagementAccount {
			a.Role = model.AccountDelegated
			if err := t.UpdateAccount(a); err != nil {
				return err
			}
		}
		org.DelegatedAdmin = a.ID
		return t.SetDelegatedAdmin(org.ID, a.ID)
	})
	if err != nil {
		return err
	}
	v, err := s.orgView(ctx, org)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, v)
}

// disableDelegatedAdmin (Inspector's DisableDelegatedAdminAccount): as in Inspector, every member
// becomes standalone and keeps its settings; a new delegated admin associates them again.
func (s *Server) disableDelegatedAdmin(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	org, err := s.orgFor(r, r.PathValue("organizationId"), true)
	if err != nil {
		return err
	}
	if err := requireManagement(r, org); err != nil {
		return err
	}
	err = s.Store.InOrgTx(ctx, func(t *store.OrgTx) error {
		if org, err = t.Organization(org.ID); err != nil {
			return err
		}
		if org.DelegatedAdmin == "" {
			return api.NotFound("the organization has no delegated admin")
		}
		api.SetAuditTarget(r, "organization/"+org.ID+"/delegated-admin/"+org.DelegatedAdmin)
		if da, err := t.Account(org.DelegatedAdmin); err != nil {
			return err
		} else if da.Role == model.AccountDelegated {
			da.Role = model.AccountMember
			if err := t.UpdateAccount(da); err != nil {
				return err
			}
		}
		if err := t.SetDelegatedAdmin(org.ID, ""); err != nil {
			return err
		}
		ms, err := t.Memberships(org.ID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Account == org.ManagementAccount || m.Status != store.MemberEnabled {
				continue
			}
			if err := disassociate(t, org.ID, m.Account); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
