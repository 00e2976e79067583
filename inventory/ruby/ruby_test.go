package ruby

import (
	"context"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

type row struct{ name, version, purl, loc string }

func rows(pkgs []model.Package) []row {
	var out []row
	for _, p := range pkgs {
		loc := ""
		if len(p.Locations) > 0 {
			loc = p.Locations[0]
		}
		if p.Ecosystem != model.EcoRubyGems {
			loc = "WRONG ECOSYSTEM"
		}
		out = append(out, row{p.Name, p.Version, p.PURL, loc})
	}
	return out
}

func TestParseGemfileLock(t *testing.T) {
	b, err := os.ReadFile("testdata/Gemfile.lock")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := ParseGemfileLock(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"@"+p.Version+" "+p.PURL)
	}
	want := []string{
		"sprockets-rails@3.2.2 pkg:gem/sprockets-rails@3.2.2",
		"actionpack@6.1.4 pkg:gem/actionpack@6.1.4",
		"activesupport@6.1.4 pkg:gem/activesupport@6.1.4",
		"concurrent-ruby@1.1.9 pkg:gem/concurrent-ruby@1.1.9",
		"mini_portile2@2.8.0 pkg:gem/mini_portile2@2.8.0",
		"nokogiri@1.13.3 pkg:gem/nokogiri@1.13.3",
		"rack@2.2.3 pkg:gem/rack@2.2.3",
		"racc@1.6.0 pkg:gem/racc@1.6.0",
		"rails@6.1.4 pkg:gem/rails@6.1.4",
		"sprockets@4.0.2 pkg:gem/sprockets@4.0.2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestParseGemfileLockErrors(t *testing.T) {
	for _, in := range []string{
		"GEM\n  remote: https://rubygems.org/\n  specs:\n    rails 6.1.4\n",
		"GEM\n  specs:\n    rails (${VERSION})\n",
	} {
		if _, err := ParseGemfileLock([]byte(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
	// Dependency lines and other sections are not specs.
	pkgs, err := ParseGemfileLock([]byte("GEM\n  specs:\n    rails (6.1.4)\n      actionpack (= 6.1.4)\nDEPENDENCIES\n    junk (1.0)\n"))
	if err != nil || len(pkgs) != 1 {
		t.Errorf("pkgs=%v err=%v", pkgs, err)
	}
}

func TestParseGemspec(t *testing.T) {
	real, err := os.ReadFile("testdata/nokogiri-1.13.3-x86_64-linux.gemspec")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in        string
		wantN, wantV    string
		wantErrContains string
	}{
		{"rubygems stub", string(real), "nokogiri", "1.13.3", ""},
		{"default gem", "# -*- encoding: utf-8 -*-\n# stub: json 2.6.1 ruby lib\n\nGem::Specification.new do |s|\n  s.name = \"json\".freeze\n  s.version = \"2.6.1\"\nend\n", "json", "2.6.1", ""},
		{"old %q style", "Gem::Specification.new do |s|\n  s.name = %q{rails}\n  s.version = \"2.3.5\"\nend\n", "rails", "2.3.5", ""},
		{"stub line only", "# stub: rack 2.2.3 ruby lib\n", "rack", "2.2.3", ""},
		{"spec variable and single quotes", "Gem::Specification.new do |spec|\n  spec.name = 'rails'\n  spec.version = Gem::Version.new(\"6.1.4\")\nend\n", "rails", "6.1.4", ""},
		{"computed version is not evaluated", "Gem::Specification.new do |s|\n  s.name = \"foo\"\n  s.version = Foo::VERSION\nend\n", "", "", "no gem version found for foo"},
		{"interpolation is not evaluated", "Gem::Specification.new do |s|\n  s.name = \"foo#{x}\"\nend\n", "", "", "no gem name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, v, err := ParseGemspec([]byte(tt.in))
			if tt.wantErrContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrContains) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || n != tt.wantN || v != tt.wantV {
				t.Errorf("got %q %q %v", n, v, err)
			}
		})
	}
}

func TestEngine(t *testing.T) {
	real, _ := os.ReadFile("testdata/nokogiri-1.13.3-x86_64-linux.gemspec")
	lock, _ := os.ReadFile("testdata/Gemfile.lock")
	m := fstest.MapFS{
		"usr/local/bundle/specifications/nokogiri-1.13.3-x86_64-linux.gemspec": {Data: real},
		"usr/lib/ruby/gems/3.0.0/specifications/default/json-2.5.1.gemspec":    {Data: []byte("# stub: json 2.5.1 ruby lib\n")},
		"usr/local/bundle/specifications/broken-1.0.gemspec":                   {Data: []byte("garbage")},
		"app/foo.gemspec":       {Data: []byte("Gem::Specification.new do |s|\n  s.name = \"foo\"\n  s.version = \"0.1.0\"\nend\n")},
		"app/Gemfile.lock":      {Data: lock},
		"app/other/gems.locked": {Data: []byte("GEM\n  remote: https://rubygems.org/\n  specs:\n    rails (6.1.4)\n")},
	}
	reg := inventory.NewRegistry(NewGemspec(), NewGemfileLock())
	inv, err := inventory.New(nil, reg, inventory.Config{Workers: 1}).Run(context.Background(), m, model.SourceInfo{Kind: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rows(inv.Packages) {
		got[r.name+"@"+r.version+" "+r.loc] = true
	}
	for _, want := range []string{
		"nokogiri@1.13.3 /usr/local/bundle/specifications/nokogiri-1.13.3-x86_64-linux.gemspec",
		"json@2.5.1 /usr/lib/ruby/gems/3.0.0/specifications/default/json-2.5.1.gemspec",
		"rails@6.1.4 /app/Gemfile.lock",
		"rails@6.1.4 /app/other/gems.locked",
		"nokogiri@1.13.3 /app/Gemfile.lock",
	} {
		if !got[want] {
			t.Errorf("missing %s", want)
		}
	}
	if len(got) != 13 {
		t.Errorf("%d packages: %v", len(got), got)
	}
	gs := inv.Extractors[0]
	if gs.Files != 3 || gs.Status != model.StatusPartial || !strings.Contains(gs.Errors[0].Error, "/usr/local/bundle/specifications/broken-1.0.gemspec: no gem name") {
		t.Errorf("gemspec status %+v", gs)
	}
}

func TestRequired(t *testing.T) {
	g := NewGemspec()
	for name, want := range map[string]bool{
		"usr/local/bundle/specifications/rails-6.1.4.gemspec":               true,
		"usr/lib/ruby/gems/3.0.0/specifications/default/json-2.5.1.gemspec": true,
		"app/vendor/bundle/ruby/3.0.0/specifications/rack-2.2.3.gemspec":    true,
		"app/rails.gemspec": false,
		"usr/local/bundle/gems/rails-6.1.4/rails.gemspec": false,
	} {
		if got := g.Required(name, info{}); got != want {
			t.Errorf("Required(%q) = %v", name, got)
		}
	}
}

type info struct{}

func (info) Name() string       { return "" }
func (info) Size() int64        { return 0 }
func (info) Mode() fs.FileMode  { return 0 }
func (info) ModTime() time.Time { return time.Time{} }
func (info) IsDir() bool        { return false }
func (info) Sys() any           { return nil }

func FuzzParseGemfileLock(f *testing.F) {
	b, _ := os.ReadFile("testdata/Gemfile.lock")
	f.Add(b)
	f.Add([]byte("GEM\n  specs:\n    a ((-)\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := ParseGemfileLock(b)
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("empty package %+v (err %v)", p, err)
			}
		}
	})
}

func FuzzParseGemspec(f *testing.F) {
	b, _ := os.ReadFile("testdata/nokogiri-1.13.3-x86_64-linux.gemspec")
	f.Add(b)
	f.Add([]byte("s.name = %q{}\ns.version = Gem::Version.new(\"\")\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, v, err := ParseGemspec(b)
		if err == nil && (n == "" || v == "") {
			t.Fatal("empty name or version without error")
		}
	})
}
