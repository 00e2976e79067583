// Package source turns a target (a directory, an image, a disk snapshot, an archive) into a read-only
// io/fs.FS plus metadata: the first step of source → inventory → match → findings → events.
package source

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Filter reports whether the content of a file will be read. Sources that stream (image layers,
// tarballs) keep only the content of files it wants, so that a layer is read once and never held
// whole; random-access sources may ignore it. Paths are io/fs names (no leading slash).
type Filter func(name string, info fs.FileInfo) bool

// Progress reports long-running work (a layer read, a blob pulled) to whoever draws it.
type Progress struct {
	Stage string // "layer", "pull", "disk"
	Item  string // a layer digest, a partition
	Done  int64  // bytes done
	Total int64  // bytes in all, or -1 when unknown
}

// Credentials for a registry. Empty fields fall back to the docker config.json, then to anonymous.
type Credentials struct {
	Username, Password string
	Token              string // a bearer token
	DockerConfig       string // path to a docker config.json; "" uses $DOCKER_CONFIG or ~/.docker
}

// Options tune how a target is opened.
type Options struct {
	// Platform selects a manifest from a multi-platform index: "os/arch[/variant]" (default
	// "linux/amd64") or "all" for every platform.
	Platform string
	// Insecure allows plain-HTTP registries.
	Insecure bool
	Auth     Credentials
	// Want selects the files whose content streaming sources keep; nil keeps everything.
	Want Filter
	// OnProgress, when set, receives progress reports. It must be cheap and must not block.
	OnProgress func(Progress)
	// TempDir holds spooled content; "" is os.TempDir().
	TempDir string
}

// Target is an opened target. Close releases its files and temporary data.
type Target struct {
	Info  model.SourceInfo
	FS    fs.FS
	close func() error
}

// NewTarget returns a target over fsys; closer may be nil.
func NewTarget(info model.SourceInfo, fsys fs.FS, closer func() error) *Target {
	return &Target{Info: info, FS: fsys, close: closer}
}

// Close releases the target.
func (t *Target) Close() error {
	if t.close == nil {
		return nil
	}
	return t.close()
}

// Opener opens one kind of target.
type Opener interface {
	// Kind is the scheme users write before the colon ("dir", "docker-archive", "disk", ...).
	Kind() string
	// Detect reports whether the local path is of this kind, looking at its content (magic bytes,
	// layout files). It must be cheap and must not fail loudly.
	Detect(path string) bool
	// Open opens ref (the part after "kind:"). It returns several targets only for a multi-platform
	// image opened with Platform "all".
	Open(ctx context.Context, ref string, opts Options) ([]*Target, error)
}

// Registry is the explicit list of openers, consulted in order for detection.
type Registry struct {
	openers []Opener
}

// NewRegistry returns a registry of the given openers. Detection tries them in this order, so list
// the most specific first and "dir" last.
func NewRegistry(openers ...Opener) *Registry {
	return &Registry{openers: openers}
}

// Kinds lists the registered kinds.
func (r *Registry) Kinds() []string {
	var out []string
	for _, o := range r.openers {
		out = append(out, o.Kind())
	}
	sort.Strings(out)
	return out
}

// Lookup returns the opener for a kind.
func (r *Registry) Lookup(kind string) (Opener, bool) {
	for _, o := range r.openers {
		if o.Kind() == kind {
			return o, true
		}
	}
	return nil, false
}

// Split separates "kind:ref". A target without a known kind prefix has kind "".
func (r *Registry) Split(target string) (kind, ref string) {
	if i := strings.Index(target, ":"); i > 0 {
		if _, ok := r.Lookup(target[:i]); ok {
			return target[:i], target[i+1:]
		}
	}
	return "", target
}

// Open opens a target written as "kind:ref" or as a plain local path whose kind is detected.
func (r *Registry) Open(ctx context.Context, target string, opts Options) ([]*Target, error) {
	kind, ref := r.Split(target)
	if kind == "" {
		for _, o := range r.openers {
			if o.Detect(ref) {
				kind = o.Kind()
				break
			}
		}
		if kind == "" {
			return nil, fmt.Errorf("%s: cannot tell what kind of target this is; write it as KIND:PATH with KIND one of %s",
				target, strings.Join(r.Kinds(), ", "))
		}
	}
	o, _ := r.Lookup(kind)
	ts, err := o.Open(ctx, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", kind, ref, err)
	}
	return ts, nil
}
