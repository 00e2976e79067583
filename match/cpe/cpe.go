// Package cpe parses CPE 2.3 names (NISTIR 7695 formatted strings, and the 2.2 URI form that some
// SBOM tools still write), compares them (NISTIR 7696 name matching, simplified), and evaluates NVD
// configurations against the CPEs of one resource. It is the opt-in CPE matching of Vigil: OS
// packages match their vendor's advisories and language packages their ecosystem's; NVD's CPE
// applicability is a third, noisier source that users turn on explicitly.
package cpe

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Attribute indexes of a Name, in the order of the formatted string.
const (
	Part = iota
	Vendor
	Product
	Version
	Update
	Edition
	Language
	SWEdition
	TargetSW
	TargetHW
	Other
	numAttrs
)

// The logical values. A Name stores them as these strings, which no escaped value can equal: a
// literal "*" or "-" value is stored with its escape.
const (
	Any = "*" // ANY: matches every value
	NA  = "-" // NOT APPLICABLE: matches only NA
)

// MaxLen caps the formatted strings Parse accepts; real CPEs are under 200 bytes.
const MaxLen = 1024

// Name is a parsed CPE: eleven attributes, each Any, NA or a value. Values are kept in their
// formatted-string spelling, lower case (CPE comparison is case-insensitive): escapes stay, so
// `\*` (a literal star) and `*` (ANY, or a wildcard inside a value) remain distinct.
type Name [numAttrs]string

// ErrSyntax is matched (errors.Is) by every parse error.
var ErrSyntax = errors.New("invalid CPE")

func syntaxErr(s, why string) error {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Errorf("%w %q: %s", ErrSyntax, s, why)
}

// Parse reads a CPE 2.3 formatted string ("cpe:2.3:a:apache:log4j:2.14.1:*:*:*:*:*:*:*") or a 2.2
// URI ("cpe:/a:apache:log4j:2.14.1"). Trailing attributes a string leaves out are ANY (SBOM tools
// sometimes shorten names; NVD never does). Part must be a, o, h or ANY; vendor and product must
// be values, since a name without them identifies nothing.
func Parse(s string) (Name, error) {
	var n Name
	if len(s) > MaxLen {
		return n, syntaxErr(s, "too long")
	}
	if !utf8.ValidString(s) {
		return n, syntaxErr(s, "not UTF-8")
	}
	var err error
	switch {
	case strings.HasPrefix(s, "cpe:2.3:"):
		n, err = parseFS(s)
	case strings.HasPrefix(s, "cpe:/"):
		n, err = parseURI(s)
	default:
		return n, syntaxErr(s, "not a cpe:2.3: or cpe:/ name")
	}
	if err != nil {
		return n, err
	}
	switch n[Part] {
	case "a", "o", "h", Any:
	default:
		return n, syntaxErr(s, "part must be a, o or h")
	}
	if n[Vendor] == Any || n[Vendor] == NA || n[Product] == Any || n[Product] == NA {
		return n, syntaxErr(s, "vendor and product must be values")
	}
	return n, nil
}

// parseFS splits a formatted string on unescaped colons and checks each attribute.
func parseFS(s string) (Name, error) {
	var n Name
	rest := s[len("cpe:2.3:"):]
	i := 0
	for a := 0; a < numAttrs; a++ {
		if i > len(rest) {
			n[a] = Any
			continue
		}
		j := i
		for j < len(rest) && rest[j] != ':' {
			if rest[j] == '\\' {
				j++
			}
			j++
		}
		if j > len(rest) {
			return n, syntaxErr(s, "ends with a lone backslash")
		}
		v, err := fsValue(rest[i:j])
		if err != nil {
			return n, syntaxErr(s, err.Error())
		}
		n[a] = v
		i = j + 1
	}
	if i <= len(rest) {
		return n, syntaxErr(s, "more than 11 attributes")
	}
	return n, nil
}

// fsValue checks one formatted-string attribute: "*", "-", or characters where everything other
// than letters, digits, '_', '-' and '.' is escaped, except '*' and '?' wildcards at either end.
func fsValue(v string) (string, error) {
	switch v {
	case "":
		return "", errors.New("empty attribute")
	case Any, NA:
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			if i+1 >= len(v) {
				return "", errors.New("ends with a lone backslash")
			}
			i++
			e := v[i]
			if e <= ' ' || e >= 0x7f {
				return "", errors.New("escaped character is not printable ASCII")
			}
			if isPlain(e) {
				b.WriteByte(lower(e)) // "\a" is just "a"; keep one spelling per value
			} else {
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		case c == '*':
			if i != 0 && i != len(v)-1 {
				return "", errors.New("'*' inside a value")
			}
			b.WriteByte(c)
		case c == '?':
			// Runs of '?' are allowed only at the ends.
			if !onlyQ(v[:i]) && !onlyQ(v[i+1:]) {
				return "", errors.New("'?' inside a value")
			}
			b.WriteByte(c)
		case isPlain(c):
			b.WriteByte(lower(c))
		default:
			return "", fmt.Errorf("unescaped %q", c)
		}
	}
	out := b.String()
	if out == NA {
		return `\-`, nil // an escaped lone hyphen is the literal value "-", not NA
	}
	if strings.Trim(out, "*?") == "" {
		return "", errors.New("value made only of wildcards")
	}
	return out, nil
}

func onlyQ(s string) bool { return strings.Trim(s, "?") == "" }

func isPlain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// parseURI reads the CPE 2.2 URI binding: percent-encoding, empty = ANY, "-" = NA, and the packed
// edition "~edition~sw_edition~target_sw~target_hw~other".
func parseURI(s string) (Name, error) {
	var n Name
	parts := strings.Split(s[len("cpe:/"):], ":")
	if len(parts) > 7 {
		return n, syntaxErr(s, "more than 7 URI components")
	}
	comps := make([]string, 7)
	copy(comps, parts)
	attr := []int{Part, Vendor, Product, Version, Update, Edition, Language}
	for k, c := range comps {
		if k == 5 && strings.HasPrefix(c, "~") {
			packed := strings.Split(c[1:], "~")
			if len(packed) != 5 {
				return n, syntaxErr(s, "packed edition needs 5 fields")
			}
			for m, a := range []int{Edition, SWEdition, TargetSW, TargetHW, Other} {
				v, err := uriValue(packed[m])
				if err != nil {
					return n, syntaxErr(s, err.Error())
				}
				n[a] = v
			}
			continue
		}
		v, err := uriValue(c)
		if err != nil {
			return n, syntaxErr(s, err.Error())
		}
		n[attr[k]] = v
	}
	for _, a := range []int{SWEdition, TargetSW, TargetHW, Other} {
		if n[a] == "" {
			n[a] = Any
		}
	}
	return n, nil
}

func uriValue(c string) (string, error) {
	switch c {
	case "":
		return Any, nil
	case NA:
		return NA, nil
	}
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		ch := c[i]
		if ch == '%' {
			if i+2 >= len(c) || unhex(c[i+1]) < 0 || unhex(c[i+2]) < 0 {
				return "", errors.New("bad percent-encoding")
			}
			ch = byte(unhex(c[i+1])<<4 | unhex(c[i+2]))
			i += 2
			if ch <= ' ' || ch >= 0x7f {
				return "", errors.New("encoded character is not printable ASCII")
			}
			// %01 and %02 (the URI's wildcards) fall in the refused range above.
			if isPlain(ch) {
				b.WriteByte(lower(ch))
			} else {
				b.WriteByte('\\')
				b.WriteByte(ch)
			}
			continue
		}
		if !isPlain(ch) {
			return "", fmt.Errorf("unencoded %q", ch)
		}
		b.WriteByte(lower(ch))
	}
	if b.String() == NA {
		return `\-`, nil // "%2d": the literal value "-", not NA
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// String formats the name as a CPE 2.3 formatted string (lower case).
func (n Name) String() string {
	var b strings.Builder
	b.WriteString("cpe:2.3")
	for _, v := range n {
		b.WriteByte(':')
		if v == "" {
			v = Any
		}
		b.WriteString(v)
	}
	return b.String()
}

// Unescape returns an attribute value without its escapes ("c\+\+" → "c++"), for display and
// for comparing with package names.
func Unescape(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// Escape spells a plain string as a formatted-string value: lower case, every character other than
// letters, digits, '_', '-' and '.' escaped. Spaces become '_', as NVD spells product names.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isPlain(c):
			b.WriteByte(lower(c))
		case c == ' ':
			b.WriteByte('_')
		case c > ' ' && c < 0x7f:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ProductKey names a (vendor, product) pair as one string, "vendor:product" in formatted-string
// spelling (an escaped colon cannot be confused with the separator). The vulnerability database
// indexes configurations and logs changes under it.
func ProductKey(vendor, product string) string { return vendor + ":" + product }

// attrMatch compares a criterion's attribute with a name's (NISTIR 7696, simplified to what NVD
// writes): ANY in the criterion matches everything; NA matches only NA; a value matches an equal
// value, or with wildcards at its ends, a value they cover. ANY in the name (the name says nothing)
// matches only ANY: an unknown target is not a known match.
func attrMatch(crit, have string) bool {
	switch {
	case crit == Any:
		return true
	case crit == NA || have == NA || have == Any:
		return crit == have
	case crit == have:
		return true
	}
	if !hasWildcard(crit) {
		return false
	}
	return glob(crit, have)
}

// glob matches a formatted-string value against a pattern whose unescaped '*' matches any run of
// characters and '?' exactly one; "\x" in either stands for the one character x.
func glob(pat, s string) bool {
	p, v := units(pat), units(s)
	// Classic two-pointer wildcard matching with backtracking to the last '*'.
	pi, vi, star, mark := 0, 0, -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && p[pi] == "?":
			pi++
			vi++
		case pi < len(p) && p[pi] == "*":
			star, mark = pi, vi
			pi++
		case pi < len(p) && p[pi] == v[vi]:
			pi++
			vi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == "*" {
		pi++
	}
	return pi == len(p)
}

// units splits a value into characters, an escape and its character being one unit; unescaped
// '*' and '?' are the units "*" and "?", escaped ones "\*" and "\?".
func units(s string) []string {
	out := make([]string, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			out = append(out, s[i:i+2])
			i++
			continue
		}
		out = append(out, s[i:i+1])
	}
	return out
}

// hasWildcard reports whether a value holds an unescaped '*' or '?'.
func hasWildcard(v string) bool {
	for _, u := range units(v) {
		if u == "*" || u == "?" {
			return true
		}
	}
	return false
}
