package inventory_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

// lines is a test extractor: every "*.pkgs" file lists "name version" lines; "panic" panics and
// "broken" fails.
type lines struct{}

func (lines) Name() string { return "lines" }
func (lines) Version() int { return 1 }
func (lines) Required(p string, _ fs.FileInfo) bool {
	return strings.HasSuffix(p, ".pkgs")
}
func (lines) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fs.ReadFile(in.FS, in.Path)
	if err != nil {
		return nil, err
	}
	var out []model.Package
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		switch l {
		case "panic":
			panic("hostile input")
		case "broken":
			return nil, errors.New("broken file")
		}
		f := strings.Fields(l)
		out = append(out, model.Package{Name: f[0], Version: f[1], Ecosystem: "npm"})
	}
	return out, nil
}

func put(t *fsx.MemTree, name, content string, layer string) {
	t.Put(name, &fsx.MemNode{Mode: 0o644, Size: int64(len(content)), Layer: layer,
		Content: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }})
}

func TestEngineReportsErrorsPanicsAndLayers(t *testing.T) {
	tr := fsx.NewMemTree()
	put(tr, "app/a.pkgs", "lodash 4.17.15\nminimist 1.2.0", "sha256:l1")
	put(tr, "app/b.pkgs", "broken", "sha256:l2")
	put(tr, "app/c.pkgs", "panic", "sha256:l2")
	put(tr, "proc/1/x.pkgs", "kernel 1", "")
	eng := inventory.New(nil, inventory.NewRegistry(lines{}), inventory.Config{Workers: 2})
	inv, err := eng.Run(context.Background(), fsx.New(tr), model.SourceInfo{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 3 {
		t.Fatalf("packages = %+v", inv.Packages)
	}
	lodash := inv.Packages[1]
	if lodash.Name != "lodash" || lodash.Locations[0] != "/app/a.pkgs" || lodash.LayerDigest != "sha256:l1" || lodash.Extractor != "lines" {
		t.Errorf("lodash = %+v", lodash)
	}
	st := inv.Extractors[0]
	if st.Status != model.StatusPartial || st.Files != 4 || len(st.Errors) != 2 {
		t.Fatalf("status = %+v", st)
	}
	var sawPanic bool
	for _, e := range st.Errors {
		sawPanic = sawPanic || strings.Contains(e.Error, "panicked")
	}
	if !sawPanic {
		t.Errorf("a panicking extractor must be reported as an error: %+v", st.Errors)
	}
}

func TestEngineHostModeAndLimits(t *testing.T) {
	tr := fsx.NewMemTree()
	put(tr, "usr/lib/node/a.pkgs", "a 1", "")
	put(tr, "proc/1/b.pkgs", "b 1", "")
	put(tr, "var/lib/docker/overlay2/x/c.pkgs", "c 1", "")
	put(tr, "data/custom/d.pkgs", "d 1", "")
	run := func(cfg inventory.Config) *model.Inventory {
		inv, err := inventory.New(nil, inventory.NewRegistry(lines{}), cfg).Run(context.Background(), fsx.New(tr), model.SourceInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}
	names := func(inv *model.Inventory) string {
		var s []string
		for _, p := range inv.Packages {
			s = append(s, p.Name)
		}
		return strings.Join(s, ",")
	}
	if got := names(run(inventory.Config{Host: true})); got != "a" {
		t.Errorf("host mode found %q, want only the default paths (a)", got)
	}
	if got := names(run(inventory.Config{Host: true, ExtraPaths: []string{"/data/custom"}})); got != "a,d" {
		t.Errorf("host mode with an extra path found %q", got)
	}
	if got := names(run(inventory.Config{})); got != "a,b,c,d" {
		t.Errorf("an image or directory is searched whole, found %q", got)
	}
	inv := run(inventory.Config{MaxPackages: 2, Workers: 1})
	if len(inv.Packages) > 2 || len(inv.Warnings) == 0 || inv.Extractors[0].Status != model.StatusLimited {
		t.Errorf("a package limit must truncate visibly: %d packages, warnings %v, status %s",
			len(inv.Packages), inv.Warnings, inv.Extractors[0].Status)
	}
	// The filter handed to streaming sources agrees with the walk.
	f := inventory.New(nil, inventory.NewRegistry(lines{}), inventory.Config{Host: true}).Filter()
	if !f("usr/lib/node/a.pkgs", nil) || f("proc/1/b.pkgs", nil) || f("usr/lib/node/a.txt", nil) {
		t.Error("Filter disagrees with what the engine reads")
	}
}
