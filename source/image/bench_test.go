package image

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
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

// BenchmarkGzipDC is the baseline of the performance target: `gzip -dc` of the same layer blob to
// /dev/null. Compare its ns/op with BenchmarkOCIArchiveBookworm's from the same run.
func BenchmarkGzipDC(b *testing.B) {
	blob := benchTargets + "oci-bookworm-layout/blobs/sha256/a08f937f4f857e78629bc41b35d361fb3d425b0c6aa3b0c797c75a7aacb3bec1"
	gz, err := exec.LookPath("gzip")
	if err != nil {
		b.Skip("no gzip")
	}
	if _, err := os.Stat(blob); err != nil {
		b.Skipf("corpus not built: %v", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(gz, "-dc", blob)
		cmd.Stdout = null // gzip writes straight to /dev/null, as in the shell
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
