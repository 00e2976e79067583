package osrelease

import (
	"context"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/source/fsx"
)

func file(content string) *fsx.MemNode {
	return &fsx.MemNode{Mode: 0o644, Size: int64(len(content)), Content: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}}
}

func tree(files map[string]string) fs.FS {
	t := fsx.NewMemTree()
	for name, c := range files {
		if strings.HasPrefix(c, "->") {
			t.Put(name, &fsx.MemNode{Mode: fs.ModeSymlink | 0o777, Link: strings.TrimPrefix(c, "->")})
			continue
		}
		if c == "<dir>" {
			t.Put(name, &fsx.MemNode{Mode: fs.ModeDir | 0o755})
			continue
		}
		t.Put(name, file(c))
	}
	return fsx.New(t)
}

// Real os-release and release files of the named images.
const (
	debian12 = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`
	debianSid = `PRETTY_NAME="Debian GNU/Linux trixie/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=trixie
ID=debian
`
	ubuntu2204 = `PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
`
	ubuntu2410 = `PRETTY_NAME="Ubuntu 24.10"
NAME="Ubuntu"
VERSION_ID="24.10"
VERSION="24.10 (Oracular Oriole)"
VERSION_CODENAME=oracular
ID=ubuntu
`
	alpine320 = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
`
	rocky93 = `NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
`
	alma94 = `NAME="AlmaLinux"
VERSION="9.4 (Seafoam Ocelot)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"
`
	ubi89 = `NAME="Red Hat Enterprise Linux"
VERSION="8.9 (Ootpa)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="8.9"
PRETTY_NAME="Red Hat Enterprise Linux 8.9 (Ootpa)"
`
	al2 = `NAME="Amazon Linux"
VERSION="2"
ID="amzn"
ID_LIKE="centos rhel fedora"
VERSION_ID="2"
PRETTY_NAME="Amazon Linux 2"
`
	al2023 = `NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.5.20240805"
`
	sles155 = `NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
`
	leap155 = `NAME="openSUSE Leap"
VERSION="15.5"
ID="opensuse-leap"
VERSION_ID="15.5"
PRETTY_NAME="openSUSE Leap 15.5"
`
	distroless12 = `PRETTY_NAME="Distroless"
NAME="Debian GNU/Linux"
ID="debian"
VERSION_ID="12"
VERSION="Debian GNU/Linux 12 (bookworm)"
HOME_URL="https://github.com/GoogleContainerTools/distroless"
`
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		family     string
		version    string
		eco        string
		eol        string // "" for none
		distroless bool
	}{
		{"debian 12 via link", map[string]string{"usr/lib/os-release": debian12, "etc/os-release": "->../usr/lib/os-release", "etc/debian_version": "12.15\n"}, "debian", "12", "Debian:12", "2028-06-30", false},
		{"debian sid", map[string]string{"etc/os-release": debianSid, "etc/debian_version": "trixie/sid\n"}, "debian", "13", "Debian:13", "2030-06-30", false},
		{"debian_version only", map[string]string{"etc/debian_version": "11.9\n"}, "debian", "11", "Debian:11", "2026-08-31", false},
		{"ubuntu lts", map[string]string{"etc/os-release": ubuntu2204}, "ubuntu", "22.04", "Ubuntu:22.04:LTS", "2027-06-30", false},
		{"ubuntu interim", map[string]string{"etc/os-release": ubuntu2410}, "ubuntu", "24.10", "Ubuntu:24.10", "2025-07-10", false},
		{"alpine", map[string]string{"etc/os-release": alpine320, "etc/alpine-release": "3.20.3\n"}, "alpine", "3.20.3", "Alpine:v3.20", "2026-04-01", false},
		{"alpine-release only", map[string]string{"etc/alpine-release": "3.18.6\n"}, "alpine", "3.18.6", "Alpine:v3.18", "2025-05-09", false},
		{"alpine edge", map[string]string{"etc/alpine-release": "3.21_alpha20240923\n"}, "alpine", "3.21_alpha20240923", "Alpine:v3.21", "", false},
		{"rocky", map[string]string{"etc/os-release": rocky93}, "rocky", "9.3", "Rocky Linux:9", "2032-05-31", false},
		{"alma", map[string]string{"usr/lib/os-release": alma94}, "almalinux", "9.4", "AlmaLinux:9", "2032-05-31", false},
		{"rhel ubi", map[string]string{"etc/os-release": ubi89}, "rhel", "8.9", "Red Hat:enterprise_linux:8", "2029-05-31", false},
		{"amazon linux 2", map[string]string{"etc/os-release": al2, "etc/system-release": "Amazon Linux release 2 (Karoo)\n"}, "amzn", "2", "Amazon Linux:2", "2026-06-30", false},
		{"amazon linux 2023", map[string]string{"etc/os-release": al2023}, "amzn", "2023", "Amazon Linux:2023", "2029-06-30", false},
		{"amazon linux 1 system-release", map[string]string{"etc/system-release": "Amazon Linux AMI release 2018.03\n"}, "amzn", "2018.03", "Amazon Linux:1", "2023-12-31", false},
		{"centos 7 release file", map[string]string{"etc/centos-release": "CentOS Linux release 7.9.2009 (Core)\n", "etc/redhat-release": "->centos-release"}, "centos", "7.9.2009", "CentOS:7", "2024-06-30", false},
		{"rhel 6 release file", map[string]string{"etc/redhat-release": "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n"}, "rhel", "6.10", "Red Hat:enterprise_linux:6", "2020-11-30", false},
		{"sles", map[string]string{"etc/os-release": sles155}, "sles", "15.5", "SUSE:Linux Enterprise Server 15 SP5", "", false},
		{"leap", map[string]string{"etc/os-release": leap155}, "opensuse-leap", "15.5", "openSUSE:Leap 15.5", "2024-12-31", false},
		{"distroless os-release", map[string]string{"etc/os-release": distroless12, "var/lib/dpkg/status.d/libc6": "Package: libc6\n"}, "debian", "12", "Debian:12", "2028-06-30", true},
		{"distroless no os-release", map[string]string{
			"var/lib/dpkg/status.d/base-files": "Package: base-files\nStatus: install ok installed\nVersion: 11.1+deb11u9\n",
			"var/lib/dpkg/status.d/tzdata":     "Package: tzdata\n",
		}, "debian", "11", "Debian:11", "2026-08-31", true},
		{"distroless debian_version", map[string]string{"etc/debian_version": "12.5\n", "var/lib/dpkg/status.d": "<dir>"}, "debian", "12", "Debian:12", "2028-06-30", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Detector{}.Detect(context.Background(), tree(tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if o == nil {
				t.Fatal("no OS detected")
			}
			if o.Family != tc.family || o.VersionID != tc.version || o.Ecosystem != tc.eco || o.Distroless != tc.distroless {
				t.Errorf("got family=%q version=%q eco=%q distroless=%v, want %q %q %q %v",
					o.Family, o.VersionID, o.Ecosystem, o.Distroless, tc.family, tc.version, tc.eco, tc.distroless)
			}
			got := ""
			if o.EOL != nil {
				got = o.EOL.Format(time.DateOnly)
			}
			if got != tc.eol {
				t.Errorf("EOL = %q, want %q", got, tc.eol)
			}
		})
	}
}

func TestDetectNone(t *testing.T) {
	o, err := Detector{}.Detect(context.Background(), tree(map[string]string{"app/main.js": "x"}))
	if o != nil || err != nil {
		t.Fatalf("got %+v, %v; want nil, nil", o, err)
	}
}

func TestDetectOversizedFile(t *testing.T) {
	big := strings.Repeat("#", maxFileSize+1)
	o, err := Detector{}.Detect(context.Background(), tree(map[string]string{"etc/os-release": big, "etc/debian_version": "12.1\n"}))
	if err == nil || !strings.Contains(err.Error(), "etc/os-release") {
		t.Errorf("want an error naming etc/os-release, got %v", err)
	}
	if o == nil || o.Ecosystem != "Debian:12" {
		t.Errorf("fallback not used: %+v", o)
	}
}

func TestRequired(t *testing.T) {
	for path, want := range map[string]bool{
		"etc/os-release": true, "usr/lib/os-release": true, "etc/debian_version": true, "etc/alpine-release": true,
		"etc/redhat-release": true, "etc/system-release": true, "etc/centos-release": true,
		"var/lib/dpkg/status.d/base-files": true, "var/lib/dpkg/status.d/libc6": false,
		"etc/passwd": false, "usr/etc/os-release": false, "etc/os-release.bak": false,
	} {
		if got := (Detector{}).Required(path, nil); got != want {
			t.Errorf("Required(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestDetectReadsOnlyRequired proves Required covers Detect: a tree that serves the content of the
// required files only (as a streaming source would) gives the same answer as the full tree.
func TestDetectReadsOnlyRequired(t *testing.T) {
	files := map[string]string{
		"etc/os-release": distroless12, "var/lib/dpkg/status.d/base-files": "Package: base-files\nVersion: 12.4+deb12u5\n",
		"var/lib/dpkg/status.d/libc6": "Package: libc6\n", "etc/debian_version": "12.5\n",
	}
	mt := fsx.NewMemTree()
	for name, c := range files {
		n := file(c)
		if !(Detector{}).Required(name, nil) {
			n.Content = nil // metadata only
		}
		mt.Put(name, n)
	}
	o, err := Detector{}.Detect(context.Background(), fsx.New(mt))
	if err != nil || o == nil || o.Ecosystem != "Debian:12" || !o.Distroless {
		t.Fatalf("got %+v, %v", o, err)
	}
}

func TestParseOSReleaseQuoting(t *testing.T) {
	m := ParseOSRelease([]byte("# comment\nNAME=\"A \\\"quoted\\\" name\"\nID='single'\nBAD LINE\nVERSION_ID=1.2\n"))
	if m["NAME"] != `A "quoted" name` || m["ID"] != "single" || m["VERSION_ID"] != "1.2" || len(m) != 3 {
		t.Errorf("got %v", m)
	}
}

func FuzzParseOSRelease(f *testing.F) {
	for _, s := range []string{debian12, ubuntu2204, alpine320, rocky93, distroless12, "A=\"\\", "=x\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := ParseOSRelease(b)
		if o := fromOSRelease(m); o != nil {
			_ = Ecosystem(o)
			_ = releaseKey(o)
		}
		_ = fromRedhatRelease(firstLine(b))
	})
}
