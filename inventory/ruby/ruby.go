// Package ruby finds RubyGems packages: installed gems (the specification stubs RubyGems and Bundler
// write under <gem dir>/specifications/, default gems included) and Bundler lockfiles.
//
// Gem specifications are Ruby code. They are never evaluated: the lines RubyGems itself writes
// ("# stub: name version platform paths", `s.name = "x".freeze`, `s.version = "1.2.3"`) are read by a
// line parser, and anything computed at run time is not understood.
package ruby

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

const (
	maxGemspecSize  = 1 << 20
	maxLockfileSize = 32 << 20
)

func gemPackage(name, version string) model.Package {
	return model.Package{
		Name:      name,
		Version:   version,
		Ecosystem: model.EcoRubyGems,
		PURL:      packageurl.NewPackageURL(packageurl.TypeGem, "", name, version, nil, "").ToString(),
	}
}

// Gem names are [A-Za-z0-9_.-]; versions start with a digit and hold [0-9A-Za-z.] (prereleases are
// "1.0.0.rc1"; a "-" is turned into ".pre." by RubyGems, but written as given).
var (
	gemNameRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]*$`)
	gemVersionRE = regexp.MustCompile(`^[0-9][0-9A-Za-z.\-]*$`)
)

// Gemspec reads installed gem specifications.
type Gemspec struct{}

// NewGemspec returns the installed-gem extractor.
func NewGemspec() *Gemspec { return &Gemspec{} }

// Name implements inventory.Extractor.
func (*Gemspec) Name() string { return "ruby-gemspec" }

// Version implements inventory.Extractor.
func (*Gemspec) Version() int { return 1 }

// Required accepts <gem dir>/specifications/*.gemspec and <gem dir>/specifications/default/*.gemspec,
// not the *.gemspec of source trees (which compute their version from code).
func (*Gemspec) Required(name string, info fs.FileInfo) bool {
	if !info.Mode().IsRegular() || !strings.HasSuffix(name, ".gemspec") {
		return false
	}
	dir := path.Dir(name)
	if path.Base(dir) == "default" {
		dir = path.Dir(dir)
	}
	return path.Base(dir) == "specifications"
}

// Extract implements inventory.Extractor.
func (*Gemspec) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fsx.ReadFileLimit(in.FS, in.Path, maxGemspecSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	name, version, err := ParseGemspec(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return []model.Package{gemPackage(name, version)}, nil
}

var (
	stubRE   = regexp.MustCompile(`^#\s*stub:\s+(\S+)\s+(\S+)`)
	assignRE = regexp.MustCompile(`^\s*\w+\.(name|version)\s*=\s*(.+?)\s*$`)
)

// ParseGemspec returns the name and version of a gem specification written by RubyGems. The
// `s.name =` and `s.version =` assignments win; the "# stub:" header line is the fallback.
func ParseGemspec(b []byte) (name, version string, err error) {
	var stubName, stubVersion string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := stubRE.FindStringSubmatch(line); m != nil && stubName == "" {
			stubName, stubVersion = m[1], m[2]
			continue
		}
		m := assignRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, ok := rubyString(m[2])
		if !ok {
			continue
		}
		switch {
		case m[1] == "name" && name == "":
			name = v
		case m[1] == "version" && version == "":
			version = v
		}
	}
	// A long line stops the scanner; what was read before it still counts.
	if name == "" {
		name = stubName
	}
	if version == "" {
		version = stubVersion
	}
	if !gemNameRE.MatchString(name) {
		return "", "", fmt.Errorf("no gem name found (got %q)", name)
	}
	if !gemVersionRE.MatchString(version) {
		return "", "", fmt.Errorf("no gem version found for %s (got %q)", name, version)
	}
	return name, version, nil
}

// rubyString reads a literal string expression as RubyGems writes it: "x", 'x', %q{x}, optionally
// followed by .freeze, or Gem::Version.new("x").
func rubyString(expr string) (string, bool) {
	expr = strings.TrimSuffix(expr, ".freeze")
	if s, ok := strings.CutPrefix(expr, "Gem::Version.new("); ok {
		expr = strings.TrimSuffix(s, ")")
	}
	if len(expr) >= 2 {
		switch q := expr[0]; q {
		case '"', '\'':
			if expr[len(expr)-1] == q && !strings.ContainsAny(expr[1:len(expr)-1], `"'#\`) {
				return expr[1 : len(expr)-1], true
			}
		case '%':
			if len(expr) >= 5 && expr[1] == 'q' && expr[2] == '{' && expr[len(expr)-1] == '}' {
				return expr[3 : len(expr)-1], true
			}
		}
	}
	return "", false
}

// GemfileLock reads Bundler lockfiles.
type GemfileLock struct{}

// NewGemfileLock returns the Bundler lockfile extractor.
func NewGemfileLock() *GemfileLock { return &GemfileLock{} }

// Name implements inventory.Extractor.
func (*GemfileLock) Name() string { return "ruby-gemfile-lock" }

// Version implements inventory.Extractor.
func (*GemfileLock) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*GemfileLock) Required(name string, info fs.FileInfo) bool {
	base := path.Base(name)
	return info.Mode().IsRegular() && (base == "Gemfile.lock" || base == "gems.locked")
}

// Extract implements inventory.Extractor.
func (*GemfileLock) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fsx.ReadFileLimit(in.FS, in.Path, maxLockfileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	pkgs, err := ParseGemfileLock(b)
	if err != nil {
		return pkgs, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

// ParseGemfileLock returns the gems of a Bundler lockfile's GEM and GIT sections: the "specs:" lines
// indented by four spaces, "name (version)" or "name (version-platform)". Six-space lines are their
// dependencies' requirements and are skipped. PATH sections (local gems, usually the application
// itself or its own engines) are left out, as Cargo workspace members are. A gem locked for several
// platforms is reported once.
func ParseGemfileLock(b []byte) ([]model.Package, error) {
	var pkgs []model.Package
	seen := map[[2]string]bool{}
	section := ""
	inSpecs := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	ln := 0
	for sc.Scan() {
		ln++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] != ' ' {
			section, inSpecs = strings.TrimSpace(line), false
			continue
		}
		if section != "GEM" && section != "GIT" {
			continue
		}
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			inSpecs = strings.TrimSpace(line) == "specs:"
			continue
		}
		if !inSpecs || !strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "     ") {
			continue
		}
		name, version, err := parseSpecLine(strings.TrimSpace(line))
		if err != nil {
			return pkgs, fmt.Errorf("line %d: %w", ln, err)
		}
		if k := [2]string{name, version}; !seen[k] {
			seen[k] = true
			pkgs = append(pkgs, gemPackage(name, version))
		}
	}
	if err := sc.Err(); err != nil {
		return pkgs, err
	}
	return pkgs, nil
}

// parseSpecLine splits "nokogiri (1.13.3-x86_64-linux)"; as in Bundler, the version ends at the first
// "-" and the rest is the platform.
func parseSpecLine(s string) (name, version string, err error) {
	name, rest, ok := strings.Cut(s, " (")
	if !ok || !strings.HasSuffix(rest, ")") {
		return "", "", fmt.Errorf("%q is not \"name (version)\"", s)
	}
	version, _, _ = strings.Cut(strings.TrimSuffix(rest, ")"), "-")
	if !gemNameRE.MatchString(name) || !gemVersionRE.MatchString(version) {
		return "", "", errors.New("bad gem name or version in " + fmt.Sprintf("%q", s))
	}
	return name, version, nil
}
