package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/vigil-sec/vigil/model"
)

// PackageIdentity is the key of a package in a delta upload: its JSON encoding, so every field
// takes part and a changed version is one removal plus one addition. Both sides compute it the
// same way; Removed entries are matched by it.
func PackageIdentity(p model.Package) string {
	b, err := json.Marshal(p)
	if err != nil {
		// A Package holds only strings, bools and string slices: Marshal cannot fail.
		panic(err)
	}
	return string(b)
}

// InventoryHash is the Hash of an Upload: "sha256:<hex>" over the OS and the sorted package
// identities. Fields that change on every run (timings, extractor statuses, warnings, source) are
// left out, so an unchanged host hashes the same and a delta upload, which carries only packages,
// can be verified after it is applied.
func InventoryHash(inv *model.Inventory) string {
	h := sha256.New()
	h.Write([]byte("vigil-inventory-v1\n"))
	osJSON, _ := json.Marshal(inv.OS) // "null" without one
	h.Write(osJSON)
	h.Write([]byte{'\n'})
	ids := make([]string, len(inv.Packages))
	for i, p := range inv.Packages {
		ids[i] = PackageIdentity(p)
	}
	slices.Sort(ids)
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ApplyDelta returns base with u.Removed taken out and u.Added put in (a multiset: each removal
// takes out one equal package). It fails when a removed package is not in base: the two sides
// disagree about the base and a full upload is needed. base is not modified. The caller checks
// the result against u.Hash.
func ApplyDelta(base *model.Inventory, u *Upload) (*model.Inventory, error) {
	out := *base
	remove := make(map[string]int, len(u.Removed))
	for _, p := range u.Removed {
		remove[PackageIdentity(p)]++
	}
	out.Packages = make([]model.Package, 0, len(base.Packages)+len(u.Added))
	for _, p := range base.Packages {
		id := PackageIdentity(p)
		if remove[id] > 0 {
			remove[id]--
			continue
		}
		out.Packages = append(out.Packages, p)
	}
	for id, n := range remove {
		if n > 0 {
			return nil, fmt.Errorf("delta removes a package the base inventory does not hold: %.200s", id)
		}
	}
	out.Packages = append(out.Packages, u.Added...)
	return &out, nil
}
