package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/source"
)

// FuzzArchives opens arbitrary bytes as a docker save tarball and as an OCI archive: the manifest,
// index and config parsing, the tar index and layer application must fail cleanly, never panic.
func FuzzArchives(f *testing.F) {
	img, _ := debianImage(f, "amd64")
	fx := writeFixtures(f, img)
	for _, p := range []string{fx.docker, fx.ociTar} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(mkTar(f, reg("manifest.json", `[{"Config":"../c.json","Layers":["/etc/passwd"]}]`)))
	f.Add(mkTar(f, reg("oci-layout", `{"imageLayoutVersion":"1.0.0"}`), reg("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2}]}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "in.tar")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		lim := Limits{MaxStreamBytes: 16 << 20, MaxEntries: 5000, MaxSpool: 16 << 20}
		for _, o := range []source.Opener{DockerArchive{Limits: lim}, OCIArchive{Limits: lim}} {
			o.Detect(p)
			ts, err := o.Open(context.Background(), p, source.Options{TempDir: dir, Platform: "all"})
			if err == nil {
				for _, tg := range ts {
					tg.Close()
				}
			}
		}
	})
}
