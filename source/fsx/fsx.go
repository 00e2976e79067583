// Package fsx serves the raw trees that sources read (a directory, merged image layers, an ext4 or xfs
// volume, an archive) as one kind of read-only io/fs.FS with chroot semantics for symbolic links.
//
// Every source implements only Tree, which never follows links; FS does all link resolution, so that
// confinement to the target is written and tested once: absolute link targets start at the target's
// root, ".." never climbs above it, and a lookup that crosses more than MaxLinks links fails.
package fsx

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// MaxLinks bounds the links followed in one lookup, as Linux's MAXSYMLINKS does.
const MaxLinks = 40

// ErrLoop is returned when a lookup crosses more than MaxLinks symbolic links.
var ErrLoop = errors.New("too many levels of symbolic links")

// Tree is the raw view of a file system. Names are valid io/fs paths ("." is the root) that contain no
// symbolic link except possibly the last element; implementations never follow links.
type Tree interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadLink(name string) (string, error)
	// Open opens a regular file or a directory.
	Open(name string) (fs.File, error)
	ReadDir(name string) ([]fs.DirEntry, error)
}

// Layered is implemented by trees built from image layers.
type Layered interface {
	// LayerOf returns the digest of the layer that last wrote the file, or "".
	LayerOf(name string) string
}

// FS is a read-only io/fs.FS over a Tree.
type FS struct{ t Tree }

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// New returns an FS over t.
func New(t Tree) *FS { return &FS{t: t} }

// Tree returns the underlying tree.
func (f *FS) Tree() Tree { return f.t }

// Resolve returns the name of the file that name refers to once every link in it is followed. With
// followLast false the last element is not followed (as lstat does).
func (f *FS) Resolve(name string, followLast bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrInvalid}
	}
	var done []string // resolved elements so far
	todo := splitPath(name)
	links := 0
	for len(todo) > 0 {
		elem := todo[0]
		todo = todo[1:]
		switch elem {
		case ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cand := joinElems(append(done, elem))
		last := len(todo) == 0
		if last && !followLast {
			done = append(done, elem)
			break
		}
		fi, err := f.t.Lstat(cand)
		if err != nil {
			if last && errors.Is(err, fs.ErrNotExist) {
				return cand, err
			}
			return "", &fs.PathError{Op: "resolve", Path: name, Err: err}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if !last && !fi.IsDir() {
				return "", &fs.PathError{Op: "resolve", Path: name, Err: fmt.Errorf("%s: not a directory", cand)}
			}
			done = append(done, elem)
			continue
		}
		links++
		if links > MaxLinks {
			return "", &fs.PathError{Op: "resolve", Path: name, Err: ErrLoop}
		}
		target, err := f.t.ReadLink(cand)
		if err != nil {
			return "", &fs.PathError{Op: "resolve", Path: name, Err: err}
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		todo = append(splitPath(target), todo...)
	}
	return joinElems(done), nil
}

func splitPath(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

func joinElems(elems []string) string {
	if len(elems) == 0 {
		return "."
	}
	return strings.Join(elems, "/")
}

// Open opens the named file, following links.
func (f *FS) Open(name string) (fs.File, error) {
	r, err := f.Resolve(name, true)
	if err != nil {
		return nil, wrapOp("open", name, err)
	}
	file, err := f.t.Open(r)
	if err != nil {
		return nil, wrapOp("open", name, err)
	}
	return file, nil
}

// Stat returns the file info of the named file, following links.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	r, err := f.Resolve(name, true)
	if err != nil {
		return nil, wrapOp("stat", name, err)
	}
	fi, err := f.t.Lstat(r)
	if err != nil {
		return nil, wrapOp("stat", name, err)
	}
	return fi, nil
}

// Lstat returns the file info of the named file without following a final link.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	r, err := f.Resolve(name, false)
	if err != nil {
		return nil, wrapOp("lstat", name, err)
	}
	return f.t.Lstat(r)
}

// ReadLink returns the target of the named link.
func (f *FS) ReadLink(name string) (string, error) {
	r, err := f.Resolve(name, false)
	if err != nil {
		return "", wrapOp("readlink", name, err)
	}
	return f.t.ReadLink(r)
}

// ReadDir lists the named directory, following links to it. Entries describe links as links.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	r, err := f.Resolve(name, true)
	if err != nil {
		return nil, wrapOp("readdir", name, err)
	}
	return f.t.ReadDir(r)
}

// ReadFile reads the whole named file. Use ReadFileLimit for untrusted sizes.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return io.ReadAll(file)
}

// LayerOf returns the digest of the image layer that last wrote name, or "" if the tree has no layers.
func (f *FS) LayerOf(name string) string {
	l, ok := f.t.(Layered)
	if !ok {
		return ""
	}
	if r, err := f.Resolve(name, true); err == nil {
		name = r
	}
	return l.LayerOf(name)
}

func wrapOp(op, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == name {
		return err
	}
	return &fs.PathError{Op: op, Path: name, Err: unwrapPath(err)}
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ErrTooLarge is returned by ReadFileLimit for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// ReadFileLimit reads the named file from fsys, failing with ErrTooLarge if it holds more than max bytes.
// Parsers of untrusted input use it so that memory stays bounded.
func ReadFileLimit(fsys fs.FS, name string, max int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAllLimit(f, max, name)
}

// ReadAllLimit reads r to the end, failing with ErrTooLarge past max bytes. name is used in the error.
func ReadAllLimit(r io.Reader, max int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)}
	}
	return b, nil
}

// Clean turns an absolute or relative slash path into a valid io/fs name, never above the root.
func Clean(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}
