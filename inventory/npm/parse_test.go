package npm

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// render lists entries as "name@version[ dev][ path]" lines, sorted, for compact comparisons.
func render(es []Entry) []string {
	var out []string
	for _, e := range es {
		s := e.Name + "@" + e.Version
		if e.Dev {
			s += " dev"
		}
		if e.Path != "" {
			s += " " + e.Path
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestParsers(t *testing.T) {
	for _, tc := range []struct {
		file  string
		parse func([]byte) ([]Entry, error)
		want  []string
	}{
		{"package-lock-v1.json", ParsePackageLock, []string{
			"legacy-app@1.0.0 .",
			"lodash@4.17.15 node_modules/lodash",
			"minimist@0.0.8 dev node_modules/mkdirp/node_modules/minimist",
			"minimist@1.2.0 dev node_modules/minimist",
			"mkdirp@0.5.1 dev node_modules/mkdirp",
			"string-width@4.2.3 node_modules/string-width-cjs",
		}},
		{"package-lock-v2.json", ParsePackageLock, []string{
			"@types/node@14.14.10 packages/utils/node_modules/@types/node",
			"accepts@1.3.7 node_modules/accepts",
			"chokidar@3.3.1 node_modules/chokidar",
			"debug@2.6.9 node_modules/debug",
			"debug@3.2.6 dev node_modules/mocha/node_modules/debug",
			"express@4.17.1 node_modules/express",
			"fsevents@2.1.3 dev node_modules/fsevents",
			"mocha@8.0.1 dev node_modules/mocha",
			"string-width@4.2.3 node_modules/string-width-cjs",
			"web-app@1.0.0 .",
		}},
		{"yarn-classic.lock", ParseYarnLock, []string{
			"@babel/code-frame@7.8.3",
			"@babel/highlight@7.9.0",
			"lodash@4.17.15",
			"minimist@0.0.8",
			"minimist@1.2.0",
			"string-width@4.2.3",
		}},
		{"yarn-berry.lock", ParseYarnLock, []string{
			"@babel/code-frame@7.8.3",
			"lodash@4.17.15",
			"minimist@1.2.0",
			"resolve@1.17.0",
			"semver@1.0",
			"string-width@4.2.3",
		}},
		{"pnpm-v5.yaml", ParsePnpmLock, []string{
			"@babel/code-frame@7.8.3 dev",
			"express@4.17.1",
			"mocha@8.0.1 dev",
			"react-dom@17.0.2",
			"react@17.0.2",
		}},
		{"pnpm-v6.yaml", ParsePnpmLock, []string{
			"@babel/code-frame@7.8.3 dev",
			"express@4.17.1",
			"mocha@8.0.1 dev",
			"private-lib@2.0.0",
			"react-dom@17.0.2",
			"react@17.0.2",
		}},
		{"pnpm-v9.yaml", ParsePnpmLock, []string{
			"debug@2.6.9",
			"debug@3.2.6 dev",
			"express@4.17.1",
			"mocha@8.0.1 dev",
			"react-dom@17.0.2",
			"react@17.0.2",
			"string-width@4.2.3",
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			es, err := tc.parse(data)
			if err != nil {
				t.Fatal(err)
			}
			got := render(es)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func([]byte) ([]Entry, error)
		data  string
	}{
		{"lock not json", ParsePackageLock, "{"},
		{"lock not a lockfile", ParsePackageLock, `{"name": "x"}`},
		{"yarn header", ParseYarnLock, "lodash@^4.17.15\n  version \"4.17.15\"\n"},
		{"berry yaml", ParseYarnLock, "__metadata:\n  version: 6\n\"a@npm:1\": [\n"},
		{"pnpm yaml", ParsePnpmLock, "lockfileVersion: '9.0'\npackages: [\n"},
		{"pnpm version", ParsePnpmLock, "lockfileVersion: x\n"},
	} {
		if _, err := tc.parse([]byte(tc.data)); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestInstalledManifest(t *testing.T) {
	for p, want := range map[string]bool{
		"app/node_modules/lodash/package.json":                                            true,
		"node_modules/lodash/package.json":                                                true,
		"app/node_modules/@babel/core/package.json":                                       true,
		"app/node_modules/mocha/node_modules/debug/package.json":                          true,
		"app/node_modules/@babel/core/node_modules/semver/package.json":                   true,
		"app/node_modules/.pnpm/lodash@4.17.15/node_modules/lodash/package.json":          true,
		"app/node_modules/.pnpm/@babel+core@7.12.3/node_modules/@babel/core/package.json": true,
		"app/package.json":                                        false,
		"app/node_modules/lodash/fp/package.json":                 false,
		"app/node_modules/resolve/test/resolver/baz/package.json": false,
		"app/node_modules/@babel/package.json":                    false,
		"app/node_modules/.bin/package.json":                      false,
		"app/node_modules/package.json":                           false,
		"app/node_modules/.pnpm/package.json":                     false,
		"app/node_modules/.pnpm/lodash@4.17.15/package.json":      false,
		"app/node_modules/x/node_modules/package.json":            false,
	} {
		if got := InstalledManifest(p); got != want {
			t.Errorf("InstalledManifest(%s) = %v, want %v", p, got, want)
		}
	}
}

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{"name": "lodash", "version": "4.17.15", "license": "MIT"}`, "lodash@4.17.15 pkg:npm/lodash@4.17.15"},
		{`{"name": "@babel/core", "version": "7.12.3"}`, "@babel/core@7.12.3 pkg:npm/%40babel/core@7.12.3"},
		{`{"name": "fixture"}`, ""},
		{`{"version": "1.0.0"}`, ""},
	} {
		p, ok, err := ParseManifest([]byte(tc.data))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if ok {
			got = fmt.Sprintf("%s@%s %s", p.Name, p.Version, p.PURL)
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.data, got, tc.want)
		}
	}
	if _, _, err := ParseManifest([]byte("{")); err == nil {
		t.Error("bad JSON: no error")
	}
}
