package version

import (
	"errors"
	"testing"
)

// fuzzScheme checks, on whatever three inputs the fuzzer makes: Parse never
// panics and fails only with a *ParseError; String returns the input;
// Compare is reflexive and antisymmetric; equal versions compare alike
// against a third; and the order is transitive.
func fuzzScheme(f *testing.F, s Scheme, seeds []string) {
	for i, a := range seeds {
		f.Add(a, seeds[(i+1)%len(seeds)], seeds[(i+5)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var vs [3]Version
		for i, in := range [3]string{a, b, c} {
			v, err := s.Parse(in)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Parse(%q): error %v does not match ErrInvalid", in, err)
				}
				return
			}
			if v.String() != in {
				t.Fatalf("Parse(%q).String() = %q", in, v.String())
			}
			vs[i] = v
		}
		x, y, z := vs[0], vs[1], vs[2]
		if r := x.Compare(x); r != 0 {
			t.Fatalf("Compare(%q, itself) = %d", a, r)
		}
		xy, yx := x.Compare(y), y.Compare(x)
		if xy != -yx || xy < -1 || xy > 1 {
			t.Fatalf("not antisymmetric: Compare(%q, %q) = %d, reverse %d", a, b, xy, yx)
		}
		xz, yz := x.Compare(z), y.Compare(z)
		if xy == 0 && xz != yz {
			t.Fatalf("%q = %q but they compare %d and %d with %q", a, b, xz, yz, c)
		}
		if xy <= 0 && yz <= 0 && xz > 0 {
			t.Fatalf("not transitive: %q <= %q <= %q but %q > %q", a, b, c, a, c)
		}
		if xy >= 0 && yz >= 0 && xz < 0 {
			t.Fatalf("not transitive: %q >= %q >= %q but %q < %q", a, b, c, a, c)
		}
	})
}

func FuzzDpkg(f *testing.F) {
	fuzzScheme(f, Dpkg, []string{"1.0-1", "2:2.5", "0foo~~", "1.2.0~b7-1", "-0.6.5", "0foo-", "3.0.11-1~deb12u2", "1:", "a:b"})
}

func FuzzRPM(f *testing.F) {
	fuzzScheme(f, RPM, []string{"1.0", "1.0~rc1^git1", "1:3.0.7-27.el9", "2_0", "+", "xyz.4", "1.0^", "5.5p10", "-1"})
}

func FuzzAPK(f *testing.F) {
	fuzzScheme(f, APK, []string{"1.0", "1.0bc", "23_foo", "0.1.0_alpha_pre2", "3.0.10_p1-r0", "1.0~abc-r1", "01.02", "1.0_rc-r"})
}

func FuzzPEP440(f *testing.F) {
	fuzzScheme(f, PEP440, []string{"1.0", "1!2.0.post1.dev3+abc.5", "1.0rc1", "1.0c1", "v1.0-1", "1.0.DEV", "1.0+5.a", "2.32.0a1"})
}

func FuzzSemVer(f *testing.F) {
	fuzzScheme(f, SemVer, []string{"1.2.3", "  v1.2.3+build", "= 1.2.3-beta", "1.0.0-alpha.1", "v0.0.0-20191109021931-daa7c04131f5", "2.0.0+incompatible", "1.2.3-r100"})
}

func FuzzMaven(f *testing.F) {
	fuzzScheme(f, Maven, []string{"1.0", "1-alpha2snapshot", "1.0.final-redhat", "1.0-sp-1-redhat", "2.0.0.abc", "٨", "𝟤", "1.É", "1-ga1", "1.0.0.X1", "--1", "a-1-", "1-0.1"})
}

func FuzzGem(f *testing.F) {
	fuzzScheme(f, Gem, []string{"1.0", "1.0.a1", "1.0-pre", "7.0.4.3", " 1.2 ", "1.0.a.0", "2.2.3-beta.1"})
}

func FuzzNuGet(f *testing.F) {
	fuzzScheme(f, NuGet, []string{"1.0", "1.0.0.1", "1.0.0-ALPHA.2", "13.0.1-beta1", "1.0.0+abc", "5.0.0-preview.1.20120.5"})
}

func FuzzComposer(f *testing.F) {
	fuzzScheme(f, Composer, []string{"1.0", "v5.4.0-BETA1", "1.0.0-beta1-dev", "2010-01-02", "1.0.0-pl3", "1.0.0+build5", "1.0RC2"})
}

func FuzzPub(f *testing.F) {
	fuzzScheme(f, Pub, []string{"1.0.0", "1.0.0+1", "1.0.0+a.2", "2.0.0-dev.1+3", "v1.2.3"})
}
