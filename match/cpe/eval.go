package cpe

import (
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Vuln is one vulnerability's NVD configurations, as the database returns them for a (vendor,
// product) lookup.
type Vuln struct {
	ID             string
	Configurations []model.CPEConfig
}

// Store answers which vulnerabilities name a vendor and product in a vulnerable criterion. Vendor
// and product are in formatted-string spelling, lower case (Name[Vendor], Name[Product]).
type Store interface {
	CPEVulns(vendor, product string) ([]Vuln, error)
}

// Target is one CPE name a resource is known by, with the package it stands for (nil for the OS).
type Target struct {
	Name    Name
	Package *model.Package
}

// Hit is a package that a vulnerable criterion of a satisfied configuration names.
type Hit struct {
	Package *model.Package
	ID      string
	// Criterion is the cpeMatch that named the package, and Name the package's CPE it matched.
	Criterion model.CPEMatch
	Name      Name
	// Fixed is the criterion's versionEndExcluding: the first version outside the range. Empty
	// when the range ends inclusively or the criterion names one version.
	Fixed string
}

// Describe says what matched, for a finding's advisory note.
func (h Hit) Describe() string {
	c := h.Criterion
	var r []string
	if c.VersionStartIncluding != "" {
		r = append(r, ">= "+c.VersionStartIncluding)
	}
	if c.VersionStartExcluding != "" {
		r = append(r, "> "+c.VersionStartExcluding)
	}
	if c.VersionEndIncluding != "" {
		r = append(r, "<= "+c.VersionEndIncluding)
	}
	if c.VersionEndExcluding != "" {
		r = append(r, "< "+c.VersionEndExcluding)
	}
	s := "CPE match: " + c.Criteria
	if len(r) > 0 {
		s += " (" + strings.Join(r, ", ") + ")"
	}
	return s + " by " + h.Name.String()
}

// criterion is a parsed cpeMatch.
type criterion struct {
	m    model.CPEMatch
	name Name
	ok   bool // the criteria string parsed
}

// Evaluator evaluates configurations against the CPE names of one resource. Build one per
// resource with NewEvaluator.
type Evaluator struct {
	// by vendor:product, the names known on the resource
	byProduct map[string][]Target
	parsed    map[string]criterion
}

// NewEvaluator indexes a resource's CPE names: its packages' (matched and used as "running with"
// context) and its OS's (context only).
func NewEvaluator(targets []Target) *Evaluator {
	e := &Evaluator{byProduct: map[string][]Target{}, parsed: map[string]criterion{}}
	for _, t := range targets {
		k := ProductKey(t.Name[Vendor], t.Name[Product])
		e.byProduct[k] = append(e.byProduct[k], t)
	}
	return e
}

func (e *Evaluator) crit(m model.CPEMatch) criterion {
	if c, ok := e.parsed[m.Criteria]; ok {
		c.m = m
		return c
	}
	n, err := Parse(m.Criteria)
	c := criterion{m: m, name: n, ok: err == nil}
	e.parsed[m.Criteria] = c
	return c
}

// Evaluate returns the hits of one vulnerability on the resource. A configuration holds when its
// node tree is true over the resource's names, where:
//   - a vulnerable criterion is true when a package's name matches it (Matches); the OS never
//     counts here, so "Debian 8 is vulnerable" entries (the OS shipping a vulnerable library)
//     never turn the OS itself into a finding;
//   - a non-vulnerable criterion (the platform a vulnerable product runs on or with: an OS, a
//     device, a runtime) is true only when the resource is known to have it: the OS's name or a
//     package's matches it. An unknown platform counts as absent, so AND configurations whose
//     platform Vigil cannot see (firmware on a device, Windows) do not match: false alarms are
//     the known weakness of CPE matching, and this errs towards silence;
//   - AND/OR join a node's criteria and a configuration's nodes; negate inverts.
//
// Every package matching a vulnerable criterion of a non-negated node of a holding configuration
// is a hit (once per package).
func (e *Evaluator) Evaluate(v Vuln) []Hit {
	var out []Hit
	seen := map[*model.Package]bool{}
	for _, cfg := range v.Configurations {
		if !e.config(cfg) {
			continue
		}
		for _, n := range cfg.Nodes {
			if n.Negate {
				continue
			}
			for _, m := range n.Matches {
				if !m.Vulnerable {
					continue
				}
				c := e.crit(m)
				for _, t := range e.targets(c, true) {
					if seen[t.Package] {
						continue
					}
					seen[t.Package] = true
					out = append(out, Hit{Package: t.Package, ID: v.ID, Criterion: m, Name: t.Name, Fixed: m.VersionEndExcluding})
				}
			}
		}
	}
	return out
}

func (e *Evaluator) config(cfg model.CPEConfig) bool {
	if len(cfg.Nodes) == 0 {
		return false
	}
	and := strings.EqualFold(cfg.Operator, "AND")
	res := and
	for _, n := range cfg.Nodes {
		v := e.node(n)
		if and && !v {
			res = false
			break
		}
		if !and && v {
			res = true
			break
		}
	}
	return res != cfg.Negate
}

func (e *Evaluator) node(n model.CPENode) bool {
	if len(n.Matches) == 0 {
		return n.Negate // an empty node says nothing; as NVD never writes one, keep it neutral-false
	}
	and := strings.EqualFold(n.Operator, "AND")
	res := and
	for _, m := range n.Matches {
		v := len(e.targets(e.crit(m), m.Vulnerable)) > 0
		if and && !v {
			res = false
			break
		}
		if !and && v {
			res = true
			break
		}
	}
	return res != n.Negate
}

// targets returns the resource's names a criterion matches: package names only for a vulnerable
// criterion, any name (OS included) for a platform one.
func (e *Evaluator) targets(c criterion, vulnerable bool) []Target {
	if !c.ok {
		return nil
	}
	var out []Target
	for _, t := range e.byProduct[ProductKey(c.name[Vendor], c.name[Product])] {
		if vulnerable && t.Package == nil {
			continue
		}
		eco := ""
		if t.Package != nil {
			eco = t.Package.Ecosystem
		}
		if Matches(c.m, c.name, t.Name, targetVersion(t), eco) {
			out = append(out, t)
		}
	}
	return out
}

// targetVersion is the version a target is compared at: its CPE's version when it states one,
// else its package's version.
func targetVersion(t Target) string {
	if v := t.Name[Version]; v != Any && v != NA {
		return Unescape(v)
	}
	if t.Package != nil {
		return t.Package.Version
	}
	return ""
}

// Matches reports whether a name (at version ver, of a package of ecosystem eco, "" when not a
// package) satisfies one cpeMatch criterion whose parsed criteria string is crit:
//   - part, vendor, product, edition, language, sw_edition, target_hw and other must match
//     (attrMatch: ANY in the criterion matches anything; a value the name leaves ANY does not
//     match a specific value);
//   - target_sw likewise, except that a name without one matches a criterion's target_sw that the
//     package's ecosystem runs on (npm → node.js, PyPI → python, ...): NVD qualifies library
//     CPEs with their runtime, SBOM tools rarely do;
//   - version: a criterion with version ANY takes its versionStart*/versionEnd* bounds (none: every
//     version) compared with CompareVersions; NA matches only NA; a value must equal the name's
//     version (CompareVersions = 0, or the glob when it has wildcards), and a criterion's update
//     must match the name's update, or else be the tail of the name's version ("2.0-beta9" matches
//     version 2.0 update beta9).
func Matches(m model.CPEMatch, crit, have Name, ver, eco string) bool {
	for _, a := range []int{Part, Vendor, Product, Edition, Language, SWEdition, TargetHW, Other} {
		if !attrMatch(crit[a], have[a]) {
			return false
		}
	}
	if !attrMatch(crit[TargetSW], have[TargetSW]) && !(have[TargetSW] == Any && runsOn(crit[TargetSW], eco)) {
		return false
	}
	return versionMatch(m, crit, have, ver)
}

// runtimes are the target_sw values NVD gives libraries of each ecosystem.
var runtimes = map[string][]string{
	model.EcoNPM:       {"node.js", "nodejs"},
	model.EcoPyPI:      {"python"},
	model.EcoRubyGems:  {"ruby", "rails", "ruby_on_rails"},
	model.EcoPackagist: {"php"},
	model.EcoNuGet:     {".net", "asp.net", ".net_core"},
	model.EcoGo:        {"go", "golang"},
	model.EcoCrates:    {"rust"},
	model.EcoMaven:     {"java"},
}

func runsOn(targetSW, eco string) bool {
	for _, r := range runtimes[eco] {
		if targetSW == r {
			return true
		}
	}
	return false
}

func versionMatch(m model.CPEMatch, crit, have Name, ver string) bool {
	cv := crit[Version]
	switch cv {
	case NA:
		return have[Version] == NA
	case Any:
		// A name without an update has it in its version string, if at all: NA for this purpose.
		if hu := have[Update]; !attrMatch(crit[Update], hu) && !(hu == Any && crit[Update] == NA) {
			return false
		}
		if ver == "" {
			return m.VersionStartIncluding == "" && m.VersionStartExcluding == "" && m.VersionEndIncluding == "" && m.VersionEndExcluding == ""
		}
		if have[Update] != Any && have[Update] != NA {
			ver += "-" + Unescape(have[Update])
		}
		return inRange(m, ver)
	}
	if ver == "" {
		return false
	}
	cu := crit[Update]
	if hasWildcard(cv) {
		if !glob(cv, Escape(ver)) {
			return false
		}
		return attrMatch(cu, have[Update])
	}
	want := Unescape(cv)
	switch {
	case cu == Any:
		return CompareVersions(ver, want) == 0
	case cu == NA:
		return CompareVersions(ver, want) == 0 && (have[Update] == NA || have[Update] == Any)
	case have[Update] != Any && have[Update] != NA:
		return CompareVersions(ver, want) == 0 && attrMatch(cu, have[Update])
	}
	// The name has no update: its version may carry it ("2.0-beta9", "2.0.beta9", "2.0beta9").
	return CompareVersions(ver, want+"-"+Unescape(cu)) == 0
}

// inRange applies a criterion's version bounds.
func inRange(m model.CPEMatch, ver string) bool {
	if m.VersionStartIncluding != "" && CompareVersions(ver, m.VersionStartIncluding) < 0 {
		return false
	}
	if m.VersionStartExcluding != "" && CompareVersions(ver, m.VersionStartExcluding) <= 0 {
		return false
	}
	if m.VersionEndIncluding != "" && CompareVersions(ver, m.VersionEndIncluding) > 0 {
		return false
	}
	if m.VersionEndExcluding != "" && CompareVersions(ver, m.VersionEndExcluding) >= 0 {
		return false
	}
	return true
}
