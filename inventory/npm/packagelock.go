package npm

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// ParseManifest reads an installed package's package.json. ok is false for manifests that are not an
// installed package (no name or no version, as in some build directories).
func ParseManifest(data []byte) (model.Package, bool, error) {
	var m struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return model.Package{}, false, fmt.Errorf("package.json: %w", err)
	}
	m.Name, m.Version = strings.TrimSpace(m.Name), strings.TrimSpace(m.Version)
	if m.Name == "" || !registryVersion(m.Version) {
		return model.Package{}, false, nil
	}
	return newPackage(m.Name, m.Version), true, nil
}

type lockV2Entry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Dev     bool   `json:"dev"`
	Link    bool   `json:"link"`
}

type lockV1Dep struct {
	Version      string               `json:"version"`
	Dev          bool                 `json:"dev"`
	Dependencies map[string]lockV1Dep `json:"dependencies"`
}

// RootPath is the Entry.Path of a lockfile's root project.
const RootPath = "."

// ParsePackageLock reads package-lock.json or npm-shrinkwrap.json. Version 2 and 3 lockfiles are read
// from their "packages" map, keyed by install path: the root project ("") and workspace projects (keys
// outside node_modules) are the project's own code, and "link" entries point at them, so none of
// those is a registry package. Version 1 lockfiles are read from the nested "dependencies" tree.
// "devOptional" entries are not dev-only: they are installed in production when optional dependencies
// are, so only "dev" marks a development dependency.
func ParsePackageLock(data []byte) ([]Entry, error) {
	var lock struct {
		LockfileVersion int                    `json:"lockfileVersion"`
		Name            string                 `json:"name"`
		Version         string                 `json:"version"`
		Packages        map[string]lockV2Entry `json:"packages"`
		Dependencies    map[string]lockV1Dep   `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("package-lock: %w", err)
	}
	var out []Entry
	// The root project itself is reported too (as syft and SBOM consumers expect): it is the
	// application the lockfile belongs to. Its Path is RootPath.
	rootName, rootVersion := lock.Name, lock.Version
	if r, ok := lock.Packages[""]; ok && r.Name != "" {
		rootName, rootVersion = r.Name, r.Version
	}
	if rootName != "" && registryVersion(rootVersion) {
		out = append(out, Entry{Name: rootName, Version: rootVersion, Path: RootPath})
	}
	switch {
	case lock.Packages != nil:
		for key, e := range lock.Packages {
			i := strings.LastIndex(key, "node_modules/")
			if key == "" || e.Link || i < 0 {
				continue
			}
			name := e.Name
			if name == "" {
				name = key[i+len("node_modules/"):]
			}
			if name == "" || !registryVersion(e.Version) {
				continue
			}
			out = append(out, Entry{Name: name, Version: e.Version, Dev: e.Dev, Path: key})
		}
	case lock.Dependencies != nil:
		walkV1(lock.Dependencies, "", 0, &out)
	default:
		if lock.LockfileVersion == 0 {
			return nil, errors.New("package-lock: neither \"packages\" nor \"dependencies\": not a lockfile")
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Path < out[b].Path })
	return out, nil
}

// maxV1Depth bounds the recursion over a hostile lockfile's nesting (real trees are a few levels deep).
const maxV1Depth = 128

func walkV1(deps map[string]lockV1Dep, parent string, depth int, out *[]Entry) {
	if depth > maxV1Depth {
		return
	}
	for key, d := range deps {
		p := parent + "node_modules/" + key
		name, version := key, d.Version
		// An alias ("foo": "npm:bar@1.2.3") installs bar under the directory foo.
		if rest, ok := strings.CutPrefix(version, "npm:"); ok {
			if n, v, ok := splitNameVersion(rest); ok {
				name, version = n, v
			}
		}
		if registryVersion(version) {
			*out = append(*out, Entry{Name: name, Version: version, Dev: d.Dev, Path: p})
		}
		if len(d.Dependencies) > 0 {
			walkV1(d.Dependencies, p+"/", depth+1, out)
		}
	}
}
