package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

// Scan types an account enables (Inspector's Enable/Disable resourceTypes, in Vigil's words):
// package scanning of hosts, images and functions, code scanning of functions, and network
// reachability of hosts.
const (
	ScanTypeHost         = "host"
	ScanTypeImage        = "image"
	ScanTypeFunction     = "function"
	ScanTypeFunctionCode = "function-code"
	ScanTypeNetwork      = "network"
)

// ScanTypes lists every scan type an account may enable, in display order.
var ScanTypes = []string{ScanTypeHost, ScanTypeImage, ScanTypeFunction, ScanTypeFunctionCode, ScanTypeNetwork}

// normalizeScanTypes expands the legacy "package" entry (package scanning of every resource
// type, what the default account is created with) and sorts into ScanTypes order.
func normalizeScanTypes(in []string) []string {
	set := map[string]bool{}
	for _, t := range in {
		if t == model.ScanPackage {
			set[ScanTypeHost], set[ScanTypeImage], set[ScanTypeFunction] = true, true, true
			continue
		}
		set[t] = true
	}
	var out []string
	for _, t := range ScanTypes {
		if set[t] {
			out = append(out, t)
		}
	}
	return out
}

func validateScanTypes(field string, ts []string) []api.FieldError {
	var errs []api.FieldError
	for _, t := range ts {
		if !slices.Contains(ScanTypes, t) {
			errs = append(errs, api.FieldError{Field: field, Message: fmt.Sprintf("unknown scan type %q (want one of %s)", t, strings.Join(ScanTypes, ", "))})
		}
	}
	return errs
}

// Account statuses (Inspector's Status, the states Vigil has: changes are synchronous).
const (
	StatusEnabled  = "ENABLED"
	StatusDisabled = "DISABLED"
)

// AccountView is an account as the API shows it: its settings and its status.
type AccountView struct {
	AccountID        string    `json:"accountId"`
	Name             string    `json:"name"`
	OrganizationID   string    `json:"organizationId,omitempty"`
	Role             string    `json:"role"`
	EnabledScanTypes []string  `json:"enabledScanTypes"`
	CreatedAt        time.Time `json:"createdAt"`
	// Status is ENABLED when any scan type is enabled.
	Status string `json:"status"`
	// ResourceStatus is each scan type's status.
	ResourceStatus map[string]string `json:"resourceStatus"`
	// RelationshipStatus is the membership in an organization (ENABLED: associated, REMOVED:
	// disassociated); empty for accounts in none.
	RelationshipStatus      string `json:"relationshipStatus,omitempty"`
	DelegatedAdminAccountID string `json:"delegatedAdminAccountId,omitempty"`
}

func (s *Server) accountView(ctx context.Context, a model.Account) (AccountView, error) {
	v := AccountView{AccountID: a.ID, Name: a.Name, OrganizationID: a.Organization, Role: a.Role,
		EnabledScanTypes: normalizeScanTypes(a.Enabled), CreatedAt: a.CreatedAt, Status: StatusDisabled,
		ResourceStatus: map[string]string{}}
	if v.EnabledScanTypes == nil {
		v.EnabledScanTypes = []string{}
	}
	for _, t := range ScanTypes {
		v.ResourceStatus[t] = StatusDisabled
	}
	for _, t := range v.EnabledScanTypes {
		v.ResourceStatus[t], v.Status = StatusEnabled, StatusEnabled
	}
	m, err := s.Store.GetMembership(ctx, a.ID)
	switch {
	case err == nil:
		v.RelationshipStatus = m.Status
		if v.OrganizationID == "" {
			v.OrganizationID = m.Organization
		}
		o, err := s.Store.GetOrganization(ctx, m.Organization)
		if err != nil {
			return v, err
		}
		if m.Status == store.MemberEnabled {
			v.DelegatedAdminAccountID = o.DelegatedAdmin
		}
	case !errors.Is(err, store.ErrNotFound):
		return v, err
	}
	return v, nil
}

// isRoot reports whether the request comes from an administrator key of the installation's
// default account: the operator, who creates accounts and organizations.
func isRoot(r *http.Request) bool {
	p := principal(r)
	return p.Account == DefaultAccount && p.Role == auth.RoleAdmin
}

// requireAdmin answers 403 to a read-only key.
func requireAdmin(r *http.Request, what string) error {
	if principal(r).Role != auth.RoleAdmin {
		return fmt.Errorf("%w: a %s key may not %s", auth.ErrForbidden, principal(r).Role, what)
	}
	return nil
}

func storeErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.NotFound("no such " + what)
	case errors.Is(err, store.ErrExists):
		return api.Conflict(err.Error())
	case errors.Is(err, store.ErrBadToken):
		return api.BadRequest("invalid page token", api.FieldError{Field: "nextToken", Message: "invalid"})
	}
	return err
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	var ids []string
	var err error
	if isRoot(r) {
		ids, err = s.allAccounts(r.Context())
	} else {
		ids, err = auth.Scope(r.Context(), orgDirectory{s.Store}, principal(r), auth.ReadAccount)
	}
	if err != nil {
		return err
	}
	accts, err := s.Store.ListAccounts(r.Context(), ids)
	if err != nil {
		return err
	}
	out := []AccountView{}
	for _, a := range accts {
		v, err := s.accountView(r.Context(), a)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"accounts": out})
}

// authorizeAccount checks action on the account (the operator may read every account).
func (s *Server) authorizeAccount(r *http.Request, action auth.Action, acct string) error {
	if isRoot(r) && !action.Mutates() {
		return nil
	}
	return s.router.Authorize(r, action, acct)
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("accountId")
	if err := s.authorizeAccount(r, auth.ReadAccount, id); err != nil {
		return err
	}
	a, err := s.Store.GetAccount(r.Context(), id)
	if err != nil {
		return storeErr(err, "account")
	}
	v, err := s.accountView(r.Context(), a)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, v)
}

// AccountStatusFailure is one account BatchGetAccountStatus could not report.
type AccountStatusFailure struct {
	AccountID    string `json:"accountId"`
	ErrorCode    string `json:"errorCode"` // RESOURCE_NOT_FOUND, ACCESS_DENIED
	ErrorMessage string `json:"errorMessage"`
}

// accountStatus is Inspector's BatchGetAccountStatus: ?accountId= repeated (default: the caller's).
// Accounts the caller may not see are reported as RESOURCE_NOT_FOUND, like missing ones.
func (s *Server) accountStatus(w http.ResponseWriter, r *http.Request) error {
	ids := r.URL.Query()["accountId"]
	if len(ids) == 0 {
		ids = []string{principal(r).Account}
	}
	if len(ids) > 100 {
		return api.Validation(api.FieldError{Field: "accountId", Message: "at most 100 accounts"})
	}
	out := struct {
		Accounts []AccountView          `json:"accounts"`
		Failed   []AccountStatusFailure `json:"failedAccounts"`
	}{Accounts: []AccountView{}, Failed: []AccountStatusFailure{}}
	for _, id := range ids {
		err := s.authorizeAccount(r, auth.ReadAccount, id)
		var a model.Account
		if err == nil {
			a, err = s.Store.GetAccount(r.Context(), id)
		}
		switch {
		case err == nil:
			v, err := s.accountView(r.Context(), a)
			if err != nil {
				return err
			}
			out.Accounts = append(out.Accounts, v)
		case errors.Is(err, auth.ErrForbidden):
			out.Failed = append(out.Failed, AccountStatusFailure{id, "ACCESS_DENIED", "this API key may not read the account"})
		case errors.Is(err, auth.ErrNotVisible), errors.Is(err, store.ErrNotFound):
			out.Failed = append(out.Failed, AccountStatusFailure{id, "RESOURCE_NOT_FOUND", "no such account"})
		default:
			return err
		}
	}
	return api.WriteJSON(w, http.StatusOK, out)
}

var accountIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CreateAccountRequest creates an account.
type CreateAccountRequest struct {
	AccountID string `json:"accountId"`
	Name      string `json:"name,omitempty"`
	// OrganizationID makes the account an associated member of that organization; the
	// organization's auto-enable settings apply unless EnabledScanTypes is given.
	OrganizationID   string    `json:"organizationId,omitempty"`
	EnabledScanTypes *[]string `json:"enabledScanTypes,omitempty"`
	// IssueAdminKey returns a first ADMIN key of the new account (shown once).
	IssueAdminKey bool `json:"issueAdminKey,omitempty"`
}

// Validate implements api.Validator.
func (c *CreateAccountRequest) Validate() []api.FieldError {
	var errs []api.FieldError
	if !accountIDPattern.MatchString(c.AccountID) {
		errs = append(errs, api.FieldError{Field: "accountId", Message: "must be 1 to 64 lowercase letters, digits, '.', '_' or '-'"})
	}
	if c.EnabledScanTypes != nil {
		errs = append(errs, validateScanTypes("enabledScanTypes", *c.EnabledScanTypes)...)
	}
	return errs
}

// CreatedAccount is the answer to an account creation.
type CreatedAccount struct {
	Account AccountView `json:"account"`
	// AdminKey is the new account's first administrator key, shown only here.
	AdminKey string `json:"adminKey,omitempty"`
}

// createAccount: the operator creates any account; an organization's management account creates
// members of its organization.
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, body *CreateAccountRequest) error {
	ctx := r.Context()
	if err := requireAdmin(r, "create accounts"); err != nil {
		return err
	}
	a := model.Account{ID: body.AccountID, Name: firstNonEmpty(body.Name, body.AccountID), Role: model.AccountStandalone,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if body.OrganizationID == "" {
		if !isRoot(r) {
			return fmt.Errorf("%w: only the operator (an ADMIN key of account %q) creates standalone accounts", auth.ErrForbidden, DefaultAccount)
		}
	} else {
		org, err := s.orgFor(r, body.OrganizationID, false)
		if err != nil {
			return err
		}
		if !isRoot(r) && principal(r).Account != org.ManagementAccount {
			return fmt.Errorf("%w: only the management account creates members", auth.ErrForbidden)
		}
		a.Organization, a.Role = org.ID, model.AccountMember
	}
	api.SetAuditTarget(r, "account/"+a.ID)
	err := s.Store.InOrgTx(ctx, func(t *store.OrgTx) error {
		if body.EnabledScanTypes != nil {
			a.Enabled = normalizeScanTypes(*body.EnabledScanTypes)
		} else if a.Organization != "" {
			auto, err := t.AutoEnable(a.Organization)
			if err != nil {
				return err
			}
			a.Enabled = normalizeScanTypes(auto)
		}
		if err := t.CreateAccount(a); err != nil {
			return storeErr(err, "account")
		}
		if a.Organization == "" {
			return nil
		}
		return t.SetMembership(store.Membership{Organization: a.Organization, Account: a.ID, Status: store.MemberEnabled})
	})
	if err != nil {
		return err
	}
	out := CreatedAccount{}
	if body.IssueAdminKey {
		raw, sk, err := auth.Issue(auth.Hasher{}, a.ID, auth.RoleAdmin, "initial-admin", a.CreatedAt, time.Time{})
		if err != nil {
			return err
		}
		if err := s.Store.CreateAPIKey(ctx, toStoreKey(sk)); err != nil {
			return err
		}
		out.AdminKey = raw
	}
	if out.Account, err = s.accountView(ctx, a); err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusCreated, out)
}

// ScanTypesRequest is the body of enable and disable.
type ScanTypesRequest struct {
	ScanTypes []string `json:"scanTypes"`
}

// Validate implements api.Validator.
func (b *ScanTypesRequest) Validate() []api.FieldError {
	if len(b.ScanTypes) == 0 {
		return []api.FieldError{{Field: "scanTypes", Message: "name at least one scan type"}}
	}
	return validateScanTypes("scanTypes", b.ScanTypes)
}

func (s *Server) enableScanTypes(w http.ResponseWriter, r *http.Request, body *ScanTypesRequest) error {
	return s.setScanTypes(w, r, body.ScanTypes, true)
}

func (s *Server) disableScanTypes(w http.ResponseWriter, r *http.Request, body *ScanTypesRequest) error {
	return s.setScanTypes(w, r, body.ScanTypes, false)
}

// setScanTypes is Inspector's Enable/Disable for one account: the account itself or its
// delegated admin. An associated member may enable but not disable its own scan types: only the
// delegated admin deactivates scanning of a member.
func (s *Server) setScanTypes(w http.ResponseWriter, r *http.Request, types []string, enable bool) error {
	ctx := r.Context()
	id := r.PathValue("accountId")
	if err := s.router.Authorize(r, auth.WriteAccount, id); err != nil {
		return err
	}
	api.SetAuditTarget(r, "account/"+id)
	var a model.Account
	err := s.Store.InOrgTx(ctx, func(t *store.OrgTx) error {
		var err error
		if a, err = t.Account(id); err != nil {
			return storeErr(err, "account")
		}
		if !enable && principal(r).Account == id && a.Organization != "" {
			if org, err := t.Organization(a.Organization); err == nil && org.DelegatedAdmin != "" && org.DelegatedAdmin != id {
				return fmt.Errorf("%w: an associated member cannot disable scanning; its delegated admin (%s) can", auth.ErrForbidden, org.DelegatedAdmin)
			}
		}
		cur := normalizeScanTypes(a.Enabled)
		if enable {
			cur = normalizeScanTypes(append(cur, types...))
		} else {
			cur = slices.DeleteFunc(cur, func(t string) bool { return slices.Contains(types, t) })
		}
		a.Enabled = cur
		return t.UpdateAccount(a)
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

// requireScanType refuses an inventory of a resource type whose package scanning the account has
// not enabled (409, saying how to enable it).
func (s *Server) requireScanType(ctx context.Context, acct, resourceType string) error {
	a, err := s.Store.GetAccount(ctx, acct)
	if err != nil {
		return storeErr(err, "account")
	}
	if a.ScanEnabled(resourceType) {
		return nil
	}
	return api.Conflict(fmt.Sprintf("scanning of %s resources is not enabled for account %s: POST /v1/accounts/%s/enable {\"scanTypes\": [%q]}",
		resourceType, acct, acct, resourceType))
}
