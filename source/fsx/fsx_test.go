package fsx

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func file(content string) *MemNode {
	return &MemNode{Mode: 0o644, Size: int64(len(content)), Content: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}}
}

func link(target string) *MemNode { return &MemNode{Mode: fs.ModeSymlink | 0o777, Link: target} }

// debianLike is a small tree with the link shapes a real Debian root has.
func debianLike() *MemTree {
	t := NewMemTree()
	t.Put("usr/lib/os-release", file("ID=debian\nVERSION_ID=\"12\"\n"))
	t.Put("etc/os-release", link("../usr/lib/os-release"))
	t.Put("bin", link("usr/bin"))
	t.Put("usr/bin/dpkg", file("ELF"))
	t.Put("etc/alternatives/editor", link("/usr/bin/dpkg"))
	t.Put("usr/bin/editor", link("/etc/alternatives/editor"))
	t.Put("etc/escape", link("../../../../etc/passwd"))
	t.Put("etc/abs-escape", link("/../../etc/passwd"))
	t.Put("etc/passwd", file("root:x:0:0::/root:/bin/sh\n"))
	t.Put("loop/a", link("b"))
	t.Put("loop/b", link("a"))
	t.Put("loop/self", link("self"))
	t.Put("dangling", link("/nowhere/at/all"))
	t.Put("etc/notdir", link("passwd/x"))
	return t
}

func TestResolveChrootSemantics(t *testing.T) {
	f := New(debianLike())
	tests := []struct {
		name, want string
		err        error
	}{
		{"etc/os-release", "usr/lib/os-release", nil},
		{"bin/dpkg", "usr/bin/dpkg", nil},
		{"usr/bin/editor", "usr/bin/dpkg", nil},
		// Links that climb out of the root stop at the root, as in a chroot.
		{"etc/escape", "etc/passwd", nil},
		{"etc/abs-escape", "etc/passwd", nil},
		{"usr/../../../etc/passwd", "", fs.ErrInvalid},
		{"loop/a", "", ErrLoop},
		{"loop/self", "", ErrLoop},
		{"dangling", "", fs.ErrNotExist},
		{"etc/notdir", "", nil},
	}
	for _, tc := range tests {
		got, err := f.Resolve(tc.name, true)
		if tc.name == "etc/notdir" {
			if err == nil || !strings.Contains(err.Error(), "not a directory") {
				t.Errorf("Resolve(%q) = %q, %v; want a not-a-directory error", tc.name, got, err)
			}
			continue
		}
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Resolve(%q) error = %v, want %v", tc.name, err, tc.err)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("Resolve(%q) = %q, want %q", tc.name, got, tc.want)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestOpenFollowsAndReads(t *testing.T) {
	f := New(debianLike())
	b, err := fs.ReadFile(f, "etc/os-release")
	if err != nil || !strings.Contains(string(b), "VERSION_ID=\"12\"") {
		t.Fatalf("ReadFile(etc/os-release) = %q, %v", b, err)
	}
	fi, err := f.Lstat("etc/os-release")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("Lstat should not follow the link: %v %v", fi, err)
	}
	if target, err := f.ReadLink("bin"); err != nil || target != "usr/bin" {
		t.Fatalf("ReadLink(bin) = %q, %v", target, err)
	}
	if _, err := f.Open("loop/a"); !errors.Is(err, ErrLoop) {
		t.Fatalf("Open(loop/a) error = %v, want ErrLoop", err)
	}
}

// The FS must satisfy io/fs's own conformance checks (walking, ReadDir, Stat agreement).
func TestFSConformance(t *testing.T) {
	tr := NewMemTree()
	tr.Put("var/lib/dpkg/status", file("Package: bash\nVersion: 5.2.15-2+b2\n"))
	tr.Put("usr/share/doc/bash/copyright", file("(c)"))
	tr.Put("empty", &MemNode{Mode: 0o644})
	if err := fstest.TestFS(New(tr), "var/lib/dpkg/status", "usr/share/doc/bash/copyright", "empty"); err != nil {
		t.Fatal(err)
	}
}

func TestMemTreeWhiteoutOperations(t *testing.T) {
	tr := NewMemTree()
	tr.Put("usr/lib/python3/dist-packages/yaml/__init__.py", file("x"))
	tr.Put("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", file("Name: PyYAML\n"))
	tr.Remove("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info")
	if _, ok := tr.Get("usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA"); ok {
		t.Fatal("Remove left a child behind")
	}
	tr.Clear("usr/lib/python3/dist-packages")
	ents, _ := tr.ReadDir("usr/lib/python3/dist-packages")
	if len(ents) != 0 {
		t.Fatalf("Clear left %d entries", len(ents))
	}
	// A file replacing a directory removes the directory's content.
	tr.Put("opt/app/lib/a.jar", file("PK"))
	tr.Put("opt/app", file("now a file"))
	if _, ok := tr.Get("opt/app/lib/a.jar"); ok {
		t.Fatal("replacing a directory by a file kept its children")
	}
	// Content that was not kept is reported, not served empty.
	tr.Put("big.bin", &MemNode{Mode: 0o644, Size: 10})
	if _, err := New(tr).Open("big.bin"); !errors.Is(err, ErrNoContent) {
		t.Fatalf("open of unkept content: %v", err)
	}
}

func TestReadFileLimit(t *testing.T) {
	tr := NewMemTree()
	tr.Put("f", file(strings.Repeat("a", 100)))
	if _, err := ReadFileLimit(New(tr), "f", 99); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
	if b, err := ReadFileLimit(New(tr), "f", 100); err != nil || len(b) != 100 {
		t.Fatalf("ReadFileLimit at the limit: %d, %v", len(b), err)
	}
}

// FuzzResolve checks that no name and no link target can resolve outside the tree or loop forever.
func FuzzResolve(f *testing.F) {
	f.Add("etc/os-release", "../usr/lib/os-release")
	f.Add("a/b/c", "/../../x")
	f.Add("x", "x/./../x")
	f.Fuzz(func(t *testing.T, name, target string) {
		tr := debianLike()
		tr.Put("fz/l", link(target))
		fsys := New(tr)
		for _, n := range []string{"fz/l", "fz/l/" + name, name} {
			if !fs.ValidPath(n) {
				continue
			}
			r, err := fsys.Resolve(n, true)
			if err != nil {
				continue
			}
			if !fs.ValidPath(r) || HasDotDot(r) {
				t.Fatalf("Resolve(%q) = %q: not a name inside the root", n, r)
			}
		}
	})
}
