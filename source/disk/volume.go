package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/source/fsx"
)

// backend is what volume needs from a file-system reader. Names are io/fs names ("." is the root).
// Listings and link reads are serialised by volume; open files must be safe for concurrent use.
type backend interface {
	rootInfo() (fs.FileInfo, error)
	// readDir lists dir; e is its entry in its parent's listing (nil for the root).
	readDir(dir string, e fs.DirEntry) ([]fs.DirEntry, error)
	// open opens the regular file name, whose entry info is fi.
	open(name string, fi fs.FileInfo) (fs.File, error)
	readLink(name string, fi fs.FileInfo) (string, error)
}

// maxCachedEntries bounds the directory cache: a listing holds each entry (and, once asked for, its
// inode), so a volume with millions of files would otherwise keep them all. When full, the cache
// starts over.
const maxCachedEntries = 1 << 18

// volume is an fsx.Tree over a file-system reader. Readers list a directory given its inode; volume
// turns names into inodes by caching the listing of each directory: a walk reads each directory
// once, and Lstat of a name is a map lookup in its parent's listing.
type volume struct {
	b    backend
	what string // "PATH p1 (GPT 'root') ext4", for errors

	mu      sync.Mutex
	dirs    map[string]*listing
	entries int
	root    fs.FileInfo
}

type listing struct {
	sorted []fs.DirEntry
	byName map[string]fs.DirEntry
}

var _ fsx.Tree = (*volume)(nil)

func newVolume(b backend, what string) *volume {
	return &volume{b: b, what: what, dirs: map[string]*listing{}}
}

// guard runs a reader call, turning a panic (a reader bug on data no test foresaw) into
// an error that names the volume.
func (v *volume) guard(op, name string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s: corrupt file system (panic: %v)", v.what, r)}
		}
	}()
	return f()
}

func (v *volume) list(dir string) (*listing, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.listLocked(dir)
}

func (v *volume) listLocked(dir string) (*listing, error) {
	if l, ok := v.dirs[dir]; ok {
		return l, nil
	}
	// Check the parent first: it tells a missing directory from a file, gives the directory's own
	// entry (its inode) to the reader, and fills the cache along the path.
	var self fs.DirEntry
	if dir != "." {
		parent, base := path.Split(dir)
		pl, err := v.listLocked(cleanDir(parent))
		if err != nil {
			return nil, err
		}
		e, ok := pl.byName[base]
		if !ok {
			return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
		}
		if !e.IsDir() {
			return nil, &fs.PathError{Op: "readdir", Path: dir, Err: errors.New("not a directory")}
		}
		self = e
	}
	var ents []fs.DirEntry
	err := v.guard("readdir", dir, func() error {
		var err error
		ents, err = v.b.readDir(dir, self)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fmt.Errorf("%s: %w", v.what, unwrapPathErr(err))}
	}
	l := &listing{byName: make(map[string]fs.DirEntry, len(ents))}
	for _, e := range ents {
		n := e.Name()
		if n == "" || n == "." || n == ".." || strings.Contains(n, "/") {
			continue // a corrupt entry would make an invalid io/fs name
		}
		if _, dup := l.byName[n]; dup {
			continue
		}
		l.byName[n] = e
		l.sorted = append(l.sorted, e)
	}
	slices.SortFunc(l.sorted, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	if v.entries+len(l.sorted) > maxCachedEntries {
		clear(v.dirs)
		v.entries = 0
	}
	v.dirs[dir] = l
	v.entries += len(l.sorted)
	return l, nil
}

func cleanDir(d string) string {
	d = strings.TrimSuffix(d, "/")
	if d == "" {
		return "."
	}
	return d
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (v *volume) entry(name string) (fs.DirEntry, error) {
	parent, base := path.Split(name)
	l, err := v.list(cleanDir(parent))
	if err != nil {
		return nil, err
	}
	e, ok := l.byName[base]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	return e, nil
}

// Lstat implements fsx.Tree.
func (v *volume) Lstat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.root == nil {
			var fi fs.FileInfo
			if err := v.guard("lstat", ".", func() error {
				var err error
				fi, err = v.b.rootInfo()
				return err
			}); err != nil {
				return nil, &fs.PathError{Op: "lstat", Path: ".", Err: fmt.Errorf("%s: root directory: %w", v.what, unwrapPathErr(err))}
			}
			if !fi.IsDir() {
				return nil, &fs.PathError{Op: "lstat", Path: ".", Err: fmt.Errorf("%s: root inode is not a directory", v.what)}
			}
			v.root = renamed{fi, "."}
		}
		return v.root, nil
	}
	e, err := v.entry(name)
	if err != nil {
		return nil, err
	}
	var fi fs.FileInfo
	err = v.guard("lstat", name, func() error {
		var err error
		fi, err = e.Info()
		return err
	})
	return fi, err
}

// ReadLink implements fsx.Tree.
func (v *volume) ReadLink(name string) (string, error) {
	fi, err := v.Lstat(name)
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: errors.New("not a symbolic link")}
	}
	var target string
	v.mu.Lock()
	defer v.mu.Unlock()
	err = v.guard("readlink", name, func() error {
		var err error
		target, err = v.b.readLink(name, fi)
		return err
	})
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fmt.Errorf("%s: %w", v.what, unwrapPathErr(err))}
	}
	return target, nil
}

// ReadDir implements fsx.Tree.
func (v *volume) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	l, err := v.list(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(l.sorted), nil
}

// Open implements fsx.Tree: directories and regular files only.
func (v *volume) Open(name string) (fs.File, error) {
	fi, err := v.Lstat(name)
	if err != nil {
		return nil, err
	}
	switch {
	case fi.IsDir():
		l, err := v.list(name)
		if err != nil {
			return nil, err
		}
		return &dirFile{info: fi, ents: l.sorted}, nil
	case !fi.Mode().IsRegular():
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	var f fs.File
	err = v.guard("open", name, func() error {
		var err error
		f, err = v.b.open(name, fi)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%s: %w", v.what, unwrapPathErr(err))}
	}
	return f, nil
}

// dirFile is an open directory.
type dirFile struct {
	info fs.FileInfo
	ents []fs.DirEntry
	off  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.ents[d.off:]
	if n <= 0 {
		d.off = len(d.ents)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return slices.Clone(rest[:n]), nil
}

// renamed gives the root directory the name ".".
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string       { return r.name }
func (r renamed) ModTime() time.Time { return r.FileInfo.ModTime() }
