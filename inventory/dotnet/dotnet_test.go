package dotnet

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

func describe(pkgs []model.Package) []string {
	var out []string
	for _, p := range pkgs {
		s := p.Name + "@" + p.Version + " " + p.PURL
		if p.Ecosystem != model.EcoNuGet {
			s += " WRONG ECOSYSTEM"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func read(t *testing.T, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDepsJSON(t *testing.T) {
	pkgs, err := ParseDepsJSON(read(t, "testdata/MyApp.deps.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Microsoft.NETCore.App.Runtime.linux-x64@6.0.0 pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@6.0.0",
		"Newtonsoft.Json@12.0.1 pkg:nuget/Newtonsoft.Json@12.0.1",
		"System.Text.Encodings.Web@4.5.0 pkg:nuget/System.Text.Encodings.Web@4.5.0",
	}
	if got := describe(pkgs); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, bad := range []string{"", "{}", `{"libraries": []}`, "[]"} {
		if _, err := ParseDepsJSON([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParsePackagesLock(t *testing.T) {
	pkgs, err := ParsePackagesLock(read(t, "testdata/packages.lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Microsoft.NETCore.App.Runtime.linux-x64@6.0.0 pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@6.0.0",
		"Newtonsoft.Json@11.0.2 pkg:nuget/Newtonsoft.Json@11.0.2",
		"Newtonsoft.Json@12.0.1 pkg:nuget/Newtonsoft.Json@12.0.1",
		"System.Text.Encodings.Web@4.5.0 pkg:nuget/System.Text.Encodings.Web@4.5.0",
	}
	if got := describe(pkgs); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, bad := range []string{"", "{}", `{"dependencies": {"net6.0": []}}`} {
		if _, err := ParsePackagesLock([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestEngine(t *testing.T) {
	m := fstest.MapFS{
		"app/MyApp.deps.json":          {Data: read(t, "testdata/MyApp.deps.json")},
		"app/MyApp.runtimeconfig.json": {Data: []byte(`{"runtimeOptions":{}}`)},
		"src/MyApp/packages.lock.json": {Data: read(t, "testdata/packages.lock.json")},
		"src/Broken/Broken.deps.json":  {Data: []byte(`{"libraries":`)},
	}
	reg := inventory.NewRegistry(NewDepsJSON(), NewPackagesLock())
	inv, err := inventory.New(nil, reg, inventory.Config{Workers: 1}).Run(context.Background(), m, model.SourceInfo{Kind: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(inv.Packages); n != 7 {
		t.Errorf("%d packages", n)
	}
	deps := inv.Extractors[0]
	if deps.Files != 2 || deps.Status != model.StatusPartial || !strings.Contains(deps.Errors[0].Error, "/src/Broken/Broken.deps.json: not a deps.json") {
		t.Errorf("deps status %+v", deps)
	}
}

func FuzzParseDepsJSON(f *testing.F) {
	b, _ := os.ReadFile("testdata/MyApp.deps.json")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseDepsJSON(b) })
}

func FuzzParsePackagesLock(f *testing.F) {
	b, _ := os.ReadFile("testdata/packages.lock.json")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParsePackagesLock(b) })
}
