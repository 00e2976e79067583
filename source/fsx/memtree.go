package fsx

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// MemTree is a Tree held in memory. Sources that stream (image layers, archives) build one with the
// metadata of every entry and the content of the files they were asked to keep; tests use it too.
type MemTree struct {
	nodes map[string]*MemNode
}

// MemNode is one entry of a MemTree.
type MemNode struct {
	Name    string // base name
	Mode    fs.FileMode
	Size    int64
	ModTime time.Time
	Link    string // link target, for symlinks
	Layer   string // the layer digest that wrote it, for images
	// Content opens the file's content; nil when the content was not kept.
	Content func() (io.ReadCloser, error)
	kids    map[string]struct{}
}

// NewMemTree returns an empty tree with a root directory.
func NewMemTree() *MemTree {
	t := &MemTree{nodes: map[string]*MemNode{}}
	t.nodes["."] = &MemNode{Name: ".", Mode: fs.ModeDir | 0o755, kids: map[string]struct{}{}}
	return t
}

// Put adds or replaces the entry at name (a valid fs path), creating parent directories as needed.
// A replaced directory keeps its children unless the new entry is not a directory.
func (t *MemTree) Put(name string, n *MemNode) {
	name = Clean(name)
	if name == "." {
		if n.Mode.IsDir() {
			t.nodes["."].Mode = n.Mode
			t.nodes["."].ModTime = n.ModTime
		}
		return
	}
	parent := t.mkdirAll(path.Dir(name))
	n.Name = path.Base(name)
	if old, ok := t.nodes[name]; ok {
		if old.Mode.IsDir() && n.Mode.IsDir() {
			n.kids = old.kids
		} else if old.Mode.IsDir() {
			t.Remove(name)
		}
	}
	if n.Mode.IsDir() && n.kids == nil {
		n.kids = map[string]struct{}{}
	}
	t.nodes[name] = n
	parent.kids[n.Name] = struct{}{}
}

func (t *MemTree) mkdirAll(dir string) *MemNode {
	if n, ok := t.nodes[dir]; ok && n.Mode.IsDir() {
		return n
	}
	parent := t.mkdirAll(path.Dir(dir))
	if old, ok := t.nodes[dir]; ok && !old.Mode.IsDir() {
		// A file where a directory is needed: the later entry wins, as tar extraction does.
		delete(t.nodes, dir)
	}
	n := &MemNode{Name: path.Base(dir), Mode: fs.ModeDir | 0o755, kids: map[string]struct{}{}}
	t.nodes[dir] = n
	parent.kids[n.Name] = struct{}{}
	return n
}

// Get returns the entry at name.
func (t *MemTree) Get(name string) (*MemNode, bool) {
	n, ok := t.nodes[Clean(name)]
	return n, ok
}

// Remove deletes the entry at name and everything below it.
func (t *MemTree) Remove(name string) {
	name = Clean(name)
	n, ok := t.nodes[name]
	if !ok || name == "." {
		return
	}
	for k := range n.kids {
		t.Remove(name + "/" + k)
	}
	delete(t.nodes, name)
	if p, ok := t.nodes[path.Dir(name)]; ok {
		delete(p.kids, n.Name)
	}
}

// Clear removes everything below the directory at name (an opaque whiteout), keeping the directory.
func (t *MemTree) Clear(name string) {
	name = Clean(name)
	n, ok := t.nodes[name]
	if !ok || !n.Mode.IsDir() {
		return
	}
	for k := range n.kids {
		child := k
		if name != "." {
			child = name + "/" + k
		}
		t.Remove(child)
	}
}

// Walk calls fn for every entry, parents before children, in no particular order among siblings.
func (t *MemTree) Walk(fn func(name string, n *MemNode)) {
	for name, n := range t.nodes {
		fn(name, n)
	}
}

// Len is the number of entries, the root included.
func (t *MemTree) Len() int { return len(t.nodes) }

// Lstat implements Tree.
func (t *MemTree) Lstat(name string) (fs.FileInfo, error) {
	n, ok := t.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	return memInfo{n}, nil
}

// ReadLink implements Tree.
func (t *MemTree) ReadLink(name string) (string, error) {
	n, ok := t.nodes[name]
	if !ok {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrNotExist}
	}
	if n.Mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.Link, nil
}

// ErrNoContent is returned when opening a file whose content the source did not keep.
var ErrNoContent = &contentError{}

type contentError struct{}

func (*contentError) Error() string { return "file content was not retained by the source" }

// Open implements Tree.
func (t *MemTree) Open(name string) (fs.File, error) {
	n, ok := t.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if n.Mode.IsDir() {
		return &memDir{t: t, name: name, n: n}, nil
	}
	if !n.Mode.IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if n.Content == nil {
		if n.Size == 0 {
			return &memFile{n: n, rc: io.NopCloser(bytes.NewReader(nil))}, nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNoContent}
	}
	rc, err := n.Content()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if ra, ok := rc.(io.ReaderAt); ok {
		return &memFileAt{memFile{n: n, rc: rc}, ra}, nil
	}
	return &memFile{n: n, rc: rc}, nil
}

// ReadDir implements Tree.
func (t *MemTree) ReadDir(name string) ([]fs.DirEntry, error) {
	n, ok := t.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	if !n.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	names := make([]string, 0, len(n.kids))
	for k := range n.kids {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]fs.DirEntry, 0, len(names))
	for _, k := range names {
		child := k
		if name != "." {
			child = name + "/" + k
		}
		if c, ok := t.nodes[child]; ok {
			out = append(out, fs.FileInfoToDirEntry(memInfo{c}))
		}
	}
	return out, nil
}

// LayerOf implements Layered.
func (t *MemTree) LayerOf(name string) string {
	if n, ok := t.nodes[name]; ok {
		return n.Layer
	}
	return ""
}

type memInfo struct{ n *MemNode }

func (i memInfo) Name() string       { return i.n.Name }
func (i memInfo) Size() int64        { return i.n.Size }
func (i memInfo) Mode() fs.FileMode  { return i.n.Mode }
func (i memInfo) ModTime() time.Time { return i.n.ModTime }
func (i memInfo) IsDir() bool        { return i.n.Mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	n  *MemNode
	rc io.ReadCloser
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{f.n}, nil }
func (f *memFile) Read(p []byte) (int, error) { return f.rc.Read(p) }
func (f *memFile) Close() error               { return f.rc.Close() }

// memFileAt is a memFile whose kept content supports random access (ELF and zip readers want it).
type memFileAt struct {
	memFile
	ra io.ReaderAt
}

func (f *memFileAt) ReadAt(p []byte, off int64) (int, error) { return f.ra.ReadAt(p, off) }

type memDir struct {
	t    *MemTree
	name string
	n    *MemNode
	ents []fs.DirEntry
	read bool
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{d.n}, nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: fs.ErrInvalid}
}
func (d *memDir) Close() error { return nil }
func (d *memDir) ReadDir(count int) ([]fs.DirEntry, error) {
	if !d.read {
		d.ents, _ = d.t.ReadDir(d.name)
		d.read = true
	}
	if count <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	if count > len(d.ents) {
		count = len(d.ents)
	}
	out := d.ents[:count]
	d.ents = d.ents[count:]
	return out, nil
}

// HasDotDot reports whether a raw archive name would climb out of its root. Sources use it to reject
// such entries with an error naming them, rather than silently clamping them.
func HasDotDot(name string) bool {
	for _, e := range strings.Split(name, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}
