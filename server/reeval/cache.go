package reeval

import (
	"sync"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
)

// cache sits between the matcher and the vulnerability database. Every resource holding a package
// needs the same advisories, so they are fetched once per key and shared by all resources until a
// feed delta names the key again. It also remembers which keys an ID appears under, so an
// enrichment change (new EPSS, a KEV entry) finds the resources to rescore.
type cache struct {
	inner match.Store

	mu       sync.Mutex
	advs     map[Key][]model.Advisory
	vulns    map[string]*model.Vulnerability
	vulnKeys map[string]map[Key]struct{}
}

func newCache(inner match.Store) *cache {
	return &cache{inner: inner, advs: map[Key][]model.Advisory{}, vulns: map[string]*model.Vulnerability{},
		vulnKeys: map[string]map[Key]struct{}{}}
}

func (c *cache) Advisories(ecosystem, name string) ([]model.Advisory, error) {
	k := Key{ecosystem, name}
	c.mu.Lock()
	a, ok := c.advs[k]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	a, err := c.inner.Advisories(ecosystem, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cached, ok := c.advs[k]; ok {
		return cached, nil // another worker fetched it meanwhile; share its copy
	}
	c.advs[k] = a
	for i := range a {
		for _, id := range append(append([]string{a[i].ID}, a[i].Aliases...), a[i].Related...) {
			ks := c.vulnKeys[id]
			if ks == nil {
				ks = map[Key]struct{}{}
				c.vulnKeys[id] = ks
			}
			ks[k] = struct{}{}
		}
	}
	return a, nil
}

func (c *cache) Vulnerability(id string) (*model.Vulnerability, error) {
	c.mu.Lock()
	v, ok := c.vulns[id]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := c.inner.Vulnerability(id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.vulns[id] = v
	c.mu.Unlock()
	return v, nil
}

// forgetKeys drops the advisories of changed keys.
func (c *cache) forgetKeys(ks []Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range ks {
		delete(c.advs, k)
	}
}

// forgetVulns drops enrichments of changed IDs and returns the keys whose advisories name them.
func (c *cache) forgetVulns(ids []string) []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Key
	for _, id := range ids {
		delete(c.vulns, id)
		for k := range c.vulnKeys[id] {
			out = append(out, k)
		}
	}
	return out
}

// drop forgets a key no resource holds any more.
func (c *cache) drop(k Key) {
	c.mu.Lock()
	delete(c.advs, k)
	c.mu.Unlock()
}
