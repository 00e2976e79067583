package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"

	"github.com/masahiro331/go-xfs-filesystem/xfs"
)

// inodeCache is the inode cache go-xfs-filesystem accepts. It is bounded: when full it starts over.
// Callers hold the volume lock, so it needs none of its own.
type inodeCache struct{ m map[string]any }

const maxCachedInodes = 1 << 17

func newInodeCache() *inodeCache { return &inodeCache{m: map[string]any{}} }

func (c *inodeCache) Add(k string, v any) bool {
	if len(c.m) >= maxCachedInodes {
		clear(c.m)
	}
	c.m[k] = v
	return false
}

func (c *inodeCache) Get(k string) (any, bool) {
	v, ok := c.m[k]
	return v, ok
}

// checkXFSSuper checks the primary xfs superblock, so that garbage cannot make the library loop over
// billions of allocation groups or use a zero block size.
func checkXFSSuper(r io.ReaderAt, size int64) error {
	var b [512]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return fmt.Errorf("read xfs superblock: %w", err)
	}
	be := binary.BigEndian
	if string(b[:4]) != "XFSB" {
		return errors.New("no xfs superblock (bad magic)")
	}
	blockSize := be.Uint32(b[4:])
	dblocks := be.Uint64(b[8:])
	agblocks := be.Uint32(b[84:])
	agcount := be.Uint32(b[88:])
	inodeSize := be.Uint16(b[104:])
	inopblock := be.Uint16(b[106:])
	switch {
	case blockSize < 512 || blockSize > 65536 || blockSize&(blockSize-1) != 0:
		return fmt.Errorf("corrupt xfs superblock: block size %d", blockSize)
	case inodeSize < 256 || inodeSize > 2048 || inodeSize&(inodeSize-1) != 0 || inopblock == 0 || uint32(inodeSize)*uint32(inopblock) != blockSize:
		return fmt.Errorf("corrupt xfs superblock: inode size %d, %d inodes per block", inodeSize, inopblock)
	case agblocks == 0 || agcount == 0 || uint64(agblocks)*uint64(agcount) < dblocks:
		return fmt.Errorf("corrupt xfs superblock: %d allocation groups of %d blocks for %d blocks", agcount, agblocks, dblocks)
	case dblocks > uint64(size)/uint64(blockSize)+1 || uint64(agcount-1)*uint64(agblocks) > dblocks:
		return fmt.Errorf("corrupt xfs superblock: %d blocks of %d bytes do not fit in %d bytes", dblocks, blockSize, size)
	}
	return nil
}

// xfsBackend adapts go-xfs-filesystem. The library reads directories and regular files, but it has
// no ReadLink (its Open refuses links), keeps a link's target only for inline ("local") links and
// exposes no inode number; so link targets are read here from the inode on disk.
type xfsBackend struct {
	fs   *xfs.FileSystem
	r    io.ReaderAt
	size int64
}

func newXFS(r io.ReaderAt, size int64) (*xfsBackend, error) {
	if err := checkXFSSuper(r, size); err != nil {
		return nil, err
	}
	f, err := xfs.NewFS(*io.NewSectionReader(r, 0, size), newInodeCache())
	if err != nil {
		return nil, fmt.Errorf("open xfs: %w", err)
	}
	return &xfsBackend{fs: f, r: r, size: size}, nil
}

func (b *xfsBackend) rootInfo() (fs.FileInfo, error) { return b.fs.ReadDirInfo("/") }
func (b *xfsBackend) readDir(dir string, _ fs.DirEntry) ([]fs.DirEntry, error) {
	return b.fs.ReadDir(dir)
}
func (b *xfsBackend) open(name string, _ fs.FileInfo) (fs.File, error) { return b.fs.Open(name) }
func (b *xfsBackend) concurrent() bool                                 { return false }

const (
	xfsFmtLocal   = 1
	xfsFmtExtents = 2
	xfsSymlinkHdr = 56 // xfs_dsymlink_hdr on v5 (CRC) file systems
)

func (b *xfsBackend) readLink(name string, fi fs.FileInfo) (string, error) {
	ino, err := xfsInodeNumber(fi)
	if err != nil {
		return "", err
	}
	sb := b.fs.PrimaryAG.SuperBlock
	off := int64(sb.InodeAbsOffset(ino))
	if off < 0 || off+int64(sb.Inodesize) > b.size {
		return "", fmt.Errorf("inode %d lies past the end of the volume", ino)
	}
	buf := make([]byte, sb.Inodesize)
	if _, err := b.r.ReadAt(buf, off); err != nil {
		return "", fmt.Errorf("read inode %d: %w", ino, err)
	}
	be := binary.BigEndian
	if be.Uint16(buf[0:]) != 0x494e { // "IN"
		return "", fmt.Errorf("inode %d: bad magic", ino)
	}
	version, format := buf[4], buf[5]
	size := int64(be.Uint64(buf[56:]))
	nextents := be.Uint32(buf[76:])
	fork := 100
	if version == 3 {
		fork = 176
	}
	if size <= 0 || size > 1024 { // XFS_SYMLINK_MAXLEN
		return "", fmt.Errorf("inode %d: link target of %d bytes", ino, size)
	}
	switch format {
	case xfsFmtLocal:
		if fork+int(size) > len(buf) {
			return "", fmt.Errorf("inode %d: local link target overruns the inode", ino)
		}
		return string(buf[fork : fork+int(size)]), nil
	case xfsFmtExtents:
	default:
		return "", fmt.Errorf("inode %d: link in data fork format %d", ino, format)
	}
	if nextents == 0 || int(nextents)*16 > len(buf)-fork {
		return "", fmt.Errorf("inode %d: %d extents", ino, nextents)
	}
	bs := int64(sb.BlockSize)
	out := make([]byte, 0, size)
	for i := 0; i < int(nextents) && int64(len(out)) < size; i++ {
		l0 := be.Uint64(buf[fork+16*i:])
		l1 := be.Uint64(buf[fork+16*i+8:])
		start := (l0&(1<<9-1))<<43 | l1>>21
		count := int64(l1 & (1<<21 - 1))
		for j := int64(0); j < count && int64(len(out)) < size; j++ {
			p := sb.BlockToPhysicalOffset(start+uint64(j)) * bs
			if p <= 0 || p+bs > b.size {
				return "", fmt.Errorf("inode %d: link block out of range", ino)
			}
			blk := make([]byte, bs)
			if _, err := b.r.ReadAt(blk, p); err != nil {
				return "", fmt.Errorf("inode %d: read link block: %w", ino, err)
			}
			if version == 3 {
				if string(blk[:4]) != "XSLM" {
					return "", fmt.Errorf("inode %d: link block has bad magic", ino)
				}
				n := int64(be.Uint32(blk[8:]))
				if n > bs-xfsSymlinkHdr {
					n = bs - xfsSymlinkHdr
				}
				blk = blk[xfsSymlinkHdr : xfsSymlinkHdr+n]
			}
			out = append(out, blk[:min(int64(len(blk)), size-int64(len(out)))]...)
		}
	}
	if int64(len(out)) != size {
		return "", fmt.Errorf("inode %d: link target: read %d of %d bytes", ino, len(out), size)
	}
	return string(out), nil
}

// xfsInodeNumber digs the inode number out of a library FileInfo: the library keeps the inode in
// an unexported field and returns nil from Sys. Reflection here only reads.
func xfsInodeNumber(fi fs.FileInfo) (uint64, error) {
	v := reflect.ValueOf(fi)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if p := v.FieldByName("inode"); p.IsValid() && p.Kind() == reflect.Pointer && !p.IsNil() {
			if core := p.Elem().FieldByName("inodeCore"); core.IsValid() && core.Kind() == reflect.Struct {
				if ino := core.FieldByName("Ino"); ino.IsValid() && ino.Kind() == reflect.Uint64 && ino.Uint() != 0 {
					return ino.Uint(), nil
				}
			}
		}
	}
	return 0, fmt.Errorf("unexpected xfs file info %T (library changed?)", fi)
}
