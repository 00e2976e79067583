package extractors_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/extractors"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/sources"
)

func layer(t *testing.T, files map[string]string, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range order {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return buf.Bytes()
}

const statusBoth = `Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u5

Package: python3-yaml
Status: install ok installed
Architecture: amd64
Source: pyyaml
Version: 6.0-3+b2
`

const statusCurlOnly = `Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u8
`

// A later layer uninstalls python3-yaml (its dist-info removed by a whiteout, the dpkg status
// rewritten) and deletes an application directory holding a lockfile with an opaque whiteout: none
// of the deleted packages may appear, and each remaining one names the layer that wrote it.
func TestWhiteoutsRemovePackages(t *testing.T) {
	lower := map[string]string{
		"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		"var/lib/dpkg/status": statusBoth,
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n",
		"srv/old/package-lock.json":                                   `{"name":"old","version":"1.0.0","lockfileVersion":3,"packages":{"":{"name":"old","version":"1.0.0"},"node_modules/minimist":{"version":"1.2.0"}}}`,
		"srv/app/package-lock.json":                                   `{"name":"app","version":"2.0.0","lockfileVersion":3,"packages":{"":{"name":"app","version":"2.0.0"},"node_modules/lodash":{"version":"4.17.15"}}}`,
	}
	upper := map[string]string{
		"var/lib/dpkg/status": statusCurlOnly,
		"usr/lib/python3/dist-packages/.wh.PyYAML-6.0.dist-info": "",
		"srv/old/.wh..wh..opq": "",
	}
	l1 := layer(t, lower, "etc/os-release", "var/lib/dpkg/status", "usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA",
		"srv/old/package-lock.json", "srv/app/package-lock.json")
	l2 := layer(t, upper, "var/lib/dpkg/status", "usr/lib/python3/dist-packages/.wh.PyYAML-6.0.dist-info", "srv/old/.wh..wh..opq")
	mk := func(b []byte) tarball.Opener {
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	L1, err := tarball.LayerFromOpener(mk(l1))
	if err != nil {
		t.Fatal(err)
	}
	L2, err := tarball.LayerFromOpener(mk(l2))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, L1, L2)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	ref, _ := name.NewTag("test.local/whiteouts:1")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		t.Fatal(err)
	}
	d1, _ := L1.DiffID()
	d2, _ := L2.DiffID()

	eng := inventory.New(extractors.OSDetector(), extractors.Default(), inventory.Config{})
	ts, err := sources.Default().Open(context.Background(), path, source.Options{Want: eng.Filter()})
	if err != nil {
		t.Fatal(err)
	}
	defer ts[0].Close()
	if ts[0].Info.Kind != "docker-archive" {
		t.Fatalf("detected as %s", ts[0].Info.Kind)
	}
	inv, err := eng.Run(context.Background(), ts[0].FS, ts[0].Info)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]model.Package{}
	for _, p := range inv.Packages {
		got[p.Name] = p
	}
	for _, gone := range []string{"python3-yaml", "PyYAML", "minimist", "old"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%s was deleted by a later layer but appears in the inventory", gone)
		}
	}
	if p := got["curl"]; p.Version != "7.88.1-10+deb12u8" || p.LayerDigest != d2.String() || p.Ecosystem != "Debian:12" {
		t.Errorf("curl = %+v, want the upper layer's version and digest %s", p, d2)
	}
	if p := got["lodash"]; p.Version != "4.17.15" || p.LayerDigest != d1.String() {
		t.Errorf("lodash = %+v, want the lower layer's digest %s", p, d1)
	}
	if len(inv.Packages) != 3 { // curl, lodash, app (the project), and nothing else
		t.Errorf("packages = %+v", inv.Packages)
	}
}
