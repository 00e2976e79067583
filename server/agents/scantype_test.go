package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

// setEnabled stores the test account's enabled scan types.
func (h *harness) setEnabled(types ...string) {
	h.t.Helper()
	a, err := h.fleet.GetAccount(context.Background(), testAccount)
	if err != nil {
		h.t.Fatal(err)
	}
	a.Enabled = types
	if err := h.fleet.PutAccount(context.Background(), a); err != nil {
		h.t.Fatal(err)
	}
}

// rawUpload sends u and returns the status, the Content-Type and the body.
func (h *harness) rawUpload(e *enrolled, u protocol.Upload) (int, string, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest("PUT", h.srv.URL+protocol.PathInventory, bytes.NewReader(gz(h.t, u)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := e.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestUploadNeedsHostScanning: an account without package scanning of hosts gets its agents'
// uploads refused (409 with the problem type the agent recognizes), nothing reaches the sink, and
// the host's coverage says why until the scan type is enabled; then the same upload is accepted.
func TestUploadNeedsHostScanning(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		ctx := context.Background()
		h.setEnabled(model.ResourceImage) // images only
		e := h.enroll("db-1")
		if c := h.coverage(e.id); c.Status != model.CoverageInactive || c.Reason != model.ReasonPendingDisable {
			t.Fatalf("coverage after enrollment: %s/%s", c.Status, c.Reason)
		}
		inv := baseInventory()
		up := protocol.Upload{Hash: protocol.InventoryHash(inv), Full: inv, CollectedAt: h.clock.Now()}
		code, ctype, body := h.rawUpload(e, up)
		var p struct{ Type, Detail string }
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("refusal body %q: %v", body, err)
		}
		if code != http.StatusConflict || ctype != "application/problem+json" || p.Type != protocol.ProblemScanNotEnabled ||
			!strings.Contains(p.Detail, `/v1/accounts/acme/enable {"scanTypes": ["host"]}`) {
			t.Fatalf("upload without host scanning: %d %s %s", code, ctype, body)
		}
		if n := len(h.sink.all()); n != 0 {
			t.Fatalf("%d submissions reached the sink", n)
		}
		if a, _ := h.st.GetAgent(ctx, e.id); a.InventoryHash != "" || !a.LastInventoryAt.IsZero() {
			t.Fatalf("a refused inventory was recorded: %q %v", a.InventoryHash, a.LastInventoryAt)
		}
		// Refresh keeps the reason: no NO_INVENTORY, however long the agent goes without one; a
		// host without an agent is PENDING_DISABLE too, not UNMANAGED_INSTANCE (an agent would not help).
		if err := h.fleet.PutResource(ctx, model.Resource{Account: testAccount, ID: "i-0abc123", Type: model.ResourceHost, Name: "from-cloud"}); err != nil {
			t.Fatal(err)
		}
		h.clock.Add(DefaultNoInventoryAfter + time.Minute)
		stats, err := h.svc.Refresh(ctx, []string{testAccount})
		if err != nil {
			t.Fatal(err)
		}
		if c := h.coverage(e.id); c.Reason != model.ReasonPendingDisable {
			t.Fatalf("coverage after Refresh: %s/%s", c.Status, c.Reason)
		}
		if c := h.coverage("i-0abc123"); c.Reason != model.ReasonPendingDisable || stats.Unmanaged != 0 {
			t.Fatalf("host without an agent: %s/%s, %d unmanaged", c.Status, c.Reason, stats.Unmanaged)
		}

		// The legacy "package" entry enables hosts too; Refresh picks it up before any upload.
		h.setEnabled(model.ScanPackage)
		if _, err := h.svc.Refresh(ctx, []string{testAccount}); err != nil {
			t.Fatal(err)
		}
		if c := h.coverage(e.id); c.Reason != model.ReasonNoInventory {
			t.Fatalf("coverage once enabled: %s/%s", c.Status, c.Reason)
		}
		if code, out := h.upload(e, up); code != 200 || out.Hash != up.Hash {
			t.Fatalf("upload once enabled: %d %+v", code, out)
		}
		if n := len(h.sink.all()); n != 1 {
			t.Fatalf("%d submissions after enabling", n)
		}
		if c := h.coverage(e.id); c.Status != model.CoverageActive || c.Reason != model.ReasonSuccessful {
			t.Fatalf("coverage after the upload: %s/%s", c.Status, c.Reason)
		}

		// Disabled again: the next (unchanged) upload is refused and the coverage follows at once.
		h.setEnabled(model.ResourceFunction)
		if code, _, _ := h.rawUpload(e, protocol.Upload{Hash: up.Hash, BaseHash: up.Hash}); code != http.StatusConflict {
			t.Fatalf("unchanged upload after disabling: %d", code)
		}
		if c := h.coverage(e.id); c.Reason != model.ReasonPendingDisable {
			t.Fatalf("coverage after disabling: %s/%s", c.Status, c.Reason)
		}
	})
}

// TestRefusedUploadTakesNoSlot: the scan-type check comes before upload admission, so a refused
// agent neither waits for nor holds one of the MaxUploads slots.
func TestRefusedUploadTakesNoSlot(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *Config) { c.MaxUploads, c.UploadWait = 1, 5*time.Second })
	h.setEnabled()
	e := h.enroll("db-2")
	h.svc.uploads <- struct{}{} // every slot taken
	defer func() { <-h.svc.uploads }()
	inv := baseInventory()
	start := time.Now()
	code, _, _ := h.rawUpload(e, protocol.Upload{Hash: protocol.InventoryHash(inv), Full: inv})
	if code != http.StatusConflict {
		t.Fatalf("status %d, want 409", code)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the refusal waited %v for an upload slot", d)
	}
}
