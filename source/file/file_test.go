package file

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/source"
)

func TestOpenServesOneFileWithRandomAccess(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "package-lock.json")
	if err := os.WriteFile(p, []byte(`{"lockfileVersion": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if !(Opener{}).Detect(p) || (Opener{}).Detect(dir) {
		t.Fatal("Detect must accept regular files only")
	}
	ts, err := Opener{}.Open(context.Background(), p, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ts[0].Close()
	b, err := fs.ReadFile(ts[0].FS, "package-lock.json")
	if err != nil || string(b) != `{"lockfileVersion": 3}` {
		t.Fatalf("read %q, %v", b, err)
	}
	f, _ := ts[0].FS.Open("package-lock.json")
	buf := make([]byte, 6)
	if _, err := f.(io.ReaderAt).ReadAt(buf, 3); err != nil || string(buf) != "ockfil" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	if _, err := (Opener{}).Open(context.Background(), dir, source.Options{}); err == nil {
		t.Fatal("a directory must be refused")
	}
}
