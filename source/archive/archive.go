// Package archive opens software archives ("archive:PATH"): function deployment packages and other
// zip files (jar, war, ear included), tar files and gzip- or zstd-compressed tars, as a read-only
// file system.
//
// Zip entries are served lazily from the archive through its io.ReaderAt (stored entries with random
// access); tars are streamed once, keeping content only for the files the caller wants. Nested
// archives (a jar inside a war) are left as files: the Java extractor opens those.
package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
	"github.com/vigil-sec/vigil/source/image/unpack"
)

// Limits bound one archive: MaxEntries caps its entries; MaxStreamBytes caps its uncompressed size
// (the sum of a zip's declared sizes, which archive/zip holds every entry to, or a tar's stream).
type Limits = unpack.Limits

// Opener opens archives.
type Opener struct{ Limits Limits }

// Kind implements source.Opener.
func (Opener) Kind() string { return "archive" }

// Format is what Sniff found.
type Format int

// Formats.
const (
	Unknown Format = iota
	Zip
	Tar
	CompressedTar
)

func (f Format) String() string {
	return [...]string{"unknown", "zip", "tar", "compressed tar"}[f]
}

// Detect implements source.Opener by magic bytes. An image tarball is a tar too: list the image
// openers before this one.
func (Opener) Detect(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	return Sniff(f, fi.Size()) != Unknown
}

var (
	zipLocal = []byte("PK\x03\x04")
	zipEmpty = []byte("PK\x05\x06")
)

// Sniff tells the format from the first bytes, and for a zip with a prefix (a self-extracting or
// launch-script jar) from its end-of-central-directory record.
func Sniff(r io.ReaderAt, size int64) Format {
	head := make([]byte, 512)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, zipLocal) || bytes.HasPrefix(head, zipEmpty):
		return Zip
	case isTarHeader(head):
		return Tar
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}) || bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		dr, closeDec, err := unpack.Decompress(io.NewSectionReader(r, 0, size))
		if err != nil {
			return Unknown
		}
		defer closeDec()
		block := make([]byte, 512)
		if n, _ := io.ReadFull(dr, block); isTarHeader(block[:n]) {
			return CompressedTar
		}
		return Unknown
	}
	if hasEOCD(r, size) {
		return Zip
	}
	return Unknown
}

func isTarHeader(b []byte) bool {
	return len(b) >= 262 && string(b[257:262]) == "ustar"
}

// hasEOCD looks for the end-of-central-directory signature in the file's last 64 KiB + 22 bytes.
func hasEOCD(r io.ReaderAt, size int64) bool {
	const max = 1<<16 + 22
	off := max64(0, size-max)
	buf := make([]byte, size-off)
	if n, _ := r.ReadAt(buf, off); n < 22 {
		return false
	}
	return bytes.LastIndex(buf, zipEmpty) >= 0
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// Open implements source.Opener.
func (o Opener) Open(ctx context.Context, ref string, opts source.Options) ([]*source.Target, error) {
	f, err := os.Open(ref)
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
		return nil, fmt.Errorf("%s: not a regular file", ref)
	}
	a, err := Read(ctx, f, fi.Size(), path.Base(ref), opts, o.Limits)
	if err != nil {
		f.Close()
		return nil, err
	}
	if !a.ServedFromReader {
		f.Close() // tar content was copied out
	}
	closeAll := func() error {
		err := a.Close()
		if a.ServedFromReader {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		return err
	}
	info := model.SourceInfo{Kind: "archive", Name: ref}
	return []*source.Target{source.NewTarget(info, fsx.New(a.Tree), closeAll)}, nil
}

// Archive is a read archive.
type Archive struct {
	Tree   *fsx.MemTree
	Format Format
	// ServedFromReader is true when content is read from the archive's reader on demand (a zip): the
	// reader must stay open until Close.
	ServedFromReader bool
	close            func() error
}

// Close releases temporary data (a tar's spool).
func (a *Archive) Close() error {
	if a.close == nil {
		return nil
	}
	return a.close()
}

// Read reads an archive of any supported format from r. label names it in errors.
func Read(ctx context.Context, r io.ReaderAt, size int64, label string, opts source.Options, lim Limits) (*Archive, error) {
	switch format := Sniff(r, size); format {
	case Zip:
		t, err := readZip(ctx, r, size, label, opts.Want, lim)
		if err != nil {
			return nil, err
		}
		return &Archive{Tree: t, Format: format, ServedFromReader: true}, nil
	case Tar, CompressedTar:
		b := unpack.NewBuilder(opts.Want, opts.TempDir, lim)
		rd := unpack.ProgressReader(io.NewSectionReader(r, 0, size), opts.OnProgress, "archive", label, size)
		if err := b.Apply(ctx, rd, unpack.Stream{Label: "archive " + label}); err != nil {
			b.Close()
			return nil, err
		}
		return &Archive{Tree: b.Tree, Format: format, close: b.Close}, nil
	}
	return nil, fmt.Errorf("archive %s: not a zip, tar or compressed tar", label)
}

// maxLinkTarget bounds a zip symlink's target, stored as the entry's content.
const maxLinkTarget = 4096

func readZip(ctx context.Context, r io.ReaderAt, size int64, label string, want source.Filter, lim Limits) (*fsx.MemTree, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("archive %s: %w", label, err)
	}
	lim = lim.WithDefaults()
	maxEntries, maxBytes := lim.MaxEntries, lim.MaxStreamBytes
	if len(zr.File) > maxEntries {
		return nil, fmt.Errorf("archive %s: %w: %d entries, more than %d", label, unpack.ErrLimit, len(zr.File), maxEntries)
	}
	var total uint64
	var meta int64
	for _, f := range zr.File {
		meta += int64(len(f.Name))
		if meta > lim.MaxMetadata {
			return nil, fmt.Errorf("archive %s: %w: entry names pass %d bytes", label, unpack.ErrLimit, lim.MaxMetadata)
		}
		total += f.UncompressedSize64
		if total > uint64(maxBytes) || total < f.UncompressedSize64 {
			return nil, fmt.Errorf("archive %s: %w: entries declare more than %d uncompressed bytes (a zip bomb?)", label, unpack.ErrLimit, maxBytes)
		}
	}
	tree := fsx.NewMemTree()
	for i, f := range zr.File {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		name, err := unpack.EntryName(f.Name)
		if err != nil {
			return nil, fmt.Errorf("archive %s: entry %s: %w", label, unpack.Quote(f.Name), err)
		}
		if name == "." {
			continue
		}
		mode := f.Mode()
		n := &fsx.MemNode{ModTime: f.Modified}
		switch {
		case mode.IsDir() || (len(f.Name) > 0 && f.Name[len(f.Name)-1] == '/'):
			n.Mode = fs.ModeDir | perm(mode, 0o755)
		case mode&fs.ModeSymlink != 0:
			target, err := readLink(f)
			if err != nil {
				return nil, fmt.Errorf("archive %s: entry %s: %w", label, unpack.Quote(f.Name), err)
			}
			n.Mode, n.Link, n.Size = fs.ModeSymlink|0o777, target, int64(len(target))
		default:
			n.Mode = perm(mode, 0o644)
			n.Size = int64(f.UncompressedSize64)
			if want == nil || want(name, zipInfo{f, n}) {
				n.Content = zipContent(r, f)
			}
		}
		tree.Put(name, n)
	}
	return tree, nil
}

func perm(m fs.FileMode, def fs.FileMode) fs.FileMode {
	if p := m.Perm(); p != 0 {
		return p
	}
	return def
}

func readLink(f *zip.File) (string, error) {
	if f.UncompressedSize64 > maxLinkTarget {
		return "", fmt.Errorf("symbolic link target of %d bytes", f.UncompressedSize64)
	}
	rc, err := f.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := fsx.ReadAllLimit(rc, maxLinkTarget, f.Name)
	return string(b), err
}

// zipContent serves an entry: a stored one straight from the archive with random access, a
// compressed one through archive/zip, which checks its size and CRC.
func zipContent(r io.ReaderAt, f *zip.File) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		if f.Method == zip.Store && f.CompressedSize64 == f.UncompressedSize64 && f.Flags&0x1 == 0 {
			if off, err := f.DataOffset(); err == nil {
				return storedFile{io.NewSectionReader(r, off, int64(f.UncompressedSize64))}, nil
			}
		}
		return f.Open()
	}
}

type storedFile struct{ *io.SectionReader }

func (storedFile) Close() error { return nil }

// zipInfo describes an entry to the caller's filter.
type zipInfo struct {
	f *zip.File
	n *fsx.MemNode
}

func (i zipInfo) Name() string       { return path.Base(i.f.Name) }
func (i zipInfo) Size() int64        { return i.n.Size }
func (i zipInfo) Mode() fs.FileMode  { return i.n.Mode }
func (i zipInfo) ModTime() time.Time { return i.n.ModTime }
func (i zipInfo) IsDir() bool        { return false }
func (i zipInfo) Sys() any           { return nil }
