// Package file reads one local file as a target ("file:PATH"): a binary, a lockfile or a jar
// scanned on its own. The file appears at the root of the target under its own name.
package file

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
)

// Opener opens single files.
type Opener struct{}

// Kind implements source.Opener.
func (Opener) Kind() string { return "file" }

// Detect implements source.Opener: any regular file. List it after the openers that recognise
// a file's content (images, disks, archives).
func (Opener) Detect(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// Open implements source.Opener.
func (Opener) Open(_ context.Context, ref string, _ source.Options) ([]*source.Target, error) {
	abs, err := filepath.Abs(ref)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", abs)
	}
	t := fsx.NewMemTree()
	t.Put(fi.Name(), &fsx.MemNode{Mode: fi.Mode().Perm(), Size: fi.Size(), ModTime: fi.ModTime(),
		Content: func() (io.ReadCloser, error) {
			return struct {
				*io.SectionReader
				io.Closer
			}{io.NewSectionReader(f, 0, fi.Size()), io.NopCloser(nil)}, nil
		}})
	info := model.SourceInfo{Kind: "file", Name: abs}
	return []*source.Target{source.NewTarget(info, fsx.New(t), f.Close)}, nil
}
