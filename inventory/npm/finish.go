package npm

import (
	"path"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Finish implements inventory.Finisher: it reconciles each project's lockfile with the packages
// installed in the project's node_modules, so that every package instance appears once.
//
// A project is a directory holding a lockfile; an installed package belongs to the project whose
// directory is above its first node_modules. The rules:
//   - The project itself (a package-lock's root entry) is reported once, at the lockfile.
//   - When a project has several lockfiles, only the first of npm-shrinkwrap.json, package-lock.json,
//     pnpm-lock.yaml, yarn.lock is used (the others are usually stale leftovers).
//   - Installed packages are what is there: each is reported, once per directory. When the lockfile
//     has the same package (the entry at the same install path for package-lock.json; the same
//     name@version for yarn and pnpm, whose lockfiles do not record install paths), the lockfile's
//     dev flag is taken and the lockfile is added to the package's locations, after the package.json.
//   - Lockfile entries with no installed instance are reported only when the project has no installed
//     packages at all (a repository checkout). Once node_modules is there, a missing entry was not
//     installed: a dev dependency of a production install (npm ci --omit=dev) or an optional package
//     for another platform, and nothing of it is on the resource.
func (*Extractor) Finish(pkgs []model.Package) []model.Package {
	type lockRef struct {
		file, key string // lockfile location and its entry key
		pkg       model.Package
	}
	var (
		installed []model.Package
		locks     []lockRef
		best      = map[string]string{} // project dir → lockfile location used
	)
	for _, p := range pkgs {
		if len(p.Locations) == 0 {
			installed = append(installed, p)
			continue
		}
		file, key, ok := strings.Cut(p.Locations[0], "#")
		if !ok {
			installed = append(installed, p)
			continue
		}
		locks = append(locks, lockRef{file: file, key: key, pkg: p})
		dir := path.Dir(file)
		if cur, ok := best[dir]; !ok || lockfileRank[path.Base(file)] < lockfileRank[path.Base(cur)] {
			best[dir] = file
		}
	}

	// Installed packages by install directory and by project + name@version.
	byDir := map[string]int{}
	byName := map[string][]int{}
	hasInstalled := map[string]bool{}
	for i, p := range installed {
		if len(p.Locations) == 0 {
			continue
		}
		dir := path.Dir(p.Locations[0])
		root := projectOf(p.Locations[0])
		byDir[dir] = i
		byName[root+"\x00"+p.Name+"@"+p.Version] = append(byName[root+"\x00"+p.Name+"@"+p.Version], i)
		hasInstalled[root] = true
	}

	var out []model.Package
	for _, l := range locks {
		root := path.Dir(l.file)
		if best[root] != l.file {
			continue
		}
		if l.key == RootPath {
			p := l.pkg
			p.Locations = []string{l.file}
			out = append(out, p)
			continue
		}
		var matches []int
		installRoot := root
		if strings.Contains(l.key, "node_modules/") {
			// A package-lock.json install path; workspaces may install below their own directory.
			dir := path.Join(root, l.key)
			installRoot = projectOf(dir + "/package.json")
			if i, ok := byDir[dir]; ok {
				matches = []int{i}
			}
		} else {
			matches = byName[root+"\x00"+l.key]
		}
		for _, i := range matches {
			installed[i].Dev = l.pkg.Dev
			installed[i].Locations = appendUnique(installed[i].Locations, l.file)
		}
		if len(matches) == 0 && !hasInstalled[installRoot] {
			p := l.pkg
			p.Locations = []string{l.file}
			out = append(out, p)
		}
	}
	out = append(out, installed...)
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Name != out[b].Name {
			return out[a].Name < out[b].Name
		}
		if out[a].Version != out[b].Version {
			return out[a].Version < out[b].Version
		}
		return first(out[a]) < first(out[b])
	})
	return out
}

// projectOf returns the project directory of an installed package.json: the directory above the
// first node_modules ("/app/node_modules/a/node_modules/b/package.json" → "/app").
func projectOf(loc string) string {
	i := strings.Index(loc, "/node_modules/")
	if i <= 0 {
		return "/"
	}
	return loc[:i]
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func first(p model.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0]
}
