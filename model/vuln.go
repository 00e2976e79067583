package model

import "time"

// Advisory is one source's statement that versions of a package are affected by a vulnerability:
// an OSV record's affected[] entry, a Debian tracker entry for one release, an Alpine secdb fix.
type Advisory struct {
	// Source names the feed ("osv", "debian", "alpine", ...).
	Source string `json:"source"`
	// ID is the source's record ID ("GHSA-…", "GO-2024-…", "PYSEC-…", "ALSA-2024:…", "CVE-…" for the
	// Debian tracker, "DSA-…" where known).
	ID string `json:"id"`
	// Aliases are the other IDs of the same vulnerability (from OSV aliases/upstream, tracker CVE IDs).
	Aliases []string `json:"aliases,omitempty"`
	// Related are IDs the source names as related but not the same vulnerability: the CVEs an OS
	// vendor's erratum fixes (OSV "related", as AlmaLinux and Rocky Linux write their errata).
	Related []string `json:"related,omitempty"`
	// Ecosystem is the OSV ecosystem, with the release for OS vendors ("Debian:12", "Alpine:v3.20").
	Ecosystem string `json:"ecosystem"`
	// Package is the affected package; for OS vendors, the source package name.
	Package string `json:"package"`
	// PURL of the package, when the source gives one.
	PURL string `json:"purl,omitempty"`
	// Ranges hold OSV range semantics (introduced / fixed / last_affected / limit events).
	Ranges []Range `json:"ranges,omitempty"`
	// Versions is an explicit list of affected versions (OSV affected[].versions).
	Versions []string `json:"versions,omitempty"`
	// Unfixed marks an advisory that upstream says will not be fixed or is not fixed yet (Debian
	// open / no-dsa / ignored / postponed): every version is affected and no fix is available.
	Unfixed bool `json:"unfixed,omitempty"`
	// Note carries the vendor's reason for Unfixed ("no-dsa: Minor issue", "postponed", ...).
	Note string `json:"note,omitempty"`
	// Severity is the vendor's own rating mapped to Vigil's scale (UNTRIAGED when unrated).
	Severity string `json:"severity,omitempty"`
	// Urgency is the vendor's raw rating ("low", "medium**", "unimportant", ...).
	Urgency string `json:"urgency,omitempty"`
	CVSS    []CVSS `json:"cvss,omitempty"`
	// Summary and Details describe the vulnerability as the source wrote it.
	Summary    string     `json:"summary,omitempty"`
	Details    string     `json:"details,omitempty"`
	References []string   `json:"references,omitempty"`
	CWEs       []string   `json:"cwes,omitempty"`
	Published  time.Time  `json:"published,omitzero"`
	Modified   time.Time  `json:"modified,omitzero"`
	Withdrawn  *time.Time `json:"withdrawn,omitempty"`
}

// Range types, as OSV names them.
const (
	RangeEcosystem = "ECOSYSTEM"
	RangeSemver    = "SEMVER"
	RangeGit       = "GIT"
)

// Range is an OSV range: ordered events over one version scheme.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set. Introduced "0" means every earlier version.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// CVSS is one CVSS vector given by one source.
type CVSS struct {
	// Source is who scored it ("nvd", "debian", "ghsa", the OSV record's source, ...).
	Source string `json:"source"`
	// Version is "2.0", "3.0", "3.1" or "4.0".
	Version string  `json:"version"`
	Vector  string  `json:"vector"`
	Score   float64 `json:"score"`
}

// Severities, in Inspector's words.
const (
	SeverityInformational = "INFORMATIONAL"
	SeverityLow           = "LOW"
	SeverityMedium        = "MEDIUM"
	SeverityHigh          = "HIGH"
	SeverityCritical      = "CRITICAL"
	SeverityUntriaged     = "UNTRIAGED"
)

// Enrichment is what a non-matching source (NVD, CISA KEV, FIRST EPSS) says about one vulnerability.
// The database merges enrichments by vulnerability ID; fields left zero say nothing.
type Enrichment struct {
	Source string `json:"source"`
	// ID is the vulnerability ID (a CVE ID for NVD, KEV and EPSS).
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	CVSS        []CVSS    `json:"cvss,omitempty"`
	CWEs        []string  `json:"cwes,omitempty"`
	References  []string  `json:"references,omitempty"`
	Published   time.Time `json:"published,omitzero"`
	Modified    time.Time `json:"modified,omitzero"`
	// Configurations are NVD's applicability statements (which CPEs, in which combination, are
	// vulnerable). The database keeps them apart from the enrichment, indexed by vendor and product,
	// for the opt-in CPE matching; they are never part of a stored enrichment body.
	Configurations []CPEConfig `json:"configurations,omitempty"`
	EPSS           *EPSS       `json:"epss,omitempty"`
	KEV            *KEV        `json:"kev,omitempty"`
}

// CPEConfig is one NVD configuration: its nodes joined by Operator ("AND" or "OR"; empty means
// OR, which is what a single-node configuration has). A CVE applies when any configuration holds.
type CPEConfig struct {
	Operator string    `json:"operator,omitempty"`
	Negate   bool      `json:"negate,omitempty"`
	Nodes    []CPENode `json:"nodes"`
}

// CPENode is one node of a configuration: its criteria joined by Operator ("AND" or "OR"),
// inverted when Negate is set.
type CPENode struct {
	Operator string     `json:"operator,omitempty"`
	Negate   bool       `json:"negate,omitempty"`
	Matches  []CPEMatch `json:"cpeMatch"`
}

// CPEMatch is one NVD cpeMatch criterion: a CPE 2.3 formatted string, and when its version is ANY,
// an optional version range. Vulnerable=false marks a platform the vulnerable part runs on or with.
type CPEMatch struct {
	Criteria              string `json:"criteria"`
	Vulnerable            bool   `json:"vulnerable"`
	VersionStartIncluding string `json:"versionStartIncluding,omitempty"`
	VersionStartExcluding string `json:"versionStartExcluding,omitempty"`
	VersionEndIncluding   string `json:"versionEndIncluding,omitempty"`
	VersionEndExcluding   string `json:"versionEndExcluding,omitempty"`
}

// EPSS is FIRST's exploit prediction for one CVE on one day.
type EPSS struct {
	Score      float64   `json:"score"`
	Percentile float64   `json:"percentile"`
	Date       time.Time `json:"date,omitzero"`
}

// KEV is a CISA Known Exploited Vulnerabilities catalog entry.
type KEV struct {
	DateAdded        time.Time `json:"dateAdded"`
	DueDate          time.Time `json:"dueDate,omitzero"`
	VendorProject    string    `json:"vendorProject,omitempty"`
	Product          string    `json:"product,omitempty"`
	Name             string    `json:"name,omitempty"`
	RequiredAction   string    `json:"requiredAction,omitempty"`
	KnownRansomware  string    `json:"knownRansomwareCampaignUse,omitempty"`
	ShortDescription string    `json:"shortDescription,omitempty"`
}
