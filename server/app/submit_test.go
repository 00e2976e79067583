package app

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb"
)

// An identical request body is not decoded again, but it is an unchanged inventory only while the
// engine and the store still hold that inventory: after another path (an agent upload) changed
// it, the same body is a change again. An unchanged resubmission moves lastObservedAt of the open
// findings without rewriting them, once it is an hour old.
func TestResubmittedBodies(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	vdb, err := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	var (
		mu  sync.Mutex
		now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(d); return now }
	tick := func() time.Time { return advance(time.Hour) }
	srv, err := New(ctx, Config{DataDir: data, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	defer ts.Close()
	c := &client{t: t, base: ts.URL, key: srv.AdminKey(), http: &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: srv.boot.CAPool, ServerName: "localhost"}}}}
	body := InventorySubmission{Tags: map[string]string{"env": "prod"}, Inventory: inventory("4.17.15", "1.2.0")}

	var sub SubmissionResult
	if st := c.do("PUT", "/v1/resources/host/web-1/inventory", body, &sub); st != 200 || sub.Created != 1 {
		t.Fatalf("first submission: %d %+v", st, sub)
	}
	var list findingList
	c.do("GET", "/v1/findings", nil, &list)
	if len(list.Findings) != 1 {
		t.Fatalf("findings: %+v", list.Findings)
	}
	id := list.Findings[0].ID

	t1 := tick()
	if st := c.do("PUT", "/v1/resources/host/web-1/inventory", body, &sub); st != 200 || !sub.Unchanged || sub.Findings != 1 {
		t.Fatalf("identical resubmission: %d %+v", st, sub)
	}
	var f model.Finding
	c.do("GET", "/v1/findings/"+id, nil, &f)
	if !f.LastObservedAt.Equal(t1) || f.Status != model.FindingActive || f.UpdatedAt.Equal(t1) {
		t.Errorf("after an unchanged resubmission: lastObserved %v updated %v status %s, want lastObserved %v", f.LastObservedAt, f.UpdatedAt, f.Status, t1)
	}
	// Within the granularity (an hour by default) seeing it again writes no finding; the coverage's
	// lastScannedAt moves (written shortly after, or before a read shows it).
	t2 := advance(30 * time.Minute)
	if st := c.do("PUT", "/v1/resources/host/web-1/inventory", body, &sub); st != 200 || !sub.Unchanged || sub.Findings != 1 {
		t.Fatalf("identical resubmission: %d %+v", st, sub)
	}
	c.do("GET", "/v1/findings/"+id, nil, &f)
	if !f.LastObservedAt.Equal(t1) {
		t.Errorf("lastObservedAt moved within its granularity: %v, want %v", f.LastObservedAt, t1)
	}
	var cov struct{ Coverage []model.Coverage }
	if c.do("GET", "/v1/coverage?resourceId=web-1", nil, &cov); len(cov.Coverage) != 1 || !cov.Coverage[0].LastScannedAt.Equal(t2) ||
		cov.Coverage[0].Status != model.CoverageActive {
		t.Errorf("coverage after the resubmission: %+v, want lastScannedAt %v", cov.Coverage, t2)
	}
	// The first submission announced the resource's coverage (PENDING → ACTIVE); the unchanged
	// ones did not.
	if got := outbox(t, srv.Store); countPrefix(got, model.EventCoverageChanged) != 1 {
		t.Errorf("events: %v, want one coverage change", got)
	}

	// An agent upload (another path) fixes lodash: the finding closes.
	tick()
	fixed := inventory("4.17.21", "1.2.0")
	if out, err := srv.Submit(ctx, model.Resource{Account: DefaultAccount, ID: "web-1", Type: model.ResourceHost, Tags: body.Tags, ScanMode: "upload"}, &fixed); err != nil || out.Closed != 1 {
		t.Fatalf("agent upload: %v %+v", err, out)
	}
	// The old body again is the vulnerable inventory again: not "unchanged".
	tick()
	if st := c.do("PUT", "/v1/resources/host/web-1/inventory", body, &sub); st != 200 || sub.Unchanged || sub.Findings != 1 {
		t.Fatalf("old body after a change elsewhere: %d %+v", st, sub)
	}
	c.do("GET", "/v1/findings/"+id, nil, &f)
	if f.Status != model.FindingActive {
		t.Errorf("the finding should be open again: %+v", f)
	}
	// A changed inventory that leaves lodash alone reads only the findings its changed package
	// touches; the lodash finding, seen again, is observed all the same.
	t3 := tick()
	if st := c.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Tags: body.Tags, Inventory: inventory("4.17.15", "1.3.0")}, &sub); st != 200 || sub.Unchanged || sub.Findings != 1 {
		t.Fatalf("another package upgraded: %d %+v", st, sub)
	}
	c.do("GET", "/v1/findings/"+id, nil, &f)
	if !f.LastObservedAt.Equal(t3) || f.Status != model.FindingActive {
		t.Errorf("after another package changed: lastObserved %v status %s, want %v", f.LastObservedAt, f.Status, t3)
	}
	// A body that is not JSON is still refused after an identical-body hit path exists.
	if st := c.do("PUT", "/v1/resources/host/web-1/inventory", "not an object", nil); st != 400 {
		t.Errorf("bad body: %d", st)
	}
}
