package findings

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

func TestDeriveCoverage(t *testing.T) {
	now := t0.Add(30 * day)
	bookworm := &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}
	unknown := &model.OS{Family: "slackware", VersionID: "15.0"}
	gone := now.Add(-time.Hour)
	host := func(tags map[string]string) *model.Resource {
		return &model.Resource{Account: "111122223333", ID: "i-0a1b2c3d", Type: model.ResourceHost, Tags: tags, ScanMode: "agent"}
	}
	image := &model.Resource{Account: "111122223333", ID: "sha256:1b0c", Type: model.ResourceImage, ScanMode: "registry"}
	fresh := now.Add(-6 * time.Hour)
	tests := []struct {
		name           string
		r              *model.Resource
		s              ScanState
		status, reason string
	}{
		{"successful", host(nil), ScanState{LastInventoryAt: fresh, OS: bookworm}, model.CoverageActive, model.ReasonSuccessful},
		{"excluded by tag (any value)", host(map[string]string{model.ExclusionTag: ""}), ScanState{LastInventoryAt: fresh, OS: bookworm}, model.CoverageInactive, model.ReasonExcludedByTag},
		{"removed", &model.Resource{ID: "i-0dead", Type: model.ResourceHost, RemovedAt: &gone}, ScanState{LastInventoryAt: fresh, OS: bookworm}, model.CoverageInactive, model.ReasonResourceTerminated},
		{"pending initial scan", host(nil), ScanState{}, model.CoverageActive, model.ReasonPendingInitialScan},
		{"first scan in progress", host(nil), ScanState{InProgress: true}, model.CoverageActive, model.ReasonScanInProgress},
		{"internal error", host(nil), ScanState{LastInventoryAt: fresh, OS: bookworm, Failed: true}, model.CoverageInactive, model.ReasonInternalError},
		{"stale after 7 days", host(nil), ScanState{LastInventoryAt: now.Add(-7*day - time.Second), OS: bookworm}, model.CoverageInactive, model.ReasonStaleInventory},
		{"exactly 7 days is not stale", host(nil), ScanState{LastInventoryAt: now.Add(-7 * day), OS: bookworm}, model.CoverageActive, model.ReasonSuccessful},
		{"host without OS", host(nil), ScanState{LastInventoryAt: fresh, Ecosystems: []string{"PyPI"}}, model.CoverageInactive, model.ReasonUnsupportedOS},
		{"host with unknown distribution", host(nil), ScanState{LastInventoryAt: fresh, OS: unknown}, model.CoverageInactive, model.ReasonUnsupportedOS},
		{"distroless image with npm packages", image, ScanState{LastInventoryAt: fresh, Ecosystems: []string{"npm"}}, model.CoverageActive, model.ReasonSuccessful},
		{"image with nothing matchable", image, ScanState{LastInventoryAt: fresh, OS: unknown, Ecosystems: []string{"Bitnami-unknown"}}, model.CoverageInactive, model.ReasonUnsupportedOS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DeriveCoverage(tc.r, model.ScanPackage, tc.s, now, Config{})
			if c.Status != tc.status || c.Reason != tc.reason {
				t.Errorf("coverage = %s %s, want %s %s", c.Status, c.Reason, tc.status, tc.reason)
			}
			if c.ResourceID != tc.r.ID || c.ScanType != model.ScanPackage || !c.LastScannedAt.Equal(tc.s.LastInventoryAt) || c.ScanMode != tc.r.ScanMode {
				t.Errorf("coverage fields = %+v", c)
			}
		})
	}
}

func TestCoverageChanged(t *testing.T) {
	r := &model.Resource{Account: "111122223333", ID: "i-0a1b2c3d", Type: model.ResourceHost}
	now := t0
	pending := DeriveCoverage(r, model.ScanPackage, ScanState{}, now, Config{})
	c, ev := Changed(nil, pending, now)
	if ev == nil || ev.Type != model.EventCoverageChanged || ev.Subject != "i-0a1b2c3d" || !c.UpdatedAt.Equal(now) {
		t.Fatalf("first coverage: %+v %+v", c, ev)
	}
	ok := DeriveCoverage(r, model.ScanPackage, ScanState{LastInventoryAt: now.Add(time.Hour), OS: &model.OS{Ecosystem: "Debian:12"}}, now.Add(time.Hour), Config{})
	c2, ev := Changed(&c, ok, now.Add(time.Hour))
	if ev == nil || c2.Reason != model.ReasonSuccessful {
		t.Fatalf("pending → successful: %+v %+v", c2, ev)
	}
	var data model.Coverage
	if err := json.Unmarshal(ev.Data, &data); err != nil || data.Reason != model.ReasonSuccessful {
		t.Errorf("event data %s", ev.Data)
	}
	// A later scan changes only lastScannedAt: written, not announced.
	ok2 := DeriveCoverage(r, model.ScanPackage, ScanState{LastInventoryAt: now.Add(7 * time.Hour), OS: &model.OS{Ecosystem: "Debian:12"}}, now.Add(7*time.Hour), Config{})
	c3, ev := Changed(&c2, ok2, now.Add(7*time.Hour))
	if ev != nil || !c3.UpdatedAt.Equal(c2.UpdatedAt) || !c3.LastScannedAt.Equal(now.Add(7*time.Hour)) {
		t.Errorf("lastScannedAt only: %+v %+v", c3, ev)
	}
}
