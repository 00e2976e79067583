// Package rpm extracts the packages of an rpm database in its three on-disk formats: SQLite
// (rpmdb.sqlite: RHEL 9+, Fedora 33+, Amazon Linux 2023), Berkeley DB hash (Packages: RHEL/CentOS 7-8,
// Amazon Linux 2) and ndb (Packages.db: SUSE, openSUSE).
//
// The formats are read by the rpmdb subpackage, Vigil's own code rather than knqyf263/go-rpmdb: the
// only version the module proxy serves (2021) reads Berkeley DB alone, opens its database by host path
// (so not from an fs.FS, an image layer or a disk snapshot) and pulls go-restruct in; its sqlite and
// ndb support came in versions we cannot use. Every offset and count read from the files is
// bounds-checked, and memory stays at one page plus the largest header.
package rpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/rpm/rpmdb"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

var dbDirs = map[string]bool{"var/lib/rpm/": true, "usr/lib/sysimage/rpm/": true}

var dbNames = map[string]bool{"Packages": true, "Packages.db": true, "rpmdb.sqlite": true, "rpmdb.sqlite-wal": true}

// Extractor reads rpm databases.
type Extractor struct{}

var (
	_ inventory.Extractor = Extractor{}
	_ inventory.Finisher  = Extractor{}
)

// Name implements inventory.Extractor.
func (Extractor) Name() string { return "rpm" }

// Version implements inventory.Extractor.
func (Extractor) Version() int { return 1 }

// Required implements inventory.Extractor. It also asks for rpmdb.sqlite-wal, so that streaming sources
// keep it for the SQLite reader; Extract itself finds nothing in it.
func (Extractor) Required(p string, _ fs.FileInfo) bool {
	dir, base := path.Split(p)
	return dbDirs[dir] && dbNames[base]
}

// Extract implements inventory.Extractor.
func (Extractor) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	if strings.HasSuffix(in.Path, "-wal") {
		return nil, nil // read together with its database
	}
	limit := int64(inventory.DefaultMaxFileSize)
	if in.Config != nil && in.Config.MaxFileSize > 0 {
		limit = in.Config.MaxFileSize
	}
	f, err := in.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 32)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	format, ok := rpmdb.DetectFormat(head[:n])
	if !ok {
		if n == 0 {
			return nil, nil // an empty placeholder (rpm leaves some behind)
		}
		return nil, fmt.Errorf("%s: not an rpm database (unknown format)", in.Location())
	}

	var pkgs []model.Package
	var bad []error
	nbad := 0
	collect := func(blob []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rp, err := rpmdb.ReadPackage(blob)
		if err != nil {
			// One broken header does not hide the others; it is reported with the result.
			nbad++
			if len(bad) < 10 { // the first few say enough
				bad = append(bad, err)
			}
			return nil
		}
		if p, ok := toPackage(rp, in.OS); ok {
			pkgs = append(pkgs, p)
		}
		return nil
	}

	switch format {
	case rpmdb.FormatSQLite:
		f.Close()
		err = readSQLite(ctx, in.FS, in.Path, limit, collect)
	default:
		fi, serr := fs.Stat(in.FS, in.Path)
		if serr != nil {
			return nil, serr
		}
		size := fi.Size()
		if size > limit {
			return nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit", in.Location(), size, limit)
		}
		// Re-open: the first read consumed the head, and ReaderAt may need the file from its start.
		f.Close()
		f, err = in.Open()
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ra, release, rerr := fsx.ReaderAt(f, size)
		if rerr != nil {
			return nil, fmt.Errorf("%s: %w", in.Location(), rerr)
		}
		defer release()
		if format == rpmdb.FormatBDB {
			err = rpmdb.ReadBDB(ra, size, collect)
		} else {
			err = rpmdb.ReadNDB(ra, size, collect)
		}
	}
	if err == nil && len(bad) > 0 {
		err = fmt.Errorf("%d unreadable package headers: %w", nbad, errors.Join(bad...))
	}
	if err != nil {
		return pkgs, fmt.Errorf("%s (%s rpm database): %w", in.Location(), format, err)
	}
	return pkgs, nil
}

// Finish implements inventory.Finisher. A root that holds databases in two formats (a Berkeley DB
// left behind by a migration to SQLite) is reported once, from the newest format.
func (Extractor) Finish(pkgs []model.Package) []model.Package {
	best := map[string]int{}
	for _, p := range pkgs {
		root, rank := dbRoot(p)
		if rank > best[root] {
			best[root] = rank
		}
	}
	out := pkgs[:0]
	for _, p := range pkgs {
		if root, rank := dbRoot(p); rank == best[root] {
			out = append(out, p)
		}
	}
	return out
}

// dbRoot returns the system root a package's database belongs to and its format's rank.
func dbRoot(p model.Package) (string, int) {
	if len(p.Locations) == 0 {
		return "", 0
	}
	loc := p.Locations[0]
	dir, base := path.Split(loc)
	root := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(dir, "/"), "/var/lib/rpm"), "/usr/lib/sysimage/rpm")
	rank := map[string]int{"Packages": 1, "Packages.db": 2, "rpmdb.sqlite": 3}[base]
	return root, rank
}

func toPackage(rp rpmdb.Package, os *model.OS) (model.Package, bool) {
	// gpg-pubkey "packages" are the imported signing keys, not software.
	if rp.Name == "" || rp.Name == "gpg-pubkey" {
		return model.Package{}, false
	}
	evr := rp.Version + "-" + rp.Release
	version := evr
	if rp.HasEpoch && rp.Epoch != 0 {
		version = strconv.FormatInt(rp.Epoch, 10) + ":" + evr
	}
	srcName, srcVer, srcRel, ok := SplitSourceRPM(rp.SourceRPM)
	sourceVersion := version
	if ok {
		sourceVersion = srcVer + "-" + srcRel
		if rp.HasEpoch && rp.Epoch != 0 {
			// The source rpm file name has no epoch; every package built from it shares the epoch.
			sourceVersion = strconv.FormatInt(rp.Epoch, 10) + ":" + sourceVersion
		}
	} else {
		srcName = rp.Name
	}
	p := model.Package{
		Name:          rp.Name,
		Version:       version,
		Ecosystem:     Ecosystem(os, rp),
		PURL:          PURL(rp, os),
		SourceName:    srcName,
		SourceVersion: sourceVersion,
		Arch:          rp.Arch,
	}
	if rp.License != "" {
		p.Licenses = []string{rp.License}
	}
	return p, true
}

// SplitSourceRPM parses a SOURCERPM value, "openssl-3.0.8-1.amzn2023.0.1.src.rpm", into name, version
// and release (names may hold dashes; version and release may not).
func SplitSourceRPM(s string) (name, version, release string, ok bool) {
	base, found := strings.CutSuffix(s, ".src.rpm")
	if !found {
		if base, found = strings.CutSuffix(s, ".nosrc.rpm"); !found {
			return "", "", "", false
		}
	}
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return "", "", "", false
	}
	j := strings.LastIndexByte(base[:i], '-')
	if j <= 0 {
		return "", "", "", false
	}
	name, version, release = base[:j], base[j+1:i], base[i+1:]
	if name == "" || version == "" || release == "" {
		return "", "", "", false
	}
	return name, version, release, true
}

var distTagRe = regexp.MustCompile(`\.(el|amzn)(\d+)`)

// Ecosystem returns the ecosystem of an rpm package on os. Without a detected release it is inferred
// from the package's vendor and dist tag ("Rocky Enterprise Software Foundation" + ".el9" →
// "Rocky Linux:9", ".amzn2023" → "Amazon Linux:2023"); failing that, "rpm", which names no advisory
// source, so such packages are listed but never matched.
func Ecosystem(os *model.OS, rp rpmdb.Package) string {
	if os != nil && os.Ecosystem != "" {
		return os.Ecosystem
	}
	m := distTagRe.FindStringSubmatch(rp.Release)
	if m == nil {
		return "rpm"
	}
	if m[1] == "amzn" {
		return "Amazon Linux:" + m[2]
	}
	switch v := rp.Vendor; {
	case strings.Contains(v, "Red Hat"):
		return "Red Hat:enterprise_linux:" + m[2]
	case strings.Contains(v, "AlmaLinux"):
		return "AlmaLinux:" + m[2]
	case strings.Contains(v, "Rocky"):
		return "Rocky Linux:" + m[2]
	case strings.Contains(v, "CentOS"):
		return "CentOS:" + m[2]
	case strings.Contains(v, "Oracle"):
		return "Oracle Linux:" + m[2]
	}
	return "rpm"
}

// PURL returns the package URL of an rpm per the purl spec's rpm type:
// pkg:rpm/amzn/openssl-libs@3.0.8-1.amzn2023.0.1?arch=x86_64&distro=amzn-2023&epoch=1. The namespace is
// the os-release ID ("redhat" for RHEL, as in the spec's examples); without one it is left out.
func PURL(rp rpmdb.Package, os *model.OS) string {
	q := map[string]string{}
	if rp.Arch != "" {
		q["arch"] = rp.Arch
	}
	if rp.HasEpoch && rp.Epoch != 0 {
		q["epoch"] = strconv.FormatInt(rp.Epoch, 10)
	}
	ns := ""
	if os != nil && os.Family != "" {
		ns = os.Family
		if ns == "rhel" {
			ns = "redhat"
		}
		if os.VersionID != "" {
			q["distro"] = os.Family + "-" + os.VersionID
		}
	}
	return packageurl.NewPackageURL(packageurl.TypeRPM, ns, rp.Name, rp.Version+"-"+rp.Release, packageurl.QualifiersFromMap(q), "").ToString()
}
