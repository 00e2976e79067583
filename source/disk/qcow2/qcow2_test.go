package qcow2

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// build writes a small v3 image by hand: 512-byte clusters (cluster_bits 9), a 8-cluster virtual
// disk, L1 at cluster 1, one L2 table at cluster 2. Guest cluster 0 holds data, 1 is compressed,
// 2 is a v3 zero cluster, the rest are unallocated.
func build(t testing.TB, version uint32) (img []byte, want []byte) {
	const cs = 512
	want = make([]byte, 8*cs)
	copy(want[0:], bytes.Repeat([]byte("data-cluster-0."), 34))
	copy(want[cs:], bytes.Repeat([]byte("compressed!"), 46))
	img = make([]byte, 4*cs)
	be := binary.BigEndian
	copy(img, Magic)
	be.PutUint32(img[4:], version)
	be.PutUint32(img[20:], 9)    // cluster bits
	be.PutUint64(img[24:], 8*cs) // virtual size
	be.PutUint32(img[36:], 1)    // L1 entries
	be.PutUint64(img[40:], 1*cs) // L1 offset
	be.PutUint64(img[48:], 0)    // refcount table (ignored)
	if version == 3 {
		be.PutUint32(img[100:], 104) // header length
	}
	be.PutUint64(img[cs:], 2*cs|1<<63) // L1[0] -> L2 at cluster 2 (copied flag)
	l2 := img[2*cs:]
	be.PutUint64(l2[0:], 3*cs|1<<63) // guest 0 -> host cluster 3
	copy(img[3*cs:], want[:cs])
	// guest 1: compressed, appended at the end of the file.
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestCompression)
	zw.Write(want[cs : 2*cs])
	zw.Close()
	host := uint64(len(img))
	img = append(img, z.Bytes()...)
	x := 62 - (9 - 8)
	sectors := (host%512 + uint64(z.Len()) + 511) / 512
	l2 = img[2*cs:] // append moved img
	be.PutUint64(l2[8:], 1<<62|(sectors-1)<<x|host)
	if version == 3 {
		be.PutUint64(l2[16:], 3*cs|1) // guest 2: allocated but flagged "reads as zeros"
	}
	return img, want
}

func TestReadHandMade(t *testing.T) {
	for _, v := range []uint32{2, 3} {
		img, want := build(t, v)
		im, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatalf("v%d: Open: %v", v, err)
		}
		if im.Size() != int64(len(want)) {
			t.Fatalf("v%d: size %d", v, im.Size())
		}
		got, err := io.ReadAll(io.NewSectionReader(im, 0, im.Size()))
		if err != nil {
			t.Fatalf("v%d: read: %v", v, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("v%d: content differs", v)
		}
		// Reads that straddle clusters and the end of the disk.
		p := make([]byte, 700)
		n, err := im.ReadAt(p, 300)
		if n != 700 || err != nil || !bytes.Equal(p, want[300:1000]) {
			t.Errorf("v%d: ReadAt(300) = %d, %v", v, n, err)
		}
		n, err = im.ReadAt(p, int64(len(want))-100)
		if n != 100 || err != io.EOF {
			t.Errorf("v%d: ReadAt near end = %d, %v; want 100, EOF", v, n, err)
		}
	}
}

func TestBadHeaders(t *testing.T) {
	good, _ := build(t, 3)
	be := binary.BigEndian
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	cases := []struct {
		name string
		img  []byte
		want string
	}{
		{"short", good[:40], "header"},
		{"magic", mod(func(b []byte) { b[0] = 'X' }), "bad magic"},
		{"version", mod(func(b []byte) { be.PutUint32(b[4:], 4) }), "version 4"},
		{"cluster bits", mod(func(b []byte) { be.PutUint32(b[20:], 40) }), "cluster bits"},
		{"huge size", mod(func(b []byte) { be.PutUint64(b[24:], 1<<62) }), "virtual size"},
		{"l1 too small", mod(func(b []byte) { be.PutUint64(b[24:], 1<<30) }), "cannot map"},
		{"l1 huge", mod(func(b []byte) { be.PutUint32(b[36:], 1<<30) }), "exceeds the limit"},
		{"l1 outside", mod(func(b []byte) { be.PutUint64(b[40:], 1<<40) }), "outside"},
		{"encrypted", mod(func(b []byte) { be.PutUint32(b[32:], 1) }), "encrypted"},
		{"corrupt bit", mod(func(b []byte) { be.PutUint64(b[72:], 2) }), "corrupt"},
		{"extended l2", mod(func(b []byte) { be.PutUint64(b[72:], 16) }), "extended L2"},
		{"backing", mod(func(b []byte) {
			be.PutUint64(b[8:], 1500)
			be.PutUint32(b[16:], 8)
			copy(b[1500:], "base.img")
		}), `backing file "base.img"`},
	}
	for _, c := range cases {
		_, err := Open(bytes.NewReader(c.img), int64(len(c.img)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	_, err := Open(bytes.NewReader(cases[len(cases)-1].img), int64(len(good)))
	if !errors.Is(err, ErrBackingFile) {
		t.Errorf("backing: %v is not ErrBackingFile", err)
	}
}

func TestBadTables(t *testing.T) {
	img, _ := build(t, 3)
	be := binary.BigEndian
	// L2 pointing past the end of the file, data cluster past the end, garbage compressed data.
	cases := []struct {
		name string
		off  int
		val  uint64
		want string
	}{
		{"l2 outside", 512, 1 << 40, "L2 table"},
		{"data outside", 1024, 1 << 40, "past the end"},
		{"data unaligned", 1024, 3*512 + 512 + 8, ""},
		{"compressed outside", 1024 + 8, 1<<62 | 1<<40, "compressed cluster"},
	}
	for _, c := range cases {
		b := append([]byte(nil), img...)
		be.PutUint64(b[c.off:], c.val)
		im, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: Open: %v", c.name, err)
		}
		_, err = io.ReadAll(io.NewSectionReader(im, 0, im.Size()))
		if err == nil && c.want != "" {
			t.Errorf("%s: read: no error", c.name)
		}
		if err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// Garbage compressed data fails to inflate.
	b := append([]byte(nil), img...)
	for i := 4 * 512; i < len(b); i++ {
		b[i] = 0xFF
	}
	im, _ := Open(bytes.NewReader(b), int64(len(b)))
	if _, err := im.ReadAt(make([]byte, 10), 512); err == nil {
		t.Errorf("garbage compressed cluster: no error")
	}
}

// TestQemuImg checks the reader against images written by qemu-img itself.
func TestQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw")
	want := make([]byte, 3<<20)
	for i := range want[:1<<20] {
		want[i] = byte(i * 7 / 13)
	}
	copy(want[2<<20+4096:], "the end of a sparse stretch")
	if err := os.WriteFile(raw, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]string{{}, {"-c"}, {"-o", "compat=0.10"}, {"-o", "cluster_size=4096"}, {"-c", "-o", "cluster_size=2M"}} {
		out := filepath.Join(dir, "img.qcow2")
		args := append(append([]string{"convert", "-O", "qcow2"}, opts...), raw, out)
		if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		im, err := Open(f, fi.Size())
		if err != nil {
			t.Fatalf("%v: %v", opts, err)
		}
		got, err := io.ReadAll(io.NewSectionReader(im, 0, im.Size()))
		f.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%v: content differs (err %v, %d bytes)", opts, err, len(got))
		}
	}
}

func FuzzOpen(f *testing.F) {
	v2, _ := build(f, 2)
	v3, _ := build(f, 3)
	f.Add(v2)
	f.Add(v3)
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		p := make([]byte, 4096)
		for _, off := range []int64{0, 511, im.Size() / 2, im.Size() - 10} {
			if off >= 0 {
				im.ReadAt(p, off)
			}
		}
	})
}

func qemu(t *testing.T, tool string, args ...string) {
	t.Helper()
	if b, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, b)
	}
}

// TestBackingChain reads an overlay on a qcow2 base on a raw base, as qemu-img and qemu-io write them.
func TestBackingChain(t *testing.T) {
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not installed")
		}
	}
	dir := t.TempDir()
	want := make([]byte, 2<<20)
	for i := range want {
		want[i] = byte(i / 4096)
	}
	if err := os.WriteFile(filepath.Join(dir, "base.raw"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	qemu(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", filepath.Join(dir, "mid.qcow2"))
	qemu(t, "qemu-io", "-c", "write -P 0x41 65536 4096", filepath.Join(dir, "mid.qcow2"))
	if err := os.Mkdir(filepath.Join(dir, "top"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A backing file named without format: detected by its magic.
	qemu(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "../mid.qcow2", "-F", "qcow2", filepath.Join(dir, "top", "top.qcow2"))
	qemu(t, "qemu-io", "-c", "write -P 0x42 1048576 512", "-c", "write -z 0 4096", filepath.Join(dir, "top", "top.qcow2"))
	copy(want[65536:65536+4096], bytes.Repeat([]byte{0x41}, 4096))
	copy(want[1<<20:1<<20+512], bytes.Repeat([]byte{0x42}, 512))
	clear(want[:4096])

	c, err := OpenFile(filepath.Join(dir, "mid.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// top.qcow2 names ../mid.qcow2, outside its directory: refused when opened from there...
	if _, err := OpenFile(filepath.Join(dir, "top", "top.qcow2")); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("escaping backing file: %v", err)
	}
	// ...but from an image in dir, the chain overlay -> top/top.qcow2 -> ../mid.qcow2 -> base.raw
	// stays inside dir and is read.
	qemu(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "top/top.qcow2", "-F", "qcow2", filepath.Join(dir, "overlay.qcow2"))
	c, err = OpenFile(filepath.Join(dir, "overlay.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(io.NewSectionReader(c, 0, c.Size()))
	if err != nil || !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("chain: first difference at %d (err %v)", i, err)
			}
		}
		t.Fatalf("chain: %d bytes, err %v", len(got), err)
	}
	if _, err := Open(c.files[0], 1<<30); !errors.Is(err, ErrBackingFile) {
		t.Errorf("Open on an overlay: %v, want ErrBackingFile", err)
	}
}

func TestBackingRefused(t *testing.T) {
	img, _ := build(t, 3)
	dir := t.TempDir()
	be := binary.BigEndian
	for _, name := range []string{"/etc/passwd", "../secret", "nbd://host/x"} {
		b := append([]byte(nil), img...)
		be.PutUint64(b[8:], 1500)
		be.PutUint32(b[16:], uint32(len(name)))
		copy(b[1500:], name)
		p := filepath.Join(dir, "o.qcow2")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenFile(p)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
