package cpe

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"cpe:2.3:a:apache:log4j:2.14.1:*:*:*:*:*:*:*", Name{"a", "apache", "log4j", "2.14.1", Any, Any, Any, Any, Any, Any, Any}},
		{"cpe:2.3:a:apache:log4j:2.0:beta9:*:*:*:*:*:*", Name{"a", "apache", "log4j", "2.0", "beta9", Any, Any, Any, Any, Any, Any}},
		{"cpe:2.3:o:paloaltonetworks:pan-os:10.2.0:-:*:*:*:*:*:*", Name{"o", "paloaltonetworks", "pan-os", "10.2.0", NA, Any, Any, Any, Any, Any, Any}},
		// Escapes: a colon inside a value, and the C++ plus signs NVD escapes.
		{`cpe:2.3:a:gnu:gcc\:c\+\+:1.0:*:*:*:*:*:*:*`, Name{"a", "gnu", `gcc\:c\+\+`, "1.0", Any, Any, Any, Any, Any, Any, Any}},
		// Case folds; "\a" is a needless escape of a plain letter.
		{`cpe:2.3:A:Microsoft:.NET_Framework:4.8:*:*:*:*:*:x64:*`, Name{"a", "microsoft", ".net_framework", "4.8", Any, Any, Any, Any, Any, "x64", Any}},
		{`cpe:2.3:a:lodash:lodash:*:*:*:*:*:node.js:*:*`, Name{"a", "lodash", "lodash", Any, Any, Any, Any, Any, "node.js", Any, Any}},
		// Wildcards at the ends of a value; a literal star escaped.
		{`cpe:2.3:a:vendor:prod:1.*:*:*:*:*:*:*:*`, Name{"a", "vendor", "prod", "1.*", Any, Any, Any, Any, Any, Any, Any}},
		{`cpe:2.3:a:vendor:prod\*:??1:*:*:*:*:*:*:*`, Name{"a", "vendor", `prod\*`, "??1", Any, Any, Any, Any, Any, Any, Any}},
		// An escaped lone hyphen is a value, not NA.
		{`cpe:2.3:a:vendor:prod:\-:*:*:*:*:*:*:*`, Name{"a", "vendor", "prod", `\-`, Any, Any, Any, Any, Any, Any, Any}},
		// Shortened names (some SBOM tools) leave the tail ANY.
		{"cpe:2.3:a:apache:commons_text:1.9", Name{"a", "apache", "commons_text", "1.9", Any, Any, Any, Any, Any, Any, Any}},
		// The CPE 2.2 URI binding, with percent-encoding and a packed edition.
		{"cpe:/a:apache:tomcat:9.0.17", Name{"a", "apache", "tomcat", "9.0.17", Any, Any, Any, Any, Any, Any, Any}},
		{"cpe:/a:gnu:gcc%3ac%2b%2b:1.0::~~~node.js~~", Name{"a", "gnu", `gcc\:c\+\+`, "1.0", Any, Any, Any, Any, "node.js", Any, Any}},
		{"cpe:/a:vendor:prod:%2d", Name{"a", "vendor", "prod", `\-`, Any, Any, Any, Any, Any, Any, Any}},
		{"cpe:/o:debian:debian_linux:12:-", Name{"o", "debian", "debian_linux", "12", NA, Any, Any, Any, Any, Any, Any}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		back, err := Parse(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q: %q, %v", tt.in, back, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"cpe:2.2:a:apache:log4j",
		"pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
		"cpe:2.3:x:apache:log4j:*:*:*:*:*:*:*:*",       // unknown part
		"cpe:2.3:a:*:log4j:*:*:*:*:*:*:*:*",            // vendor ANY
		"cpe:2.3:a:apache:-:*:*:*:*:*:*:*:*",           // product NA
		"cpe:2.3:a:apache:log4j:*:*:*:*:*:*:*:*:extra", // 12 attributes
		"cpe:2.3:a:apache:log4j::*:*:*:*:*:*:*",        // empty attribute
		"cpe:2.3:a:apache:log 4j:*:*:*:*:*:*:*:*",      // unescaped space
		`cpe:2.3:a:apache:log4j:2.0\`,                  // lone backslash
		"cpe:2.3:a:apache:lo*g4j:*:*:*:*:*:*:*:*",      // wildcard inside a value
		"cpe:2.3:a:apache:**:*:*:*:*:*:*:*:*",          // only wildcards
		"cpe:/a:apache:log4j:2.0%zz",                   // bad percent-encoding
		"cpe:/a:apache:log4j:2.0%01",                   // URI wildcard
		"cpe:2.3:a:apache:log4j:\xff:*:*:*:*:*:*:*",    // not UTF-8
	} {
		if n, err := Parse(in); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %q, %v; want ErrSyntax", in, n, err)
		}
	}
}

func TestAttrMatch(t *testing.T) {
	tests := []struct {
		crit, have string
		want       bool
	}{
		{Any, "x", true}, {Any, NA, true}, {Any, Any, true},
		{NA, NA, true}, {NA, "x", false}, {NA, Any, false},
		{"x", "x", true}, {"x", "y", false}, {"x", Any, false}, {"x", NA, false},
		{"1.*", "1.2.3", true}, {"1.*", "2.1", false}, {"*beta", "1.0beta", true},
		{"??1", "x21", true}, {"??1", "21", false}, {`prod\*`, `prod\*`, true},
		{`prod\*`, "prodx", false}, {`*\:x`, `a\:x`, true}, {`*\:x`, "a:x", false}, {"1.*", "1.", true},
		{"*.1", "2.1.1", true}, {"*.1?", "2.1.1", false}, {"?.1*", "2.1", true}, {"?.1*", "22.1", false},
	}
	for _, tt := range tests {
		if got := attrMatch(tt.crit, tt.have); got != tt.want {
			t.Errorf("attrMatch(%q, %q) = %v, want %v", tt.crit, tt.have, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"cpe:2.3:a:apache:log4j:2.0:beta9:*:*:*:*:*:*", `cpe:2.3:a:gnu:gcc\:c\+\+:1.0:*:*:*:*:*:*:*`,
		"cpe:/a:gnu:gcc%3ac%2b%2b:1.0::~~~node.js~~", "cpe:2.3:a:v:p:1.*:*", "cpe:2.3:a:v:p:??1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		// A parsed name formats to a string that parses back to itself.
		back, err := Parse(n.String())
		if err != nil || back != n {
			t.Fatalf("%q → %q → %q, %v", s, n.String(), back, err)
		}
		if n[Vendor] == Any || n[Product] == Any {
			t.Fatalf("%q: vendor or product ANY", s)
		}
		_ = attrMatch(n[Version], n[Update])
		_ = glob(n[Version], n[Product])
		_ = CompareVersions(Unescape(n[Version]), Unescape(n[Update]))
	})
}
