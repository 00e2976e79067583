package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/vigil-sec/vigil/source/fsx"
)

// ent is one hand-written tar entry.
type ent struct {
	name, body, link string
	typ              byte
}

func dir(name string) ent              { return ent{name: name, typ: tar.TypeDir} }
func reg(name, body string) ent        { return ent{name: name, body: body, typ: tar.TypeReg} }
func symlink(name, target string) ent  { return ent{name: name, link: target, typ: tar.TypeSymlink} }
func hardlink(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeLink} }
func whiteout(name string) ent         { return ent{name: name, typ: tar.TypeReg} }

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

const (
	lowerID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	upperID = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// A Debian-like lower layer and an upper layer that uninstalls python3-yaml (whiteouts of its files
// and of its dist-info directory), empties /etc/apt/sources.list.d with an opaque directory and adds
// one file there, and upgrades libssl3's shared object.
func layers(t testing.TB) (lower, upper []byte) {
	lower = mkTar(t,
		dir("etc/"), reg("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
		dir("etc/apt/sources.list.d/"),
		reg("etc/apt/sources.list.d/debian.sources", "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"),
		reg("etc/apt/sources.list.d/old.list", "deb http://archive.debian.org/debian buster main\n"),
		dir("etc/apt/sources.list.d/nested/"), reg("etc/apt/sources.list.d/nested/x.list", "x"),
		dir("usr/lib/python3/dist-packages/yaml/"),
		reg("usr/lib/python3/dist-packages/yaml/__init__.py", "__version__ = '6.0'\n"),
		dir("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/"),
		reg("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n"),
		reg("var/lib/dpkg/info/python3-yaml.list", "/usr/lib/python3/dist-packages/yaml/__init__.py\n"),
		reg("usr/lib/x86_64-linux-gnu/libssl.so.3", "ELF 3.0.11"),
		hardlink("usr/lib/x86_64-linux-gnu/libssl-hard.so.3", "usr/lib/x86_64-linux-gnu/libssl.so.3"),
		symlink("etc/alternatives/python", "/usr/bin/python3.11"),
		reg("usr/bin/python3.11", "ELF python"),
	)
	upper = mkTar(t,
		// An entry of this layer written before the opaque marker: it must survive it.
		reg("etc/apt/sources.list.d/vigil.sources", "Types: deb\nURIs: https://packages.example/vigil\n"),
		whiteout("etc/apt/sources.list.d/.wh..wh..opq"),
		whiteout("usr/lib/python3/dist-packages/.wh.yaml"),
		whiteout("usr/lib/python3/dist-packages/.wh.PyYAML-6.0.dist-info"),
		whiteout("var/lib/dpkg/info/.wh.python3-yaml.list"),
		reg("usr/lib/x86_64-linux-gnu/libssl.so.3", "ELF 3.0.15"),
		// A whiteout of a file this same layer wrote does not hide it (it applies to lower layers).
		reg("opt/keep.txt", "kept"), whiteout("opt/.wh.keep.txt"),
		// Degenerate whiteouts that would name their own directory are ignored.
		whiteout("etc/.wh."), whiteout("etc/.wh.."),
	)
	return lower, upper
}

func apply(t testing.TB, b *Builder, data []byte, id string) error {
	t.Helper()
	return b.Apply(context.Background(), bytes.NewReader(data), Stream{Label: "layer " + id, Layer: id, Whiteouts: true})
}

func TestWhiteoutsAndAttribution(t *testing.T) {
	lower, upper := layers(t)
	for _, tc := range []struct {
		name  string
		wrap  func(testing.TB, []byte) []byte
		limit Limits
	}{
		{"plain", func(_ testing.TB, b []byte) []byte { return b }, Limits{}},
		{"gzip", gz, Limits{}},
		{"zstd", zst, Limits{}},
		{"spooled", gz, Limits{SmallFile: 1}}, // every kept file goes to the spool
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(nil, t.TempDir(), tc.limit)
			defer b.Close()
			if err := apply(t, b, tc.wrap(t, lower), lowerID); err != nil {
				t.Fatal(err)
			}
			if err := apply(t, b, tc.wrap(t, upper), upperID); err != nil {
				t.Fatal(err)
			}
			fsys := fsx.New(b.Tree)
			gone := []string{
				"usr/lib/python3/dist-packages/yaml", "usr/lib/python3/dist-packages/yaml/__init__.py",
				"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA",
				"var/lib/dpkg/info/python3-yaml.list",
				"etc/apt/sources.list.d/debian.sources", "etc/apt/sources.list.d/old.list",
				"etc/apt/sources.list.d/nested/x.list", "etc/apt/sources.list.d/nested",
			}
			for _, n := range gone {
				if _, err := fsys.Lstat(n); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: deleted by a whiteout but still there (%v)", n, err)
				}
			}
			// No whiteout marker is itself a file.
			fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if strings.Contains(p, ".wh.") {
					t.Errorf("whiteout marker %s in the merged tree", p)
				}
				return nil
			})
			ents, _ := fsys.ReadDir("etc/apt/sources.list.d")
			if len(ents) != 1 || ents[0].Name() != "vigil.sources" {
				t.Errorf("opaque dir holds %v, want only vigil.sources", ents)
			}
			want := map[string]struct{ body, layer string }{
				"etc/os-release":                            {"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n", lowerID},
				"usr/lib/x86_64-linux-gnu/libssl.so.3":      {"ELF 3.0.15", upperID},
				"usr/lib/x86_64-linux-gnu/libssl-hard.so.3": {"ELF 3.0.11", lowerID},
				"etc/apt/sources.list.d/vigil.sources":      {"Types: deb\nURIs: https://packages.example/vigil\n", upperID},
				"opt/keep.txt":                              {"kept", upperID},
			}
			for n, w := range want {
				got, err := fs.ReadFile(fsys, n)
				if err != nil || string(got) != w.body {
					t.Errorf("%s = %q, %v; want %q", n, got, err, w.body)
				}
				if l := fsys.LayerOf(n); l != w.layer {
					t.Errorf("LayerOf(%s) = %s, want %s", n, l, w.layer)
				}
			}
			if target, err := fsys.ReadLink("etc/alternatives/python"); err != nil || target != "/usr/bin/python3.11" {
				t.Errorf("symlink kept as %q, %v", target, err)
			}
			// Kept content supports random access (zip and ELF readers need it).
			f, _ := fsys.Open("etc/os-release")
			ra, ok := f.(io.ReaderAt)
			if !ok {
				t.Fatalf("%T: no ReadAt", f)
			}
			p := make([]byte, 6)
			if _, err := ra.ReadAt(p, 45); err != nil || string(p) != "ID=deb" {
				t.Errorf("ReadAt = %q, %v", p, err)
			}
			f.Close()
			if err := fstest.TestFS(fsys, "etc/os-release", "opt/keep.txt"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestWantFilterKeepsOnlyWantedContent(t *testing.T) {
	lower, _ := layers(t)
	var asked []string
	want := func(name string, fi fs.FileInfo) bool {
		asked = append(asked, name)
		if !fi.Mode().IsRegular() {
			t.Errorf("Want asked about %s of mode %v", name, fi.Mode())
		}
		return name == "etc/os-release"
	}
	b := NewBuilder(want, t.TempDir(), Limits{})
	defer b.Close()
	if err := apply(t, b, gz(t, lower), lowerID); err != nil {
		t.Fatal(err)
	}
	fsys := fsx.New(b.Tree)
	if _, err := fs.ReadFile(fsys, "etc/os-release"); err != nil {
		t.Fatal(err)
	}
	// Files the filter refuses are not in the tree at all: the engine asks the same filter before
	// it opens anything, and an image's tree is mostly such files.
	if _, err := fsys.Stat("var/lib/dpkg/info/python3-yaml.list"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an unwanted file must be left out: %v", err)
	}
	if len(asked) != 10 {
		t.Errorf("Want asked %d times (%v), want once per regular file and per hard link to a left-out one", len(asked), asked)
	}
	if mem, spool, _ := b.Usage(); mem != 71 || spool != 0 {
		t.Errorf("usage mem=%d spool=%d", mem, spool)
	}
}

// A file left out still replaces what a lower layer had at its name, and hard links to it are told
// apart from dangling ones.
func TestLeftOutFiles(t *testing.T) {
	want := func(name string, _ fs.FileInfo) bool { return strings.HasPrefix(name, "keep/") }
	b := NewBuilder(want, t.TempDir(), Limits{})
	defer b.Close()
	if err := apply(t, b, gz(t, mkTar(t, reg("keep/status", "lower"), reg("keep/tool", "v1"))), lowerID); err != nil {
		t.Fatal(err)
	}
	// The upper layer turns keep/tool into a hard link to a file nobody reads, and links an unread
	// name to another unread file.
	upper := mkTar(t, reg("other/blob", "binary"), hardlink("keep/tool", "other/blob"), hardlink("other/alias", "other/blob"),
		reg("keep/status", "upper"))
	if err := apply(t, b, gz(t, upper), upperID); err != nil {
		t.Fatal(err)
	}
	fsys := fsx.New(b.Tree)
	if got, err := fs.ReadFile(fsys, "keep/status"); err != nil || string(got) != "upper" {
		t.Errorf("keep/status = %q, %v", got, err)
	}
	if _, err := fs.ReadFile(fsys, "keep/tool"); err == nil || !strings.Contains(err.Error(), "not kept") {
		t.Errorf("a wanted hard link to a left-out file must fail to read, not read empty: %v", err)
	}
	for _, n := range []string{"other/blob", "other/alias"} {
		if _, err := fsys.Stat(n); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s must be left out: %v", n, err)
		}
	}
	// An unwanted file over a lower wanted one removes it, as extraction would.
	b2 := NewBuilder(func(name string, fi fs.FileInfo) bool { return fi.Size() < 4 }, t.TempDir(), Limits{})
	defer b2.Close()
	apply(t, b2, gz(t, mkTar(t, reg("a", "old"))), lowerID)
	apply(t, b2, gz(t, mkTar(t, reg("a", "much longer"))), upperID)
	if _, err := fsx.New(b2.Tree).Stat("a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the lower file must be gone: %v", err)
	}
	// A hard link to a name never seen is still refused.
	b3 := NewBuilder(want, t.TempDir(), Limits{})
	defer b3.Close()
	if err := apply(t, b3, gz(t, mkTar(t, hardlink("keep/x", "nowhere"))), lowerID); err == nil {
		t.Error("a dangling hard link must be refused")
	}
}

func TestSpoolAndMemoryCap(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	data := gz(t, mkTar(t, reg("a", "small"), reg("big", big+"x"), reg("c", "ccc"), reg("d", "dd")))
	dirp := t.TempDir()
	b := NewBuilder(nil, dirp, Limits{MaxMemory: 7}) // "small" fits, "ccc" does not: spooled
	if err := apply(t, b, data, lowerID); err != nil {
		t.Fatal(err)
	}
	fsys := fsx.New(b.Tree)
	for n, w := range map[string]string{"a": "small", "big": big + "x", "c": "ccc", "d": "dd"} {
		if got, err := fs.ReadFile(fsys, n); err != nil || string(got) != w {
			t.Errorf("%s: %d bytes, %v", n, len(got), err)
		}
	}
	mem, spool, _ := b.Usage()
	if mem != 7 || spool != int64(len(big))+1+3 {
		t.Errorf("mem=%d spool=%d", mem, spool)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := fs.ReadDir(os.DirFS(dirp), "."); len(left) != 0 {
		t.Errorf("temp data left after Close: %v", left)
	}
	if _, err := fs.ReadFile(fsys, "big"); err == nil {
		t.Error("spooled content still served after Close")
	}
}

func TestBadInput(t *testing.T) {
	good := mkTar(t, reg("etc/os-release", "ID=debian\n"), reg("var/lib/dpkg/status", strings.Repeat("Package: x\n", 200)))
	gzGood := gz(t, good)
	corrupt := append([]byte(nil), gzGood...)
	corrupt[len(corrupt)/2] ^= 0xff
	crcBad := append([]byte(nil), gzGood...)
	crcBad[len(crcBad)-6] ^= 0xff // gzip trailer CRC32
	bomb := gz(t, mkTar(t, reg("zeros", strings.Repeat("\x00", 4<<20))))
	abs := mkTar(t, reg("/etc/passwd", "root"))
	dotdot := mkTar(t, reg("usr/../../etc/cron.d/x", "* * * * * root sh"))
	hardOut := mkTar(t, hardlink("x", "../../etc/shadow"))
	hardMissing := mkTar(t, hardlink("x", "not/there"))
	tests := []struct {
		name  string
		data  []byte
		lim   Limits
		want  string
		isErr error
	}{
		{"truncated tar", good[:700], Limits{}, "unexpected EOF", io.ErrUnexpectedEOF},
		{"truncated tar in header", good[:1100], Limits{}, "unexpected EOF", io.ErrUnexpectedEOF},
		{"truncated tar in content", good[:1100+512], Limits{}, "unexpected EOF", io.ErrUnexpectedEOF},
		{"truncated gzip", gzGood[:len(gzGood)/2], Limits{}, "unexpected EOF", io.ErrUnexpectedEOF},
		{"corrupt gzip", corrupt, Limits{}, "layer " + lowerID, nil},
		{"gzip checksum", crcBad, Limits{}, "checksum", nil},
		{"gzip bomb", bomb, Limits{MaxStreamBytes: 1 << 20}, "decompression bomb", ErrLimit},
		{"absolute", abs, Limits{}, `entry "/etc/passwd": unsafe entry name: absolute`, ErrUnsafeName},
		{"dotdot", dotdot, Limits{}, `entry "usr/../../etc/cron.d/x": unsafe entry name`, ErrUnsafeName},
		{"hard link out", hardOut, Limits{}, `hard link to "../../etc/shadow"`, ErrUnsafeName},
		{"hard link missing", hardMissing, Limits{}, "not an earlier file", nil},
		{"entries cap", good, Limits{MaxEntries: 1}, "more than 1 entries", ErrLimit},
		{"spool cap", good, Limits{SmallFile: 1, MaxSpool: 100}, "spool cap", ErrLimit},
		{"bzip2", []byte("BZh91AY&SY"), Limits{}, "bzip2", nil},
		{"metadata cap", good, Limits{MaxMetadata: 20}, "names and link targets pass 20 bytes", ErrLimit},
		{"long name", mkTar(t, reg(strings.Repeat("a/", 3000)+"x", "")), Limits{}, "… (6001 bytes): unsafe entry name: name longer than 4096", ErrUnsafeName},
		{"long link", mkTar(t, symlink("l", strings.Repeat("../", 2000))), Limits{}, "link target longer", ErrUnsafeName},
		{"garbage", bytes.Repeat([]byte{0x42}, 1500), Limits{}, "layer " + lowerID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(nil, t.TempDir(), tc.lim)
			defer b.Close()
			err := apply(t, b, tc.data, lowerID)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Errorf("error %v is not %v", err, tc.isErr)
			}
		})
	}
}

func TestEntryName(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		bad       bool
	}{
		{"./usr/bin/dpkg", "usr/bin/dpkg", false},
		{"usr//lib/./x", "usr/lib/x", false},
		{"./", ".", false},
		{"etc/apt/", "etc/apt", false},
		{"/etc/passwd", "", true},
		{"..", "", true},
		{"a/../b", "", true},
		{`..\..\windows\x`, "", true},
		{`C:\x`, "", true},
		{"a\x00b", "", true},
		{"..foo/bar..", "..foo/bar..", false},
		{"usr/share/doc/caf\xe9", "usr/share/doc/caf\ufffd", false},
	} {
		got, err := EntryName(tc.raw)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("EntryName(%q) = %q, %v", tc.raw, got, err)
		}
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := NewBuilder(nil, t.TempDir(), Limits{})
	defer b.Close()
	lower, _ := layers(t)
	if err := b.Apply(ctx, bytes.NewReader(lower), Stream{Label: "l"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzApply feeds arbitrary bytes as a lower and an upper layer: never a panic, and the tree holds
// only valid names, no whiteout markers, and links that fsx confines.
func FuzzApply(f *testing.F) {
	lower, upper := layers(f)
	f.Add(lower, upper)
	f.Add(gz(f, lower), zst(f, upper))
	f.Add(mkTar(f, dir("a/"), reg("a/b", "x")), mkTar(f, whiteout("a/.wh..wh..opq"), reg("a/c", "y"), whiteout(".wh.a")))
	f.Add(mkTar(f, symlink("l", "../../../etc"), reg("etc/x", "1")), mkTar(f, hardlink("h", "etc/x"), whiteout("etc/.wh.x")))
	f.Add([]byte{0x1f, 0x8b}, []byte("garbage"))
	f.Fuzz(func(t *testing.T, lo, up []byte) {
		b := NewBuilder(nil, t.TempDir(), Limits{MaxStreamBytes: 4 << 20, MaxEntries: 2000, MaxSpool: 4 << 20})
		defer b.Close()
		_ = apply(t, b, lo, lowerID)
		_ = apply(t, b, up, upperID)
		b.Tree.Walk(func(name string, n *MemNode) {
			if !fs.ValidPath(name) || fsx.HasDotDot(name) {
				t.Fatalf("invalid name %q in the tree", name)
			}
			if strings.HasPrefix(n.Name, ".wh.") {
				t.Fatalf("whiteout marker %q in the tree", name)
			}
		})
		fsys := fsx.New(b.Tree)
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if f, err := fsys.Open(p); err == nil {
					io.Copy(io.Discard, f)
					f.Close()
				}
			}
			return nil
		})
	})
}
