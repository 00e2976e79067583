package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/agent/collect/sqlitedb"
	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/rpm/rpmdb"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// RPM reads rpm databases in their three formats, under the extractor name "rpm" so that the
// server sees the same packages as from `vigil scan`: Berkeley DB (RHEL/CentOS 7-8, Amazon Linux 2)
// and ndb (SUSE) through inventory/rpm/rpmdb, SQLite (rpmdb.sqlite: RHEL 9+, Fedora, Amazon Linux
// 2023) through sqlitedb, a b-tree reader that needs no SQLite driver (see Registry).
type RPM struct{}

// Name implements inventory.Extractor.
func (RPM) Name() string { return "rpm" }

// Version implements inventory.Extractor.
func (RPM) Version() int { return 1 }

// Required implements inventory.Extractor.
func (RPM) Required(p string, _ fs.FileInfo) bool {
	dir, base := path.Split(p)
	return (dir == "var/lib/rpm/" || dir == "usr/lib/sysimage/rpm/") &&
		(base == "Packages" || base == "Packages.db" || base == "rpmdb.sqlite")
}

// Extract implements inventory.Extractor.
func (RPM) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	f, err := in.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if limit := in.Config.MaxFileSize; limit > 0 && size > limit {
		return nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit", in.Location(), size, limit)
	}
	ra, release, err := fsx.ReaderAt(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	defer release()
	head := make([]byte, 32)
	n, err := ra.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	format, ok := rpmdb.DetectFormat(head[:n])
	switch {
	case !ok && n == 0:
		return nil, nil // rpm leaves empty placeholders behind
	case !ok:
		return nil, fmt.Errorf("%s: not an rpm database (unknown format)", in.Location())
	}
	var pkgs []model.Package
	bad := 0
	collect := func(blob []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rp, err := rpmdb.ReadPackage(blob)
		if err != nil {
			bad++ // one broken header does not hide the others
			return nil
		}
		if rp.Name != "" && rp.Name != "gpg-pubkey" { // gpg-pubkey entries are signing keys
			pkgs = append(pkgs, rpmPackage(rp, in.OS))
		}
		return nil
	}
	switch format {
	case rpmdb.FormatBDB:
		err = rpmdb.ReadBDB(ra, size, collect)
	case rpmdb.FormatSQLite:
		err = readSQLite(in, ra, size, collect)
	default:
		err = rpmdb.ReadNDB(ra, size, collect)
	}
	if err == nil && bad > 0 {
		err = fmt.Errorf("%d unreadable package headers", bad)
	}
	if err != nil {
		return pkgs, fmt.Errorf("%s (%s rpm database): %w", in.Location(), format, err)
	}
	return pkgs, nil
}

// rpmPackage names an rpm as the rpm extractor does: version [epoch:]version-release, the source
// package from SOURCERPM, the OS's ecosystem.
func rpmPackage(rp rpmdb.Package, os *model.OS) model.Package {
	version := rp.Version + "-" + rp.Release
	epoch := ""
	if rp.HasEpoch && rp.Epoch != 0 {
		epoch = strconv.FormatInt(rp.Epoch, 10)
		version = epoch + ":" + version
	}
	p := model.Package{Name: rp.Name, Version: version, Ecosystem: "rpm", Arch: rp.Arch, SourceName: rp.Name, SourceVersion: version}
	if base, ok := strings.CutSuffix(rp.SourceRPM, ".src.rpm"); ok {
		// "openssl-3.0.7-27.el9.src.rpm": name may hold dashes, version and release may not.
		if i := strings.LastIndexByte(base, '-'); i > 0 {
			if j := strings.LastIndexByte(base[:i], '-'); j > 0 {
				p.SourceName, p.SourceVersion = base[:j], base[j+1:]
				if epoch != "" {
					p.SourceVersion = epoch + ":" + p.SourceVersion
				}
			}
		}
	}
	q := map[string]string{}
	if rp.Arch != "" {
		q["arch"] = rp.Arch
	}
	if epoch != "" {
		q["epoch"] = epoch
	}
	ns := ""
	if os != nil {
		if os.Ecosystem != "" {
			p.Ecosystem = os.Ecosystem
		}
		ns = os.Family
		if ns == "rhel" {
			ns = "redhat"
		}
		if os.Family != "" && os.VersionID != "" {
			q["distro"] = os.Family + "-" + os.VersionID
		}
	}
	p.PURL = packageurl.NewPackageURL(packageurl.TypeRPM, ns, rp.Name, rp.Version+"-"+rp.Release, packageurl.QualifiersFromMap(q), "").ToString()
	if rp.License != "" {
		p.Licenses = []string{rp.License}
	}
	return p
}

// readSQLite reads the Packages table (hnum INTEGER PRIMARY KEY, blob BLOB) of an rpmdb.sqlite,
// with the committed frames of its -wal beside it: rpm leaves recent transactions there.
func readSQLite(in *inventory.Input, ra io.ReaderAt, size int64, fn func([]byte) error) error {
	var walR io.ReaderAt
	var walSize int64
	if wf, err := in.FS.Open(in.Path + "-wal"); err == nil {
		defer wf.Close()
		if fi, err := wf.Stat(); err == nil && fi.Size() >= 32 && fi.Size() <= in.Config.MaxFileSize {
			r, release, err := fsx.ReaderAt(wf, fi.Size())
			if err != nil {
				return fmt.Errorf("%s-wal: %w", in.Location(), err)
			}
			defer release()
			walR, walSize = r, fi.Size()
		}
	}
	db, err := sqlitedb.Open(ra, size, walR, walSize)
	if err != nil {
		return err
	}
	return db.Rows("Packages", func(cols []any) error {
		if len(cols) < 2 {
			return fmt.Errorf("Packages row of %d columns", len(cols))
		}
		blob, ok := cols[1].([]byte)
		if !ok {
			return fmt.Errorf("Packages row without a header blob")
		}
		return fn(blob)
	})
}
