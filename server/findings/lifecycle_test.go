package findings

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// openssl is a finding as match builds it for Debian 12's openssl 3.0.11-1~deb12u2 and CVE-2024-6119.
func openssl() model.Finding {
	return model.Finding{
		ID: "vf-openssl", Type: model.FindingPackageVulnerability, Account: "111122223333", ResourceID: "i-0a1b2c3d",
		ResourceType: model.ResourceHost, VulnerabilityID: "CVE-2024-6119", Title: "CVE-2024-6119 - libssl3, openssl",
		Severity: model.SeverityHigh, SeveritySource: "nvd", Status: model.FindingActive,
		FixAvailable: model.Yes, ExploitAvailable: model.No, RiskScore: model.RiskScore{Score: 7.5, Base: 7.5},
		EPSS: &model.EPSS{Score: 0.00045},
		Packages: []model.VulnerablePackage{
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", SourceName: "openssl", FixedInVersion: "3.0.14-1~deb12u2"},
			{Name: "openssl", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", SourceName: "openssl", FixedInVersion: "3.0.14-1~deb12u2"},
		},
	}
}

func libwebp() model.Finding {
	return model.Finding{
		ID: "vf-libwebp", Type: model.FindingPackageVulnerability, Account: "111122223333", ResourceID: "i-0a1b2c3d",
		ResourceType: model.ResourceHost, VulnerabilityID: "CVE-2023-4863", Severity: model.SeverityHigh,
		Status: model.FindingActive, FixAvailable: model.Yes, ExploitAvailable: model.Yes,
		RiskScore: model.RiskScore{Score: 9.6, Base: 8.8}, KEV: &model.KEV{},
		Packages: []model.VulnerablePackage{{Name: "libwebp7", Version: "1.2.4-0.2", Ecosystem: "Debian:12", SourceName: "libwebp", FixedInVersion: "1.2.4-0.2+deb12u1"}},
	}
}

// stored returns f as the store holds it.
func stored(f model.Finding, status string, first, last, updated time.Time) model.Finding {
	f.Status, f.FirstObservedAt, f.LastObservedAt, f.UpdatedAt = status, first, last, updated
	return f
}

func TestReconcileTransitions(t *testing.T) {
	now := t0.Add(10 * day)
	mod := func(fn func(*model.Finding)) model.Finding { f := openssl(); fn(&f); return f }
	active := stored(openssl(), model.FindingActive, t0, t0.Add(day), t0)
	tests := []struct {
		name      string
		prev      []model.Finding
		current   []model.Finding
		event     string // "" = none
		status    string
		first     time.Time
		updated   time.Time
		upsert    bool
		observed  bool
		wantCount int
	}{
		{name: "create", current: []model.Finding{openssl()}, event: model.EventFindingCreated,
			status: model.FindingActive, first: now, updated: now, upsert: true},
		{name: "seen again, unchanged", prev: []model.Finding{active}, current: []model.Finding{openssl()},
			status: model.FindingActive, first: t0, updated: t0, observed: true},
		{name: "immaterial: description", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.Description = "Applications performing certificate name checks" })},
			status:  model.FindingActive, first: t0, updated: t0, upsert: true},
		{name: "immaterial: EPSS inside its band", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.EPSS = &model.EPSS{Score: 0.0009} })},
			status:  model.FindingActive, first: t0, updated: t0, upsert: true},
		{name: "immaterial: risk score below 0.05", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.RiskScore.Score = 7.52 })},
			status:  model.FindingActive, first: t0, updated: t0, upsert: true},
		{name: "material: severity", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.Severity = model.SeverityMedium })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: risk score", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.RiskScore.Score = 8.1 })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: package upgraded but still vulnerable", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.Packages[0].Version = "3.0.13-1~deb12u1" })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: one package fewer", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.Packages = f.Packages[:1] })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: fixed version", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.Packages[1].FixedInVersion = "3.0.15-1~deb12u1" })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: fix availability", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.FixAvailable = model.Partial })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: exploit availability", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.ExploitAvailable = model.Yes })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: EPSS band", prev: []model.Finding{active},
			current: []model.Finding{mod(func(f *model.Finding) { f.EPSS = &model.EPSS{Score: 0.2} })},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "material: EPSS appears", prev: []model.Finding{stored(mod(func(f *model.Finding) { f.EPSS = nil }), model.FindingActive, t0, t0, t0)},
			current: []model.Finding{openssl()},
			event:   model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "close", prev: []model.Finding{active},
			event: model.EventFindingClosed, status: model.FindingClosed, first: t0, updated: now, upsert: true},
		{name: "close a suppressed finding", prev: []model.Finding{stored(openssl(), model.FindingSuppressed, t0, t0, t0)},
			event: model.EventFindingClosed, status: model.FindingClosed, first: t0, updated: now, upsert: true},
		{name: "closed stays closed, untouched", prev: []model.Finding{stored(openssl(), model.FindingClosed, t0, t0, t0)},
			status: model.FindingClosed, first: t0, updated: t0},
		{name: "reopen inside the window", prev: []model.Finding{stored(openssl(), model.FindingClosed, t0, t0.Add(3*day), now.Add(-3*day))},
			current: []model.Finding{openssl()}, event: model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "reopen at exactly 7 days", prev: []model.Finding{stored(openssl(), model.FindingClosed, t0, t0.Add(3*day), now.Add(-7*day))},
			current: []model.Finding{openssl()}, event: model.EventFindingUpdated, status: model.FindingActive, first: t0, updated: now, upsert: true},
		{name: "returns after the window: starts over", prev: []model.Finding{stored(openssl(), model.FindingClosed, t0, t0, now.Add(-7*day-time.Second))},
			current: []model.Finding{openssl()}, event: model.EventFindingCreated, status: model.FindingActive, first: now, updated: now, upsert: true},
		{name: "suppressed seen again stays suppressed", prev: []model.Finding{stored(openssl(), model.FindingSuppressed, t0, t0, t0)},
			current: []model.Finding{openssl()}, status: model.FindingSuppressed, first: t0, updated: t0, observed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Reconcile(tc.prev, tc.current, now, Config{})
			if len(r.Findings) != 1 {
				t.Fatalf("findings = %d", len(r.Findings))
			}
			f := r.Findings[0]
			if f.ID != "vf-openssl" {
				t.Errorf("ID = %s", f.ID)
			}
			if f.Status != tc.status || !f.FirstObservedAt.Equal(tc.first) || !f.UpdatedAt.Equal(tc.updated) {
				t.Errorf("status %s first %v updated %v; want %s %v %v", f.Status, f.FirstObservedAt, f.UpdatedAt, tc.status, tc.first, tc.updated)
			}
			if tc.status != model.FindingClosed && !f.LastObservedAt.Equal(now) {
				t.Errorf("lastObservedAt = %v", f.LastObservedAt)
			}
			if (len(r.Upserts) == 1) != tc.upsert || (len(r.Observed) == 1) != tc.observed {
				t.Errorf("upserts %d observed %d; want upsert %v observed %v", len(r.Upserts), len(r.Observed), tc.upsert, tc.observed)
			}
			if tc.event == "" {
				if len(r.Events) != 0 {
					t.Errorf("events = %+v", r.Events)
				}
				return
			}
			if len(r.Events) != 1 || r.Events[0].Type != tc.event {
				t.Fatalf("events = %+v, want one %s", r.Events, tc.event)
			}
			e := r.Events[0]
			var data model.Finding
			if err := json.Unmarshal(e.Data, &data); err != nil || data.Status != tc.status || data.ID != f.ID {
				t.Errorf("event data = %s (%v)", e.Data, err)
			}
			if e.Subject != "vf-openssl" || e.Account != "111122223333" || !e.Time.Equal(now) {
				t.Errorf("event envelope = %+v", e)
			}
		})
	}
}

func TestReconcileReopenWindowConfigurable(t *testing.T) {
	now := t0.Add(10 * day)
	prev := []model.Finding{stored(openssl(), model.FindingClosed, t0, t0, now.Add(-2*day))}
	r := Reconcile(prev, []model.Finding{openssl()}, now, Config{ReopenWindow: day})
	if r.Events[0].Type != model.EventFindingCreated || !r.Findings[0].FirstObservedAt.Equal(now) {
		t.Errorf("with a 1-day window a 2-day-old closure must start over: %+v", r.Events[0])
	}
}

func TestReconcileMixedAndEventIDs(t *testing.T) {
	now := t0.Add(day)
	prev := []model.Finding{stored(openssl(), model.FindingActive, t0, t0, t0)}
	r := Reconcile(prev, []model.Finding{libwebp()}, now, Config{})
	if len(r.Findings) != 2 || len(r.Events) != 2 || len(r.Upserts) != 2 {
		t.Fatalf("findings %d events %d upserts %d", len(r.Findings), len(r.Events), len(r.Upserts))
	}
	types := map[string]string{}
	for _, e := range r.Events {
		types[e.Subject] = e.Type
	}
	if types["vf-libwebp"] != model.EventFindingCreated || types["vf-openssl"] != model.EventFindingClosed {
		t.Errorf("events = %v", types)
	}
	if r.Events[0].ID == r.Events[1].ID {
		t.Error("event IDs collide")
	}
	// The same pass recomputed (a retried transaction) gives the same event IDs.
	again := Reconcile(prev, []model.Finding{libwebp()}, now, Config{})
	for i := range r.Events {
		if again.Events[i].ID != r.Events[i].ID {
			t.Errorf("event ID not deterministic: %s vs %s", again.Events[i].ID, r.Events[i].ID)
		}
	}
	// A later pass with the same transition type produces a distinct ID.
	later := Reconcile(prev, []model.Finding{libwebp()}, now.Add(time.Second), Config{})
	if later.Events[0].ID == r.Events[0].ID {
		t.Error("distinct passes share an event ID")
	}
}

func TestMaterialIgnoresPackageOrder(t *testing.T) {
	a, b := openssl(), openssl()
	b.Packages[0], b.Packages[1] = b.Packages[1], b.Packages[0]
	if Material(a, b) {
		t.Error("package order is not material")
	}
}

func TestEPSSBucket(t *testing.T) {
	for _, tc := range []struct {
		e    *model.EPSS
		want int
	}{{nil, -1}, {&model.EPSS{Score: 0}, 0}, {&model.EPSS{Score: 0.0099}, 0}, {&model.EPSS{Score: 0.01}, 1},
		{&model.EPSS{Score: 0.0999}, 1}, {&model.EPSS{Score: 0.1}, 2}, {&model.EPSS{Score: 0.5}, 3}, {&model.EPSS{Score: 0.97}, 3}} {
		if got := EPSSBucket(tc.e); got != tc.want {
			t.Errorf("EPSSBucket(%v) = %d, want %d", tc.e, got, tc.want)
		}
	}
}

// Two different changes of one finding at the same clock reading (a rule edited twice within one
// tick) get different event IDs; recomputing the same change gives the same ID.
func TestFindingEventIDsAtOneInstant(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	f := model.Finding{ID: "vf-1", Account: "a", Status: model.FindingSuppressed}
	g := f
	g.Status = model.FindingActive
	a, b := FindingEvent(model.EventFindingUpdated, f, now), FindingEvent(model.EventFindingUpdated, g, now)
	if a.ID == b.ID {
		t.Fatalf("different changes share event ID %s", a.ID)
	}
	if again := FindingEvent(model.EventFindingUpdated, f, now); again.ID != a.ID {
		t.Fatalf("the same change recomputed got %s, then %s", a.ID, again.ID)
	}
}

// A finding event's ID is pinned: stored outboxes and webhook consumers deduplicate on it, so the
// way it is hashed must never change (type, finding ID, data, pass time in nanoseconds).
func TestFindingEventIDPinned(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 123456789, time.UTC)
	f := model.Finding{ID: "vf-0123456789abcdef01234567", Type: model.FindingPackageVulnerability, Account: "111122223333",
		VulnerabilityID: "CVE-2024-3094", Severity: model.SeverityCritical, Status: model.FindingActive}
	ev := FindingEvent(model.EventFindingCreated, f, now)
	if want := EventID(model.EventFindingCreated, f.ID+"\x00"+string(ev.Data), now); ev.ID != want {
		t.Errorf("event ID %s, want EventID over type, ID and data: %s", ev.ID, want)
	}
	sum := sha256.Sum256([]byte(model.EventFindingCreated + "\x00" + f.ID + "\x00" + string(ev.Data) + "\x00" + "1796558400123456789"))
	if want := "ev-" + hex.EncodeToString(sum[:16]); ev.ID != want {
		t.Errorf("event ID %s, want %s", ev.ID, want)
	}
}

// KeptPackages names the upserted findings whose package rows are those stored: re-rated, closed,
// in another order; not a new finding, nor one whose package version moved.
func TestReconcileKeptPackages(t *testing.T) {
	now := t0.Add(10 * day)
	prev := []model.Finding{stored(openssl(), model.FindingActive, t0, t0, t0), stored(libwebp(), model.FindingActive, t0, t0, t0)}
	rerated := openssl()
	rerated.Severity, rerated.RiskScore.Score = model.SeverityCritical, 9.8
	rerated.Packages[0], rerated.Packages[1] = rerated.Packages[1], rerated.Packages[0]
	r := Reconcile(prev, []model.Finding{rerated}, now, Config{})
	if len(r.Upserts) != 2 || len(r.KeptPackages) != 2 {
		t.Fatalf("re-rated and closed: upserts %d, kept %v", len(r.Upserts), r.KeptPackages)
	}
	upgraded := openssl()
	upgraded.Packages = upgraded.Packages[:1]
	upgraded.Packages[0].Version = "3.0.13-1~deb12u1"
	fresh := libwebp()
	r = Reconcile(prev[:1], []model.Finding{upgraded, fresh}, now, Config{})
	if len(r.Upserts) != 2 || len(r.KeptPackages) != 0 {
		t.Fatalf("changed packages and a new finding: upserts %d, kept %v", len(r.Upserts), r.KeptPackages)
	}
}
