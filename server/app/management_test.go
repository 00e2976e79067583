package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/api/apitest"
	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// ownAccountOnly: management routes that list or create in the caller's own account, where a
// foreign key has no victim data to reach (they are tested for isolation separately).
func ownAccountOnly(r api.Route) bool {
	switch r.Pattern {
	case "GET /v1/accounts", "GET /v1/account-status", "GET /v1/keys", "POST /v1/keys", "GET /v1/webhooks", "POST /v1/webhooks":
		return true
	}
	return false
}

// victim holds the default account's management objects a foreign-account walk aims at.
type victim struct {
	keyID, sinkID string
}

const victimOrg = "org-default"

// seedManagement gives the default account (c's) an organization, a second key and a webhook.
func seedManagement(t *testing.T, c *client, hookURL string) victim {
	t.Helper()
	var v victim
	if st := c.do("POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: victimOrg}, &OrganizationView{}); st != 201 {
		t.Fatalf("create organization: %d", st)
	}
	var k CreatedKey
	if st := c.do("POST", "/v1/keys", KeyRequest{Name: "ci", Role: "READ_ONLY"}, &k); st != 201 {
		t.Fatalf("create key: %d", st)
	}
	var s SinkView
	if st := c.do("POST", "/v1/webhooks", SinkRequest{URL: hookURL, Secret: "whsec-victim-0123456789"}, &s); st != 201 {
		t.Fatalf("create webhook: %d", st)
	}
	v.keyID, v.sinkID = k.Key.ID, s.ID
	return v
}

func (v victim) pathValue(p string) (string, bool) {
	switch p {
	case "accountId":
		return DefaultAccount, true
	case "organizationId":
		return victimOrg, true
	case "keyId":
		return v.keyID, true
	case "sinkId":
		return v.sinkID, true
	case "seq":
		return "1", true
	}
	return "", false
}

// body returns a valid body for a management route (nil for others).
func (v victim) body(r api.Route) []byte {
	switch r.Pattern {
	case "POST /v1/accounts":
		return []byte(`{"accountId": "stolen", "organizationId": "` + victimOrg + `"}`)
	case "POST /v1/organizations":
		return []byte(`{"organizationId": "org-stolen", "managementAccountId": "` + DefaultAccount + `"}`)
	case "POST /v1/accounts/{accountId}/enable", "POST /v1/accounts/{accountId}/disable":
		return []byte(`{"scanTypes": ["host"]}`)
	case "PUT /v1/organizations/{organizationId}/configuration":
		return []byte(`{"autoEnable": ["host"]}`)
	case "POST /v1/organizations/{organizationId}/members", "PUT /v1/organizations/{organizationId}/delegated-admin":
		return []byte(`{"accountId": "` + DefaultAccount + `"}`)
	case "PATCH /v1/webhooks/{sinkId}":
		return []byte(`{"enabled": false}`)
	case "POST /v1/keys":
		return []byte(`{"name": "k", "role": "ADMIN"}`)
	case "POST /v1/webhooks":
		return []byte(`{"url": "https://hooks.example.com/x"}`)
	}
	return nil
}

// mgmtEnv is a server on loopback and a client per named key.
type mgmtEnv struct {
	t    *testing.T
	srv  *Server
	ts   *httptest.Server
	keys map[string]string
}

func newMgmtEnv(t *testing.T, postgres string, cfg Config) *mgmtEnv {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	mirror := t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	vdb, err := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	cfg.DataDir, cfg.Postgres = data, postgres
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &mgmtEnv{t: t, srv: srv, ts: ts, keys: map[string]string{"root": srv.AdminKey()}}
}

func (e *mgmtEnv) as(who string) *client {
	k, ok := e.keys[who]
	if !ok {
		e.t.Fatalf("no key %q", who)
	}
	return &client{t: e.t, base: e.ts.URL, key: k, http: e.ts.Client()}
}

// expect sends a request and fails unless the status is want.
func (e *mgmtEnv) expect(who, method, path string, body any, want int, out any) {
	e.t.Helper()
	if st := e.as(who).do(method, path, body, out); st != want {
		e.t.Errorf("%s %s as %s: %d, want %d", method, path, who, st, want)
	}
}

// account creates an account as creator and keeps its first admin key under the account's name.
func (e *mgmtEnv) account(creator string, req CreateAccountRequest) AccountView {
	e.t.Helper()
	req.IssueAdminKey = true
	var out CreatedAccount
	if st := e.as(creator).do("POST", "/v1/accounts", req, &out); st != 201 {
		e.t.Fatalf("create account %s as %s: %d", req.AccountID, creator, st)
	}
	if !strings.HasPrefix(out.AdminKey, "vgl_") {
		e.t.Fatalf("no admin key for %s", req.AccountID)
	}
	e.keys[req.AccountID] = out.AdminKey
	return out.Account
}

func (e *mgmtEnv) roKey(of string) string {
	e.t.Helper()
	var k CreatedKey
	if st := e.as(of).do("POST", "/v1/keys", KeyRequest{Name: "dashboard", Role: "READ_ONLY"}, &k); st != 201 {
		e.t.Fatalf("read-only key for %s: %d", of, st)
	}
	e.keys[of+"-ro"] = k.Secret
	return k.Secret
}

func TestAccountsAndOrganizations(t *testing.T) {
	e := newMgmtEnv(t, "", Config{})
	// Only the operator creates standalone accounts.
	mgmt := e.account("root", CreateAccountRequest{AccountID: "acme-mgmt", Name: "ACME"})
	if mgmt.Status != StatusDisabled || mgmt.Role != model.AccountStandalone {
		t.Errorf("new standalone account: %+v", mgmt)
	}
	e.expect("acme-mgmt", "POST", "/v1/accounts", CreateAccountRequest{AccountID: "rogue"}, 403, nil)
	e.expect("root", "POST", "/v1/accounts", CreateAccountRequest{AccountID: "acme-mgmt"}, 409, nil)
	e.expect("root", "POST", "/v1/accounts", CreateAccountRequest{AccountID: "Bad ID"}, 422, nil)
	e.account("root", CreateAccountRequest{AccountID: "other"})

	// acme-mgmt founds an organization and sets auto-enable for new members.
	var org OrganizationView
	e.expect("acme-mgmt", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-acme"}, 403, nil)
	e.expect("root", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-acme", ManagementAccountID: "acme-mgmt"}, 201, &org)
	if org.ManagementAccount != "acme-mgmt" || org.DelegatedAdmin != "" {
		t.Errorf("organization: %+v", org)
	}
	e.expect("other", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-x", ManagementAccountID: "other"}, 403, nil)
	e.expect("root", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-2", ManagementAccountID: "acme-mgmt"}, 409, nil)
	e.expect("root", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-acme", ManagementAccountID: "other"}, 409, nil)
	e.expect("acme-mgmt", "PUT", "/v1/organizations/org-acme/configuration", OrganizationConfiguration{AutoEnable: []string{"image", "host"}}, 200, &org)
	if !slices.Equal(org.AutoEnable, []string{"host", "image"}) {
		t.Errorf("auto-enable: %v", org.AutoEnable)
	}
	e.expect("acme-mgmt", "PUT", "/v1/organizations/org-acme/configuration", OrganizationConfiguration{AutoEnable: []string{"ec2"}}, 422, nil)
	e.expect("other", "GET", "/v1/organizations/org-acme", nil, 404, nil)

	// Members get the auto-enabled scan types unless told otherwise.
	sec := e.account("acme-mgmt", CreateAccountRequest{AccountID: "acme-sec", OrganizationID: "org-acme"})
	web := e.account("acme-mgmt", CreateAccountRequest{AccountID: "acme-web", OrganizationID: "org-acme"})
	net := e.account("acme-mgmt", CreateAccountRequest{AccountID: "acme-net", OrganizationID: "org-acme", EnabledScanTypes: &[]string{"network"}})
	if !slices.Equal(web.EnabledScanTypes, []string{"host", "image"}) || web.Status != StatusEnabled || web.ResourceStatus["function"] != StatusDisabled ||
		web.Role != model.AccountMember || web.RelationshipStatus != "ENABLED" || sec.OrganizationID != "org-acme" {
		t.Errorf("auto-enabled member: %+v", web)
	}
	if !slices.Equal(net.EnabledScanTypes, []string{"network"}) {
		t.Errorf("explicit scan types: %+v", net)
	}
	e.expect("other", "POST", "/v1/accounts", CreateAccountRequest{AccountID: "intruder", OrganizationID: "org-acme"}, 404, nil)
	e.expect("acme-web", "POST", "/v1/accounts", CreateAccountRequest{AccountID: "intruder", OrganizationID: "org-acme"}, 404, nil)

	// One delegated admin, designated by the management account only.
	e.expect("acme-web", "PUT", "/v1/organizations/org-acme/delegated-admin", MemberRequest{AccountID: "acme-web"}, 404, nil)
	e.expect("acme-mgmt", "PUT", "/v1/organizations/org-acme/delegated-admin", MemberRequest{AccountID: "other"}, 404, nil)
	e.expect("acme-mgmt", "PUT", "/v1/organizations/org-acme/delegated-admin", MemberRequest{AccountID: "acme-sec"}, 200, &org)
	if org.DelegatedAdmin != "acme-sec" || org.Members != 4 {
		t.Errorf("after designating: %+v", org)
	}
	e.expect("acme-mgmt", "PUT", "/v1/organizations/org-acme/delegated-admin", MemberRequest{AccountID: "acme-web"}, 409, nil)
	e.expect("acme-sec", "DELETE", "/v1/organizations/org-acme/delegated-admin", nil, 403, nil)

	// The delegated admin sees and manages members; members see only themselves.
	var list struct{ Accounts []AccountView }
	e.expect("acme-sec", "GET", "/v1/accounts", nil, 200, &list)
	var ids []string
	for _, a := range list.Accounts {
		ids = append(ids, a.AccountID)
	}
	if !slices.Equal(ids, []string{"acme-mgmt", "acme-net", "acme-sec", "acme-web"}) {
		t.Errorf("the delegated admin sees %v", ids)
	}
	e.expect("acme-web", "GET", "/v1/accounts", nil, 200, &list)
	if len(list.Accounts) != 1 || list.Accounts[0].AccountID != "acme-web" || list.Accounts[0].DelegatedAdminAccountID != "acme-sec" {
		t.Errorf("a member sees %+v", list.Accounts)
	}
	e.expect("acme-web", "GET", "/v1/accounts/acme-sec", nil, 404, nil)
	e.expect("other", "GET", "/v1/accounts/acme-web", nil, 404, nil)
	e.expect("acme-sec", "POST", "/v1/accounts/acme-web/disable", ScanTypesRequest{ScanTypes: []string{"image"}}, 200, &web)
	if !slices.Equal(web.EnabledScanTypes, []string{"host"}) {
		t.Errorf("after the delegated admin disabled image: %v", web.EnabledScanTypes)
	}
	e.expect("acme-web", "POST", "/v1/accounts/acme-web/disable", ScanTypesRequest{ScanTypes: []string{"host"}}, 403, nil)
	e.expect("acme-web", "POST", "/v1/accounts/acme-web/enable", ScanTypesRequest{ScanTypes: []string{"network", "function-code"}}, 200, &web)
	if !slices.Equal(web.EnabledScanTypes, []string{"host", "function-code", "network"}) {
		t.Errorf("after the member enabled: %v", web.EnabledScanTypes)
	}
	e.expect("acme-mgmt", "POST", "/v1/accounts/acme-web/enable", ScanTypesRequest{ScanTypes: []string{"image"}}, 403, nil)
	e.expect("other", "POST", "/v1/accounts/acme-web/enable", ScanTypesRequest{ScanTypes: []string{"image"}}, 404, nil)
	e.expect("acme-web", "POST", "/v1/accounts/acme-web/enable", ScanTypesRequest{ScanTypes: []string{"lambda"}}, 422, nil)

	// BatchGetAccountStatus reports what the caller may see and hides the rest.
	var st struct {
		Accounts []AccountView
		Failed   []AccountStatusFailure `json:"failedAccounts"`
	}
	e.expect("acme-web", "GET", "/v1/account-status?accountId=acme-web&accountId=acme-sec&accountId=nope", nil, 200, &st)
	if len(st.Accounts) != 1 || len(st.Failed) != 2 || st.Failed[0].ErrorCode != "RESOURCE_NOT_FOUND" || st.Failed[1].ErrorCode != "RESOURCE_NOT_FOUND" {
		t.Errorf("account status: %+v", st)
	}

	// Disassociation: the member becomes standalone, keeps its settings, leaves the admin's view.
	e.expect("acme-web", "DELETE", "/v1/organizations/org-acme/members/acme-net", nil, 404, nil)
	e.expect("acme-sec", "DELETE", "/v1/organizations/org-acme/members/acme-mgmt", nil, 409, nil)
	e.expect("acme-sec", "DELETE", "/v1/organizations/org-acme/members/acme-web", nil, 204, nil)
	e.expect("acme-sec", "GET", "/v1/accounts/acme-web", nil, 404, nil)
	e.expect("acme-web", "GET", "/v1/accounts/acme-web", nil, 200, &web)
	if web.RelationshipStatus != "REMOVED" || web.Role != model.AccountStandalone || len(web.EnabledScanTypes) != 3 {
		t.Errorf("disassociated: %+v", web)
	}
	e.expect("acme-web", "POST", "/v1/accounts/acme-web/disable", ScanTypesRequest{ScanTypes: []string{"host"}}, 200, nil)
	var members struct{ Members []MemberView }
	e.expect("acme-mgmt", "GET", "/v1/organizations/org-acme/members", nil, 200, &members)
	status := map[string]string{}
	for _, m := range members.Members {
		status[m.AccountID] = m.RelationshipStatus
	}
	if status["acme-web"] != "REMOVED" || status["acme-net"] != "ENABLED" || len(status) != 4 {
		t.Errorf("members: %v", status)
	}
	e.expect("acme-web", "GET", "/v1/organizations/org-acme/members", nil, 404, nil)

	// Association: only accounts of the organization, except for the operator.
	e.expect("acme-sec", "POST", "/v1/organizations/org-acme/members", MemberRequest{AccountID: "other"}, 404, nil)
	e.expect("acme-sec", "POST", "/v1/organizations/org-acme/members", MemberRequest{AccountID: "acme-web"}, 200, &web)
	if web.RelationshipStatus != "ENABLED" || web.DelegatedAdminAccountID != "acme-sec" {
		t.Errorf("associated again: %+v", web)
	}
	var oth AccountView
	e.expect("root", "POST", "/v1/organizations/org-acme/members", MemberRequest{AccountID: "other"}, 200, &oth)
	if !slices.Equal(oth.EnabledScanTypes, []string{"host", "image"}) {
		t.Errorf("a new member gets the auto-enabled types: %v", oth.EnabledScanTypes)
	}

	// Read-only keys of the management account and the delegated admin change nothing.
	e.roKey("acme-mgmt")
	e.roKey("acme-sec")
	e.expect("acme-mgmt-ro", "GET", "/v1/organizations/org-acme", nil, 200, nil)
	e.expect("acme-mgmt-ro", "PUT", "/v1/organizations/org-acme/configuration", OrganizationConfiguration{}, 403, nil)
	e.expect("acme-mgmt-ro", "DELETE", "/v1/organizations/org-acme/delegated-admin", nil, 403, nil)
	e.expect("acme-sec-ro", "DELETE", "/v1/organizations/org-acme/members/acme-web", nil, 403, nil)
	e.expect("acme-sec-ro", "POST", "/v1/accounts/acme-web/enable", ScanTypesRequest{ScanTypes: []string{"image"}}, 403, nil)

	// Removing the delegated admin makes every member standalone (Inspector's rule).
	e.expect("acme-mgmt", "DELETE", "/v1/organizations/org-acme/delegated-admin", nil, 204, nil)
	e.expect("acme-sec", "GET", "/v1/accounts/acme-web", nil, 404, nil)
	e.expect("acme-mgmt", "GET", "/v1/organizations/org-acme/members", nil, 200, &members)
	for _, m := range members.Members {
		if want := map[bool]string{true: "ENABLED", false: "REMOVED"}[m.AccountID == "acme-mgmt"]; m.RelationshipStatus != want {
			t.Errorf("after removing the delegated admin, %s is %s", m.AccountID, m.RelationshipStatus)
		}
	}

	// Every call above that changed something is in the audit log, with who and from where.
	var audit struct {
		Entries []struct{ Account, Actor, Action, Target, RemoteAddr string }
	}
	e.expect("acme-mgmt", "GET", "/v1/audit-log?action="+urlEscape("PUT /v1/organizations/{organizationId}/configuration -> 200"), nil, 200, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Target != "organization/org-acme" || audit.Entries[0].RemoteAddr != "127.0.0.1" ||
		audit.Entries[0].Actor == "" {
		t.Errorf("audit of the configuration change: %+v", audit.Entries)
	}
	e.expect("root", "GET", "/v1/audit-log?action="+urlEscape("POST /v1/organizations -> 201"), nil, 200, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Target != "organization/org-acme" {
		t.Errorf("audit of the organization's creation: %+v", audit.Entries)
	}
	e.expect("acme-mgmt", "GET", "/v1/audit-log?maxResults=3", nil, 200, &audit)
	if len(audit.Entries) != 3 || audit.Entries[0].Action != "DELETE /v1/organizations/{organizationId}/delegated-admin -> 204" {
		t.Errorf("newest audit entries: %+v", audit.Entries)
	}
}

func urlEscape(s string) string {
	return strings.NewReplacer(" ", "%20", "/", "%2F", ">", "%3E", "{", "%7B", "}", "%7D").Replace(s)
}

func TestAPIKeysAndAudit(t *testing.T) {
	e := newMgmtEnv(t, "", Config{})
	e.account("root", CreateAccountRequest{AccountID: "team"})
	e.account("root", CreateAccountRequest{AccountID: "other"})
	var created CreatedKey
	e.expect("team", "POST", "/v1/keys", KeyRequest{Name: "grafana", Role: "READ_ONLY"}, 201, &created)
	if created.Key.Role != "READ_ONLY" || !strings.HasPrefix(created.Secret, "vgl_"+created.Key.ID+"_") {
		t.Fatalf("created key: %+v", created)
	}
	e.keys["team-ro"] = created.Secret
	e.expect("team", "POST", "/v1/keys", KeyRequest{Name: "x", Role: "ROOT"}, 422, nil)
	e.expect("team", "POST", "/v1/keys", KeyRequest{Role: "ADMIN"}, 422, nil)
	past := time.Now().Add(-time.Hour)
	e.expect("team", "POST", "/v1/keys", KeyRequest{Name: "x", Role: "ADMIN", ExpiresAt: &past}, 422, nil)

	// The listing never carries a secret or its hash.
	req, _ := http.NewRequest("GET", e.ts.URL+"/v1/keys", nil)
	req.Header.Set("Authorization", "Bearer "+e.keys["team"])
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	secret := created.Secret[strings.LastIndex(created.Secret, "_")+1:]
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(bytes.ToLower(raw), []byte("hash")) || !bytes.Contains(raw, []byte(created.Key.ID)) {
		t.Errorf("key listing: %s", raw)
	}
	var keys struct {
		Keys []struct{ KeyID, Role, Name string }
	}
	e.expect("other", "GET", "/v1/keys", nil, 200, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0].Name != "initial-admin" {
		t.Errorf("another account's keys leak: %+v", keys)
	}
	e.expect("team-ro", "GET", "/v1/keys", nil, 200, nil)
	e.expect("team-ro", "POST", "/v1/keys", KeyRequest{Name: "escalate", Role: "ADMIN"}, 403, nil)
	e.expect("other", "DELETE", "/v1/keys/"+created.Key.ID, nil, 404, nil)

	// A read-only key gets 403 on every mutating endpoint (its own account's objects, valid bodies).
	var sink SinkView
	e.expect("team", "POST", "/v1/webhooks", SinkRequest{URL: "https://hooks.example.com/team"}, 201, &sink)
	e.expect("root", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-team", ManagementAccountID: "team"}, 201, nil)
	v := victim{keyID: created.Key.ID, sinkID: sink.ID}
	n := 0
	for _, r := range e.srv.router.Routes() {
		if r.Public || r.Method == http.MethodGet || r.Reads {
			continue
		}
		path := r.Path
		for _, p := range r.PathParams {
			val, ok := v.pathValue(p)
			switch {
			case p == "accountId":
				val = "team"
			case p == "organizationId":
				val = "org-team"
			case p == "resourceType":
				val = "host"
			case !ok:
				val = "x"
			}
			path = strings.Replace(path, "{"+p+"}", val, 1)
		}
		body := v.body(r)
		switch {
		case strings.HasSuffix(r.Path, "/inventory"):
			body = []byte(`{"inventory": {"packages": []}}`)
		case strings.HasPrefix(r.Path, "/v1/suppression-rules"):
			body = []byte(`{"name": "x", "reason": "y", "filter": {"severities": ["LOW"]}}`)
		case strings.HasSuffix(r.Path, "/heartbeat"):
			body = []byte(`{"heartbeatSeconds": 120}`)
		case strings.HasSuffix(r.Path, "/instructions"):
			body = []byte(`{"type": "COLLECT_NOW"}`)
		case r.Path == "/v1/agent-join-tokens":
			body = []byte(`{"name": "t"}`)
		case r.Pattern == "POST /v1/accounts":
			body = []byte(`{"accountId": "t2", "organizationId": "org-team"}`)
		case r.Pattern == "POST /v1/organizations":
			body = []byte(`{"organizationId": "org-t2"}`)
		case body == nil:
			body = []byte(`{}`)
		}
		c := e.as("team-ro")
		var anyBody any
		if r.Method != http.MethodDelete {
			anyBody = json.RawMessage(body)
		}
		if st := c.do(r.Method, path, anyBody, nil); st != http.StatusForbidden {
			t.Errorf("%s as a read-only key: %d, want 403", r.Pattern, st)
		}
		n++
	}
	if n < 20 {
		t.Errorf("only %d mutating routes checked", n)
	}

	// The last usable ADMIN key stays; revocation takes effect at once.
	teamKeyID := strings.Split(e.keys["team"], "_")[1]
	e.expect("team", "DELETE", "/v1/keys/"+teamKeyID, nil, 409, nil)
	e.expect("team", "DELETE", "/v1/keys/"+created.Key.ID, nil, 204, nil)
	e.expect("team", "DELETE", "/v1/keys/"+created.Key.ID, nil, 204, nil) // idempotent
	e.expect("team-ro", "GET", "/v1/keys", nil, 401, nil)
	e.expect("team", "GET", "/v1/keys", nil, 200, &keys)
	var revoked int
	for _, k := range keys.Keys {
		if k.KeyID == created.Key.ID {
			revoked++
		}
	}
	if revoked != 1 {
		t.Errorf("the revoked key must stay listed: %+v", keys)
	}

	// The audit log: the team's mutations, not other's, with filters and pagination.
	var audit struct {
		Entries []struct {
			Account, Actor, Action, Target string
			Time                           time.Time
		}
		NextToken string
	}
	teamKey := strings.Split(e.keys["team"], "_")[1]
	e.expect("team", "GET", "/v1/audit-log?actor="+teamKey, nil, 200, &audit)
	var actions []string
	for _, a := range audit.Entries {
		if a.Account != "team" || a.Actor != teamKey {
			t.Errorf("audit entry of another account or actor: %+v", a)
		}
		actions = append(actions, a.Action)
	}
	for _, want := range []string{"POST /v1/keys -> 201", "POST /v1/keys -> 422", "POST /v1/webhooks -> 201", "DELETE /v1/keys/{keyId} -> 204"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit lacks %q: %v", want, actions)
		}
	}
	e.expect("team", "GET", "/v1/audit-log?maxResults=2", nil, 200, &audit)
	if len(audit.Entries) != 2 || audit.NextToken == "" {
		t.Fatalf("first audit page: %+v", audit)
	}
	first := audit.Entries[1].Time
	e.expect("team", "GET", "/v1/audit-log?maxResults=2&nextToken="+audit.NextToken, nil, 200, &audit)
	if len(audit.Entries) == 0 || audit.Entries[0].Time.After(first) {
		t.Errorf("second audit page: %+v", audit)
	}
	e.expect("team", "GET", "/v1/audit-log?since=yesterday", nil, 422, nil)
	e.expect("team", "GET", "/v1/audit-log?account=other", nil, 404, nil)
	e.expect("other", "GET", "/v1/audit-log?action="+urlEscape("POST /v1/keys -> 201"), nil, 200, &audit)
	if len(audit.Entries) != 0 {
		t.Errorf("other sees the team's audit entries: %+v", audit.Entries)
	}
}

// hookReceiver verifies signatures and can be told to fail.
type hookReceiver struct {
	srv    *httptest.Server
	secret string
	status atomic.Int32 // the status to answer
	mu     sync.Mutex
	got    []events.Envelope
	bad    int
}

func newHookReceiver(t *testing.T, secret string, status int) *hookReceiver {
	h := &hookReceiver{secret: secret}
	h.status.Store(int32(status))
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := events.Verify(r.Header.Get(events.HeaderSignature), body, time.Now(), 5*time.Minute, h.secret); err != nil {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		st := int(h.status.Load())
		if st < 300 {
			env, err := events.ParseEnvelope(body)
			if err != nil {
				h.bad++
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			h.got = append(h.got, env)
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) received() (types []string, accounts []string, bad int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.got {
		types = append(types, e.Type)
		accounts = append(accounts, e.Account)
	}
	return types, accounts, h.bad
}

func TestWebhookSinksSQLite(t *testing.T) { webhookSinks(t, "") }

func TestWebhookSinksPostgres(t *testing.T) {
	webhookSinks(t, pgDSN(t))
}

// webhookSinks: accounts create sinks through the API; a finding event reaches the sinks that may
// see it, signed; a failing sink ends in the dead-letter list and a retry through the API delivers.
func webhookSinks(t *testing.T, postgres string) {
	ctx := context.Background()
	e := newMgmtEnv(t, postgres, Config{WebhookGuard: events.AddressGuard{DenyLinkLocal: true}})
	// "sec" runs an organization and is its own delegated admin; "team" is a member; "other" is
	// unrelated.
	e.account("root", CreateAccountRequest{AccountID: "sec"})
	e.account("root", CreateAccountRequest{AccountID: "other"})
	e.expect("root", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-1", ManagementAccountID: "sec"}, 201, nil)
	e.expect("sec", "PUT", "/v1/organizations/org-1/delegated-admin", MemberRequest{AccountID: "sec"}, 200, nil)
	e.account("sec", CreateAccountRequest{AccountID: "team", OrganizationID: "org-1"})

	teamHook := newHookReceiver(t, "whsec-team-0123456789", 204)
	flaky := newHookReceiver(t, "whsec-flaky-0123456789", 400)
	secHook := newHookReceiver(t, "whsec-sec-0123456789ab", 204)
	otherHook := newHookReceiver(t, "whsec-other-0123456789", 204)

	// Validation: URL, secret, event types and the address guard.
	for _, bad := range []SinkRequest{
		{URL: "ftp://hooks.example.com/x"},
		{URL: "https://user:pw@hooks.example.com/x"},
		{URL: "http://169.254.169.254/latest/meta-data"},
		{URL: teamHook.srv.URL, Secret: "short"},
		{URL: teamHook.srv.URL, EventTypes: []string{"vigil.nope"}},
	} {
		e.expect("team", "POST", "/v1/webhooks", bad, 422, &struct{}{})
	}
	var team, fl, sec SinkView
	e.expect("team", "POST", "/v1/webhooks", SinkRequest{URL: teamHook.srv.URL, Secret: teamHook.secret, EventTypes: []string{"vigil.finding.*"}}, 201, &team)
	if team.Secret != "" || !team.Enabled || team.Account != "team" {
		t.Errorf("a given secret must not be echoed: %+v", team)
	}
	e.expect("team", "POST", "/v1/webhooks", SinkRequest{URL: flaky.srv.URL, Secret: flaky.secret, EventTypes: []string{"vigil.finding.created"}}, 201, &fl)
	e.expect("sec", "POST", "/v1/webhooks", SinkRequest{URL: secHook.srv.URL, Secret: secHook.secret}, 201, &sec)
	var drawn SinkView
	e.expect("other", "POST", "/v1/webhooks", SinkRequest{URL: otherHook.srv.URL}, 201, &drawn)
	if !strings.HasPrefix(drawn.Secret, "whsec_") {
		t.Fatalf("a server-drawn secret is shown once: %+v", drawn)
	}
	otherHook.secret = drawn.Secret
	var got SinkView
	e.expect("other", "GET", "/v1/webhooks/"+drawn.ID, nil, 200, &got)
	if got.Secret != "" {
		t.Error("GET shows the secret")
	}
	e.expect("other", "GET", "/v1/webhooks/"+team.ID, nil, 404, nil)
	e.expect("sec", "GET", "/v1/webhooks/"+team.ID, nil, 404, nil) // a delegated admin does not manage members' webhooks
	e.expect("other", "PATCH", "/v1/webhooks/"+team.ID, SinkUpdate{Enabled: ptr(false)}, 404, nil)
	e.expect("other", "DELETE", "/v1/webhooks/"+team.ID, nil, 404, nil)
	var sinks struct{ Webhooks []SinkView }
	e.expect("team", "GET", "/v1/webhooks", nil, 200, &sinks)
	if len(sinks.Webhooks) != 2 {
		t.Errorf("team's webhooks: %+v", sinks.Webhooks)
	}

	// A finding in team's account.
	inv := inventory("4.17.15", "1.2.0")
	if _, err := e.srv.Submit(ctx, model.Resource{Account: "team", ID: "web-1", Type: model.ResourceHost}, &inv); err != nil {
		t.Fatal(err)
	}
	d, err := e.srv.dispatcher()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := d.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	types, accts, bad := teamHook.received()
	if !slices.Equal(types, []string{model.EventFindingCreated}) || !slices.Equal(accts, []string{"team"}) || bad != 0 {
		t.Errorf("team's sink received %v %v (%d bad signatures)", types, accts, bad)
	}
	if types, _, _ := secHook.received(); !slices.Contains(types, model.EventFindingCreated) {
		t.Errorf("the delegated admin's sink must see its member's events: %v", types)
	}
	if types, _, _ := otherHook.received(); len(types) != 0 {
		t.Errorf("an unrelated account's sink received %v", types)
	}

	// The flaky sink answered 400: a permanent failure, dead-lettered.
	var dl struct {
		DeadLetters []DeadLetterView
	}
	e.expect("team", "GET", "/v1/webhook-dead-letters", nil, 200, &dl)
	if len(dl.DeadLetters) != 1 || dl.DeadLetters[0].Type != model.EventFindingCreated || !strings.Contains(dl.DeadLetters[0].LastError, fl.ID) {
		t.Fatalf("dead letters: %+v", dl.DeadLetters)
	}
	seq := dl.DeadLetters[0].Seq
	e.expect("sec", "GET", "/v1/webhook-dead-letters", nil, 200, &dl)
	if len(dl.DeadLetters) != 1 {
		t.Errorf("the delegated admin sees its member's dead letters: %+v", dl.DeadLetters)
	}
	e.expect("other", "GET", "/v1/webhook-dead-letters", nil, 200, &dl)
	if len(dl.DeadLetters) != 0 {
		t.Errorf("another account sees dead letters: %+v", dl.DeadLetters)
	}
	retry := "/v1/webhook-dead-letters/" + itoa(seq) + "/retry"
	e.roKey("team")
	e.expect("team-ro", "POST", retry, nil, 403, nil)
	e.expect("other", "POST", retry, nil, 404, nil)
	flaky.status.Store(204)
	e.expect("team", "POST", retry, nil, 204, nil)
	for i := 0; i < 3; i++ {
		if _, err := d.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if types, _, bad := flaky.received(); !slices.Equal(types, []string{model.EventFindingCreated}) || bad != 0 {
		t.Errorf("after the retry the flaky sink received %v", types)
	}
	e.expect("team", "GET", "/v1/webhook-dead-letters", nil, 200, &dl)
	if len(dl.DeadLetters) != 0 {
		t.Errorf("dead letters after the retry: %+v", dl.DeadLetters)
	}

	// A receiver answering 410 disables its sink; the owner re-enables it.
	flaky.status.Store(http.StatusGone)
	inv = inventory("4.17.15", "1.2.0")
	inv.Packages = inv.Packages[:1]
	if _, err := e.srv.Submit(ctx, model.Resource{Account: "team", ID: "web-2", Type: model.ResourceHost}, &inv); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := d.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.expect("team", "GET", "/v1/webhooks/"+fl.ID, nil, 200, &got)
	if got.Enabled || got.DisabledReason == "" {
		t.Errorf("after 410 the sink must be disabled with a reason: %+v", got)
	}
	var upd SinkView
	e.expect("team", "PATCH", "/v1/webhooks/"+fl.ID, SinkUpdate{Enabled: ptr(true), RotateSecret: true}, 200, &upd)
	if !upd.Enabled || upd.DisabledReason != "" || !upd.Rotating || !strings.HasPrefix(upd.Secret, "whsec_") {
		t.Errorf("re-enabled and rotated: %+v", upd)
	}
	e.expect("team", "PATCH", "/v1/webhooks/"+fl.ID, SinkUpdate{URL: ptr("gopher://x")}, 422, nil)
	for i := len(sinks.Webhooks); i < MaxSinksPerAccount; i++ {
		e.expect("team", "POST", "/v1/webhooks", SinkRequest{URL: "https://hooks.example.com/" + strconv.Itoa(i)}, 201, nil)
	}
	e.expect("team", "POST", "/v1/webhooks", SinkRequest{URL: "https://hooks.example.com/one-too-many"}, 409, nil)
	e.expect("team", "DELETE", "/v1/webhooks/"+fl.ID, nil, 204, nil)
	e.expect("team", "GET", "/v1/webhooks/"+fl.ID, nil, 404, nil)
}

func ptr[T any](v T) *T { return &v }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The management routes pass the foreign-account walk with a real victim and prove, with the
// owner's key, that every GET addressed an existing object.
func TestManagementForeignAccountWalk(t *testing.T) {
	e := newMgmtEnv(t, "", Config{})
	e.account("root", CreateAccountRequest{AccountID: "intruder"})
	hook := newHookReceiver(t, "whsec-victim-0123456789", 204)
	v := seedManagement(t, e.as("root"), hook.srv.URL)
	var routes []api.Route
	for _, r := range e.srv.router.Routes() {
		if len(r.Tags) > 0 && slices.Contains([]string{"accounts", "organizations", "keys", "audit", "webhooks"}, r.Tags[0]) {
			routes = append(routes, r)
		}
	}
	n := apitest.ForeignAccountWalk(t, e.srv.Handler(), routes, apitest.Walk{
		ForeignKey: e.keys["intruder"],
		OwnerKey:   e.keys["root"],
		PathValue: func(r api.Route, p string) string {
			val, _ := v.pathValue(p)
			return val
		},
		Query: func(r api.Route) string {
			if r.Path == "/v1/audit-log" || r.Path == "/v1/webhook-dead-letters" {
				return "account=" + DefaultAccount
			}
			return ""
		},
		Body: v.body,
		Skip: ownAccountOnly,
	})
	if n < 18 {
		t.Errorf("the walk checked only %d routes", n)
	}
}

func TestDelegatedAdminRaceSQLite(t *testing.T) { delegatedAdminRace(t, "") }

func TestDelegatedAdminRacePostgres(t *testing.T) {
	delegatedAdminRace(t, pgDSN(t))
}

// Concurrent designations of different accounts: exactly one wins; the rest get 409, and exactly
// one account carries the delegated-admin role.
func delegatedAdminRace(t *testing.T, postgres string) {
	e := newMgmtEnv(t, postgres, Config{})
	e.account("root", CreateAccountRequest{AccountID: "mgmt"})
	e.expect("root", "POST", "/v1/organizations", CreateOrganizationRequest{OrganizationID: "org-r", ManagementAccountID: "mgmt"}, 201, nil)
	const n = 6
	for i := range n {
		e.account("mgmt", CreateAccountRequest{AccountID: "m" + strconv.Itoa(i), OrganizationID: "org-r"})
	}
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			c := &client{t: t, base: e.ts.URL, key: e.keys["mgmt"], http: e.ts.Client()}
			codes[i] = c.do("PUT", "/v1/organizations/org-r/delegated-admin", MemberRequest{AccountID: "m" + strconv.Itoa(i)}, nil)
		})
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case 200:
			won++
		case 409:
		default:
			t.Errorf("unexpected status %d", c)
		}
	}
	var members struct{ Members []MemberView }
	e.expect("mgmt", "GET", "/v1/organizations/org-r/members", nil, 200, &members)
	admins := 0
	for _, m := range members.Members {
		if m.Role == model.AccountDelegated {
			admins++
		}
	}
	if won != 1 || admins != 1 {
		t.Errorf("%d designations won (%v), %d accounts with the delegated-admin role", won, codes, admins)
	}
}

// An inventory is accepted only for a resource type whose scanning the account enabled.
func TestScanTypeEnablementGatesInventory(t *testing.T) {
	e := newMgmtEnv(t, "", Config{})
	e.account("root", CreateAccountRequest{AccountID: "team", EnabledScanTypes: &[]string{"image"}})
	sub := InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}
	e.expect("team", "PUT", "/v1/resources/host/web-1/inventory", sub, 409, nil)
	e.expect("team", "PUT", "/v1/resources/image/sha256:abc/inventory", sub, 200, nil)
	e.expect("team", "POST", "/v1/accounts/team/enable", ScanTypesRequest{ScanTypes: []string{"host"}}, 200, nil)
	var res SubmissionResult
	e.expect("team", "PUT", "/v1/resources/host/web-1/inventory", sub, 200, &res)
	if res.Created != 1 {
		t.Errorf("after enabling host scanning: %+v", res)
	}
	e.expect("team", "POST", "/v1/accounts/team/disable", ScanTypesRequest{ScanTypes: []string{"host"}}, 200, nil)
	e.expect("team", "PUT", "/v1/resources/host/web-1/inventory", sub, 409, nil)
	// The default account (created with the older "package" entry) scans every resource type.
	e.expect("root", "PUT", "/v1/resources/function/fn-1/inventory", sub, 200, nil)
}

// Management request bodies come from any API key: decoding and validating must never panic,
// and a body that validates must name a well-formed account or scan types.
func FuzzManagementRequests(f *testing.F) {
	for _, seed := range []string{
		`{"accountId": "acme-web", "organizationId": "org-1", "enabledScanTypes": ["host"], "issueAdminKey": true}`,
		`{"scanTypes": ["host", "function-code"]}`, `{"autoEnable": []}`, `{"accountId": ""}`,
		`{"url": "https://hooks.example.com/x", "secret": "whsec_0123456789abcdef", "eventTypes": ["vigil.finding.*"]}`,
		`{"url": "http://[::1]:8080/x", "rotateSecret": true, "enabled": true}`, `{"name": "ci", "role": "READ_ONLY"}`,
	} {
		f.Add([]byte(seed))
	}
	srv := &Server{}
	f.Fuzz(func(t *testing.T, b []byte) {
		var acct CreateAccountRequest
		if api.DecodeJSONBytes(b, &acct) == nil && len(acct.Validate()) == 0 && !accountIDPattern.MatchString(acct.AccountID) {
			t.Fatalf("accepted account id %q", acct.AccountID)
		}
		var st ScanTypesRequest
		if api.DecodeJSONBytes(b, &st) == nil && len(st.Validate()) == 0 {
			for _, s := range st.ScanTypes {
				if !slices.Contains(ScanTypes, s) {
					t.Fatalf("accepted scan type %q", s)
				}
			}
		}
		var oc OrganizationConfiguration
		if api.DecodeJSONBytes(b, &oc) == nil {
			oc.Validate()
		}
		var k KeyRequest
		if api.DecodeJSONBytes(b, &k) == nil {
			k.Validate()
		}
		var sr SinkRequest
		if api.DecodeJSONBytes(b, &sr) == nil {
			_ = srv.validateSink(store.Sink{ID: "wh-f", Account: "a", URL: sr.URL, Secret: sr.Secret, EventTypes: sr.EventTypes, Description: sr.Description})
		}
		var su SinkUpdate
		_ = api.DecodeJSONBytes(b, &su)
	})
}
