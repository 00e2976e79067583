package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// SARIF 2.1.0, the subset code-scanning dashboards read. No SARIF library is among the project's
// chosen dependencies and the subset is small, so the types are written here.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string         `json:"id"`
	ShortDescription sarifText      `json:"shortDescription"`
	FullDescription  sarifText      `json:"fullDescription"`
	HelpURI          string         `json:"helpUri,omitempty"`
	Help             sarifText      `json:"help"`
	Properties       map[string]any `json:"properties"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

func sarifLevel(sev string) string {
	switch sev {
	case model.SeverityCritical, model.SeverityHigh:
		return "error"
	case model.SeverityMedium:
		return "warning"
	}
	return "note"
}

// SARIF writes SARIF 2.1.0: one rule per vulnerability, one result per vulnerable package.
// Suppressed findings are left out, as dashboards have their own dismissal.
func SARIF(w io.Writer, reports []*Report, toolVersion string) error {
	rules := map[string]sarifRule{}
	run := sarifRun{Results: []sarifResult{}}
	for _, r := range reports {
		for _, f := range r.Findings {
			if f.Status == model.FindingSuppressed {
				continue
			}
			if _, ok := rules[f.VulnerabilityID]; !ok {
				help := f.Description
				if help == "" {
					help = f.Title
				}
				rule := sarifRule{
					ID:               f.VulnerabilityID,
					ShortDescription: sarifText{f.Title},
					FullDescription:  sarifText{help},
					Help:             sarifText{help},
					Properties: map[string]any{
						"security-severity": fmt.Sprintf("%.1f", f.RiskScore.Score),
						"tags":              []string{"security", "vulnerability", strings.ToLower(f.Severity)},
					},
				}
				if strings.HasPrefix(f.VulnerabilityID, "CVE-") {
					rule.HelpURI = "https://nvd.nist.gov/vuln/detail/" + f.VulnerabilityID
				} else if len(f.References) > 0 {
					rule.HelpURI = f.References[0]
				}
				rules[f.VulnerabilityID] = rule
			}
			for _, p := range f.Packages {
				msg := fmt.Sprintf("%s %s is affected by %s (%s)", p.Name, p.Version, f.VulnerabilityID, f.Severity)
				if p.FixedInVersion != "" {
					msg += "; fixed in " + p.FixedInVersion
				}
				uri := strings.TrimPrefix(p.FilePath, "/")
				if uri == "" {
					uri = r.Target.Name
				}
				run.Results = append(run.Results, sarifResult{
					RuleID: f.VulnerabilityID, Level: sarifLevel(f.Severity), Message: sarifText{msg},
					Locations:  []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri}}}},
					Properties: map[string]any{"purl": p.PURL, "fixedInVersion": p.FixedInVersion, "riskScore": f.RiskScore.Score},
				})
			}
		}
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, rules[id])
	}
	if run.Tool.Driver.Rules == nil {
		run.Tool.Driver.Rules = []sarifRule{}
	}
	run.Tool.Driver.Name, run.Tool.Driver.Version = "vigil", toolVersion
	run.Tool.Driver.InformationURI = "https://github.com/vigil-sec/vigil"
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}
