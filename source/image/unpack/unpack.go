// Package unpack streams tar archives (image layers, tarballs) into an fsx.MemTree, reading each
// stream exactly once. It keeps the metadata of every entry and the content only of the regular files
// a source.Filter wants: small files in memory, larger ones spooled to one temporary file that is served
// back with io.SectionReader. Image layers are applied with OCI whiteout semantics.
//
// Everything read is untrusted: names that are absolute or climb with ".." are rejected with an error
// naming the entry and the stream, decompressed bytes, entries, memory and spool are capped, and no byte
// is written anywhere but the spool file.
package unpack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
)

// Limits bound what one target may cost. Zero fields take the defaults.
type Limits struct {
	// MaxStreamBytes caps the decompressed bytes of one stream (a layer, an archive): a gzip bomb
	// fails here instead of running for hours.
	MaxStreamBytes int64
	// MaxEntries caps the entries of the whole tree (a few hundred bytes of memory each).
	MaxEntries int
	// MaxMetadata caps the bytes of entry names and link targets kept in the tree.
	MaxMetadata int64
	// MaxMemory caps the file content kept in memory; past it, wanted files go to the spool.
	MaxMemory int64
	// MaxSpool caps the bytes written to the spool file.
	MaxSpool int64
	// SmallFile is the size up to which wanted files are kept in memory.
	SmallFile int64
}

// Defaults.
const (
	DefaultMaxStreamBytes = 32 << 30
	DefaultMaxEntries     = 500_000
	DefaultMaxMetadata    = 64 << 20
	DefaultMaxMemory      = 1 << 20
	DefaultMaxSpool       = 8 << 30
	DefaultSmallFile      = 1 << 20
)

// WithDefaults returns l with zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxStreamBytes <= 0 {
		l.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxMetadata <= 0 {
		l.MaxMetadata = DefaultMaxMetadata
	}
	if l.MaxMemory <= 0 {
		l.MaxMemory = DefaultMaxMemory
	}
	if l.MaxSpool <= 0 {
		l.MaxSpool = DefaultMaxSpool
	}
	if l.SmallFile <= 0 {
		l.SmallFile = DefaultSmallFile
	}
	return l
}

// Errors callers may test for.
var (
	ErrUnsafeName = errors.New("unsafe entry name")
	ErrLimit      = errors.New("limit exceeded")
)

// Builder accumulates streams into one tree. It is not safe for concurrent use.
type Builder struct {
	Tree    *fsx.MemTree
	want    source.Filter
	lim     Limits
	tempDir string

	spool    *os.File
	spoolOff int64
	memUsed  int64
	metaUsed int64
	entries  int
	closed   bool

	// skipped holds hashes of the names of regular files left out (want said no).
	skipped map[uint64]struct{}
	seed    maphash.Seed
}

// NewBuilder returns a builder that keeps the content of files want accepts (nil keeps all) and spools
// to tempDir ("" is os.TempDir()).
func NewBuilder(want source.Filter, tempDir string, lim Limits) *Builder {
	return &Builder{Tree: fsx.NewMemTree(), want: want, lim: lim.WithDefaults(), tempDir: tempDir}
}

// Close removes the spool. Content served from it fails afterwards.
func (b *Builder) Close() error {
	if b.closed || b.spool == nil {
		b.closed = true
		return nil
	}
	b.closed = true
	name := b.spool.Name()
	err := b.spool.Close()
	// The file was unlinked at creation; this only matters where that failed.
	if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// Stream describes one tar stream to apply.
type Stream struct {
	// Label names the stream in errors: "layer sha256:…", "archive app.tgz".
	Label string
	// Layer is recorded on every node the stream writes (MemNode.Layer); "" for plain archives.
	Layer string
	// Whiteouts applies OCI whiteout files (".wh.NAME", ".wh..wh..opq") to the lower streams.
	Whiteouts bool
}

// Apply reads one tar stream, compressed with gzip or zstd or not at all (told by magic bytes), into
// the tree.
func (b *Builder) Apply(ctx context.Context, r io.Reader, s Stream) error {
	if b.closed {
		return errors.New("unpack: builder closed")
	}
	dr, closeDec, err := Decompress(r)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Label, err)
	}
	defer closeDec()
	lr := &limitReader{r: dr, n: b.lim.MaxStreamBytes, max: b.lim.MaxStreamBytes}
	ra := newReadahead(lr)
	defer ra.stop()
	if err := b.applyTar(ctx, ra, s); err != nil {
		return err
	}
	// Read what follows the end-of-archive blocks, so that a corrupt or truncated compressed stream
	// (its checksum is at the end) is reported rather than ignored.
	if _, err := io.Copy(io.Discard, ra); err != nil {
		return fmt.Errorf("%s: after the last entry: %w", s.Label, err)
	}
	return nil
}

// Decompress detects gzip or zstd by magic bytes and returns the decompressed stream; other input is
// returned as it is. The returned func releases the decoder.
func Decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		// A bounded window keeps a hostile frame from asking for gigabytes.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20),
			zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	case len(magic) >= 3 && magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h':
		return nil, nil, errors.New("bzip2-compressed streams are not supported")
	case len(magic) == 4 && bytes.Equal(magic, []byte{0xfd, '7', 'z', 'X'}):
		return nil, nil, errors.New("xz-compressed streams are not supported")
	}
	return br, func() {}, nil
}

type limitReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: a stream of exactly the limit is fine.
		var one [1]byte
		if n, err := l.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("%w: more than %d decompressed bytes (a decompression bomb?)", ErrLimit, l.max)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func (b *Builder) applyTar(ctx context.Context, r io.Reader, s Stream) error {
	tail := &tailReader{r: r}
	tr := tar.NewReader(tail)
	var touched map[string]struct{}
	if s.Whiteouts {
		touched = map[string]struct{}{}
	}
	for i := 0; ; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// archive/tar takes a stream that stops at an entry boundary for a complete one; a real
			// end has a zero block.
			if tail.eof && !tail.zeroBlock() {
				return fmt.Errorf("%s: after entry %d: %w (no end-of-archive marker)", s.Label, i, io.ErrUnexpectedEOF)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: reading entry %d: %w", s.Label, i+1, truncated(err))
		}
		if err := b.entry(tr, hdr, s, touched); err != nil {
			return err
		}
	}
}

// tailReader remembers the last block read and whether the source ended.
type tailReader struct {
	r    io.Reader
	last [512]byte
	n    int
	eof  bool
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n >= len(t.last) {
		copy(t.last[:], p[n-len(t.last):n])
		t.n = len(t.last)
	} else if n > 0 {
		keep := min(t.n, len(t.last)-n)
		copy(t.last[:keep], t.last[t.n-keep:t.n])
		copy(t.last[keep:], p[:n])
		t.n = keep + n
	}
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}

func (t *tailReader) zeroBlock() bool {
	if t.n < len(t.last) {
		return t.n == 0
	}
	for _, c := range t.last {
		if c != 0 {
			return false
		}
	}
	return true
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// EntryName turns a raw archive name into an io/fs name ("." for the root). Absolute names and names
// with a ".." element are refused: a well-made layer or package never has them, and clamping them
// would silently put a file where its author did not.
func EntryName(raw string) (string, error) {
	if len(raw) > MaxNameLen {
		return "", fmt.Errorf("%w: name longer than %d bytes", ErrUnsafeName, MaxNameLen)
	}
	n := strings.ReplaceAll(raw, "\\", "/")
	if strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':' && isLetter(n[0])) {
		return "", fmt.Errorf("%w: absolute name", ErrUnsafeName)
	}
	if fsx.HasDotDot(n) {
		return "", fmt.Errorf("%w: name climbs out with \"..\"", ErrUnsafeName)
	}
	if strings.IndexByte(n, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL in name", ErrUnsafeName)
	}
	// io/fs names are UTF-8; a Latin-1 or CP437 name stays reachable with its bad bytes replaced.
	return fsx.Clean(strings.ToValidUTF8(n, "\uFFFD")), nil
}

// Quote quotes an entry name for an error message, cutting a hostile one short.
func Quote(name string) string {
	if len(name) > 256 {
		return fmt.Sprintf("%q… (%d bytes)", name[:256], len(name))
	}
	return fmt.Sprintf("%q", name)
}

// MaxNameLen is Linux's PATH_MAX: no real file has a longer name or link target.
const MaxNameLen = 4096

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

const whiteoutPrefix = ".wh."
const opaqueMarker = ".wh..wh..opq"

func (b *Builder) entry(tr *tar.Reader, hdr *tar.Header, s Stream, touched map[string]struct{}) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := EntryName(hdr.Name)
	if err != nil {
		return fmt.Errorf("%s: entry %s: %w", s.Label, Quote(hdr.Name), err)
	}
	if name == "." {
		return nil // the root's own entry
	}
	fail := func(err error) error { return fmt.Errorf("%s: entry %s: %w", s.Label, Quote(hdr.Name), err) }

	if s.Whiteouts {
		dir, base := path.Dir(name), path.Base(name)
		if strings.HasPrefix(base, whiteoutPrefix) {
			switch {
			case base == opaqueMarker:
				if n, ok := b.Tree.Get(dir); !ok || !n.Mode.IsDir() {
					b.Tree.Put(dir, &MemNode{Mode: fs.ModeDir | 0o755, Layer: s.Layer})
				}
				markTouched(touched, dir)
				b.opaque(dir, touched)
			case strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix):
				// Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the file system.
			default:
				// ".wh." or ".wh.." would name the directory itself: not a whiteout anyone writes.
				if victim := base[len(whiteoutPrefix):]; victim != "" && victim != "." && victim != ".." {
					b.removeLower(path.Join(dir, victim), touched)
				}
			}
			return nil
		}
	}

	b.entries++
	if b.entries > b.lim.MaxEntries {
		return fail(fmt.Errorf("%w: more than %d entries", ErrLimit, b.lim.MaxEntries))
	}
	if len(hdr.Linkname) > MaxNameLen {
		return fail(fmt.Errorf("%w: link target longer than %d bytes", ErrUnsafeName, MaxNameLen))
	}
	b.metaUsed += int64(len(name) + len(hdr.Linkname))
	if b.metaUsed > b.lim.MaxMetadata {
		return fail(fmt.Errorf("%w: names and link targets pass %d bytes", ErrLimit, b.lim.MaxMetadata))
	}
	fi := hdr.FileInfo()
	n := &MemNode{Mode: fi.Mode(), ModTime: hdr.ModTime, Layer: s.Layer}
	switch hdr.Typeflag {
	case tar.TypeDir:
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		n.Mode = fi.Mode().Perm() | (fi.Mode() & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
		n.Size = hdr.Size
		if b.want != nil && !b.want(name, fi) {
			// A file no extractor reads is not needed in the tree at all: the engine asks the same
			// filter before it opens anything. Leaving it out keeps an image's tree (most of whose
			// files are never read) small. What it replaces goes, as it would on extraction.
			b.skip(name, touched)
			return nil
		}
		c, err := b.keep(tr, hdr.Size)
		if err != nil {
			return fail(err)
		}
		n.Content = c
	case tar.TypeSymlink:
		n.Link = hdr.Linkname
		n.Size = int64(len(hdr.Linkname))
	case tar.TypeLink:
		target, err := EntryName(hdr.Linkname)
		if err != nil {
			return fail(fmt.Errorf("hard link to %q: %w", hdr.Linkname, err))
		}
		t, ok := b.Tree.Get(target)
		if !ok && b.wasSkipped(target) {
			if !b.want(name, fi) {
				b.skip(name, touched)
				return nil
			}
			// Wanted under this name, left out under its first one: say so when it is opened.
			n.Mode = fi.Mode().Perm()
			n.Size = 1
			n.Content = func() (io.ReadCloser, error) {
				return nil, fmt.Errorf("hard link to %s, whose content was not kept", Quote(target))
			}
			break
		}
		if !ok || t.Mode.IsDir() {
			return fail(fmt.Errorf("hard link to %q, which is not an earlier file", hdr.Linkname))
		}
		// A hard link is the same file: same content, kept or not as its target was.
		n.Mode = t.Mode.Type() | fi.Mode().Perm()
		n.Size, n.Link, n.Content = t.Size, t.Link, t.Content
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return nil // vendor extensions carry no file
	}
	b.Tree.Put(name, n)
	markTouched(touched, name)
	return nil
}

// MemNode is fsx.MemNode, named here for brevity.
type MemNode = fsx.MemNode

func markTouched(touched map[string]struct{}, name string) {
	if touched == nil {
		return
	}
	for name != "." {
		if _, ok := touched[name]; ok {
			return
		}
		touched[name] = struct{}{}
		name = path.Dir(name)
	}
}

// skip leaves a regular file out of the tree: whatever an earlier entry put at name goes, and a
// hash of the name is remembered so that a later hard link to it is told from a dangling one.
func (b *Builder) skip(name string, touched map[string]struct{}) {
	if _, ok := b.Tree.Get(name); ok {
		b.Tree.Remove(name)
	}
	if b.skipped == nil {
		b.skipped = map[uint64]struct{}{}
		b.seed = maphash.MakeSeed()
	}
	b.skipped[maphash.String(b.seed, name)] = struct{}{}
	markTouched(touched, name)
}

func (b *Builder) wasSkipped(name string) bool {
	if b.skipped == nil {
		return false
	}
	_, ok := b.skipped[maphash.String(b.seed, name)]
	return ok
}

// removeLower deletes what lower streams put at name, keeping what this stream wrote: whiteouts apply
// only to lower layers (OCI image spec, "Whiteouts").
func (b *Builder) removeLower(name string, touched map[string]struct{}) {
	n, ok := b.Tree.Get(name)
	if !ok || name == "." {
		return
	}
	if _, mine := touched[name]; !mine {
		b.Tree.Remove(name)
		return
	}
	if n.Mode.IsDir() {
		b.opaque(name, touched)
	}
}

// opaque clears what lower streams put below dir.
func (b *Builder) opaque(dir string, touched map[string]struct{}) {
	ents, err := b.Tree.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		child := e.Name()
		if dir != "." {
			child = dir + "/" + child
		}
		b.removeLower(child, touched)
	}
}

// keep reads size bytes of content and returns how to open them again.
func (b *Builder) keep(r io.Reader, size int64) (func() (io.ReadCloser, error), error) {
	if size == 0 {
		return nil, nil
	}
	if size <= b.lim.SmallFile && b.memUsed+size <= b.lim.MaxMemory {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, truncated(err)
		}
		b.memUsed += size
		return func() (io.ReadCloser, error) { return bytesFile{bytes.NewReader(buf)}, nil }, nil
	}
	if b.spoolOff+size > b.lim.MaxSpool {
		return nil, fmt.Errorf("%w: spooling %d more bytes would pass the %d-byte spool cap", ErrLimit, size, b.lim.MaxSpool)
	}
	if b.spool == nil {
		f, err := os.CreateTemp(b.tempDir, "vigil-spool-*")
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		// Unlink now: the data goes away with the process even if Close is never called.
		os.Remove(f.Name())
		b.spool = f
	}
	off := b.spoolOff
	n, err := io.CopyN(b.spool, r, size)
	b.spoolOff += n
	if err != nil {
		return nil, fmt.Errorf("spool: %w", truncated(err))
	}
	f := b.spool
	return func() (io.ReadCloser, error) {
		if b.closed {
			return nil, fs.ErrClosed
		}
		return sectionFile{io.NewSectionReader(f, off, size)}, nil
	}, nil
}

// bytesFile and sectionFile keep ReadAt visible, so fsx serves kept files with random access.
type bytesFile struct{ *bytes.Reader }

func (bytesFile) Close() error { return nil }

type sectionFile struct{ *io.SectionReader }

func (sectionFile) Close() error { return nil }

// Usage reports the content bytes kept in memory and in the spool, and the entries read.
func (b *Builder) Usage() (memory, spool int64, entries int) {
	return b.memUsed, b.spoolOff, b.entries
}
