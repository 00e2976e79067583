// Package delta computes what changed between two inventories of a host, on the identities and
// the hash that the wire contract defines (protocol.PackageIdentity, protocol.InventoryHash), so
// that the server rebuilds exactly the inventory the agent hashed.
package delta

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

// Identity is protocol.PackageIdentity: the package's JSON, so every field takes part.
func Identity(p model.Package) string { return protocol.PackageIdentity(p) }

// Identities returns the sorted identities of pkgs. Equal packages stay repeated: an inventory is
// a multiset, as protocol.ApplyDelta treats it.
func Identities(pkgs []model.Package) []string {
	ids := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		ids = append(ids, Identity(p))
	}
	slices.Sort(ids)
	return ids
}

// Hash is protocol.InventoryHash: over the OS and the sorted package identities, not over timings
// or statuses, so the same software on the host hashes the same whenever it is collected.
func Hash(inv *model.Inventory) string { return protocol.InventoryHash(inv) }

// Diff returns the packages of cur not in base (added) and the identities of base not in cur
// (removed), counting repeats. base must be sorted (as Identities returns it).
func Diff(base []string, cur []model.Package) (added []model.Package, removed []string) {
	left := make(map[string]int, len(base))
	for _, id := range base {
		left[id]++
	}
	for _, p := range cur {
		id := Identity(p)
		if left[id] > 0 {
			left[id]--
			continue
		}
		added = append(added, p)
	}
	for i, id := range base {
		if i > 0 && base[i-1] == id {
			continue
		}
		for n := left[id]; n > 0; n-- {
			removed = append(removed, id)
		}
	}
	return added, removed
}

// FromIdentity returns the package an identity was made from (it is the package's JSON).
func FromIdentity(id string) (model.Package, error) {
	var p model.Package
	if err := json.Unmarshal([]byte(id), &p); err != nil {
		return p, fmt.Errorf("package identity: %w", err)
	}
	return p, nil
}
