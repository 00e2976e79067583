package version

import (
	"errors"
	"testing"
)

// checkOrder asserts that every version of chain sorts strictly before the
// ones after it, in both directions.
func checkOrder(t *testing.T, s Scheme, chain []string) {
	t.Helper()
	vs := make([]Version, len(chain))
	for i, c := range chain {
		v, err := s.Parse(c)
		if err != nil {
			t.Fatalf("%s: Parse(%q): %v", s.Name(), c, err)
		}
		vs[i] = v
	}
	for i := range vs {
		if got := vs[i].Compare(vs[i]); got != 0 {
			t.Errorf("%s: %q vs itself = %d", s.Name(), chain[i], got)
		}
		for j := i + 1; j < len(vs); j++ {
			if got := vs[i].Compare(vs[j]); got != -1 {
				t.Errorf("%s: Compare(%q, %q) = %d, want -1", s.Name(), chain[i], chain[j], got)
			}
			if got := vs[j].Compare(vs[i]); got != 1 {
				t.Errorf("%s: Compare(%q, %q) = %d, want 1", s.Name(), chain[j], chain[i], got)
			}
		}
	}
}

func checkEqual(t *testing.T, s Scheme, pairs [][2]string) {
	t.Helper()
	for _, p := range pairs {
		for _, q := range [][2]string{p, {p[1], p[0]}} {
			got, err := Compare(s, q[0], q[1])
			if err != nil || got != 0 {
				t.Errorf("%s: Compare(%q, %q) = %d, %v; want 0", s.Name(), q[0], q[1], got, err)
			}
		}
	}
}

func checkInvalid(t *testing.T, s Scheme, bad []string) {
	t.Helper()
	for _, b := range bad {
		v, err := s.Parse(b)
		if err == nil {
			t.Errorf("%s: Parse(%q) = %v, want an error", s.Name(), b, v)
			continue
		}
		var pe *ParseError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &pe) || pe.Scheme != s.Name() {
			t.Errorf("%s: Parse(%q) error %v is not a *ParseError of this scheme", s.Name(), b, err)
		}
	}
}

func TestDpkgTable(t *testing.T) {
	// Real Debian/Ubuntu versions: security uploads, backports, epochs.
	checkOrder(t, Dpkg, []string{
		"1.1.1n-0+deb10u3",
		"1.1.1n-0+deb11u4",
		"1.1.1w-0+deb11u1",
		"3.0.11-1~deb12u1",
		"3.0.11-1~deb12u2",
		"3.0.11-1",
		"3.0.13-1~deb12u1",
		"1:2.0",
	})
	checkOrder(t, Dpkg, []string{"2.36-9+deb12u3", "2.36-9+deb12u4", "2.36-9+deb12u10"})
	checkOrder(t, Dpkg, []string{"1:9.18.19-1~deb12u1", "1:9.18.24-1", "1:9.18.28-1~deb12u2"})
	checkOrder(t, Dpkg, []string{"5.2.15-2ubuntu1", "5.2.15-2ubuntu1.1", "5.2.21-2ubuntu4"})
	checkEqual(t, Dpkg, [][2]string{{"0:1.2-3", "1.2-3"}, {"1.2", "1.2-0"}, {"1.002", "1.2"}})
	checkInvalid(t, Dpkg, []string{"", "a:1.0", ":1.0", "1:", "1.0 2", "99999999999:1", "1.0\n", "\x00"})
}

func TestRPMTable(t *testing.T) {
	// AlmaLinux/RHEL EVRs, and rpm's documented '~' and '^' rules.
	checkOrder(t, RPM, []string{
		"1.1.1k-7.el8_6",
		"1.1.1k-12.el8_9",
		"3.0.7-25.el9_3",
		"3.0.7-27.el9",
		"3.0.7-28.el9_4",
		"1:3.0.1-1.el9",
	})
	checkOrder(t, RPM, []string{"1.0~rc1", "1.0~rc1^git1", "1.0", "1.0^", "1.0^git1", "1.0^git2", "1.0.1"})
	checkOrder(t, RPM, []string{"2.28-225.el8", "2.28-225.el8_8.6", "2.28-236.el8.7", "2.28-236.el8_9.12"})
	checkOrder(t, RPM, []string{"9.16.23-0.14.el8", "32:9.11.36-11.el8_9"})
	checkEqual(t, RPM, [][2]string{{"0:1.0-1", "1.0-1"}, {"1.01-1", "1.1-1"}, {"1.0_1", "1.0.1"}})
	checkInvalid(t, RPM, []string{"", "x:1.0", ":1.0", "1:", "-1", "1.0 -1", "1.0\t", "3000000000:1"})
}

func TestAPKTable(t *testing.T) {
	// Alpine secdb fixed versions and the apk suffix rules.
	checkOrder(t, APK, []string{
		"1.1.1k-r0",
		"1.1.1l-r0",
		"1.1.1t-r0",
		"3.0.8-r0",
		"3.0.8-r3",
		"3.0.10_rc1-r0",
		"3.0.10-r0",
		"3.0.10_p1-r0",
		"3.0.10.1-r0",
	})
	checkOrder(t, APK, []string{"1.0_alpha", "1.0_beta", "1.0_pre", "1.0_rc", "1.0", "1.0_cvs", "1.0_svn", "1.0_git", "1.0_hg", "1.0_p"})
	checkOrder(t, APK, []string{"2.9.3-r0", "2.9.3-r1", "2.9.10-r0", "2.10.0-r0"})
	// A commit-hash token sorts before a revision token, so it is newer.
	checkOrder(t, APK, []string{"1.0-r0", "1.0~abc-r0", "1.0~abd-r0", "1.0~abd-r1"})
	checkEqual(t, APK, [][2]string{{"1.0-r0", "1.0-r00"}, {"1.0bc", "1.0bd"}})
	checkInvalid(t, APK, []string{"", "r1", "v1.0", ".1", "1.0 -r1", "\x001"})
}

func TestPEP440Table(t *testing.T) {
	// Normalisation (PEP 440 §Normalization) and real PyPI advisory bounds.
	checkEqual(t, PEP440, [][2]string{
		{"1.0a1", "1.0.ALPHA.1"}, {"1.0b2", "1.0-beta-2"}, {"1.0rc1", "1.0.pre1"}, {"1.0c1", "1.0preview1"},
		{"1.0.post1", "1.0-1"}, {"1.0.post1", "1.0.rev1"}, {"1.0.post0", "1.0.r"}, {"1.0.dev0", "1.0dev"},
		{"v1.0", "1.0"}, {" 1.0 ", "1.0"}, {"1.0", "1.0.0.0"}, {"0!1.0", "1.0"}, {"1.0+ubuntu.1", "1.0+UBUNTU-1"},
		{"1.0+abc.007", "1.0+abc.7"},
	})
	checkOrder(t, PEP440, []string{
		"2.19.1", "2.20.0", "2.31.0", "2.32.0.dev0", "2.32.0a1", "2.32.0rc1", "2.32.0", "2.32.0.post1",
		"2.32.0.post1+local", "2.32.1", "1!0.1",
	})
	checkOrder(t, PEP440, []string{"1.0+abc", "1.0+abc.def", "1.0+abc.1", "1.0+abc.5", "1.0+5"})
	checkInvalid(t, PEP440, []string{"", "1.0-SNAPSHOT", "dev", "1.0.x", "1.0+", "1.0+a..b", "a1", "1.0 2", "1!", "99999999999999999999999.0"})
}

func TestSemVerTable(t *testing.T) {
	// SemVer 2.0 §11 example order, Go pseudo-versions and +incompatible.
	checkOrder(t, SemVer, []string{
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
		"1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1",
	})
	checkOrder(t, SemVer, []string{
		"v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20210226172049-e18ecbb05110", "v0.1.0",
		"v0.17.0", "v1.0.0-rc.1", "v1.0.0", "v2.0.0+incompatible", "v2.1.0+incompatible",
	})
	checkOrder(t, SemVer, []string{"0.2.0-pre.1", "0.2.0-pre.10", "0.2.0-pre.9a"})
	checkEqual(t, SemVer, [][2]string{
		{"1.0.0+build.1", "1.0.0+build.2"}, {"v1.2.3", "1.2.3"}, {"2018.08.18", "2018.8.18"}, {"1.0.0-rc.01", "1.0.0-rc.1"}, {"2.0.0+incompatible", "v2.0.0"}, {"= 1.2.3", "1.2.3"},
	})
	checkInvalid(t, SemVer, []string{
		"", "1", "1.2", "1.2.3.4", "1.2.3-", "1.2.3-a..b", "1.2.3+", "1.2.3-a_b",
		"x1.2.3", "1.2.3 4", "99999999999999999999.0.0", "1.2.-3",
	})
}

func TestPubTable(t *testing.T) {
	// pub_semver orders build metadata (Flutter plugins publish "+N" builds).
	checkOrder(t, Pub, []string{"1.0.0-dev.1", "1.0.0", "1.0.0+1", "1.0.0+2", "1.0.0+10", "1.0.0+a", "1.0.1"})
	checkOrder(t, Pub, []string{"6.0.0", "6.0.0+1", "6.0.0+1.1", "6.1.0"})
	checkEqual(t, Pub, [][2]string{{"1.0.0+01", "1.0.0+1"}, {"v1.0.0", "1.0.0"}})
	checkInvalid(t, Pub, []string{"", "1.0", "1.0.0+", "1.0.0+a..b"})
	if n := Pub.Name(); n != "pub" {
		t.Errorf("Pub.Name() = %q", n)
	}
	// Plain SemVer ignores builds; a pub and a semver version never compare equal.
	a, _ := SemVer.Parse("1.0.0")
	b, _ := Pub.Parse("1.0.0")
	if a.Compare(b) == 0 || a.Compare(b) != -b.Compare(a) {
		t.Errorf("semver vs pub: %d, %d", a.Compare(b), b.Compare(a))
	}
}

func TestMavenTable(t *testing.T) {
	// Real Maven Central versions from advisories (log4j, jackson, spring).
	checkOrder(t, Maven, []string{
		"2.0-alpha1", "2.0-beta9", "2.0-rc1", "2.0", "2.3.1", "2.12.2", "2.12.4", "2.15.0", "2.16.0", "2.17.0", "2.17.1",
	})
	// "pr" is no Maven qualifier: jackson's 2.10.0.pr1 sorts after 2.10.0.
	checkOrder(t, Maven, []string{"2.9.10.7", "2.9.10.8", "2.10.0", "2.10.0.pr1", "2.12.7.1", "2.13.2.1"})
	checkOrder(t, Maven, []string{"5.3.17", "5.3.18", "5.3.18-sp1", "6.0.0-M1", "6.0.0-RC1", "6.0.0-SNAPSHOT", "6.0.0"})
	checkOrder(t, Maven, []string{"1.0-alpha-1", "1.0-alpha-2", "1.0-beta-1", "1.0-milestone-1", "1.0-rc-1", "1.0-snapshot", "1.0", "1.0-sp", "1.0-foo", "1.0.1"})
	checkEqual(t, Maven, [][2]string{{"1", "1.0.0"}, {"1-ga", "1"}, {"1.0.FINAL", "1"}, {"1-RELEASE", "1.0"}, {"1.0-CR1", "1.0-RC1"}, {"1a1", "1-alpha-1"}})
	checkInvalid(t, Maven, []string{"", string(make([]byte, 300)), "1.0\n"})
}

func TestGemTable(t *testing.T) {
	// Gem::Version's documented ordering and real RubyGems advisory bounds
	// (rails, nokogiri, rack).
	checkOrder(t, Gem, []string{
		"1.0.a", "1.0.a1", "1.0.a2", "1.0.b1", "1.0.rc1", "1.0", "1.0.1", "1.1",
	})
	checkOrder(t, Gem, []string{
		"6.1.7.2", "6.1.7.3", "7.0.0.alpha1", "7.0.0.rc1", "7.0.0", "7.0.4.1", "7.0.4.2", "7.0.4.3", "7.0.10",
	})
	checkOrder(t, Gem, []string{"1.13.10", "1.14.0.rc1", "1.14.0", "1.14.3", "1.15.6", "1.16.0"})
	checkOrder(t, Gem, []string{"2.2.3-beta", "2.2.3", "3.0.0.beta1", "3.0.0"})
	checkOrder(t, Gem, []string{"1.0.A", "1.0.a", "1.0.b"})
	checkEqual(t, Gem, [][2]string{
		{"1.0", "1"}, {"1.0.0", "1"}, {"1.0.a.0", "1.a"}, {"1.0-1", "1.0.pre.1"}, {"  1.2 ", "1.2"}, {"1.01", "1.1"},
	})
	checkInvalid(t, Gem, []string{"", "   ", "a1", "1..2", "1.2 3", "1.0-", "1_0", ".1", "1.", "1.2.", "1.0-a..b"})
}

func TestNuGetTable(t *testing.T) {
	// NuGet versioning docs: 4-part legacy versions, SemVer 2 pre-releases,
	// case-insensitive labels; real package bounds (Newtonsoft.Json,
	// System.Text.Encodings.Web).
	checkOrder(t, NuGet, []string{
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.0.1", "1.0.1", "1.1",
	})
	checkOrder(t, NuGet, []string{"12.0.3", "13.0.1-beta1", "13.0.1", "13.0.3"})
	checkOrder(t, NuGet, []string{"4.5.0", "4.7.2", "5.0.0-preview.1.20120.5", "5.0.0", "5.0.1"})
	checkOrder(t, NuGet, []string{"1.0.0-2", "1.0.0-10", "1.0.0-a"})
	checkEqual(t, NuGet, [][2]string{
		{"1.0", "1.0.0"}, {"1.0.0.0", "1.0.0"}, {"1.0.0-ALPHA", "1.0.0-alpha"}, {"1.0.0+abc", "1.0.0+def"}, {"1.01.0", "1.1.0"},
		{"1", "1.0.0"},
	})
	checkInvalid(t, NuGet, []string{"", "v1.0", "1.0.0.0.0", "1.0.0-", "1.0.0-a..b", "1.0.0+", "1.a", "3000000000.0", "1.0.0-a_b"})
}

func TestComposerTable(t *testing.T) {
	// Composer's VersionParser normalisation and PHP version_compare order;
	// real Packagist bounds (symfony/http-kernel, laravel/framework).
	checkOrder(t, Composer, []string{
		"1.0.0-dev", "1.0.0-alpha1", "1.0.0-alpha2", "1.0.0-beta1", "1.0.0-RC1", "1.0.0", "1.0.0-patch1", "1.0.1",
	})
	checkOrder(t, Composer, []string{"v4.4.49", "v4.4.50", "v5.4.0-BETA1", "v5.4.0-RC1", "v5.4.0", "v5.4.20", "v6.0.0"})
	checkOrder(t, Composer, []string{"8.83.27", "9.52.15", "10.0.0", "10.48.23", "11.0.0"})
	checkOrder(t, Composer, []string{"1.0.0-beta1-dev", "1.0.0-beta1", "1.0.0-beta2"})
	checkOrder(t, Composer, []string{"2010-01-02", "2010-01-03", "2011-01-01"})
	// A major of six or more digits is a date version: no padding to four parts.
	checkOrder(t, Composer, []string{"20100102", "20100102.1", "20100103"})
	checkEqual(t, Composer, [][2]string{
		{"1.0", "1.0.0.0"}, {"v1.0.0", "1.0.0"}, {"1.0.0-b1", "1.0.0-beta1"}, {"1.0.0-a1", "1.0.0.alpha1"},
		{"1.0.0-stable", "1.0.0"}, {"1.0.0-pl1", "1.0.0-patch1"}, {"1.0.0-p1", "1.0.0-patch.1"}, {"1.0.0+build5", "1.0.0"},
	})
	checkInvalid(t, Composer, []string{"", "dev-main", "dev-feature/x", "2.x-dev", "1.0.x-dev", "1.0 as 2.0", "^1.2", ">=1.0", "1.0.0.0.0", "1.0.0-foo", "latest", "20100102.0.0.0"})
}

func TestComposerNormalized(t *testing.T) {
	for in, want := range map[string]string{
		"1.0":              "1.0.0.0",
		"v2.3.4":           "2.3.4.0",
		"1.0.0-b1":         "1.0.0.0-beta1",
		"1.0.0RC2":         "1.0.0.0-RC2",
		"1.0.0-alpha1-dev": "1.0.0.0-alpha1-dev",
		"1.0-dev":          "1.0.0.0-dev",
		"1.0.0-pl3":        "1.0.0.0-patch3",
		"2010-01-02":       "2010.01.02",
	} {
		v, err := Composer.Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got := v.(*ComposerVersion).Normalized(); got != want {
			t.Errorf("Normalized(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLookup(t *testing.T) {
	for eco, want := range map[string]Scheme{
		"Debian:12": Dpkg, "Debian": Dpkg, "Ubuntu:22.04": Dpkg, "Ubuntu:Pro:18.04:LTS": Dpkg,
		"Alpine:v3.20": APK, "AlmaLinux:9": RPM, "Rocky Linux:9": RPM, "Red Hat": RPM,
		"Red Hat:enterprise_linux:9::appstream": RPM, "openSUSE": RPM, "openSUSE:Leap 15.5": RPM,
		"SUSE:Linux Enterprise Server 15 SP5": RPM, "Amazon Linux": RPM, "Amazon Linux:2023": RPM,
		"npm": SemVer, "crates.io": SemVer, "Go": SemVer, "Bitnami": SemVer, "Hex": SemVer, "Pub": Pub,
		"PyPI": PEP440, "Maven": Maven, "RubyGems": Gem, "NuGet": NuGet, "Packagist": Composer,
		"pypi": PEP440, " Go ": SemVer, "Wolfi": APK, "Chainguard": APK, "SwiftURL": SemVer,
	} {
		got, ok := Lookup(eco)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", eco, got, ok, want.Name())
		}
	}
	for _, eco := range []string{"", "CRAN", "GIT", "Linux", "Debian12", "OSS-Fuzz", "Hackage"} {
		if s, ok := Lookup(eco); ok {
			t.Errorf("Lookup(%q) = %s, want not found", eco, s.Name())
		}
	}
}

func TestCompareErrors(t *testing.T) {
	if _, err := Compare(SemVer, "1.0.0", "bogus"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Compare with bad b: err = %v", err)
	}
	if _, err := Compare(SemVer, "bogus", "1.0.0"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Compare with bad a: err = %v", err)
	}
}

func TestCrossSchemeCompareIsDeterministic(t *testing.T) {
	a, _ := Dpkg.Parse("1.0")
	b, _ := RPM.Parse("1.0")
	if a.Compare(b) != -b.Compare(a) || a.Compare(b) == 0 {
		t.Errorf("cross-scheme compare not antisymmetric: %d %d", a.Compare(b), b.Compare(a))
	}
}
