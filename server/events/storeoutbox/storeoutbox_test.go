package storeoutbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/store"
)

// TestDispatcherOverSQLiteStore runs the dispatcher against the real store on SQLite: a healthy
// sink, a flaky one (503 once) and one that refuses the event (400).
func TestDispatcherOverSQLiteStore(t *testing.T) {
	ctx := context.Background()
	var mu, clockMu sync.Mutex
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }

	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "vigil.db"), store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutAccount(ctx, model.Account{ID: "acct-1", Name: "one", Role: model.AccountStandalone}); err != nil {
		t.Fatal(err)
	}
	evs := []model.OutboxEvent{
		{ID: "ev-1", Type: model.EventFindingCreated, Account: "acct-1", Subject: "f1", Time: clock(), Data: json.RawMessage(`{"vulnerabilityId":"CVE-2024-3094"}`)},
		{ID: "ev-2", Type: model.EventCoverageChanged, Account: "acct-1", Subject: "i-0abc", Time: clock(), Data: json.RawMessage(`{"reason":"SUCCESSFUL"}`)},
	}
	if err := st.ApplyChanges(ctx, store.Changes{Account: "acct-1", Events: evs}); err != nil {
		t.Fatal(err)
	}

	hits := map[string][]string{}
	handler := func(name string, status func(n int) int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name] = append(hits[name], r.Header.Get(events.HeaderEventID))
			n := len(hits[name])
			mu.Unlock()
			w.WriteHeader(status(n))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	ok := handler("ok", func(int) int { return 200 })
	flaky := handler("flaky", func(n int) int {
		if n <= 2 {
			return 503
		}
		return 204
	})
	picky := handler("picky", func(int) int { return 400 })
	sinks := events.NewMemSinks(
		events.Sink{ID: "ok", Account: "acct-1", URL: ok.URL, Secret: "s", Enabled: true},
		events.Sink{ID: "flaky", Account: "acct-1", URL: flaky.URL, Secret: "s", Enabled: true},
		events.Sink{ID: "picky", Account: "acct-1", URL: picky.URL, Secret: "s", Enabled: true, Types: []string{model.EventFindingCreated}},
	)
	ob := New(st)
	ob.now = clock
	d, err := events.NewDispatcher(ob, sinks, events.Config{Source: "urn:vigil:test", Now: clock, Rand: func() float64 { return 1 }, BackoffBase: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := d.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		advance(time.Minute)
	}
	mu.Lock()
	defer mu.Unlock()
	// ok got each event once although flaky needed a retry of both: settled sinks are skipped.
	// (Both are delivered concurrently: their order is not guaranteed.)
	if got := strings.Join(slices.Sorted(slices.Values(hits["ok"])), ","); got != "ev-1,ev-2" {
		t.Errorf("ok got %s", got)
	}
	if got := len(hits["flaky"]); got != 4 {
		t.Errorf("flaky got %d requests, want 4", got)
	}
	if got := strings.Join(hits["picky"], ","); got != "ev-1" {
		t.Errorf("picky got %s", got)
	}
	dl, err := st.ListDeadLetters(ctx, []string{"acct-1"}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(dl.Records) != 1 || dl.Records[0].Event.ID != "ev-1" || !strings.Contains(dl.Records[0].LastError, "picky: receiver answered 400") ||
		!strings.Contains(dl.Records[0].LastError, "delivered to ok, flaky") {
		t.Fatalf("dead letters %+v", dl.Records)
	}
	if rest, err := st.ClaimEvents(ctx, 10, time.Minute); err != nil || len(rest) != 0 {
		t.Fatalf("left in the outbox: %+v %v", rest, err)
	}
}
