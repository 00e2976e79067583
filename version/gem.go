package version

import "strings"

// GemScheme implements RubyGems' Gem::Version ordering: the version is split
// into numeric and letter runs ("1.0.b1" → 1, 0, "b", 1; "-" means ".pre.");
// trailing zeros of the release part and of the pre-release part are dropped;
// segments compare pairwise with a missing segment read as 0; a string
// segment sorts before any number (so "1.0.a" < "1.0"), strings compare by
// bytes and numbers numerically at any size.
//
// Parse rejects what Gem::Version rejects: empty or blank input (RubyGems
// reads a blank string as "0"; we refuse it so that a missing version is not
// silently treated as the oldest), input over MaxLen bytes, control
// characters, and anything not matching
// `[0-9]+(\.[0-9A-Za-z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?` after trimming
// surrounding whitespace ("a1", "1..2", "1.2 3", "1.0-", "1_0").
type GemScheme struct{}

func (GemScheme) Name() string { return "gem" }

type gemSeg struct {
	num   bool
	value string // digits without leading zeros, or letters
}

// GemVersion is a parsed RubyGems version.
type GemVersion struct {
	orig string
	segs []gemSeg // canonical segments
}

func validGem(t string) bool {
	n := digitsPrefix(t)
	if n == 0 {
		return false
	}
	rest := t[n:]
	pre := ""
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		rest, pre = rest[:i], rest[i+1:]
		if pre == "" {
			return false
		}
	}
	if rest != "" {
		if rest[0] != '.' {
			return false
		}
		for _, p := range strings.Split(rest[1:], ".") {
			if p == "" {
				return false
			}
			for i := 0; i < len(p); i++ {
				if !isDigit(p[i]) && !isAlpha(p[i]) {
					return false
				}
			}
		}
	}
	if pre != "" {
		for _, p := range strings.Split(pre, ".") {
			if p == "" {
				return false
			}
			for i := 0; i < len(p); i++ {
				if !isDigit(p[i]) && !isAlpha(p[i]) && p[i] != '-' {
					return false
				}
			}
		}
	}
	return true
}

func (GemScheme) Parse(s string) (Version, error) {
	if err := checkCommon("gem", s); err != nil {
		return nil, err
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, parseErr("gem", s, "blank")
	}
	if !validGem(t) {
		return nil, parseErr("gem", s, "malformed version number")
	}
	t = strings.ReplaceAll(t, "-", ".pre.")
	var all []gemSeg
	for i := 0; i < len(t); {
		j := i
		switch {
		case isDigit(t[i]):
			for j < len(t) && isDigit(t[j]) {
				j++
			}
			all = append(all, gemSeg{num: true, value: stripZeros(t[i:j])})
		case isAlpha(t[i]):
			for j < len(t) && isAlpha(t[j]) {
				j++
			}
			all = append(all, gemSeg{value: t[i:j]})
		default:
			j++
		}
		i = j
	}
	// Drop trailing zeros of the release part and of the pre-release part.
	split := len(all)
	for k, sg := range all {
		if !sg.num {
			split = k
			break
		}
	}
	trim := func(x []gemSeg) []gemSeg {
		for len(x) > 0 && x[len(x)-1].num && x[len(x)-1].value == "0" {
			x = x[:len(x)-1]
		}
		return x
	}
	rel := trim(append([]gemSeg(nil), all[:split]...))
	pre := trim(all[split:])
	return &GemVersion{orig: s, segs: append(rel, pre...)}, nil
}

func (v *GemVersion) String() string     { return v.orig }
func (v *GemVersion) schemeName() string { return "gem" }

// IsPrerelease reports a version holding letters (Gem::Version#prerelease?).
func (v *GemVersion) IsPrerelease() bool {
	for _, s := range v.segs {
		if !s.num {
			return true
		}
	}
	return false
}

var gemZero = gemSeg{num: true, value: "0"}

func (v *GemVersion) Compare(other Version) int {
	o, ok := other.(*GemVersion)
	if !ok {
		return crossCompare("gem", v, other)
	}
	for i := 0; i < len(v.segs) || i < len(o.segs); i++ {
		a, b := gemZero, gemZero
		if i < len(v.segs) {
			a = v.segs[i]
		}
		if i < len(o.segs) {
			b = o.segs[i]
		}
		switch {
		case a.num && b.num:
			if c := cmpDigits(a.value, b.value); c != 0 {
				return c
			}
		case a.num:
			return 1
		case b.num:
			return -1
		default:
			if c := strings.Compare(a.value, b.value); c != 0 {
				return c
			}
		}
	}
	return 0
}
