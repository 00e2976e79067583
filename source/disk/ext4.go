package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"

	"github.com/masahiro331/go-ext4-filesystem/ext4"
)

// extSuper holds the superblock fields checked before the library sees the volume.
type extSuper struct {
	inodes, inodesPerGroup, blocksPerGroup uint32
	blocks                                 uint64
	logBlockSize                           uint32
	inodeSize                              uint16
	compat, incompat, roCompat             uint32
}

const (
	extCompatJournal    = 0x4
	extIncompatExtents  = 0x40
	extIncompat64bit    = 0x80
	extIncompatFlexBG   = 0x200
	extIncompatMetaBG   = 0x10
	extIncompatInline   = 0x8000
	extIncompatEncrypt  = 0x10000
	extIncompatJournDev = 0x8
)

// readExtSuper reads and checks the ext2/3/4 superblock of a volume of size bytes, so that garbage
// cannot make the library divide by zero or read gigabytes of group descriptors.
func readExtSuper(r io.ReaderAt, size int64) (*extSuper, error) {
	var b [1024]byte
	if _, err := r.ReadAt(b[:], 1024); err != nil {
		return nil, fmt.Errorf("read ext superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(b[56:]) != 0xEF53 {
		return nil, errors.New("no ext2/3/4 superblock (bad magic)")
	}
	sb := &extSuper{
		inodes: le.Uint32(b[0:]), blocks: uint64(le.Uint32(b[4:])), logBlockSize: le.Uint32(b[24:]),
		blocksPerGroup: le.Uint32(b[32:]), inodesPerGroup: le.Uint32(b[40:]), inodeSize: 128,
		compat: le.Uint32(b[92:]), incompat: le.Uint32(b[96:]), roCompat: le.Uint32(b[100:]),
	}
	if le.Uint32(b[76:]) >= 1 { // dynamic revision: the inode size is in the superblock
		sb.inodeSize = le.Uint16(b[88:])
	}
	if sb.incompat&extIncompat64bit != 0 {
		sb.blocks |= uint64(le.Uint32(b[0x150:])) << 32
	}
	switch {
	case sb.logBlockSize > 6:
		return nil, fmt.Errorf("corrupt ext superblock: block size 2^%d KiB", sb.logBlockSize)
	case sb.blocksPerGroup == 0 || sb.inodesPerGroup == 0 || sb.inodes == 0:
		return nil, errors.New("corrupt ext superblock: zero blocks or inodes per group")
	case sb.inodeSize < 128 || sb.inodeSize&(sb.inodeSize-1) != 0 || int64(sb.inodeSize) > sb.blockSize():
		return nil, fmt.Errorf("corrupt ext superblock: inode size %d", sb.inodeSize)
	case sb.blocks == 0 || sb.blocks > uint64(size)/uint64(sb.blockSize())+1:
		return nil, fmt.Errorf("corrupt ext superblock: %d blocks of %d bytes do not fit in %d bytes", sb.blocks, sb.blockSize(), size)
	case sb.incompat&extIncompatJournDev != 0:
		return nil, errors.New("ext volume is an external journal, not a file system")
	case sb.incompat&extIncompatMetaBG != 0:
		return nil, errors.New("ext file systems with meta_bg are not supported")
	case sb.incompat&extIncompatEncrypt != 0:
		return nil, errors.New("encrypted ext4 file systems are not supported")
	}
	groups := (sb.blocks + uint64(sb.blocksPerGroup) - 1) / uint64(sb.blocksPerGroup)
	if want := (uint64(sb.inodes) + uint64(sb.inodesPerGroup) - 1) / uint64(sb.inodesPerGroup); want != groups {
		return nil, fmt.Errorf("corrupt ext superblock: %d block groups by blocks but %d by inodes", groups, want)
	}
	return sb, nil
}

func (sb *extSuper) blockSize() int64 { return 1024 << sb.logBlockSize }

// kind names the file system as users know it.
func (sb *extSuper) kind() string {
	switch {
	case sb.incompat&(extIncompatExtents|extIncompat64bit|extIncompatFlexBG) != 0:
		return "ext4"
	case sb.compat&extCompatJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// ext4Backend adapts go-ext4-filesystem. The library reads regular files and directories well, but
// it exposes no inode through FileInfo.Sys and its ReadLink cleans the target and slices the inode's
// 60-byte block area with the link length, which fails for ext2/3 links stored in a block; so link
// targets are read here from the inode fields the library parsed.
type ext4Backend struct {
	fs        *ext4.FileSystem
	r         io.ReaderAt
	size      int64
	blockSize int64
}

func newExt4(r io.ReaderAt, size int64) (*ext4Backend, *extSuper, error) {
	sb, err := readExtSuper(r, size)
	if err != nil {
		return nil, nil, err
	}
	f, err := ext4.NewFS(*io.NewSectionReader(r, 0, size), newInodeCache())
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", sb.kind(), err)
	}
	return &ext4Backend{fs: f, r: r, size: size, blockSize: sb.blockSize()}, sb, nil
}

func (b *ext4Backend) rootInfo() (fs.FileInfo, error)            { return b.fs.ReadDirInfo("/") }
func (b *ext4Backend) readDir(dir string) ([]fs.DirEntry, error) { return b.fs.ReadDir(dir) }
func (b *ext4Backend) open(name string) (fs.File, error)         { return b.fs.Open(name) }

// maxLink is the longest link target read (PATH_MAX).
const maxLink = 4096

func (b *ext4Backend) readLink(name string, fi fs.FileInfo) (string, error) {
	in, err := ext4InodeOf(fi)
	if err != nil {
		return "", err
	}
	size := int64(in.SizeLo) | int64(in.SizeHigh)<<32
	if size <= 0 || size > maxLink {
		return "", fmt.Errorf("link target of %d bytes", size)
	}
	// A fast link keeps its target in the block area; it owns no data blocks (an extended
	// attribute block may still be counted in i_blocks).
	dataBlocks := int64(in.BlocksLo)
	if in.FileACLLo != 0 || in.FileACLHigh != 0 {
		dataBlocks -= b.blockSize / 512
	}
	if dataBlocks <= 0 && size < int64(len(in.BlockOrExtents)) {
		return string(in.BlockOrExtents[:size]), nil
	}
	var phys []int64 // physical block of each logical block of the target
	nblocks := (size + b.blockSize - 1) / b.blockSize
	if in.Flags&ext4.EXTENTS_FL != 0 {
		exts, err := b.fs.Extents(in)
		if err != nil {
			return "", err
		}
		for lb := int64(0); lb < nblocks; lb++ {
			p := int64(-1)
			for _, e := range exts {
				if int64(e.Block) <= lb && lb < int64(e.Block)+int64(e.GetLen()) {
					p = (int64(e.StartHi)<<32 | int64(e.StartLo)) + lb - int64(e.Block)
				}
			}
			phys = append(phys, p)
		}
	} else {
		for lb := int64(0); lb < nblocks && lb < 12; lb++ {
			phys = append(phys, int64(binary.LittleEndian.Uint32(in.BlockOrExtents[lb*4:])))
		}
	}
	buf := make([]byte, 0, size)
	for _, p := range phys {
		if p <= 0 || p*b.blockSize >= b.size {
			return "", fmt.Errorf("link target block %d out of range", p)
		}
		blk := make([]byte, min(b.blockSize, size-int64(len(buf))))
		if _, err := b.r.ReadAt(blk, p*b.blockSize); err != nil {
			return "", fmt.Errorf("read link target: %w", err)
		}
		buf = append(buf, blk...)
	}
	if int64(len(buf)) != size {
		return "", fmt.Errorf("link target: read %d of %d bytes", len(buf), size)
	}
	return string(buf), nil
}

// ext4InodeOf copies the inode behind a library FileInfo. The library keeps it in an unexported
// field and returns nil from Sys, so reflection (read-only, no unsafe) is the only way to it. Its
// exported type lets us hand the copy back to the library (Extents).
func ext4InodeOf(fi fs.FileInfo) (*ext4.Inode, error) {
	v := reflect.ValueOf(fi)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("unexpected ext4 file info %T", fi)
	}
	p := v.FieldByName("inode")
	if !p.IsValid() || p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Type() != reflect.TypeOf(ext4.Inode{}) {
		return nil, fmt.Errorf("unexpected ext4 file info %T (library changed?)", fi)
	}
	src := p.Elem()
	var in ext4.Inode
	dst := reflect.ValueOf(&in).Elem()
	for i := 0; i < src.NumField(); i++ {
		copyValue(dst.Field(i), src.Field(i))
	}
	return &in, nil
}

// copyValue copies the numeric fields and arrays of an inode read through an unexported field:
// such values cannot be passed to Set directly, but their contents can be read.
func copyValue(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		dst.SetUint(src.Uint())
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		dst.SetInt(src.Int())
	case reflect.Array:
		for i := 0; i < src.Len(); i++ {
			copyValue(dst.Index(i), src.Index(i))
		}
	}
}
