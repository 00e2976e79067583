package npm

import (
	"archive/zip"
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const benchTargets = "/root/vigil-bench/targets"

type gtRow struct{ name, version, path, scope string }

func readNodeGroundTruth(t *testing.T) []gtRow {
	f, err := os.Open(filepath.Join(benchTargets, "ground-truth", "node-app.npm.tsv"))
	if err != nil {
		t.Skip("benchmark corpus not present")
	}
	defer f.Close()
	var rows []gtRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 4 || c[0] == "name" {
			continue
		}
		rows = append(rows, gtRow{c[0], c[1], c[2], c[3]})
	}
	return rows
}

// TestBenchGroundTruth checks the corpus built by shared/bench/40-node-app.sh. The ground truth lists
// the lockfile's packages with their install paths and scopes. What the inventory must equal:
//   - node-app-lockonly (lockfile, no node_modules): every row, dev flags included;
//   - node-app (lockfile and node_modules): every row whose install path exists on disk (fsevents,
//     a darwin-only optional package, is in the lockfile but not installed), each once, with the
//     lockfile's dev flag;
//   - function-node.zip (npm ci --omit=dev, the full lockfile shipped beside node_modules): the prod
//     rows only.
func TestBenchGroundTruth(t *testing.T) {
	rows := readNodeGroundTruth(t)
	installedIn := func(dir string) func(gtRow) bool {
		return func(r gtRow) bool {
			_, err := os.Stat(filepath.Join(dir, r.path, "package.json"))
			return err == nil
		}
	}
	cases := []struct {
		name   string
		fsys   func(t *testing.T) fs.FS
		expect func(gtRow) bool
	}{
		{"node-app-lockonly", dirFS("node-app-lockonly"), func(gtRow) bool { return true }},
		{"node-app", dirFS("node-app"), installedIn(filepath.Join(benchTargets, "node-app"))},
		{"function-node.zip", zipFS("function-node.zip"), func(r gtRow) bool { return r.scope == "prod" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := tc.fsys(t)
			var want []string
			for _, r := range rows {
				if tc.expect(r) {
					want = append(want, r.name+"@"+r.version+" "+r.scope)
				}
			}
			// The ground truth's rows are the dependencies; the project itself is reported too.
			want = append(want, "bench-vuln-function@1.0.0 prod")
			inv := run(t, fsys)
			var got []string
			for _, p := range inv.Packages {
				scope := "prod"
				if p.Dev {
					scope = "dev"
				}
				got = append(got, p.Name+"@"+p.Version+" "+scope)
			}
			sort.Strings(want)
			sort.Strings(got)
			t.Logf("%s: %d packages, ground truth %d (of %d rows)", tc.name, len(got), len(want), len(rows))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("inventory differs from the ground truth:\n%s", diff(want, got))
			}
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

func diff(want, got []string) string {
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	var b strings.Builder
	for k, n := range count {
		switch {
		case n > 0:
			b.WriteString("  missing " + k + "\n")
		case n < 0:
			b.WriteString("  extra   " + k + "\n")
		}
	}
	return b.String()
}
