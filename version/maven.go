package version

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MavenScheme implements Maven's ComparableVersion (Maven 4, including
// MNG-5568, MNG-6572, MNG-6964 and MNG-7714): '.' and '-' separators and
// letter/digit transitions split items; '-' (and a qualifier after '.') opens
// a nested list; trailing zeros and "null" qualifiers are normalised away;
// known qualifiers order alpha (a) < beta (b) < milestone (m) < rc (cr) <
// snapshot < "" (ga, final, release) < sp, unknown qualifiers sort after them
// lexically; numbers compare at any size; matching is case-insensitive.
//
// Maven accepts any string; Parse rejects only: empty input, input over
// MaxLen bytes (Maven 4 has the same 256-character cap), control characters,
// invalid UTF-8, and a letter-digit combination whose number contains
// non-ASCII digits (e.g. "x٨1"; Maven would parse Arabic-Indic digits with
// Integer.parseInt or throw, depending on position).
//
// Known differences: lower-casing uses Go's Unicode tables rather than Java's
// English locale, and unknown qualifiers compare by UTF-8 bytes rather than
// UTF-16 code units; both only matter for exotic non-ASCII qualifiers.
type MavenScheme struct{}

func (MavenScheme) Name() string { return "maven" }

type mvnKind uint8

const (
	mvnNum mvnKind = iota
	mvnStr
	mvnComb
	mvnList
)

// Qualifier ranks; mvnRelease is the rank of "no qualifier".
const (
	mvnRelease int8 = 5
	mvnUnknown int8 = 7
)

type mvnItem struct {
	kind  mvnKind
	num   string // digits without leading zeros ("0" for zero): mvnNum, mvnComb
	str   string // qualifier: mvnStr, mvnComb
	qrank int8   // rank of str
	list  []*mvnItem
}

// MavenVersion is a parsed Maven version.
type MavenVersion struct {
	orig  string
	items *mvnItem
}

func mvnQualRank(q string) int8 {
	switch q {
	case "alpha":
		return 0
	case "beta":
		return 1
	case "milestone":
		return 2
	case "rc":
		return 3
	case "snapshot":
		return 4
	case "", "ga", "final", "release":
		return mvnRelease
	case "sp":
		return 6
	}
	return mvnUnknown
}

func newMvnString(s string, followedByDigit bool) *mvnItem {
	if followedByDigit && len(s) == 1 {
		switch s {
		case "a":
			s = "alpha"
		case "b":
			s = "beta"
		case "m":
			s = "milestone"
		}
	}
	if s == "cr" {
		s = "rc"
	}
	return &mvnItem{kind: mvnStr, str: s, qrank: mvnQualRank(s)}
}

func stripZeros(d string) string {
	for len(d) > 1 && d[0] == '0' {
		d = d[1:]
	}
	if d == "" {
		return "0"
	}
	return d
}

// javaDigit is Character.isDigit on one UTF-16 code unit: supplementary
// characters are surrogates there and never digits.
func javaDigit(r rune) bool { return r <= 0xFFFF && unicode.IsDigit(r) }

func (MavenScheme) Parse(s string) (Version, error) {
	if err := checkCommon("maven", s); err != nil {
		return nil, err
	}
	root, err := mvnParse(strings.ToLower(s))
	if err != nil {
		return nil, parseErr("maven", s, err.Error())
	}
	return &MavenVersion{orig: s, items: root}, nil
}

type mvnErr string

func (e mvnErr) Error() string { return string(e) }

func mvnParseItem(comb, digit bool, buf string) (*mvnItem, error) {
	switch {
	case comb:
		buf = strings.ReplaceAll(buf, "-", "")
		idx := 0
		for i, r := range buf {
			if javaDigit(r) {
				idx = i
				break
			}
		}
		d := buf[idx:]
		if !allDigits(d) {
			return nil, mvnErr("non-ASCII digits in a qualifier number")
		}
		sp := newMvnString(buf[:idx], true)
		return &mvnItem{kind: mvnComb, str: sp.str, qrank: sp.qrank, num: stripZeros(d)}, nil
	case digit:
		return &mvnItem{kind: mvnNum, num: stripZeros(buf)}, nil
	}
	return newMvnString(buf, false), nil
}

var mvnZero = &mvnItem{kind: mvnNum, num: "0"}

func mvnParse(v string) (*mvnItem, error) {
	root := &mvnItem{kind: mvnList}
	list := root
	push := func() {
		n := &mvnItem{kind: mvnList}
		list.list = append(list.list, n)
		list = n
	}
	add := func(comb, digit bool, buf string) error {
		it, err := mvnParseItem(comb, digit, buf)
		if err == nil {
			list.list = append(list.list, it)
		}
		return err
	}
	isDig, isComb := false, false
	start := 0
	for i := 0; i < len(v); {
		r, w := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == '.':
			if i == start {
				list.list = append(list.list, mvnZero)
			} else if err := add(isComb, isDig, v[start:i]); err != nil {
				return nil, err
			}
			isComb = false
			start = i + 1
		case r == '-':
			if i == start {
				list.list = append(list.list, mvnZero)
			} else {
				// "X-1" is read as "X1".
				if !isDig && i != len(v)-1 {
					if n, _ := utf8.DecodeRuneInString(v[i+1:]); javaDigit(n) {
						isComb = true
						i += w
						continue
					}
				}
				if err := add(isComb, isDig, v[start:i]); err != nil {
					return nil, err
				}
			}
			start = i + 1
			if len(list.list) > 0 {
				push()
			}
			isComb = false
		case '0' <= r && r <= '9':
			if !isDig && i > start {
				isComb = true // "X1"
				if len(list.list) > 0 {
					push()
				}
			}
			isDig = true
		default:
			if isDig && i > start {
				if err := add(isComb, true, v[start:i]); err != nil {
					return nil, err
				}
				start = i
				push()
				isComb = false
			}
			isDig = false
		}
		i += w
	}
	if len(v) > start {
		// "1.0.0.X1" < "1.0.0-X2": a trailing ".X" is read as "-X".
		if !isDig && len(list.list) > 0 {
			push()
		}
		if err := add(isComb, isDig, v[start:]); err != nil {
			return nil, err
		}
	}
	mvnNormalize(root)
	return root, nil
}

func (it *mvnItem) isNull() bool {
	switch it.kind {
	case mvnNum:
		return it.num == "0"
	case mvnStr:
		return it.str == ""
	case mvnList:
		return len(it.list) == 0
	}
	return false
}

// mvnNormalize drops null items (zeros, release qualifiers) that precede the
// end, a qualifier or a nested list starting with a qualifier, deepest list
// first, as Maven does.
func mvnNormalize(l *mvnItem) {
	if n := len(l.list); n > 0 && l.list[n-1].kind == mvnList {
		mvnNormalize(l.list[n-1])
	}
	for i := len(l.list) - 1; i >= 0; i-- {
		if !l.list[i].isNull() {
			continue
		}
		drop := i == len(l.list)-1 || l.list[i+1].kind == mvnStr
		if !drop && l.list[i+1].kind == mvnList && len(l.list[i+1].list) > 0 {
			k := l.list[i+1].list[0].kind
			drop = k == mvnComb || k == mvnStr
		}
		if drop {
			l.list = append(l.list[:i], l.list[i+1:]...)
		}
	}
	if len(l.list) == 1 && l.list[0].kind == mvnList {
		l.list = l.list[0].list
	}
}

func (v *MavenVersion) String() string     { return v.orig }
func (v *MavenVersion) schemeName() string { return "maven" }

func (v *MavenVersion) Compare(other Version) int {
	o, ok := other.(*MavenVersion)
	if !ok {
		return crossCompare("maven", v, other)
	}
	return mvnCmp(v.items, o.items)
}

// mvnQualCmp compares qualifiers: known ones by rank, then unknown ones by text.
func mvnQualCmp(ar int8, as string, br int8, bs string) int {
	if ar == mvnUnknown && br == mvnUnknown {
		return strings.Compare(as, bs)
	}
	return cmpInt(ar, br)
}

// mvnCmpNull compares an item with "nothing" (the end of a shorter list).
func mvnCmpNull(a *mvnItem) int {
	switch a.kind {
	case mvnNum:
		if a.num == "0" {
			return 0
		}
		return 1
	case mvnStr:
		return cmpInt(a.qrank, mvnRelease)
	case mvnComb:
		if c := cmpInt(a.qrank, mvnRelease); c != 0 {
			return c
		}
		if a.num == "0" {
			return 0
		}
		return 1
	}
	for _, it := range a.list {
		if c := mvnCmpNull(it); c != 0 {
			return c
		}
	}
	return 0
}

func mvnCmp(a, b *mvnItem) int {
	switch a.kind {
	case mvnNum:
		if b.kind == mvnNum {
			return cmpDigits(a.num, b.num)
		}
		return 1 // 1.1 > 1-sp, 1.1 > 1-1
	case mvnStr:
		switch b.kind {
		case mvnNum:
			return -1
		case mvnStr:
			return mvnQualCmp(a.qrank, a.str, b.qrank, b.str)
		case mvnComb:
			if c := mvnQualCmp(a.qrank, a.str, b.qrank, b.str); c != 0 {
				return c
			}
			if cmpInt(a.qrank, mvnRelease) == 0 {
				if b.num == "0" {
					return 0
				}
				return -1
			}
			return -1
		}
		return -mvnCmp(b, a)
	case mvnComb:
		switch b.kind {
		case mvnNum:
			return -1
		case mvnStr:
			if c := mvnQualCmp(a.qrank, a.str, b.qrank, b.str); c != 0 {
				return c
			}
			if cmpInt(a.qrank, mvnRelease) == 0 {
				if a.num == "0" {
					return 0
				}
				return 1
			}
			return 1 // X1 > X
		case mvnComb:
			if c := mvnQualCmp(a.qrank, a.str, b.qrank, b.str); c != 0 {
				return c
			}
			return cmpDigits(a.num, b.num)
		}
		return -mvnCmp(b, a)
	}
	// a is a list.
	switch b.kind {
	case mvnNum:
		return -1 // 1-1 < 1.0.x
	case mvnStr, mvnComb:
		var c int
		if len(a.list) == 0 {
			c = -mvnCmpNull(b)
		} else {
			c = mvnCmp(a.list[0], b)
		}
		for i := 1; c == 0 && i < len(a.list); i++ {
			c = mvnCmpNull(a.list[i])
		}
		return c
	}
	for i := 0; i < len(a.list) || i < len(b.list); i++ {
		var c int
		switch {
		case i >= len(a.list):
			c = -mvnCmpNull(b.list[i])
		case i >= len(b.list):
			c = mvnCmpNull(a.list[i])
		default:
			c = mvnCmp(a.list[i], b.list[i])
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
