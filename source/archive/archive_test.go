package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
	"github.com/vigil-sec/vigil/source/image/unpack"
)

type zent struct {
	name, body string
	method     uint16
	mode       fs.FileMode
}

func mkZip(t testing.TB, prefix string, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(prefix)
	zw := zip.NewWriter(&buf)
	zw.SetOffset(int64(len(prefix)))
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: e.method, Modified: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, e.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mkTar(_ testing.TB, ents ...zent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Mode: 0o644, ModTime: time.Unix(1700000000, 0)}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		}
		tw.WriteHeader(h)
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zst(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

const requestsMetadata = "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: Python HTTP for Humans.\n"

// A Python function package as `pip install -t . && zip -r` makes it.
func pythonFunction(t testing.TB, prefix string) []byte {
	return mkZip(t, prefix,
		zent{name: "lambda_function.py", body: "import requests\n\ndef lambda_handler(event, context):\n    return requests.get(event['url']).status_code\n", method: zip.Deflate, mode: 0o644},
		zent{name: "requests/", mode: fs.ModeDir | 0o755},
		zent{name: "requests/__init__.py", body: "__version__ = '2.31.0'\n", method: zip.Deflate},
		zent{name: "requests-2.31.0.dist-info/METADATA", body: requestsMetadata, method: zip.Deflate},
		zent{name: "urllib3-1.26.18.dist-info/METADATA", body: "Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.18\n", method: zip.Store},
		zent{name: "bin/normalizer", body: "../charset_normalizer/cli.py", mode: fs.ModeSymlink | 0o777},
		zent{name: "charset_normalizer/cli.py", body: "def cli_detect(): pass\n", method: zip.Deflate},
	)
}

// A web archive holding a stored (uncompressed) nested jar, as Maven's war plugin writes them.
func warFile(t testing.TB) []byte {
	inner := mkZip(t, "", zent{name: "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
		body: "groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n", method: zip.Deflate})
	return mkZip(t, "",
		zent{name: "META-INF/MANIFEST.MF", body: "Manifest-Version: 1.0\nCreated-By: Maven WAR Plugin 3.4.0\n", method: zip.Deflate},
		zent{name: "WEB-INF/lib/log4j-core-2.14.1.jar", body: string(inner), method: zip.Store},
	)
}

func nodeTarball() []byte {
	return mkTar(nil,
		zent{name: "package/"},
		zent{name: "package/package.json", body: `{"name":"lodash","version":"4.17.20","license":"MIT"}`},
		zent{name: "package/lodash.js", body: strings.Repeat("/* lodash */\n", 100)},
	)
}

func write(t testing.TB, name string, b []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t testing.TB, p string, opts source.Options, lim Limits) (*source.Target, error) {
	ts, err := Opener{Limits: lim}.Open(context.Background(), p, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ts[0].Close() })
	return ts[0], nil
}

func TestFormats(t *testing.T) {
	tests := []struct {
		file   string
		data   []byte
		format Format
		want   map[string]string
	}{
		{"function.zip", pythonFunction(t, ""), Zip, map[string]string{
			"requests-2.31.0.dist-info/METADATA": requestsMetadata,
			"urllib3-1.26.18.dist-info/METADATA": "Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.18\n",
			"bin/normalizer":                     "def cli_detect(): pass\n", // a symlink, followed inside the archive
		}},
		{"launcher.jar", pythonFunction(t, "#!/bin/sh\nexec java -jar \"$0\" \"$@\"\n"), Zip, map[string]string{
			"requests-2.31.0.dist-info/METADATA": requestsMetadata,
		}},
		{"app.war", warFile(t), Zip, map[string]string{"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\nCreated-By: Maven WAR Plugin 3.4.0\n"}},
		{"lodash.tar", nodeTarball(), Tar, map[string]string{"package/package.json": `{"name":"lodash","version":"4.17.20","license":"MIT"}`}},
		{"lodash-4.17.20.tgz", gz(nodeTarball()), CompressedTar, map[string]string{"package/package.json": `{"name":"lodash","version":"4.17.20","license":"MIT"}`}},
		{"lodash.tar.zst", zst(nodeTarball()), CompressedTar, map[string]string{"package/lodash.js": strings.Repeat("/* lodash */\n", 100)}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			p := write(t, tc.file, tc.data)
			if got := Sniff(bytes.NewReader(tc.data), int64(len(tc.data))); got != tc.format {
				t.Errorf("Sniff = %v, want %v", got, tc.format)
			}
			if !(Opener{}).Detect(p) {
				t.Error("not detected")
			}
			tg, err := open(t, p, source.Options{TempDir: t.TempDir()}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if tg.Info.Kind != "archive" || tg.Info.Name != p {
				t.Errorf("info = %+v", tg.Info)
			}
			var names []string
			for n, w := range tc.want {
				names = append(names, n)
				if got, err := fs.ReadFile(tg.FS, n); err != nil || string(got) != w {
					t.Errorf("%s = %q, %v", n, got, err)
				}
			}
			if err := fstest.TestFS(tg.FS, names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// The nested jar is a file, served with random access so that the Java extractor can open it as a
// zip without copying it.
func TestNestedJarIsAFileWithReadAt(t *testing.T) {
	tg, err := open(t, write(t, "app.war", warFile(t)), source.Options{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := tg.FS.Open("WEB-INF/lib/log4j-core-2.14.1.jar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		t.Fatalf("%T has no ReadAt", f)
	}
	zr, err := zip.NewReader(ra, fi.Size())
	if err != nil || len(zr.File) != 1 || !strings.HasSuffix(zr.File[0].Name, "pom.properties") {
		t.Fatalf("nested jar: %v", err)
	}
	if _, err := tg.FS.Open("WEB-INF/lib/log4j-core-2.14.1.jar/META-INF"); err == nil {
		t.Error("nested jar expanded")
	}
}

func TestWant(t *testing.T) {
	want := func(name string, fi fs.FileInfo) bool {
		return strings.HasSuffix(name, "/METADATA") || fi.Name() == "package.json"
	}
	for _, tc := range []struct {
		file       string
		data       []byte
		kept, lost string
	}{
		{"f.zip", pythonFunction(t, ""), "requests-2.31.0.dist-info/METADATA", "lambda_function.py"},
		{"p.tgz", gz(nodeTarball()), "package/package.json", "package/lodash.js"},
	} {
		tg, err := open(t, write(t, tc.file, tc.data), source.Options{Want: want, TempDir: t.TempDir()}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.ReadFile(tg.FS, tc.kept); err != nil {
			t.Errorf("%s: %v", tc.kept, err)
		}
		// Zip entries stay listed without content; tar entries are left out of the tree.
		if _, err := fs.ReadFile(tg.FS, tc.lost); !errors.Is(err, fsx.ErrNoContent) && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want it unreadable", tc.lost, err)
		}
	}
}

// lyingZip declares 10 uncompressed bytes for an entry that inflates to 1 MiB.
func lyingZip(t testing.TB) []byte {
	var raw bytes.Buffer
	fw, _ := flate.NewWriter(&raw, flate.BestCompression)
	fw.Write(make([]byte, 1<<20))
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "small.txt", Method: zip.Deflate, CRC32: 0,
		CompressedSize64: uint64(raw.Len()), UncompressedSize64: 10})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw.Bytes())
	zw.Close()
	return buf.Bytes()
}

func TestBadArchives(t *testing.T) {
	bigZip := mkZip(t, "", zent{name: "a.bin", body: strings.Repeat("\x00", 3<<20), method: zip.Deflate})
	tests := []struct {
		name string
		data []byte
		lim  Limits
		want string
		is   error
	}{
		{"zip slip", mkZip(t, "", zent{name: "../../etc/cron.d/evil", body: "x", method: zip.Deflate}), Limits{}, `entry "../../etc/cron.d/evil"`, unpack.ErrUnsafeName},
		{"zip absolute", mkZip(t, "", zent{name: "/etc/passwd", body: "x"}), Limits{}, `entry "/etc/passwd"`, unpack.ErrUnsafeName},
		{"zip backslash slip", mkZip(t, "", zent{name: `..\..\Windows\evil.dll`, body: "x"}), Limits{}, `Windows`, unpack.ErrUnsafeName},
		{"zip bomb", bigZip, Limits{MaxStreamBytes: 1 << 20}, "zip bomb", unpack.ErrLimit},
		{"zip entries", pythonFunction(t, ""), Limits{MaxEntries: 3}, "7 entries", unpack.ErrLimit},
		{"tar slip", mkTar(t, zent{name: "../x", body: "x"}), Limits{}, `archive evil: entry "../x"`, unpack.ErrUnsafeName},
		{"tgz bomb", gz(mkTar(t, zent{name: "z", body: strings.Repeat("\x00", 3<<20)})), Limits{MaxStreamBytes: 1 << 20}, "decompression bomb", unpack.ErrLimit},
		{"truncated tgz", gz(nodeTarball())[:150], Limits{}, "unexpected EOF", io.ErrUnexpectedEOF},
		{"tgz without its trailer", gz(nodeTarball())[:len(gz(nodeTarball()))-4], Limits{}, "archive evil: after the last entry: unexpected EOF", io.ErrUnexpectedEOF},
		{"truncated zip", pythonFunction(t, "")[:400], Limits{}, "not a valid zip", nil},
		{"garbage", bytes.Repeat([]byte("garbage!"), 100), Limits{}, "not a zip, tar or compressed tar", nil},
		{"gzip of no tar", gz([]byte("just some text\n")), Limits{}, "not a zip, tar", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(context.Background(), bytes.NewReader(tc.data), int64(len(tc.data)), "evil", source.Options{TempDir: t.TempDir()}, tc.lim)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("err = %v", err)
			}
		})
	}
	// A size that lies is caught when the entry is read.
	tg, err := open(t, write(t, "lie.zip", lyingZip(t)), source.Options{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(tg.FS, "small.txt"); err == nil || len(b) > 10 {
		t.Errorf("lying entry read: %d bytes, %v", len(b), err)
	}
	if (Opener{}).Detect(write(t, "x.gz", gz([]byte("text")))) || (Opener{}).Detect(t.TempDir()) {
		t.Error("detected a non-archive")
	}
}

// FuzzRead opens arbitrary bytes as an archive: an error or a tree, never a panic, and every file of
// the tree readable within bounds.
func FuzzRead(f *testing.F) {
	f.Add(pythonFunction(f, ""))
	f.Add(warFile(f))
	f.Add(nodeTarball())
	f.Add(gz(nodeTarball()))
	f.Add(lyingZip(f))
	f.Add(mkZip(f, "#!/bin/sh\n", zent{name: "a/../../b", body: "x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(context.Background(), bytes.NewReader(data), int64(len(data)), "fuzz",
			source.Options{TempDir: t.TempDir()}, Limits{MaxStreamBytes: 8 << 20, MaxEntries: 1000, MaxSpool: 8 << 20})
		if err != nil {
			return
		}
		defer a.Close()
		fsys := fsx.New(a.Tree)
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if !fs.ValidPath(p) || fsx.HasDotDot(p) {
				t.Fatalf("bad name %q", p)
			}
			if d.Type().IsRegular() {
				fsx.ReadFileLimit(fsys, p, 16<<20)
			}
			return nil
		})
	})
}
