// Package rust finds crates.io packages in Cargo.lock files and in binaries built with
// cargo-auditable, which embed their dependency list.
//
// Only packages that come from crates.io or from git are reported. Packages without a source are the
// workspace's own members and path dependencies: they are not published crates, and naming them in the
// crates.io ecosystem would match advisories of unrelated crates that share the name. Packages of other
// registries are left out for the same reason.
package rust

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

const (
	maxLockfileSize   = 32 << 20
	maxSectionSize    = 8 << 20  // compressed audit data; real ones are a few KiB
	maxAuditJSONSize  = 32 << 20 // decompressed
	minBinarySize     = 1 << 10
	auditSectionName  = ".dep-v0"
	cratesIORegistry  = "registry+https://github.com/rust-lang/crates.io-index"
	cratesIOSparse    = "sparse+https://index.crates.io/"
	auditSourceCrates = "crates.io"
	auditSourceGit    = "git"
)

// Crate names are ASCII alphanumerics, "-" and "_"; versions are SemVer.
var (
	crateNameRE    = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)
	crateVersionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+\-]*$`)
)

func cratePackage(name, version string) (model.Package, error) {
	if !crateNameRE.MatchString(name) || !crateVersionRE.MatchString(version) {
		return model.Package{}, fmt.Errorf("bad crate name or version %q %q", name, version)
	}
	return model.Package{
		Name:      name,
		Version:   version,
		Ecosystem: model.EcoCrates,
		PURL:      packageurl.NewPackageURL(packageurl.TypeCargo, "", name, version, nil, "").ToString(),
	}, nil
}

// CargoLock reads Cargo.lock files of every format version (1 to 4).
type CargoLock struct{}

// NewCargoLock returns the Cargo.lock extractor.
func NewCargoLock() *CargoLock { return &CargoLock{} }

// Name implements inventory.Extractor.
func (*CargoLock) Name() string { return "rust-cargo-lock" }

// Version implements inventory.Extractor.
func (*CargoLock) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*CargoLock) Required(name string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && path.Base(name) == "Cargo.lock"
}

// Extract implements inventory.Extractor.
func (*CargoLock) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fsx.ReadFileLimit(in.FS, in.Path, maxLockfileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	pkgs, err := ParseCargoLock(b)
	if err != nil {
		return pkgs, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

type cargoLockFile struct {
	Version int `toml:"version"`
	Package []struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
		Source  string `toml:"source"`
	} `toml:"package"`
}

// ParseCargoLock returns the crates.io and git packages of a Cargo.lock. All formats share the
// [[package]] tables; v1's [metadata] checksums and v3+'s "version" key are not needed.
func ParseCargoLock(b []byte) ([]model.Package, error) {
	var lock cargoLockFile
	if _, err := toml.Decode(string(b), &lock); err != nil {
		return nil, fmt.Errorf("not a Cargo.lock: %w", err)
	}
	if lock.Version > 4 {
		return nil, fmt.Errorf("unknown Cargo.lock version %d", lock.Version)
	}
	var pkgs []model.Package
	var errs []error
	seen := map[[2]string]bool{}
	for _, p := range lock.Package {
		if !fromCratesOrGit(p.Source) {
			continue
		}
		pkg, err := cratePackage(p.Name, p.Version)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if k := [2]string{p.Name, p.Version}; !seen[k] {
			seen[k] = true
			pkgs = append(pkgs, pkg)
		}
	}
	return pkgs, errors.Join(errs...)
}

func fromCratesOrGit(source string) bool {
	return source == cratesIORegistry || strings.HasPrefix(source, cratesIOSparse) || strings.HasPrefix(source, "git+")
}

// Auditable reads the dependency list that cargo-auditable embeds in ELF, PE and Mach-O executables:
// a zlib-compressed JSON document in the ".dep-v0" section.
type Auditable struct{}

// NewAuditable returns the cargo-auditable binary extractor.
func NewAuditable() *Auditable { return &Auditable{} }

// Name implements inventory.Extractor.
func (*Auditable) Name() string { return "rust-binary" }

// Version implements inventory.Extractor.
func (*Auditable) Version() int { return 1 }

// Required takes executables (any execute bit) and Windows binaries; whether they carry audit data is
// only known once their section table is read.
func (*Auditable) Required(name string, info fs.FileInfo) bool {
	m := info.Mode()
	if !m.IsRegular() || info.Size() < minBinarySize {
		return false
	}
	if m.Perm()&0o111 != 0 {
		return true
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".exe", ".dll":
		return true
	}
	return false
}

// Extract implements inventory.Extractor. Binaries without audit data yield nothing and no error.
func (*Auditable) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	f, err := in.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	defer f.Close()
	ra, release, err := fsx.ReaderAt(f, in.Info.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	defer release()
	data, err := AuditData(ra)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	if data == nil {
		return nil, nil
	}
	pkgs, err := ParseAuditJSON(data)
	if err != nil {
		return pkgs, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

// AuditData returns the decompressed audit JSON of an executable, or nil when the file is not an
// executable or has no ".dep-v0" section.
func AuditData(ra io.ReaderAt) ([]byte, error) {
	var magic [4]byte
	if _, err := ra.ReadAt(magic[:], 0); err != nil {
		return nil, nil // too short to be an executable
	}
	var sec io.Reader
	var size uint64
	switch {
	case bytes.Equal(magic[:], []byte(elf.ELFMAG)):
		f, err := elf.NewFile(ra)
		if err != nil {
			return nil, fmt.Errorf("bad ELF file: %w", err)
		}
		s := f.Section(auditSectionName)
		if s == nil || s.Type == elf.SHT_NOBITS {
			return nil, nil
		}
		sec, size = s.Open(), s.Size
	case magic[0] == 'M' && magic[1] == 'Z':
		f, err := pe.NewFile(ra)
		if err != nil {
			return nil, nil // DOS executables and other MZ files are not our business
		}
		s := f.Section(auditSectionName)
		if s == nil || s.Offset == 0 {
			return nil, nil
		}
		sec, size = s.Open(), uint64(s.Size)
	case isMachO(magic):
		f, err := macho.NewFile(ra)
		if err != nil {
			return nil, fmt.Errorf("bad Mach-O file: %w", err)
		}
		s := f.Section(auditSectionName)
		if s == nil {
			return nil, nil
		}
		sec, size = s.Open(), s.Size
	case binaryBigEndian(magic) == macho.MagicFat:
		// Universal binaries: the first slice with audit data. Java class files share this magic and
		// fail to parse as fat files, quietly.
		ff, err := macho.NewFatFile(ra)
		if err != nil {
			return nil, nil
		}
		for _, a := range ff.Arches {
			if s := a.Section(auditSectionName); s != nil {
				sec, size = s.Open(), s.Size
				break
			}
		}
		if sec == nil {
			return nil, nil
		}
	default:
		return nil, nil
	}
	if size > maxSectionSize {
		return nil, fmt.Errorf("%s section of %d bytes is over the %d-byte limit", auditSectionName, size, maxSectionSize)
	}
	zr, err := zlib.NewReader(io.LimitReader(sec, maxSectionSize))
	if err != nil {
		return nil, fmt.Errorf("%s section: %w", auditSectionName, err)
	}
	defer zr.Close()
	b, err := fsx.ReadAllLimit(zr, maxAuditJSONSize, auditSectionName)
	if err != nil {
		return nil, fmt.Errorf("%s section: %w", auditSectionName, err)
	}
	return b, nil
}

func binaryBigEndian(m [4]byte) uint32 {
	return uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
}

func isMachO(m [4]byte) bool {
	switch binaryBigEndian(m) {
	case macho.Magic32, macho.Magic64, 0xcefaedfe, 0xcffaedfe:
		return true
	}
	return false
}

type auditJSON struct {
	Packages []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Source  string `json:"source"`
		Kind    string `json:"kind"`
		Root    bool   `json:"root"`
	} `json:"packages"`
}

// ParseAuditJSON returns the crates.io and git packages of a cargo-auditable document. "local"
// packages (the binary's own crate and path dependencies) and other registries are left out.
// Build-time dependencies (kind "build": build scripts and proc macros, not linked into the binary)
// are marked Dev.
func ParseAuditJSON(b []byte) ([]model.Package, error) {
	var doc auditJSON
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("bad audit data: %w", err)
	}
	var pkgs []model.Package
	var errs []error
	seen := map[[2]string]bool{}
	for _, p := range doc.Packages {
		if p.Source != auditSourceCrates && p.Source != auditSourceGit {
			continue
		}
		pkg, err := cratePackage(p.Name, p.Version)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pkg.Dev = p.Kind == "build"
		if k := [2]string{p.Name, p.Version}; !seen[k] {
			seen[k] = true
			pkgs = append(pkgs, pkg)
		}
	}
	return pkgs, errors.Join(errs...)
}
