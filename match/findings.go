package match

import (
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/score"
	"github.com/vigil-sec/vigil/version"
)

// unionFind groups IDs that name the same vulnerability (a GHSA and its CVE, a GO ID and both).
type unionFind map[string]string

func (u unionFind) find(x string) string {
	for u[x] != x {
		u[x] = u[u[x]]
		x = u[x]
	}
	return x
}

func (u unionFind) add(x string) {
	if _, ok := u[x]; !ok {
		u[x] = x
	}
}

func (u unionFind) union(a, b string) {
	u.add(a)
	u.add(b)
	if ra, rb := u.find(a), u.find(b); ra != rb {
		u[ra] = rb
	}
}

// idRank orders ID kinds by preference as a finding's vulnerability ID: CVE, then GHSA, then the rest.
func idRank(id string) int {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return 0
	case strings.HasPrefix(id, "GHSA-"):
		return 1
	}
	return 2
}

// PrimaryID chooses the ID a group of aliases is reported under.
func PrimaryID(ids []string) string {
	best := ""
	for _, id := range ids {
		if best == "" || idRank(id) < idRank(best) || (idRank(id) == idRank(best) && id < best) {
			best = id
		}
	}
	return best
}

func (m *Matcher) findings(hits []hit, opts Options) ([]model.Finding, error) {
	uf := unionFind{}
	for _, h := range hits {
		uf.add(h.adv.ID)
		for _, al := range h.adv.Aliases {
			// Only aliases of a recognisable vulnerability-ID shape join groups; free text would merge unrelated records.
			if strings.Contains(al, "-") {
				uf.union(h.adv.ID, al)
			}
		}
	}
	groups := map[string][]hit{}
	members := map[string][]string{}
	for id := range uf {
		r := uf.find(id)
		members[r] = append(members[r], id)
	}
	for _, h := range hits {
		r := uf.find(h.adv.ID)
		groups[r] = append(groups[r], h)
	}
	var out []model.Finding
	for root, hs := range groups {
		ids := members[root]
		sort.Strings(ids)
		f, err := m.finding(PrimaryID(ids), ids, hs, opts)
		if err != nil {
			return nil, err
		}
		if opts.IgnoreUnfixed && f.FixAvailable == model.No {
			continue
		}
		out = append(out, f)
	}
	SortFindings(out)
	return out, nil
}

func (m *Matcher) finding(primary string, ids []string, hs []hit, opts Options) (model.Finding, error) {
	f := model.Finding{
		ID:               StableID(opts.Account, opts.Resource, model.FindingPackageVulnerability, primary),
		Type:             model.FindingPackageVulnerability,
		VulnerabilityID:  primary,
		Status:           model.FindingActive,
		ExploitAvailable: model.No,
	}
	for _, id := range ids {
		if id != primary {
			f.RelatedVulnerabilities = append(f.RelatedVulnerabilities, id)
		}
	}
	// One vulnerable package per installed package instance; several advisories may name it.
	type pkey struct{ eco, name, ver, loc string }
	pkgs := map[pkey]*model.VulnerablePackage{}
	var order []pkey
	advSeen := map[string]bool{}
	var vendorSev, vendorSrc, ecoSev, ecoSrc, details string
	var related []string // IDs named as related, not the same: an erratum's CVEs
	for _, h := range hs {
		p := h.pkg
		k := pkey{p.Ecosystem, p.Name, p.Version, first(p.Locations)}
		vp, ok := pkgs[k]
		if !ok {
			vp = &model.VulnerablePackage{Name: p.Name, Version: p.Version, Ecosystem: p.Ecosystem, PURL: p.PURL,
				SourceName: p.SourceName, SourceVersion: p.SourceVersion, Arch: p.Arch, FilePath: first(p.Locations),
				LayerDigest: p.LayerDigest}
			pkgs[k] = vp
			order = append(order, k)
		}
		vp.FixedInVersion = higherFix(p.Ecosystem, vp.FixedInVersion, h.fixed)
		a := h.adv
		if ak := a.Source + ":" + a.ID; !advSeen[ak] {
			advSeen[ak] = true
			related = append(related, a.Related...)
			f.Advisories = append(f.Advisories, model.AdvisoryRef{Source: a.Source, ID: a.ID, Note: a.Note})
			f.CVSS = append(f.CVSS, a.CVSS...)
			f.CWEs = append(f.CWEs, a.CWEs...)
			f.References = append(f.References, a.References...)
		}
		if a.Severity != "" && a.Severity != model.SeverityUntriaged {
			if IsOS(a.Ecosystem) && vendorSev == "" {
				vendorSev, vendorSrc = a.Severity, a.Source
			} else if !IsOS(a.Ecosystem) && ecoSev == "" {
				ecoSev, ecoSrc = a.Severity, a.Source
			}
		}
		if details == "" {
			details = firstNonEmpty(a.Summary, a.Details)
		}
	}
	fixed := 0
	var names []string
	for _, k := range order {
		vp := pkgs[k]
		if vp.FixedInVersion != "" {
			fixed++
		}
		f.Packages = append(f.Packages, *vp)
		names = append(names, vp.Name)
	}
	switch {
	case fixed == len(order):
		f.FixAvailable = model.Yes
	case fixed == 0:
		f.FixAvailable = model.No
	default:
		f.FixAvailable = model.Partial
	}

	// Enrichment: the primary ID and any CVE among the aliases.
	var nvdCVSS []model.CVSS
	for _, id := range ids {
		if id != primary && !strings.HasPrefix(id, "CVE-") {
			continue
		}
		v, err := m.store.Vulnerability(id)
		if err != nil {
			return f, err
		}
		if v == nil {
			continue
		}
		if f.Description == "" {
			f.Description = v.Description
		}
		nvdCVSS = append(nvdCVSS, v.CVSS...)
		f.CWEs = append(f.CWEs, v.CWEs...)
		f.References = append(f.References, v.References...)
		if v.EPSS != nil && (f.EPSS == nil || v.EPSS.Score > f.EPSS.Score) {
			f.EPSS = v.EPSS
		}
		if v.KEV != nil {
			f.KEV = v.KEV
			f.ExploitAvailable = model.Yes
		}
	}
	// An erratum's related CVEs are listed, and their exploitation evidence counts for the erratum:
	// installing it is how those CVEs get fixed. Their descriptions and CVSS stay theirs.
	inGroup := map[string]bool{}
	for _, id := range ids {
		inGroup[id] = true
	}
	for _, id := range dedup(related) {
		if inGroup[id] {
			continue
		}
		f.RelatedVulnerabilities = append(f.RelatedVulnerabilities, id)
		if !strings.HasPrefix(id, "CVE-") {
			continue
		}
		v, err := m.store.Vulnerability(id)
		if err != nil {
			return f, err
		}
		if v == nil {
			continue
		}
		if v.EPSS != nil && (f.EPSS == nil || v.EPSS.Score > f.EPSS.Score) {
			f.EPSS = v.EPSS
		}
		if v.KEV != nil && f.KEV == nil {
			f.KEV = v.KEV
			f.ExploitAvailable = model.Yes
		}
	}
	if f.Description == "" {
		f.Description = details
	}
	f.CVSS = append(nvdCVSS, f.CVSS...)
	for i := range f.CVSS {
		if f.CVSS[i].Vector != "" {
			score.Normalize(&f.CVSS[i])
		}
	}
	f.CVSS = dedupCVSS(f.CVSS)
	f.CWEs = dedup(f.CWEs)
	f.References = dedup(f.References)

	// Severity: the OS vendor's own rating for OS packages, else the NVD's, else the ecosystem advisory's.
	switch {
	case vendorSev != "":
		f.Severity, f.SeveritySource = vendorSev, vendorSrc
	default:
		if b, ok := bestFrom(f.CVSS, "nvd"); ok {
			f.Severity, f.SeveritySource = score.Severity(b.Version, b.Score), "nvd"
		} else if ecoSev != "" {
			f.Severity, f.SeveritySource = ecoSev, ecoSrc
		} else if b, ok := score.Base(f.CVSS); ok {
			f.Severity, f.SeveritySource = score.Severity(b.Version, b.Score), b.Source
		} else {
			f.Severity = model.SeverityUntriaged
		}
	}
	f.Title = primary + " - " + strings.Join(dedup(names), ", ")
	score.Risk(&f, opts.Exposure)
	return f, nil
}

func bestFrom(cvss []model.CVSS, source string) (model.CVSS, bool) {
	var sub []model.CVSS
	for _, c := range cvss {
		if c.Source == source {
			sub = append(sub, c)
		}
	}
	return score.Base(sub)
}

// higherFix keeps the higher of two fixed versions: every advisory naming the package must be satisfied.
func higherFix(eco, a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	if s, ok := version.Lookup(eco); ok {
		if c, err := version.Compare(s, a, b); err == nil && c < 0 {
			return b
		}
	}
	return a
}

// SortFindings orders findings by risk, then severity, then ID.
func SortFindings(fs []model.Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.RiskScore.Score != b.RiskScore.Score {
			return a.RiskScore.Score > b.RiskScore.Score
		}
		if score.Rank(a.Severity) != score.Rank(b.Severity) {
			return score.Rank(a.Severity) > score.Rank(b.Severity)
		}
		return a.VulnerabilityID < b.VulnerabilityID
	})
}

func dedupCVSS(in []model.CVSS) []model.CVSS {
	seen := map[string]bool{}
	var out []model.CVSS
	for _, c := range in {
		k := c.Source + "|" + c.Vector
		if c.Vector == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, c)
	}
	return out
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
