package disk

import (
	"io"
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

// volumeFile is an open regular file of an ext or xfs volume: an io.ReaderAt (safe for concurrent
// use) and an io.Seeker over the file system's own block mapping, readAt.
type volumeFile struct {
	info   fs.FileInfo
	size   int64
	name   string
	off    int64
	readAt func(p []byte, off int64) (int, error)
}

func (f *volumeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *volumeFile) Close() error               { return nil }

func (f *volumeFile) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *volumeFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.readAt(p, off)
	if err != nil && err != io.EOF {
		err = &fs.PathError{Op: "read", Path: f.name, Err: err}
	}
	return n, err
}

func (f *volumeFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += f.off
	case io.SeekEnd:
		off += f.size
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.off = off
	return off, nil
}
