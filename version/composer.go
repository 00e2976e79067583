package version

import (
	"regexp"
	"strings"
)

// ComposerScheme implements Composer (Packagist) version ordering: the version
// is normalised as Composer's VersionParser does (optional "v", up to four
// numeric parts padded with zeros, or a date version "2010-01-02"; stability
// suffixes a|alpha, b|beta, RC, p|pl|patch with an optional number, "stable"
// dropped, and an optional "-dev"), then compared with PHP's version_compare
// order: numbers numerically, and dev < alpha < beta < RC < release < patch.
//
// Parse rejects: empty input, input over MaxLen bytes, control characters,
// branch names ("dev-main", "1.x-dev", "dev-feature/x"), aliases
// ("1.0 as 2.0"), constraints ("^1.2", ">=1.0"), more than four numeric parts
// in a classical version, and any other text Composer would not normalise.
type ComposerScheme struct{}

func (ComposerScheme) Name() string { return "composer" }

const composerModifier = `(?:[._-]?(stable|beta|b|rc|alpha|a|patch|pl|p)((?:[.-]?\d+)*)?)?([.-]?dev)?(?:\+[^\s]+)?`

var (
	composerClassic = regexp.MustCompile(`(?i)^v?(\d{1,5})(\.\d+)?(\.\d+)?(\.\d+)?` + composerModifier + `$`)
	composerDate    = regexp.MustCompile(`(?i)^v?(\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:-]?\d{1,3}){0,2})` + composerModifier + `$`)
	composerSep     = regexp.MustCompile(`[.:-]`)
)

// PHP version_compare ranks of special forms; numbers rank as composerNum.
const (
	composerDev   int8 = 0
	composerAlpha int8 = 1
	composerBeta  int8 = 2
	composerRC    int8 = 3
	composerNum   int8 = 4
	composerPatch int8 = 5
)

type composerTok struct {
	rank  int8   // composerNum for numbers
	value string // digits for numbers
}

// ComposerVersion is a parsed Composer version.
type ComposerVersion struct {
	orig string
	norm string
	toks []composerTok
}

// Normalized returns Composer's normalised form, e.g. "1.0.0.0-beta2".
func (v *ComposerVersion) Normalized() string { return v.norm }

func (ComposerScheme) Parse(s string) (Version, error) {
	if err := checkCommon("composer", s); err != nil {
		return nil, err
	}
	t := strings.TrimSpace(s)
	low := strings.ToLower(t)
	switch {
	case strings.HasPrefix(low, "dev-") || strings.HasSuffix(low, ".x-dev") || strings.HasSuffix(low, ".x"):
		return nil, parseErr("composer", s, "a branch name, not a version")
	case strings.Contains(low, " as "):
		return nil, parseErr("composer", s, "an alias, not a version")
	}
	var nums []string
	var m []string
	if m = composerClassic.FindStringSubmatch(t); m != nil {
		for k := 1; k <= 4; k++ {
			p := strings.TrimPrefix(m[k], ".")
			if p == "" {
				p = "0"
			}
			nums = append(nums, p)
		}
		m = m[5:]
	} else if m = composerDate.FindStringSubmatch(t); m != nil {
		nums = composerSep.Split(m[1], -1)
		m = m[2:]
	} else {
		return nil, parseErr("composer", s, "not a Composer version")
	}
	v := &ComposerVersion{orig: s}
	for _, n := range nums {
		v.toks = append(v.toks, composerTok{rank: composerNum, value: stripZeros(n)})
	}
	norm := strings.Join(nums, ".")
	stab, stabNum, dev := strings.ToLower(m[0]), strings.Trim(m[1], ".-"), m[2] != ""
	if stab != "" && stab != "stable" {
		var r int8
		var name string
		switch stab {
		case "a", "alpha":
			r, name = composerAlpha, "alpha"
		case "b", "beta":
			r, name = composerBeta, "beta"
		case "rc":
			r, name = composerRC, "RC"
		default:
			r, name = composerPatch, "patch"
		}
		v.toks = append(v.toks, composerTok{rank: r})
		norm += "-" + name + stabNum
		if stabNum != "" {
			for _, n := range composerSep.Split(stabNum, -1) {
				v.toks = append(v.toks, composerTok{rank: composerNum, value: stripZeros(n)})
			}
		}
	}
	if dev {
		v.toks = append(v.toks, composerTok{rank: composerDev})
		norm += "-dev"
	}
	v.norm = norm
	return v, nil
}

func (v *ComposerVersion) String() string     { return v.orig }
func (v *ComposerVersion) schemeName() string { return "composer" }

// Compare follows PHP's version_compare on the normalised forms: parts pair
// up; two numbers compare numerically, otherwise by rank; when one version
// runs out, its next part is compared against a number-ranked placeholder, so
// a trailing number wins and a trailing "-dev" or "-beta" loses.
func (v *ComposerVersion) Compare(other Version) int {
	o, ok := other.(*ComposerVersion)
	if !ok {
		return crossCompare("composer", v, other)
	}
	n := min(len(v.toks), len(o.toks))
	for i := 0; i < n; i++ {
		a, b := v.toks[i], o.toks[i]
		if a.rank == composerNum && b.rank == composerNum {
			if c := cmpDigits(a.value, b.value); c != 0 {
				return c
			}
			continue
		}
		if c := cmpInt(a.rank, b.rank); c != 0 {
			return c
		}
	}
	switch {
	case len(v.toks) > n:
		if v.toks[n].rank == composerNum {
			return 1
		}
		return cmpInt(v.toks[n].rank, composerNum)
	case len(o.toks) > n:
		if o.toks[n].rank == composerNum {
			return -1
		}
		return cmpInt(composerNum, o.toks[n].rank)
	}
	return 0
}
