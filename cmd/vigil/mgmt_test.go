package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/store"
)

// cli runs the CLI in-process against a server, returning standard output and error.
type cli struct {
	t             *testing.T
	server, caPEM string
}

func (c cli) run(key string, args ...string) (string, string, error) {
	c.t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(args, "--server", c.server, "--api-key", key, "--ca-file", c.caPEM))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// ok runs and fails the test on an error.
func (c cli) ok(key string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(key, args...)
	if err != nil {
		c.t.Fatalf("vigil %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fails runs and expects an error mentioning want.
func (c cli) fails(want, key string, args ...string) {
	c.t.Helper()
	if _, _, err := c.run(key, args...); err == nil || !strings.Contains(err.Error(), want) {
		c.t.Errorf("vigil %s: %v, want an error with %q", strings.Join(args, " "), err, want)
	}
}

func jsonOut[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	return v
}

// The management commands against an in-process server over TLS, pinned by its CA file.
func TestManagementCommands(t *testing.T) {
	ctx := context.Background()
	srv, err := app.New(ctx, app.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	defer ts.Close()
	c := cli{t: t, server: ts.URL, caPEM: srv.CAFile()}
	root := srv.AdminKey()

	// Accounts and an organization.
	created := jsonOut[app.CreatedAccount](t, c.ok(root, "accounts", "create", "acme-mgmt", "--name", "ACME", "--issue-admin-key", "-o", "json"))
	acme := created.AdminKey
	if !strings.HasPrefix(acme, "vgl_") || created.Account.AccountID != "acme-mgmt" {
		t.Fatalf("create: %+v", created)
	}
	c.fails("403", acme, "accounts", "create", "rogue")
	c.fails("403", acme, "accounts", "org", "create", "org-acme")
	if out := c.ok(root, "accounts", "org", "create", "org-acme", "--management-account", "acme-mgmt"); !strings.Contains(out, "org-acme") || !strings.Contains(out, "acme-mgmt") {
		t.Errorf("org create:\n%s", out)
	}
	c.ok(acme, "accounts", "org", "configure", "org-acme", "--auto-enable", "host,image")
	c.fails("422", acme, "accounts", "org", "configure", "org-acme", "--auto-enable", "ec2")
	web := jsonOut[app.CreatedAccount](t, c.ok(acme, "accounts", "create", "acme-web", "--organization", "org-acme", "--issue-admin-key", "-o", "json"))
	if strings.Join(web.Account.EnabledScanTypes, ",") != "host,image" {
		t.Errorf("auto-enabled: %v", web.Account.EnabledScanTypes)
	}
	c.ok(acme, "accounts", "org", "delegated-admin", "enable", "org-acme", "acme-mgmt")
	c.fails("409", acme, "accounts", "org", "delegated-admin", "enable", "org-acme", "acme-web")
	out := c.ok(acme, "accounts", "list")
	if !strings.Contains(out, "ACCOUNT") || !strings.Contains(out, "acme-web") || !strings.Contains(out, "host,image") {
		t.Errorf("accounts list:\n%s", out)
	}
	if out := c.ok(acme, "accounts", "disable", "acme-web", "image"); !strings.Contains(out, "acme-web") || strings.Contains(out, "host,image") {
		t.Errorf("disable:\n%s", out)
	}
	out = c.ok(web.AdminKey, "accounts", "status", "acme-web", "acme-mgmt")
	if !strings.Contains(out, "RESOURCE_NOT_FOUND") || !strings.Contains(out, "ENABLED") {
		t.Errorf("status:\n%s", out)
	}
	members := jsonOut[[]app.MemberView](t, c.ok(acme, "accounts", "org", "members", "org-acme", "-o", "json"))
	if len(members) != 2 {
		t.Errorf("members: %+v", members)
	}
	c.ok(acme, "accounts", "org", "disassociate", "org-acme", "acme-web")
	if a := jsonOut[app.AccountView](t, c.ok(web.AdminKey, "accounts", "get", "acme-web", "-o", "json")); a.RelationshipStatus != store.MemberRemoved {
		t.Errorf("after disassociation: %+v", a)
	}
	c.ok(acme, "accounts", "org", "associate", "org-acme", "acme-web")
	c.fails("404", web.AdminKey, "accounts", "get", "acme-mgmt")

	// Keys: the secret is printed once, never listed; a read-only key changes nothing; revocation bites.
	ro := strings.TrimSpace(c.ok(acme, "keys", "create", "--name", "ci", "--role", "READ_ONLY"))
	if !strings.HasPrefix(ro, "vgl_") {
		t.Fatalf("keys create printed %q", ro)
	}
	list := c.ok(acme, "keys", "list", "-o", "json")
	keys := jsonOut[[]store.APIKey](t, list)
	roID := strings.Split(ro, "_")[1]
	found := false
	for _, k := range keys {
		found = found || (k.ID == roID && k.Role == "READ_ONLY")
	}
	if !found || strings.Contains(list, strings.Split(ro, "_")[2]) {
		t.Errorf("keys list:\n%s", list)
	}
	c.ok(ro, "keys", "list")
	c.fails("403", ro, "keys", "create", "--name", "x", "--role", "ADMIN")
	c.fails("403", ro, "accounts", "enable", "acme-mgmt", "network")
	c.ok(acme, "keys", "revoke", roID)
	c.fails("401", ro, "keys", "list")

	// Webhooks.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer hook.Close()
	_, errOut, err := c.run(acme, "webhooks", "create", hook.URL, "--event-type", "vigil.finding.*", "--description", "pager")
	if err != nil || !strings.Contains(errOut, "whsec_") {
		t.Fatalf("webhooks create: %v\n%s", err, errOut)
	}
	sinks := jsonOut[[]app.SinkView](t, c.ok(acme, "webhooks", "list", "-o", "json"))
	if len(sinks) != 1 || sinks[0].Description != "pager" || strings.Join(sinks[0].EventTypes, ",") != "vigil.finding.*" {
		t.Fatalf("webhooks list: %+v", sinks)
	}
	id := sinks[0].ID
	if s := jsonOut[app.SinkView](t, c.ok(acme, "webhooks", "update", id, "--disable", "-o", "json")); s.Enabled {
		t.Errorf("after --disable: %+v", s)
	}
	c.fails("422", acme, "webhooks", "update", id, "--event-type", "vigil.nope")
	c.fails("422", acme, "webhooks", "create", "ftp://example.com/x")
	c.fails("404", web.AdminKey, "webhooks", "get", id)
	if out := c.ok(acme, "webhooks", "dead-letters"); !strings.Contains(out, "LAST ERROR") {
		t.Errorf("dead-letters:\n%s", out)
	}
	c.fails("404", acme, "webhooks", "retry", "999")
	c.ok(acme, "webhooks", "delete", id)
	c.fails("404", acme, "webhooks", "get", id)

	// The audit log shows the calls above.
	entries := jsonOut[[]store.AuditEntry](t, c.ok(acme, "audit", "--action", "POST /v1/keys -> 201", "-o", "json"))
	if len(entries) != 1 || entries[0].Account != "acme-mgmt" || entries[0].Target != "api-key/"+roID {
		t.Errorf("audit: %+v", entries)
	}
	if out := c.ok(acme, "audit"); !strings.Contains(out, "DELETE /v1/webhooks/{sinkId} -> 204") {
		t.Errorf("audit table:\n%s", out)
	}
}
