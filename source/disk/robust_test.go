package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// exercise opens a volume image and reads everything it can, ignoring errors: the point is that
// nothing panics, loops or allocates without bound.
func exercise(t testing.TB, r io.ReaderAt, size int64) {
	vols, _, err := Volumes(context.Background(), r, size, "fuzz", nil)
	if err != nil {
		return
	}
	for _, v := range vols {
		n := 0
		fs.WalkDir(v.FS, ".", func(p string, d fs.DirEntry, err error) error {
			if n++; n > 5000 {
				return fs.SkipAll
			}
			if err != nil || d.IsDir() {
				return nil
			}
			d.Info()
			if d.Type()&fs.ModeSymlink != 0 {
				v.FS.ReadLink(p)
			}
			if f, err := v.FS.Open(p); err == nil {
				io.Copy(io.Discard, io.LimitReader(f, 1<<20))
				f.Close()
			}
			return nil
		})
	}
}

// TestCorruptMetadata flips bytes in the metadata of real ext4 and xfs images (superblock,
// descriptors, inode tables, directories: the first megabytes) and reads everything.
func TestCorruptMetadata(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, c := range []struct {
		name string
		img  func() string
		span int64
	}{
		{"ext4", func() string { return mkExt(t, "ext4", append(rootTree(), manyFiles()...)) }, 2 << 20},
		{"ext2", func() string { return mkExt(t, "ext2", rootTree()) }, 2 << 20},
		{"xfs", func() string { return mkXFS(t, append(rootTree(), manyFiles()...)) }, 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig, err := os.ReadFile(c.img())
			if err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= 40; seed++ {
				rng := rand.New(rand.NewPCG(seed, 7))
				b := append([]byte(nil), orig...)
				for i := 0; i < 200; i++ {
					off := rng.Int64N(c.span)
					b[off] = byte(rng.Uint32())
				}
				exercise(t, bytes.NewReader(b), int64(len(b)))
			}
		})
	}
}

// tinyExt is a 256 KiB ext4 image with a few files and links, small enough to fuzz.
func tinyExt(t testing.TB) []byte {
	need(t, "mke2fs")
	dir := t.TempDir()
	src := filepath.Join(dir, "root")
	writeTree(t, src, []entry{
		{name: "etc/os-release", link: "../usr/lib/os-release"},
		{name: "usr/lib/os-release", data: osRelease},
		{name: "etc/localtime", link: longTarget},
		{name: "var/lib/dpkg/status", data: dpkgStatus},
	})
	img := filepath.Join(dir, "tiny.img")
	sparseFile(t, img, 256<<10)
	run(t, "", "mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-N", "32", "-O", "^has_journal,^resize_inode", "-d", src, img)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTinyExt(t *testing.T) {
	b := tinyExt(t)
	vols, problems, err := Volumes(context.Background(), bytes.NewReader(b), int64(len(b)), "tiny", nil)
	if err != nil || len(problems) > 0 || len(vols) != 1 {
		t.Fatalf("Volumes: %v %v %d", err, problems, len(vols))
	}
	got, err := fs.ReadFile(vols[0].FS, "etc/os-release")
	if err != nil || string(got) != osRelease {
		t.Fatalf("os-release: %v", err)
	}
}

func FuzzExtImage(f *testing.F) {
	if _, err := os.Stat("/usr/sbin/mke2fs"); err == nil {
		f.Add(tinyExt(f))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		exercise(t, bytes.NewReader(data), int64(len(data)))
	})
}

// FuzzXFSDirectory feeds directory blocks and short-form directories to the xfs parsers.
func FuzzXFSDirectory(f *testing.F) {
	blk := make([]byte, 4096)
	copy(blk, "XDB3")
	off := 64
	for i, name := range []string{"os-release", "passwd", "alternatives"} {
		binary.BigEndian.PutUint64(blk[off:], uint64(131+i))
		blk[off+8] = byte(len(name))
		copy(blk[off+9:], name)
		blk[off+9+len(name)] = 1
		n := (8 + 1 + len(name) + 1 + 2 + 7) &^ 7
		binary.BigEndian.PutUint16(blk[off+n-2:], uint16(off))
		off += n
	}
	binary.BigEndian.PutUint16(blk[off:], 0xFFFF)
	binary.BigEndian.PutUint16(blk[off+2:], uint16(4096-8-3*8-off))
	binary.BigEndian.PutUint32(blk[4096-8:], 3)
	f.Add(blk, true)
	sf := []byte{2, 0, 0, 0, 0, 128, 3, 0, 0x60, 'e', 't', 'c', 2, 0, 0, 0, 131, 3, 0, 0x70, 'u', 's', 'r', 2, 0, 0, 0, 132}
	f.Add(sf, false)
	f.Fuzz(func(t *testing.T, data []byte, block bool) {
		b := &xfsBackend{x: &xfsFS{ftype: true}}
		add := func(string, uint64, byte) error { return nil }
		if block {
			if len(data) >= 4 {
				b.parseDataBlock(data, 1, 0, add)
			}
			return
		}
		b.parseShortform(&xfsInode{ino: 1, fork: data}, add)
	})
}
