// Package osrelease detects a target's operating system from etc/os-release and its older fallbacks,
// and names the OSV ecosystem its OS packages belong to ("Debian:12", "Ubuntu:22.04:LTS", "Alpine:v3.20").
//
// Ecosystem names follow osv.dev's where OSV has the distribution:
//   - Debian:N (the major release; testing/sid get the release their codename will become),
//   - Ubuntu:YY.MM:LTS for LTS releases and Ubuntu:YY.MM for interim ones, exactly as Ubuntu's OSV records
//     are published (affected[].package.ecosystem "Ubuntu:22.04:LTS", "Ubuntu:24.10"),
//   - Alpine:vX.Y, AlmaLinux:N, Rocky Linux:N, openSUSE:Leap X.Y, openSUSE:Tumbleweed,
//     SUSE:Linux Enterprise Server 15 SPn, Photon OS:X.Y, Wolfi, Chainguard, Azure Linux:X.Y.
//   - Red Hat's OSV records are per product stream ("Red Hat:enterprise_linux:9::appstream") and an rpm
//     database does not say which repository a package came from, so RHEL gets the stream prefix
//     "Red Hat:enterprise_linux:N"; a matcher compares it as a prefix of the record's ecosystem.
//   - Distributions OSV does not publish get the same "Name:release" shape for their own feeds:
//     Amazon Linux:2 / Amazon Linux:2023 (ALAS), CentOS:N, Oracle Linux:N, Fedora:N.
package osrelease

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// maxFileSize bounds every file the detector reads; real ones are a few hundred bytes.
const maxFileSize = 64 << 10

// The files Detect reads, in the order it tries them. Required accepts exactly these.
var (
	osReleaseFiles = []string{"etc/os-release", "usr/lib/os-release"}
	// Release files of the rpm world, most specific first (system-release names Amazon Linux, and on
	// RHEL clones is a link to the vendor's own file).
	rpmReleaseFiles = []string{
		"etc/almalinux-release", "etc/rocky-release", "etc/oracle-release", "etc/centos-release",
		"etc/fedora-release", "etc/redhat-release", "etc/system-release",
	}
	debianVersion = "etc/debian_version"
	alpineRelease = "etc/alpine-release"
	// Google distroless images keep one dpkg status file per package under status.d; base-files'
	// version gives the Debian release when nothing else does.
	distrolessStatusDir = "var/lib/dpkg/status.d"
	distrolessBaseFiles = []string{"var/lib/dpkg/status.d/base-files", "var/lib/dpkg/status.d/base"}
)

var requiredSet = func() map[string]bool {
	m := map[string]bool{debianVersion: true, alpineRelease: true}
	for _, l := range [][]string{osReleaseFiles, rpmReleaseFiles, distrolessBaseFiles} {
		for _, p := range l {
			m[p] = true
		}
	}
	return m
}()

// Detector is the inventory.OSDetector for Linux distributions.
type Detector struct{}

// Required implements inventory.OSDetector: it accepts exactly the files Detect may read. Detect also
// stats the directory var/lib/dpkg/status.d (a distroless marker), which needs no content.
func (Detector) Required(path string, _ fs.FileInfo) bool { return requiredSet[path] }

// Detect implements inventory.OSDetector. It returns nil, nil when the target holds no known OS.
func (Detector) Detect(ctx context.Context, fsys fs.FS) (*model.OS, error) {
	var errs []error
	read := func(name string) ([]byte, bool) {
		b, err := fsx.ReadFileLimit(fsys, name, maxFileSize)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("/%s: %w", name, err))
			}
			return nil, false
		}
		return b, true
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var o *model.OS
	for _, name := range osReleaseFiles {
		if b, ok := read(name); ok {
			if o = fromOSRelease(ParseOSRelease(b)); o != nil {
				break
			}
		}
	}
	if o == nil {
		if b, ok := read(alpineRelease); ok {
			o = &model.OS{Family: "alpine", Name: "Alpine Linux", VersionID: firstLine(b)}
		}
	}
	if o == nil {
		for _, name := range rpmReleaseFiles {
			if b, ok := read(name); ok {
				if o = fromRedhatRelease(firstLine(b)); o != nil {
					break
				}
			}
		}
	}
	// debian_version refines Debian (testing and sid have no VERSION_ID) and is the last fallback.
	if o == nil || (o.Family == "debian" && o.VersionID == "") {
		if b, ok := read(debianVersion); ok {
			v := firstLine(b)
			if o == nil {
				o = &model.OS{Family: "debian", Name: "Debian GNU/Linux"}
			}
			if major, _, _ := strings.Cut(v, "."); isDigits(major) {
				o.VersionID = major
			} else if o.Codename == "" {
				// "trixie/sid": the codename of the coming release.
				o.Codename, _, _ = strings.Cut(v, "/")
			}
		}
	}

	if st, err := fs.Stat(fsys, distrolessStatusDir); err == nil && st.IsDir() {
		if o == nil || o.Family == "debian" && o.VersionID == "" && o.Codename == "" {
			if o == nil {
				o = &model.OS{Family: "debian", Name: "Debian GNU/Linux"}
			}
			for _, name := range distrolessBaseFiles {
				if b, ok := read(name); ok {
					if v := stanzaField(b, "Version"); v != "" {
						if major, _, _ := strings.Cut(v, "."); isDigits(major) {
							o.VersionID = major
						}
						break
					}
				}
			}
		}
		// No os-release, or Google's "Distroless" PRETTY_NAME: either way a distroless image.
		if o.PrettyName == "" || o.PrettyName == "Distroless" {
			o.Distroless = true
		}
	} else if o != nil && o.PrettyName == "Distroless" {
		o.Distroless = true
	}

	if o == nil {
		return nil, errors.Join(errs...)
	}
	if o.Family == "debian" && o.VersionID == "" {
		o.VersionID = debianCodenames[o.Codename]
	}
	o.Ecosystem = Ecosystem(o)
	o.EOL = lookupEOL(eolFamily(o), releaseKey(o))
	return o, errors.Join(errs...)
}

// ParseOSRelease parses os-release(5) content: KEY=value lines, values optionally quoted with shell
// quoting. Unknown and malformed lines are ignored, as systemd does.
func ParseOSRelease(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		m[k] = unquote(strings.TrimSpace(v))
	}
	return m
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		q := v[0]
		v = v[1 : len(v)-1]
		if q == '"' {
			var b strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
				}
				b.WriteByte(v[i])
			}
			v = b.String()
		}
	}
	return v
}

var debianCodenames = map[string]string{
	"jessie": "8", "stretch": "9", "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13",
	"forky": "14", "duke": "15",
}

func fromOSRelease(m map[string]string) *model.OS {
	id := strings.ToLower(m["ID"])
	if id == "" {
		return nil
	}
	o := &model.OS{
		Family:     id,
		Name:       m["NAME"],
		VersionID:  m["VERSION_ID"],
		Codename:   m["VERSION_CODENAME"],
		PrettyName: m["PRETTY_NAME"],
	}
	if o.Codename == "" && id == "ubuntu" {
		o.Codename = m["UBUNTU_CODENAME"]
	}
	return o
}

var (
	releaseRe = regexp.MustCompile(`^(.*?)\s+release\s+([0-9][0-9A-Za-z.]*)(?:\s*\(([^)]*)\))?`)
	// Maps the product name of a *-release file to the os-release ID it has on newer releases.
	redhatNames = []struct{ prefix, id string }{
		{"Red Hat Enterprise Linux", "rhel"}, {"CentOS Stream", "centos"}, {"CentOS", "centos"},
		{"AlmaLinux", "almalinux"}, {"Rocky Linux", "rocky"}, {"Oracle Linux", "ol"},
		{"Amazon Linux", "amzn"}, {"Fedora", "fedora"},
	}
)

// fromRedhatRelease parses "CentOS Linux release 7.9.2009 (Core)", "Amazon Linux release 2 (Karoo)",
// "Amazon Linux AMI release 2018.03", "Red Hat Enterprise Linux Server release 7.9 (Maipo)".
func fromRedhatRelease(line string) *model.OS {
	mm := releaseRe.FindStringSubmatch(line)
	if mm == nil {
		return nil
	}
	for _, n := range redhatNames {
		if strings.HasPrefix(mm[1], n.prefix) {
			o := &model.OS{Family: n.id, Name: mm[1], VersionID: mm[2], PrettyName: line}
			if mm[3] != "" && !strings.Contains(mm[3], "Amazon Linux") {
				o.Codename = mm[3]
			}
			if n.id == "centos" && strings.HasPrefix(mm[1], "CentOS Stream") {
				o.Name = "CentOS Stream"
			}
			return o
		}
	}
	return nil
}

// Ecosystem returns the OSV ecosystem of an OS's packages, or "" when the family or release is unknown.
func Ecosystem(o *model.OS) string {
	major, _, _ := strings.Cut(o.VersionID, ".")
	majorMinor := func() string {
		parts := strings.SplitN(o.VersionID, ".", 3)
		if len(parts) < 2 {
			return ""
		}
		minor := strings.TrimLeftFunc(parts[1], func(r rune) bool { return r >= '0' && r <= '9' })
		minor = parts[1][:len(parts[1])-len(minor)] // digits only: "21_alpha2024" → "21"
		if !isDigits(parts[0]) || minor == "" {
			return ""
		}
		return parts[0] + "." + minor
	}
	withMajor := func(name string) string {
		if !isDigits(major) {
			return ""
		}
		return name + ":" + major
	}
	switch o.Family {
	case "debian":
		return withMajor("Debian")
	case "ubuntu":
		mm := majorMinor()
		if mm == "" {
			return ""
		}
		if isUbuntuLTS(mm) {
			return "Ubuntu:" + mm + ":LTS"
		}
		return "Ubuntu:" + mm
	case "alpine":
		if mm := majorMinor(); mm != "" {
			return "Alpine:v" + mm
		}
		return ""
	case "almalinux":
		return withMajor("AlmaLinux")
	case "rocky":
		return withMajor("Rocky Linux")
	case "rhel":
		if !isDigits(major) {
			return ""
		}
		return "Red Hat:enterprise_linux:" + major
	case "centos":
		return withMajor("CentOS")
	case "ol":
		return withMajor("Oracle Linux")
	case "fedora":
		return withMajor("Fedora")
	case "amzn":
		switch {
		case o.VersionID == "2" || o.VersionID == "2023":
			return "Amazon Linux:" + o.VersionID
		case strings.HasPrefix(o.VersionID, "2023."):
			return "Amazon Linux:2023"
		case strings.HasPrefix(o.VersionID, "20"): // Amazon Linux AMI 2018.03 (AL1)
			return "Amazon Linux:1"
		}
		return ""
	case "opensuse-leap", "opensuse":
		if mm := majorMinor(); mm != "" {
			return "openSUSE:Leap " + mm
		}
		return ""
	case "opensuse-tumbleweed":
		return "openSUSE:Tumbleweed"
	case "sles", "sled":
		product := "Linux Enterprise Server"
		if o.Family == "sled" {
			product = "Linux Enterprise Desktop"
		}
		maj, sp, _ := strings.Cut(o.VersionID, ".")
		if !isDigits(maj) {
			return ""
		}
		if sp != "" && sp != "0" && isDigits(sp) {
			return "SUSE:" + product + " " + maj + " SP" + sp
		}
		return "SUSE:" + product + " " + maj
	case "photon":
		if mm := majorMinor(); mm != "" {
			return "Photon OS:" + mm
		}
		return ""
	case "azurelinux":
		if mm := majorMinor(); mm != "" {
			return "Azure Linux:" + mm
		}
		return ""
	case "mariner":
		if mm := majorMinor(); mm != "" {
			return "Mariner:" + mm
		}
		return ""
	case "wolfi":
		return "Wolfi"
	case "chainguard":
		return "Chainguard"
	}
	return ""
}

// isUbuntuLTS: Canonical makes every April release of an even year an LTS.
func isUbuntuLTS(mm string) bool {
	y, m, _ := strings.Cut(mm, ".")
	n, err := strconv.Atoi(y)
	return err == nil && m == "04" && n%2 == 0
}

// eolFamily tells CentOS Stream apart from CentOS Linux, which share ID=centos.
func eolFamily(o *model.OS) string {
	if o.Family == "centos" && strings.Contains(o.Name, "Stream") {
		return "centos-stream"
	}
	return o.Family
}

// releaseKey is the eolTable key of a release.
func releaseKey(o *model.OS) string {
	major, _, _ := strings.Cut(o.VersionID, ".")
	switch o.Family {
	case "ubuntu", "alpine", "opensuse-leap":
		parts := strings.SplitN(o.VersionID, ".", 3)
		if len(parts) >= 2 {
			return parts[0] + "." + parts[1]
		}
		return o.VersionID
	case "amzn":
		if strings.HasPrefix(o.VersionID, "2023") {
			return "2023"
		}
		return o.VersionID
	}
	return major
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// stanzaField returns a field of the first deb822 stanza of b (enough for one status.d file).
func stanzaField(b []byte, key string) string {
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
