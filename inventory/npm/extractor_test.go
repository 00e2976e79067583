package npm

import (
	"context"
	"io/fs"
	"os"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

func run(t *testing.T, fsys fs.FS) *model.Inventory {
	t.Helper()
	eng := inventory.New(nil, inventory.NewRegistry(New()), inventory.Config{Workers: 2})
	inv, err := eng.Run(context.Background(), fsys, model.SourceInfo{Kind: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range inv.Extractors {
		if len(st.Errors) > 0 {
			t.Fatalf("extractor errors: %+v", st.Errors)
		}
	}
	return inv
}

// summary renders packages as "name@version[ dev] loc1,loc2".
func summary(pkgs []model.Package) []string {
	var out []string
	for _, p := range pkgs {
		s := p.Name + "@" + p.Version
		if p.Dev {
			s += " dev"
		}
		out = append(out, s+" "+strings.Join(p.Locations, ","))
	}
	sort.Strings(out)
	return out
}

const mergeLock = `{
  "name": "api",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "api", "version": "1.0.0", "dependencies": {"lodash": "4.17.15"}, "devDependencies": {"mocha": "8.0.1"}},
    "node_modules/fsevents": {"version": "2.1.3", "dev": true, "optional": true, "os": ["darwin"]},
    "node_modules/lodash": {"version": "4.17.15", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.15.tgz"},
    "node_modules/minimist": {"version": "1.2.0", "dev": true},
    "node_modules/mocha": {"version": "8.0.1", "dev": true},
    "node_modules/mocha/node_modules/debug": {"version": "3.2.6", "dev": true}
  }
}`

func manifest(name, version string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(`{"name": "` + name + `", "version": "` + version + `", "main": "index.js"}`)}
}

func TestLockfileAndNodeModules(t *testing.T) {
	lockOnly := fstest.MapFS{
		"srv/api/package.json":      {Data: []byte(`{"name": "api", "version": "1.0.0"}`)},
		"srv/api/package-lock.json": {Data: []byte(mergeLock)},
	}
	want := []string{
		"api@1.0.0 /srv/api/package-lock.json",
		"debug@3.2.6 dev /srv/api/package-lock.json",
		"fsevents@2.1.3 dev /srv/api/package-lock.json",
		"lodash@4.17.15 /srv/api/package-lock.json",
		"minimist@1.2.0 dev /srv/api/package-lock.json",
		"mocha@8.0.1 dev /srv/api/package-lock.json",
	}
	if got := summary(run(t, lockOnly).Packages); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lockfile only:\n  %s", strings.Join(got, "\n  "))
	}

	installed := fstest.MapFS{
		"srv/api/package.json":                                       {Data: []byte(`{"name": "api", "version": "1.0.0"}`)},
		"srv/api/package-lock.json":                                  {Data: []byte(mergeLock)},
		"srv/api/node_modules/.package-lock.json":                    {Data: []byte(mergeLock)},
		"srv/api/node_modules/lodash/package.json":                   manifest("lodash", "4.17.15"),
		"srv/api/node_modules/lodash/fp/package.json":                {Data: []byte(`{"main": "../fp.js"}`)},
		"srv/api/node_modules/minimist/package.json":                 manifest("minimist", "1.2.0"),
		"srv/api/node_modules/mocha/package.json":                    manifest("mocha", "8.0.1"),
		"srv/api/node_modules/mocha/node_modules/debug/package.json": manifest("debug", "3.2.6"),
		"srv/api/node_modules/left-pad/package.json":                 manifest("left-pad", "1.3.0"),
	}
	want = []string{
		"api@1.0.0 /srv/api/package-lock.json",
		"debug@3.2.6 dev /srv/api/node_modules/mocha/node_modules/debug/package.json,/srv/api/package-lock.json",
		"left-pad@1.3.0 /srv/api/node_modules/left-pad/package.json",
		"lodash@4.17.15 /srv/api/node_modules/lodash/package.json,/srv/api/package-lock.json",
		"minimist@1.2.0 dev /srv/api/node_modules/minimist/package.json,/srv/api/package-lock.json",
		"mocha@8.0.1 dev /srv/api/node_modules/mocha/package.json,/srv/api/package-lock.json",
	}
	if got := summary(run(t, installed).Packages); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lockfile and node_modules:\n  %s", strings.Join(got, "\n  "))
	}
}

func TestYarnAndPnpmInstalled(t *testing.T) {
	yarn, _ := os.ReadFile("testdata/yarn-classic.lock")
	pnpm, _ := os.ReadFile("testdata/pnpm-v9.yaml")
	fsys := fstest.MapFS{
		"web/yarn.lock":                                                          {Data: yarn},
		"web/package-lock.json":                                                  {Data: []byte(`{"lockfileVersion": 3, "packages": {"node_modules/lodash": {"version": "4.17.4"}}}`)},
		"web/node_modules/lodash/package.json":                                   manifest("lodash", "4.17.15"),
		"web/node_modules/minimist/package.json":                                 manifest("minimist", "1.2.0"),
		"web/node_modules/mkdirp/node_modules/minimist/package.json":             manifest("minimist", "0.0.8"),
		"pn/pnpm-lock.yaml":                                                      {Data: pnpm},
		"pn/node_modules/.pnpm/mocha@8.0.1/node_modules/mocha/package.json":      manifest("mocha", "8.0.1"),
		"pn/node_modules/.pnpm/debug@3.2.6/node_modules/debug/package.json":      manifest("debug", "3.2.6"),
		"pn/node_modules/.pnpm/express@4.17.1/node_modules/express/package.json": manifest("express", "4.17.1"),
		// pnpm's hoisting directory holds links to the store, never packages of its own.
		"pn/node_modules/.pnpm/node_modules/ms/package.json": manifest("ms", "2.1.1"),
		"pn/node_modules/lodash/package.json":                manifest("lodash", "4.17.15"),
	}
	want := []string{
		"debug@3.2.6 dev /pn/node_modules/.pnpm/debug@3.2.6/node_modules/debug/package.json,/pn/pnpm-lock.yaml",
		"express@4.17.1 /pn/node_modules/.pnpm/express@4.17.1/node_modules/express/package.json,/pn/pnpm-lock.yaml",
		"lodash@4.17.15 /pn/node_modules/lodash/package.json",
		// package-lock.json outranks yarn.lock; its entry at node_modules/lodash is stale (4.17.4):
		// what is installed there is reported.
		"lodash@4.17.15 /web/node_modules/lodash/package.json,/web/package-lock.json",
		"minimist@0.0.8 /web/node_modules/mkdirp/node_modules/minimist/package.json",
		"minimist@1.2.0 /web/node_modules/minimist/package.json",
		"mocha@8.0.1 dev /pn/node_modules/.pnpm/mocha@8.0.1/node_modules/mocha/package.json,/pn/pnpm-lock.yaml",
	}
	if got := summary(run(t, fsys).Packages); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n  %s", strings.Join(got, "\n  "))
	}
}

func TestExtractErrorNamesFile(t *testing.T) {
	fsys := fstest.MapFS{"app/package-lock.json": {Data: []byte("{not json")}}
	fi, _ := fsys.Stat("app/package-lock.json")
	_, err := New().Extract(context.Background(), &inventory.Input{Path: "app/package-lock.json", Info: fi, FS: fsys})
	if err == nil || !strings.Contains(err.Error(), "/app/package-lock.json") {
		t.Errorf("error %v does not name the file", err)
	}
	big := fstest.MapFS{"app/node_modules/x/package.json": {Data: []byte(`{"name": "x", "version": "1.0.0", "pad": "` + strings.Repeat("a", 2048) + `"}`)}}
	fi, _ = big.Stat("app/node_modules/x/package.json")
	_, err = New().Extract(context.Background(), &inventory.Input{Path: "app/node_modules/x/package.json", Info: fi, FS: big, Config: &inventory.Config{MaxFileSize: 1024}})
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("oversized manifest: %v", err)
	}
}
