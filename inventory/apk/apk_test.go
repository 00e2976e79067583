package apk

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/osrelease"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

func memFile(b []byte) *fsx.MemNode {
	return &fsx.MemNode{Mode: 0o644, Size: int64(len(b)), Layer: "sha256:base",
		Content: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(b))), nil }}
}

// TestEngineAlpine runs the OS detector and the extractor through the engine over an Alpine 3.20 tree.
func TestEngineAlpine(t *testing.T) {
	db, err := os.ReadFile("testdata/installed")
	if err != nil {
		t.Fatal(err)
	}
	mt := fsx.NewMemTree()
	mt.Put("lib/apk/db/installed", memFile(db))
	mt.Put("etc/alpine-release", memFile([]byte("3.20.3\n")))
	mt.Put("usr/lib/os-release", memFile([]byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n")))
	mt.Put("etc/os-release", &fsx.MemNode{Mode: 0o777 | os.ModeSymlink, Link: "../usr/lib/os-release"})
	eng := inventory.New(osrelease.Detector{}, inventory.NewRegistry(Extractor{}), inventory.Config{Workers: 1})
	inv, err := eng.Run(context.Background(), fsx.New(mt), model.SourceInfo{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.OS == nil || inv.OS.Ecosystem != "Alpine:v3.20" {
		t.Fatalf("OS = %+v", inv.OS)
	}
	type row struct{ name, version, src, purl, license string }
	want := []row{
		{"busybox", "1.36.1-r29", "busybox", "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.20", "GPL-2.0-only"},
		{"ca-certificates-bundle", "20240705-r0", "ca-certificates", "pkg:apk/alpine/ca-certificates-bundle@20240705-r0?arch=x86_64&distro=alpine-3.20", "MPL-2.0 AND MIT"},
		{"libcrypto3", "3.3.2-r0", "openssl", "pkg:apk/alpine/libcrypto3@3.3.2-r0?arch=x86_64&distro=alpine-3.20", "Apache-2.0"},
		{"musl", "1.2.5-r0", "musl", "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20", "MIT"},
		{"ssl_client", "1.36.1-r29", "busybox", "pkg:apk/alpine/ssl_client@1.36.1-r29?arch=x86_64&distro=alpine-3.20", "GPL-2.0-only"},
	}
	if len(inv.Packages) != len(want) {
		t.Fatalf("got %d packages: %+v", len(inv.Packages), inv.Packages)
	}
	for i, w := range want {
		p := inv.Packages[i]
		got := row{p.Name, p.Version, p.SourceName, p.PURL, strings.Join(p.Licenses, "|")}
		if got != w {
			t.Errorf("package %d:\n got %+v\nwant %+v", i, got, w)
		}
		if p.Ecosystem != "Alpine:v3.20" || p.SourceVersion != p.Version || p.Arch != "x86_64" ||
			p.Locations[0] != "/lib/apk/db/installed" || p.LayerDigest != "sha256:base" || p.Extractor != "apk" {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	if st := inv.Extractors[0]; st.Status != model.StatusOK || st.Files != 1 || st.Packages != 5 {
		t.Errorf("status %+v", st)
	}
}

func TestPURLOtherFamilies(t *testing.T) {
	for _, tc := range []struct {
		os   *model.OS
		purl string
		eco  string
	}{
		{&model.OS{Family: "wolfi", VersionID: "20230201", Ecosystem: "Wolfi"}, "pkg:apk/wolfi/glibc@2.40-r3?arch=x86_64&distro=wolfi-20230201", "Wolfi"},
		{nil, "pkg:apk/alpine/glibc@2.40-r3?arch=x86_64", "Alpine"},
	} {
		if got := PURL("glibc", "2.40-r3", "x86_64", tc.os); got != tc.purl {
			t.Errorf("PURL = %s, want %s", got, tc.purl)
		}
		if got := Ecosystem(tc.os); got != tc.eco {
			t.Errorf("Ecosystem = %s, want %s", got, tc.eco)
		}
	}
}

func TestParseErrors(t *testing.T) {
	err := ParseInstalled(context.Background(), strings.NewReader("P:a\nV:1\n"+strings.Repeat("x", MaxLineLength+1)), func(Entry) {})
	if !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	err = ParseInstalled(context.Background(), strings.NewReader("P:a\nnot a field\n"), func(Entry) {})
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
	var got []Entry
	err = ParseInstalled(context.Background(), strings.NewReader("\n\nP:a\r\nV:1\r\n\r\n\nP:b\nV:2"), func(e Entry) { got = append(got, e) })
	if err != nil || len(got) != 2 || got[0] != (Entry{Name: "a", Version: "1"}) || got[1].Version != "2" {
		t.Errorf("got %+v, %v", got, err)
	}
}

func TestExtractNamesFile(t *testing.T) {
	mt := fsx.NewMemTree()
	mt.Put("lib/apk/db/installed", memFile([]byte("P:a\nV:1\nbroken\n")))
	fsys := fsx.New(mt)
	fi, _ := fsys.Stat("lib/apk/db/installed")
	_, err := Extractor{}.Extract(context.Background(), &inventory.Input{Path: "lib/apk/db/installed", Info: fi, FS: fsys})
	if err == nil || !strings.Contains(err.Error(), "/lib/apk/db/installed") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func FuzzParseInstalled(f *testing.F) {
	b, err := os.ReadFile("testdata/installed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("P:\nV:\n\n:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ParseInstalled(context.Background(), strings.NewReader(string(b)), func(e Entry) {
			_ = PURL(e.Name, e.Version, e.Arch, nil)
		})
	})
}
