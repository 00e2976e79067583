package golang

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vigil-sec/vigil/inventory"
)

func TestGoMod(t *testing.T) {
	data, err := os.ReadFile("testdata/go.mod.fixture")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"src/service/go.mod": {Data: data}}
	fi, _ := fsys.Stat("src/service/go.mod")
	x := NewGoMod()
	if !x.Required("src/service/go.mod", fi) {
		t.Fatal("go.mod not required")
	}
	pkgs, err := x.Extract(context.Background(), &inventory.Input{Path: "src/service/go.mod", Info: fi, FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"@"+p.Version+" "+p.PURL)
	}
	sort.Strings(got)
	want := []string{
		"github.com/gin-gonic/gin@v1.6.0 pkg:golang/github.com/gin-gonic/gin@v1.6.0",
		"github.com/golang-jwt/jwt@v3.2.1+incompatible pkg:golang/github.com/golang-jwt/jwt@v3.2.1%2Bincompatible",
		"github.com/gorilla/websocket@(devel) pkg:golang/github.com/gorilla/websocket",
		"golang.org/x/net@v0.0.0-20201021035429-f5854403a974 pkg:golang/golang.org/x/net@v0.0.0-20201021035429-f5854403a974",
		"golang.org/x/text@v0.3.8 pkg:golang/golang.org/x/text@v0.3.8",
		"gopkg.in/yaml.v2@v2.2.8 pkg:golang/gopkg.in/yaml.v2@v2.2.8",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s", strings.Join(got, "\n  "))
	}
	for _, p := range []string{"root/go/pkg/mod/github.com/gin-gonic/gin@v1.6.0/go.mod", "src/service/vendor/x/go.mod", "src/x/testdata/go.mod"} {
		if x.Required(p, fi) {
			t.Errorf("Required(%s)", p)
		}
	}
	for _, bad := range []string{"require (\n\tgithub.com/x/y v1\n", "module a b\n", "require x\n", "replace a => \n"} {
		if _, err := ParseGoMod([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestGoModBench reads the corpus's go.mod (go 1.16: direct requirements only).
func TestGoModBench(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(benchTargets, "ground-truth", "go-binary.go.mod.txt"))
	if err != nil {
		t.Skip("benchmark corpus not present")
	}
	mf, err := ParseGoMod(data)
	if err != nil {
		t.Fatal(err)
	}
	if mf.Module != "bench.local/gobinary" || mf.Go != "1.16" || len(mf.Packages()) != 6 {
		t.Errorf("got module %q go %q and %d packages, want bench.local/gobinary, 1.16, 6", mf.Module, mf.Go, len(mf.Packages()))
	}
}

func FuzzGoMod(f *testing.F) {
	data, err := os.ReadFile("testdata/go.mod.fixture")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		if mf, err := ParseGoMod(data); err == nil {
			_ = mf.Packages()
		}
	})
}
