package version

import "strings"

// NuGetScheme implements NuGet's NuGetVersion ordering (SemVer 2.0 plus the
// legacy 4-part form): Major[.Minor[.Patch[.Revision]]] compared numerically
// with missing parts read as 0 ("1.0" = "1.0.0.0"), then a release sorts
// after its pre-releases, pre-release labels compare numerically when both
// are numbers, a number before a label, labels case-insensitively; build
// metadata after '+' is ignored.
//
// Parse trims surrounding whitespace and rejects: empty input, input over
// MaxLen bytes, control characters, a leading "v" or any non-digit in the
// numeric parts, more than four numeric parts, numbers above 2^31-1 (NuGet
// stores them as int), empty labels ("1.0.0-", "1.0.0-a..b") and characters
// outside [0-9A-Za-z-] in labels or metadata.
type NuGetScheme struct{}

func (NuGetScheme) Name() string { return "nuget" }

// NuGetVersion is a parsed NuGet version.
type NuGetVersion struct {
	orig  string
	parts [4]int64
	pre   []string
}

func (NuGetScheme) Parse(s string) (Version, error) {
	if err := checkCommon("nuget", s); err != nil {
		return nil, err
	}
	t := strings.TrimSpace(s)
	v := &NuGetVersion{orig: s}
	if i := strings.IndexByte(t, '+'); i >= 0 {
		if !validIdents(t[i+1:]) {
			return nil, parseErr("nuget", s, "invalid build metadata")
		}
		t = t[:i]
	}
	if i := strings.IndexByte(t, '-'); i >= 0 {
		pre := t[i+1:]
		t = t[:i]
		if !validIdents(pre) {
			return nil, parseErr("nuget", s, "invalid pre-release label")
		}
		v.pre = strings.Split(pre, ".")
	}
	parts := strings.Split(t, ".")
	if len(parts) > 4 {
		return nil, parseErr("nuget", s, "more than four numeric parts")
	}
	for k, p := range parts {
		if !allDigits(p) {
			return nil, parseErr("nuget", s, "numeric part is not a number")
		}
		n := int64(0)
		for j := 0; j < len(p); j++ {
			n = n*10 + int64(p[j]-'0')
			if n > 1<<31-1 {
				return nil, parseErr("nuget", s, "number out of range")
			}
		}
		v.parts[k] = n
	}
	return v, nil
}

func (v *NuGetVersion) String() string     { return v.orig }
func (v *NuGetVersion) schemeName() string { return "nuget" }

func (v *NuGetVersion) Compare(other Version) int {
	o, ok := other.(*NuGetVersion)
	if !ok {
		return crossCompare("nuget", v, other)
	}
	for k := range v.parts {
		if c := cmpInt(v.parts[k], o.parts[k]); c != 0 {
			return c
		}
	}
	return comparePrerelease(v.pre, o.pre, true)
}
