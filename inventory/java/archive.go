// Package java finds Maven packages: inside jar, war and ear archives (pom.properties, the manifest,
// the file name; nested jars of fat jars, wars and ears, recursively and within bounds), in exploded
// META-INF/maven directories and in Gradle lockfiles.
//
// Names are "groupId:artifactId" (OSV's Maven naming) and PURLs pkg:maven/groupId/artifactId@version.
// Precision, best first: pom.properties (exact coordinates Maven wrote at build time); the manifest
// with Implementation-Vendor-Id (groupId as maven-jar-plugin writes it, though some projects put an
// organisation id there); the path of a jar in a Maven repository layout (~/.m2/repository,
// /usr/share/maven-repo); a groupId from a short table of well-known Gradle-built families (Spring,
// Kotlin, OkHttp), used only when the jar holds classes under that group's package; the manifest or
// file name alone, which gives no groupId: such packages are named by the bare artifactId, with a PURL
// without namespace, and cannot match OSV's Maven records exactly.
package java

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// Limits bound the work and memory spent on one archive file, nested archives included.
type Limits struct {
	// MaxDepth is how deep archives may nest (the file itself is depth 0).
	MaxDepth int
	// MaxEntries is the largest central directory accepted, per archive.
	MaxEntries int
	// MaxArchives bounds the archives opened for one file (overlapping entries make fan-out cheap).
	MaxArchives int
	// MaxNested is the largest compressed nested archive inflated (into memory up to 16 MiB, else
	// into a temporary file); stored (uncompressed) nested archives, the Spring Boot norm, are read
	// in place and need no copy.
	MaxNested int64
	// MaxInflated bounds all bytes decompressed for one file.
	MaxInflated int64
}

// DefaultLimits fit real fat jars (hundreds of nested jars, tens of thousands of entries) with room.
var DefaultLimits = Limits{
	MaxDepth:    4,
	MaxEntries:  500_000,
	MaxArchives: 5_000,
	MaxNested:   512 << 20,
	MaxInflated: 1 << 30,
}

const (
	maxPropertiesSize = 64 << 10
	maxManifestSize   = 1 << 20
)

// Archive is the extractor for Java archives and exploded pom.properties files.
type Archive struct{ lim Limits }

// NewArchive returns the Java archive extractor with DefaultLimits.
func NewArchive() *Archive { return &Archive{lim: DefaultLimits} }

// NewArchiveWithLimits returns the extractor with the given limits.
func NewArchiveWithLimits(l Limits) *Archive { return &Archive{lim: l} }

// Name implements inventory.Extractor.
func (*Archive) Name() string { return "java-archive" }

// Version implements inventory.Extractor.
func (*Archive) Version() int { return 1 }

// archiveExts are the zip-based Java archive kinds: plain, web and enterprise archives, and Jenkins
// plugins (.hpi/.jpi, which are wars).
var archiveExts = map[string]bool{".jar": true, ".war": true, ".ear": true, ".hpi": true, ".jpi": true}

func isArchiveName(name string) bool {
	return archiveExts[strings.ToLower(path.Ext(name))]
}

// isPomProperties matches META-INF/maven/<groupId>/<artifactId>/pom.properties at the end of a path.
func isPomProperties(name string) bool {
	if !strings.HasSuffix(name, "/pom.properties") {
		return false
	}
	parts := strings.Split(name, "/")
	n := len(parts)
	return n >= 5 && parts[n-5] == "META-INF" && parts[n-4] == "maven" && parts[n-3] != "" && parts[n-2] != ""
}

// Required implements inventory.Extractor.
func (*Archive) Required(name string, info fs.FileInfo) bool {
	if !info.Mode().IsRegular() {
		return false
	}
	return isArchiveName(name) || isPomProperties(name)
}

// Extract implements inventory.Extractor.
func (a *Archive) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	if isPomProperties(in.Path) && !isArchiveName(in.Path) {
		b, err := fsx.ReadFileLimit(in.FS, in.Path, maxPropertiesSize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Location(), err)
		}
		p := completeProperties(ParseProperties(b), in.Path)
		if !p.complete() {
			return nil, fmt.Errorf("%s: groupId, artifactId or version missing", in.Location())
		}
		return []model.Package{p.pkg(in.Location())}, nil
	}
	f, err := in.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	defer f.Close()
	size := in.Info.Size()
	ra, release, err := fsx.ReaderAt(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	defer release()
	return a.Walk(ctx, ra, size, in.Location())
}

// Walk inventories one archive read from ra and the archives nested in it. loc names the archive in
// locations and errors; nested archives are named "loc!/entry". Packages found before an error are
// returned with it.
func (a *Archive) Walk(ctx context.Context, ra io.ReaderAt, size int64, loc string) ([]model.Package, error) {
	w := &walker{ctx: ctx, lim: a.lim, budget: a.lim.MaxInflated, rootSize: size}
	w.walk(ra, size, loc, 0)
	return w.pkgs, errors.Join(w.errs...)
}

type walker struct {
	ctx      context.Context
	lim      Limits
	budget   int64 // bytes that may still be inflated
	rootSize int64
	archives int
	pkgs     []model.Package
	errs     []error
}

func (w *walker) fail(loc string, err error) {
	w.errs = append(w.errs, fmt.Errorf("%s: %w", loc, err))
}

func (w *walker) walk(ra io.ReaderAt, size int64, loc string, depth int) {
	if err := w.ctx.Err(); err != nil {
		w.fail(loc, err)
		return
	}
	w.archives++
	if w.archives > w.lim.MaxArchives {
		w.fail(loc, fmt.Errorf("more than %d nested archives: not opened", w.lim.MaxArchives))
		return
	}
	n, err := zipEntryCount(ra, size)
	if err != nil {
		w.fail(loc, fmt.Errorf("not a readable zip archive: %w", err))
		return
	}
	if n > uint64(w.lim.MaxEntries) {
		w.fail(loc, fmt.Errorf("%d entries is over the limit of %d", n, w.lim.MaxEntries))
		return
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		w.fail(loc, fmt.Errorf("not a readable zip archive: %w", err))
		return
	}

	var props []*zip.File
	var manifest *zip.File
	var nested []*zip.File
	for _, f := range zr.File {
		name := f.Name
		switch {
		case strings.HasSuffix(name, "/"):
		case strings.EqualFold(name, "META-INF/MANIFEST.MF"):
			manifest = f
		case isPomProperties(name):
			props = append(props, f)
		case isArchiveName(name):
			nested = append(nested, f)
		}
	}

	seen := map[Properties]bool{}
	for _, f := range props {
		b, err := w.read(f, maxPropertiesSize)
		if err != nil {
			w.fail(loc+"!/"+f.Name, err)
			continue
		}
		p := completeProperties(ParseProperties(b), f.Name)
		if !p.complete() || seen[p] {
			continue
		}
		seen[p] = true
		w.pkgs = append(w.pkgs, p.pkg(loc))
	}
	if len(seen) == 0 {
		var m Manifest
		if manifest != nil {
			b, err := w.readPrefix(manifest, maxManifestSize)
			if err != nil {
				w.fail(loc+"!/"+manifest.Name, err)
			}
			m = ParseManifest(b)
		}
		hasPackage := func(dir string) bool {
			for _, f := range zr.File {
				if strings.HasPrefix(f.Name, dir) {
					return true
				}
			}
			return false
		}
		if p, ok := fromRepoLayout(loc); ok && depth == 0 {
			w.pkgs = append(w.pkgs, p.pkg(loc))
		} else if p, ok := fromManifest(m, path.Base(loc), hasPackage); ok {
			w.pkgs = append(w.pkgs, p.pkg(loc))
		}
	}

	for _, f := range nested {
		inner := loc + "!/" + f.Name
		if depth+1 > w.lim.MaxDepth {
			w.fail(inner, fmt.Errorf("nested deeper than %d archives: not opened", w.lim.MaxDepth))
			continue
		}
		r, n, release, err := w.nested(ra, f)
		if err != nil {
			w.fail(inner, err)
			continue
		}
		w.walk(r, n, inner, depth+1)
		release()
	}
}

// nested gives random access to a nested archive: in place when stored; else inflated into memory
// when small, or into a temporary file, within the limits. The returned func releases it.
func (w *walker) nested(ra io.ReaderAt, f *zip.File) (io.ReaderAt, int64, func(), error) {
	if f.Method == zip.Store && f.Flags&0x1 == 0 && f.CompressedSize64 == f.UncompressedSize64 {
		off, err := f.DataOffset()
		if err != nil {
			return nil, 0, nil, err
		}
		n := int64(f.CompressedSize64)
		if n < 0 || off+n > w.sizeOf(ra) {
			return nil, 0, nil, errors.New("entry extends past the end of its archive")
		}
		return io.NewSectionReader(ra, off, n), n, func() {}, nil
	}
	if f.UncompressedSize64 > uint64(w.lim.MaxNested) {
		return nil, 0, nil, fmt.Errorf("compressed nested archive of %d bytes is over the %d-byte limit", f.UncompressedSize64, w.lim.MaxNested)
	}
	if f.UncompressedSize64 <= memNestedSize {
		b, err := w.read(f, min(w.lim.MaxNested, memNestedSize))
		if err != nil {
			return nil, 0, nil, err
		}
		return bytes.NewReader(b), int64(len(b)), func() {}, nil
	}
	return w.spool(f)
}

// memNestedSize is the largest nested archive inflated into memory; larger ones go to a temporary
// file, so that memory stays small however deep the nesting.
const memNestedSize = 16 << 20

func (w *walker) spool(f *zip.File) (io.ReaderAt, int64, func(), error) {
	if w.budget <= 0 {
		return nil, 0, nil, fmt.Errorf("decompression budget of %d bytes exhausted (zip bomb?)", w.lim.MaxInflated)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, 0, nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "vigil-jar-*")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("spool: %w", err)
	}
	os.Remove(tmp.Name()) // unlinked: the open file is all that remains, and closing frees it
	release := func() { tmp.Close() }
	lim := min(w.lim.MaxNested, w.budget)
	n, err := io.Copy(tmp, io.LimitReader(rc, lim+1))
	w.budget -= n
	if err != nil {
		release()
		return nil, 0, nil, fmt.Errorf("spool: %w", err)
	}
	if n > lim {
		release()
		if lim < w.lim.MaxNested {
			return nil, 0, nil, fmt.Errorf("decompression budget of %d bytes exhausted (zip bomb?)", w.lim.MaxInflated)
		}
		return nil, 0, nil, fmt.Errorf("nested archive inflates to more than %d bytes", w.lim.MaxNested)
	}
	return tmp, n, release, nil
}

// sizeOf returns the size of a reader the walker made (or was given), for bounds checks.
func (w *walker) sizeOf(ra io.ReaderAt) int64 {
	switch r := ra.(type) {
	case *io.SectionReader:
		return r.Size()
	case *bytes.Reader:
		return r.Size()
	}
	return w.rootSize
}

// read inflates a whole entry, bounded by max and by the walk's remaining budget.
func (w *walker) read(f *zip.File, limit int64) ([]byte, error) {
	if w.budget <= 0 {
		return nil, fmt.Errorf("decompression budget of %d bytes exhausted (zip bomb?)", w.lim.MaxInflated)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	lim := min(limit, w.budget)
	b, err := fsx.ReadAllLimit(rc, lim, f.Name)
	w.budget -= int64(len(b))
	if err != nil {
		if lim < limit {
			return nil, fmt.Errorf("decompression budget of %d bytes exhausted (zip bomb?)", w.lim.MaxInflated)
		}
		return nil, err
	}
	return b, nil
}

// readPrefix inflates at most max bytes of an entry; a manifest's main section is at its start, and
// the per-entry sections of signed jars after it may be long.
func (w *walker) readPrefix(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, min(limit, max(w.budget, 0))))
	w.budget -= int64(len(b))
	return b, err
}

// completeProperties fills missing coordinates from the META-INF/maven/<g>/<a>/ path.
func completeProperties(p Properties, name string) Properties {
	parts := strings.Split(name, "/")
	if n := len(parts); n >= 3 {
		if p.GroupID == "" {
			p.GroupID = parts[n-3]
		}
		if p.ArtifactID == "" {
			p.ArtifactID = parts[n-2]
		}
	}
	return p
}

func (p Properties) complete() bool {
	return validCoord(p.GroupID) && validCoord(p.ArtifactID) && p.Version != "" && !strings.ContainsAny(p.Version, " \t${}")
}

func (p Properties) pkg(loc string) model.Package {
	name := p.ArtifactID
	if p.GroupID != "" {
		name = p.GroupID + ":" + p.ArtifactID
	}
	return model.Package{
		Name:      name,
		Version:   p.Version,
		Ecosystem: model.EcoMaven,
		PURL:      packageurl.NewPackageURL(packageurl.TypeMaven, p.GroupID, p.ArtifactID, p.Version, nil, "").ToString(),
		Locations: []string{loc},
	}
}

// zipEntryCount reads the entry count from the end-of-central-directory record (zip64 included)
// before archive/zip allocates one record per entry.
func zipEntryCount(ra io.ReaderAt, size int64) (uint64, error) {
	const eocdLen = 22
	if size < eocdLen {
		return 0, errors.New("too short")
	}
	tail := min(size, eocdLen+65535)
	buf := make([]byte, tail)
	if _, err := ra.ReadAt(buf, size-tail); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	i := -1
	for j := len(buf) - eocdLen; j >= 0; j-- {
		if binary.LittleEndian.Uint32(buf[j:]) == 0x06054b50 {
			i = j
			break
		}
	}
	if i < 0 {
		return 0, errors.New("no end of central directory")
	}
	n := uint64(binary.LittleEndian.Uint16(buf[i+10:]))
	if n != 0xffff || i < 20 {
		return n, nil
	}
	// Zip64: the locator just before the record points at the zip64 end record.
	loc := buf[i-20:]
	if binary.LittleEndian.Uint32(loc) != 0x07064b50 {
		return n, nil
	}
	off := int64(binary.LittleEndian.Uint64(loc[8:]))
	if off < 0 || off > size-56 {
		return 0, errors.New("bad zip64 locator")
	}
	rec := make([]byte, 56)
	if _, err := ra.ReadAt(rec, off); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if binary.LittleEndian.Uint32(rec) != 0x06064b50 {
		return 0, errors.New("bad zip64 end record")
	}
	return binary.LittleEndian.Uint64(rec[32:]), nil
}
