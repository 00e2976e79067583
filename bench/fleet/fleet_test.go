package fleet

import (
	"context"
	"slices"
	"testing"
)

// Every load of the corpus gives each package the same versions in the same order, so every host
// the same inventory: a run on a directory an earlier run loaded resubmits what is stored. (Go
// randomises map iteration, so loads in one process differ as two processes' would.)
func TestCorpusDeterministic(t *testing.T) {
	ctx := context.Background()
	first, err := Load(ctx)
	if err != nil {
		t.Skipf("corpus: %v", err)
	}
	for range 4 {
		again, err := Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(first.PyPI, again.PyPI, func(p, q Pool) bool { return p.Name == q.Name && slices.Equal(p.Versions, q.Versions) }) {
			t.Fatal("two loads order some package's versions differently")
		}
	}
}
