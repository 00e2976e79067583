package findings

import (
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

func fp(v float64) *float64     { return &v }
func tp(t time.Time) *time.Time { return &t }

func TestMatchesEveryField(t *testing.T) {
	f := stored(openssl(), model.FindingActive, t0, t0.Add(2*day), t0)
	f.RelatedVulnerabilities = []string{"DSA-5764-1"}
	host := &model.Resource{Account: "111122223333", ID: "i-0a1b2c3d", Type: model.ResourceHost,
		Tags: map[string]string{"env": "prod", "team": "payments"}}
	img := &model.Resource{Account: "111122223333", ID: "sha256:1b0c", Type: model.ResourceImage,
		ImageRepository: "registry.example.com/team/app"}
	imgF := f
	imgF.ResourceType = ""
	tests := []struct {
		name   string
		filter model.FindingFilter
		f      model.Finding
		r      *model.Resource
		want   bool
	}{
		{"empty selects all", model.FindingFilter{}, f, host, true},
		{"empty selects all, nil resource", model.FindingFilter{}, f, nil, true},
		{"account hit", model.FindingFilter{Accounts: []string{"999", "111122223333"}}, f, host, true},
		{"account miss", model.FindingFilter{Accounts: []string{"999"}}, f, host, false},
		{"severity hit", model.FindingFilter{Severities: []string{model.SeverityCritical, model.SeverityHigh}}, f, host, true},
		{"severity miss", model.FindingFilter{Severities: []string{model.SeverityLow}}, f, host, false},
		{"severity is case-sensitive", model.FindingFilter{Severities: []string{"high"}}, f, host, false},
		{"status hit", model.FindingFilter{Statuses: []string{model.FindingActive}}, f, host, true},
		{"status miss", model.FindingFilter{Statuses: []string{model.FindingClosed}}, f, host, false},
		{"type hit", model.FindingFilter{Types: []string{model.FindingPackageVulnerability}}, f, host, true},
		{"type miss", model.FindingFilter{Types: []string{model.FindingNetworkReachability}}, f, host, false},
		{"vulnerability ID", model.FindingFilter{VulnerabilityIDs: []string{"CVE-2024-6119"}}, f, host, true},
		{"vulnerability ID via related", model.FindingFilter{VulnerabilityIDs: []string{"DSA-5764-1"}}, f, host, true},
		{"vulnerability ID miss", model.FindingFilter{VulnerabilityIDs: []string{"CVE-2024-5535"}}, f, host, false},
		{"package name", model.FindingFilter{PackageNames: []string{"libssl3"}}, f, host, true},
		{"package name via source", model.FindingFilter{PackageNames: []string{"openssl"}}, f, host, true},
		{"package name miss", model.FindingFilter{PackageNames: []string{"libcrypt1"}}, f, host, false},
		{"package version", model.FindingFilter{PackageVersions: []string{"3.0.11-1~deb12u2"}}, f, host, true},
		{"package version miss", model.FindingFilter{PackageVersions: []string{"3.0.14-1~deb12u2"}}, f, host, false},
		{"package name and version together", model.FindingFilter{PackageNames: []string{"libssl3"}, PackageVersions: []string{"3.0.11-1~deb12u2"}}, f, host, true},
		{"resource ID", model.FindingFilter{ResourceIDs: []string{"i-0a1b2c3d"}}, f, host, true},
		{"resource ID miss", model.FindingFilter{ResourceIDs: []string{"i-ffff"}}, f, host, false},
		{"resource type", model.FindingFilter{ResourceTypes: []string{model.ResourceHost}}, f, host, true},
		{"resource type miss", model.FindingFilter{ResourceTypes: []string{model.ResourceImage}}, f, host, false},
		{"resource type from resource", model.FindingFilter{ResourceTypes: []string{model.ResourceImage}}, imgF, img, true},
		{"tag hit (OR across pairs)", model.FindingFilter{ResourceTags: map[string]string{"env": "dev", "team": "payments"}}, f, host, true},
		{"tag value miss", model.FindingFilter{ResourceTags: map[string]string{"env": "dev"}}, f, host, false},
		{"tag key only", model.FindingFilter{ResourceTags: map[string]string{"env": ""}}, f, host, true},
		{"tag on untagged resource", model.FindingFilter{ResourceTags: map[string]string{"env": "prod"}}, f, img, false},
		{"tag with nil resource", model.FindingFilter{ResourceTags: map[string]string{"env": "prod"}}, f, nil, false},
		{"image repository", model.FindingFilter{ImageRepositories: []string{"registry.example.com/team/app"}}, imgF, img, true},
		{"image repository miss", model.FindingFilter{ImageRepositories: []string{"registry.example.com/team/app"}}, f, host, false},
		{"fix available", model.FindingFilter{FixAvailable: []string{model.Yes, model.Partial}}, f, host, true},
		{"fix available miss", model.FindingFilter{FixAvailable: []string{model.No}}, f, host, false},
		{"exploit available", model.FindingFilter{ExploitAvailable: []string{model.No}}, f, host, true},
		{"exploit available miss", model.FindingFilter{ExploitAvailable: []string{model.Yes}}, f, host, false},
		{"EPSS inclusive lower bound", model.FindingFilter{EPSS: &model.NumberRange{Min: fp(0.00045)}}, f, host, true},
		{"EPSS above max", model.FindingFilter{EPSS: &model.NumberRange{Max: fp(0.0004)}}, f, host, false},
		{"EPSS unknown never matches a range", model.FindingFilter{EPSS: &model.NumberRange{Max: fp(1)}}, libwebp(), host, false},
		{"risk inclusive upper bound", model.FindingFilter{RiskScore: &model.NumberRange{Min: fp(7), Max: fp(7.5)}}, f, host, true},
		{"risk below min", model.FindingFilter{RiskScore: &model.NumberRange{Min: fp(7.6)}}, f, host, false},
		{"first observed inclusive", model.FindingFilter{FirstObserved: &model.TimeRange{From: tp(t0), To: tp(t0)}}, f, host, true},
		{"first observed after", model.FindingFilter{FirstObserved: &model.TimeRange{From: tp(t0.Add(time.Second))}}, f, host, false},
		{"last observed inclusive", model.FindingFilter{LastObserved: &model.TimeRange{To: tp(t0.Add(2 * day))}}, f, host, true},
		{"last observed before", model.FindingFilter{LastObserved: &model.TimeRange{To: tp(t0.Add(day))}}, f, host, false},
		{"AND across fields: one fails", model.FindingFilter{Severities: []string{model.SeverityHigh}, PackageNames: []string{"curl"}}, f, host, false},
		{"AND across fields: all hold", model.FindingFilter{Severities: []string{model.SeverityHigh}, PackageNames: []string{"openssl"},
			ResourceTags: map[string]string{"env": "prod"}, FixAvailable: []string{model.Yes}}, f, host, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Matches(tc.filter, tc.f, tc.r); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

// Name and version must hold on the same package: libwebp7's version with openssl's name is no match.
func TestMatchesPackageNameAndVersionSamePackage(t *testing.T) {
	f := openssl()
	f.Packages = append(f.Packages, model.VulnerablePackage{Name: "curl", Version: "7.88.1-10+deb12u5", Ecosystem: "Debian:12"})
	if Matches(model.FindingFilter{PackageNames: []string{"curl"}, PackageVersions: []string{"3.0.11-1~deb12u2"}}, f, nil) {
		t.Error("name of one package and version of another must not match")
	}
}

func TestApplyRules(t *testing.T) {
	now := t0.Add(5 * day)
	host := &model.Resource{Account: "111122223333", ID: "i-0a1b2c3d", Type: model.ResourceHost, Tags: map[string]string{"env": "dev"}}
	devRule := model.SuppressionRule{ID: "rule-dev", Account: "111122223333", Reason: "dev hosts: accepted risk",
		Filter: model.FindingFilter{ResourceTags: map[string]string{"env": "dev"}, Severities: []string{model.SeverityHigh}}, CreatedAt: t0}
	expiring := devRule
	expiring.ID, expiring.ExpiresAt = "rule-until", tp(now.Add(day))
	expired := devRule
	expired.ID, expired.ExpiresAt = "rule-expired", tp(now)
	onlyActive := devRule
	onlyActive.ID, onlyActive.Filter.Statuses = "rule-status", []string{model.FindingActive}
	act := stored(openssl(), model.FindingActive, t0, now, t0)
	sup := stored(openssl(), model.FindingSuppressed, t0, now, t0)
	sup.Suppression = &model.SuppressionEvidence{Rule: "rule-dev", Reason: "dev hosts: accepted risk"}
	closed := stored(openssl(), model.FindingClosed, t0, t0, t0)
	tests := []struct {
		name   string
		f      model.Finding
		rules  []model.SuppressionRule
		status string
		rule   string
		event  bool
	}{
		{"suppress", act, []model.SuppressionRule{devRule}, model.FindingSuppressed, "rule-dev", true},
		{"suppress with a rule in force until later", act, []model.SuppressionRule{expiring}, model.FindingSuppressed, "rule-until", true},
		{"expired rule does nothing", act, []model.SuppressionRule{expired}, model.FindingActive, "", false},
		{"already suppressed by the same rule", sup, []model.SuppressionRule{devRule}, model.FindingSuppressed, "rule-dev", false},
		{"a rule filtering on ACTIVE keeps what it suppressed", sup, []model.SuppressionRule{onlyActive}, model.FindingSuppressed, "rule-status", true},
		{"rule deleted: unsuppress", sup, nil, model.FindingActive, "", true},
		{"rule expired: unsuppress", sup, []model.SuppressionRule{expired}, model.FindingActive, "", true},
		{"rule no longer matches: unsuppress", sup, []model.SuppressionRule{{ID: "rule-dev", Filter: model.FindingFilter{Severities: []string{model.SeverityCritical}}}}, model.FindingActive, "", true},
		{"closed left alone", closed, []model.SuppressionRule{devRule}, model.FindingClosed, "", false},
		{"oldest rule named", act, []model.SuppressionRule{{ID: "rule-new", Filter: devRule.Filter, CreatedAt: t0.Add(day)}, devRule}, model.FindingSuppressed, "rule-dev", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ApplyRules([]model.Finding{tc.f}, tc.rules, host, now)
			f := r.Findings[0]
			if f.Status != tc.status {
				t.Errorf("status = %s, want %s", f.Status, tc.status)
			}
			rule := ""
			if f.Suppression != nil {
				rule = f.Suppression.Rule
			}
			if rule != tc.rule {
				t.Errorf("rule = %q, want %q", rule, tc.rule)
			}
			if tc.event != (len(r.Events) == 1) || tc.event != (len(r.Upserts) == 1) {
				t.Fatalf("events %d upserts %d, want change=%v", len(r.Events), len(r.Upserts), tc.event)
			}
			if tc.event {
				if r.Events[0].Type != model.EventFindingUpdated || !f.UpdatedAt.Equal(now) {
					t.Errorf("event %s updatedAt %v", r.Events[0].Type, f.UpdatedAt)
				}
			} else if !f.UpdatedAt.Equal(tc.f.UpdatedAt) {
				t.Errorf("updatedAt moved without a change")
			}
		})
	}
	// Evidence carries the rule's expiry.
	r := ApplyRules([]model.Finding{act}, []model.SuppressionRule{expiring}, host, now)
	if u := r.Findings[0].Suppression.Until; u == nil || !u.Equal(*expiring.ExpiresAt) {
		t.Errorf("until = %v", u)
	}
}

func TestProcessOneEventPerFinding(t *testing.T) {
	now := t0
	host := &model.Resource{Account: "111122223333", ID: "i-0a1b2c3d", Type: model.ResourceHost}
	rule := model.SuppressionRule{ID: "rule-webp", Filter: model.FindingFilter{VulnerabilityIDs: []string{"CVE-2023-4863"}}}
	r := Process(nil, []model.Finding{openssl(), libwebp()}, []model.SuppressionRule{rule}, host, now, Config{})
	if len(r.Events) != 2 || len(r.Upserts) != 2 {
		t.Fatalf("events %d upserts %d", len(r.Events), len(r.Upserts))
	}
	for _, e := range r.Events {
		if e.Type != model.EventFindingCreated {
			t.Errorf("%s: %s, want created", e.Subject, e.Type)
		}
	}
	byID := map[string]model.Finding{}
	for _, f := range r.Findings {
		byID[f.ID] = f
	}
	if byID["vf-libwebp"].Status != model.FindingSuppressed || byID["vf-openssl"].Status != model.FindingActive {
		t.Errorf("statuses: %s %s", byID["vf-libwebp"].Status, byID["vf-openssl"].Status)
	}
	// Next pass, unchanged, rule kept: nothing but observations.
	later := now.Add(time.Hour)
	r2 := Process(r.Findings, []model.Finding{openssl(), libwebp()}, []model.SuppressionRule{rule}, host, later, Config{})
	if len(r2.Events) != 0 || len(r2.Upserts) != 0 || len(r2.Observed) != 2 {
		t.Errorf("unchanged pass: events %d upserts %d observed %d", len(r2.Events), len(r2.Upserts), len(r2.Observed))
	}
	// Rule deleted: libwebp reactivated, one updated event, openssl only observed.
	r3 := Process(r2.Findings, []model.Finding{openssl(), libwebp()}, nil, host, later.Add(time.Hour), Config{})
	if len(r3.Events) != 1 || r3.Events[0].Subject != "vf-libwebp" || r3.Events[0].Type != model.EventFindingUpdated || len(r3.Observed) != 1 {
		t.Errorf("after rule deletion: %+v observed %v", r3.Events, r3.Observed)
	}
}

func TestObserve(t *testing.T) {
	now := t0.Add(day)
	host := &model.Resource{ID: "i-0a1b2c3d", Type: model.ResourceHost}
	sup := stored(libwebp(), model.FindingSuppressed, t0, t0, t0)
	sup.Suppression = &model.SuppressionEvidence{Rule: "gone"}
	prev := []model.Finding{stored(openssl(), model.FindingActive, t0, t0, t0), sup,
		stored(model.Finding{ID: "vf-closed"}, model.FindingClosed, t0, t0, t0)}
	r := Observe(prev, nil, host, now)
	if len(r.Observed) != 1 || r.Observed[0] != "vf-openssl" {
		t.Errorf("observed = %v", r.Observed)
	}
	if len(r.Upserts) != 1 || r.Upserts[0].ID != "vf-libwebp" || r.Upserts[0].Status != model.FindingActive || len(r.Events) != 1 {
		t.Errorf("a suppression whose rule is gone must lapse: %+v", r.Upserts)
	}
	for _, f := range r.Findings {
		if f.ID == "vf-closed" && !f.LastObservedAt.Equal(t0) {
			t.Error("closed finding observed")
		}
		if f.ID == "vf-openssl" && !f.LastObservedAt.Equal(now) {
			t.Error("open finding not observed")
		}
	}
}
