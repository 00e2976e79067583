package match

import (
	"strings"
	"sync"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/version"
)

// Hit is one package affected by one advisory, as Matcher.Package returns it. The server keeps the
// hits of each package so that a changed inventory or a feed delta re-matches only what changed and
// regroups the rest with Findings.
type Hit = hit

// Package is the affected installed package.
func (h hit) Package() *model.Package { return h.pkg }

// Advisory is the advisory that affects it.
func (h hit) Advisory() *model.Advisory { return h.adv }

// Fixed is the version that removes the vulnerability, or "" when there is none.
func (h hit) Fixed() string { return h.fixed }

// NewHit builds a hit; it exists for callers that store hits in their own compact form.
func NewHit(p *model.Package, a *model.Advisory, fixed string) Hit {
	return hit{pkg: p, adv: a, fixed: fixed}
}

// Findings groups hits into findings (aliases merged, enriched and scored) exactly as Match does.
// Hits of one package may come from different Package calls; the order of hits does not matter.
func (m *Matcher) Findings(hits []Hit, opts Options) ([]model.Finding, error) {
	return m.findings(hits, opts)
}

// LookupNames returns the names under which Package looks a package up in the store (the source
// package for Debian, Ubuntu and Alpine; source and binary names for rpm vendors; the normalized name
// for language ecosystems). An index of these names tells which resources a changed advisory affects.
func LookupNames(p *model.Package) []string {
	ks := keys(p)
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.name
	}
	return out
}

// GroupHits splits hits into the groups Findings turns into one finding each (advisories joined by
// shared IDs and aliases), in the order of each group's first hit. Findings over the hits of whole
// groups gives, for those groups, the same findings as over all hits: callers regroup only the
// groups a change touched.
func GroupHits(hits []Hit) [][]Hit {
	uf := unionFind{}
	for _, h := range hits {
		uf.add(h.adv.ID)
		for _, al := range h.adv.Aliases {
			if strings.Contains(al, "-") {
				uf.union(h.adv.ID, al)
			}
		}
	}
	pos := map[string]int{}
	var out [][]Hit
	for _, h := range hits {
		r := uf.find(h.adv.ID)
		i, ok := pos[r]
		if !ok {
			i = len(out)
			pos[r] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], h)
	}
	return out
}

// WithParseCache returns a matcher over the same store that remembers parsed versions, up to max
// of them (then it starts afresh). Advisories list the same versions again and again (an OSV PyPI
// record enumerates hundreds), and a server matches them for many package versions, so parsing
// dominates without it. The matcher it returns is safe for concurrent use if the store is.
func (m *Matcher) WithParseCache(max int) *Matcher {
	return &Matcher{store: m.store, parse: &parseCache{max: max, by: map[string]map[string]parsed{}}}
}

type parsed struct {
	v   version.Version
	err error
}

type parseCache struct {
	mu  sync.RWMutex
	max int
	n   int
	by  map[string]map[string]parsed // scheme name → raw version → result
}

// cachedScheme parses through a parseCache.
type cachedScheme struct {
	version.Scheme
	c *parseCache
}

func (s cachedScheme) Parse(raw string) (version.Version, error) {
	name := s.Scheme.Name()
	s.c.mu.RLock()
	r, ok := s.c.by[name][raw]
	s.c.mu.RUnlock()
	if ok {
		return r.v, r.err
	}
	v, err := s.Scheme.Parse(raw)
	s.c.mu.Lock()
	if s.c.n >= s.c.max {
		s.c.by, s.c.n = map[string]map[string]parsed{}, 0
	}
	m := s.c.by[name]
	if m == nil {
		m = map[string]parsed{}
		s.c.by[name] = m
	}
	if _, dup := m[raw]; !dup {
		m[raw] = parsed{v, err}
		s.c.n++
	}
	s.c.mu.Unlock()
	return v, err
}
