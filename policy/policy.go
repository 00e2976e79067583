// Package policy suppresses findings that users have decided about: ignore rules with a reason and
// an expiry date, and OpenVEX statements that declare products not affected. Suppressed findings stay
// in the result, marked SUPPRESSED with the rule that suppressed them.
package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"
	"gopkg.in/yaml.v3"

	"github.com/vigil-sec/vigil/model"
)

// maxDoc bounds ignore files and VEX documents: they are small by nature.
const maxDoc = 16 << 20

// Rule is one ignore rule.
type Rule struct {
	// Vulnerability is the finding's vulnerability ID or any of its related IDs.
	Vulnerability string `yaml:"vulnerability" json:"vulnerability"`
	// Package, when set, limits the rule to findings whose vulnerable packages all have this name
	// (binary or source name).
	Package string `yaml:"package,omitempty" json:"package,omitempty"`
	// Reason is required: a suppression nobody can explain is a hidden risk.
	Reason string `yaml:"reason" json:"reason"`
	// Expires ends the rule (YYYY-MM-DD, inclusive); after it the finding shows again.
	Expires string `yaml:"expires,omitempty" json:"expires,omitempty"`
	until   *time.Time
}

// IgnoreFile is the YAML document read by --ignore-file.
type IgnoreFile struct {
	Ignore []Rule `yaml:"ignore"`
}

// ParseIgnoreFile reads an ignore file, rejecting rules without a vulnerability, without a reason,
// or with an unreadable expiry.
func ParseIgnoreFile(r io.Reader, name string) ([]Rule, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDoc+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > maxDoc {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxDoc)
	}
	var f IgnoreFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i := range f.Ignore {
		r := &f.Ignore[i]
		if r.Vulnerability == "" {
			return nil, fmt.Errorf("%s: rule %d: vulnerability is required", name, i+1)
		}
		if strings.TrimSpace(r.Reason) == "" {
			return nil, fmt.Errorf("%s: rule %d (%s): a reason is required", name, i+1, r.Vulnerability)
		}
		if r.Expires != "" {
			t, err := time.Parse("2006-01-02", r.Expires)
			if err != nil {
				return nil, fmt.Errorf("%s: rule %d (%s): expires %q is not a YYYY-MM-DD date", name, i+1, r.Vulnerability, r.Expires)
			}
			end := t.Add(24*time.Hour - time.Nanosecond)
			r.until = &end
		}
	}
	return f.Ignore, nil
}

// VEXStatement is the part of an OpenVEX statement Vigil acts on.
type VEXStatement struct {
	Vulnerability   vexVuln      `json:"vulnerability"`
	Products        []vexProduct `json:"products"`
	Status          string       `json:"status"`
	Justification   string       `json:"justification,omitempty"`
	ImpactStatement string       `json:"impact_statement,omitempty"`
}

type vexVuln struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
}

// UnmarshalJSON accepts both forms OpenVEX has used: a plain string and an object.
func (v *vexVuln) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v.Name = s
		return nil
	}
	type plain vexVuln
	return json.Unmarshal(b, (*plain)(v))
}

type vexProduct struct {
	ID            string         `json:"@id"`
	Subcomponents []vexComponent `json:"subcomponents,omitempty"`
}

type vexComponent struct {
	ID string `json:"@id"`
}

type vexDoc struct {
	Context    string         `json:"@context"`
	ID         string         `json:"@id"`
	Statements []VEXStatement `json:"statements"`
}

// ParseOpenVEX reads an OpenVEX document.
func ParseOpenVEX(r io.Reader, name string) ([]VEXStatement, error) {
	var d vexDoc
	dec := json.NewDecoder(io.LimitReader(r, maxDoc))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%s: not an OpenVEX JSON document: %w", name, err)
	}
	if !strings.Contains(d.Context, "openvex") {
		return nil, fmt.Errorf("%s: @context %q is not OpenVEX", name, d.Context)
	}
	for i, s := range d.Statements {
		if s.Vulnerability.Name == "" {
			return nil, fmt.Errorf("%s: statement %d has no vulnerability", name, i+1)
		}
	}
	return d.Statements, nil
}

// Policy holds ignore rules and VEX statements.
type Policy struct {
	Rules []Rule
	VEX   []VEXStatement
}

// Apply marks matching findings SUPPRESSED and returns warnings about expired rules.
func (p *Policy) Apply(findings []model.Finding, now time.Time) []string {
	var warnings []string
	for _, r := range p.Rules {
		if r.until != nil && now.After(*r.until) {
			warnings = append(warnings, fmt.Sprintf("ignore rule for %s expired on %s: the finding is shown again", r.Vulnerability, r.Expires))
		}
	}
	for i := range findings {
		f := &findings[i]
		if f.Status == model.FindingSuppressed {
			continue
		}
		for _, r := range p.Rules {
			if r.until != nil && now.After(*r.until) {
				continue
			}
			if hasID(f, r.Vulnerability) && (r.Package == "" || allPackagesNamed(f, r.Package)) {
				f.Status = model.FindingSuppressed
				f.Suppression = &model.SuppressionEvidence{Rule: "ignore-file", Reason: r.Reason, Until: r.until}
				break
			}
		}
		if f.Status == model.FindingSuppressed {
			continue
		}
		for _, s := range p.VEX {
			if s.Status != "not_affected" && s.Status != "fixed" {
				continue
			}
			if !hasID(f, s.Vulnerability.Name) && !anyID(f, s.Vulnerability.Aliases) {
				continue
			}
			if vexCovers(s, f) {
				f.Status = model.FindingSuppressed
				reason := s.Status
				if s.Justification != "" {
					reason += ": " + s.Justification
				}
				if s.ImpactStatement != "" {
					reason += " (" + s.ImpactStatement + ")"
				}
				f.Suppression = &model.SuppressionEvidence{Rule: "openvex", Reason: reason}
				break
			}
		}
	}
	return warnings
}

func hasID(f *model.Finding, id string) bool {
	if strings.EqualFold(f.VulnerabilityID, id) {
		return true
	}
	for _, r := range f.RelatedVulnerabilities {
		if strings.EqualFold(r, id) {
			return true
		}
	}
	return false
}

func anyID(f *model.Finding, ids []string) bool {
	for _, id := range ids {
		if hasID(f, id) {
			return true
		}
	}
	return false
}

func allPackagesNamed(f *model.Finding, name string) bool {
	for _, p := range f.Packages {
		if p.Name != name && p.SourceName != name {
			return false
		}
	}
	return len(f.Packages) > 0
}

// vexCovers reports whether every vulnerable package of the finding is one of the statement's
// products or subcomponents. A statement without products covers everything scanned.
func vexCovers(s VEXStatement, f *model.Finding) bool {
	var ids []string
	for _, p := range s.Products {
		ids = append(ids, p.ID)
		for _, sc := range p.Subcomponents {
			ids = append(ids, sc.ID)
		}
	}
	if len(ids) == 0 {
		return true
	}
	for _, p := range f.Packages {
		covered := false
		for _, id := range ids {
			if purlMatches(id, p.PURL) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return len(f.Packages) > 0
}

// purlMatches compares PURLs by type, namespace, name and version; a statement's PURL without a
// version covers every version, and qualifiers are ignored (VEX authors rarely repeat arch or distro).
func purlMatches(stmt, pkg string) bool {
	if stmt == "" || pkg == "" {
		return false
	}
	a, err1 := packageurl.FromString(stmt)
	b, err2 := packageurl.FromString(pkg)
	if err1 != nil || err2 != nil {
		return stmt == pkg
	}
	return a.Type == b.Type && strings.EqualFold(a.Namespace, b.Namespace) && a.Name == b.Name &&
		(a.Version == "" || a.Version == b.Version)
}
