package app

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// A delegated administrator sees its organization's members' findings; the management account
// and outsiders do not; a member sees only its own.
func TestOrganizationVisibility(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	vdb, _ := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	srv, err := New(ctx, Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	now := time.Now().UTC()
	if err := srv.Store.PutOrganization(ctx, store.Organization{ID: "org-acme", ManagementAccount: "acme-mgmt",
		DelegatedAdmin: "acme-sec", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for id, org := range map[string]string{"acme-mgmt": "org-acme", "acme-sec": "org-acme", "acme-web": "org-acme", "other": ""} {
		if err := srv.Store.PutAccount(ctx, model.Account{ID: id, Name: id, Organization: org, Role: model.AccountMember, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		raw, sk, err := auth.Issue(auth.Hasher{}, id, auth.RoleAdmin, "test", now, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Store.CreateAPIKey(ctx, toStoreKey(sk)); err != nil {
			t.Fatal(err)
		}
		keys[id] = raw
	}
	inv := inventory("4.17.15", "1.2.0")
	if _, err := srv.Submit(ctx, model.Resource{Account: "acme-web", ID: "web-1", Type: model.ResourceHost}, &inv); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	count := func(who, query string) int {
		c := &client{t: t, base: ts.URL, key: keys[who], http: ts.Client()}
		var list findingList
		if st := c.do("GET", "/v1/findings"+query, nil, &list); st != 200 {
			return -st
		}
		return len(list.Findings)
	}
	for who, want := range map[string]int{"acme-web": 1, "acme-sec": 1, "acme-mgmt": 0, "other": 0} {
		if got := count(who, ""); got != want {
			t.Errorf("%s sees %d findings, want %d", who, got, want)
		}
	}
	if got := count("acme-sec", "?account=acme-web"); got != 1 {
		t.Errorf("the delegated admin narrowing to a member: %d", got)
	}
	if got := count("other", "?account=acme-web"); got != -404 {
		t.Errorf("an outsider naming a member's account must get 404, got %d", got)
	}
}
