package version

import "strings"

// RPMScheme implements rpm's EVR comparison: epoch (missing = 0), then
// version and release each with rpmvercmp (alphanumeric runs, digits beat
// letters, '~' sorts before everything including the end, '^' sorts after the
// end but before any further segment, other characters only separate).
//
// Parse splits "[epoch:]version[-release]" at the first ':' and the last '-'.
// It rejects: empty input, input over MaxLen bytes, control characters,
// whitespace, a non-numeric or empty epoch, an epoch above 2^31-1, and an
// empty version part ("1:", "1:-2", "-2").
type RPMScheme struct{}

func (RPMScheme) Name() string { return "rpm" }

// RPMVersion is a parsed rpm EVR.
type RPMVersion struct {
	orig    string
	epoch   int64
	version string
	release string
}

func (RPMScheme) Parse(s string) (Version, error) {
	if err := checkCommon("rpm", s); err != nil {
		return nil, err
	}
	if strings.ContainsAny(s, " \t") {
		return nil, parseErr("rpm", s, "contains whitespace")
	}
	v := &RPMVersion{orig: s}
	rest := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		ep := s[:i]
		if !allDigits(ep) {
			return nil, parseErr("rpm", s, "epoch is not a number")
		}
		n := int64(0)
		for j := 0; j < len(ep); j++ {
			n = n*10 + int64(ep[j]-'0')
			if n > 1<<31-1 {
				return nil, parseErr("rpm", s, "epoch too large")
			}
		}
		v.epoch = n
		rest = s[i+1:]
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.version, v.release = rest[:i], rest[i+1:]
	} else {
		v.version = rest
	}
	if v.version == "" {
		return nil, parseErr("rpm", s, "empty version part")
	}
	return v, nil
}

func (v *RPMVersion) String() string     { return v.orig }
func (v *RPMVersion) schemeName() string { return "rpm" }

// Epoch, Ver and Release expose the parts of the EVR.
func (v *RPMVersion) Epoch() int64    { return v.epoch }
func (v *RPMVersion) Ver() string     { return v.version }
func (v *RPMVersion) Release() string { return v.release }

func (v *RPMVersion) Compare(other Version) int {
	o, ok := other.(*RPMVersion)
	if !ok {
		return crossCompare("rpm", v, other)
	}
	if c := cmpInt(v.epoch, o.epoch); c != 0 {
		return c
	}
	if c := rpmvercmp(v.version, o.version); c != 0 {
		return c
	}
	return rpmvercmp(v.release, o.release)
}

func rpmSep(c byte) bool { return !isDigit(c) && !isAlpha(c) && c != '~' && c != '^' }

// rpmvercmp follows rpm's rpmvio.c rules (ASCII only, like rpm's risalnum).
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && rpmSep(a[i]) {
			i++
		}
		for j < len(b) && rpmSep(b[j]) {
			j++
		}
		// '~' sorts before anything, even the end of the string.
		at, bt := i < len(a) && a[i] == '~', j < len(b) && b[j] == '~'
		if at || bt {
			if !at {
				return 1
			}
			if !bt {
				return -1
			}
			i++
			j++
			continue
		}
		// '^' sorts after the end of the string but before anything else.
		ac, bc := i < len(a) && a[i] == '^', j < len(b) && b[j] == '^'
		if ac || bc {
			if i >= len(a) {
				return -1
			}
			if j >= len(b) {
				return 1
			}
			if !ac {
				return 1
			}
			if !bc {
				return -1
			}
			i++
			j++
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		si, sj := i, j
		num := isDigit(a[i])
		if num {
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
		} else {
			for i < len(a) && isAlpha(a[i]) {
				i++
			}
			for j < len(b) && isAlpha(b[j]) {
				j++
			}
		}
		if sj == j {
			// Segments of different types: numeric is newer.
			if num {
				return 1
			}
			return -1
		}
		var c int
		if num {
			c = cmpDigits(a[si:i], b[sj:j])
		} else {
			c = strings.Compare(a[si:i], b[sj:j])
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i < len(a):
		return 1
	}
	return -1
}
