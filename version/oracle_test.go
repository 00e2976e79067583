package version

import (
	"archive/zip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	semver "github.com/Masterminds/semver/v3"
	pep440 "github.com/aquasecurity/go-pep440-version"
	apkver "github.com/knqyf263/go-apk-version"
	debver "github.com/knqyf263/go-deb-version"
	rpmver "github.com/knqyf263/go-rpm-version"
	mvnver "github.com/masahiro331/go-mvn-version"
)

// The libraries named in DESIGN.md, as comparators. None is used at run time:
// the ones that pass every vector (rpm, pep440) allocate on each comparison
// (2-3 µs, 11-18 allocations), so they serve here as differential oracles.
type libCompare func(a, b string) (int, error)

var libraries = map[string]libCompare{
	"go-deb-version": func(a, b string) (int, error) {
		x, err := debver.NewVersion(a)
		if err != nil {
			return 0, err
		}
		y, err := debver.NewVersion(b)
		if err != nil {
			return 0, err
		}
		return sign(x.Compare(y)), nil
	},
	"go-rpm-version": func(a, b string) (int, error) {
		return sign(rpmver.NewVersion(a).Compare(rpmver.NewVersion(b))), nil
	},
	"go-apk-version": func(a, b string) (int, error) {
		x, err := apkver.NewVersion(a)
		if err != nil {
			return 0, err
		}
		y, err := apkver.NewVersion(b)
		if err != nil {
			return 0, err
		}
		return sign(x.Compare(y)), nil
	},
	"go-pep440-version": func(a, b string) (int, error) {
		x, err := pep440.Parse(a)
		if err != nil {
			return 0, err
		}
		y, err := pep440.Parse(b)
		if err != nil {
			return 0, err
		}
		return sign(x.Compare(y)), nil
	},
	"go-mvn-version": func(a, b string) (int, error) {
		x, err := mvnver.NewVersion(a)
		if err != nil {
			return 0, err
		}
		y, err := mvnver.NewVersion(b)
		if err != nil {
			return 0, err
		}
		return sign(x.Compare(y)), nil
	},
	"Masterminds/semver": func(a, b string) (int, error) {
		x, err := semver.NewVersion(a)
		if err != nil {
			return 0, err
		}
		y, err := semver.NewVersion(b)
		if err != nil {
			return 0, err
		}
		return x.Compare(y), nil
	},
}

// TestLibraryVectorGaps records how many vector rows each library gets wrong
// (error or wrong sign); that is why this package has its own code.
func TestLibraryVectorGaps(t *testing.T) {
	for _, tc := range []struct {
		lib, file string
		fails     int
	}{
		{"go-deb-version", "dpkg.tsv", 3}, // rejects "-0.6.5", "0:a-0", "0:b-0"
		{"go-rpm-version", "rpm.tsv", 0},  // passes
		{"go-apk-version", "apk.tsv", 2},  // rejects "23_foo" and "1.0bc"
		{"go-pep440-version", "pep440.tsv", 0},
		{"go-mvn-version", "maven.tsv", 80},            // "2-1" vs "2.0.a", "2-abc" = "2.0.abc", MNG-7714, ".X1 < -X2"
		{"Masterminds/semver", "semver.tsv", 2},        // rejects "  v1.2.3+build"
		{"Masterminds/semver", "semver-loose.tsv", 60}, // rejects "=1.2.3", "v 1.2.3", " = 1.2.3", ...
	} {
		rows := loadVectors(t, tc.file)
		fails := 0
		for _, r := range rows {
			got, err := libraries[tc.lib](r.a, r.b)
			if err != nil || got != r.want {
				fails++
				if testing.Verbose() {
					t.Logf("%s %s row %d: %q %q want %d got %d err %v", tc.lib, tc.file, r.line, r.a, r.b, r.want, got, err)
				}
			}
		}
		t.Logf("%s on %s: %d/%d rows agree", tc.lib, tc.file, len(rows)-fails, len(rows))
		if fails != tc.fails {
			t.Errorf("%s on %s: %d failing rows, recorded %d (library changed? update README)", tc.lib, tc.file, fails, tc.fails)
		}
	}
}

// osvVersions collects the distinct versions named in the ranges of an OSV
// ecosystem zip of the vulndata mirror.
func osvVersions(t *testing.T, eco string) []string {
	t.Helper()
	path := filepath.Join(vectorDir(), "..", "osv", eco, "all.zip")
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Skipf("OSV data not present: %v", err)
	}
	defer zr.Close()
	seen := map[string]bool{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, 8<<20))
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Affected []struct {
				Ranges []struct {
					Type   string
					Events []map[string]string
				}
				Versions []string
			}
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		for _, a := range rec.Affected {
			for _, r := range a.Ranges {
				if r.Type == "GIT" {
					continue
				}
				for _, e := range r.Events {
					for _, v := range e {
						if v != "0" {
							seen[v] = true
						}
					}
				}
			}
			for _, v := range a.Versions {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// TestDifferentialOSV parses every version of the real OSV advisories in the
// mirror and compares pairs of them with this package and with the library
// oracle; for rpm and pep440 they must agree on every pair both accept.
func TestDifferentialOSV(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the OSV mirror")
	}
	for _, tc := range []struct {
		eco, lib  string
		s         Scheme
		mustAgree bool
	}{
		{"AlmaLinux", "go-rpm-version", RPM, true},
		{"alpine-secdb", "go-apk-version", APK, true},
		{"PyPI", "go-pep440-version", PEP440, true},
		{"Go", "Masterminds/semver", SemVer, false},
		{"crates.io", "Masterminds/semver", SemVer, false},
		{"Bitnami", "Masterminds/semver", SemVer, false},
	} {
		t.Run(tc.eco, func(t *testing.T) {
			var all []string
			if tc.eco == "alpine-secdb" {
				all = secdbVersions(t)
			} else {
				if _, err := os.Stat(filepath.Join(vectorDir(), "..", "osv", tc.eco, "all.zip")); err != nil {
					t.Skip("no data")
				}
				all = osvVersions(t, tc.eco)
			}
			var parsed []Version
			var bad []string
			for _, s := range all {
				v, err := tc.s.Parse(s)
				if err != nil {
					bad = append(bad, s)
					continue
				}
				parsed = append(parsed, v)
			}
			t.Logf("%s: %d distinct versions, %d parsed, %d rejected %q", tc.eco, len(all), len(parsed), len(bad), head(bad, 30))
			var malformed []string
			for _, v := range parsed {
				if !apkValid(v) {
					malformed = append(malformed, v.String())
				}
			}
			if len(malformed) > 0 {
				t.Logf("%s: %d parsed but not well formed: %q", tc.eco, len(malformed), malformed)
			}
			// Pair each version with neighbours at several strides.
			pairs, disagree := 0, 0
			for _, stride := range []int{1, 7, 101} {
				for i := 0; i+stride < len(parsed); i++ {
					a, b := parsed[i], parsed[i+stride]
					// Malformed apk versions ("1.0.4.-r0", "2.7.16-33", both
					// in the secdb) are compared as apk-tools 3 does; the
					// library follows apk-tools 2 there.
					if !apkValid(a) || !apkValid(b) {
						continue
					}
					want, err := libraries[tc.lib](a.String(), b.String())
					if err != nil {
						continue
					}
					pairs++
					if got := a.Compare(b); got != want {
						disagree++
						if tc.mustAgree || disagree <= 5 {
							t.Logf("%q vs %q: ours %d, %s %d", a, b, got, tc.lib, want)
						}
					}
				}
			}
			t.Logf("%s: %d pairs compared with %s, %d disagree", tc.eco, pairs, tc.lib, disagree)
			if tc.mustAgree && disagree > 0 {
				t.Errorf("%d disagreements with %s", disagree, tc.lib)
			}
		})
	}
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// secdbVersions collects the fixed versions of the Alpine secdb JSON files.
func secdbVersions(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(vectorDir(), "..", "alpine", "v*", "*.json"))
	if len(files) == 0 {
		t.Skip("no Alpine secdb data")
	}
	seen := map[string]bool{}
	for _, fn := range files {
		data, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		var db struct {
			Packages json.RawMessage // "" when a repository has no entries
		}
		var pkgs []struct {
			Pkg struct {
				Secfixes map[string]json.RawMessage
			}
		}
		if err := json.Unmarshal(data, &db); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		if len(db.Packages) == 0 || db.Packages[0] != '[' {
			continue
		}
		if err := json.Unmarshal(db.Packages, &pkgs); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		for _, p := range pkgs {
			for v := range p.Pkg.Secfixes {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func apkValid(v Version) bool {
	if a, ok := v.(*APKVersion); ok {
		return a.Valid()
	}
	return true
}

// FuzzPEP440VsLibrary: where both this package and go-pep440-version accept
// two versions, they must order them alike.
func FuzzPEP440VsLibrary(f *testing.F) {
	for _, s := range []string{"1.0", "1.0rc1", "1!2.0.post1.dev3+abc.5", "1.0.dev0", "1.0+5", "1.0a1.post2", "2.0.0-1"} {
		f.Add(s, "1.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		// Without this cap the fuzz worker stalls inside go-pep440-version
		// on some longer generated input (our own FuzzPEP440 has no cap).
		if len(a) > 40 || len(b) > 40 {
			return
		}
		want, err := libraries["go-pep440-version"](a, b)
		if err != nil {
			return
		}
		got, err := Compare(PEP440, a, b)
		if err != nil {
			return
		}
		if got != want {
			t.Fatalf("Compare(%q, %q) = %d, go-pep440-version says %d", a, b, got, want)
		}
	})
}

// FuzzRPMVsLibrary: rpmvercmp must agree with go-rpm-version on plain
// version strings (the library splits EVRs differently, so no ':' or '-').
func FuzzRPMVsLibrary(f *testing.F) {
	for _, s := range []string{"1.0", "1.0~rc1", "1.0^git1", "5.5p10", "xyz.4", "2_0", "1.0aa"} {
		f.Add(s, "1.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, s := range []string{a, b} {
			for _, r := range s {
				if r == ':' || r == '-' || r > 0x7f {
					return
				}
			}
		}
		got, err := Compare(RPM, a, b)
		if err != nil {
			return
		}
		if want, _ := libraries["go-rpm-version"](a, b); got != want {
			t.Fatalf("Compare(%q, %q) = %d, go-rpm-version says %d", a, b, got, want)
		}
	})
}
