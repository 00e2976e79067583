package version

import (
	"regexp"
	"strconv"
	"strings"
)

// PEP440Scheme implements PEP 440 (the "Version specifiers" specification of
// the Python Packaging Authority) as normalised by pypa/packaging: optional
// epoch "N!", release "N(.N)*", pre-release (a|alpha, b|beta, c|rc|pre|preview,
// optional separators and implicit number 0), post-release (.postN, -N, rev,
// r), dev-release (.devN) and a local label "+abc.5". Matching is
// case-insensitive; a leading "v" and surrounding whitespace are allowed.
//
// Ordering: epoch, release (trailing zeros ignored), pre (dev-only versions
// before any pre-release), post, dev, local (numeric local segments after
// alphanumeric ones; a longer local label wins on a common prefix).
//
// Parse rejects: empty input, input over MaxLen bytes, control characters,
// anything that does not match the PEP 440 grammar (legacy versions such as
// "1.0-SNAPSHOT-foo", "2.0b1-x", "dev"), and numbers (epoch, release, pre,
// post, dev) above 2^64-1.
type PEP440Scheme struct{}

func (PEP440Scheme) Name() string { return "pep440" }

// The grammar published in PEP 440's appendix, written for Go's regexp.
var pep440Re = regexp.MustCompile(`(?i)^\s*v?` +
	`(?:(?P<epoch>[0-9]+)!)?` +
	`(?P<release>[0-9]+(?:\.[0-9]+)*)` +
	`(?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?` +
	`(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?` +
	`(?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?` +
	`(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?` +
	`\s*$`)

var pep440Idx = func() map[string]int {
	m := map[string]int{}
	for i, n := range pep440Re.SubexpNames() {
		if n != "" {
			m[n] = i
		}
	}
	return m
}()

// Pre-release phases; pepNoPre sorts after every pre-release and pepDevOnly
// before (a version with only a dev part precedes its pre-releases).
const (
	pepDevOnly int8 = -1
	pepA       int8 = 0
	pepB       int8 = 1
	pepRC      int8 = 2
	pepNoPre   int8 = 3
)

type pepLocal struct {
	num   bool
	value string // digits or lower-case alphanumerics
}

// PEP440Version is a parsed Python package version.
type PEP440Version struct {
	orig    string
	epoch   uint64
	release []uint64 // trailing zeros removed
	pre     int8
	preN    uint64
	hasPost bool
	post    uint64
	hasDev  bool
	dev     uint64
	local   []pepLocal
}

func (PEP440Scheme) Parse(s string) (Version, error) {
	if err := checkCommon("pep440", s); err != nil {
		return nil, err
	}
	m := pep440Re.FindStringSubmatch(s)
	if m == nil {
		return nil, parseErr("pep440", s, "does not match the PEP 440 grammar")
	}
	g := func(n string) string { return m[pep440Idx[n]] }
	num := func(d string) (uint64, bool) {
		if d == "" {
			return 0, true
		}
		n, err := strconv.ParseUint(d, 10, 64)
		return n, err == nil
	}
	v := &PEP440Version{orig: s, pre: pepNoPre}
	var ok bool
	if v.epoch, ok = num(g("epoch")); !ok {
		return nil, parseErr("pep440", s, "epoch out of range")
	}
	for _, part := range strings.Split(g("release"), ".") {
		n, ok := num(part)
		if !ok {
			return nil, parseErr("pep440", s, "release number out of range")
		}
		v.release = append(v.release, n)
	}
	for len(v.release) > 0 && v.release[len(v.release)-1] == 0 {
		v.release = v.release[:len(v.release)-1]
	}
	if g("pre") != "" {
		switch strings.ToLower(g("pre_l")) {
		case "a", "alpha":
			v.pre = pepA
		case "b", "beta":
			v.pre = pepB
		default:
			v.pre = pepRC
		}
		if v.preN, ok = num(g("pre_n")); !ok {
			return nil, parseErr("pep440", s, "pre-release number out of range")
		}
	}
	if g("post") != "" {
		v.hasPost = true
		n := g("post_n1")
		if n == "" {
			n = g("post_n2")
		}
		if v.post, ok = num(n); !ok {
			return nil, parseErr("pep440", s, "post-release number out of range")
		}
	}
	if g("dev") != "" {
		v.hasDev = true
		if v.dev, ok = num(g("dev_n")); !ok {
			return nil, parseErr("pep440", s, "dev-release number out of range")
		}
		if v.pre == pepNoPre && !v.hasPost {
			v.pre = pepDevOnly
		}
	}
	if l := g("local"); l != "" {
		for _, seg := range strings.FieldsFunc(strings.ToLower(l), func(r rune) bool { return r == '.' || r == '-' || r == '_' }) {
			v.local = append(v.local, pepLocal{num: allDigits(seg), value: seg})
		}
	}
	return v, nil
}

func (v *PEP440Version) String() string     { return v.orig }
func (v *PEP440Version) schemeName() string { return "pep440" }

// IsPrerelease reports a pre- or dev-release.
func (v *PEP440Version) IsPrerelease() bool { return v.pre != pepNoPre || v.hasDev }

func (v *PEP440Version) Compare(other Version) int {
	o, ok := other.(*PEP440Version)
	if !ok {
		return crossCompare("pep440", v, other)
	}
	if c := cmpInt(v.epoch, o.epoch); c != 0 {
		return c
	}
	for i := 0; i < len(v.release) || i < len(o.release); i++ {
		var a, b uint64
		if i < len(v.release) {
			a = v.release[i]
		}
		if i < len(o.release) {
			b = o.release[i]
		}
		if c := cmpInt(a, b); c != 0 {
			return c
		}
	}
	if c := cmpInt(v.pre, o.pre); c != 0 {
		return c
	}
	if v.pre != pepNoPre && v.pre != pepDevOnly {
		if c := cmpInt(v.preN, o.preN); c != 0 {
			return c
		}
	}
	if v.hasPost != o.hasPost {
		if v.hasPost {
			return 1
		}
		return -1
	}
	if c := cmpInt(v.post, o.post); c != 0 {
		return c
	}
	if v.hasDev != o.hasDev {
		if v.hasDev {
			return -1
		}
		return 1
	}
	if c := cmpInt(v.dev, o.dev); c != 0 {
		return c
	}
	for i := 0; i < len(v.local) && i < len(o.local); i++ {
		a, b := &v.local[i], &o.local[i]
		if a.num != b.num {
			if a.num {
				return 1
			}
			return -1
		}
		var c int
		if a.num {
			c = cmpDigits(a.value, b.value)
		} else {
			c = strings.Compare(a.value, b.value)
		}
		if c != 0 {
			return c
		}
	}
	return cmpInt(len(v.local), len(o.local))
}
