package golang

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/vigil-sec/vigil/inventory"
)

// FuzzExtract feeds arbitrary executables to the extractor: it must never panic.
func FuzzExtract(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Add([]byte("MZ\x90\x00"))
	f.Add([]byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1})
	f.Add([]byte("\xff Go buildinf:\x08\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"bin/x": {Data: data, Mode: 0o755}}
		fi, _ := fsys.Stat("bin/x")
		_, _ = NewBinary().Extract(context.Background(), &inventory.Input{Path: "bin/x", Info: fi, FS: fsys})
		_ = StdlibVersion(string(data))
	})
}
