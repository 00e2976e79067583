package npm

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

type pnpmLock struct {
	LockfileVersion string                  `yaml:"lockfileVersion"`
	Importers       map[string]pnpmImporter `yaml:"importers"`
	Packages        map[string]pnpmPackage  `yaml:"packages"`
	Snapshots       map[string]pnpmSnapshot `yaml:"snapshots"`
	// Lockfiles of a single project before v9 keep the importer's fields at the top level.
	pnpmImporter `yaml:",inline"`
}

type pnpmImporter struct {
	Dependencies         map[string]yaml.Node `yaml:"dependencies"`
	DevDependencies      map[string]yaml.Node `yaml:"devDependencies"`
	OptionalDependencies map[string]yaml.Node `yaml:"optionalDependencies"`
}

type pnpmPackage struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Dev     *bool  `yaml:"dev"`
}

type pnpmSnapshot struct {
	Dependencies         map[string]string `yaml:"dependencies"`
	OptionalDependencies map[string]string `yaml:"optionalDependencies"`
}

// ParsePnpmLock reads pnpm-lock.yaml. Package keys differ by lockfile version: "/name/1.2.3_peer@1"
// (v5), "/name@1.2.3(peer@1)" (v6) and "name@1.2.3" (v9, with the peer variants moved to "snapshots").
// v5 and v6 mark development packages with "dev: true"; v9 does not, so dev-only packages are those
// reachable from the importers' devDependencies and not from their dependencies or
// optionalDependencies, following the snapshots' dependency edges.
func ParsePnpmLock(data []byte) ([]Entry, error) {
	var lock pnpmLock
	if err := yaml.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("pnpm-lock.yaml: %w", err)
	}
	major := 0
	if v := strings.Trim(lock.LockfileVersion, "'\""); v != "" {
		m, _, _ := strings.Cut(v, ".")
		n, err := strconv.Atoi(m)
		if err != nil {
			return nil, fmt.Errorf("pnpm-lock.yaml: bad lockfileVersion %q", lock.LockfileVersion)
		}
		major = n
	}
	var devOnly map[string]bool
	if major >= 9 || len(lock.Snapshots) > 0 {
		devOnly = pnpmDevOnly(&lock)
	}
	var out []Entry
	for key, p := range lock.Packages {
		name, version, ok := pnpmKey(key, major)
		if p.Name != "" && p.Version != "" {
			name, version, ok = p.Name, p.Version, true
		}
		if !ok || name == "" || !registryVersion(version) {
			continue
		}
		dev := false
		if p.Dev != nil {
			dev = *p.Dev
		} else if devOnly != nil {
			dev = devOnly[name+"@"+version]
		}
		out = append(out, Entry{Name: name, Version: version, Dev: dev})
	}
	return dedupe(out), nil
}

// pnpmKey parses a packages key into name and version, dropping peer-dependency suffixes.
func pnpmKey(key string, major int) (name, version string, ok bool) {
	k := strings.TrimPrefix(key, "/")
	if i := strings.IndexByte(k, '('); i >= 0 {
		k = k[:i]
	}
	if major > 0 && major < 6 {
		i := strings.LastIndexByte(k, '/')
		if i <= 0 {
			return "", "", false
		}
		name, version = k[:i], k[i+1:]
		version, _, _ = strings.Cut(version, "_")
		return name, version, true
	}
	name, version, ok = splitDescriptor(k)
	return name, version, ok
}

// pnpmDevOnly returns the set of "name@version" reachable only from devDependencies.
func pnpmDevOnly(lock *pnpmLock) map[string]bool {
	importers := lock.Importers
	if len(importers) == 0 {
		importers = map[string]pnpmImporter{".": lock.pnpmImporter}
	}
	var prodRoots, devRoots []string
	for _, imp := range importers {
		for _, deps := range []map[string]yaml.Node{imp.Dependencies, imp.OptionalDependencies} {
			for n, v := range deps {
				if k := snapshotKey(n, importerVersion(v)); k != "" {
					prodRoots = append(prodRoots, k)
				}
			}
		}
		for n, v := range imp.DevDependencies {
			if k := snapshotKey(n, importerVersion(v)); k != "" {
				devRoots = append(devRoots, k)
			}
		}
	}
	prod := pnpmReach(lock.Snapshots, prodRoots)
	dev := pnpmReach(lock.Snapshots, devRoots)
	out := map[string]bool{}
	for k := range dev {
		if !prod[k] {
			out[k] = true
		}
	}
	return out
}

// importerVersion reads an importer dependency: "1.2.3" (v5) or {specifier, version} (v6, v9).
func importerVersion(n yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	var v struct {
		Version string `yaml:"version"`
	}
	if n.Kind == yaml.MappingNode && n.Decode(&v) == nil {
		return v.Version
	}
	return ""
}

// snapshotKey names the snapshot a dependency edge points at: "name@version(peers)", or the value
// itself for an alias ("string-width-cjs": "string-width@4.2.3"). Links to local projects have none.
func snapshotKey(name, value string) string {
	if value == "" || strings.HasPrefix(value, "link:") || strings.HasPrefix(value, "file:") {
		return ""
	}
	base, _, _ := strings.Cut(value, "(")
	if strings.Contains(base[min(1, len(base)):], "@") {
		return value
	}
	return name + "@" + value
}

// pnpmReach walks the snapshot graph from roots and returns the base keys ("name@version", peers
// dropped) it reaches.
func pnpmReach(snaps map[string]pnpmSnapshot, roots []string) map[string]bool {
	seen := map[string]bool{}
	reached := map[string]bool{}
	stack := append([]string(nil), roots...)
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[k] {
			continue
		}
		seen[k] = true
		base, _, _ := strings.Cut(k, "(")
		reached[base] = true
		s, ok := snaps[k]
		if !ok {
			continue
		}
		for _, deps := range []map[string]string{s.Dependencies, s.OptionalDependencies} {
			for n, v := range deps {
				if c := snapshotKey(n, v); c != "" && !seen[c] {
					stack = append(stack, c)
				}
			}
		}
	}
	return reached
}
