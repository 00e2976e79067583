package image

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/source"
)

// TestDistributionRegistry pulls from a real CNCF distribution registry (Debian's docker-registry),
// started by the test on a free port with its own storage. Skipped where the binary is absent,
// required where VIGIL_REQUIRE_REGISTRY=1.
func TestDistributionRegistry(t *testing.T) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_REGISTRY") == "1" {
			t.Fatal("docker-registry not installed")
		}
		t.Skip("docker-registry not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)), 0o600)
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatalf("registry did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	idxRef, _, digests := pushIndex(t, addr)
	ts, err := Registry{}.Open(context.Background(), idxRef, source.Options{Platform: "all", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 {
		t.Fatalf("%d targets", len(ts))
	}
	for _, tg := range ts {
		if tg.Info.Digest != digests[tg.Info.Platform] {
			t.Errorf("%s: digest %s", tg.Info.Platform, tg.Info.Digest)
		}
		if _, err := fs.Stat(tg.FS, "usr/lib/python3/dist-packages/yaml"); err == nil {
			t.Errorf("%s: whiteout not applied", tg.Info.Platform)
		}
		tg.Close()
	}
}
