package app

import (
	"context"
	"testing"

	"github.com/vigil-sec/vigil/server/store"
)

// auditActions lists the stored audit entries' actions, oldest first.
func auditActions(t *testing.T, st *store.Store) []string {
	t.Helper()
	page, err := st.ListAudit(context.Background(), []string{DefaultAccount}, store.AuditQuery{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(page.Entries) - 1; i >= 0; i-- { // the log lists newest first
		out = append(out, page.Entries[i].Action+" "+page.Entries[i].Target)
	}
	return out
}

// Audit records are written in batches. A batch the store refuses is kept, in order, for the next
// attempt; a read of the log through the API sees every completed call; Close writes what is
// pending.
func TestAuditRecordsBatched(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := New(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := apiClient(t, srv, srv.AdminKey())
	db := srv.Store.DB()
	if _, err := db.ExecContext(ctx, `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"web-1", "web-2"} {
		if st := c.do("PUT", "/v1/resources/host/"+id+"/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, nil); st != 200 {
			t.Fatalf("PUT %s: %d", id, st)
		}
	}
	if err := srv.audit.flush(ctx); err == nil {
		t.Fatal("a refused batch reported written")
	}
	if got := auditActions(t, srv.Store); len(got) != 0 {
		t.Fatalf("refused records stored: %v", got)
	}
	if _, err := db.ExecContext(ctx, `DROP TRIGGER refuse_audit`); err != nil {
		t.Fatal(err)
	}
	if st := c.do("PUT", "/v1/resources/host/web-3/inventory", InventorySubmission{Inventory: inventory("4.17.21", "1.2.6")}, nil); st != 200 {
		t.Fatalf("PUT web-3: %d", st)
	}
	var log struct{ Entries []store.AuditEntry }
	if st := c.do("GET", "/v1/audit-log", nil, &log); st != 200 || len(log.Entries) != 3 {
		t.Fatalf("GET /v1/audit-log: %d, %d entries, want the 3 submissions", st, len(log.Entries))
	}
	put := "PUT /v1/resources/{resourceType}/{resourceId}/inventory -> 200 "
	want := []string{put + "host/web-1", put + "host/web-2", put + "host/web-3"}
	if got := auditActions(t, srv.Store); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("audit log %q, want %q", got, want)
	}

	// A record still pending when the server closes is written by Close.
	if st := c.do("DELETE", "/v1/resources/host/web-3", nil, nil); st != 204 {
		t.Fatalf("DELETE web-3: %d", st)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, dir+"/vigil.sqlite", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := auditActions(t, st); len(got) != 4 || got[3] != "DELETE /v1/resources/{resourceType}/{resourceId} -> 204 host/web-3" {
		t.Errorf("after Close: %q", got)
	}
}
