package disk

import (
	"io/fs"
	"sync"
)

// dirent is a directory entry of an ext or xfs volume. Its type comes from the directory entry
// when the file system records it; its inode is read only when Info is first asked for.
type dirent struct {
	name  string
	ino   uint64 // ext's 32-bit inode numbers widened
	typ   fs.FileMode
	typOK bool
	stat  func(ino uint64, name string) (fs.FileInfo, error)

	once sync.Once
	info fs.FileInfo
	err  error
}

func (d *dirent) Name() string      { return d.name }
func (d *dirent) IsDir() bool       { return d.Type().IsDir() }
func (d *dirent) String() string    { return fs.FormatDirEntry(d) }
func (d *dirent) Type() fs.FileMode { return d.typ }

// Info reads the inode once.
func (d *dirent) Info() (fs.FileInfo, error) {
	d.once.Do(func() {
		d.info, d.err = d.stat(d.ino, d.name)
		if d.err != nil {
			d.err = &fs.PathError{Op: "stat", Path: d.name, Err: d.err}
			return
		}
		if !d.typOK {
			d.typ, d.typOK = d.info.Mode().Type(), true
		}
	})
	if d.err != nil {
		return nil, d.err
	}
	return d.info, nil
}
