package python

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

func summary(pkgs []model.Package) []string {
	var out []string
	for _, p := range pkgs {
		s := p.Name + "@" + p.Version
		if p.Dev {
			s += " dev"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Jinja2": "jinja2", "charset_normalizer": "charset-normalizer", "zope.interface": "zope-interface",
		"PyYAML": "pyyaml", "Foo__Bar-.baz": "foo-bar-baz",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	if p := newPackage("charset_normalizer", "3.0.1"); p.Name != "charset_normalizer" || p.PURL != "pkg:pypi/charset-normalizer@3.0.1" {
		t.Errorf("newPackage: %+v", p)
	}
}

func TestLockfiles(t *testing.T) {
	for _, tc := range []struct {
		file  string
		parse func([]byte) ([]model.Package, error)
		want  []string
	}{
		{"poetry-1.lock", ParsePoetryLock, []string{"certifi@2020.12.5", "pytest@6.2.1 dev", "requests@2.25.0"}},
		{"poetry-2.lock", ParsePoetryLock, []string{"Jinja2@2.11.2", "black@20.8b1 dev"}},
		{"Pipfile.lock", ParsePipfileLock, []string{"pytest@6.2.1 dev", "requests@2.25.0", "six@1.15.0", "urllib3@1.26.4"}},
		{"uv.lock", ParseUVLock, []string{"certifi@2020.12.5", "iniconfig@1.1.1 dev", "pytest@6.2.1 dev", "requests@2.25.0"}},
	} {
		data, err := os.ReadFile("testdata/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		pkgs, err := tc.parse(data)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		check(t, tc.file, summary(pkgs), tc.want)
	}
	for _, bad := range []struct {
		parse func([]byte) ([]model.Package, error)
		data  string
	}{
		{ParsePoetryLock, "[[package]\nname ="}, {ParsePipfileLock, "{"}, {ParseUVLock, "version = "},
	} {
		if _, err := bad.parse([]byte(bad.data)); err == nil {
			t.Errorf("%q: no error", bad.data)
		}
	}
}

func TestRequirements(t *testing.T) {
	pkgs, err := ReadRequirements(context.Background(), os.DirFS("testdata"), "requirements.txt", 1<<20)
	if err == nil || !strings.Contains(err.Error(), "etc/outside.txt") {
		t.Errorf("missing include: error %v", err)
	}
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"@"+p.Version+" "+p.Locations[0])
	}
	check(t, "requirements", got, []string{
		"Django@3.2.0 /requirements.txt",
		"requests@2.25.0 /requirements.txt",
		"urllib3@1.26.4 /requirements.txt",
		"PyYAML@5.3.1 /requirements.txt",
		"certifi@2020.12.5 /requirements/base.txt",
		"idna@2.10 /requirements/common.txt",
		"chardet@3.0.4 /requirements/common.txt",
	})
}

func TestRequirementsBOMAndCRLF(t *testing.T) {
	reqs, _ := ParseRequirements([]byte("\xef\xbb\xbfrequests==2.28.1\r\nurllib3==1.26.12 \\\r\n    --hash=sha256:00\r\n"))
	if len(reqs) != 2 || reqs[0].Name != "requests" || reqs[1].Version != "1.26.12" {
		t.Errorf("got %+v", reqs)
	}
}

func TestParseMetadata(t *testing.T) {
	m, err := ParseMetadata(strings.NewReader("Metadata-Version: 2.1\r\nName: charset-normalizer\r\nVersion: 3.0.1\r\n" +
		"License: MIT\r\nClassifier: Programming Language :: Python\r\n\r\nName: not-a-header\r\nVersion: 9\r\n"))
	if err != nil || m.Name != "charset-normalizer" || m.Version != "3.0.1" || m.License != "MIT" {
		t.Errorf("got %+v, %v", m, err)
	}
	if _, err := ParseMetadata(strings.NewReader("Name: x\n" + strings.Repeat("Classifier: y\n", maxHeaderSize/8))); err == nil {
		t.Error("oversized headers: no error")
	}
}

const requestsPKGINFO = `Metadata-Version: 2.1
Name: requests
Version: 2.28.1
Summary: Python HTTP for Humans.
Home-page: https://requests.readthedocs.io
Author: Kenneth Reitz
License: Apache 2.0
Requires-Python: >=3.7, <4

Requests is an elegant and simple HTTP library for Python.
`

func TestInstalledAndDeclared(t *testing.T) {
	reqs, _ := os.ReadFile("testdata/poetry-1.lock")
	fsys := fstest.MapFS{
		// Debian layout: egg-info directories and files, dist-info directories.
		"usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO": {Data: []byte(requestsPKGINFO)},
		"usr/lib/python3/dist-packages/six-1.16.0.egg-info":               {Data: []byte("Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\n")},
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA":     {Data: []byte("Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n")},
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/RECORD":       {Data: []byte("yaml/__init__.py,,\n")},
		// A virtual environment inside a project that pins what it installed.
		"srv/app/requirements.txt": {Data: []byte("requests==2.28.1\nsix==1.16.0\n")},
		"srv/app/poetry.lock":      {Data: reqs},
		"srv/app/.venv/lib/python3.11/site-packages/requests-2.28.1.dist-info/METADATA": {Data: []byte(requestsPKGINFO)},
		"srv/app/.venv/lib/python3.11/site-packages/pytest-6.2.1.dist-info/METADATA":    {Data: []byte("Name: pytest\nVersion: 6.2.1\n")},
		// A dist-info whose METADATA lost its headers: the directory name still tells.
		"srv/app/.venv/lib/python3.11/site-packages/charset_normalizer-3.0.1.dist-info/METADATA": {Data: []byte("\n")},
	}
	eng := inventory.New(nil, inventory.NewRegistry(New()), inventory.Config{Workers: 2})
	inv, err := eng.Run(context.Background(), fsys, model.SourceInfo{Kind: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range inv.Packages {
		s := p.Name + "@" + p.Version
		if p.Dev {
			s += " dev"
		}
		got = append(got, s+" "+strings.Join(p.Locations, ","))
	}
	check(t, "inventory", got, []string{
		"PyYAML@6.0 /usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA",
		"certifi@2020.12.5 /srv/app/poetry.lock",
		"charset_normalizer@3.0.1 /srv/app/.venv/lib/python3.11/site-packages/charset_normalizer-3.0.1.dist-info/METADATA",
		"pytest@6.2.1 dev /srv/app/.venv/lib/python3.11/site-packages/pytest-6.2.1.dist-info/METADATA,/srv/app/poetry.lock",
		"requests@2.25.0 /srv/app/poetry.lock",
		"requests@2.28.1 /srv/app/.venv/lib/python3.11/site-packages/requests-2.28.1.dist-info/METADATA,/srv/app/requirements.txt",
		"requests@2.28.1 /usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO",
		"six@1.16.0 /srv/app/requirements.txt",
		"six@1.16.0 /usr/lib/python3/dist-packages/six-1.16.0.egg-info",
	})
	for _, p := range inv.Packages {
		if p.Name == "requests" && p.Version == "2.28.1" && (len(p.Licenses) != 1 || p.Licenses[0] != "Apache 2.0") {
			t.Errorf("requests licenses: %v", p.Licenses)
		}
	}
}

func TestRequired(t *testing.T) {
	fsys := fstest.MapFS{"x": {Data: []byte("")}}
	fi, _ := fs.Stat(fsys, "x")
	for p, want := range map[string]bool{
		"usr/lib/python3/dist-packages/six-1.16.0.egg-info":                    true,
		"usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO":             true,
		"usr/local/lib/python3.11/site-packages/pip-23.0.1.dist-info/METADATA": true,
		"opt/eggs/foo-1.0-py3.11.egg/EGG-INFO/PKG-INFO":                        true,
		"app/requirements-dev.txt":                                             true,
		"app/requirements.txt":                                                 true,
		"app/poetry.lock":                                                      true,
		"app/Pipfile.lock":                                                     true,
		"app/uv.lock":                                                          true,
		"app/requirements.in":                                                  false,
		"app/sdist/PKG-INFO":                                                   false,
		"usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD":            false,
	} {
		if got := New().Required(p, fi); got != want {
			t.Errorf("Required(%s) = %v, want %v", p, got, want)
		}
	}
}
