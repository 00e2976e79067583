package app

import (
	"net/http"
	"sync/atomic"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/events"
)

// management is the state of the management endpoints (accounts, organizations, keys, audit,
// webhooks).
type management struct {
	// dispatcher is the running webhook dispatcher, woken when a sink or a retry makes events due.
	dispatcher atomic.Pointer[events.Dispatcher]
}

// routesManagement registers the management side of the API. Who may call what is decided in
// each handler with server/auth (see docs/server.md, "Accounts and organizations").
func (s *Server) routesManagement() {
	rt := s.router
	created := api.Success(http.StatusCreated, "")
	none := api.Success(http.StatusNoContent, "")

	rt.Handle("GET /v1/accounts", s.listAccounts, api.Doc("ListAccounts", "Accounts the caller may see, with their status", "accounts"))
	rt.Handle("POST /v1/accounts", api.JSONHandler(s.createAccount), created,
		api.Doc("CreateAccount", "Create an account (the operator) or a member of an organization (its management account)", "accounts"))
	rt.Handle("GET /v1/account-status", s.accountStatus, api.Query(api.Param{Name: "accountId", Description: "An account id (repeatable; default the caller's)."}),
		api.Doc("BatchGetAccountStatus", "Status of several accounts, with a reason for each one that cannot be reported", "accounts"))
	rt.Handle("GET /v1/accounts/{accountId}", s.getAccount, api.Doc("GetAccount", "An account with its status and enabled scan types", "accounts"))
	rt.Handle("POST /v1/accounts/{accountId}/enable", api.JSONHandler(s.enableScanTypes),
		api.Doc("Enable", "Enable scan types for an account", "accounts"))
	rt.Handle("POST /v1/accounts/{accountId}/disable", api.JSONHandler(s.disableScanTypes),
		api.Doc("Disable", "Disable scan types for an account", "accounts"))

	rt.Handle("POST /v1/organizations", api.JSONHandler(s.createOrganization), created,
		api.Doc("CreateOrganization", "Create an organization whose management account is the caller's", "organizations"))
	rt.Handle("GET /v1/organizations/{organizationId}", s.getOrganization,
		api.Doc("DescribeOrganizationConfiguration", "An organization, its delegated admin and its auto-enable settings", "organizations"))
	rt.Handle("PUT /v1/organizations/{organizationId}/configuration", api.JSONHandler(s.updateOrgConfiguration),
		api.Doc("UpdateOrganizationConfiguration", "Set the scan types enabled for new members", "organizations"))
	rt.Handle("GET /v1/organizations/{organizationId}/members", s.listMembers,
		api.Doc("ListMembers", "The organization's accounts with their relationship status", "organizations"))
	rt.Handle("POST /v1/organizations/{organizationId}/members", api.JSONHandler(s.associateMember),
		api.Doc("AssociateMember", "Associate an account with the organization's delegated admin", "organizations"))
	rt.Handle("DELETE /v1/organizations/{organizationId}/members/{accountId}", s.disassociateMember, none,
		api.Doc("DisassociateMember", "Disassociate a member: it becomes standalone and keeps its data", "organizations"))
	rt.Handle("PUT /v1/organizations/{organizationId}/delegated-admin", api.JSONHandler(s.enableDelegatedAdmin),
		api.Doc("EnableDelegatedAdminAccount", "Designate the organization's delegated admin (at most one)", "organizations"))
	rt.Handle("DELETE /v1/organizations/{organizationId}/delegated-admin", s.disableDelegatedAdmin, none,
		api.Doc("DisableDelegatedAdminAccount", "Remove the delegated admin; members become standalone", "organizations"))

	rt.Handle("GET /v1/keys", s.listKeys, api.Doc("ListApiKeys", "The account's API keys (never their secrets)", "keys"))
	rt.Handle("POST /v1/keys", api.JSONHandler(s.createKey), created,
		api.Doc("CreateApiKey", "Create an API key; its secret is shown only in this answer", "keys"))
	rt.Handle("DELETE /v1/keys/{keyId}", s.revokeKey, none, api.Doc("RevokeApiKey", "Revoke an API key at once", "keys"))

	rt.Handle("GET /v1/audit-log", s.listAudit, api.Paginated(), api.Query(
		api.Param{Name: "account", Description: "One account of the caller's scope."},
		api.Param{Name: "actor", Description: "An API key id."},
		api.Param{Name: "action", Description: `A route and status, e.g. "POST /v1/keys -> 201".`},
		api.Param{Name: "since", Description: "RFC 3339 time, inclusive."},
		api.Param{Name: "until", Description: "RFC 3339 time, inclusive."}),
		api.Doc("ListAuditLog", "Who did what, when and from where: every mutating call, newest first", "audit"))

	rt.Handle("GET /v1/webhooks", s.listSinks, api.Doc("ListWebhooks", "The account's webhook sinks", "webhooks"))
	rt.Handle("POST /v1/webhooks", api.JSONHandler(s.createSink), created,
		api.Doc("CreateWebhook", "Create a webhook sink; a server-drawn secret is shown only in this answer", "webhooks"))
	rt.Handle("GET /v1/webhooks/{sinkId}", s.getSink, api.Doc("GetWebhook", "A webhook sink (never its secret)", "webhooks"))
	rt.Handle("PATCH /v1/webhooks/{sinkId}", api.JSONHandler(s.updateSink),
		api.Doc("UpdateWebhook", "Change a webhook sink: URL, event types, enabled, secret rotation", "webhooks"))
	rt.Handle("DELETE /v1/webhooks/{sinkId}", s.deleteSink, none, api.Doc("DeleteWebhook", "Delete a webhook sink", "webhooks"))
	rt.Handle("GET /v1/webhook-dead-letters", s.listDeadLetters, api.Paginated(),
		api.Query(api.Param{Name: "account", Description: "One account of the caller's scope."}),
		api.Doc("ListDeadLetters", "Events whose delivery was given up, with the failing sinks' reasons", "webhooks"))
	rt.Handle("POST /v1/webhook-dead-letters/{seq}/retry", s.retryDeadLetter, none,
		api.Doc("RetryDeadLetter", "Deliver a dead-lettered event again", "webhooks"))
}
