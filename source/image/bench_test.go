package image

import (
	"context"
	"io/fs"
	"os"
	"testing"

	"github.com/vigil-sec/vigil/source"
)

// The corpus built by ../shared/bench/20-oci-bookworm.sh: one gzip layer of a Debian 12 root.
const benchTargets = "/root/vigil-bench/targets/"

// handful keeps what the OS and dpkg extractors read.
func handful(name string, _ fs.FileInfo) bool {
	switch name {
	case "etc/os-release", "usr/lib/os-release", "var/lib/dpkg/status", "etc/debian_version", "etc/passwd":
		return true
	}
	return false
}

func benchOpen(b *testing.B, o source.Opener, ref string) {
	if _, err := os.Stat(ref); err != nil {
		b.Skipf("corpus not built: %v", err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ts, err := o.Open(context.Background(), ref, source.Options{Want: handful, TempDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fs.ReadFile(ts[0].FS, "var/lib/dpkg/status"); err != nil {
			b.Fatal(err)
		}
		for _, t := range ts {
			t.Close()
		}
	}
}

// Compare with: time gzip -dc oci-bookworm-layout/blobs/sha256/a08f… >/dev/null (same run).
func BenchmarkOCIArchiveBookworm(b *testing.B) {
	benchOpen(b, OCIArchive{}, benchTargets+"oci-bookworm.tar")
}

func BenchmarkDockerArchiveBookworm(b *testing.B) {
	benchOpen(b, DockerArchive{}, benchTargets+"docker-bookworm.tar")
}

func BenchmarkOCIDirBookworm(b *testing.B) {
	benchOpen(b, OCIDir{}, benchTargets+"oci-bookworm-layout")
}
