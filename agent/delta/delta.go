// Package delta computes what changed between two inventories of a host, as package identities,
// and the content hash that names an inventory on the wire (protocol.Upload.Hash).
package delta

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Identity is what makes two packages the same package: ecosystem, name, version, arch and primary
// location (the same jar in two places is two packages). Fields are joined with NUL, which no
// field holds, so distinct packages never share an identity.
func Identity(p model.Package) string {
	loc := ""
	if len(p.Locations) > 0 {
		loc = p.Locations[0]
	}
	return strings.Join([]string{p.Ecosystem, p.Name, p.Version, p.Arch, loc}, "\x00")
}

// Identities returns the sorted, de-duplicated identities of pkgs.
func Identities(pkgs []model.Package) []string {
	ids := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		ids = append(ids, Identity(p))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Hash is the content hash of an inventory: "sha256:" + SHA-256 over its sorted identities, each
// followed by a newline. It depends only on the set of packages, not on their order or on when
// they were collected.
func Hash(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Diff returns the packages of cur whose identity is not in base (added) and the identities of base
// not in cur (removed). base must be sorted (as Identities returns it).
func Diff(base []string, cur []model.Package) (added []model.Package, removed []string) {
	curIDs := make(map[string]bool, len(cur))
	for _, p := range cur {
		id := Identity(p)
		if curIDs[id] {
			continue
		}
		curIDs[id] = true
		if _, found := slices.BinarySearch(base, id); !found {
			added = append(added, p)
		}
	}
	for _, id := range base {
		if !curIDs[id] {
			removed = append(removed, id)
		}
	}
	return added, removed
}

// FromIdentity rebuilds the identifying fields of a package from its identity, for the Removed list
// of an upload (the server matches removals on these fields).
func FromIdentity(id string) model.Package {
	f := strings.Split(id, "\x00")
	for len(f) < 5 {
		f = append(f, "")
	}
	p := model.Package{Ecosystem: f[0], Name: f[1], Version: f[2], Arch: f[3]}
	if f[4] != "" {
		p.Locations = []string{f[4]}
	}
	return p
}
