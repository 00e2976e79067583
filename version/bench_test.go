package version

import (
	"testing"

	pep440 "github.com/aquasecurity/go-pep440-version"
	rpmver "github.com/knqyf263/go-rpm-version"
)

// Representative pairs: an installed version and an advisory bound that
// differ late, so the comparison walks most of the string.
var benchCases = []struct {
	s    Scheme
	a, b string
}{
	{Dpkg, "1:9.18.19-1~deb12u1", "1:9.18.24-1~deb12u1"},
	{RPM, "1:3.0.7-27.el9_4.1", "1:3.0.7-27.el9_4.2"},
	{APK, "3.0.10_rc1-r0", "3.0.10_rc1-r3"},
	{PEP440, "2.32.0rc1.post2.dev3", "2.32.0rc1.post2.dev4"},
	{SemVer, "v0.0.0-20210226172049-e18ecbb05110", "v0.0.0-20210226172049-e18ecbb05111"},
	{Maven, "2.12.7.1-redhat-00001", "2.12.7.1-redhat-00002"},
	{Gem, "7.0.4.3", "7.0.4.4"},
	{NuGet, "5.0.0-preview.1.20120.5", "5.0.0-preview.1.20120.6"},
	{Composer, "v5.4.0-RC1", "v5.4.0-RC2"},
}

func BenchmarkParse(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.s.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := c.s.Parse(c.a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompare(b *testing.B) {
	for _, c := range benchCases {
		x, _ := c.s.Parse(c.a)
		y, _ := c.s.Parse(c.b)
		b.Run(c.s.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if x.Compare(y) != -1 {
					b.Fatal("wrong order")
				}
			}
		})
	}
}

// BenchmarkMatchLookup models one matcher lookup: parse the installed
// version once, then test it against three stored ranges [introduced, fixed).
func BenchmarkMatchLookup(b *testing.B) {
	for _, c := range benchCases {
		var bounds []Version
		for _, s := range []string{c.a, c.b, c.a, c.b, c.a, c.b} {
			v, _ := c.s.Parse(s)
			bounds = append(bounds, v)
		}
		b.Run(c.s.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				v, err := c.s.Parse(c.a)
				if err != nil {
					b.Fatal(err)
				}
				hits := 0
				for r := 0; r < len(bounds); r += 2 {
					if v.Compare(bounds[r]) >= 0 && v.Compare(bounds[r+1]) < 0 {
						hits++
					}
				}
				if hits != 3 {
					b.Fatal("range test wrong")
				}
			}
		})
	}
}

// BenchmarkLibraryCompare measures the two libraries that pass their vectors,
// on the same pairs, for a side-by-side ratio with BenchmarkCompare.
func BenchmarkLibraryCompare(b *testing.B) {
	b.Run("go-rpm-version", func(b *testing.B) {
		x := rpmver.NewVersion(benchCases[1].a)
		y := rpmver.NewVersion(benchCases[1].b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if x.Compare(y) != -1 {
				b.Fatal("wrong order")
			}
		}
	})
	b.Run("go-pep440-version", func(b *testing.B) {
		x, _ := pep440.Parse(benchCases[3].a)
		y, _ := pep440.Parse(benchCases[3].b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if x.Compare(y) != -1 {
				b.Fatal("wrong order")
			}
		}
	})
}
