package model

import "time"

// Finding statuses.
const (
	FindingActive     = "ACTIVE"
	FindingSuppressed = "SUPPRESSED"
	FindingClosed     = "CLOSED"
)

// Finding types.
const (
	FindingPackageVulnerability = "PACKAGE_VULNERABILITY"
	FindingNetworkReachability  = "NETWORK_REACHABILITY"
	FindingCodeVulnerability    = "CODE_VULNERABILITY"
)

// Fix and exploit availability values.
const (
	Yes     = "YES"
	No      = "NO"
	Partial = "PARTIAL"
)

// Finding is one vulnerability on one resource, listing every vulnerable package.
type Finding struct {
	// ID is stable: derived from the account, resource, type and vulnerability, so a rescan updates the
	// finding instead of duplicating it. The CLI leaves the account and resource empty.
	ID   string `json:"findingId"`
	Type string `json:"type"`
	// Account, ResourceID and ResourceType place the finding in the fleet (empty in the CLI).
	Account                string   `json:"account,omitempty"`
	ResourceID             string   `json:"resourceId,omitempty"`
	ResourceType           string   `json:"resourceType,omitempty"`
	VulnerabilityID        string   `json:"vulnerabilityId"`
	RelatedVulnerabilities []string `json:"relatedVulnerabilities,omitempty"`
	Title                  string   `json:"title,omitempty"`
	Description            string   `json:"description,omitempty"`
	Severity               string   `json:"severity"`
	// SeveritySource says whose rating Severity is ("debian", "nvd", "ghsa", ...).
	SeveritySource   string               `json:"severitySource,omitempty"`
	Status           string               `json:"status"`
	FixAvailable     string               `json:"fixAvailable"`
	ExploitAvailable string               `json:"exploitAvailable"`
	RiskScore        RiskScore            `json:"riskScore"`
	CVSS             []CVSS               `json:"cvss,omitempty"`
	EPSS             *EPSS                `json:"epss,omitempty"`
	KEV              *KEV                 `json:"kev,omitempty"`
	CWEs             []string             `json:"cwes,omitempty"`
	References       []string             `json:"references,omitempty"`
	Packages         []VulnerablePackage  `json:"vulnerablePackages"`
	Advisories       []AdvisoryRef        `json:"advisories,omitempty"`
	Suppression      *SuppressionEvidence `json:"suppression,omitempty"`
	FirstObservedAt  time.Time            `json:"firstObservedAt,omitzero"`
	LastObservedAt   time.Time            `json:"lastObservedAt,omitzero"`
	UpdatedAt        time.Time            `json:"updatedAt,omitzero"`
}

// VulnerablePackage is one installed package that a finding's vulnerability affects.
type VulnerablePackage struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	Ecosystem      string `json:"ecosystem"`
	PURL           string `json:"purl,omitempty"`
	SourceName     string `json:"sourceName,omitempty"`
	SourceVersion  string `json:"sourceVersion,omitempty"`
	Arch           string `json:"arch,omitempty"`
	FixedInVersion string `json:"fixedInVersion,omitempty"`
	FilePath       string `json:"filePath,omitempty"`
	LayerDigest    string `json:"layerDigest,omitempty"`
}

// AdvisoryRef names an advisory that contributed to a finding.
type AdvisoryRef struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	Note   string `json:"note,omitempty"`
}

// RiskScore is Vigil's 0–10 risk score: a CVSS base score and every adjustment applied to it.
type RiskScore struct {
	Score       float64      `json:"score"`
	Base        float64      `json:"base"`
	BaseSource  string       `json:"baseSource,omitempty"`
	BaseVector  string       `json:"baseVector,omitempty"`
	Adjustments []Adjustment `json:"adjustments,omitempty"`
}

// Adjustment is one change to a risk score and why it was made.
type Adjustment struct {
	Factor string  `json:"factor"` // "exploitation", "fix", "network"
	Delta  float64 `json:"delta"`
	Reason string  `json:"reason"`
}

// SuppressionEvidence says why a finding is suppressed (an ignore rule, a VEX statement, a rule).
type SuppressionEvidence struct {
	Rule   string     `json:"rule"`
	Reason string     `json:"reason,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
}

// Vulnerability is everything known about one vulnerability ID, merged from enrichments.
type Vulnerability struct {
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	CVSS        []CVSS    `json:"cvss,omitempty"`
	CWEs        []string  `json:"cwes,omitempty"`
	References  []string  `json:"references,omitempty"`
	Published   time.Time `json:"published,omitzero"`
	Modified    time.Time `json:"modified,omitzero"`
	EPSS        *EPSS     `json:"epss,omitempty"`
	KEV         *KEV      `json:"kev,omitempty"`
}
