package disk

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The fixtures are built in each test run with the real tools (e2fsprogs, xfsprogs, fdisk,
// qemu-utils); tests skip when a tool is missing.

const osRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`

const dpkgStatus = `Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u5
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Conffiles:
 /etc/debian_version 1e8a4b5ac2b2fe2c2a8c4d0cf35b3b4b
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files, such as /etc/debian_version,
 /etc/host.conf, /etc/issue, /etc/motd, /etc/profile, and others,
 and the text of several common licenses in use on Debian systems.

Package: zlib1g
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 168
Maintainer: Mark Brown <broonie@debian.org>
Architecture: amd64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Provides: libz1
Depends: libc6 (>= 2.14)
Breaks: libxml2 (<< 2.7.6.dfsg-2), texlive-binaries (<< 2009-12)
Conflicts: zlib1 (<= 1:1.0.4-7)
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.  This package includes the shared library.
Homepage: http://zlib.net/

`

// longTarget is longer than the 60 bytes an inode can hold, so the target goes to a data block.
var longTarget = "../../usr/share/zoneinfo/" + strings.Repeat("very-long-directory-name/", 4) + "Europe/Berlin"

type entry struct {
	name, link, data string
	dir              bool
}

// rootTree is a small Debian-like root file system with the link cases a resolver must get right.
func rootTree() []entry {
	return []entry{
		{name: "etc", dir: true},
		{name: "etc/os-release", link: "../usr/lib/os-release"},
		{name: "etc/passwd", data: "root:x:0:0:root:/root:/bin/bash\n"},
		{name: "etc/debian_version", data: "12.5\n"},
		{name: "etc/alternatives", dir: true},
		{name: "etc/alternatives/awk", link: "/usr/bin/mawk"},
		{name: "etc/escape", link: "../../../../../etc/passwd"},
		{name: "etc/loop1", link: "loop2"},
		{name: "etc/loop2", link: "/etc/loop1"},
		{name: "etc/localtime", link: longTarget},
		{name: "usr", dir: true},
		{name: "usr/bin", dir: true},
		{name: "usr/bin/mawk", data: "\x7fELF mawk\n"},
		{name: "usr/bin/dash", data: "\x7fELF dash\n"},
		{name: "usr/bin/sh", link: "dash"},
		{name: "usr/lib", dir: true},
		{name: "usr/lib/os-release", data: osRelease},
		{name: "usr/share", dir: true},
		{name: "usr/share/zoneinfo/" + strings.Repeat("very-long-directory-name/", 4) + "Europe/Berlin", data: "TZif2 Berlin\n"},
		{name: "bin", link: "usr/bin"},
		{name: "var", dir: true},
		{name: "var/lib", dir: true},
		{name: "var/lib/dpkg", dir: true},
		{name: "var/lib/dpkg/status", data: dpkgStatus},
		{name: "var/lib/empty", data: ""},
		// A file bigger than one block and with a hole, to check block mapping.
		{name: "var/lib/big", data: strings.Repeat("0123456789abcdef", 1024) + strings.Repeat("\x00", 20000) + "tail"},
	}
}

// manyFiles adds a directory large enough to be hashed (htree) on ext4 and in leaf/node form on xfs.
func manyFiles() []entry {
	out := []entry{{name: "usr/share/doc", dir: true}}
	for i := 0; i < 600; i++ {
		out = append(out, entry{name: fmt.Sprintf("usr/share/doc/package-number-%04d", i), data: fmt.Sprintf("copyright %d\n", i)})
	}
	return out
}

func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := exec.LookPath("/usr/sbin/" + tool); err != nil {
				t.Skipf("%s not installed", tool)
			}
		}
	}
}

func run(t testing.TB, stdin string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// writeTree creates the entries under dir.
func writeTree(t testing.TB, dir string, ents []entry) {
	t.Helper()
	for _, e := range ents {
		p := filepath.Join(dir, e.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case e.dir:
			err = os.MkdirAll(p, 0o755)
		case e.link != "":
			err = os.Symlink(e.link, p)
		default:
			err = os.WriteFile(p, []byte(e.data), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func sparseFile(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// mkExt makes an ext2/3/4 image of the entries with mke2fs -d.
func mkExt(t testing.TB, fstype string, ents []entry) string {
	t.Helper()
	return mkExtOpts(t, ents, "-t", fstype, "-b", "1024")
}

// mkExtOpts makes an ext image with the given mke2fs options.
func mkExtOpts(t testing.TB, ents []entry, opts ...string) string {
	t.Helper()
	need(t, "mke2fs")
	dir := t.TempDir()
	src := filepath.Join(dir, "root")
	writeTree(t, src, ents)
	img := filepath.Join(dir, "ext.img")
	sparseFile(t, img, 32<<20)
	run(t, "", "mke2fs", append(append([]string{"-q", "-F", "-E", "root_owner=0:0", "-d", src}, opts...), img)...)
	return img
}

// mkXFS makes an xfs image of the entries with a mkfs.xfs protofile.
func mkXFS(t testing.TB, ents []entry, opts ...string) string {
	t.Helper()
	need(t, "mkfs.xfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "root")
	writeTree(t, src, ents)
	var proto strings.Builder
	proto.WriteString("/dev/null\n0 0\nd--755 0 0\n")
	var walk func(rel string, depth int)
	walk = func(rel string, depth int) {
		des, err := os.ReadDir(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(des))
		for _, d := range des {
			names = append(names, d.Name())
		}
		sort.Strings(names)
		ind := strings.Repeat(" ", depth)
		for _, n := range names {
			p := filepath.Join(src, rel, n)
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case fi.Mode()&os.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				fmt.Fprintf(&proto, "%s%s l--777 0 0 %s\n", ind, n, target)
			case fi.IsDir():
				fmt.Fprintf(&proto, "%s%s d--755 0 0\n", ind, n)
				walk(filepath.Join(rel, n), depth+1)
				fmt.Fprintf(&proto, "%s$\n", ind)
			default:
				fmt.Fprintf(&proto, "%s%s ---644 0 0 %s\n", ind, n, p)
			}
		}
	}
	walk(".", 1)
	proto.WriteString("$\n")
	pf := filepath.Join(dir, "proto")
	if err := os.WriteFile(pf, []byte(proto.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "xfs.img")
	sparseFile(t, img, 320<<20) // mkfs.xfs 6.x refuses file systems under 300 MiB
	run(t, "", "mkfs.xfs", append(append([]string{"-q", "-f", "-p", pf}, opts...), img)...)
	return img
}

// mkPartitioned puts fsImg into partition 1 of a new disk with the given sfdisk label ("gpt" or
// "dos"); partition 2 is small and unformatted, so the root must be picked, not assumed.
func mkPartitioned(t testing.TB, label, fsImg string) string {
	t.Helper()
	need(t, "sfdisk")
	fi, err := os.Stat(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), label+".img")
	sparseFile(t, img, fi.Size()+4<<20)
	script := fmt.Sprintf("label: %s\nstart=2048, size=2048, type=%s\nstart=4096, size=%d, type=%s, name=\"root\"\n",
		label, map[string]string{"gpt": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "dos": "83"}[label],
		fi.Size()/512, map[string]string{"gpt": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "dos": "83"}[label])
	if label == "dos" {
		script = strings.ReplaceAll(script, `, name="root"`, "")
	}
	run(t, script, "sfdisk", "-q", "--no-reread", "--no-tell-kernel", img)
	src, err := os.Open(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(io.NewOffsetWriter(dst, 4096*512), src); err != nil {
		t.Fatal(err)
	}
	return img
}

// mkQcow2 converts a raw image; compress adds -c (deflate-compressed clusters).
func mkQcow2(t testing.TB, raw string, compress bool, extra ...string) string {
	t.Helper()
	need(t, "qemu-img")
	out := filepath.Join(t.TempDir(), "disk.qcow2")
	args := []string{"convert", "-O", "qcow2"}
	if compress {
		args = append(args, "-c")
	}
	args = append(args, extra...)
	run(t, "", "qemu-img", append(args, raw, out)...)
	return out
}
