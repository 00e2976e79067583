package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
	"github.com/vigil-sec/vigil/source/image/unpack"
)

type ent struct {
	name, body, link string
	typ              byte
}

func reg(name, body string) ent       { return ent{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) ent             { return ent{name: name, typ: tar.TypeDir} }
func symlink(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeSymlink} }

func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, ModTime: time.Unix(1700000000, 0)}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func layerOf(t testing.TB, data []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

const dpkgStatusCurl = `Package: curl
Status: install ok installed
Priority: optional
Section: web
Installed-Size: 500
Maintainer: Alessandro Ghedini <ghedo@debian.org>
Architecture: amd64
Version: 7.88.1-10+deb12u8
`

// debianImage is a two-layer image: the lower layer is a small Debian 12 root with python3-yaml and
// an apt source list; the upper one removes python3-yaml (whiteouts), empties sources.list.d with an
// opaque marker, and upgrades curl.
func debianImage(t testing.TB, arch string) (v1.Image, []v1.Layer) {
	t.Helper()
	lower := layerOf(t, mkTar(t,
		dir("etc/"), reg("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
		reg("etc/arch", arch),
		dir("etc/apt/sources.list.d/"), reg("etc/apt/sources.list.d/debian.sources", "Types: deb\nSuites: bookworm\n"),
		dir("usr/lib/python3/dist-packages/yaml/"), reg("usr/lib/python3/dist-packages/yaml/__init__.py", "__version__ = '6.0'\n"),
		reg("var/lib/dpkg/info/python3-yaml.list", "/usr/lib/python3/dist-packages/yaml/__init__.py\n"),
		reg("var/lib/dpkg/status", strings.Replace(dpkgStatusCurl, "7.88.1-10+deb12u8", "7.88.1-10+deb12u5", 1)),
		symlink("loop/a", "b"), symlink("loop/b", "a"), symlink("etc/escape", "../../../../etc/os-release"),
	))
	upper := layerOf(t, mkTar(t,
		reg("usr/lib/python3/dist-packages/.wh.yaml", ""),
		reg("var/lib/dpkg/info/.wh.python3-yaml.list", ""),
		reg("etc/apt/sources.list.d/.wh..wh..opq", ""),
		reg("var/lib/dpkg/status", dpkgStatusCurl),
	))
	img, err := mutate.AppendLayers(empty.Image, lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	if arch == "arm64" {
		cfg.Variant = "v8"
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img, []v1.Layer{lower, upper}
}

// fixtures writes the image in the three local formats.
type fixtures struct{ docker, ociDir, ociTar string }

func writeFixtures(t testing.TB, img v1.Image) fixtures {
	t.Helper()
	d := t.TempDir()
	fx := fixtures{docker: filepath.Join(d, "docker.tar"), ociDir: filepath.Join(d, "layout"), ociTar: filepath.Join(d, "oci.tar")}
	if err := tarball.WriteToFile(fx.docker, name.MustParseReference("registry.example/app:1.0"), img); err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(fx.ociDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{annotRefName: "1.0"})); err != nil {
		t.Fatal(err)
	}
	tarDir(t, fx.ociDir, fx.ociTar)
	return fx
}

// tarDir packs a layout directory as skopeo's oci-archive does (names relative to the layout).
func tarDir(t testing.TB, src, dst string) {
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(src, p)
		if rel == "." || err != nil {
			return err
		}
		fi, _ := d.Info()
		h, _ := tar.FileInfoHeader(fi, "")
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		tw.WriteHeader(h)
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			tw.Write(b)
		}
		return nil
	})
	tw.Close()
}

func openOne(t testing.TB, o source.Opener, ref string, opts source.Options) *source.Target {
	t.Helper()
	ts, err := o.Open(context.Background(), ref, opts)
	if err != nil {
		t.Fatalf("%s:%s: %v", o.Kind(), ref, err)
	}
	if len(ts) != 1 {
		t.Fatalf("%d targets", len(ts))
	}
	t.Cleanup(func() { ts[0].Close() })
	return ts[0]
}

func TestLocalFormats(t *testing.T) {
	img, ls := debianImage(t, "amd64")
	fx := writeFixtures(t, img)
	manifestDigest, _ := img.Digest()
	configDigest, _ := img.ConfigName()
	d1, _ := ls[0].DiffID()
	d2, _ := ls[1].DiffID()
	for _, tc := range []struct {
		o          source.Opener
		ref        string
		digest     string
		tags       []string
		detectedAs string
	}{
		{DockerArchive{}, fx.docker, configDigest.String(), []string{"registry.example/app:1.0"}, "docker-archive"},
		{OCIArchive{}, fx.ociTar, manifestDigest.String(), []string{"1.0"}, "oci-archive"},
		{OCIDir{}, fx.ociDir, manifestDigest.String(), []string{"1.0"}, "oci-dir"},
		{OCIDir{}, fx.ociDir + ":1.0", manifestDigest.String(), []string{"1.0"}, ""},
	} {
		t.Run(tc.o.Kind()+"/"+filepath.Base(tc.ref), func(t *testing.T) {
			var progress []source.Progress
			tmp := t.TempDir()
			tg := openOne(t, tc.o, tc.ref, source.Options{TempDir: tmp, OnProgress: func(p source.Progress) { progress = append(progress, p) }})
			info := tg.Info
			if info.Kind != tc.o.Kind() || info.Name != tc.ref || info.Digest != tc.digest || info.Platform != "linux/amd64" ||
				!reflect.DeepEqual(info.RepoTags, tc.tags) || !reflect.DeepEqual(info.Layers, []string{d1.String(), d2.String()}) {
				t.Errorf("info = %+v", info)
			}
			fsys := tg.FS.(*fsx.FS)
			for _, gone := range []string{"usr/lib/python3/dist-packages/yaml/__init__.py", "usr/lib/python3/dist-packages/yaml",
				"var/lib/dpkg/info/python3-yaml.list", "etc/apt/sources.list.d/debian.sources"} {
				if _, err := fsys.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: deleted in layer 2 but present (%v)", gone, err)
				}
			}
			if ents, err := fsys.ReadDir("etc/apt/sources.list.d"); err != nil || len(ents) != 0 {
				t.Errorf("opaque directory: %v, %v", ents, err)
			}
			status, err := fs.ReadFile(fsys, "var/lib/dpkg/status")
			if err != nil || !strings.Contains(string(status), "Version: 7.88.1-10+deb12u8") {
				t.Errorf("dpkg status = %q, %v", status, err)
			}
			if got := fsys.LayerOf("var/lib/dpkg/status"); got != d2.String() {
				t.Errorf("status layer = %s, want %s", got, d2)
			}
			if got := fsys.LayerOf("etc/os-release"); got != d1.String() {
				t.Errorf("os-release layer = %s, want %s", got, d1)
			}
			// Links stay links and resolve inside the image.
			if _, err := fs.ReadFile(fsys, "loop/a"); !errors.Is(err, fsx.ErrLoop) {
				t.Errorf("symlink loop: %v", err)
			}
			if b, err := fs.ReadFile(fsys, "etc/escape"); err != nil || !strings.Contains(string(b), "bookworm") {
				t.Errorf("escaping link not confined: %q %v", b, err)
			}
			if len(progress) < 2 || progress[0].Stage != "layer" || !strings.HasPrefix(progress[0].Item, "sha256:") {
				t.Errorf("progress = %+v", progress)
			}
			if tc.detectedAs != "" {
				for _, o := range []source.Opener{DockerArchive{}, OCIArchive{}, OCIDir{}, Registry{}} {
					if got := o.Detect(tc.ref); got != (o.Kind() == tc.detectedAs) {
						t.Errorf("%s.Detect(%s) = %v", o.Kind(), tc.ref, got)
					}
				}
			}
			if err := tg.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("temp data left: %v", left)
			}
		})
	}
}

func TestWantAndSpool(t *testing.T) {
	img, _ := debianImage(t, "amd64")
	fx := writeFixtures(t, img)
	want := func(name string, _ fs.FileInfo) bool { return name == "var/lib/dpkg/status" }
	o := OCIArchive{Limits: Limits{SmallFile: 16}} // the status file is spooled
	tg := openOne(t, o, fx.ociTar, source.Options{Want: want, TempDir: t.TempDir()})
	f, err := tg.FS.Open("var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		t.Fatalf("spooled file has no ReadAt: %T", f)
	}
	p := make([]byte, 13)
	if _, err := ra.ReadAt(p, 0); err != nil || string(p) != "Package: curl" {
		t.Errorf("ReadAt = %q, %v", p, err)
	}
	if _, err := fs.ReadFile(tg.FS, "etc/os-release"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an unwanted file must be left out of the tree: %v", err)
	}
}

// badLayerImage is an image whose only layer is the given tar stream, written as an OCI layout.
func badLayerImage(t *testing.T, data []byte) (string, string) {
	img, err := mutate.AppendLayers(empty.Image, layerOf(t, data))
	if err != nil {
		t.Fatal(err)
	}
	fx := writeFixtures(t, img)
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	return fx.ociDir, d.String()
}

func TestBadImages(t *testing.T) {
	t.Run("dotdot entry", func(t *testing.T) {
		p, digest := badLayerImage(t, mkTar(t, reg("etc/../../root/.ssh/authorized_keys", "ssh-ed25519 AAAA")))
		_, err := OCIDir{}.Open(context.Background(), p, source.Options{})
		if !errors.Is(err, unpack.ErrUnsafeName) || !strings.Contains(err.Error(), digest) ||
			!strings.Contains(err.Error(), "etc/../../root/.ssh/authorized_keys") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("absolute entry", func(t *testing.T) {
		p, _ := badLayerImage(t, mkTar(t, reg("/etc/cron.d/evil", "* * * * * root id")))
		if _, err := (OCIDir{}).Open(context.Background(), p, source.Options{}); !errors.Is(err, unpack.ErrUnsafeName) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("gzip bomb", func(t *testing.T) {
		p, _ := badLayerImage(t, mkTar(t, reg("zeros", strings.Repeat("\x00", 8<<20))))
		_, err := OCIDir{Limits: Limits{MaxStreamBytes: 1 << 20}}.Open(context.Background(), p, source.Options{})
		if !errors.Is(err, unpack.ErrLimit) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("corrupt layer blob", func(t *testing.T) {
		p, digest := badLayerImage(t, mkTar(t, reg("etc/os-release", strings.Repeat("ID=debian\n", 500))))
		blob := filepath.Join(p, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
		b, _ := os.ReadFile(blob)
		for i := 20; i < len(b)-8; i += 7 {
			b[i] ^= 0x5a
		}
		os.WriteFile(blob, b, 0o644)
		_, err := OCIDir{}.Open(context.Background(), p, source.Options{})
		if err == nil || !strings.Contains(err.Error(), digest) {
			t.Errorf("err = %v", err)
		}
	})
	img, _ := debianImage(t, "amd64")
	fx := writeFixtures(t, img)
	t.Run("truncated docker archive", func(t *testing.T) {
		b, _ := os.ReadFile(fx.docker)
		p := filepath.Join(t.TempDir(), "cut.tar")
		os.WriteFile(p, b[:len(b)*2/3], 0o644)
		if _, err := (DockerArchive{}).Open(context.Background(), p, source.Options{}); err == nil {
			t.Error("no error")
		}
	})
	t.Run("truncated oci archive", func(t *testing.T) {
		b, _ := os.ReadFile(fx.ociTar)
		p := filepath.Join(t.TempDir(), "cut.tar")
		os.WriteFile(p, b[:len(b)/2], 0o644)
		if _, err := (OCIArchive{}).Open(context.Background(), p, source.Options{}); err == nil {
			t.Error("no error")
		}
	})
	t.Run("not an image", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x.tar")
		os.WriteFile(p, mkTar(t, reg("hello.txt", "hi")), 0o644)
		for _, o := range []source.Opener{DockerArchive{}, OCIArchive{}, OCIDir{}} {
			if o.Detect(p) {
				t.Errorf("%s detects a plain tar", o.Kind())
			}
			if _, err := o.Open(context.Background(), p, source.Options{}); err == nil {
				t.Errorf("%s opened a plain tar", o.Kind())
			}
		}
	})
	t.Run("unknown platform", func(t *testing.T) {
		_, err := OCIDir{}.Open(context.Background(), fx.ociDir, source.Options{Platform: "linux/s390x"})
		if err == nil || !strings.Contains(err.Error(), "linux/amd64") {
			t.Errorf("err = %v", err)
		}
	})
}
