package reeval

import (
	"encoding/binary"
	"sync"
	"unsafe"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
)

// groupCache shares, during one feed delta, the findings built from identical alias groups:
// hosts run the same package versions, so thousands of resources regroup the very same hits, and
// building a finding (merging advisories, enrichment, CVSS parsing, scoring) costs far more than
// recognising the group. A finding is a function of its group's hits, in order, and the
// resource's exposure; only its ID names the resource (match.StableID), so a cached finding is
// copied and given the resource's ID. Copies share the cached finding's slices, which nothing
// downstream modifies (as they already share the enrichment's EPSS and KEV records).
//
// The cache lives for one FeedDelta only: within it advisories and enrichments cannot change,
// and every advisory a key names stays reachable (the memo, or the stale memo, holds it), so an
// advisory's address identifies it.
type groupCache struct {
	mu sync.Mutex
	m  map[string]*groupVal
}

type groupVal struct {
	hits     []match.Hit // keeps the advisories the key names by address reachable
	findings []model.Finding
}

func newGroupCache() *groupCache { return &groupCache{m: map[string]*groupVal{}} }

// groupFindings returns the findings of the selected hits (whole alias groups, in inventory
// order), as e.matcher.Findings would, building each distinct group once per feed delta. The
// findings come in group order, not sorted: callers key them by ID.
func (e *Engine) groupFindings(ent *entry, lite []liteHit, opts match.Options, gc *groupCache) ([]model.Finding, error) {
	// Union-find over the hits: two hits are in one group when they share an advisory ID or an
	// alias of ID shape, exactly the groups match.GroupHits forms over IDs.
	parent := make([]int32, len(lite))
	owner := make(map[string]int32, len(lite))
	var find func(i int32) int32
	find = func(i int32) int32 {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	join := func(i int32, name string) {
		if j, ok := owner[name]; ok {
			if ri, rj := find(i), find(j); ri != rj {
				parent[ri] = rj
			}
		} else {
			owner[name] = i
		}
	}
	for i := range lite {
		parent[i] = int32(i)
		a := lite[i].adv
		join(int32(i), a.ID)
		for _, al := range a.Aliases {
			if containsDash(al) {
				join(int32(i), al)
			}
		}
	}
	// Groups in the order of their first hit; members keep inventory order.
	pos := make(map[int32]int, 8)
	var groups [][]int32
	for i := range lite {
		r := find(int32(i))
		g, ok := pos[r]
		if !ok {
			g = len(groups)
			pos[r] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], int32(i))
	}

	var key []byte
	key = appendExposure(key, opts)
	base := len(key)
	out := make([]model.Finding, 0, len(groups))
	for _, g := range groups {
		key = key[:base]
		for _, i := range g {
			h := &lite[i]
			r := ent.pkgs[h.pkg]
			for _, x := range [...]uint32{r.eco, r.name, r.ver, r.srcName, r.srcVer, r.arch, r.purl, r.loc, r.layer} {
				key = binary.LittleEndian.AppendUint32(key, x)
			}
			key = binary.LittleEndian.AppendUint64(key, uint64(uintptr(unsafe.Pointer(h.adv))))
			key = binary.LittleEndian.AppendUint32(key, uint32(len(h.fixed)))
			key = append(key, h.fixed...)
		}
		gc.mu.Lock()
		v := gc.m[string(key)]
		gc.mu.Unlock()
		if v == nil {
			hits := make([]match.Hit, len(g))
			var p *model.Package
			last := -1
			for k, i := range g {
				h := &lite[i]
				if h.pkg != last {
					p, last = e.expand(ent.pkgs[h.pkg]), h.pkg
				}
				hits[k] = match.NewHit(p, h.adv, h.fixed)
			}
			fs, err := e.matcher.Findings(hits, opts)
			if err != nil {
				return nil, err
			}
			v = &groupVal{hits: hits, findings: fs}
			gc.mu.Lock()
			if cur := gc.m[string(key)]; cur != nil {
				v = cur
			} else {
				gc.m[string(key)] = v
			}
			gc.mu.Unlock()
		}
		for _, f := range v.findings {
			f.ID = match.StableID(opts.Account, opts.Resource, f.Type, f.VulnerabilityID)
			out = append(out, f)
		}
	}
	return out, nil
}

func appendExposure(b []byte, opts match.Options) []byte {
	switch {
	case opts.Exposure.NetworkExposed == nil:
		b = append(b, 0)
	case *opts.Exposure.NetworkExposed:
		b = append(b, 1)
	default:
		b = append(b, 2)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(opts.Exposure.ExposedPorts)))
	b = append(b, opts.Exposure.ExposedPorts...)
	if opts.IgnoreUnfixed {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return b
}

func containsDash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return true
		}
	}
	return false
}
