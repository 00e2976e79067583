package vulndb

import (
	"net/url"
	"strings"

	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/alpine"
	"github.com/vigil-sec/vigil/vulndb/feeds/debian"
	"github.com/vigil-sec/vigil/vulndb/feeds/epss"
	"github.com/vigil-sec/vigil/vulndb/feeds/kev"
	"github.com/vigil-sec/vigil/vulndb/feeds/nvd"
	"github.com/vigil-sec/vigil/vulndb/osv"
)

// Source kinds: each names a parser (see DefaultParsers) and how the source is fetched.
const (
	KindOSV    = "osv"    // an osv.dev all.zip
	KindDebian = "debian" // the security tracker's JSON export
	KindAlpine = "alpine" // one secdb file (vX.Y/repo.json)
	KindNVD    = "nvd"    // NVD CVE API 2.0 (paged) or JSON 2.0 feed files
	KindKEV    = "kev"    // CISA KEV JSON
	KindEPSS   = "epss"   // FIRST EPSS CSV (optionally gzipped)
)

// Source is one upstream feed.
type Source struct {
	// Name keys the source's data and state ("osv/Go", "debian", "alpine/v3.20/main", "nvd", "kev",
	// "epss"); keep it stable across runs.
	Name string `json:"name" yaml:"name"`
	Kind string `json:"kind" yaml:"kind"`
	URL  string `json:"url" yaml:"url"`
	// SHA256, when set, pins the expected digest of the download (a mirrored file published with
	// its checksum); a mismatch fails the source and keeps its previous data.
	SHA256 string `json:"sha256,omitempty" yaml:"sha256,omitempty"`
}

// Default upstream URLs. Every one can be replaced through Source.URL (mirrors, proxies).
const (
	DefaultOSVBase    = "https://osv-vulnerabilities.storage.googleapis.com"
	DefaultDebianURL  = "https://security-tracker.debian.org/tracker/data/json"
	DefaultAlpineBase = "https://secdb.alpinelinux.org"
	DefaultNVDURL     = nvd.DefaultBaseURL
	DefaultKEVURL     = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
	DefaultEPSSURL    = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"
)

// SourceOptions selects the default source list.
type SourceOptions struct {
	OSVBase       string   // "" = DefaultOSVBase
	OSVEcosystems []string // e.g. "Go", "PyPI", "npm", "crates.io", "AlmaLinux", "Bitnami"
	Debian        bool
	DebianURL     string
	AlpineBase    string
	// AlpineReleases are "v3.20"-style releases; each gets its main and community files.
	AlpineReleases []string
	NVD            bool
	NVDURL         string
	KEV            bool
	KEVURL         string
	EPSS           bool
	EPSSURL        string
}

// DefaultEcosystems are the OSV ecosystems fetched when none are named.
var DefaultEcosystems = []string{"Go", "npm", "PyPI", "Maven", "crates.io", "RubyGems", "Packagist", "NuGet",
	"AlmaLinux", "Rocky Linux", "Bitnami"}

// DefaultSources builds the source list for o.
func DefaultSources(o SourceOptions) []Source {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return strings.TrimRight(s, "/")
	}
	var out []Source
	ecos := o.OSVEcosystems
	if ecos == nil {
		ecos = DefaultEcosystems
	}
	base := or(o.OSVBase, DefaultOSVBase)
	for _, e := range ecos {
		out = append(out, Source{Name: "osv/" + e, Kind: KindOSV, URL: base + "/" + url.PathEscape(e) + "/all.zip"})
	}
	if o.Debian {
		out = append(out, Source{Name: "debian", Kind: KindDebian, URL: or(o.DebianURL, DefaultDebianURL)})
	}
	ab := or(o.AlpineBase, DefaultAlpineBase)
	for _, r := range o.AlpineReleases {
		for _, repo := range []string{"main", "community"} {
			out = append(out, Source{Name: "alpine/" + r + "/" + repo, Kind: KindAlpine, URL: ab + "/" + r + "/" + repo + ".json"})
		}
	}
	if o.NVD {
		out = append(out, Source{Name: "nvd", Kind: KindNVD, URL: or(o.NVDURL, DefaultNVDURL)})
	}
	if o.KEV {
		out = append(out, Source{Name: "kev", Kind: KindKEV, URL: or(o.KEVURL, DefaultKEVURL)})
	}
	if o.EPSS {
		out = append(out, Source{Name: "epss", Kind: KindEPSS, URL: or(o.EPSSURL, DefaultEPSSURL)})
	}
	return out
}

// DefaultParsers maps each kind to its parser. (KindNVD sources pointing at the API are fetched
// by nvd.Client, which uses the same parser page by page.)
func DefaultParsers() map[string]feed.Parser {
	return map[string]feed.Parser{
		KindOSV:    osv.ZipParser{},
		KindDebian: &debian.Parser{},
		KindAlpine: &alpine.Parser{},
		KindNVD:    &nvd.Parser{},
		KindKEV:    &kev.Parser{},
		KindEPSS:   &epss.Parser{},
	}
}
