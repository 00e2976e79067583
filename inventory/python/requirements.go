package python

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

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// maxIncludeDepth bounds chains of -r includes (cycles are cut earlier, by the visited set).
const maxIncludeDepth = 16

// Requirement is one exact pin of a requirements file.
type Requirement struct {
	Name, Version string
	Line          int
}

// ParseRequirements reads a pip requirements file and returns its exact pins ("name==version" and
// "name===version", with extras, environment markers and per-requirement options such as --hash
// ignored) and the files it includes with -r/--requirement. Ranges, unpinned names, wildcards
// ("==1.*"), URLs, editable installs and constraint files (-c) pin nothing and are skipped. Lines
// ending in a backslash continue on the next line; "#" starts a comment at the start of a line or
// after white space.
func ParseRequirements(data []byte) (reqs []Requirement, includes []string) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from Windows editors
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var logical strings.Builder
	n, start := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if logical.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) && !isComment(line) {
			logical.WriteString(strings.TrimSuffix(line, `\`))
			logical.WriteByte(' ')
			continue
		}
		logical.WriteString(line)
		r, inc := parseRequirementLine(logical.String())
		logical.Reset()
		if r != nil {
			r.Line = start
			reqs = append(reqs, *r)
		}
		if inc != "" {
			includes = append(includes, inc)
		}
	}
	if logical.Len() > 0 {
		if r, inc := parseRequirementLine(logical.String()); r != nil {
			r.Line = start
			reqs = append(reqs, *r)
		} else if inc != "" {
			includes = append(includes, inc)
		}
	}
	return reqs, includes
}

func isComment(line string) bool { return strings.HasPrefix(strings.TrimSpace(line), "#") }

// versionRE is the character set of PEP 440 versions (including local versions and epochs).
var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+!_-]*$`)

var commentRE = regexp.MustCompile(`(^|\s)#.*$`)

// reqRE: a name, optional [extras], then the version specifiers up to a marker or an option.
var reqRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$`)

func parseRequirementLine(line string) (*Requirement, string) {
	line = strings.TrimSpace(commentRE.ReplaceAllString(line, ""))
	if line == "" {
		return nil, ""
	}
	if strings.HasPrefix(line, "-") {
		for _, opt := range []string{"--requirement", "-r"} {
			if rest, ok := strings.CutPrefix(line, opt); ok {
				rest = strings.TrimLeft(rest, " \t=")
				if f := strings.Fields(rest); len(f) > 0 {
					return nil, f[0]
				}
			}
		}
		return nil, "" // -c, -e, -i, --index-url, --hash on its own line, ...
	}
	if i := strings.Index(line, ";"); i >= 0 {
		line = line[:i] // environment markers
	}
	if i := strings.Index(line, " -"); i >= 0 {
		line = line[:i] // per-requirement options: --hash=..., --config-settings ...
	}
	m := reqRE.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return nil, ""
	}
	spec := strings.TrimSpace(m[3])
	if strings.HasPrefix(spec, "@") || strings.Contains(spec, ",") {
		return nil, "" // a direct URL reference, or several clauses: not one exact pin
	}
	var version string
	switch {
	case strings.HasPrefix(spec, "==="):
		version = strings.TrimSpace(spec[3:])
	case strings.HasPrefix(spec, "=="):
		version = strings.TrimSpace(spec[2:])
	default:
		return nil, ""
	}
	if !versionRE.MatchString(version) {
		return nil, "" // a wildcard, another operator, or text pip itself would reject
	}
	return &Requirement{Name: m[1], Version: version}, ""
}

// ReadRequirements reads a requirements file and, recursively, the files it includes. Includes are
// resolved relative to the including file and never leave the target's root (an io/fs name cannot);
// each file is read once. Pins from an included file are located in that file.
func ReadRequirements(ctx context.Context, fsys fs.FS, name string, limit int64) ([]model.Package, error) {
	seen := map[string]bool{}
	var (
		out  []model.Package
		errs []error
	)
	var walk func(name string, depth int) error
	walk = func(name string, depth int) error {
		if seen[name] || depth > maxIncludeDepth {
			return nil
		}
		seen[name] = true
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := fsx.ReadFileLimit(fsys, name, limit)
		if err != nil {
			return err
		}
		reqs, includes := ParseRequirements(data)
		byName := map[string]bool{}
		for _, r := range reqs {
			if byName[Normalize(r.Name)] {
				continue
			}
			byName[Normalize(r.Name)] = true
			p := newPackage(r.Name, r.Version)
			p.Locations = []string{"/" + name}
			out = append(out, p)
		}
		for _, inc := range includes {
			if strings.Contains(inc, "://") {
				continue // a remote file: nothing to read offline
			}
			target := fsx.Clean(path.Join(path.Dir(name), inc))
			if strings.HasPrefix(inc, "/") {
				target = fsx.Clean(inc) // absolute: within the target's root
			}
			if err := walk(target, depth+1); err != nil {
				errs = append(errs, fmt.Errorf("-r %s: %w", inc, err))
			}
		}
		return nil
	}
	if err := walk(name, 0); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}
