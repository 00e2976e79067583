package reeval

import (
	"slices"
)

// Key names a package across the fleet the way the vulnerability database keys advisories: the
// package's ecosystem with its release ("Debian:12", "npm") and a lookup name (the source package for
// OS vendors, the normalized name for language ecosystems; see match.LookupNames).
type Key struct{ Ecosystem, Name string }

// strtab interns strings as dense uint32 IDs; 0 is "".
type strtab struct {
	ids map[string]uint32
	s   []string
}

func newStrtab() *strtab { return &strtab{ids: map[string]uint32{"": 0}, s: []string{""}} }

func (t *strtab) id(s string) uint32 {
	if id, ok := t.ids[s]; ok {
		return id
	}
	id := uint32(len(t.s))
	t.ids[s] = id
	t.s = append(t.s, s)
	return id
}

func (t *strtab) str(id uint32) string { return t.s[id] }

// index is the inverted index from a package key to the resources holding it. Keys and resources
// are dense numbers; each posting list is a sorted slice of resource handles, 4 bytes per
// (key, resource) pair, so 10,000 resources × 500 packages cost about 20 MB of postings.
type index struct {
	keyIDs   map[Key]uint32
	keys     []Key
	postings [][]uint32 // by key ID
}

func newIndex() *index { return &index{keyIDs: map[Key]uint32{}} }

func (x *index) keyID(k Key) uint32 {
	if id, ok := x.keyIDs[k]; ok {
		return id
	}
	id := uint32(len(x.keys))
	x.keyIDs[k] = id
	x.keys = append(x.keys, k)
	x.postings = append(x.postings, nil)
	return id
}

// lookup returns a key's ID without creating it.
func (x *index) lookup(k Key) (uint32, bool) {
	id, ok := x.keyIDs[k]
	return id, ok
}

func (x *index) add(key, res uint32) {
	p := x.postings[key]
	if n := len(p); n == 0 || p[n-1] < res {
		x.postings[key] = append(p, res) // handles mostly grow: the common case is an append
		return
	}
	i, found := slices.BinarySearch(p, res)
	if !found {
		x.postings[key] = slices.Insert(p, i, res)
	}
}

func (x *index) remove(key, res uint32) {
	p := x.postings[key]
	if i, found := slices.BinarySearch(p, res); found {
		p = slices.Delete(p, i, i+1)
		if len(p) == 0 {
			p = nil
		}
		x.postings[key] = p
	}
}

// holders returns the resources holding a key (shared; do not modify).
func (x *index) holders(key uint32) []uint32 { return x.postings[key] }

// pairs counts (key, resource) pairs.
func (x *index) pairs() int {
	n := 0
	for _, p := range x.postings {
		n += len(p)
	}
	return n
}
