package disk

import (
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/source"
)

// The benchmark corpus (../shared/bench/30-disk-images.sh) holds raw images of one Debian 12 root;
// tests and benchmarks that use it skip when it is absent.
var benchTargets = func() string {
	if d := os.Getenv("VIGIL_BENCH_TARGETS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "vigil-bench", "targets")
}()

func benchImage(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(benchTargets, name)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("%s not built", p)
	}
	return p
}

// walkAll lists every name in fsys and reads the dpkg database, as an OS inventory would.
func walkAll(tb testing.TB, fsys fs.FS) []string {
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := fs.ReadFile(fsys, "var/lib/dpkg/status"); err != nil {
		tb.Fatal(err)
	}
	return names
}

// BenchmarkWalk opens each corpus image, walks the whole tree and reads var/lib/dpkg/status.
func BenchmarkWalk(b *testing.B) {
	for _, img := range []string{"disk-ext4.raw", "disk-xfs.raw", "disk-gpt.raw"} {
		b.Run(strings.TrimSuffix(img, ".raw"), func(b *testing.B) {
			p := benchImage(b, img)
			for b.Loop() {
				tg, err := Open(context.Background(), p, source.Options{})
				if err != nil {
					b.Fatal(err)
				}
				walkAll(b, tg.FS)
				tg.Close()
			}
		})
	}
}

// TestCorpusImages checks that every path of the root the images were made from is on them.
func TestCorpusImages(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rootDir := filepath.Join(benchTargets, "rootfs-bookworm")
	if _, err := os.Stat(rootDir); err != nil {
		t.Skip("corpus root not built")
	}
	var want []string
	err := filepath.WalkDir(rootDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootDir, p)
		want = append(want, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"disk-ext4.raw", "disk-xfs.raw", "disk-xfs-proto.raw", "disk-gpt.raw"} {
		t.Run(img, func(t *testing.T) {
			p := benchImage(t, img)
			tg, err := Open(context.Background(), p, source.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			got := map[string]bool{}
			for _, n := range walkAll(t, tg.FS) {
				got[n] = true
			}
			var missing []string
			for _, n := range want {
				// mkfs.xfs 6.1 -p drops this name (xfs_db shows it absent from that image).
				if img == "disk-xfs-proto.raw" && n == "var/lib/ucf/cache/:etc:ssh:sshd_config" {
					continue
				}
				if !got[n] {
					missing = append(missing, n)
				}
				delete(got, n)
			}
			var extra []string
			for n := range got {
				extra = append(extra, n)
			}
			sort.Strings(extra)
			t.Logf("%s (%s, %s): %d paths, %d missing, extra %v", img, tg.Info.Partition, tg.Info.Filesystem, len(want), len(missing), extra)
			if len(missing) > 0 {
				t.Errorf("missing %d paths, first %q", len(missing), missing[:min(10, len(missing))])
			}
		})
	}
}

// TestCorpusContent compares every entry of the corpus root with the images made from it: mode,
// size, link target and the SHA-256 of every regular file.
func TestCorpusContent(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rootDir := filepath.Join(benchTargets, "rootfs-bookworm")
	if _, err := os.Stat(rootDir); err != nil {
		t.Skip("corpus root not built")
	}
	sum := func(r io.Reader) string {
		h := sha256.New()
		io.Copy(h, r)
		return string(h.Sum(nil))
	}
	for _, img := range []string{"disk-ext4.raw", "disk-xfs.raw"} {
		t.Run(img, func(t *testing.T) {
			tg, err := Open(context.Background(), benchImage(t, img), source.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			fsys := tg.FS.(fs.ReadLinkFS)
			files, diffs := 0, 0
			differ := func(format string, args ...any) {
				if diffs++; diffs <= 10 {
					t.Errorf(format, args...)
				}
			}
			err = filepath.WalkDir(rootDir, func(p string, _ fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(rootDir, p)
				rel = filepath.ToSlash(rel)
				want, err := os.Lstat(p)
				if err != nil || rel == "." {
					return err
				}
				got, err := fsys.Lstat(rel)
				if err != nil {
					differ("%s: %v", rel, err)
					return nil
				}
				if got.Mode() != want.Mode() || (want.Mode().IsRegular() && got.Size() != want.Size()) {
					differ("%s: mode %v size %d, want %v %d", rel, got.Mode(), got.Size(), want.Mode(), want.Size())
				}
				switch {
				case want.Mode()&fs.ModeSymlink != 0:
					w, _ := os.Readlink(p)
					if g, err := fsys.ReadLink(rel); g != w || err != nil {
						differ("%s: link %q, %v; want %q", rel, g, err, w)
					}
				case want.Mode().IsRegular():
					files++
					wf, err := os.Open(p)
					if err != nil {
						return err
					}
					w := sum(wf)
					wf.Close()
					gf, err := tg.FS.Open(rel)
					if err != nil {
						differ("%s: %v", rel, err)
						return nil
					}
					if sum(gf) != w {
						differ("%s: content differs", rel)
					}
					gf.Close()
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d regular files compared, %d differences", img, files, diffs)
		})
	}
}
