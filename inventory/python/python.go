// Package python finds Python distributions: installed ones (*.dist-info/METADATA, *.egg-info/PKG-INFO
// and .egg-info files, wherever they are: site-packages, dist-packages, a function zip's root) and the
// ones a project declares: exact pins in requirements*.txt, poetry.lock, Pipfile.lock and uv.lock.
//
// It is one extractor so that its Finish step can report a distribution that is both declared and
// installed once; see Finish.
package python

import (
	"context"
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

// Size caps. METADATA carries the project's long description, occasionally megabytes; only its headers
// are read, up to maxHeaderSize.
const (
	maxLockfileSize     = 64 << 20
	maxRequirementsSize = 4 << 20
	maxHeaderSize       = 1 << 20
)

// Extractor is the Python extractor.
type Extractor struct{}

// New returns the Python extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return "python" }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

type kind int

const (
	kindNone kind = iota
	kindMetadata
	kindRequirements
	kindPoetry
	kindPipfile
	kindUV
)

func classify(p string) kind {
	base := path.Base(p)
	dir := path.Base(path.Dir(p))
	switch {
	case base == "METADATA" && strings.HasSuffix(dir, ".dist-info"),
		base == "PKG-INFO" && strings.HasSuffix(dir, ".egg-info"),
		base == "PKG-INFO" && dir == "EGG-INFO" && strings.HasSuffix(path.Dir(path.Dir(p)), ".egg"),
		strings.HasSuffix(base, ".egg-info"):
		return kindMetadata
	case base == "poetry.lock":
		return kindPoetry
	case base == "Pipfile.lock":
		return kindPipfile
	case base == "uv.lock":
		return kindUV
	case strings.HasPrefix(base, "requirements") && strings.HasSuffix(base, ".txt"):
		return kindRequirements
	}
	return kindNone
}

// Required implements inventory.Extractor.
func (*Extractor) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && classify(p) != kindNone
}

// Extract implements inventory.Extractor.
func (*Extractor) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	var (
		pkgs []model.Package
		err  error
	)
	limit := func(n int64) int64 {
		if in.Config != nil && in.Config.MaxFileSize > 0 && in.Config.MaxFileSize < n {
			return in.Config.MaxFileSize
		}
		return n
	}
	switch classify(in.Path) {
	case kindMetadata:
		var p model.Package
		var ok bool
		p, ok, err = readMetadata(in.FS, in.Path)
		if ok {
			pkgs = []model.Package{p}
		}
	case kindRequirements:
		pkgs, err = ReadRequirements(ctx, in.FS, in.Path, limit(maxRequirementsSize))
	default:
		var data []byte
		data, err = fsx.ReadFileLimit(in.FS, in.Path, limit(maxLockfileSize))
		if err != nil {
			break
		}
		switch classify(in.Path) {
		case kindPoetry:
			pkgs, err = ParsePoetryLock(data)
		case kindPipfile:
			pkgs, err = ParsePipfileLock(data)
		case kindUV:
			pkgs, err = ParseUVLock(data)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

var normRE = regexp.MustCompile(`[-_.]+`)

// Normalize is the PEP 503 normalized form of a distribution name ("Jinja2" → "jinja2",
// "charset_normalizer" → "charset-normalizer", "zope.interface" → "zope-interface"). PyPI, OSV and
// PURLs compare names in this form.
func Normalize(name string) string {
	return strings.ToLower(normRE.ReplaceAllString(strings.TrimSpace(name), "-"))
}

// newPackage keeps the declared name in Name and uses the normalized one in the PURL, as the PURL
// specification for pypi requires.
func newPackage(name, version string) model.Package {
	return model.Package{
		Name:      name,
		Version:   version,
		Ecosystem: model.EcoPyPI,
		PURL:      packageurl.NewPackageURL(packageurl.TypePyPi, "", Normalize(name), version, nil, "").ToString(),
	}
}
