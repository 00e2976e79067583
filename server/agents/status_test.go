package agents

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

func TestPingStatusAndCoverage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		ctx := context.Background()
		e := h.enroll("ping-1")
		status := func() string {
			a, err := h.st.GetAgent(ctx, e.id)
			if err != nil {
				t.Fatal(err)
			}
			return h.svc.PingStatus(a, h.clock.Now())
		}
		refresh := func(wantReason string) {
			t.Helper()
			if _, err := h.svc.Refresh(ctx, []string{testAccount}); err != nil {
				t.Fatal(err)
			}
			if c := h.coverage(e.id); c.Reason != wantReason {
				t.Fatalf("coverage %s/%s, want %s", c.Status, c.Reason, wantReason)
			}
		}
		if s := status(); s != PingOnline {
			t.Fatalf("just enrolled: %s", s)
		}
		refresh(model.ReasonPendingInitialScan)
		h.clock.Add(119 * time.Second)
		if s := status(); s != PingOnline {
			t.Fatalf("within two periods: %s", s)
		}
		h.clock.Add(2 * time.Second)
		if s := status(); s != PingConnectionLost {
			t.Fatalf("after two periods: %s", s)
		}
		h.heartbeat(e, protocol.StateRunning)
		if s := status(); s != PingOnline {
			t.Fatalf("after a heartbeat: %s", s)
		}
		h.clock.Add(DefaultNoInventoryAfter + time.Minute)
		refresh(model.ReasonNoInventory)

		inv := baseInventory()
		if code, _ := h.upload(e, protocol.Upload{Hash: protocol.InventoryHash(inv), Full: inv}); code != 200 {
			t.Fatalf("upload %d", code)
		}
		refresh(model.ReasonSuccessful)
		h.clock.Add(3 * 24 * time.Hour)
		refresh(model.ReasonSuccessful)
		h.renew(e)
		// Seven days without an inventory: stale, even though the agent still heartbeats.
		h.clock.Add(4*24*time.Hour + time.Minute)
		h.heartbeat(e, protocol.StateRunning)
		refresh(model.ReasonStaleInventory)
		// A re-upload of the same inventory confirms it.
		h.upload(e, protocol.Upload{Hash: protocol.InventoryHash(inv), Full: inv})
		refresh(model.ReasonSuccessful)

		h.clock.Add(time.Second)
		if code, _ := h.heartbeat(e, protocol.StateShutdown); code != 200 {
			t.Fatal("shutdown heartbeat")
		}
		if c := h.coverage(e.id); c.Reason != model.ReasonInstanceStopped || c.Status != model.CoverageInactive {
			t.Fatalf("after shutdown %+v", c)
		}
		h.clock.Add(time.Second)
		h.heartbeat(e, protocol.StateRunning)
		refresh(model.ReasonSuccessful)

		// The exclusion tag wins over everything the agent says.
		res, err := h.fleet.GetResource(ctx, testAccount, e.id)
		if err != nil {
			t.Fatal(err)
		}
		res.Tags = map[string]string{model.ExclusionTag: ""}
		if err := h.fleet.PutResource(ctx, res); err != nil {
			t.Fatal(err)
		}
		h.clock.Add(time.Second)
		refresh(model.ReasonExcludedByTag)
		// Tags survive the agent's next upload.
		h.heartbeat(e, protocol.StateRunning)
		if res, _ = h.fleet.GetResource(ctx, testAccount, e.id); !res.Excluded() {
			t.Fatalf("exclusion tag lost: %+v", res.Tags)
		}

		// A host known from elsewhere without inventory or agent is unmanaged; one covered by an
		// upload is left alone.
		if err := h.fleet.PutResource(ctx, model.Resource{Account: testAccount, ID: "i-0abc123", Type: model.ResourceHost, Name: "from-cloud"}); err != nil {
			t.Fatal(err)
		}
		stats, err := h.svc.Refresh(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Agents != 1 || stats.Unmanaged != 1 {
			t.Fatalf("stats %+v", stats)
		}
		if c := h.coverage("i-0abc123"); c.Reason != model.ReasonUnmanagedInstance || c.Status != model.CoverageInactive {
			t.Fatalf("unmanaged host %+v", c)
		}
	})
}

func TestUnsupportedOS(t *testing.T) {
	h := newHarness(t, "memory")
	key, csr := newKeyCSR(t)
	_ = key
	var resp protocol.EnrollResponse
	if code := h.do(h.client(nil), "POST", protocol.PathEnroll, protocol.EnrollRequest{Token: h.token(1, time.Hour), CSR: csr, Hostname: "gentoo-1",
		Version: "0.3.0", OS: &model.OS{Family: "gentoo", PrettyName: "Gentoo Linux"}}, &resp); code != 200 {
		t.Fatalf("enroll %d", code)
	}
	if c := h.coverage(resp.AgentID); c.Reason != model.ReasonUnsupportedOS {
		t.Fatalf("coverage %+v", c)
	}
}
