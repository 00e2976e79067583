// Package golang finds the Go modules compiled into Go executables, from the build information the Go
// linker embeds (debug/buildinfo), like `go version -m` does.
package golang

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime/debug"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// Size bounds for candidate binaries: the smallest Go executable (an empty main, stripped) is well over
// 600 KiB; the upper bound keeps a scan away from huge data files with an executable bit.
const (
	minBinarySize = 256 << 10
	maxBinarySize = 1 << 30
)

// Binary is the extractor of Go executables.
type Binary struct{}

// NewBinary returns the Go binary extractor.
func NewBinary() *Binary { return &Binary{} }

// Name implements inventory.Extractor.
func (*Binary) Name() string { return "go-binary" }

// Version implements inventory.Extractor.
func (*Binary) Version() int { return 1 }

// Required selects regular files of a plausible size that can be executed: an executable bit, a
// Windows .exe name, or a Lambda custom-runtime "bootstrap" (zips do not always keep modes). Everything
// else about the file is decided by its content, in Extract.
func (*Binary) Required(p string, info fs.FileInfo) bool {
	if !info.Mode().IsRegular() {
		return false
	}
	if s := info.Size(); s < minBinarySize || s > maxBinarySize {
		return false
	}
	if info.Mode().Perm()&0o111 != 0 {
		return true
	}
	base := path.Base(p)
	return strings.HasSuffix(strings.ToLower(base), ".exe") || base == "bootstrap"
}

// Executable magics: ELF, PE ("MZ"), Mach-O 32/64-bit in both byte orders, and fat Mach-O.
var magics = [][]byte{
	[]byte("\x7fELF"),
	[]byte("MZ"),
	{0xfe, 0xed, 0xfa, 0xce}, {0xce, 0xfa, 0xed, 0xfe},
	{0xfe, 0xed, 0xfa, 0xcf}, {0xcf, 0xfa, 0xed, 0xfe},
	{0xca, 0xfe, 0xba, 0xbe},
}

func isExecutable(head []byte) bool {
	for _, m := range magics {
		if len(head) >= len(m) && string(head[:len(m)]) == string(m) {
			return true
		}
	}
	return false
}

// Extract implements inventory.Extractor. Files that are not executables, or executables without Go
// build information (C programs, shared libraries, stripped-of-buildinfo binaries), yield nothing and
// no error: most executables on a system are not Go.
func (b *Binary) Extract(ctx context.Context, in *inventory.Input) ([]model.Package, error) {
	f, err := in.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var head [4]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	if !isExecutable(head[:n]) {
		return nil, nil
	}
	// The magic was read from the stream; random access needs the file from its start again.
	f.Close()
	f, err = in.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ra, release, err := fsx.ReaderAt(f, in.Info.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	defer release()
	bi, err := buildinfo.Read(ra)
	if err != nil {
		// "not a Go executable" and friends: nothing to report for this file.
		return nil, nil
	}
	return Packages(bi), nil
}

// Devel is the version Go records for a module built from a local directory (the main module of a
// build without version control information, or a dependency replaced by a directory). It names no
// release, so matchers must treat it as unknown rather than compare it.
const Devel = "(devel)"

// Packages turns build information into packages:
//   - the main module, with its recorded version (often Devel, which is kept as the mark that the
//     version is unknown: the binary itself is software on the resource and belongs in the inventory);
//   - every dependency, as its replacement when it was replaced (the code actually compiled in, as Go's
//     vulnerability tooling and osv-scanner report it); a replacement by a local directory has no
//     version and is reported under the original path with version Devel;
//   - the Go standard library as "stdlib" at the toolchain's version, which is how OSV's Go ecosystem
//     names it.
//
// Module versions keep Go's canonical spelling ("v1.6.0"), as `go version -m` prints them; the Go
// version scheme compares them with OSV's unprefixed range bounds. The standard library has no
// module version, so it gets OSV's form ("1.20.14").
func Packages(bi *buildinfo.BuildInfo) []model.Package {
	var out []model.Package
	if std := StdlibVersion(bi.GoVersion); std != "" {
		out = append(out, pkg("stdlib", std, "v"+std))
	}
	if bi.Main.Path != "" {
		out = append(out, module(&bi.Main))
	}
	for _, d := range bi.Deps {
		if d == nil || d.Path == "" {
			continue
		}
		out = append(out, module(d))
	}
	return out
}

func module(m *debug.Module) model.Package {
	name, ver := m.Path, m.Version
	if r := m.Replace; r != nil && r.Path != "" {
		if r.Version != "" && r.Version != Devel && !isLocalPath(r.Path) {
			name, ver = r.Path, r.Version
		} else {
			ver = Devel // replaced by a directory: the code compiled in is not the released version
		}
	}
	if ver == "" {
		ver = Devel
	}
	if ver == Devel {
		return pkg(name, Devel, "")
	}
	return pkg(name, ver, ver)
}

// isLocalPath reports a replacement by a directory ("./fork", "../x", "/src/x", `C:\src\x`): module
// paths never start with a dot or a slash.
func isLocalPath(p string) bool {
	return strings.HasPrefix(p, ".") || strings.HasPrefix(p, "/") || strings.Contains(p, `\`)
}

func pkg(name, version, purlVersion string) model.Package {
	ns, n := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		ns, n = name[:i], name[i+1:]
	}
	return model.Package{
		Name:      name,
		Version:   version,
		Ecosystem: model.EcoGo,
		PURL:      packageurl.NewPackageURL(packageurl.TypeGolang, ns, n, purlVersion, nil, "").ToString(),
	}
}

// StdlibVersion converts a toolchain version as recorded in a binary to the semantic version OSV uses
// for the standard library: "go1.20.14" → "1.20.14", "go1.21" → "1.21.0", "go1.22rc1" → "1.22.0-rc.1",
// "go1.19beta2" → "1.19.0-beta.2". Experiment and development suffixes after a space are dropped
// ("go1.22.1 X:boringcrypto"); development toolchains ("devel ...") have no release and yield "".
func StdlibVersion(v string) string {
	v, _, _ = strings.Cut(strings.TrimSpace(v), " ")
	if !strings.HasPrefix(v, "go1") {
		return ""
	}
	v = strings.TrimPrefix(v, "go")
	// Go 1.21+ can also carry "-" suffixes such as "go1.21.0-bigcorp"; keep the release part only.
	v, _, _ = strings.Cut(v, "-")
	pre := ""
	for _, tag := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(v, tag); i > 0 {
			num := v[i+len(tag):]
			if !allDigits(num) {
				return ""
			}
			pre = "-" + tag + "." + num
			v = v[:i]
			break
		}
	}
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return ""
	}
	for _, p := range parts {
		if !allDigits(p) {
			return ""
		}
	}
	if len(parts) == 2 {
		parts = append(parts, "0")
	}
	return strings.Join(parts, ".") + pre
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
