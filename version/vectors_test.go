package version

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// vectorDir holds the upstream comparison vectors (see its SOURCES.md §3).
// VIGIL_VERSION_VECTORS overrides it.
func vectorDir() string {
	if d := os.Getenv("VIGIL_VERSION_VECTORS"); d != "" {
		return d
	}
	return "/work/shared/vulndata/versions"
}

type vectorRow struct {
	line int
	a, b string
	want int
}

func loadVectors(t testing.TB, name string) []vectorRow {
	t.Helper()
	path := filepath.Join(vectorDir(), name)
	f, err := os.Open(path)
	if os.IsNotExist(err) && os.Getenv("VIGIL_REQUIRE_VECTORS") == "" {
		t.Skipf("vector file %s not present", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []vectorRow
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			if sc.Text() != "a\tb\tcmp" {
				t.Fatalf("%s: unexpected header %q", name, sc.Text())
			}
			continue
		}
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 3 {
			t.Fatalf("%s:%d: want 3 columns, got %d", name, line, len(p))
		}
		want, err := strconv.Atoi(p[2])
		if err != nil {
			t.Fatalf("%s:%d: %v", name, line, err)
		}
		rows = append(rows, vectorRow{line, p[0], p[1], want})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no rows", name)
	}
	return rows
}

func runVectors(t *testing.T, s Scheme, file string) {
	rows := loadVectors(t, file)
	fails := 0
	for _, r := range rows {
		got, err := Compare(s, r.a, r.b)
		if err != nil {
			t.Errorf("%s row %d: Compare(%q, %q): %v", file, r.line, r.a, r.b, err)
			fails++
			continue
		}
		if got != r.want {
			t.Errorf("%s row %d: Compare(%q, %q) = %d, want %d", file, r.line, r.a, r.b, got, r.want)
			fails++
		}
	}
	t.Logf("%s: %d/%d rows agree", file, len(rows)-fails, len(rows))
}

func TestVectorsDpkg(t *testing.T)        { runVectors(t, Dpkg, "dpkg.tsv") }
func TestVectorsRPM(t *testing.T)         { runVectors(t, RPM, "rpm.tsv") }
func TestVectorsAPK(t *testing.T)         { runVectors(t, APK, "apk.tsv") }
func TestVectorsPEP440(t *testing.T)      { runVectors(t, PEP440, "pep440.tsv") }
func TestVectorsSemVer(t *testing.T)      { runVectors(t, SemVer, "semver.tsv") }
func TestVectorsSemVerLoose(t *testing.T) { runVectors(t, SemVer, "semver-loose.tsv") }
func TestVectorsMaven(t *testing.T)       { runVectors(t, Maven, "maven.tsv") }

// TestVectorsTotalOrder sorts the distinct versions of each vector file and
// checks that the result is consistent for every pair, which fails if
// Compare is not transitive on them.
func TestVectorsTotalOrder(t *testing.T) {
	for file, s := range map[string]Scheme{
		"dpkg.tsv": Dpkg, "rpm.tsv": RPM, "apk.tsv": APK, "pep440.tsv": PEP440,
		"semver.tsv": SemVer, "semver-loose.tsv": SemVer, "maven.tsv": Maven,
	} {
		seen := map[string]bool{}
		var vs []Version
		for _, r := range loadVectors(t, file) {
			for _, in := range []string{r.a, r.b} {
				if seen[in] {
					continue
				}
				seen[in] = true
				v, err := s.Parse(in)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				vs = append(vs, v)
			}
		}
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].Compare(vs[j]) < 0 })
		for i := range vs {
			for j := i + 1; j < len(vs); j++ {
				if vs[i].Compare(vs[j]) > 0 {
					t.Errorf("%s: after sorting, %q > %q: order not transitive", file, vs[i], vs[j])
				}
			}
		}
	}
}
