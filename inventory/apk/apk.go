// Package apk extracts the Alpine (and Wolfi/Chainguard) packages recorded in lib/apk/db/installed.
package apk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

const (
	installedFile = "lib/apk/db/installed"
	// MaxLineLength bounds one line of the database; real lines (a dependency list, a file path) are
	// far shorter.
	MaxLineLength = 1 << 20
)

// Extractor reads apk's installed database.
type Extractor struct{}

var _ inventory.Extractor = Extractor{}

// Name implements inventory.Extractor.
func (Extractor) Name() string { return "apk" }

// Version implements inventory.Extractor.
func (Extractor) Version() int { return 1 }

// Required implements inventory.Extractor.
func (Extractor) Required(p string, _ fs.FileInfo) bool { return p == installedFile }

// Extract implements inventory.Extractor.
func (Extractor) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	f, err := in.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pkgs []model.Package
	err = ParseInstalled(ctx, f, func(e Entry) {
		if e.Name == "" || e.Version == "" {
			return
		}
		src := e.Origin
		if src == "" {
			src = e.Name
		}
		p := model.Package{
			Name:          e.Name,
			Version:       e.Version,
			Ecosystem:     Ecosystem(in.OS),
			PURL:          PURL(e.Name, e.Version, e.Arch, in.OS),
			SourceName:    src,
			SourceVersion: e.Version, // apk builds every subpackage with its origin's version
			Arch:          e.Arch,
		}
		if e.License != "" {
			p.Licenses = []string{e.License}
		}
		pkgs = append(pkgs, p)
	})
	if err != nil {
		return pkgs, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

// Entry holds the fields of one installed package that Vigil uses.
type Entry struct {
	Name, Version, Arch, Origin, License string
}

// ErrLineTooLong is returned for a line over MaxLineLength.
var ErrLineTooLong = errors.New("line too long")

// ParseInstalled streams the entries of an apk installed database ("X:value" lines, entries separated
// by blank lines; the apk-tools v2 format) and calls fn for each one.
func ParseInstalled(ctx context.Context, r io.Reader, fn func(Entry)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineLength)
	var cur Entry
	started := false
	flush := func() {
		if started {
			fn(cur)
		}
		cur, started = Entry{}, false
	}
	lineNo := 0
	for sc.Scan() {
		lineNo++
		if lineNo%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(line) == 0 {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return fmt.Errorf("line %d: not a field: %.40q", lineNo, line)
		}
		val := string(line[2:])
		started = true
		switch line[0] {
		case 'P':
			cur.Name = val
		case 'V':
			cur.Version = val
		case 'A':
			cur.Arch = val
		case 'o':
			cur.Origin = val
		case 'L':
			cur.License = val
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = ErrLineTooLong
		}
		return fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	flush()
	return nil
}

// Ecosystem returns the ecosystem of apk packages on os, falling back to the bare "Alpine" when no
// release was detected (the packages are kept, but match no release-specific advisory).
func Ecosystem(os *model.OS) string {
	if os != nil && os.Ecosystem != "" {
		return os.Ecosystem
	}
	return "Alpine"
}

// PURL returns the package URL of an apk package: pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.
// The namespace is the os-release ID (alpine, wolfi, chainguard); distro names the release branch
// (major.minor for Alpine, whose point releases are snapshots of one branch).
func PURL(name, version, arch string, os *model.OS) string {
	ns := "alpine"
	q := map[string]string{}
	if arch != "" {
		q["arch"] = arch
	}
	if os != nil && os.Family != "" {
		ns = os.Family
		rel := os.VersionID
		if os.Family == "alpine" {
			if parts := strings.SplitN(rel, ".", 3); len(parts) >= 2 {
				rel = parts[0] + "." + parts[1]
			}
		}
		if rel != "" {
			q["distro"] = os.Family + "-" + rel
		}
	}
	return packageurl.NewPackageURL(packageurl.TypeApk, ns, name, version, packageurl.QualifiersFromMap(q), "").ToString()
}
