package reeval

import (
	"context"
	"sync"
	"testing"

	synth "github.com/vigil-sec/vigil/bench/fleet"
	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
)

// The synthetic fleet of the benchmarks is bench/fleet's: real package names and versions, real
// PyPI advisories, synthetic Debian and npm ones.

// memStore is a concurrency-safe in-memory match.Store.
type memStore struct {
	mu    sync.RWMutex
	advs  map[Key][]model.Advisory
	vulns map[string]*model.Vulnerability
}

func (s *memStore) Advisories(eco, name string) ([]model.Advisory, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.advs[Key{eco, match.NormalizeName(eco, name)}], nil
}

func (s *memStore) Vulnerability(id string) (*model.Vulnerability, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.vulns[id], nil
}

func (s *memStore) add(a model.Advisory) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{a.Ecosystem, match.NormalizeName(a.Ecosystem, a.Package)}
	s.advs[k] = append(s.advs[k], a)
	return k
}

// replace swaps an advisory (same source, ID and package) for a new version of it.
func (s *memStore) replace(a model.Advisory) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{a.Ecosystem, match.NormalizeName(a.Ecosystem, a.Package)}
	advs := append([]model.Advisory(nil), s.advs[k]...)
	for i := range advs {
		if advs[i].Source == a.Source && advs[i].ID == a.ID {
			advs[i] = a
		}
	}
	s.advs[k] = advs
	return k
}

func newMemStore(c *synth.Corpus) *memStore {
	s := &memStore{advs: map[Key][]model.Advisory{}, vulns: map[string]*model.Vulnerability{}}
	for _, a := range c.Advisories {
		s.add(a)
	}
	return s
}

func TestSyntheticFleetShape(t *testing.T) {
	if !synth.Available() {
		t.Skip("benchmark corpus not present")
	}
	c, err := synth.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inv := c.Inventory(42, 500)
	if len(inv.Packages) != 500 {
		t.Errorf("inventory has %d packages", len(inv.Packages))
	}
	t.Logf("pools: %d debian, %d npm, %d pypi; %d advisories", len(c.Debian), len(c.NPM), len(c.PyPI), len(c.Advisories))
}
