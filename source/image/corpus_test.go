package image

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/source"
)

// TestCorpus opens every image of the benchmark corpus (when built) and checks the merged tree
// against the root file system it was made from: the same wanted regular files with the same sizes
// (files the filter refuses are left out of the tree).
func TestCorpus(t *testing.T) {
	root := benchTargets + "rootfs-bookworm"
	if _, err := os.Stat(root); err != nil {
		t.Skip("corpus not built")
	}
	if testing.Short() {
		t.Skip("reads ~1 GB")
	}
	want := map[string]int64{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if d.Type().IsRegular() {
			fi, _ := d.Info()
			if handful(filepath.ToSlash(rel), fi) {
				want[filepath.ToSlash(rel)] = fi.Size()
			}
		}
		return nil
	})
	for _, tc := range []struct {
		o   source.Opener
		ref string
	}{
		{OCIArchive{}, "oci-bookworm.tar"},
		{DockerArchive{}, "docker-bookworm.tar"},
		{OCIDir{}, "oci-bookworm-layout"},
		{DockerArchive{}, "oci-bookworm-crane.tar"},
		{DockerArchive{}, "oci-bookworm-crane-mutated.tar"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			p := benchTargets + tc.ref
			if !tc.o.Detect(p) {
				t.Errorf("not detected as %s", tc.o.Kind())
			}
			ts, err := tc.o.Open(context.Background(), p, source.Options{Want: handful, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer ts[0].Close()
			got := 0
			fs.WalkDir(ts[0].FS, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				got++
				fi, _ := d.Info()
				if w, ok := want[p]; !ok || w != fi.Size() {
					t.Errorf("%s: size %d, in the root %d (%v)", p, fi.Size(), w, ok)
				}
				return nil
			})
			for _, n := range []string{"var/lib/dpkg/status", "etc/os-release", "etc/debian_version"} {
				a, err := fs.ReadFile(ts[0].FS, n)
				b, _ := os.ReadFile(filepath.Join(root, n))
				if err != nil || string(a) != string(b) {
					t.Errorf("%s: %d bytes (%v), the root has %d", n, len(a), err, len(b))
				}
			}
			if len(want) < 4 || got != len(want) {
				t.Errorf("%d regular files, the root has %d", got, len(want))
			}
			t.Logf("%s: %+v", tc.ref, ts[0].Info)
		})
	}
}
