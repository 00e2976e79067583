package python

import (
	"archive/zip"
	"bufio"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

const benchTargets = "/root/vigil-bench/targets"

// readTSV returns "name@version" for each row of a ground-truth file whose origin passes keep.
func readTSV(t *testing.T, name string, keep func(origin string) bool) []string {
	f, err := os.Open(filepath.Join(benchTargets, "ground-truth", name))
	if err != nil {
		t.Skip("benchmark corpus not present")
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 3 || c[0] == "name" || !keep(c[2]) {
			continue
		}
		out = append(out, c[0]+"@"+c[1])
	}
	sort.Strings(out)
	return out
}

// TestBenchGroundTruth checks the corpus of shared/bench/60-python.sh and 10-rootfs-bookworm.sh:
//   - python-app (site-packages copied from Debian, requirements.txt pins, and a poetry.lock with the
//     same pins): every row of python-app.tsv once; poetry.lock adds no package of its own;
//   - function-python.zip (vendored packages at the zip root): the installed rows;
//   - rootfs-bookworm: rootfs-bookworm.python.tsv.
func TestBenchGroundTruth(t *testing.T) {
	all := func(string) bool { return true }
	installed := func(o string) bool { return strings.HasPrefix(o, "site-packages/") }
	for _, tc := range []struct {
		name, gt string
		keep     func(string) bool
		fsys     func(t *testing.T) fs.FS
	}{
		{"python-app", "python-app.tsv", all, dirFS("python-app")},
		{"function-python.zip", "python-app.tsv", installed, zipFS("function-python.zip")},
		{"rootfs-bookworm", "rootfs-bookworm.python.tsv", all, dirFS("rootfs-bookworm")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := readTSV(t, tc.gt, tc.keep)
			fsys := tc.fsys(t)
			eng := inventory.New(nil, inventory.NewRegistry(New()), inventory.Config{Workers: 2})
			inv, err := eng.Run(context.Background(), fsys, model.SourceInfo{Kind: "dir"})
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range inv.Extractors {
				if len(st.Errors) > 0 {
					t.Errorf("errors: %+v", st.Errors)
				}
			}
			var got []string
			for _, p := range inv.Packages {
				got = append(got, p.Name+"@"+p.Version)
			}
			sort.Strings(got)
			t.Logf("%s: %d packages, ground truth %d", tc.name, len(got), len(want))
			check(t, tc.name, got, want)
		})
	}
}

func dirFS(name string) func(t *testing.T) fs.FS {
	return func(t *testing.T) fs.FS {
		p := filepath.Join(benchTargets, name)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s absent", p)
		}
		return os.DirFS(p)
	}
}

func zipFS(name string) func(t *testing.T) fs.FS {
	return func(t *testing.T) fs.FS {
		zr, err := zip.OpenReader(filepath.Join(benchTargets, name))
		if err != nil {
			t.Skipf("%s: %v", name, err)
		}
		t.Cleanup(func() { zr.Close() })
		return zr
	}
}
