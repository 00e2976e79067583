package php

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
		if p.Dev {
			s += " dev"
		}
		if len(p.Locations) > 0 {
			s += " " + strings.Join(p.Locations, ",")
		}
		if p.Ecosystem != model.EcoPackagist {
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

func TestParse(t *testing.T) {
	tests := []struct {
		file  string
		parse func([]byte) ([]model.Package, error)
		want  []string
	}{
		{"testdata/composer.lock", ParseComposerLock, []string{
			"guzzlehttp/guzzle@7.4.1 pkg:composer/guzzlehttp/guzzle@7.4.1",
			"guzzlehttp/psr7@2.1.0 pkg:composer/guzzlehttp/psr7@2.1.0",
			"laravel/framework@dev-master pkg:composer/laravel/framework@dev-master",
			"phpunit/phpunit@9.5.10 pkg:composer/phpunit/phpunit@9.5.10 dev",
			"symfony/http-kernel@5.4.0 pkg:composer/symfony/http-kernel@5.4.0",
		}},
		{"testdata/installed-v1.json", ParseInstalled, []string{
			"phpunit/phpunit@8.5.8 pkg:composer/phpunit/phpunit@8.5.8",
			"symfony/http-kernel@4.4.13 pkg:composer/symfony/http-kernel@4.4.13",
		}},
		{"testdata/installed-v2.json", ParseInstalled, []string{
			"guzzlehttp/guzzle@7.4.1 pkg:composer/guzzlehttp/guzzle@7.4.1",
			"guzzlehttp/psr7@2.1.0 pkg:composer/guzzlehttp/psr7@2.1.0",
			"laravel/framework@dev-master pkg:composer/laravel/framework@dev-master",
			"symfony/http-kernel@5.4.0 pkg:composer/symfony/http-kernel@5.4.0",
		}},
	}
	for _, tt := range tests {
		pkgs, err := tt.parse(read(t, tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if got := describe(pkgs); !slices.Equal(got, tt.want) {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.file, got, tt.want)
		}
	}
	dev, err := ParseInstalled([]byte(`{"packages":[{"name":"phpunit/phpunit","version":"9.5.10"}],"dev":true,"dev-package-names":["phpunit/phpunit"]}`))
	if err != nil || len(dev) != 1 || !dev[0].Dev {
		t.Errorf("dev-package-names: %v %v", dev, err)
	}
	for _, bad := range []string{"", "{", `{"packages": 3}`, "[1,2]"} {
		if _, err := ParseComposerLock([]byte(bad)); err == nil {
			t.Errorf("composer.lock %q accepted", bad)
		}
		if _, err := ParseInstalled([]byte(bad)); err == nil {
			t.Errorf("installed.json %q accepted", bad)
		}
	}
}

func TestNormalizeVersion(t *testing.T) {
	for in, want := range map[string]string{"v5.4.0": "5.4.0", "V1.0": "1.0", "7.4.1": "7.4.1", "dev-main": "dev-main", "v": "v", "vendor": "vendor"} {
		if got := NormalizeVersion(in); got != want {
			t.Errorf("NormalizeVersion(%q) = %q", in, got)
		}
	}
}

func TestEngineMergesLockAndInstalled(t *testing.T) {
	m := fstest.MapFS{
		// One project with both files, installed without dev packages.
		"var/www/app/composer.lock":                  {Data: read(t, "testdata/composer.lock")},
		"var/www/app/vendor/composer/installed.json": {Data: read(t, "testdata/installed-v2.json")},
		// A project with only an installed.json (Composer 1).
		"srv/legacy/vendor/composer/installed.json": {Data: read(t, "testdata/installed-v1.json")},
		// A project with only a lockfile.
		"src/tool/composer.lock":  {Data: []byte(`{"packages":[{"name":"guzzlehttp/guzzle","version":"7.4.1"}]}`)},
		"src/tool/installed.json": {Data: []byte(`garbage, not read`)},
	}
	inv, err := inventory.New(nil, inventory.NewRegistry(NewComposer()), inventory.Config{Workers: 1}).Run(context.Background(), m, model.SourceInfo{Kind: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"guzzlehttp/guzzle@7.4.1 pkg:composer/guzzlehttp/guzzle@7.4.1 /src/tool/composer.lock",
		"guzzlehttp/guzzle@7.4.1 pkg:composer/guzzlehttp/guzzle@7.4.1 /var/www/app/vendor/composer/installed.json,/var/www/app/composer.lock",
		"guzzlehttp/psr7@2.1.0 pkg:composer/guzzlehttp/psr7@2.1.0 /var/www/app/vendor/composer/installed.json,/var/www/app/composer.lock",
		"laravel/framework@dev-master pkg:composer/laravel/framework@dev-master /var/www/app/vendor/composer/installed.json,/var/www/app/composer.lock",
		"phpunit/phpunit@8.5.8 pkg:composer/phpunit/phpunit@8.5.8 /srv/legacy/vendor/composer/installed.json",
		"symfony/http-kernel@4.4.13 pkg:composer/symfony/http-kernel@4.4.13 /srv/legacy/vendor/composer/installed.json",
		"symfony/http-kernel@5.4.0 pkg:composer/symfony/http-kernel@5.4.0 /var/www/app/vendor/composer/installed.json,/var/www/app/composer.lock",
	}
	if got := describe(inv.Packages); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := inv.Extractors[0]; st.Files != 4 || st.Packages != 7 || st.Status != model.StatusOK {
		t.Errorf("status %+v", st)
	}
}

func FuzzParseComposerLock(f *testing.F) {
	b, _ := os.ReadFile("testdata/composer.lock")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseComposerLock(b) })
}

func FuzzParseInstalled(f *testing.F) {
	for _, n := range []string{"testdata/installed-v1.json", "testdata/installed-v2.json"} {
		b, _ := os.ReadFile(n)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseInstalled(b) })
}
