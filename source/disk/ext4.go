package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"sync"
	"time"
)

// ext2/3/4 volumes are read by this file's own code, not by go-ext4-filesystem. The library was
// used first and worked, but it looks every path up from the root (re-reading every directory on
// the way, 0.6-0.9 s for a 12k-file Debian root), moves one shared seek offset (so every read must
// be serialised), exposes no inode (no link targets for ext2/3 links kept in a block, no inode
// numbers), and sizes allocations from on-disk values (a corrupt i_size makes GetBlockAddresses
// allocate without bound; a corrupt extent tree may reference one block many times). Here every
// directory is read once by inode, files are io.ReaderAt, and every walk is bounded.

// extSuper holds the superblock fields the reader uses.
type extSuper struct {
	inodes, inodesPerGroup, blocksPerGroup uint32
	blocks                                 uint64
	firstDataBlock                         uint32
	firstMetaBG                            uint32
	logBlockSize                           uint32
	inodeSize                              uint16
	descSize                               uint16
	compat, incompat, roCompat             uint32
}

const (
	extCompatJournal    = 0x4
	extIncompatFiletype = 0x2
	extIncompatJournDev = 0x8
	extIncompatMetaBG   = 0x10
	extIncompatExtents  = 0x40
	extIncompat64bit    = 0x80
	extIncompatFlexBG   = 0x200
	extIncompatEncrypt  = 0x10000
	extRoCompatSparse   = 0x1
	extRoCompatHuge     = 0x8

	extFlagExtents = 0x80000
	extFlagInline  = 0x10000000
	extRootIno     = 2
)

// readExtSuper reads and checks the ext2/3/4 superblock of a volume of size bytes.
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
		inodes: le.Uint32(b[0:]), blocks: uint64(le.Uint32(b[4:])), firstDataBlock: le.Uint32(b[20:]),
		logBlockSize: le.Uint32(b[24:]), blocksPerGroup: le.Uint32(b[32:]), inodesPerGroup: le.Uint32(b[40:]),
		inodeSize: 128, descSize: 32,
		compat: le.Uint32(b[92:]), incompat: le.Uint32(b[96:]), roCompat: le.Uint32(b[100:]),
	}
	if le.Uint32(b[76:]) >= 1 { // dynamic revision: the inode size is in the superblock
		sb.inodeSize = le.Uint16(b[88:])
	}
	if sb.incompat&extIncompat64bit != 0 {
		sb.blocks |= uint64(le.Uint32(b[0x150:])) << 32
		sb.descSize = le.Uint16(b[0xFE:])
	}
	if sb.incompat&extIncompatMetaBG != 0 {
		sb.firstMetaBG = le.Uint32(b[0x104:])
	}
	switch {
	case sb.logBlockSize > 6:
		return nil, fmt.Errorf("corrupt ext superblock: block size 2^%d KiB", sb.logBlockSize)
	case sb.blocksPerGroup == 0 || sb.inodesPerGroup == 0 || sb.inodes == 0:
		return nil, errors.New("corrupt ext superblock: zero blocks or inodes per group")
	case sb.inodeSize < 128 || sb.inodeSize&(sb.inodeSize-1) != 0 || int64(sb.inodeSize) > sb.blockSize():
		return nil, fmt.Errorf("corrupt ext superblock: inode size %d", sb.inodeSize)
	case sb.descSize < 32 || sb.descSize&(sb.descSize-1) != 0 || int64(sb.descSize) > sb.blockSize():
		return nil, fmt.Errorf("corrupt ext superblock: group descriptor size %d", sb.descSize)
	case sb.blocks == 0 || sb.blocks > uint64(size)/uint64(sb.blockSize())+1 || uint64(sb.firstDataBlock) >= sb.blocks:
		return nil, fmt.Errorf("corrupt ext superblock: %d blocks of %d bytes do not fit in %d bytes", sb.blocks, sb.blockSize(), size)
	case sb.incompat&extIncompatJournDev != 0:
		return nil, errors.New("ext volume is an external journal, not a file system")
	case sb.incompat&extIncompatEncrypt != 0:
		return nil, errors.New("encrypted ext4 file systems are not supported")
	}
	if want := (uint64(sb.inodes) + uint64(sb.inodesPerGroup) - 1) / uint64(sb.inodesPerGroup); want != sb.groups() {
		return nil, fmt.Errorf("corrupt ext superblock: %d block groups by blocks but %d by inodes", sb.groups(), want)
	}
	return sb, nil
}

func (sb *extSuper) blockSize() int64 { return 1024 << sb.logBlockSize }

// hasSuper reports whether block group g holds a superblock backup: with sparse_super, only groups
// 0, 1 and powers of 3, 5 and 7 do.
func (sb *extSuper) hasSuper(g uint64) bool {
	if sb.roCompat&extRoCompatSparse == 0 || g <= 1 {
		return true
	}
	for _, base := range []uint64{3, 5, 7} {
		p := base
		for p < g {
			p *= base
		}
		if p == g {
			return true
		}
	}
	return false
}

func (sb *extSuper) groups() uint64 {
	n := sb.blocks - uint64(sb.firstDataBlock)
	return (n + uint64(sb.blocksPerGroup) - 1) / uint64(sb.blocksPerGroup)
}

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

// extFS reads an ext2/3/4 volume. It is safe for concurrent use: it only calls ReadAt.
type extFS struct {
	r          io.ReaderAt
	size       int64
	sb         *extSuper
	bs         int64
	inodeTable []int64 // byte offset of each group's inode table
}

func newExtFS(r io.ReaderAt, size int64) (*extFS, error) {
	sb, err := readExtSuper(r, size)
	if err != nil {
		return nil, err
	}
	x := &extFS{r: r, size: size, sb: sb, bs: sb.blockSize()}
	groups := sb.groups()
	// Bounded: the group count follows from a block count checked against the volume size.
	perBlock := uint64(x.bs) / uint64(sb.descSize)
	gdtBlocks := (groups + perBlock - 1) / perBlock
	gdt := make([]byte, gdtBlocks*uint64(x.bs))
	for i := uint64(0); i < gdtBlocks; i++ {
		blk := int64(sb.firstDataBlock) + 1 + int64(i)
		if sb.incompat&extIncompatMetaBG != 0 && i >= uint64(sb.firstMetaBG) {
			// meta_bg: the descriptors of each meta group sit in the first group of that meta group,
			// after its superblock backup if it has one.
			g := i * perBlock
			blk = int64(sb.firstDataBlock) + int64(g)*int64(sb.blocksPerGroup)
			if sb.hasSuper(g) {
				blk++
			}
		}
		if _, err := r.ReadAt(gdt[i*uint64(x.bs):(i+1)*uint64(x.bs)], blk*x.bs); err != nil {
			return nil, fmt.Errorf("read %s group descriptors: %w", sb.kind(), err)
		}
	}
	x.inodeTable = make([]int64, groups)
	for g := range x.inodeTable {
		d := gdt[uint64(g)*uint64(sb.descSize):]
		blk := int64(binary.LittleEndian.Uint32(d[8:]))
		if sb.descSize >= 64 {
			blk |= int64(binary.LittleEndian.Uint32(d[0x28:])) << 32
		}
		if blk <= 0 || blk >= int64(sb.blocks) {
			return nil, fmt.Errorf("corrupt %s group descriptor %d: inode table at block %d", sb.kind(), g, blk)
		}
		x.inodeTable[g] = blk * x.bs
	}
	return x, nil
}

// extInode holds the inode fields the reader uses.
type extInode struct {
	ino     uint32
	mode    uint16
	size    int64
	mtime   int64
	flags   uint32
	blocks  uint64 // i_blocks in 512-byte units (or fs blocks with huge_file)
	fileACL uint64
	block   [60]byte
}

func (x *extFS) inode(ino uint32) (*extInode, error) {
	if ino == 0 || ino > x.sb.inodes {
		return nil, fmt.Errorf("inode %d out of range", ino)
	}
	g, idx := (ino-1)/x.sb.inodesPerGroup, (ino-1)%x.sb.inodesPerGroup
	var b [160]byte
	n := min(int(x.sb.inodeSize), len(b))
	if _, err := x.r.ReadAt(b[:n], x.inodeTable[g]+int64(idx)*int64(x.sb.inodeSize)); err != nil {
		return nil, fmt.Errorf("read inode %d: %w", ino, err)
	}
	le := binary.LittleEndian
	in := &extInode{
		ino: ino, mode: le.Uint16(b[0:]), size: int64(le.Uint32(b[4:])) | int64(le.Uint32(b[108:]))<<32,
		mtime: int64(int32(le.Uint32(b[16:]))), flags: le.Uint32(b[32:]),
		blocks:  uint64(le.Uint32(b[28:])) | uint64(le.Uint16(b[116:]))<<32,
		fileACL: uint64(le.Uint32(b[104:])) | uint64(le.Uint16(b[118:]))<<32,
	}
	copy(in.block[:], b[40:100])
	if in.size < 0 {
		return nil, fmt.Errorf("inode %d: size %d", ino, in.size)
	}
	return in, nil
}

func (in *extInode) fileMode() fs.FileMode {
	m := fs.FileMode(in.mode & 0o777)
	if in.mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	if in.mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if in.mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	switch in.mode & 0xF000 {
	case 0x8000:
	case 0x4000:
		m |= fs.ModeDir
	case 0xA000:
		m |= fs.ModeSymlink
	case 0x2000:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case 0x6000:
		m |= fs.ModeDevice
	case 0x1000:
		m |= fs.ModeNamedPipe
	case 0xC000:
		m |= fs.ModeSocket
	default:
		m |= fs.ModeIrregular
	}
	return m
}

// Limits for walking block maps, so that corrupt metadata cannot make the reader loop or allocate
// without bound.
const (
	maxExtents     = 1 << 20
	maxExtentNodes = 1 << 16
	maxDirSize     = 64 << 20
)

type extent struct {
	logical  int64 // first logical block
	physical int64 // first physical block
	length   int64
	uninit   bool // unwritten: reads as zeros
}

// mapping maps the logical blocks of one inode to physical blocks.
type mapping struct {
	x       *extFS
	in      *extInode
	extents []extent // sorted by logical block, when the inode uses extents

	mu    sync.Mutex
	ind   map[int64][]uint32 // indirect blocks read, by physical block (block-mapped inodes)
	indLn []int64
}

func (x *extFS) mapping(in *extInode) (*mapping, error) {
	m := &mapping{x: x, in: in}
	if in.flags&extFlagExtents == 0 {
		m.ind = map[int64][]uint32{}
		return m, nil
	}
	nodes := 0
	if err := m.walkExtents(in.block[:], -1, &nodes); err != nil {
		return nil, fmt.Errorf("inode %d: %w", in.ino, err)
	}
	sort.Slice(m.extents, func(i, j int) bool { return m.extents[i].logical < m.extents[j].logical })
	return m, nil
}

func (m *mapping) walkExtents(node []byte, wantDepth int, nodes *int) error {
	le := binary.LittleEndian
	if len(node) < 12 || le.Uint16(node[0:]) != 0xF30A {
		return errors.New("bad extent header")
	}
	entries, max, depth := int(le.Uint16(node[2:])), int(le.Uint16(node[4:])), int(le.Uint16(node[6:]))
	if entries > max || 12+12*entries > len(node) || depth > 5 || (wantDepth >= 0 && depth != wantDepth) {
		return fmt.Errorf("corrupt extent node (%d of %d entries, depth %d)", entries, max, depth)
	}
	for i := 0; i < entries; i++ {
		e := node[12+12*i:]
		if depth == 0 {
			if len(m.extents) >= maxExtents {
				return fmt.Errorf("more than %d extents", maxExtents)
			}
			n := int64(le.Uint16(e[4:]))
			uninit := n > 32768
			if uninit {
				n -= 32768
			}
			phys := int64(le.Uint16(e[6:]))<<32 | int64(le.Uint32(e[8:]))
			m.extents = append(m.extents, extent{logical: int64(le.Uint32(e[0:])), physical: phys, length: n, uninit: uninit})
			continue
		}
		*nodes++
		if *nodes > maxExtentNodes {
			return fmt.Errorf("more than %d extent tree nodes", maxExtentNodes)
		}
		child := int64(le.Uint16(e[8:]))<<32 | int64(le.Uint32(e[4:]))
		if child <= 0 || (child+1)*m.x.bs > m.x.size {
			return fmt.Errorf("extent node at block %d out of range", child)
		}
		buf := make([]byte, m.x.bs)
		if _, err := m.x.r.ReadAt(buf, child*m.x.bs); err != nil {
			return fmt.Errorf("read extent node: %w", err)
		}
		if err := m.walkExtents(buf, depth-1, nodes); err != nil {
			return err
		}
	}
	return nil
}

// phys returns the physical block of logical block lb and how many blocks follow contiguously
// (at least 1), or phys 0 for a hole.
func (m *mapping) phys(lb int64) (int64, int64, error) {
	if m.extents != nil || m.in.flags&extFlagExtents != 0 {
		i := sort.Search(len(m.extents), func(i int) bool { return m.extents[i].logical+m.extents[i].length > lb })
		if i == len(m.extents) || m.extents[i].logical > lb {
			next := int64(1)
			if i < len(m.extents) {
				next = m.extents[i].logical - lb
			}
			return 0, next, nil
		}
		e := m.extents[i]
		run := e.logical + e.length - lb
		if e.uninit {
			return 0, run, nil
		}
		return e.physical + lb - e.logical, run, nil
	}
	// Block map: 12 direct blocks, then single, double and triple indirect blocks.
	le := binary.LittleEndian
	apb := m.x.bs / 4
	if lb < 12 {
		return int64(le.Uint32(m.in.block[lb*4:])), 1, nil
	}
	lb -= 12
	var path []int64
	var root uint32
	switch {
	case lb < apb:
		root, path = le.Uint32(m.in.block[48:]), []int64{lb}
	case lb < apb+apb*apb:
		lb -= apb
		root, path = le.Uint32(m.in.block[52:]), []int64{lb / apb, lb % apb}
	default:
		lb -= apb + apb*apb
		if lb >= apb*apb*apb {
			return 0, 0, fmt.Errorf("block %d beyond the block map", lb)
		}
		root, path = le.Uint32(m.in.block[56:]), []int64{lb / (apb * apb), lb / apb % apb, lb % apb}
	}
	blk := int64(root)
	for _, idx := range path {
		if blk == 0 {
			return 0, 1, nil
		}
		ptrs, err := m.indirect(blk)
		if err != nil {
			return 0, 0, err
		}
		blk = int64(ptrs[idx])
	}
	return blk, 1, nil
}

func (m *mapping) indirect(blk int64) ([]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.ind[blk]; ok {
		return p, nil
	}
	if (blk+1)*m.x.bs > m.x.size {
		return nil, fmt.Errorf("indirect block %d out of range", blk)
	}
	buf := make([]byte, m.x.bs)
	if _, err := m.x.r.ReadAt(buf, blk*m.x.bs); err != nil {
		return nil, fmt.Errorf("read indirect block: %w", err)
	}
	p := make([]uint32, m.x.bs/4)
	for i := range p {
		p[i] = binary.LittleEndian.Uint32(buf[i*4:])
	}
	if len(m.indLn) >= 8 { // keep a few: reads are mostly sequential
		delete(m.ind, m.indLn[0])
		m.indLn = m.indLn[1:]
	}
	m.ind[blk] = p
	m.indLn = append(m.indLn, blk)
	return p, nil
}

// readAt reads the content of an inode of size bytes.
func (m *mapping) readAt(p []byte, off int64) (int, error) {
	size := m.in.size
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p, eof = p[:size-off], io.EOF
	}
	if m.in.flags&extFlagInline != 0 {
		if size > int64(len(m.in.block)) {
			return 0, fmt.Errorf("inode %d: inline data beyond the inode is not supported", m.in.ino)
		}
		return copy(p, m.in.block[off:size]), eof
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		lb, in := pos/m.x.bs, pos%m.x.bs
		phys, run, err := m.phys(lb)
		if err != nil {
			return n, err
		}
		chunk := p[n:]
		if max := run*m.x.bs - in; int64(len(chunk)) > max {
			chunk = chunk[:max]
		}
		if phys == 0 {
			clear(chunk)
		} else {
			start := phys*m.x.bs + in
			if phys < 0 || start+int64(len(chunk)) > m.x.size {
				return n, fmt.Errorf("inode %d: data block %d past the end of the volume", m.in.ino, phys)
			}
			if _, err := m.x.r.ReadAt(chunk, start); err != nil {
				return n, fmt.Errorf("inode %d: %w", m.in.ino, err)
			}
		}
		n += len(chunk)
	}
	return n, eof
}

// extBackend serves an extFS to volume.
type extBackend struct{ x *extFS }

func newExt4(r io.ReaderAt, size int64) (*extBackend, *extSuper, error) {
	x, err := newExtFS(r, size)
	if err != nil {
		return nil, nil, err
	}
	return &extBackend{x}, x.sb, nil
}

func (b *extBackend) rootInfo() (fs.FileInfo, error) {
	in, err := b.x.inode(extRootIno)
	if err != nil {
		return nil, err
	}
	return &extInfo{name: ".", in: in}, nil
}

func (b *extBackend) readDir(dir string, e fs.DirEntry) ([]fs.DirEntry, error) {
	ino := uint32(extRootIno)
	if e != nil {
		d, ok := e.(*dirent)
		if !ok {
			return nil, fmt.Errorf("unexpected entry %T", e)
		}
		ino = uint32(d.ino)
	}
	in, err := b.x.inode(ino)
	if err != nil {
		return nil, err
	}
	if in.mode&0xF000 != 0x4000 {
		return nil, fmt.Errorf("inode %d is not a directory", ino)
	}
	if in.size > maxDirSize {
		return nil, fmt.Errorf("directory inode %d of %d bytes", ino, in.size)
	}
	var data []byte
	if in.flags&extFlagInline != 0 {
		// Inline directory: the parent inode number, then entries, in the 60-byte block area.
		if in.size > int64(len(in.block)) {
			return nil, fmt.Errorf("inline directory inode %d beyond the inode is not supported", ino)
		}
		data = in.block[4:]
	} else {
		m, err := b.x.mapping(in)
		if err != nil {
			return nil, err
		}
		data = make([]byte, in.size)
		if n, err := m.readAt(data, 0); err != nil && !(err == io.EOF && n == len(data)) {
			return nil, err
		}
	}
	return b.parseDir(data, ino)
}

// parseDir reads linear directory entries. Hashed (htree) directories read the same way: their
// index blocks look like one empty entry spanning the block.
func (b *extBackend) parseDir(data []byte, dirIno uint32) ([]fs.DirEntry, error) {
	stat := func(ino uint64, name string) (fs.FileInfo, error) {
		in, err := b.x.inode(uint32(ino))
		if err != nil {
			return nil, err
		}
		return &extInfo{name: name, in: in}, nil
	}
	le := binary.LittleEndian
	filetype := b.x.sb.incompat&extIncompatFiletype != 0
	var out []fs.DirEntry
	bs := int(b.x.bs)
	for blk := 0; blk < len(data); blk += bs {
		block := data[blk:min(blk+bs, len(data))]
		for off := 0; off+8 <= len(block); {
			ino := le.Uint32(block[off:])
			recLen := int(le.Uint16(block[off+4:]))
			nameLen := int(block[off+6])
			ftype := block[off+7]
			if !filetype {
				nameLen = int(le.Uint16(block[off+6:]))
			}
			if recLen < 8 || recLen%4 != 0 || off+recLen > len(block) || 8+nameLen > recLen {
				return nil, fmt.Errorf("directory inode %d: corrupt entry at offset %d", dirIno, blk+off)
			}
			name := string(block[off+8 : off+8+nameLen])
			off += recLen
			if ino == 0 || name == "." || name == ".." {
				continue
			}
			d := &dirent{name: name, ino: uint64(ino), stat: stat}
			if filetype {
				d.typ, d.typOK = direntType(ftype)
			}
			if !d.typOK {
				// No type in the entry: read the inode now, as Type must not fail.
				if _, err := d.Info(); err != nil {
					return nil, err
				}
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func direntType(t byte) (fs.FileMode, bool) {
	switch t {
	case 1:
		return 0, true
	case 2:
		return fs.ModeDir, true
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case 4:
		return fs.ModeDevice, true
	case 5:
		return fs.ModeNamedPipe, true
	case 6:
		return fs.ModeSocket, true
	case 7:
		return fs.ModeSymlink, true
	}
	return 0, false
}

func (b *extBackend) open(name string, fi fs.FileInfo) (fs.File, error) {
	info, ok := fi.(*extInfo)
	if !ok {
		return nil, fmt.Errorf("unexpected file info %T", fi)
	}
	m, err := b.x.mapping(info.in)
	if err != nil {
		return nil, err
	}
	return &volumeFile{info: info, size: info.in.size, name: name, readAt: m.readAt}, nil
}

func (b *extBackend) readLink(name string, fi fs.FileInfo) (string, error) {
	info, ok := fi.(*extInfo)
	if !ok {
		return "", fmt.Errorf("unexpected file info %T", fi)
	}
	in := info.in
	if in.size <= 0 || in.size > maxLink {
		return "", fmt.Errorf("link target of %d bytes", in.size)
	}
	// A fast link keeps its target in the block area and owns no data block (an extended
	// attribute block may still be counted in i_blocks).
	dataBlocks := int64(in.blocks)
	if in.fileACL != 0 {
		dataBlocks -= b.x.bs / 512
	}
	if in.flags&extFlagInline != 0 || (dataBlocks <= 0 && in.size < int64(len(in.block))) {
		if in.size > int64(len(in.block)) {
			return "", fmt.Errorf("inline link target of %d bytes", in.size)
		}
		return string(in.block[:in.size]), nil
	}
	m, err := b.x.mapping(in)
	if err != nil {
		return "", err
	}
	buf := make([]byte, in.size)
	if n, err := m.readAt(buf, 0); err != nil && !(err == io.EOF && n == len(buf)) {
		return "", err
	}
	return string(buf), nil
}

// maxLink is the longest link target read (PATH_MAX).
const maxLink = 4096

type extInfo struct {
	name string
	in   *extInode
}

func (i *extInfo) Name() string       { return i.name }
func (i *extInfo) Size() int64        { return i.in.size }
func (i *extInfo) Mode() fs.FileMode  { return i.in.fileMode() }
func (i *extInfo) ModTime() time.Time { return time.Unix(i.in.mtime, 0) }
func (i *extInfo) IsDir() bool        { return i.Mode().IsDir() }
func (i *extInfo) Sys() any           { return nil }
