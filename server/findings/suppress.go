package findings

import (
	"slices"
	"sort"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Matches reports whether a finding on a resource passes a filter. Each non-empty field must hold
// (AND); within a field any value may hold (OR); comparisons are exact (case-sensitive), as the
// API stores canonical values. Field by field:
//
//   - Accounts, Severities, Statuses, Types, ResourceIDs, FixAvailable, ExploitAvailable: the
//     finding's field equals one of the values. ResourceTypes uses the finding's resource type,
//     falling back to the resource's.
//   - VulnerabilityIDs: the finding's vulnerability ID or one of its related IDs (aliases, an
//     erratum's CVEs) equals one of the values, so a rule written for a GHSA also holds when the
//     finding is reported under its CVE.
//   - PackageNames and PackageVersions: one vulnerable package has one of the names (binary or
//     source package name) and — when both fields are set — that same package has one of the
//     versions (binary or source version). A finding's packages are alternatives, but name and
//     version are read together, as Inspector's PackageFilter does.
//   - ResourceTags: the resource carries one of the key=value pairs; an empty value matches any
//     value of the key. A nil resource carries no tags.
//   - ImageRepositories: the resource's image repository equals one of the values.
//   - EPSS, RiskScore: the score lies in the inclusive range; a finding without EPSS never
//     matches an EPSS range.
//   - FirstObserved, LastObserved: the time lies in the inclusive range.
func Matches(filter model.FindingFilter, f model.Finding, r *model.Resource) bool {
	if !oneOf(filter.Accounts, f.Account) || !oneOf(filter.Severities, f.Severity) ||
		!oneOf(filter.Statuses, f.Status) || !oneOf(filter.Types, f.Type) ||
		!oneOf(filter.ResourceIDs, f.ResourceID) || !oneOf(filter.FixAvailable, f.FixAvailable) ||
		!oneOf(filter.ExploitAvailable, f.ExploitAvailable) {
		return false
	}
	if len(filter.ResourceTypes) > 0 {
		typ := f.ResourceType
		if typ == "" && r != nil {
			typ = r.Type
		}
		if !slices.Contains(filter.ResourceTypes, typ) {
			return false
		}
	}
	if len(filter.VulnerabilityIDs) > 0 && !slices.Contains(filter.VulnerabilityIDs, f.VulnerabilityID) &&
		!slices.ContainsFunc(f.RelatedVulnerabilities, func(id string) bool { return slices.Contains(filter.VulnerabilityIDs, id) }) {
		return false
	}
	if len(filter.PackageNames) > 0 || len(filter.PackageVersions) > 0 {
		ok := false
		for _, p := range f.Packages {
			if (len(filter.PackageNames) == 0 || slices.Contains(filter.PackageNames, p.Name) || (p.SourceName != "" && slices.Contains(filter.PackageNames, p.SourceName))) &&
				(len(filter.PackageVersions) == 0 || slices.Contains(filter.PackageVersions, p.Version) || (p.SourceVersion != "" && slices.Contains(filter.PackageVersions, p.SourceVersion))) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(filter.ResourceTags) > 0 {
		if r == nil {
			return false
		}
		ok := false
		for k, v := range filter.ResourceTags {
			if have, present := r.Tags[k]; present && (v == "" || have == v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(filter.ImageRepositories) > 0 && (r == nil || !slices.Contains(filter.ImageRepositories, r.ImageRepository)) {
		return false
	}
	if filter.EPSS != nil && (f.EPSS == nil || !inNumber(*filter.EPSS, f.EPSS.Score)) {
		return false
	}
	if filter.RiskScore != nil && !inNumber(*filter.RiskScore, f.RiskScore.Score) {
		return false
	}
	if filter.FirstObserved != nil && !inTime(*filter.FirstObserved, f.FirstObservedAt) {
		return false
	}
	if filter.LastObserved != nil && !inTime(*filter.LastObserved, f.LastObservedAt) {
		return false
	}
	return true
}

func oneOf(values []string, v string) bool { return len(values) == 0 || slices.Contains(values, v) }

func inNumber(r model.NumberRange, v float64) bool {
	return (r.Min == nil || v >= *r.Min) && (r.Max == nil || v <= *r.Max)
}

func inTime(r model.TimeRange, t time.Time) bool {
	return (r.From == nil || !t.Before(*r.From)) && (r.To == nil || !t.After(*r.To))
}

// RuleActive reports whether a rule is in force at now: it expires at ExpiresAt (exclusive).
func RuleActive(rule model.SuppressionRule, now time.Time) bool {
	return rule.ExpiresAt == nil || now.Before(*rule.ExpiresAt)
}

// ApplyRules brings the suppression of a resource's findings in line with the rules in force:
// an ACTIVE finding that a rule matches becomes SUPPRESSED (evidence: the rule, its reason and
// expiry); a SUPPRESSED finding that no rule in force matches any more (the rule was deleted,
// changed or expired) becomes ACTIVE again; a SUPPRESSED finding whose governing rule changed gets
// the new evidence. CLOSED findings are left alone. Each change sets updatedAt = now and emits
// vigil.finding.updated. Rules are matched against the finding as if it were ACTIVE, so a rule's
// own effect does not undo it. When several rules match, the oldest (then lowest ID) is named.
//
// The caller passes the rules that govern the resource's account: its own and those of its
// organization's delegated administrator.
func ApplyRules(fs []model.Finding, rules []model.SuppressionRule, r *model.Resource, now time.Time) Result {
	b := newBuilderFor(now, len(fs))
	for _, f := range fs {
		b.keep(f)
	}
	applyRules(b, rules, r, now)
	return b.result()
}

func applyRules(b *builder, rules []model.SuppressionRule, r *model.Resource, now time.Time) {
	inForce := make([]model.SuppressionRule, 0, len(rules))
	for _, rule := range rules {
		if RuleActive(rule, now) {
			inForce = append(inForce, rule)
		}
	}
	sort.SliceStable(inForce, func(i, j int) bool {
		if !inForce[i].CreatedAt.Equal(inForce[j].CreatedAt) {
			return inForce[i].CreatedAt.Before(inForce[j].CreatedAt)
		}
		return inForce[i].ID < inForce[j].ID
	})
	// Each finding's decision is its own, so any order will do; b.change only rewrites entries
	// that already exist.
	for i := range b.ent {
		f := b.ent[i].f
		if f.Status == model.FindingClosed || (len(inForce) == 0 && f.Status != model.FindingSuppressed) {
			continue
		}
		view := f
		view.Status = model.FindingActive
		var match *model.SuppressionRule
		for i := range inForce {
			if Matches(inForce[i].Filter, view, r) {
				match = &inForce[i]
				break
			}
		}
		switch {
		case match != nil:
			ev := &model.SuppressionEvidence{Rule: match.ID, Reason: match.Reason, Until: match.ExpiresAt}
			if f.Status == model.FindingSuppressed && sameEvidence(f.Suppression, ev) {
				continue
			}
			f.Status, f.Suppression, f.UpdatedAt = model.FindingSuppressed, ev, now
			b.change(f, model.EventFindingUpdated)
		case f.Status == model.FindingSuppressed:
			f.Status, f.Suppression, f.UpdatedAt = model.FindingActive, nil, now
			b.change(f, model.EventFindingUpdated)
		}
	}
}

func sameEvidence(a, b *model.SuppressionEvidence) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Rule != b.Rule || a.Reason != b.Reason || (a.Until == nil) != (b.Until == nil) {
		return false
	}
	return a.Until == nil || a.Until.Equal(*b.Until)
}

// Process is one full pass for a resource: Reconcile, then ApplyRules, with one event per finding
// (a finding created already suppressed emits only vigil.finding.created, with its final state).
func Process(prev, current []model.Finding, rules []model.SuppressionRule, r *model.Resource, now time.Time, cfg Config) Result {
	b := newBuilderFor(now, len(prev)+len(current))
	reconcile(b, prev, current, now, cfg)
	applyRules(b, rules, r, now)
	return b.result()
}

// Observe is the pass for a resource whose findings cannot have changed (its inventory was
// resubmitted unchanged and no advisory changed since): every open finding is observed again
// (lastObservedAt = now, listed in Observed) and the rules are applied, so expired rules still lapse.
func Observe(prev []model.Finding, rules []model.SuppressionRule, r *model.Resource, now time.Time) Result {
	b := newBuilderFor(now, len(prev))
	for _, f := range prev {
		if f.Status != model.FindingClosed {
			f.LastObservedAt = now
			b.observe(f)
		} else {
			b.keep(f)
		}
	}
	applyRules(b, rules, r, now)
	return b.result()
}
