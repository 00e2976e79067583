// Package dir reads a directory or a mounted root file system ("dir:PATH").
package dir

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
)

// Opener opens directories.
type Opener struct{}

// Kind implements source.Opener.
func (Opener) Kind() string { return "dir" }

// Detect implements source.Opener.
func (Opener) Detect(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// Open implements source.Opener.
func (Opener) Open(_ context.Context, ref string, _ source.Options) ([]*source.Target, error) {
	t, err := Open(ref)
	if err != nil {
		return nil, err
	}
	return []*source.Target{t}, nil
}

// Open returns a target over the directory at path. Links inside it resolve as if it were the root.
func Open(path string) (*source.Target, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", abs)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, err
	}
	info := model.SourceInfo{Kind: "dir", Name: abs}
	return source.NewTarget(info, fsx.New(tree{root}), root.Close), nil
}

// tree is a fsx.Tree over an os.Root, which also refuses, as a second guard, any name that escapes.
type tree struct{ r *os.Root }

func osName(name string) string {
	if name == "." {
		return "."
	}
	return filepath.FromSlash(name)
}

func (t tree) Lstat(name string) (fs.FileInfo, error)     { return t.r.Lstat(osName(name)) }
func (t tree) ReadLink(name string) (string, error)       { return t.r.Readlink(osName(name)) }
func (t tree) Open(name string) (fs.File, error)          { return t.r.Open(osName(name)) }
func (t tree) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(t.r.FS(), name) }
