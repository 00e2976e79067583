package golang

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
)

const benchTargets = "/root/vigil-bench/targets"

// TestBenchGroundTruth compares the extractor with `go version -m` output recorded by the benchmark
// corpus (shared/bench/50-go-binary.sh), when the corpus is present.
func TestBenchGroundTruth(t *testing.T) {
	gts, _ := filepath.Glob(filepath.Join(benchTargets, "ground-truth", "go-binary.app-*.txt"))
	if len(gts) == 0 {
		t.Skip("benchmark corpus not present")
	}
	for _, gt := range gts {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(gt), "go-binary."), ".txt")
		t.Run(name, func(t *testing.T) {
			want := parseGoVersionM(t, gt)
			dir := filepath.Join(benchTargets, "go-binary")
			rel := "bin/" + name
			fi, err := os.Stat(filepath.Join(dir, rel))
			if err != nil {
				t.Skipf("binary absent: %v", err)
			}
			b := NewBinary()
			if !b.Required(rel, fi) {
				t.Fatalf("%s not required", rel)
			}
			pkgs, err := b.Extract(context.Background(), &inventory.Input{Path: rel, Info: fi, FS: os.DirFS(dir)})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, p := range pkgs {
				got[p.Name] = p.Version
			}
			if len(got) != len(want) || len(pkgs) != len(want) {
				t.Errorf("got %d packages (%d distinct), want %d", len(pkgs), len(got), len(want))
			}
			for n, v := range want {
				if got[n] != v {
					t.Errorf("%s: got %q, want %q", n, got[n], v)
				}
			}
		})
	}
}

// parseGoVersionM reads `go version -m` output into name → version as this extractor reports them.
func parseGoVersionM(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	last := ""
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		line := sc.Text()
		if first {
			if _, v, ok := strings.Cut(line, ": "); ok {
				want["stdlib"] = StdlibVersion(v)
			}
			continue
		}
		fields := strings.Split(strings.TrimPrefix(line, "\t"), "\t")
		switch fields[0] {
		case "mod", "dep":
			v := fields[2]
			want[fields[1]] = v
			last = fields[1]
		case "=>":
			delete(want, last)
			if len(fields) > 2 && fields[2] != "" && fields[2] != Devel {
				want[fields[1]] = fields[2]
			} else {
				want[last] = Devel
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return want
}
