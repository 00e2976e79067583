package cpe

import (
	"strings"

	"github.com/vigil-sec/vigil/version"
)

// CompareVersions orders two upstream version strings as NVD's ranges mean them. NVD writes
// upstream versions, whatever the packaging, so no ecosystem's rules apply; this is a generic,
// semver-ish order:
//
//   - A version is split into runs of digits and runs of letters; '.', '-', '_', '+' and '~' only
//     separate. "2.0-beta9" is [2 0 beta 9], "1.0.2k" is [1 0 2 k].
//   - Runs compare in turn: numbers numerically (leading zeros ignored); a missing run counts as 0,
//     so "2.15" = "2.15.0".
//   - Words rank: dev/snapshot < alpha/a < beta/b < milestone/m < rc/cr/pre/preview < (release,
//     also ga/final/release) < any other word (patch letters and suffixes such as "k", "sp1",
//     "p1"); other words compare alphabetically among themselves. So 2.0-beta9 < 2.0 < 2.0.1, and
//     1.0.2 < 1.0.2k < 1.0.3.
//   - A number ranks above a word in the same place (2.0.1 > 2.0-rc1 and 2.0.1 > 2.0.x).
//
// Case is ignored. The comparison never fails: any string has an order.
func CompareVersions(a, b string) int {
	ta, tb := tokens(a), tokens(b)
	for i := 0; i < len(ta) || i < len(tb); i++ {
		var x, y token
		if i < len(ta) {
			x = ta[i]
		} else {
			x = token{num: true, end: true}
		}
		if i < len(tb) {
			y = tb[i]
		} else {
			y = token{num: true, end: true}
		}
		if c := cmpToken(x, y); c != 0 {
			return c
		}
	}
	return 0
}

type token struct {
	s   string
	num bool
	end bool // a missing run: 0 against numbers, "release" against words
}

func tokens(v string) []token {
	v = strings.ToLower(strings.TrimSpace(v))
	v = strings.TrimPrefix(v, "v")
	var out []token
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case isDigit(c):
			j := i
			for j < len(v) && isDigit(v[j]) {
				j++
			}
			out = append(out, token{s: strings.TrimLeft(v[i:j], "0"), num: true})
			i = j
		case isAlpha(c):
			j := i
			for j < len(v) && isAlpha(v[j]) {
				j++
			}
			out = append(out, token{s: v[i:j]})
			i = j
		default:
			i++ // separators and anything else only separate
		}
	}
	// Trailing zeros and release words say nothing: "2.15.0" = "2.15" = "2.15.final".
	for len(out) > 0 {
		t := out[len(out)-1]
		if (t.num && t.s == "") || (!t.num && wordRank(t.s) == 0) {
			out = out[:len(out)-1]
			continue
		}
		break
	}
	return out
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' }

// wordRank places pre-release words below a release (0) and every other word above it.
func wordRank(w string) int {
	switch w {
	case "dev", "snapshot":
		return -5
	case "alpha", "a":
		return -4
	case "beta", "b":
		return -3
	case "milestone", "m":
		return -2
	case "rc", "cr", "pre", "preview":
		return -1
	case "ga", "final", "release":
		return 0
	}
	return 1
}

func cmpToken(x, y token) int {
	switch {
	case x.num && y.num:
		xs, ys := x.s, y.s
		if len(xs) != len(ys) {
			return sign(len(xs) - len(ys))
		}
		return strings.Compare(xs, ys)
	case x.num && !y.num:
		if x.end {
			return -sign(wordRank(y.s)) // release against a word: below post words, above pre-releases
		}
		return 1
	case !x.num && y.num:
		return -cmpToken(y, x)
	}
	rx, ry := wordRank(x.s), wordRank(y.s)
	if rx != ry {
		return sign(rx - ry)
	}
	if rx == 1 {
		return strings.Compare(x.s, y.s)
	}
	return 0
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// Generic is CompareVersions as a version.Scheme, for callers that hold schemes.
var Generic version.Scheme = genericScheme{}

type genericScheme struct{}

func (genericScheme) Name() string { return "cpe-generic" }

func (genericScheme) Parse(s string) (version.Version, error) {
	if s == "" || len(s) > version.MaxLen {
		return nil, &version.ParseError{Scheme: "cpe-generic", Input: s, Reason: "empty or too long"}
	}
	return genericVersion(s), nil
}

type genericVersion string

func (v genericVersion) Compare(o version.Version) int {
	return CompareVersions(string(v), o.String())
}

func (v genericVersion) String() string { return string(v) }
