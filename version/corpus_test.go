package version

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchCorpusVersionsParse parses every installed version listed in the
// benchmark corpus ground truth (Debian packages and their sources, rpm EVRs,
// npm, PyPI, Maven and Go module versions), where the corpus exists: real
// inventories must not hit the "unparseable" path.
func TestBenchCorpusVersionsParse(t *testing.T) {
	dir := os.Getenv("VIGIL_BENCH_GROUND_TRUTH")
	if dir == "" {
		dir = "/root/vigil-bench/targets/ground-truth"
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no benchmark corpus")
	}
	type src struct {
		file   string
		s      Scheme
		header bool
		cols   []int                     // tab-separated columns holding versions
		build  func(f []string) []string // or: versions from a row
	}
	srcs := []src{
		{file: "rootfs-bookworm.dpkg.tsv", s: Dpkg, header: true, cols: []int{1, 4}},
		{file: "rpmdb.tsv", s: RPM, header: true, build: func(f []string) []string {
			return []string{f[1] + ":" + f[2] + "-" + f[3]}
		}},
		{file: "node-app.npm.tsv", s: SemVer, header: true, cols: []int{1}},
		{file: "python-app.tsv", s: PEP440, header: true, cols: []int{1}},
		{file: "rootfs-bookworm.python.tsv", s: PEP440, cols: []int{1}},
		{file: "java.tsv", s: Maven, header: true, cols: []int{3}},
		{file: "go-binary.app-go1.26.txt", s: SemVer, build: func(f []string) []string {
			if len(f) > 3 && f[1] == "dep" {
				return []string{f[3]}
			}
			return nil
		}},
	}
	for _, sc := range srcs {
		f, err := os.Open(filepath.Join(dir, sc.file))
		if err != nil {
			t.Logf("%s: %v", sc.file, err)
			continue
		}
		lines := bufio.NewScanner(f)
		n, line := 0, 0
		for lines.Scan() {
			line++
			if sc.header && line == 1 {
				continue
			}
			fields := strings.Split(lines.Text(), "\t")
			var vs []string
			if sc.build != nil {
				vs = sc.build(fields)
			} else {
				for _, c := range sc.cols {
					if c < len(fields) && fields[c] != "" {
						vs = append(vs, fields[c])
					}
				}
			}
			for _, v := range vs {
				n++
				if _, err := sc.s.Parse(v); err != nil {
					t.Errorf("%s:%d: %v", sc.file, line, err)
				}
			}
		}
		f.Close()
		t.Logf("%s: %d versions parsed with %s", sc.file, n, sc.s.Name())
	}
}
