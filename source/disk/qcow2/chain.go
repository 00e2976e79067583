package qcow2

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxChain bounds a chain of backing files (and so a chain that loops).
const maxChain = 8

// Chain is an image opened from a file together with its backing files.
type Chain struct {
	*Image
	files []*os.File
}

// OpenFile opens the qcow2 image at path with its chain of backing files. A snapshot must not make
// the reader open arbitrary files of the host it runs on, so backing files must lie inside the
// directory of the image at path: absolute names, names that climb out with "..", protocol names
// and links that leave the directory are refused. Backing files may be qcow2 or raw.
func OpenFile(path string) (*Chain, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	c := &Chain{}
	f, err := root.Open(base)
	if err != nil {
		return nil, err
	}
	c.files = append(c.files, f)
	im, err := c.open(root, f, base, 0)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.Image = im
	return c, nil
}

// Close closes every file of the chain.
func (c *Chain) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	c.files = nil
	return errors.Join(errs...)
}

// open opens the qcow2 image in f, named rel inside root, and its backing chain.
func (c *Chain) open(root *os.Root, f *os.File, rel string, depth int) (*Image, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h, err := ParseHeader(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	im, err := newImage(f, fi.Size(), h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if h.BackingFile == "" {
		return im, nil
	}
	if depth+1 >= maxChain {
		return nil, fmt.Errorf("%s: more than %d backing files in the chain", rel, maxChain)
	}
	name := filepath.Join(filepath.Dir(rel), h.BackingFile)
	if filepath.IsAbs(h.BackingFile) || !filepath.IsLocal(name) {
		return nil, fmt.Errorf("%s: backing file %q lies outside the image's directory (refused)", rel, h.BackingFile)
	}
	bf, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: backing file: %w", rel, err)
	}
	c.files = append(c.files, bf)
	bfi, err := bf.Stat()
	if err != nil || !bfi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: backing file %q is not a regular file", rel, h.BackingFile)
	}
	var magic [4]byte
	if _, err := bf.ReadAt(magic[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: backing file: %w", rel, err)
	}
	isQcow2 := string(magic[:]) == Magic
	switch {
	case h.BackingFormat == "raw" || (h.BackingFormat == "" && !isQcow2):
		im.backing, im.backingSize = bf, bfi.Size()
	case h.BackingFormat == "qcow2" || h.BackingFormat == "":
		b, err := c.open(root, bf, name, depth+1)
		if err != nil {
			return nil, err
		}
		im.backing, im.backingSize = b, b.Size()
	default:
		return nil, fmt.Errorf("%s: backing file format %q is not supported", rel, h.BackingFormat)
	}
	return im, nil
}
