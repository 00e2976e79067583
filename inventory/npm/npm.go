// Package npm finds npm packages: lockfiles (package-lock.json v1–v3, npm-shrinkwrap.json, yarn.lock
// classic and berry, pnpm-lock.yaml v5–v9) and the packages installed under node_modules.
//
// It is one extractor so that its Finish step can reconcile a project's lockfile with the node_modules
// installed from it: each installed package instance is reported once. See Finish for the rules.
package npm

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// Size caps: monorepo lockfiles reach tens of MiB; a package.json is rarely over a few hundred KiB.
const (
	maxLockfileSize = 128 << 20
	maxManifestSize = 8 << 20
)

// Lockfile names, in order of precedence when a project has several (npm's own shrinkwrap wins over
// its lockfile; a stale yarn.lock next to a package-lock.json is the most common leftover).
var lockfileRank = map[string]int{
	"npm-shrinkwrap.json": 0,
	"package-lock.json":   1,
	"pnpm-lock.yaml":      2,
	"yarn.lock":           3,
}

// Extractor is the npm extractor.
type Extractor struct{}

// New returns the npm extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return "npm" }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

// Required implements inventory.Extractor: project lockfiles outside node_modules (a lockfile shipped
// inside a published package describes its author's tree, not this one) and the package.json of every
// package directory inside node_modules.
func (*Extractor) Required(p string, info fs.FileInfo) bool {
	base := path.Base(p)
	if _, ok := lockfileRank[base]; ok {
		return !inNodeModules(p)
	}
	return base == "package.json" && InstalledManifest(p)
}

func inNodeModules(p string) bool {
	return strings.HasPrefix(p, "node_modules/") || strings.Contains(p, "/node_modules/")
}

// InstalledManifest reports whether p is the package.json of an installed package: below the first
// node_modules directory, the path is a chain of package directories ("name" or "@scope/name"), each
// followed by a nested node_modules, ending in package.json. pnpm's virtual store
// (node_modules/.pnpm/<name>@<version>/node_modules/<name>) is part of the chain. Manifests deeper
// inside a package (dist/package.json, test fixtures) are not installed packages.
func InstalledManifest(p string) bool {
	i := strings.Index("/"+p, "/node_modules/")
	if i < 0 || strings.Contains("/"+p[:i], "/.yarn/") {
		// Yarn Plug'n'Play's unplugged copies (.yarn/unplugged/...) are entries of yarn.lock already.
		return false
	}
	segs := strings.Split(p[i:], "/") // node_modules, x, ..., package.json
	if len(segs) < 3 || segs[len(segs)-1] != "package.json" {
		return false
	}
	segs = segs[:len(segs)-1]
	for k := 0; k < len(segs); {
		if segs[k] != "node_modules" || k+1 >= len(segs) {
			return false
		}
		k++
		switch {
		case segs[k] == ".pnpm":
			if k+2 >= len(segs) { // .pnpm/<entry> must be followed by node_modules
				return false
			}
			k += 2
			continue
		case strings.HasPrefix(segs[k], "@"):
			if k+1 >= len(segs) || segs[k+1] == "" || segs[k+1] == "node_modules" {
				return false
			}
			k++
		case segs[k] == "" || strings.HasPrefix(segs[k], "."):
			return false
		}
		k++
	}
	return true
}

// Extract implements inventory.Extractor.
func (*Extractor) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	base := path.Base(in.Path)
	limit := int64(maxLockfileSize)
	if base == "package.json" {
		limit = maxManifestSize
	}
	if in.Config != nil && in.Config.MaxFileSize > 0 && in.Config.MaxFileSize < limit {
		limit = in.Config.MaxFileSize
	}
	data, err := fsx.ReadFileLimit(in.FS, in.Path, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	var entries []Entry
	switch base {
	case "package.json":
		p, ok, err := ParseManifest(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Location(), err)
		}
		if !ok {
			return nil, nil
		}
		p.Locations = []string{in.Location()}
		return []model.Package{p}, nil
	case "package-lock.json", "npm-shrinkwrap.json":
		entries, err = ParsePackageLock(data)
	case "yarn.lock":
		entries, err = ParseYarnLock(data)
	case "pnpm-lock.yaml":
		entries, err = ParsePnpmLock(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	out := make([]model.Package, 0, len(entries))
	for _, e := range entries {
		p := newPackage(e.Name, e.Version)
		p.Dev = e.Dev
		// The fragment names the entry inside the lockfile: the install path for package-lock
		// entries, "name@version" for yarn and pnpm. Finish uses it to match installed packages and
		// removes it.
		key := e.Path
		if key == "" {
			key = e.Name + "@" + e.Version
		}
		p.Locations = []string{in.Location() + "#" + key}
		out = append(out, p)
	}
	return out, nil
}

// Entry is one package of a lockfile.
type Entry struct {
	Name    string
	Version string
	Dev     bool
	// Path is the install path relative to the lockfile's directory ("node_modules/a/node_modules/b"),
	// for lockfiles that record it (package-lock.json); empty otherwise.
	Path string
}

func newPackage(name, version string) model.Package {
	ns, n := "", name
	if strings.HasPrefix(name, "@") {
		if i := strings.IndexByte(name, '/'); i > 0 {
			ns, n = name[:i], name[i+1:]
		}
	}
	return model.Package{
		Name:      name,
		Version:   version,
		Ecosystem: model.EcoNPM,
		PURL:      packageurl.NewPackageURL(packageurl.TypeNPM, ns, n, version, nil, "").ToString(),
	}
}

// splitNameVersion splits "name@version" or "@scope/name@version" at the version's "@".
func splitNameVersion(s string) (name, version string, ok bool) {
	i := strings.LastIndexByte(s, '@')
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// registryVersion reports whether v looks like a published version rather than a local path, a link
// or a URL: those name no registry release that advisories could be about.
func registryVersion(v string) bool {
	if v == "" {
		return false
	}
	return !strings.ContainsAny(v, ":/\\ ")
}
