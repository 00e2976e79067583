// Package match turns an inventory into findings: it asks the vulnerability database which advisories
// affect each package, evaluates their version ranges with the ecosystem's own comparison, merges
// aliases into one finding per vulnerability, and scores each finding. It is the third step of
// source → inventory → match → findings → events, and serves the CLI and the server alike.
package match

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/match/cpe"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/score"
	"github.com/vigil-sec/vigil/version"
)

// Store is what the matcher needs from the vulnerability database.
type Store interface {
	// Advisories returns the advisories for one package of one ecosystem. For OS ecosystems the name
	// is a source package name (or a binary one for vendors that key on those).
	Advisories(ecosystem, name string) ([]model.Advisory, error)
	// Vulnerability returns what enrichment sources know of an ID, or nil.
	Vulnerability(id string) (*model.Vulnerability, error)
}

// Options tune a match.
type Options struct {
	// IgnoreUnfixed drops findings for which no package has a fix.
	IgnoreUnfixed bool
	// Account and Resource go into stable finding IDs; the CLI leaves Account empty.
	Account, Resource string
	// Exposure is passed to the risk score.
	Exposure score.Context
	// CPE turns on matching against NVD's CPE configurations (off by default).
	CPE CPEOptions
}

// CPEOptions configure the opt-in CPE matching (see match/cpe and docs/matching.md). NVD is
// otherwise enrichment only; its CPE applicability is broader and noisier than vendor and
// ecosystem advisories, so it runs only when asked for.
type CPEOptions struct {
	// Enabled matches packages that carry CPEs (from an SBOM), and generated candidates for Java
	// archives, against NVD configurations. The store must implement CPEStore.
	Enabled bool
	// OSPackages also CPE-matches OS packages; off, they match only their vendor's advisories.
	OSPackages bool
}

// CPEStore is what CPE matching needs from the store: the vulnerabilities whose configurations
// name a (vendor, product). Stores without NVD configurations need not implement it.
type CPEStore = cpe.Store

// CPESource is the advisory Source of CPE-match hits: "nvd-cpe", so a finding shows that NVD's
// configurations, not a vendor or ecosystem advisory, produced the hit.
const CPESource = "nvd-cpe"

// Result is the outcome of one match.
type Result struct {
	Findings []model.Finding
	// Warnings are packages that could not be evaluated (an unparseable version, an unknown scheme).
	Warnings []string
}

// Matcher matches inventories against a store.
type Matcher struct {
	store Store
	parse *parseCache // nil unless WithParseCache
}

// New returns a matcher over a store.
func New(store Store) *Matcher { return &Matcher{store: store} }

// hit is one package affected by one advisory.
type hit struct {
	pkg   *model.Package
	adv   *model.Advisory
	fixed string
}

// Match evaluates every package of the inventory.
func (m *Matcher) Match(ctx context.Context, inv *model.Inventory, opts Options) (*Result, error) {
	res := &Result{}
	var hits []hit
	for i := range inv.Packages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := &inv.Packages[i]
		h, warn, err := m.Package(p)
		if err != nil {
			return nil, err
		}
		if warn != "" {
			res.Warnings = append(res.Warnings, warn)
		}
		hits = append(hits, h...)
	}
	if opts.CPE.Enabled {
		h, warns, err := m.CPEHits(inv, opts.CPE)
		if err != nil {
			return nil, err
		}
		res.Warnings = append(res.Warnings, warns...)
		hits = append(hits, h...)
	}
	fs, err := m.findings(hits, opts)
	if err != nil {
		return nil, err
	}
	res.Findings = fs
	return res, nil
}

// IsOS reports whether an ecosystem is an OS vendor's ("Debian:12", "Alpine:v3.20", "AlmaLinux:9").
func IsOS(ecosystem string) bool { return strings.Contains(ecosystem, ":") }

// lookupKey is one (name, version) under which a package is looked up.
type lookupKey struct{ name, version string }

// keys returns the names a package is looked up under. OS vendors key their advisories on the
// source package (Debian, Ubuntu, Alpine) with the source version; rpm-based vendors' OSV records
// name binary packages, so those are looked up under both.
func keys(p *model.Package) []lookupKey {
	if !IsOS(p.Ecosystem) {
		return []lookupKey{{NormalizeName(p.Ecosystem, p.Name), p.Version}}
	}
	var out []lookupKey
	if p.SourceName != "" {
		v := p.SourceVersion
		if v == "" {
			v = p.Version
		}
		out = append(out, lookupKey{p.SourceName, v})
	}
	family := strings.SplitN(p.Ecosystem, ":", 2)[0]
	if p.SourceName == "" || (p.SourceName != p.Name && family != "Debian" && family != "Ubuntu" && family != "Alpine") {
		out = append(out, lookupKey{p.Name, p.Version})
	}
	return out
}

// NormalizeName applies the ecosystem's name-equivalence rule (PEP 503 for PyPI).
func NormalizeName(ecosystem, name string) string {
	if ecosystem == model.EcoPyPI {
		var b strings.Builder
		dash := false
		for _, r := range strings.ToLower(name) {
			if r == '-' || r == '_' || r == '.' {
				if !dash {
					b.WriteByte('-')
				}
				dash = true
				continue
			}
			dash = false
			b.WriteRune(r)
		}
		return b.String()
	}
	return name
}

// Package returns the advisories affecting one package. A package that cannot be evaluated yields a
// warning, not an error; errors come only from the store.
func (m *Matcher) Package(p *model.Package) ([]hit, string, error) {
	scheme, ok := version.Lookup(p.Ecosystem)
	if !ok {
		return nil, "", nil // no advisories exist for ecosystems without a version scheme
	}
	if m.parse != nil {
		scheme = cachedScheme{scheme, m.parse}
	}
	var out []hit
	seen := map[string]bool{}
	var warn string
	for _, k := range keys(p) {
		advs, err := m.store.Advisories(p.Ecosystem, k.name)
		if err != nil {
			return nil, "", fmt.Errorf("looking up %s %s: %w", p.Ecosystem, k.name, err)
		}
		if len(advs) == 0 {
			continue
		}
		if k.version == "(devel)" {
			continue // a Go module built from a checkout: no release to compare, nothing to report
		}
		v, err := scheme.Parse(k.version)
		if err != nil {
			warn = fmt.Sprintf("%s %s %s: version not comparable (%v); not matched", p.Ecosystem, p.Name, k.version, err)
			continue
		}
		for i := range advs {
			a := &advs[i]
			if a.Withdrawn != nil {
				continue
			}
			key := a.Source + "\x00" + a.ID + "\x00" + a.Package
			if seen[key] {
				continue
			}
			affected, fixed := Affected(scheme, v, k.version, a)
			if affected {
				seen[key] = true
				out = append(out, hit{pkg: p, adv: a, fixed: fixed})
			}
		}
	}
	return out, warn, nil
}

// Affected evaluates an advisory against a parsed version with OSV semantics: explicit versions,
// then ECOSYSTEM and SEMVER ranges (GIT ranges cannot be evaluated against a version number and are
// ignored). It returns the fixed version that would remove the vulnerability, if there is one.
func Affected(s version.Scheme, v version.Version, raw string, a *model.Advisory) (bool, string) {
	if a.Unfixed {
		return true, ""
	}
	for _, lv := range a.Versions {
		if lv == raw {
			return true, nextFixed(s, v, a)
		}
		if pv, err := s.Parse(lv); err == nil && pv.Compare(v) == 0 {
			return true, nextFixed(s, v, a)
		}
	}
	for _, r := range a.Ranges {
		if r.Type == model.RangeGit {
			continue
		}
		if ok, fixed := inRange(s, v, r); ok {
			return true, fixed
		}
	}
	return false, ""
}

type event struct {
	kind string // introduced, fixed, last_affected, limit
	raw  string
	v    version.Version // nil for introduced "0"
}

// inRange walks a range's events in version order: introduced opens, fixed and limit close at the
// version, last_affected closes after it.
func inRange(s version.Scheme, v version.Version, r model.Range) (bool, string) {
	evs := make([]event, 0, len(r.Events))
	for _, e := range r.Events {
		var ev event
		switch {
		case e.Introduced != "":
			ev = event{kind: "introduced", raw: e.Introduced}
		case e.Fixed != "":
			ev = event{kind: "fixed", raw: e.Fixed}
		case e.LastAffected != "":
			ev = event{kind: "last_affected", raw: e.LastAffected}
		case e.Limit != "":
			ev = event{kind: "limit", raw: e.Limit}
		default:
			continue
		}
		if !(ev.kind == "introduced" && ev.raw == "0") && !(ev.kind == "limit" && ev.raw == "*") {
			pv, err := s.Parse(ev.raw)
			if err != nil {
				continue // an unparseable bound cannot be evaluated; skipping it errs towards the other events
			}
			ev.v = pv
		}
		evs = append(evs, ev)
	}
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if a.v == nil || b.v == nil {
			return a.v == nil && b.v != nil
		}
		return a.v.Compare(b.v) < 0
	})
	affected := false
	fixed := ""
	for _, e := range evs {
		switch e.kind {
		case "introduced":
			if e.v == nil || v.Compare(e.v) >= 0 {
				affected = true
			}
		case "fixed":
			if v.Compare(e.v) >= 0 {
				affected = false
			}
		case "last_affected":
			if v.Compare(e.v) > 0 {
				affected = false
			}
		case "limit":
			if e.v != nil && v.Compare(e.v) >= 0 {
				affected = false
			}
		}
	}
	if !affected {
		return false, ""
	}
	// The fix is the first fixed event above the installed version.
	for _, e := range evs {
		if e.kind == "fixed" && v.Compare(e.v) < 0 {
			fixed = e.raw
			break
		}
	}
	return true, fixed
}

func nextFixed(s version.Scheme, v version.Version, a *model.Advisory) string {
	for _, r := range a.Ranges {
		if _, f := inRange(s, v, r); f != "" {
			return f
		}
	}
	return ""
}

// StableID derives a finding's ID from what identifies it, so that a rescan updates it.
func StableID(account, resource, typ, vulnID string) string {
	h := sha256.Sum256([]byte(account + "\x00" + resource + "\x00" + typ + "\x00" + vulnID))
	return "vf-" + hex.EncodeToString(h[:12])
}

// CPEHits returns the hits of NVD's configurations on an inventory's packages (see match/cpe).
// Each becomes an advisory of source CPESource whose ID is the CVE, so it joins, by alias, the
// finding a vendor or ecosystem advisory of the same CVE makes: one finding per vulnerability.
func (m *Matcher) CPEHits(inv *model.Inventory, o CPEOptions) ([]Hit, []string, error) {
	cs, ok := m.store.(CPEStore)
	if !ok {
		return nil, nil, fmt.Errorf("CPE matching: the vulnerability store holds no CPE configurations")
	}
	chs, warns, err := cpe.Match(cs, inv, cpe.Options{OSPackages: o.OSPackages})
	if err != nil {
		return nil, nil, err
	}
	out := make([]Hit, 0, len(chs))
	for _, h := range chs {
		a := &model.Advisory{Source: CPESource, ID: h.ID, Ecosystem: h.Package.Ecosystem, Package: h.Package.Name,
			Note: h.Describe(), Severity: model.SeverityUntriaged}
		out = append(out, hit{pkg: h.Package, adv: a, fixed: h.Fixed})
	}
	return out, warns, nil
}
