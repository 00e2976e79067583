package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/vigil-sec/vigil/source/image/unpack"
)

// maxArchiveEntries bounds the index of an image archive: real ones hold a few entries per layer.
const maxArchiveEntries = 100_000

// tarIndex locates the entries of an uncompressed tar file, so that blobs are served straight from it
// with io.SectionReader: an image archive is never extracted.
type tarIndex struct {
	f       *os.File
	entries map[string]tarEntry
}

type tarEntry struct {
	off, size int64
	link      string // symlink target, resolved against the entry's directory
	hard      string // hard link target
}

// openTarIndex reads every header of the tar at p once (content is skipped by seeking).
func openTarIndex(p string) (*tarIndex, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	idx, err := indexTar(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return idx, nil
}

func indexTar(f *os.File) (*tarIndex, error) {
	idx := &tarIndex{f: f, entries: map[string]tarEntry{}}
	tr := tar.NewReader(f)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("not a readable tar (entry %d): %w", i+1, err)
		}
		if i >= maxArchiveEntries {
			return nil, fmt.Errorf("%w: more than %d entries in an image archive", unpack.ErrLimit, maxArchiveEntries)
		}
		name, err := unpack.EntryName(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", unpack.Quote(hdr.Name), err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			// archive/tar reads headers block by block straight from f, so f's offset is the data's.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			idx.entries[name] = tarEntry{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			idx.entries[name] = tarEntry{link: path.Join(path.Dir(name), hdr.Linkname)}
		case tar.TypeLink:
			idx.entries[name] = tarEntry{hard: hdr.Linkname}
		}
	}
	return idx, nil
}

// open returns the content of the named entry, following links (a docker save tarball links layers
// it holds twice).
func (t *tarIndex) open(name string) (*io.SectionReader, error) {
	name, _ = unpack.EntryName(name)
	for hops := 0; hops < 16; hops++ {
		e, ok := t.entries[name]
		if !ok {
			return nil, fmt.Errorf("%s: not in the archive", name)
		}
		switch {
		case e.link != "":
			n, err := unpack.EntryName(e.link)
			if err != nil {
				return nil, fmt.Errorf("%s: link to %q: %w", name, e.link, err)
			}
			name = n
		case e.hard != "":
			n, err := unpack.EntryName(e.hard)
			if err != nil {
				return nil, fmt.Errorf("%s: hard link to %q: %w", name, e.hard, err)
			}
			name = n
		default:
			return io.NewSectionReader(t.f, e.off, e.size), nil
		}
	}
	return nil, fmt.Errorf("%s: too many links", name)
}

func (t *tarIndex) has(name string) bool {
	_, ok := t.entries[name]
	return ok
}

// readSmall reads a metadata entry (manifest, config, index), refusing huge ones.
func (t *tarIndex) readSmall(name string) ([]byte, error) {
	sr, err := t.open(name)
	if err != nil {
		return nil, err
	}
	return readMeta(sr, name)
}

func (t *tarIndex) Close() error { return t.f.Close() }

// maxMetaBytes caps manifests, indexes and configs: real ones are kilobytes.
const maxMetaBytes = 8 << 20

func readMeta(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMetaBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > maxMetaBytes {
		return nil, fmt.Errorf("%s: %w: metadata over %d bytes", name, unpack.ErrLimit, maxMetaBytes)
	}
	return b, nil
}

// tarHas reports, reading only headers and stopping early, whether the file at p is a tar holding an
// entry named want at its top.
func tarHas(p, want string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	var block [512]byte
	if _, err := io.ReadFull(f, block[:]); err != nil || string(block[257:262]) != "ustar" {
		return false
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	tr := tar.NewReader(f)
	for i := 0; i < 10_000; i++ {
		hdr, err := tr.Next()
		if err != nil {
			return false
		}
		if n, err := unpack.EntryName(hdr.Name); err == nil && n == want {
			return true
		}
	}
	return false
}
