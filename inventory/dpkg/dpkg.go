// Package dpkg extracts the Debian and Ubuntu packages recorded in var/lib/dpkg/status, and in
// var/lib/dpkg/status.d/* where Google's distroless images keep one status stanza per package.
package dpkg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

const (
	statusFile = "var/lib/dpkg/status"
	statusDir  = "var/lib/dpkg/status.d"
	// MaxLineLength bounds one line of a status file; real lines are short (long fields are folded
	// into continuation lines), so a longer one means the file is not a status file.
	MaxLineLength = 1 << 20
)

// Extractor reads dpkg status databases.
type Extractor struct{}

var _ inventory.Extractor = Extractor{}

// Name implements inventory.Extractor.
func (Extractor) Name() string { return "dpkg" }

// Version implements inventory.Extractor.
func (Extractor) Version() int { return 1 }

// Required implements inventory.Extractor.
func (Extractor) Required(p string, _ fs.FileInfo) bool {
	if p == statusFile {
		return true
	}
	dir, base := path.Split(p)
	// distroless (rules_distroless) puts "<pkg>.md5sums" next to each "<pkg>" stanza file.
	return dir == statusDir+"/" && base != "" && base[0] != '.' && !strings.HasSuffix(base, ".md5sums")
}

// Extract implements inventory.Extractor.
func (e Extractor) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	f, err := in.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pkgs []model.Package
	err = ParseStatus(ctx, f, func(s Stanza) {
		if p, ok := toPackage(s, in.OS); ok {
			pkgs = append(pkgs, p)
		}
	})
	if err != nil {
		return pkgs, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

// Stanza holds the fields of one status entry that Vigil uses.
type Stanza struct {
	Package, Status, Version, Architecture, Source string
}

// Installed reports whether the package's files are on disk: dpkg's current state (the third word of
// Status) is anything but not-installed or config-files. "unpacked" and "half-configured" packages
// have their files in place, so their vulnerabilities are real; the selection ("install",
// "deinstall", "hold") is only an intention. A stanza without Status (some status.d writers) counts
// as installed.
func (s Stanza) Installed() bool {
	if s.Status == "" {
		return true
	}
	f := strings.Fields(s.Status)
	if len(f) != 3 {
		return false
	}
	switch f[2] {
	case "installed", "unpacked", "half-configured", "half-installed", "triggers-awaited", "triggers-pending":
		return true
	}
	return false
}

// ErrLineTooLong is returned for a line over MaxLineLength.
var ErrLineTooLong = errors.New("line too long")

// ParseStatus streams deb822 stanzas from r (a dpkg status file) and calls fn for each one that names a
// package. Continuation lines (starting with a space or tab) belong to the previous field and are
// skipped, since no field Vigil uses is multi-line. Memory is bounded by MaxLineLength.
func ParseStatus(ctx context.Context, r io.Reader, fn func(Stanza)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var cur Stanza
	flush := func() {
		if cur.Package != "" {
			fn(cur)
		}
		cur = Stanza{}
	}
	lineNo := 0
	for {
		line, err := readLine(br)
		if err == io.EOF {
			flush()
			return nil
		}
		lineNo++
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		if lineNo%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue // continuation of a multi-line field, or a comment
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return fmt.Errorf("line %d: not a field: %.40q", lineNo, line)
		}
		val := string(bytes.TrimSpace(v))
		switch strings.ToLower(string(k)) {
		case "package":
			cur.Package = val
		case "status":
			cur.Status = val
		case "version":
			cur.Version = val
		case "architecture":
			cur.Architecture = val
		case "source":
			cur.Source = val
		}
	}
}

// readLine returns the next line without its newline, failing with ErrLineTooLong rather than
// buffering an unbounded line. The last line may lack a newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) > MaxLineLength {
				return nil, ErrLineTooLong
			}
			long = append(long, chunk...)
			continue
		}
		if long != nil {
			long = append(long, chunk...)
			chunk = long
		}
		if len(chunk) > MaxLineLength+1 {
			return nil, ErrLineTooLong
		}
		if err == io.EOF {
			if len(chunk) == 0 {
				return nil, io.EOF
			}
			return chunk, nil
		}
		if err != nil {
			return nil, err
		}
		return chunk[:len(chunk)-1], nil
	}
}

// SplitSource parses a Source field, "glibc" or "glibc (2.36-9+deb12u4)", defaulting to the binary
// package's name and version.
func SplitSource(source, binName, binVersion string) (name, version string) {
	name, version = binName, binVersion
	src := strings.TrimSpace(source)
	if src == "" {
		return
	}
	n, rest, hasVer := strings.Cut(src, " ")
	name = n
	if hasVer {
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
			if v := strings.TrimSpace(rest[1 : len(rest)-1]); v != "" {
				version = v
			}
		}
	}
	return
}

// Ecosystem returns the ecosystem for dpkg packages on os. Without a detected release it falls back
// to the bare distribution name ("Debian", or "Ubuntu" when the family is known to be Ubuntu), which
// names the right vendor but matches no release-specific advisory: such packages are reported, not
// silently dropped, and the OS detection warning explains why they have no findings.
func Ecosystem(os *model.OS) string {
	if os != nil && os.Ecosystem != "" {
		return os.Ecosystem
	}
	if os != nil && os.Family == "ubuntu" {
		return "Ubuntu"
	}
	return "Debian"
}

func toPackage(s Stanza, os *model.OS) (model.Package, bool) {
	if !s.Installed() || s.Version == "" {
		return model.Package{}, false
	}
	srcName, srcVer := SplitSource(s.Source, s.Package, s.Version)
	return model.Package{
		Name:          s.Package,
		Version:       s.Version,
		Ecosystem:     Ecosystem(os),
		PURL:          PURL(s.Package, s.Version, s.Architecture, os),
		SourceName:    srcName,
		SourceVersion: srcVer,
		Arch:          s.Architecture,
	}, true
}

// PURL returns the package URL of a deb package per the purl spec's deb type:
// pkg:deb/debian/curl@7.88.1-10+deb12u5?arch=amd64&distro=debian-12. The namespace is the vendor
// (the os-release ID for Debian and Ubuntu, else "debian"); distro is "<ID>-<VERSION_ID>".
func PURL(name, version, arch string, os *model.OS) string {
	ns := "debian"
	q := map[string]string{}
	if arch != "" {
		q["arch"] = arch
	}
	if os != nil {
		if os.Family == "ubuntu" {
			ns = "ubuntu"
		}
		rel := os.VersionID
		if rel == "" {
			rel = os.Codename
		}
		if os.Family != "" && rel != "" {
			q["distro"] = os.Family + "-" + rel
		}
	}
	return packageurl.NewPackageURL(packageurl.TypeDebian, ns, name, version, packageurl.QualifiersFromMap(q), "").ToString()
}
