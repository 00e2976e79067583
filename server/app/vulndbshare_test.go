package app

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb"
)

// Two servers on two hosts: one PostgreSQL, a vulnerability database file each. The first to start
// publishes its database; the second, whose own file was built apart (another lineage, other
// advisories), adopts it at start. A feed update that B runs reaches A's file through the store,
// and A's engine applies it without writing anything twice. A third process started afresh
// adopts the newest one.
func TestTwoHostsShareVulnDB(t *testing.T) {
	ctx := context.Background()
	dsn := pgDSN(t)
	mirror, other := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	osvZip(t, other, "npm", minimistGHSA)
	fileA, fileB := filepath.Join(t.TempDir(), "vulndb.sqlite"), filepath.Join(t.TempDir(), "vulndb.sqlite")
	seedVulnDB(t, fileA, mirror)
	seedVulnDB(t, fileB, other)

	a := newTestServer(t, Config{Postgres: dsn, VulnDB: fileA, FeedMirror: mirror})
	pub, ok, err := a.Store.PublishedVulnDB(ctx)
	lineageA, vA, _ := a.VulnDB.Lineage(ctx)
	if err != nil || !ok || pub.Lineage != lineageA || pub.Version != int64(vA) || pub.Publisher != a.worker {
		t.Fatalf("after A's start: published %+v %v %v; A's database %s at %d", pub, ok, err, lineageA, vA)
	}
	b := newTestServer(t, Config{Postgres: dsn, VulnDB: fileB, FeedMirror: mirror})
	if l, v, _ := b.VulnDB.Lineage(ctx); l != lineageA || v != vA {
		t.Fatalf("B's database after its start: %s at %d, want A's %s at %d", l, v, lineageA, vA)
	}
	if advs, _ := b.VulnDB.Lookup(ctx, "npm", "minimist"); len(advs) != 0 {
		t.Error("B still has the advisories of its own file")
	}

	ca, cb := apiClient(t, a, a.AdminKey()), apiClient(t, b, a.AdminKey())
	var sub SubmissionResult
	if st := cb.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); st != 200 || sub.Created != 1 {
		t.Fatalf("submit to B: %d %+v", st, sub)
	}

	// minimist's advisory is published upstream; B's worker runs the update: B's file moves on and
	// is published, and B's re-evaluation writes the new finding.
	osvZip(t, mirror, "npm", lodashGHSA, minimistGHSA)
	if _, _, err := b.EnqueueFeedUpdate(ctx, FeedUpdateRequest{}); err != nil {
		t.Fatal(err)
	}
	runJobs(t, b, "B/w1")
	lineageB, vB, _ := b.VulnDB.Lineage(ctx)
	if pub, _, _ := a.Store.PublishedVulnDB(ctx); lineageB != lineageA || vB <= vA || pub.Version != int64(vB) || pub.Publisher != b.worker {
		t.Fatalf("after B's update: B's database %s at %d, published %+v", lineageB, vB, pub)
	}
	if got := findingStates(t, a.Store, "web-1"); got["CVE-2021-44906"] != model.FindingActive || got["CVE-2021-23337"] != model.FindingActive {
		t.Fatalf("after B's re-evaluation: %v", got)
	}
	created := countPrefix(outbox(t, a.Store), model.EventFindingCreated)

	// A has not looked yet: its status says so. Its next pass adopts B's file and applies it; the
	// stored findings already reflect it, so it writes nothing.
	var st FeedStatus
	if ca.do("GET", "/v1/vulndb/status", nil, &st); st.Published == nil || st.Published.Version != int64(vB) || st.Version != int64(vA) || len(st.Warnings) == 0 {
		t.Errorf("A's status before it adopts: %+v", st)
	}
	fr, err := a.ApplyFeedUpdate(ctx)
	if err != nil || fr.Changes == 0 || fr.Events != 0 || fr.To != vB {
		t.Fatalf("A following: %+v %v", fr, err)
	}
	if ca.do("GET", "/v1/vulndb/status", nil, &st); st.Version != int64(vB) || st.Lineage != lineageA || st.FindingsVersion != int64(vB) {
		t.Errorf("A's status after it adopted: %+v", st)
	}
	if ca.do("PUT", "/v1/resources/host/web-2/inventory", InventorySubmission{Inventory: inventory("4.17.21", "1.2.0")}, &sub); sub.Created != 1 {
		t.Fatalf("minimist on A after the adoption: %+v", sub)
	}
	if n := countPrefix(outbox(t, a.Store), model.EventFindingCreated); n != created+1 {
		t.Errorf("findings created: %d, want %d (only web-2's)", n, created+1)
	}

	// A process started afresh on a third host (an empty file) adopts the newest database, and
	// its engine, restored from the store, has nothing left to write.
	c := newTestServer(t, Config{Postgres: dsn, VulnDB: filepath.Join(t.TempDir(), "vulndb.sqlite"), FeedMirror: mirror})
	if l, v, _ := c.VulnDB.Lineage(ctx); l != lineageA || v != vB {
		t.Fatalf("C's database: %s at %d", l, v)
	}
	if fr, err := c.ApplyFeedUpdate(ctx); err != nil || fr.Events != 0 {
		t.Errorf("C's first pass: %+v %v", fr, err)
	}
}

// A process whose file another lineage replaces starts its engine over. A and B start with empty
// databases (two lineages, nothing published); an administrator imports minimist's advisory into
// A's file by hand, and A's submissions match it; then B's feed update (lodash only) is the first
// database published. A adopts it: the version number is the same as its own file's, but the
// contents are not, and A's engine must not keep matching minimist.
func TestAdoptedLineageRestartsEngine(t *testing.T) {
	ctx := context.Background()
	dsn := pgDSN(t)
	mirror, byHand := t.TempDir(), t.TempDir()
	osvZip(t, mirror, "npm", lodashGHSA)
	osvZip(t, byHand, "npm", minimistGHSA)
	a := newTestServer(t, Config{Postgres: dsn, FeedMirror: mirror})
	b := newTestServer(t, Config{Postgres: dsn, FeedMirror: mirror})
	if _, ok, _ := a.Store.PublishedVulnDB(ctx); ok {
		t.Fatal("empty databases were published")
	}
	if _, err := a.VulnDB.ImportMirror(ctx, byHand, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	ca := apiClient(t, a, a.AdminKey())
	var sub SubmissionResult
	if ca.do("PUT", "/v1/resources/host/web-1/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); sub.Created != 1 {
		t.Fatalf("submit to A after its hand import: %+v", sub)
	}

	if _, _, err := b.EnqueueFeedUpdate(ctx, FeedUpdateRequest{}); err != nil {
		t.Fatal(err)
	}
	runJobs(t, b, "B/w1")
	if got := findingStates(t, a.Store, "web-1"); got["CVE-2021-23337"] != model.FindingActive || got["CVE-2021-44906"] != model.FindingClosed {
		t.Fatalf("after B's update: %v", got)
	}
	lineageA, vA, _ := a.VulnDB.Lineage(ctx)
	lineageB, vB, _ := b.VulnDB.Lineage(ctx)
	if pub, _, _ := a.Store.PublishedVulnDB(ctx); pub.Lineage != lineageB || vA != vB {
		t.Fatalf("setup: published %+v; A %s at %d, B %s at %d", pub, lineageA, vA, lineageB, vB)
	}
	created := countPrefix(outbox(t, a.Store), model.EventFindingCreated)

	if err := a.followFeed(ctx); err != nil { // the watcher's tick: adopt, then a pass
		t.Fatal(err)
	}
	if l, _, _ := a.VulnDB.Lineage(ctx); l != lineageB {
		t.Fatalf("A's database after its watcher ran: %s, want B's %s", l, lineageB)
	}
	if ca.do("PUT", "/v1/resources/host/web-2/inventory", InventorySubmission{Inventory: inventory("4.17.15", "1.2.0")}, &sub); sub.Created != 1 || sub.Findings != 1 {
		t.Fatalf("a new host through A after the adoption: %+v (lodash's finding only)", sub)
	}
	if got := findingStates(t, a.Store, "web-2"); got["CVE-2021-23337"] != model.FindingActive || len(got) != 1 {
		t.Errorf("web-2: %v", got)
	}
	if n := countPrefix(outbox(t, a.Store), model.EventFindingCreated); n != created+1 {
		t.Errorf("findings created: %d, want %d (only web-2's)", n, created+1)
	}
}
