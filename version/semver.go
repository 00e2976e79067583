package version

import (
	"strconv"
	"strings"
)

// SemVerScheme implements Semantic Versioning 2.0.0 precedence, used by npm,
// crates.io, Go modules, Bitnami, Hex and Pub advisories: MAJOR.MINOR.PATCH
// compared numerically, a pre-release sorts before its release, pre-release
// identifiers compare numerically when all digits and by ASCII otherwise
// (numeric < alphanumeric; a longer list wins on a common prefix), build
// metadata is ignored. Go's "+incompatible" is build metadata and Go
// pseudo-versions (v0.0.0-20191109021931-daa7c04131f5) are pre-releases, so
// both order correctly with no special case.
//
// Like node-semver, Parse accepts surrounding whitespace and a leading "v" or
// "=" prefix, optionally followed by spaces ("v1.2.3", "= 1.2.3", " v 1.2.3"):
// like its loose mode, any run of "v", "=" and spaces is skipped.
//
// Leading zeros, which SemVer forbids, are accepted and ignored
// ("2018.08.18" = "2018.8.18", "1.0.0-rc.01" = "1.0.0-rc.1"): Bitnami
// advisories use date versions, and node-semver's loose mode reads them so.
//
// Parse rejects: empty input, input over MaxLen bytes, control characters,
// fewer or more than three core numbers ("1.2", "1.2.3.4"), core numbers above
// 2^64-1, empty identifiers ("1.2.3-", "1.2.3-a..b", "1.2.3+"), and characters
// outside [0-9A-Za-z-] in identifiers ("1.2.3-a_b", "nightly.2026-03-10.0").
//
// The "pub" variant (Dart's pub_semver, used for the Pub ecosystem) differs in
// one rule: build metadata takes part in the order, after the pre-release: no
// build < any build, and builds compare like pre-release lists
// ("1.2.3" < "1.2.3+1" < "1.2.3+2" < "1.2.3+a").
//
// Use the SemVer and Pub variables; the zero SemVerScheme has no name.
type SemVerScheme struct {
	name       string
	orderBuild bool
}

func (s SemVerScheme) Name() string { return s.name }

// SemVersion is a parsed semantic version.
type SemVersion struct {
	orig                string
	major, minor, patch uint64
	pre                 []string // dot-separated pre-release identifiers
	build               []string // build identifiers, ordered only by "pub"
	orderBuild          bool
}

func (sc SemVerScheme) Parse(s string) (Version, error) {
	if err := checkCommon(sc.name, s); err != nil {
		return nil, err
	}
	t := strings.TrimSpace(s)
	for t != "" && (t[0] == 'v' || t[0] == '=' || t[0] == ' ') {
		t = t[1:]
	}
	v := &SemVersion{orig: s, orderBuild: sc.orderBuild}
	core := t
	if i := strings.IndexByte(core, '+'); i >= 0 {
		build := core[i+1:]
		core = core[:i]
		if !validIdents(build) {
			return nil, parseErr(sc.name, s, "invalid build metadata")
		}
		if sc.orderBuild {
			v.build = strings.Split(build, ".")
		}
	}
	if i := strings.IndexByte(core, '-'); i >= 0 {
		pre := core[i+1:]
		core = core[:i]
		if !validIdents(pre) {
			return nil, parseErr(sc.name, s, "invalid pre-release")
		}
		v.pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return nil, parseErr(sc.name, s, "want MAJOR.MINOR.PATCH")
	}
	nums := [3]*uint64{&v.major, &v.minor, &v.patch}
	for k, p := range parts {
		if !allDigits(p) {
			return nil, parseErr(sc.name, s, "version core is not numeric")
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, parseErr(sc.name, s, "version core number out of range")
		}
		*nums[k] = n
	}
	return v, nil
}

// validIdents checks dot-separated identifiers of [0-9A-Za-z-].
func validIdents(s string) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; !isDigit(c) && !isAlpha(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func (v *SemVersion) String() string { return v.orig }
func (v *SemVersion) schemeName() string {
	if v.orderBuild {
		return "pub"
	}
	return "semver"
}

// Prerelease returns the pre-release part without the leading '-'.
func (v *SemVersion) Prerelease() string { return strings.Join(v.pre, ".") }

func (v *SemVersion) Compare(other Version) int {
	o, ok := other.(*SemVersion)
	if !ok || o.orderBuild != v.orderBuild {
		return crossCompare(v.schemeName(), v, other)
	}
	if c := cmpInt(v.major, o.major); c != 0 {
		return c
	}
	if c := cmpInt(v.minor, o.minor); c != 0 {
		return c
	}
	if c := cmpInt(v.patch, o.patch); c != 0 {
		return c
	}
	if c := comparePrerelease(v.pre, o.pre, false); c != 0 || !v.orderBuild {
		return c
	}
	// pub: no build sorts first.
	switch {
	case len(v.build) == 0 && len(o.build) == 0:
		return 0
	case len(v.build) == 0:
		return -1
	case len(o.build) == 0:
		return 1
	}
	return comparePrerelease(v.build, o.build, false)
}

// comparePrerelease orders SemVer pre-release identifier lists; no list sorts
// after any list. With fold, alphanumeric identifiers compare
// case-insensitively (NuGet).
func comparePrerelease(a, b []string, fold bool) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		xn, yn := allDigits(x), allDigits(y)
		var c int
		switch {
		case xn && yn:
			c = cmpDigits(x, y)
		case xn:
			c = -1
		case yn:
			c = 1
		case fold:
			c = compareFold(x, y)
		default:
			c = strings.Compare(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return cmpInt(len(a), len(b))
}

// compareFold compares ASCII strings ignoring case, without allocating.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := lowerASCII(a[i]), lowerASCII(b[i])
		if x != y {
			return cmpInt(x, y)
		}
	}
	return cmpInt(len(a), len(b))
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
