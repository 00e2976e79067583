package version

import "strings"

// DpkgScheme implements Debian's version comparison (deb-version(7), dpkg's
// verrevcmp): [epoch:]upstream[-revision], '~' sorts before everything, even
// the end of the string; letters sort before other characters; digit runs
// compare numerically.
//
// Parse rejects: empty input, input over MaxLen bytes, control characters,
// whitespace, a non-numeric or empty epoch ("a:1.0", ":1.0"), an epoch above
// 2^31-1, and nothing after the epoch colon ("1:").
// Like Perl's Dpkg::Version (and unlike the dpkg CLI, which refuses them) it
// accepts an empty upstream version ("-0.6.5"), an empty revision ("1.0-"),
// upstream versions that do not start with a digit, and characters outside
// dpkg's allowed set: dpkg compares all of these and real package databases
// occasionally hold them.
type DpkgScheme struct{}

func (DpkgScheme) Name() string { return "dpkg" }

// DpkgVersion is a parsed Debian version.
type DpkgVersion struct {
	orig     string
	epoch    int64
	upstream string
	revision string
}

func (DpkgScheme) Parse(s string) (Version, error) {
	if err := checkCommon("dpkg", s); err != nil {
		return nil, err
	}
	if strings.ContainsAny(s, " \t") {
		return nil, parseErr("dpkg", s, "contains whitespace")
	}
	v := &DpkgVersion{orig: s}
	rest := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		ep := s[:i]
		if !allDigits(ep) {
			return nil, parseErr("dpkg", s, "epoch is not a number")
		}
		n := int64(0)
		for j := 0; j < len(ep); j++ {
			n = n*10 + int64(ep[j]-'0')
			if n > 1<<31-1 {
				return nil, parseErr("dpkg", s, "epoch too large")
			}
		}
		v.epoch = n
		rest = s[i+1:]
		if rest == "" {
			return nil, parseErr("dpkg", s, "nothing after the epoch colon")
		}
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.upstream, v.revision = rest[:i], rest[i+1:]
	} else {
		v.upstream = rest
	}
	return v, nil
}

func (v *DpkgVersion) String() string     { return v.orig }
func (v *DpkgVersion) schemeName() string { return "dpkg" }

// Epoch, Upstream and Revision expose the parts of the version.
func (v *DpkgVersion) Epoch() int64     { return v.epoch }
func (v *DpkgVersion) Upstream() string { return v.upstream }
func (v *DpkgVersion) Revision() string { return v.revision }

func (v *DpkgVersion) Compare(other Version) int {
	o, ok := other.(*DpkgVersion)
	if !ok {
		return crossCompare("dpkg", v, other)
	}
	if c := cmpInt(v.epoch, o.epoch); c != 0 {
		return c
	}
	if c := verrevcmp(v.upstream, o.upstream); c != 0 {
		return c
	}
	return verrevcmp(v.revision, o.revision)
}

// dpkgOrder is the weight of a byte in a non-digit run: '~' lowest (below the
// end of string, 0), then letters, then everything else.
func dpkgOrder(c byte) int {
	switch {
	case c == '~':
		return -1
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	default:
		return int(c) + 256
	}
}

// verrevcmp compares alternating non-digit and digit runs; a missing byte
// weighs 0 and an absent digit run counts as 0.
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isDigit(a[i]) || j < len(b) && !isDigit(b[j]) {
			ac, bc := 0, 0
			if i < len(a) {
				ac = dpkgOrder(a[i])
			}
			if j < len(b) {
				bc = dpkgOrder(b[j])
			}
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		firstDiff := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}
