package golang

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// maxGoModSize bounds a go.mod read; real ones are a few KiB, the largest monorepos' under 1 MiB.
const maxGoModSize = 8 << 20

// GoMod is the extractor of go.mod files: the modules a source tree requires, as a repository scan sees
// them.
type GoMod struct{}

// NewGoMod returns the go.mod extractor.
func NewGoMod() *GoMod { return &GoMod{} }

// Name implements inventory.Extractor.
func (*GoMod) Name() string { return "go-mod" }

// Version implements inventory.Extractor.
func (*GoMod) Version() int { return 1 }

// Required selects go.mod files of projects, not those of downloaded dependencies (the module cache,
// vendor directories) or of test fixtures.
func (*GoMod) Required(p string, info fs.FileInfo) bool {
	if path.Base(p) != "go.mod" || !info.Mode().IsRegular() {
		return false
	}
	s := "/" + p
	return !strings.Contains(s, "/pkg/mod/") && !strings.Contains(s, "/vendor/") && !strings.Contains(s, "/testdata/")
}

// Extract implements inventory.Extractor.
func (*GoMod) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	data, err := fsx.ReadFileLimit(in.FS, in.Path, maxGoModSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	mf, err := ParseGoMod(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return mf.Packages(), nil
}

// ModFile is what Vigil reads from a go.mod.
type ModFile struct {
	Module   string
	Go       string
	Requires []ModVersion
	Replaces []Replace
}

// ModVersion is a module path and version ("" when a replacement's left side names no version).
type ModVersion struct{ Path, Version string }

// Replace is one replace directive.
type Replace struct{ Old, New ModVersion }

// ParseGoMod reads the directives Vigil needs (module, go, require, replace) from a go.mod, in the
// syntax of the Go reference: single-line or parenthesized blocks, "//" comments, quoted or bare
// tokens. Other directives (exclude, retract, toolchain, godebug, tool) are skipped.
func ParseGoMod(data []byte) (*ModFile, error) {
	mf := &ModFile{}
	block := ""
	for n, raw := range strings.Split(string(data), "\n") {
		line := raw
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if block != "" {
			if f[0] == ")" {
				block = ""
				continue
			}
			if err := mf.directive(block, f); err != nil {
				return nil, fmt.Errorf("go.mod line %d: %w", n+1, err)
			}
			continue
		}
		if len(f) == 2 && f[1] == "(" {
			block = f[0]
			continue
		}
		if err := mf.directive(f[0], f[1:]); err != nil {
			return nil, fmt.Errorf("go.mod line %d: %w", n+1, err)
		}
	}
	if block != "" {
		return nil, fmt.Errorf("go.mod: unterminated %s block", block)
	}
	return mf, nil
}

func unquote(s string) string { return strings.Trim(s, "\"`") }

func (mf *ModFile) directive(verb string, args []string) error {
	for i := range args {
		args[i] = unquote(args[i])
	}
	switch verb {
	case "module":
		if len(args) != 1 {
			return fmt.Errorf("module: want 1 argument, got %d", len(args))
		}
		mf.Module = args[0]
	case "go":
		if len(args) != 1 {
			return fmt.Errorf("go: want 1 argument, got %d", len(args))
		}
		mf.Go = args[0]
	case "require":
		if len(args) != 2 {
			return fmt.Errorf("require: want path and version, got %q", strings.Join(args, " "))
		}
		mf.Requires = append(mf.Requires, ModVersion{args[0], args[1]})
	case "replace":
		arrow := -1
		for i, a := range args {
			if a == "=>" {
				arrow = i
			}
		}
		if arrow < 1 || arrow > 2 || len(args)-arrow-1 < 1 || len(args)-arrow-1 > 2 {
			return fmt.Errorf("replace: malformed %q", strings.Join(args, " "))
		}
		r := Replace{Old: ModVersion{Path: args[0]}, New: ModVersion{Path: args[arrow+1]}}
		if arrow == 2 {
			r.Old.Version = args[1]
		}
		if len(args)-arrow-1 == 2 {
			r.New.Version = args[arrow+2]
		}
		mf.Replaces = append(mf.Replaces, r)
	}
	return nil
}

// Packages lists the required modules with replacements applied as Go applies them (a replacement
// naming a version applies to that version only and wins over one without). The module itself is the
// project, not a dependency, and is not listed. No "stdlib" is reported: the go directive is a minimum
// language version, not the toolchain that will build the code.
func (mf *ModFile) Packages() []model.Package {
	var out []model.Package
	for _, r := range mf.Requires {
		m := r
		var rep *Replace
		for i := range mf.Replaces {
			x := &mf.Replaces[i]
			if x.Old.Path != r.Path {
				continue
			}
			if x.Old.Version == r.Version || (x.Old.Version == "" && rep == nil) {
				rep = x
			}
		}
		if rep != nil {
			if rep.New.Version == "" || isLocalPath(rep.New.Path) {
				out = append(out, pkg(r.Path, Devel, ""))
				continue
			}
			m = rep.New
		}
		out = append(out, pkg(m.Path, m.Version, m.Version))
	}
	return out
}
