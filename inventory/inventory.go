// Package inventory runs extractors over a target's file system and assembles its inventory: the
// second step of source → inventory → match → findings → events.
//
// The engine walks the file system once. Each extractor says, from a file's path and info alone,
// whether it wants the file; wanted files are then read by that extractor. Streaming sources are handed
// the same test (Engine.Filter) so that they keep only the content that will be read.
package inventory

import (
	"context"
	"io/fs"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Extractor finds packages of one ecosystem.
type Extractor interface {
	// Name is stable and unique ("dpkg", "npm-lockfile", ...); it names the extractor in reports.
	Name() string
	// Version changes whenever the extractor's output for the same input may change; cached
	// per-layer inventories are keyed on it.
	Version() int
	// Required reports whether the extractor reads the file. It is called for every file of the target,
	// so it decides on the path (an io/fs name, no leading slash) and the info alone, cheaply.
	Required(path string, info fs.FileInfo) bool
	// Extract reads one required file and returns the packages found in it. Packages need Name,
	// Version, Ecosystem and PURL; the engine fills Locations (when empty), LayerDigest and Extractor.
	Extract(ctx context.Context, in *Input) ([]model.Package, error)
}

// Finisher is implemented by extractors that reconcile what they found across files, for example a
// lockfile and the node_modules installed from it, so that nothing is counted twice.
type Finisher interface {
	Finish(pkgs []model.Package) []model.Package
}

// Input is one file handed to an extractor.
type Input struct {
	// Path is the io/fs name of the file (no leading slash).
	Path string
	Info fs.FileInfo
	// FS is the whole target, for reading related files (the siblings of a lockfile, say).
	FS fs.FS
	// OS is the detected operating system, or nil.
	OS *model.OS
	// Config is the engine's configuration (extra paths, limits).
	Config *Config
}

// Open opens the input file.
func (in *Input) Open() (fs.File, error) { return in.FS.Open(in.Path) }

// Location returns the input's path as recorded in a package ("/" + Path).
func (in *Input) Location() string { return "/" + in.Path }

// Config tunes a run.
type Config struct {
	// Host marks a live host or host snapshot: container-runtime storage and virtual file systems are
	// skipped, and language packages are searched only in DefaultHostPaths plus ExtraPaths.
	Host bool
	// ExtraPaths are searched for language packages on hosts, besides the defaults.
	ExtraPaths []string
	// MaxPackages stops the run, reported as a limit, after this many packages (0: no limit).
	MaxPackages int
	// Timeout stops the walk, reported as a limit, after this long (0: no limit).
	Timeout time.Duration
	// MaxFileSize is the largest file an extractor is handed (0: DefaultMaxFileSize).
	MaxFileSize int64
	// Workers is the number of files extracted at once (0: GOMAXPROCS).
	Workers int
}

// DefaultMaxFileSize bounds the files handed to extractors; larger ones are reported and skipped.
const DefaultMaxFileSize = 512 << 20

// SkippedOnHosts are never walked on a host: virtual file systems and container-runtime storage (whose
// images are scanned as images, not as the host's software).
var SkippedOnHosts = []string{
	"proc", "sys", "dev", "run", "tmp",
	"var/lib/docker", "var/lib/containerd", "var/lib/containers", "var/lib/kubelet/pods",
	"run/containerd", "var/run/docker",
}

// DefaultHostPaths are where language packages are searched on hosts (OS package databases are read
// wherever they are). Deep inspection of the rest is opt-in through Config.ExtraPaths.
var DefaultHostPaths = []string{
	"usr/lib", "usr/local", "usr/share", "usr/bin", "usr/sbin", "bin", "sbin", "lib", "lib64", "opt",
	"srv", "app", "home", "root", "var/lib", "var/www", "etc",
}

// Registry is the explicit, ordered list of extractors a run uses.
type Registry struct {
	extractors []Extractor
}

// NewRegistry returns a registry of the given extractors.
func NewRegistry(exts ...Extractor) *Registry { return &Registry{extractors: exts} }

// Extractors returns the registered extractors.
func (r *Registry) Extractors() []Extractor { return r.extractors }

// Only returns a registry restricted to the named extractors.
func (r *Registry) Only(names ...string) *Registry {
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	var out []Extractor
	for _, e := range r.extractors {
		if keep[e.Name()] {
			out = append(out, e)
		}
	}
	return &Registry{extractors: out}
}

// OSDetector reads the operating system before package extraction, so that OS packages can be named
// with their release ("Debian:12").
type OSDetector interface {
	// Required reports whether the detector reads the file (for streaming sources' filters).
	Required(path string, info fs.FileInfo) bool
	// Detect returns the OS, or nil with no error if the target has none.
	Detect(ctx context.Context, fsys fs.FS) (*model.OS, error)
}
