package disk

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
)

func openDisk(t *testing.T, img string) *source.Target {
	t.Helper()
	tg, err := Open(context.Background(), img, source.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", img, err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// checkRoot checks what fsx.FS returns for the rootTree fixture.
func checkRoot(t *testing.T, fsys fs.FS) {
	t.Helper()
	read := func(name string) (string, error) {
		b, err := fs.ReadFile(fsys, name)
		return string(b), err
	}
	files := []struct{ name, want string }{
		{"etc/os-release", osRelease},                       // relative link
		{"usr/lib/os-release", osRelease},                   // plain file
		{"bin/sh", "\x7fELF dash\n"},                        // link in a directory link, then a relative link
		{"etc/alternatives/awk", "\x7fELF mawk\n"},          // absolute link: resolved inside the volume
		{"etc/escape", "root:x:0:0:root:/root:/bin/bash\n"}, // ".." clamps at the volume root
		{"etc/localtime", "TZif2 Berlin\n"},                 // target longer than 60 bytes, stored in a block
		{"var/lib/dpkg/status", dpkgStatus},
		{"var/lib/empty", ""},
		{"var/lib/big", strings.Repeat("0123456789abcdef", 1024) + strings.Repeat("\x00", 20000) + "tail"},
	}
	for _, f := range files {
		got, err := read(f.name)
		if err != nil {
			t.Errorf("read %s: %v", f.name, err)
			continue
		}
		if got != f.want {
			t.Errorf("read %s: got %d bytes %.40q, want %d bytes %.40q", f.name, len(got), got, len(f.want), f.want)
		}
	}
	links := map[string]string{
		"etc/os-release": "../usr/lib/os-release", "etc/alternatives/awk": "/usr/bin/mawk", "bin": "usr/bin",
		"usr/bin/sh": "dash", "etc/localtime": longTarget, "etc/loop2": "/etc/loop1",
	}
	rl := fsys.(fs.ReadLinkFS)
	for name, want := range links {
		got, err := rl.ReadLink(name)
		if err != nil || got != want {
			t.Errorf("ReadLink(%s) = %q, %v; want %q", name, got, err, want)
		}
		fi, err := rl.Lstat(name)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("Lstat(%s): %v, %v; want a link", name, fi, err)
		}
	}
	if _, err := read("etc/loop1"); !errors.Is(err, fsx.ErrLoop) {
		t.Errorf("read etc/loop1: %v, want a link loop error", err)
	}
	if _, err := read("etc/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read etc/missing: %v, want not exist", err)
	}
	if _, err := read("etc/passwd/x"); err == nil {
		t.Errorf("read etc/passwd/x: no error")
	}
	// Files give random access (ELF and zip readers need it), holes reading as zeros.
	if f, err := fsys.Open("var/lib/big"); err != nil {
		t.Errorf("open var/lib/big: %v", err)
	} else {
		ra, ok := f.(io.ReaderAt)
		p := make([]byte, 24)
		if !ok {
			t.Errorf("var/lib/big: %T is not an io.ReaderAt", f)
		} else if n, err := ra.ReadAt(p, 16384+20000-20); n != 24 || (err != nil && err != io.EOF) || string(p) != strings.Repeat("\x00", 20)+"tail" {
			t.Errorf("ReadAt(var/lib/big) = %d, %v, %q", n, err, p)
		}
		f.Close()
	}
	if _, err := fsys.Open("usr"); err != nil {
		t.Errorf("open usr: %v", err)
	}
	fi, err := fs.Stat(fsys, "bin")
	if err != nil || !fi.IsDir() {
		t.Errorf("Stat(bin) = %v, %v; want the usr/bin directory", fi, err)
	}
	fi, err = fs.Stat(fsys, "usr/bin/dash")
	if err != nil || fi.Mode() != 0o644 || fi.Size() != 10 || fi.Name() != "dash" {
		t.Errorf("Stat(usr/bin/dash) = %v, %v", fi, err)
	}
	// Every name the tree was built from is listed, with the right type.
	var got []string
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && p != "lost+found" && !strings.HasPrefix(p, "lost+found/") {
			got = append(got, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	seen := map[string]bool{}
	for _, e := range append(rootTree(), manyFiles()...) {
		for p := e.name; p != "."; p = filepath.Dir(p) {
			if !seen[p] {
				seen[p] = true
				want = append(want, p)
			}
		}
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk: got %d names, want %d\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
	// fstest walks every entry, so it runs below the link loops in etc.
	usr, err := fs.Sub(fsys, "usr")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(usr, "lib/os-release", "bin/sh", "share/doc/package-number-0599"); err != nil {
		t.Errorf("fstest: %v", err)
	}
}

func TestFileSystems(t *testing.T) {
	tree := append(rootTree(), manyFiles()...)
	cases := []struct {
		name string
		img  func(t *testing.T) string
		fs   string
		part string
	}{
		{"ext4", func(t *testing.T) string { return mkExt(t, "ext4", tree) }, "ext4", "whole disk"},
		{"ext3", func(t *testing.T) string { return mkExt(t, "ext3", tree) }, "ext3", "whole disk"},
		{"ext2", func(t *testing.T) string { return mkExt(t, "ext2", tree) }, "ext2", "whole disk"},
		{"xfs", func(t *testing.T) string { return mkXFS(t, tree) }, "xfs", "whole disk"},
		{"xfs-v4-noftype", func(t *testing.T) string { return mkXFS(t, tree, "-m", "crc=0", "-n", "ftype=0") }, "xfs", "whole disk"},
		{"xfs-8k-dirblocks", func(t *testing.T) string { return mkXFS(t, tree, "-n", "size=8192") }, "xfs", "whole disk"},
		{"ext4-meta_bg-32-groups", func(t *testing.T) string {
			return mkExtOpts(t, tree, "-t", "ext4", "-b", "1024", "-g", "1024", "-O", "meta_bg,^resize_inode")
		}, "ext4", "whole disk"},
		{"gpt-ext4", func(t *testing.T) string { return mkPartitioned(t, "gpt", mkExt(t, "ext4", tree)) }, "ext4", "p2 (GPT 'root')"},
		{"mbr-ext4", func(t *testing.T) string { return mkPartitioned(t, "dos", mkExt(t, "ext4", tree)) }, "ext4", "p2 (MBR type 0x83)"},
		{"qcow2-ext4", func(t *testing.T) string { return mkQcow2(t, mkExt(t, "ext4", tree), false) }, "ext4", "whole disk"},
		{"qcow2-compressed-gpt", func(t *testing.T) string {
			return mkQcow2(t, mkPartitioned(t, "gpt", mkExt(t, "ext4", tree)), true)
		}, "ext4", "p2 (GPT 'root')"},
		{"qcow2-v2-xfs", func(t *testing.T) string { return mkQcow2(t, mkXFS(t, tree), false, "-o", "compat=0.10") }, "xfs", "whole disk"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := c.img(t)
			if !(Opener{}).Detect(img) {
				t.Errorf("Detect(%s) = false", img)
			}
			tg := openDisk(t, img)
			abs, _ := filepath.Abs(img)
			want := model.SourceInfo{Kind: "disk", Name: abs, Partition: c.part, Filesystem: c.fs}
			if tg.Info.Kind != want.Kind || tg.Info.Name != want.Name || tg.Info.Partition != want.Partition || tg.Info.Filesystem != want.Filesystem {
				t.Errorf("info = %+v, want %+v", tg.Info, want)
			}
			checkRoot(t, tg.FS)
		})
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	zero := make([]byte, 4096)
	ext := append([]byte(nil), zero...)
	ext[1080], ext[1081] = 0x53, 0xEF
	mbr := append([]byte(nil), zero...)
	mbr[510], mbr[511] = 0x55, 0xAA
	gpt := append([]byte(nil), zero...)
	copy(gpt[512:], "EFI PART")
	pv := append([]byte(nil), zero...)
	copy(pv[512:], "LABELONE")
	copy(pv[536:], "LVM2 001")
	cases := []struct {
		path string
		want bool
	}{
		{write("q", append([]byte("QFI\xfb"), zero...)), true},
		{write("x", append([]byte("XFSB"), zero...)), true},
		{write("e", ext), true},
		{write("m", mbr), true},
		{write("g", gpt), true},
		{write("l", pv), true},
		{write("z", zero), false},
		{write("t", []byte("hello")), false},
		{dir, false},
		{filepath.Join(dir, "missing"), false},
	}
	for _, c := range cases {
		if got := (Opener{}).Detect(c.path); got != c.want {
			t.Errorf("Detect(%s) = %v, want %v", filepath.Base(c.path), got, c.want)
		}
	}
}

// corrupt writes a copy of img with b written at off.
func corrupt(t *testing.T, img string, off int64, b []byte) string {
	t.Helper()
	src, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	copy(src[off:], b)
	out := filepath.Join(t.TempDir(), "bad-"+filepath.Base(img))
	if err := os.WriteFile(out, src, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBadInput(t *testing.T) {
	tree := rootTree()
	ext := mkExt(t, "ext4", tree)
	xfs := mkXFS(t, tree)
	gpt := mkPartitioned(t, "gpt", ext)
	le32 := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	be32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	cases := []struct {
		name, img string
		want      []string // substrings of the error
	}{
		{"ext zero inodes per group", corrupt(t, ext, 1024+40, le32(0)), []string{"whole disk", "corrupt ext superblock"}},
		{"ext huge block count", corrupt(t, ext, 1024+4, le32(0xFFFFFFF0)), []string{"corrupt ext superblock", "do not fit"}},
		{"ext block size", corrupt(t, ext, 1024+24, le32(40)), []string{"corrupt ext superblock", "block size"}},
		{"ext garbage group descriptors", corrupt(t, ext, 2048, []byte(strings.Repeat("\xff", 1024))), []string{"bad-ext.img", "whole disk", "group descriptor"}},
		{"xfs zero block size", corrupt(t, xfs, 4, be32(0)), []string{"corrupt xfs superblock", "block size"}},
		{"xfs absurd ag count", corrupt(t, xfs, 88, be32(0xFFFFFFFF)), []string{"corrupt xfs superblock"}},
		{"gpt primary and backup", corrupt(t, corrupt(t, gpt, 512+24, []byte{9}), gptSize(t, gpt)-512+24, []byte{9}), []string{"GPT", "CRC", "no valid backup"}},
		{"gpt entries crc", corrupt(t, corrupt(t, gpt, 1024+32, []byte{1, 2, 3}), gptSize(t, gpt)-512+88, []byte{1}), []string{"GPT partition entries", "CRC"}},
		{"qcow2 absurd l1", corrupt(t, mkQcow2(t, ext, false), 36, be32(0x7FFFFFFF)), []string{"qcow2", "L1"}},
		{"qcow2 backing file", corrupt(t, mkQcow2(t, ext, false), 8, []byte{0, 0, 0, 0, 0, 0, 0, 0x70, 0, 0, 0, 4}), []string{"backing file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(context.Background(), c.img, source.Options{})
			if err == nil {
				t.Fatalf("Open: no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func gptSize(t *testing.T, img string) int64 {
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A damaged primary GPT falls back to the backup at the end of the disk.
func TestGPTBackup(t *testing.T) {
	gpt := mkPartitioned(t, "gpt", mkExt(t, "ext4", rootTree()))
	tg := openDisk(t, corrupt(t, gpt, 512, []byte("garbage!garbage!garbage!")))
	if tg.Info.Partition != "p2 (GPT 'root')" {
		t.Errorf("info %+v", tg.Info)
	}
}

// A partition that lies past the end of a truncated disk is reported by name; another partition
// with a root file system is still found.
func TestTruncatedPartition(t *testing.T) {
	img := mkPartitioned(t, "gpt", mkExt(t, "ext4", rootTree()))
	fi, _ := os.Stat(img)
	if err := os.Truncate(img, fi.Size()-8<<20); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), img, source.Options{})
	if err == nil || !strings.Contains(err.Error(), "p2 (GPT 'root')") || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("Open: %v; want an error naming p2 and the end of the disk", err)
	}
}

// TestConcurrentReads reads every file from several goroutines at once, as the inventory engine's
// worker pool does; run with -race.
func TestConcurrentReads(t *testing.T) {
	tree := append(rootTree(), manyFiles()...)
	for _, c := range []struct {
		name string
		img  func() string
	}{
		{"ext4", func() string { return mkExt(t, "ext4", tree) }},
		{"xfs", func() string { return mkXFS(t, tree) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := openDisk(t, c.img())
			want := map[string]string{}
			for _, e := range tree {
				if !e.dir && e.link == "" {
					want[e.name] = e.data
				}
			}
			errs := make(chan error, 4)
			for w := 0; w < 4; w++ {
				go func() {
					var err error
					for name, data := range want {
						var b []byte
						if b, err = fs.ReadFile(tg.FS, name); err != nil {
							break
						}
						if string(b) != data {
							err = errors.New(name + ": content differs")
							break
						}
					}
					errs <- err
				}()
			}
			for w := 0; w < 4; w++ {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestQcow2Overlay reads a root file system through a qcow2 overlay on a qcow2 base.
func TestQcow2Overlay(t *testing.T) {
	need(t, "qemu-img")
	base := mkQcow2(t, mkExt(t, "ext4", append(rootTree(), manyFiles()...)), false)
	overlay := filepath.Join(filepath.Dir(base), "overlay.qcow2")
	run(t, "", "qemu-img", "create", "-q", "-f", "qcow2", "-b", filepath.Base(base), "-F", "qcow2", overlay)
	tg := openDisk(t, overlay)
	if tg.Info.Filesystem != "ext4" {
		t.Errorf("info %+v", tg.Info)
	}
	checkRoot(t, tg.FS)
}

func TestPickRoot(t *testing.T) {
	vol := func(name string, ents ...entry) Volume {
		m := fsx.NewMemTree()
		for _, e := range ents {
			n := &fsx.MemNode{Mode: 0o644, Link: e.link}
			switch {
			case e.dir:
				n.Mode = fs.ModeDir | 0o755
			case e.link != "":
				n.Mode = fs.ModeSymlink | 0o777
			}
			m.Put(e.name, n)
		}
		return Volume{Partition: name, FS: fsx.New(m)}
	}
	boot := vol("p1", entry{name: "grub/grub.cfg"})
	data := vol("p2", entry{name: "etc", dir: true})
	old := vol("p3", entry{name: "etc/redhat-release"})
	root := vol("p4", entry{name: "usr/lib/os-release"}, entry{name: "etc/os-release", link: "../usr/lib/os-release"})
	cases := []struct {
		vols []Volume
		want string
	}{
		{[]Volume{boot, data, old, root}, "p4"},
		{[]Volume{boot, data, old}, "p3"},
		{[]Volume{boot, data}, "p2"},
		{[]Volume{boot}, "p1"},
	}
	for _, c := range cases {
		if got := pickRoot(c.vols); got == nil || got.Partition != c.want {
			t.Errorf("pickRoot = %v, want %s", got, c.want)
		}
	}
	if pickRoot(nil) != nil {
		t.Error("pickRoot(nil) != nil")
	}
}

// TestLVM reads a root file system from a linear logical volume of two segments, in reverse
// order on the physical volume. testdata/lvm-pv-first-mib.img.gz is the first MiB of a 64 MiB
// PV written by LVM 2.03.16 (pvcreate, vgcreate vgtest, then vgcfgrestore of metadata declaring
// LV swap on PE 0-1 and LV root on PE 6-9 then 2-5; extents of 4 MiB from byte 1 MiB).
func TestLVM(t *testing.T) {
	ext, err := os.ReadFile(mkExt(t, "ext4", append(rootTree(), manyFiles()...)))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := os.Open("testdata/lvm-pv-first-mib.img.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	head, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	disk := make([]byte, 64*mib)
	copy(disk, head)
	copy(disk[mib+6*4*mib:], ext[:16*mib])
	copy(disk[mib+2*4*mib:], ext[16*mib:32*mib])
	img := filepath.Join(t.TempDir(), "lvm.img")
	if err := os.WriteFile(img, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	if !(Opener{}).Detect(img) {
		t.Error("Detect(whole-disk PV) = false")
	}
	tg := openDisk(t, img)
	if tg.Info.Partition != "LVM vgtest/root" || tg.Info.Filesystem != "ext4" {
		t.Errorf("info %+v", tg.Info)
	}
	checkRoot(t, tg.FS)

	// The same PV inside an MBR partition of type 0x8e.
	need(t, "sfdisk")
	part := filepath.Join(t.TempDir(), "mbr.img")
	sparseFile(t, part, 66*mib)
	run(t, "label: dos\nstart=2048, size=131072, type=8e\n", "sfdisk", "-q", "--no-reread", "--no-tell-kernel", part)
	f, err := os.OpenFile(part, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(disk, mib); err != nil {
		t.Fatal(err)
	}
	f.Close()
	tg = openDisk(t, part)
	if tg.Info.Partition != "LVM vgtest/root" {
		t.Errorf("info %+v", tg.Info)
	}
}
