// Package score rates findings: CVSS vectors parsed with github.com/pandatix/go-cvss, the severity
// chosen by source precedence, and a 0–10 risk score that starts from the CVSS base score and records
// every adjustment with its reason.
package score

import (
	"fmt"
	"math"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/vigil-sec/vigil/model"
)

// Parse parses a CVSS vector of any version and returns its version ("2.0", "3.0", "3.1", "4.0")
// and base score. Version 2 vectors come with or without the "(AV:…)" parentheses.
func Parse(vector string) (version string, base float64, err error) {
	v := strings.TrimSpace(vector)
	switch {
	case strings.HasPrefix(v, "CVSS:4.0/"):
		c, err := gocvss40.ParseVector(v)
		if err != nil {
			return "", 0, fmt.Errorf("cvss 4.0 vector %q: %w", vector, err)
		}
		return "4.0", c.Score(), nil
	case strings.HasPrefix(v, "CVSS:3.1/"):
		c, err := gocvss31.ParseVector(v)
		if err != nil {
			return "", 0, fmt.Errorf("cvss 3.1 vector %q: %w", vector, err)
		}
		return "3.1", c.BaseScore(), nil
	case strings.HasPrefix(v, "CVSS:3.0/"):
		c, err := gocvss30.ParseVector(v)
		if err != nil {
			return "", 0, fmt.Errorf("cvss 3.0 vector %q: %w", vector, err)
		}
		return "3.0", c.BaseScore(), nil
	default:
		v = strings.TrimSuffix(strings.TrimPrefix(v, "("), ")")
		c, err := gocvss20.ParseVector(v)
		if err != nil {
			return "", 0, fmt.Errorf("cvss vector %q: %w", vector, err)
		}
		return "2.0", c.BaseScore(), nil
	}
}

// Normalize fills a CVSS entry's version and score from its vector when they are missing or
// disagree with it, and reports whether the vector is usable.
func Normalize(c *model.CVSS) bool {
	ver, base, err := Parse(c.Vector)
	if err != nil {
		return false
	}
	c.Version, c.Score = ver, base
	return true
}

// Severity maps a CVSS base score to Vigil's severity scale. Version 2 has no CRITICAL band.
func Severity(version string, base float64) string {
	switch {
	case base == 0:
		return model.SeverityInformational
	case base < 4:
		return model.SeverityLow
	case base < 7:
		return model.SeverityMedium
	case version == "2.0" || base < 9:
		return model.SeverityHigh
	default:
		return model.SeverityCritical
	}
}

// versionRank orders CVSS versions by preference for the base score: v3.1 is what most sources
// publish and what users compare against; v4.0 next; v2 last.
func versionRank(v string) int {
	switch v {
	case "3.1":
		return 4
	case "3.0":
		return 3
	case "4.0":
		return 2
	case "2.0":
		return 1
	}
	return 0
}

// sourceRank orders CVSS sources: the NVD first (a common yardstick), then the ecosystem advisories.
func sourceRank(s string) int {
	switch s {
	case "nvd":
		return 3
	case "ghsa", "osv":
		return 2
	}
	return 1
}

// Base picks the CVSS entry the risk score starts from: the best-ranked source, then version.
func Base(cvss []model.CVSS) (model.CVSS, bool) {
	var best model.CVSS
	found := false
	for _, c := range cvss {
		if c.Vector != "" && !Normalize(&c) {
			continue
		}
		if c.Score == 0 && c.Vector == "" {
			continue
		}
		if !found || sourceRank(c.Source) > sourceRank(best.Source) ||
			(sourceRank(c.Source) == sourceRank(best.Source) && versionRank(c.Version) > versionRank(best.Version)) {
			best, found = c, true
		}
	}
	return best, found
}

// Context is what is known about the resource beyond the package (the server fills it).
type Context struct {
	// NetworkExposed is nil when unknown; otherwise whether the vulnerable software listens on a port
	// reachable from outside the host.
	NetworkExposed *bool
	ExposedPorts   string
}

// Adjustments are fixed, documented steps so that a score can be explained in one line each.
const (
	KEVBoost        = 2.0  // known exploited in the wild (CISA KEV)
	HighEPSSBoost   = 1.0  // EPSS probability >= HighEPSS
	HighEPSS        = 0.5  // the EPSS probability that counts as likely exploitation
	LowEPSSPenalty  = -0.5 // EPSS probability < LowEPSS and not known exploited
	LowEPSS         = 0.01 //
	NoFixPenalty    = -0.5 // nothing to upgrade to yet: ranks below fixable issues of equal severity
	NotExposedDelta = -1.0 // the server knows the software is not reachable from the network
	ExposedBoost    = 0.5  // reachable from outside the host
)

// Risk computes a finding's risk score from its base CVSS, exploitation evidence, fix availability
// and, when known, network exposure. It also sets Severity when the finding has none.
func Risk(f *model.Finding, ctx Context) {
	rs := model.RiskScore{}
	if b, ok := Base(f.CVSS); ok {
		rs.Base, rs.BaseSource, rs.BaseVector = b.Score, b.Source+" CVSS "+b.Version, b.Vector
	} else {
		// Without a vector, start from the middle of the severity band the vendor gave; an unrated
		// vulnerability starts mid-scale, since unknown is not the same as harmless.
		rs.Base = bandMiddle(f.Severity)
		rs.BaseSource = "severity " + f.Severity
		if f.Severity == "" || f.Severity == model.SeverityUntriaged {
			rs.BaseSource = "no CVSS vector or vendor rating: neutral mid-scale"
		}
	}
	score := rs.Base
	add := func(factor string, d float64, reason string) {
		rs.Adjustments = append(rs.Adjustments, model.Adjustment{Factor: factor, Delta: d, Reason: reason})
		score += d
	}
	switch {
	case f.KEV != nil:
		add("exploitation", KEVBoost, fmt.Sprintf("known exploited: in CISA KEV since %s", f.KEV.DateAdded.Format("2006-01-02")))
	case f.EPSS != nil && f.EPSS.Score >= HighEPSS:
		add("exploitation", HighEPSSBoost, fmt.Sprintf("EPSS %.3f (percentile %.2f): exploitation likely", f.EPSS.Score, f.EPSS.Percentile))
	case f.EPSS != nil && f.EPSS.Score < LowEPSS:
		add("exploitation", LowEPSSPenalty, fmt.Sprintf("EPSS %.4f (percentile %.2f): exploitation unlikely in the next 30 days", f.EPSS.Score, f.EPSS.Percentile))
	}
	if f.FixAvailable == model.No {
		add("fix", NoFixPenalty, "no fixed version is available yet")
	}
	if ctx.NetworkExposed != nil {
		if *ctx.NetworkExposed {
			add("network", ExposedBoost, "reachable from the network: "+ctx.ExposedPorts)
		} else {
			add("network", NotExposedDelta, "not reachable from the network")
		}
	}
	rs.Score = math.Round(min(10, max(0, score))*10) / 10
	f.RiskScore = rs
}

func bandMiddle(sev string) float64 {
	switch sev {
	case model.SeverityCritical:
		return 9.5
	case model.SeverityHigh:
		return 8.0
	case model.SeverityMedium:
		return 5.5
	case model.SeverityLow:
		return 2.0
	case model.SeverityInformational:
		return 0
	}
	return 5.0
}

// Rank orders severities for sorting and thresholds (higher is worse); unknown names rank 0.
func Rank(sev string) int {
	switch strings.ToUpper(sev) {
	case model.SeverityCritical:
		return 5
	case model.SeverityHigh:
		return 4
	case model.SeverityMedium:
		return 3
	case model.SeverityLow:
		return 2
	case model.SeverityInformational:
		return 1
	case model.SeverityUntriaged:
		return 1
	}
	return 0
}
