// Package model holds Vigil's domain types: the words of DESIGN.md as Go types. Every other package
// imports it; it imports nothing of Vigil's.
package model

import "time"

// Package is one piece of software found on a resource.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Ecosystem is the OSV ecosystem name, with the release for OS packages ("Debian:12", "Alpine:v3.20",
	// "AlmaLinux:9", "npm", "PyPI", "Go", "Maven", ...).
	Ecosystem string `json:"ecosystem"`
	PURL      string `json:"purl,omitempty"`
	// CPEs are CPE 2.3 names the package is known by, as an SBOM states them (CycloneDX cpe, SPDX
	// cpe23Type references). Only the opt-in CPE matching reads them.
	CPEs []string `json:"cpes,omitempty"`
	// SourceName and SourceVersion name the source package an OS package was built from (dpkg Source:,
	// rpm SOURCERPM, apk origin). Vendor advisories are keyed on them.
	SourceName    string `json:"sourceName,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	Arch          string `json:"arch,omitempty"`
	// Locations are the files the package was read from, slash-separated and absolute within the target
	// ("/var/lib/dpkg/status", "/app/node_modules/lodash/package.json"). The first one is the primary.
	Locations []string `json:"locations,omitempty"`
	// LayerDigest is, for images, the digest of the layer that last wrote the primary location.
	LayerDigest string `json:"layerDigest,omitempty"`
	// Dev marks a development-only dependency (npm devDependencies, poetry dev group, ...).
	Dev bool `json:"dev,omitempty"`
	// Extractor is the name of the extractor that found the package.
	Extractor string   `json:"extractor"`
	Licenses  []string `json:"licenses,omitempty"`
}

// Ecosystem names shared across packages. OS ecosystems carry a release suffix (see OS.Ecosystem).
const (
	EcoGo        = "Go"
	EcoNPM       = "npm"
	EcoPyPI      = "PyPI"
	EcoMaven     = "Maven"
	EcoCrates    = "crates.io"
	EcoRubyGems  = "RubyGems"
	EcoPackagist = "Packagist"
	EcoNuGet     = "NuGet"
)

// OS describes the operating system of a resource, read from /etc/os-release and its fallbacks.
type OS struct {
	// Family is the os-release ID ("debian", "ubuntu", "alpine", "almalinux", "rhel", "amzn", ...).
	Family     string `json:"family"`
	Name       string `json:"name,omitempty"`
	VersionID  string `json:"versionId,omitempty"`
	Codename   string `json:"codename,omitempty"`
	PrettyName string `json:"prettyName,omitempty"`
	// Ecosystem is the OSV ecosystem of the OS packages ("Debian:12", "Alpine:v3.20"); empty if unknown.
	Ecosystem string `json:"ecosystem,omitempty"`
	// Distroless is set when the image has package metadata but no os-release file.
	Distroless bool `json:"distroless,omitempty"`
	// EOL is the end of the vendor's support, when known.
	EOL *time.Time `json:"eol,omitempty"`
}

// Extractor statuses.
const (
	StatusOK      = "ok"      // every file it wanted was read
	StatusPartial = "partial" // some files failed; see Errors
	StatusFailed  = "failed"  // nothing usable was read
	StatusLimited = "limited" // a package-count or time limit was reached; the result is truncated
)

// FileError is a problem with one file, reported instead of being swallowed.
type FileError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// ExtractorStatus reports what one extractor did during a run.
type ExtractorStatus struct {
	Name     string      `json:"name"`
	Version  int         `json:"version"`
	Status   string      `json:"status"`
	Files    int         `json:"files"`
	Packages int         `json:"packages"`
	Errors   []FileError `json:"errors,omitempty"`
}

// SourceInfo describes the target an inventory was taken from.
type SourceInfo struct {
	// Kind is the source kind: dir, docker-archive, oci-archive, oci-dir, registry, disk, archive.
	Kind string `json:"kind"`
	// Name is the target as the user gave it (a path or an image reference).
	Name string `json:"name"`
	// Digest is the image manifest digest, when there is one.
	Digest   string   `json:"digest,omitempty"`
	RepoTags []string `json:"repoTags,omitempty"`
	Platform string   `json:"platform,omitempty"`
	// Layers lists the image layer digests (diff IDs) in order, lowest first.
	Layers []string `json:"layers,omitempty"`
	// Partition names the disk partition that held the root file system.
	Partition string `json:"partition,omitempty"`
	// Filesystem is the file-system type read from a disk (ext4, xfs).
	Filesystem string `json:"filesystem,omitempty"`
}

// Inventory is what one source found on one resource.
type Inventory struct {
	Source     SourceInfo        `json:"source"`
	OS         *OS               `json:"os,omitempty"`
	Packages   []Package         `json:"packages"`
	Extractors []ExtractorStatus `json:"extractors"`
	// Warnings are problems that are not tied to one extractor (a limit reached, a skipped path).
	Warnings []string  `json:"warnings,omitempty"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"durationSeconds"`
}
