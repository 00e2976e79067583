package python

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/vigil-sec/vigil/model"
)

type poetryLock struct {
	Package []struct {
		Name     string   `toml:"name"`
		Version  string   `toml:"version"`
		Category string   `toml:"category"`
		Groups   []string `toml:"groups"`
		Source   struct {
			Type string `toml:"type"`
		} `toml:"source"`
	} `toml:"package"`
}

// ParsePoetryLock reads poetry.lock. Development packages are those of category "dev" (lock format
// 1.x) or, when the lock lists groups (format 2.1), those outside the "main" group. Lock format 2.0
// records neither, so nothing is marked dev there. Directory and file sources are the project's own
// code and are skipped.
func ParsePoetryLock(data []byte) ([]model.Package, error) {
	var lock poetryLock
	if _, err := toml.Decode(string(data), &lock); err != nil {
		return nil, fmt.Errorf("poetry.lock: %w", err)
	}
	var out []model.Package
	for _, p := range lock.Package {
		if p.Name == "" || p.Version == "" || p.Source.Type == "directory" || p.Source.Type == "file" {
			continue
		}
		pkg := newPackage(p.Name, p.Version)
		switch {
		case p.Category != "":
			pkg.Dev = p.Category == "dev"
		case len(p.Groups) > 0:
			pkg.Dev = !contains(p.Groups, "main")
		}
		out = append(out, pkg)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type pipfileDep struct {
	Version string `json:"version"`
}

// ParsePipfileLock reads Pipfile.lock: "default" holds the production packages and "develop" the
// development ones; a package in both is production. Entries without a "==" version (editable
// installs, VCS checkouts, local paths) pin nothing.
func ParsePipfileLock(data []byte) ([]model.Package, error) {
	var lock struct {
		Default map[string]pipfileDep `json:"default"`
		Develop map[string]pipfileDep `json:"develop"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("Pipfile.lock: %w", err)
	}
	var out []model.Package
	add := func(deps map[string]pipfileDep, dev bool) {
		names := make([]string, 0, len(deps))
		for n := range deps {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v, ok := strings.CutPrefix(deps[n].Version, "==")
			if !ok || v == "" {
				continue
			}
			if dev {
				if d, inDefault := lock.Default[n]; inDefault && d.Version == deps[n].Version {
					continue
				}
			}
			p := newPackage(n, strings.TrimPrefix(v, "="))
			p.Dev = dev
			out = append(out, p)
		}
	}
	add(lock.Default, false)
	add(lock.Develop, true)
	return out, nil
}

type uvDep struct {
	Name    string `toml:"name"`
	Version string `toml:"version"`
}

type uvPackage struct {
	Name    string                 `toml:"name"`
	Version string                 `toml:"version"`
	Source  map[string]interface{} `toml:"source"`
	Deps    []uvDep                `toml:"dependencies"`
	// Optional and dev dependencies are grouped by extra or group name.
	Optional map[string][]uvDep `toml:"optional-dependencies"`
	Dev      map[string][]uvDep `toml:"dev-dependencies"`
}

// ParseUVLock reads uv.lock. The project's own packages (editable, virtual, directory or path sources)
// are not reported; development packages are those reachable from the projects' dev-dependencies and
// not from their dependencies or optional dependencies.
func ParseUVLock(data []byte) ([]model.Package, error) {
	var lock struct {
		Package []uvPackage `toml:"package"`
	}
	if _, err := toml.Decode(string(data), &lock); err != nil {
		return nil, fmt.Errorf("uv.lock: %w", err)
	}
	local := func(p uvPackage) bool {
		for _, k := range []string{"editable", "virtual", "directory", "path"} {
			if _, ok := p.Source[k]; ok {
				return true
			}
		}
		return false
	}
	byName := map[string][]int{}
	for i, p := range lock.Package {
		byName[Normalize(p.Name)] = append(byName[Normalize(p.Name)], i)
	}
	resolve := func(d uvDep) []int {
		var out []int
		for _, i := range byName[Normalize(d.Name)] {
			if d.Version == "" || lock.Package[i].Version == d.Version {
				out = append(out, i)
			}
		}
		return out
	}
	reach := func(roots []uvDep) map[int]bool {
		seen := map[int]bool{}
		var stack []int
		for _, d := range roots {
			stack = append(stack, resolve(d)...)
		}
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[i] {
				continue
			}
			seen[i] = true
			p := lock.Package[i]
			for _, d := range p.Deps {
				stack = append(stack, resolve(d)...)
			}
			for _, ds := range p.Optional {
				for _, d := range ds {
					stack = append(stack, resolve(d)...)
				}
			}
		}
		return seen
	}
	var prodRoots, devRoots []uvDep
	for _, p := range lock.Package {
		if !local(p) {
			continue
		}
		prodRoots = append(prodRoots, p.Deps...)
		for _, ds := range p.Optional {
			prodRoots = append(prodRoots, ds...)
		}
		for _, ds := range p.Dev {
			devRoots = append(devRoots, ds...)
		}
	}
	prod, dev := reach(prodRoots), reach(devRoots)
	var out []model.Package
	for i, p := range lock.Package {
		if p.Name == "" || p.Version == "" || local(p) {
			continue
		}
		pkg := newPackage(p.Name, p.Version)
		pkg.Dev = dev[i] && !prod[i]
		out = append(out, pkg)
	}
	return out, nil
}
