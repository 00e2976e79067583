package dpkg

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/osrelease"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/dir"
	"github.com/vigil-sec/vigil/source/fsx"
)

var bookworm = &model.OS{Family: "debian", VersionID: "12", Codename: "bookworm", Ecosystem: "Debian:12"}

func extractFile(t *testing.T, fsys fs.FS, name string, o *model.OS) []model.Package {
	t.Helper()
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Extractor{}.Extract(context.Background(), &inventory.Input{Path: name, Info: fi, FS: fsys, OS: o})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestExtractStatus(t *testing.T) {
	fsys := os.DirFS("testdata")
	pkgs := extractFile(t, fsys, "status", bookworm)
	type row struct{ name, version, arch, src, srcVer, purl string }
	want := []row{
		{"libc6", "2.36-9+deb12u4", "amd64", "glibc", "2.36-9+deb12u4", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"},
		{"libc6", "2.36-9+deb12u4", "i386", "glibc", "2.36-9+deb12u4", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=i386&distro=debian-12"},
		{"bsdutils", "1:2.38.1-5+b1", "amd64", "util-linux", "2.38.1-5", "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12"},
		{"libssl3", "3.0.11-1~deb12u2", "amd64", "openssl", "3.0.11-1~deb12u2", "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"},
		{"curl", "7.88.1-10+deb12u5", "amd64", "curl", "7.88.1-10+deb12u5", "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12"},
		{"libcurl4", "7.88.1-10+deb12u5", "amd64", "curl", "7.88.1-10+deb12u5", "pkg:deb/debian/libcurl4@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12"},
		{"tzdata", "2024a-0+deb12u1", "all", "tzdata", "2024a-0+deb12u1", "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12"},
	}
	if len(pkgs) != len(want) {
		t.Fatalf("got %d packages, want %d: %+v", len(pkgs), len(want), pkgs)
	}
	for i, w := range want {
		p := pkgs[i]
		got := row{p.Name, p.Version, p.Arch, p.SourceName, p.SourceVersion, p.PURL}
		if got != w {
			t.Errorf("package %d:\n got %+v\nwant %+v", i, got, w)
		}
		if p.Ecosystem != "Debian:12" {
			t.Errorf("%s: ecosystem %q", p.Name, p.Ecosystem)
		}
	}
}

func TestRequired(t *testing.T) {
	for p, want := range map[string]bool{
		"var/lib/dpkg/status": true, "var/lib/dpkg/status.d/libssl3": true, "var/lib/dpkg/status.d/libssl3.md5sums": false,
		"var/lib/dpkg/status-old": false, "var/lib/dpkg/status.d/.hidden": false, "var/lib/dpkg/status.d/a/b": false,
		"usr/var/lib/dpkg/status": false,
	} {
		if got := (Extractor{}).Required(p, nil); got != want {
			t.Errorf("Required(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestPURLAndEcosystemFallbacks(t *testing.T) {
	ubuntu := &model.OS{Family: "ubuntu", VersionID: "22.04", Ecosystem: "Ubuntu:22.04:LTS"}
	tests := []struct {
		os        *model.OS
		purl, eco string
	}{
		{ubuntu, "pkg:deb/ubuntu/openssl@3.0.2-0ubuntu1.15?arch=amd64&distro=ubuntu-22.04", "Ubuntu:22.04:LTS"},
		{nil, "pkg:deb/debian/openssl@3.0.2-0ubuntu1.15?arch=amd64", "Debian"},
		{&model.OS{Family: "ubuntu"}, "pkg:deb/ubuntu/openssl@3.0.2-0ubuntu1.15?arch=amd64", "Ubuntu"},
		{&model.OS{Family: "debian", Codename: "trixie"}, "pkg:deb/debian/openssl@3.0.2-0ubuntu1.15?arch=amd64&distro=debian-trixie", "Debian"},
	}
	for _, tc := range tests {
		if got := PURL("openssl", "3.0.2-0ubuntu1.15", "amd64", tc.os); got != tc.purl {
			t.Errorf("PURL = %s, want %s", got, tc.purl)
		}
		if got := Ecosystem(tc.os); got != tc.eco {
			t.Errorf("Ecosystem = %s, want %s", got, tc.eco)
		}
	}
}

func TestSplitSource(t *testing.T) {
	for _, tc := range []struct{ in, n, v string }{
		{"", "bin", "1.0"}, {"glibc", "glibc", "1.0"}, {"util-linux (2.38.1-5)", "util-linux", "2.38.1-5"},
		{"x (", "x", "1.0"}, {"x ()", "x", "1.0"},
	} {
		n, v := SplitSource(tc.in, "bin", "1.0")
		if n != tc.n || v != tc.v {
			t.Errorf("SplitSource(%q) = %q %q, want %q %q", tc.in, n, v, tc.n, tc.v)
		}
	}
}

func TestParseErrors(t *testing.T) {
	err := ParseStatus(context.Background(), strings.NewReader("Package: a\n"+strings.Repeat("x", MaxLineLength+10)+"\n"), func(Stanza) {})
	if !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	err = ParseStatus(context.Background(), strings.NewReader("Package: a\nno colon here\n"), func(Stanza) {})
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
	// A file without a final newline and with CRLF endings still parses.
	var got []Stanza
	err = ParseStatus(context.Background(), strings.NewReader("Package: a\r\nVersion: 1\r\n\r\nPackage: b\nVersion: 2"), func(s Stanza) { got = append(got, s) })
	if err != nil || len(got) != 2 || got[1].Version != "2" || got[0].Version != "1" {
		t.Errorf("got %+v, %v", got, err)
	}
}

// TestEngineDistroless runs the OS detector and the extractor through the engine over an in-memory
// distroless tree, as an image source would hand it over.
func TestEngineDistroless(t *testing.T) {
	mt := fsx.NewMemTree()
	for _, name := range []string{"base-files", "libssl3", "libssl3.md5sums"} {
		b, err := os.ReadFile(filepath.Join("testdata/status.d", name))
		if err != nil {
			t.Fatal(err)
		}
		mt.Put("var/lib/dpkg/status.d/"+name, &fsx.MemNode{Mode: 0o644, Size: int64(len(b)), Layer: "sha256:l1",
			Content: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(b))), nil }})
	}
	eng := inventory.New(osrelease.Detector{}, inventory.NewRegistry(Extractor{}), inventory.Config{Workers: 1})
	inv, err := eng.Run(context.Background(), fsx.New(mt), model.SourceInfo{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.OS == nil || !inv.OS.Distroless || inv.OS.Ecosystem != "Debian:12" {
		t.Fatalf("OS = %+v", inv.OS)
	}
	if len(inv.Packages) != 2 {
		t.Fatalf("got %d packages: %+v", len(inv.Packages), inv.Packages)
	}
	p := inv.Packages[1]
	if p.Name != "libssl3" || p.Ecosystem != "Debian:12" || p.SourceName != "openssl" || p.LayerDigest != "sha256:l1" ||
		p.Locations[0] != "/var/lib/dpkg/status.d/libssl3" || p.Extractor != "dpkg" ||
		p.PURL != "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12" {
		t.Errorf("libssl3 = %+v", p)
	}
}

const benchRoot = "/root/vigil-bench/targets/rootfs-bookworm"
const benchTruth = "/root/vigil-bench/targets/ground-truth/rootfs-bookworm.dpkg.tsv"

// TestBenchRootfsBookworm checks the inventory of the benchmark's Debian 12 root against dpkg-query's
// own listing, when the corpus has been built.
func TestBenchRootfsBookworm(t *testing.T) {
	f, err := os.Open(benchTruth)
	if err != nil {
		t.Skip("benchmark corpus not built:", err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 5 || c[0] == "Package" {
			continue
		}
		want = append(want, strings.Join(c[:5], "\t"))
	}
	tgt, err := dir.Open(benchRoot)
	if err != nil {
		t.Skip(err)
	}
	defer tgt.Close()
	eng := inventory.New(osrelease.Detector{}, inventory.NewRegistry(Extractor{}), inventory.Config{})
	inv, err := eng.Run(context.Background(), tgt.FS, tgt.Info)
	if err != nil {
		t.Fatal(err)
	}
	if inv.OS == nil || inv.OS.Ecosystem != "Debian:12" {
		t.Errorf("OS = %+v", inv.OS)
	}
	var got []string
	for _, p := range inv.Packages {
		got = append(got, strings.Join([]string{p.Name, p.Version, p.Arch, p.SourceName, p.SourceVersion}, "\t"))
		if p.Ecosystem != "Debian:12" || !strings.HasPrefix(p.PURL, "pkg:deb/debian/") || !strings.HasSuffix(p.PURL, "distro=debian-12") {
			t.Errorf("%s: ecosystem %q purl %q", p.Name, p.Ecosystem, p.PURL)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("inventory differs from dpkg-query: got %d packages, want %d", len(got), len(want))
		gs := map[string]bool{}
		for _, g := range got {
			gs[g] = true
		}
		for _, w := range want {
			if !gs[w] {
				t.Errorf("missing %s", w)
			}
		}
	}
	t.Logf("%d packages match the ground truth", len(got))
}

func FuzzParseStatus(f *testing.F) {
	for _, name := range []string{"testdata/status", "testdata/status.d/base-files"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Package: a\nStatus: install ok\nSource: (\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ParseStatus(context.Background(), strings.NewReader(string(b)), func(s Stanza) {
			if p, ok := toPackage(s, bookworm); ok && p.Name == "" {
				t.Fatal("package without a name")
			}
		})
	})
}
