package golang

import (
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

func TestStdlibVersion(t *testing.T) {
	for in, want := range map[string]string{
		"go1.20.14":                "1.20.14",
		"go1.26.8":                 "1.26.8",
		"go1.21":                   "1.21.0",
		"go1.22rc1":                "1.22.0-rc.1",
		"go1.19beta2":              "1.19.0-beta.2",
		"go1.22.1 X:boringcrypto":  "1.22.1",
		"go1.21.0-bigcorp":         "1.21.0",
		"devel go1.23-ab12cd34 Tu": "",
		"":                         "",
		"go1.x":                    "",
		"go1.20rcX":                "",
	} {
		if got := StdlibVersion(in); got != want {
			t.Errorf("StdlibVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPackagesReplacements(t *testing.T) {
	bi := &buildinfo.BuildInfo{
		GoVersion: "go1.20.14",
		Main:      debug.Module{Path: "bench.local/gobinary", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "github.com/gin-gonic/gin", Version: "v1.6.0", Sum: "h1:Lb3veSYoGaNck69fV2+Vf2juLSsHpMTf3Vk5+X+EDJg="},
			{Path: "github.com/dgrijalva/jwt-go", Version: "v3.2.0+incompatible",
				Replace: &debug.Module{Path: "github.com/golang-jwt/jwt", Version: "v3.2.1+incompatible"}},
			{Path: "golang.org/x/net", Version: "v0.0.0-20201021035429-f5854403a974",
				Replace: &debug.Module{Path: "../net"}},
			nil,
		},
	}
	got := Packages(bi)
	want := []model.Package{
		{Name: "stdlib", Version: "1.20.14", PURL: "pkg:golang/stdlib@v1.20.14"},
		{Name: "bench.local/gobinary", Version: Devel, PURL: "pkg:golang/bench.local/gobinary"},
		{Name: "github.com/gin-gonic/gin", Version: "v1.6.0", PURL: "pkg:golang/github.com/gin-gonic/gin@v1.6.0"},
		{Name: "github.com/golang-jwt/jwt", Version: "v3.2.1+incompatible", PURL: "pkg:golang/github.com/golang-jwt/jwt@v3.2.1%2Bincompatible"},
		{Name: "golang.org/x/net", Version: Devel, PURL: "pkg:golang/golang.org/x/net"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d packages, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		w := want[i]
		w.Ecosystem = model.EcoGo
		if got[i].Name != w.Name || got[i].Version != w.Version || got[i].PURL != w.PURL || got[i].Ecosystem != w.Ecosystem {
			t.Errorf("package %d = %+v, want %+v", i, got[i], w)
		}
	}
}

type fakeInfo struct {
	name string
	size int64
	mode os.FileMode
}

func (f fakeInfo) Name() string       { return f.name }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() os.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return nil }

func TestRequired(t *testing.T) {
	b := NewBinary()
	for _, tc := range []struct {
		path string
		info fakeInfo
		want bool
	}{
		{"usr/local/bin/app", fakeInfo{"app", 11 << 20, 0o755}, true},
		{"app/server.exe", fakeInfo{"server.exe", 5 << 20, 0o644}, true},
		{"var/task/bootstrap", fakeInfo{"bootstrap", 5 << 20, 0o644}, true},
		{"usr/bin/tiny", fakeInfo{"tiny", 20 << 10, 0o755}, false},
		{"data/blob", fakeInfo{"blob", 5 << 20, 0o644}, false},
		{"usr/bin/link", fakeInfo{"link", 5 << 20, os.ModeSymlink | 0o777}, false},
	} {
		if got := b.Required(tc.path, tc.info); got != tc.want {
			t.Errorf("Required(%s) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestExtractNotGo(t *testing.T) {
	fsys := fstest.MapFS{
		"usr/bin/script":  {Data: []byte("#!/bin/sh\necho hi\n" + strings.Repeat("#", 300<<10)), Mode: 0o755},
		"usr/bin/fakeelf": {Data: append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 300<<10)...), Mode: 0o755},
	}
	for name := range fsys {
		fi, _ := fsys.Stat(name)
		pkgs, err := NewBinary().Extract(context.Background(), &inventory.Input{Path: name, Info: fi, FS: fsys})
		if err != nil || len(pkgs) != 0 {
			t.Errorf("%s: got %v, %v; want nothing", name, pkgs, err)
		}
	}
}

// TestExtractBuiltBinary builds a real program with the local toolchain: a dependency taken from the
// module cache, replaced by another released version, and a dependency replaced by a local directory.
func TestExtractBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain")
	}
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", `module example.com/vigiltest

go 1.21

require (
	golang.org/x/text v0.43.0
	example.com/local v1.2.3
)

replace golang.org/x/text => golang.org/x/text v0.41.0

replace example.com/local => ./local
`)
	write("main.go", `package main

import (
	"fmt"

	"example.com/local"
	"golang.org/x/text/language"
)

func main() { fmt.Println(language.English, local.Name) }
`)
	write("local/go.mod", "module example.com/local\n\ngo 1.21\n")
	write("local/local.go", "package local\n\nconst Name = \"local\"\n")
	bin := filepath.Join(dir, "bin", "app")
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build the test program offline (module cache lacks golang.org/x/text v0.41.0?): %v\n%s", err, out)
	}
	fsys := os.DirFS(dir)
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBinary()
	if !b.Required("bin/app", fi) {
		t.Fatal("built binary not required")
	}
	pkgs, err := b.Extract(context.Background(), &inventory.Input{Path: "bin/app", Info: fi, FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range pkgs {
		got[p.Name] = p.Version
	}
	want := map[string]string{
		"stdlib":                StdlibVersion(strings.TrimSpace(goVersion(t, goTool))),
		"example.com/vigiltest": Devel,
		"golang.org/x/text":     "v0.41.0",
		"example.com/local":     Devel,
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for n, v := range want {
		if got[n] != v {
			t.Errorf("%s = %q, want %q (all: %v)", n, got[n], v, got)
		}
	}
}

func goVersion(t *testing.T, goTool string) string {
	out, err := exec.Command(goTool, "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
