package python

import (
	"path"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Finish implements inventory.Finisher: a distribution is reported once per installed instance.
//
//   - Installed distributions (metadata files) are instances and are never merged with one another: two
//     environments holding six 1.16.0 are two instances.
//   - A declared pin (requirements file or lockfile) with the same normalized name and version as an
//     installed distribution below the declaring file's directory (a project's virtual environment, or
//     anything when the file sits at the root of a function package or an image) is that instance: the
//     declaring file is added to its locations and it is no new package.
//   - Declared pins left over are merged with one another under the same rule (requirements.txt,
//     poetry.lock and a -r included file of one project pinning the same version are one package),
//     requirements files first in the locations. A pin whose version differs from what is installed is a
//     separate package: the project declares a version that is not the one on disk, and both are
//     reported (as the benchmark's ground truth does).
//   - A merged package is dev only if every source says so.
func (*Extractor) Finish(pkgs []model.Package) []model.Package {
	var installed, declared []model.Package
	for _, p := range pkgs {
		if len(p.Locations) > 0 && classify(strings.TrimPrefix(p.Locations[0], "/")) == kindMetadata {
			installed = append(installed, p)
		} else {
			declared = append(declared, p)
		}
	}
	key := func(p model.Package) string { return Normalize(p.Name) + "\x00" + p.Version }
	byKey := map[string][]int{}
	for i, p := range installed {
		byKey[key(p)] = append(byKey[key(p)], i)
	}
	// Requirements files before lockfiles, then by path, so that the name is spelled as a person wrote
	// it (poetry lowercases names) and the result does not depend on extraction order.
	sort.SliceStable(declared, func(a, b int) bool {
		ra, rb := declRank(declared[a]), declRank(declared[b])
		if ra != rb {
			return ra < rb
		}
		return first(declared[a]) < first(declared[b])
	})
	declDev := map[int]bool{} // installed index → every declaring source says dev
	var rest []model.Package
	restByKey := map[string][]int{}
	for _, d := range declared {
		dir := path.Dir(first(d))
		merged := false
		for _, i := range byKey[key(d)] {
			if under(dir, first(installed[i])) {
				installed[i].Locations = appendUnique(installed[i].Locations, d.Locations...)
				if prev, ok := declDev[i]; ok {
					declDev[i] = prev && d.Dev
				} else {
					declDev[i] = d.Dev
				}
				merged = true
			}
		}
		if merged {
			continue
		}
		for _, j := range restByKey[key(d)] {
			r := &rest[j]
			if rd := path.Dir(first(*r)); under(rd, first(d)) || under(dir, first(*r)) {
				r.Locations = appendUnique(r.Locations, d.Locations...)
				r.Dev = r.Dev && d.Dev
				merged = true
				break
			}
		}
		if !merged {
			restByKey[key(d)] = append(restByKey[key(d)], len(rest))
			rest = append(rest, d)
		}
	}
	for i, dev := range declDev {
		installed[i].Dev = dev // the project's lockfile knows what the metadata does not
	}
	return append(installed, rest...)
}

func declRank(p model.Package) int {
	if classify(strings.TrimPrefix(first(p), "/")) == kindRequirements {
		return 0
	}
	return 1
}

// under reports whether the file p is inside directory dir.
func under(dir, p string) bool {
	return dir == "/" || strings.HasPrefix(p, dir+"/")
}

func appendUnique(list []string, add ...string) []string {
outer:
	for _, s := range add {
		for _, x := range list {
			if x == s {
				continue outer
			}
		}
		list = append(list, s)
	}
	return list
}

func first(p model.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0]
}
