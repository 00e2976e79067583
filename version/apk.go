package version

import (
	"strings"
)

// APKScheme implements apk-tools (v3) version comparison:
// digit{.digit}...{letter}{_suffix{number}}...{~hash}{-rN}. Pre-release
// suffixes _alpha < _beta < _pre < _rc sort before the bare version;
// _cvs < _svn < _git < _hg < _p sort after it. A digit group with a leading
// zero compares as a string (Gentoo rule).
//
// Like apk-tools, a version whose tail is not well formed is compared by its
// well-formed prefix followed by an "invalid" token that sorts below the end
// of the string ("1.0 < 1.0bc"); two versions that both turn invalid at the
// same point after equal prefixes compare equal. Parse therefore only rejects:
// empty input, input over MaxLen bytes, control characters, whitespace, and
// input that does not start with an ASCII digit (no comparable prefix at all).
type APKScheme struct{}

func (APKScheme) Name() string { return "apk" }

type apkTokKind uint8

// Token kinds in apk-tools order; the order matters for comparing versions
// whose token sequences differ in kind.
const (
	apkInitial apkTokKind = iota
	apkDigit
	apkLetter
	apkSuffix
	apkSuffixNo
	apkHash
	apkRevision
	apkEnd
	apkInvalid
)

// Suffix values: pre-release suffixes below apkSufNone, post-release above.
const (
	apkSufAlpha = iota
	apkSufBeta
	apkSufPre
	apkSufRC
	apkSufNone
	apkSufCVS
	apkSufSVN
	apkSufGit
	apkSufHg
	apkSufP
)

type apkToken struct {
	kind   apkTokKind
	suffix int8
	value  string // digits, letter, suffix name or hash
}

// APKVersion is a parsed Alpine package version.
type APKVersion struct {
	orig   string
	tokens []apkToken // ends with an apkEnd or apkInvalid token
}

func (APKScheme) Parse(s string) (Version, error) {
	if err := checkCommon("apk", s); err != nil {
		return nil, err
	}
	if strings.ContainsAny(s, " \t") {
		return nil, parseErr("apk", s, "contains whitespace")
	}
	if !isDigit(s[0]) {
		return nil, parseErr("apk", s, "does not start with a digit")
	}
	return &APKVersion{orig: s, tokens: apkTokenize(s)}, nil
}

// Valid reports whether the whole version is well formed for apk-tools.
func (v *APKVersion) Valid() bool { return v.tokens[len(v.tokens)-1].kind == apkEnd }

func (v *APKVersion) String() string     { return v.orig }
func (v *APKVersion) schemeName() string { return "apk" }

func digitsPrefix(s string) int {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}

func apkSuffixValue(s string) int {
	switch s {
	case "alpha":
		return apkSufAlpha
	case "beta":
		return apkSufBeta
	case "pre":
		return apkSufPre
	case "rc":
		return apkSufRC
	case "cvs":
		return apkSufCVS
	case "svn":
		return apkSufSVN
	case "git":
		return apkSufGit
	case "hg":
		return apkSufHg
	case "p":
		return apkSufP
	}
	return -1
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func apkTokenize(s string) []apkToken {
	n := digitsPrefix(s)
	toks := []apkToken{{kind: apkInitial, value: s[:n]}}
	s = s[n:]
	prev := apkInitial
	for {
		if s == "" {
			return append(toks, apkToken{kind: apkEnd})
		}
		t := apkToken{kind: apkInvalid}
		switch c := s[0]; {
		case isLower(c):
			if prev <= apkDigit {
				t = apkToken{kind: apkLetter, value: s[:1]}
				s = s[1:]
			}
		case c == '.' || isDigit(c):
			if c == '.' {
				if prev > apkDigit {
					break
				}
				s = s[1:]
			}
			switch prev {
			case apkInitial, apkDigit:
				t.kind = apkDigit
			case apkSuffix:
				t.kind = apkSuffixNo
			default:
				t.kind = apkInvalid
			}
			if t.kind != apkInvalid {
				n := digitsPrefix(s)
				if n == 0 {
					t.kind = apkInvalid
					break
				}
				t.value, s = s[:n], s[n:]
			}
		case c == '_':
			if prev > apkSuffixNo {
				break
			}
			n := 1
			for n < len(s) && isLower(s[n]) {
				n++
			}
			if sv := apkSuffixValue(s[1:n]); sv >= 0 {
				t = apkToken{kind: apkSuffix, suffix: int8(sv), value: s[1:n]}
				s = s[n:]
			}
		case c == '~':
			if prev >= apkHash {
				break
			}
			n := 1
			for n < len(s) && isHex(s[n]) {
				n++
			}
			if n > 1 {
				t = apkToken{kind: apkHash, value: s[1:n]}
				s = s[n:]
			}
		case c == '-':
			if prev >= apkRevision || !strings.HasPrefix(s, "-r") {
				break
			}
			n := digitsPrefix(s[2:])
			if n > 0 {
				t = apkToken{kind: apkRevision, value: s[2 : 2+n]}
				s = s[2+n:]
			}
		}
		toks = append(toks, t)
		if t.kind == apkInvalid {
			return toks
		}
		prev = t.kind
	}
}

func apkTokenCmp(a, b *apkToken) int {
	switch a.kind {
	case apkDigit:
		if a.value[0] == '0' || b.value[0] == '0' {
			return strings.Compare(a.value, b.value)
		}
		return cmpDigits(a.value, b.value)
	case apkInitial, apkSuffixNo, apkRevision:
		return cmpDigits(a.value, b.value)
	case apkLetter:
		return cmpInt(a.value[0], b.value[0])
	case apkSuffix:
		return cmpInt(a.suffix, b.suffix)
	case apkHash:
		return strings.Compare(a.value, b.value)
	}
	return 0
}

func (v *APKVersion) Compare(other Version) int {
	o, ok := other.(*APKVersion)
	if !ok {
		return crossCompare("apk", v, other)
	}
	i := 0
	for ; v.tokens[i].kind == o.tokens[i].kind && v.tokens[i].kind < apkEnd; i++ {
		if c := apkTokenCmp(&v.tokens[i], &o.tokens[i]); c != 0 {
			return c
		}
	}
	a, b := &v.tokens[i], &o.tokens[i]
	if a.kind == b.kind {
		return 0
	}
	// The longer version is newer unless it continues with a pre-release
	// suffix; otherwise the token kind that comes earlier is newer.
	if a.kind == apkSuffix && a.suffix < apkSufNone {
		return -1
	}
	if b.kind == apkSuffix && b.suffix < apkSufNone {
		return 1
	}
	if a.kind > b.kind {
		return -1
	}
	return 1
}
