// Package scan writes the result of `vigil scan`: a table for people, JSON for programs, SARIF 2.1.0
// for code-scanning dashboards and CycloneDX 1.6 with vulnerabilities for SBOM tooling.
package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/report/sbom"
	"github.com/vigil-sec/vigil/score"
)

// Report is one scanned target and its findings.
type Report struct {
	Target   model.SourceInfo `json:"target"`
	OS       *model.OS        `json:"os,omitempty"`
	Findings []model.Finding  `json:"findings"`
	Summary  Summary          `json:"summary"`
	Warnings []string         `json:"warnings,omitempty"`
	// Inventory is kept for formats that list every component (CycloneDX).
	Inventory *model.Inventory `json:"-"`
	ScannedAt time.Time        `json:"scannedAt"`
	Database  any              `json:"database,omitempty"`
}

// Summary counts active findings per severity, and suppressed ones.
type Summary struct {
	Critical, High, Medium, Low, Informational, Untriaged int
	Suppressed                                            int
	Packages                                              int
}

// MarshalJSON writes the summary with lower-case keys.
func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]int{"critical": s.Critical, "high": s.High, "medium": s.Medium, "low": s.Low,
		"informational": s.Informational, "untriaged": s.Untriaged, "suppressed": s.Suppressed, "packages": s.Packages})
}

// Summarize counts a report's findings.
func Summarize(r *Report) {
	s := Summary{}
	if r.Inventory != nil {
		s.Packages = len(r.Inventory.Packages)
	}
	for _, f := range r.Findings {
		if f.Status == model.FindingSuppressed {
			s.Suppressed++
			continue
		}
		switch f.Severity {
		case model.SeverityCritical:
			s.Critical++
		case model.SeverityHigh:
			s.High++
		case model.SeverityMedium:
			s.Medium++
		case model.SeverityLow:
			s.Low++
		case model.SeverityInformational:
			s.Informational++
		default:
			s.Untriaged++
		}
	}
	r.Summary = s
}

// WriteJSON writes the reports (one object, or an array for several targets).
func WriteJSON(w io.Writer, reports []*Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if len(reports) == 1 {
		return enc.Encode(reports[0])
	}
	return enc.Encode(reports)
}

var colors = map[string]string{
	model.SeverityCritical: "\033[1;31m", model.SeverityHigh: "\033[31m", model.SeverityMedium: "\033[33m",
	model.SeverityLow: "\033[36m", model.SeverityInformational: "\033[37m", model.SeverityUntriaged: "\033[37m",
}

// WriteTable writes findings grouped by severity, worst first. Suppressed findings are counted, and
// listed only when showSuppressed is set.
func WriteTable(w io.Writer, reports []*Report, color, showSuppressed bool) error {
	for _, r := range reports {
		title := r.Target.Kind + ":" + r.Target.Name
		if r.OS != nil && r.OS.PrettyName != "" {
			title += " (" + r.OS.PrettyName + ")"
		}
		fmt.Fprintln(w, title)
		groups := map[string][]model.Finding{}
		for _, f := range r.Findings {
			if f.Status == model.FindingSuppressed && !showSuppressed {
				continue
			}
			groups[f.Severity] = append(groups[f.Severity], f)
		}
		sevs := make([]string, 0, len(groups))
		for s := range groups {
			sevs = append(sevs, s)
		}
		sort.Slice(sevs, func(i, j int) bool { return score.Rank(sevs[i]) > score.Rank(sevs[j]) })
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, sev := range sevs {
			label := sev
			if color {
				label = colors[sev] + sev + "\033[0m"
			}
			fmt.Fprintf(tw, "\n%s (%d)\n", label, len(groups[sev]))
			fmt.Fprintln(tw, "  VULNERABILITY\tRISK\tPACKAGE\tINSTALLED\tFIXED IN\tEXPLOIT\tEPSS\t")
			for _, f := range groups[sev] {
				for i, p := range f.Packages {
					id, risk, expl, epss := f.VulnerabilityID, fmt.Sprintf("%.1f", f.RiskScore.Score), "", ""
					if f.ExploitAvailable == model.Yes {
						expl = "KEV"
					}
					if f.EPSS != nil {
						epss = fmt.Sprintf("%.3f", f.EPSS.Score)
					}
					if f.Status == model.FindingSuppressed {
						id += " (suppressed)"
					}
					if i > 0 {
						id, risk, expl, epss = "", "", "", ""
					}
					fixed := p.FixedInVersion
					if fixed == "" {
						fixed = "-"
					}
					name := p.Name
					if p.SourceName != "" && p.SourceName != p.Name {
						name += " (" + p.SourceName + ")"
					}
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", id, risk, name, p.Version, fixed, expl, epss)
				}
			}
		}
		tw.Flush()
		s := r.Summary
		fmt.Fprintf(w, "\n%d packages; findings: %d critical, %d high, %d medium, %d low, %d informational, %d untriaged; %d suppressed\n",
			s.Packages, s.Critical, s.High, s.Medium, s.Low, s.Informational, s.Untriaged, s.Suppressed)
		for _, wmsg := range r.Warnings {
			fmt.Fprintf(w, "warning: %s\n", wmsg)
		}
	}
	return nil
}

// CycloneDX writes a CycloneDX 1.6 BOM of the scanned components with a vulnerabilities section.
func CycloneDX(w io.Writer, reports []*Report, tool sbom.Tool) error {
	var invs []*model.Inventory
	for _, r := range reports {
		invs = append(invs, r.Inventory)
	}
	bom := sbom.CycloneDX(invs, tool, time.Now())
	refs := map[string]string{} // purl or name@version -> bom-ref
	var index func(cs *[]cdx.Component)
	index = func(cs *[]cdx.Component) {
		if cs == nil {
			return
		}
		for _, c := range *cs {
			refs[c.PackageURL] = c.BOMRef
			refs[c.Name+"@"+c.Version] = c.BOMRef
			index(c.Components)
		}
	}
	index(bom.Components)
	var vulns []cdx.Vulnerability
	for _, r := range reports {
		for _, f := range r.Findings {
			v := cdx.Vulnerability{ID: f.VulnerabilityID, Description: f.Description}
			if strings.HasPrefix(f.VulnerabilityID, "CVE-") {
				v.Source = &cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + f.VulnerabilityID}
			}
			var ratings []cdx.VulnerabilityRating
			for _, c := range f.CVSS {
				sc := c.Score
				method := cdx.ScoringMethodCVSSv31
				switch c.Version {
				case "2.0":
					method = cdx.ScoringMethodCVSSv2
				case "3.0":
					method = cdx.ScoringMethodCVSSv3
				case "4.0":
					method = cdx.ScoringMethodCVSSv4
				}
				ratings = append(ratings, cdx.VulnerabilityRating{Source: &cdx.Source{Name: c.Source}, Score: &sc,
					Severity: cdx.Severity(strings.ToLower(score.Severity(c.Version, c.Score))), Method: method, Vector: c.Vector})
			}
			ratings = append(ratings, cdx.VulnerabilityRating{Source: &cdx.Source{Name: "vigil"},
				Severity: cdx.Severity(strings.ToLower(f.Severity)), Method: cdx.ScoringMethodOther,
				Justification: fmt.Sprintf("risk score %.1f", f.RiskScore.Score)})
			v.Ratings = &ratings
			if len(f.RelatedVulnerabilities) > 0 {
				var rel []cdx.VulnerabilityReference
				for _, id := range f.RelatedVulnerabilities {
					rel = append(rel, cdx.VulnerabilityReference{ID: id})
				}
				v.References = &rel
			}
			var affects []cdx.Affects
			var fixes []string
			for _, p := range f.Packages {
				ref := refs[p.PURL]
				if ref == "" {
					ref = refs[p.Name+"@"+p.Version]
				}
				if ref != "" {
					affects = append(affects, cdx.Affects{Ref: ref})
				}
				if p.FixedInVersion != "" {
					fixes = append(fixes, p.Name+" "+p.FixedInVersion)
				}
			}
			v.Affects = &affects
			if len(fixes) > 0 {
				v.Recommendation = "Upgrade " + strings.Join(fixes, ", ")
			}
			if f.Status == model.FindingSuppressed && f.Suppression != nil {
				v.Analysis = &cdx.VulnerabilityAnalysis{State: cdx.IASNotAffected, Detail: f.Suppression.Reason}
			}
			vulns = append(vulns, v)
		}
	}
	bom.Vulnerabilities = &vulns
	return sbom.EncodeCycloneDX(w, bom)
}
