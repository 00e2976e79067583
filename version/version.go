// Package version parses and compares package versions with the rules of each
// ecosystem: dpkg (Debian, Ubuntu), rpm (Red Hat family, SUSE, Amazon Linux),
// apk (Alpine), PEP 440 (PyPI), SemVer 2.0 (npm, crates.io, Go, Bitnami, Hex),
// Dart's pub_semver (Pub), Maven ComparableVersion, RubyGems, NuGet and
// Composer.
//
// Parsing is done once per stored advisory bound; Compare on two parsed values
// does not allocate, so the matcher can compare an installed version against
// many range bounds cheaply.
//
// A version that a scheme cannot parse yields a *ParseError (errors.Is
// ErrInvalid). Each scheme documents the classes of input it rejects; see also
// README.md in this directory.
package version

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Version is a parsed version of one scheme.
//
// Compare returns -1, 0 or +1. Comparing versions of two different schemes is
// a programming error; it does not panic but orders by scheme name and then by
// the original strings, so that sorting stays deterministic.
type Version interface {
	Compare(other Version) int
	String() string
}

// Scheme parses and compares the versions of one ecosystem.
type Scheme interface {
	Name() string
	Parse(s string) (Version, error)
}

// ErrInvalid is matched (errors.Is) by every parse error of this package.
var ErrInvalid = errors.New("invalid version")

// MaxLen is the longest version string any scheme accepts. Real versions are
// far shorter; the cap bounds parse work and memory on hostile input.
const MaxLen = 256

// ParseError reports a version string that a scheme rejects.
type ParseError struct {
	Scheme string // scheme name, e.g. "dpkg"
	Input  string // the rejected input (truncated to 64 bytes)
	Reason string // why, e.g. "epoch is not a number"
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s: invalid version %q: %s", e.Scheme, e.Input, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ParseError) Is(target error) bool { return target == ErrInvalid }

func parseErr(scheme, input, reason string) error {
	if len(input) > 64 {
		input = input[:64] + "..."
	}
	return &ParseError{Scheme: scheme, Input: input, Reason: reason}
}

// checkCommon rejects the inputs no scheme accepts: empty, over MaxLen, or
// holding control characters (including NUL) or invalid UTF-8.
func checkCommon(scheme, s string) error {
	if s == "" {
		return parseErr(scheme, s, "empty")
	}
	if len(s) > MaxLen {
		return parseErr(scheme, s, fmt.Sprintf("longer than %d bytes", MaxLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return parseErr(scheme, s, "contains a control character")
		}
	}
	if !utf8.ValidString(s) {
		return parseErr(scheme, s, "not valid UTF-8")
	}
	return nil
}

// Compare parses a and b with s and compares them.
func Compare(s Scheme, a, b string) (int, error) {
	va, err := s.Parse(a)
	if err != nil {
		return 0, err
	}
	vb, err := s.Parse(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// The schemes. They are stateless and safe for concurrent use. The doc comment
// of each type (DpkgScheme, RPMScheme, ...) gives its rules and the classes of
// input its Parse rejects.
var (
	Dpkg     Scheme = DpkgScheme{}
	RPM      Scheme = RPMScheme{}
	APK      Scheme = APKScheme{}
	PEP440   Scheme = PEP440Scheme{}
	SemVer   Scheme = SemVerScheme{name: "semver"}
	Pub      Scheme = SemVerScheme{name: "pub", orderBuild: true}
	Maven    Scheme = MavenScheme{}
	Gem      Scheme = GemScheme{}
	NuGet    Scheme = NuGetScheme{}
	Composer Scheme = ComposerScheme{}
)

// Schemes lists every scheme of this package.
func Schemes() []Scheme {
	return []Scheme{Dpkg, RPM, APK, PEP440, SemVer, Pub, Maven, Gem, NuGet, Composer}
}

// ecosystems maps an OSV ecosystem name (without release suffix, lower case)
// to its scheme.
var ecosystems = map[string]Scheme{
	"debian":                       Dpkg,
	"ubuntu":                       Dpkg,
	"alpine":                       APK,
	"almalinux":                    RPM,
	"rocky linux":                  RPM,
	"red hat":                      RPM,
	"redhat":                       RPM,
	"opensuse":                     RPM,
	"suse":                         RPM,
	"amazon linux":                 RPM,
	"mageia":                       RPM,
	"openeuler":                    RPM,
	"oracle linux":                 RPM,
	"photon os":                    RPM,
	"azure linux":                  RPM,
	"cbl-mariner":                  RPM,
	"wolfi":                        APK,
	"chainguard":                   APK,
	"alpaquita":                    APK,
	"bellsoft hardened containers": APK,
	"minimos":                      APK,
	"swifturl":                     SemVer,
	"npm":                          SemVer,
	"crates.io":                    SemVer,
	"go":                           SemVer,
	"bitnami":                      SemVer,
	"hex":                          SemVer,
	"pub":                          Pub,
	"pypi":                         PEP440,
	"maven":                        Maven,
	"rubygems":                     Gem,
	"nuget":                        NuGet,
	"packagist":                    Composer,
}

// Lookup returns the scheme of an OSV ecosystem name, with or without a
// release suffix ("Debian:12", "Alpine:v3.20", "Ubuntu:22.04:LTS"). Matching
// is case-insensitive. Unknown ecosystems return ok=false.
func Lookup(ecosystem string) (Scheme, bool) {
	name := strings.TrimSpace(ecosystem)
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	s, ok := ecosystems[strings.ToLower(strings.TrimSpace(name))]
	return s, ok
}

// crossCompare orders versions of different schemes deterministically.
func crossCompare(aScheme string, a Version, b Version) int {
	bScheme := "?"
	if n, ok := b.(interface{ schemeName() string }); ok {
		bScheme = n.schemeName()
	}
	if c := strings.Compare(aScheme, bScheme); c != 0 {
		return c
	}
	return strings.Compare(a.String(), b.String())
}

// cmpInt returns the sign of a-b.
func cmpInt[T ~int | ~int64 | ~uint64 | ~int32 | ~uint8 | ~int8](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpDigits compares two ASCII digit strings numerically, at any length:
// leading zeros are ignored, then the longer is larger, then bytes decide.
func cmpDigits(a, b string) int {
	a = trimZeros(a)
	b = trimZeros(b)
	if len(a) != len(b) {
		return cmpInt(len(a), len(b))
	}
	return strings.Compare(a, b)
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	if s == "0" {
		return ""
	}
	return s
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}
