// Package qcow2 reads the virtual disk of a QEMU qcow2 image (versions 2 and 3) as an io.ReaderAt.
//
// It reads only: refcounts and snapshots are ignored, unallocated and zero clusters read as zeros and
// deflate-compressed clusters are inflated. Images with a backing file, encryption, an external data
// file, extended L2 entries or zstd compression are refused with an error that says so. Every size
// and offset in the header and tables is checked before use, so a corrupt image cannot make the
// reader allocate without bound or read outside the file.
package qcow2

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Magic is the first four bytes of every qcow2 image.
const Magic = "QFI\xfb"

const (
	minClusterBits = 9
	maxClusterBits = 21
	// maxVirtualSize bounds the disk size a header may claim (64 TiB).
	maxVirtualSize = 64 << 40
	// maxL1Bytes bounds the L1 table held in memory.
	maxL1Bytes = 32 << 20
	// l2CacheTables is how many L2 tables are kept; each is one cluster.
	l2CacheTables = 32

	offsetMask = 0x00fffffffffffe00 // host offset bits of L1 and standard L2 entries
	flagCompr  = 1 << 62
	flagZero   = 1 // v3 "reads as zeros" bit of a standard L2 entry

	incompatDirty      = 1 << 0
	incompatCorrupt    = 1 << 1
	incompatDataFile   = 1 << 2
	incompatCompressT  = 1 << 3
	incompatExtendedL2 = 1 << 4
)

// Header holds the fields of a qcow2 header that the reader uses.
type Header struct {
	Version       uint32
	BackingFile   string
	BackingFormat string // from the header extension: "raw", "qcow2" or ""
	ClusterBits   uint32
	Size          uint64 // virtual disk size in bytes
	CryptMethod   uint32
	L1Size        uint32
	L1TableOffset uint64
	Incompatible  uint64
	Compression   byte // 0 deflate, 1 zstd
}

// ErrBackingFile is returned for images that need a backing file to be read.
var ErrBackingFile = errors.New("qcow2 image has a backing file (open it with OpenFile, or flatten it with `qemu-img convert -O qcow2`)")

// ParseHeader decodes and checks a header. fileSize is the size of the image file, used to check
// that tables lie inside it.
func ParseHeader(r io.ReaderAt, fileSize int64) (*Header, error) {
	var b [112]byte
	n, err := r.ReadAt(b[:], 0)
	if n < 72 {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("qcow2 header: %w", err)
	}
	if string(b[:4]) != Magic {
		return nil, fmt.Errorf("qcow2 header: bad magic %q", b[:4])
	}
	be := binary.BigEndian
	h := &Header{
		Version:       be.Uint32(b[4:]),
		ClusterBits:   be.Uint32(b[20:]),
		Size:          be.Uint64(b[24:]),
		CryptMethod:   be.Uint32(b[32:]),
		L1Size:        be.Uint32(b[36:]),
		L1TableOffset: be.Uint64(b[40:]),
	}
	if h.Version != 2 && h.Version != 3 {
		return nil, fmt.Errorf("qcow2 header: version %d not supported (want 2 or 3)", h.Version)
	}
	if h.Version == 3 {
		if n < 104 {
			return nil, fmt.Errorf("qcow2 header: v3 header truncated")
		}
		h.Incompatible = be.Uint64(b[72:])
		hdrLen := be.Uint32(b[100:])
		if hdrLen < 104 {
			return nil, fmt.Errorf("qcow2 header: header length %d too small", hdrLen)
		}
		if hdrLen > 104 && n > 104 {
			h.Compression = b[104]
		}
	}
	if h.ClusterBits < minClusterBits || h.ClusterBits > maxClusterBits {
		return nil, fmt.Errorf("qcow2 header: cluster bits %d out of range %d..%d", h.ClusterBits, minClusterBits, maxClusterBits)
	}
	if h.Size > maxVirtualSize {
		return nil, fmt.Errorf("qcow2 header: virtual size %d exceeds the %d-byte limit", h.Size, uint64(maxVirtualSize))
	}
	if h.CryptMethod != 0 {
		return nil, fmt.Errorf("qcow2 header: encrypted images are not supported (method %d)", h.CryptMethod)
	}
	switch {
	case h.Incompatible&incompatCorrupt != 0:
		return nil, fmt.Errorf("qcow2 header: image is marked corrupt")
	case h.Incompatible&incompatDataFile != 0:
		return nil, fmt.Errorf("qcow2 header: external data files are not supported")
	case h.Incompatible&incompatExtendedL2 != 0:
		return nil, fmt.Errorf("qcow2 header: extended L2 entries are not supported")
	case h.Incompatible&incompatCompressT != 0 && h.Compression != 0:
		return nil, fmt.Errorf("qcow2 header: compression type %d (zstd) is not supported", h.Compression)
	case h.Incompatible&^uint64(incompatDirty|incompatCompressT) != 0:
		return nil, fmt.Errorf("qcow2 header: unknown incompatible features %#x", h.Incompatible)
	}
	clusterSize := uint64(1) << h.ClusterBits
	perL2 := clusterSize / 8
	need := (h.Size + clusterSize*perL2 - 1) / (clusterSize * perL2)
	if uint64(h.L1Size) < need {
		return nil, fmt.Errorf("qcow2 header: L1 table of %d entries cannot map %d bytes", h.L1Size, h.Size)
	}
	if uint64(h.L1Size)*8 > maxL1Bytes {
		return nil, fmt.Errorf("qcow2 header: L1 table of %d entries exceeds the limit", h.L1Size)
	}
	if h.L1TableOffset%clusterSize != 0 || h.L1TableOffset > uint64(fileSize) || h.L1TableOffset+uint64(h.L1Size)*8 > uint64(fileSize) {
		return nil, fmt.Errorf("qcow2 header: L1 table at offset %d lies outside the %d-byte file", h.L1TableOffset, fileSize)
	}
	if off, size := be.Uint64(b[8:]), be.Uint32(b[16:]); off != 0 && size != 0 {
		if size > 1023 || off > uint64(fileSize) || off+uint64(size) > uint64(fileSize) {
			return nil, fmt.Errorf("qcow2 header: backing file name out of range")
		}
		name := make([]byte, size)
		if _, err := r.ReadAt(name, int64(off)); err != nil {
			return nil, fmt.Errorf("qcow2 header: read backing file name: %w", err)
		}
		h.BackingFile = string(name)
		hdrEnd := uint64(72)
		if h.Version == 3 {
			hdrEnd = uint64(be.Uint32(b[100:]))
		}
		h.BackingFormat = backingFormat(r, hdrEnd, min(uint64(1)<<h.ClusterBits, uint64(fileSize)))
	}
	return h, nil
}

// backingFormat reads the backing-format header extension, which lies between the header and the
// end of the first cluster; "" when there is none.
func backingFormat(r io.ReaderAt, off, end uint64) string {
	for i := 0; i < 64 && off+8 <= end; i++ {
		var e [8]byte
		if _, err := r.ReadAt(e[:], int64(off)); err != nil {
			return ""
		}
		typ, n := binary.BigEndian.Uint32(e[0:]), uint64(binary.BigEndian.Uint32(e[4:]))
		if typ == 0 || off+8+n > end {
			return ""
		}
		if typ == 0xE2792ACA {
			if n > 16 {
				return ""
			}
			name := make([]byte, n)
			if _, err := r.ReadAt(name, int64(off+8)); err != nil {
				return ""
			}
			return string(name)
		}
		off += 8 + (n+7)&^7
	}
	return ""
}

// Image is the virtual disk of a qcow2 image. It is safe for concurrent use.
type Image struct {
	r           io.ReaderAt
	fileSize    int64
	h           *Header
	clusterSize int64
	l1          []uint64

	backing     io.ReaderAt // the backing image, for unallocated clusters
	backingSize int64

	mu     sync.Mutex
	l2     map[uint64][]uint64 // host offset of an L2 table -> its entries
	l2Lru  []uint64
	zOff   uint64 // host offset of the cached inflated cluster
	zData  []byte
	zValid bool
}

// Open reads the header and L1 table of the image in r, a file of fileSize bytes.
func Open(r io.ReaderAt, fileSize int64) (*Image, error) {
	h, err := ParseHeader(r, fileSize)
	if err != nil {
		return nil, err
	}
	if h.BackingFile != "" {
		return nil, fmt.Errorf("%w: backing file %q", ErrBackingFile, h.BackingFile)
	}
	return newImage(r, fileSize, h)
}

// newImage reads the L1 table of an image whose header is h.
func newImage(r io.ReaderAt, fileSize int64, h *Header) (*Image, error) {
	raw := make([]byte, int(h.L1Size)*8)
	if _, err := r.ReadAt(raw, int64(h.L1TableOffset)); err != nil {
		return nil, fmt.Errorf("qcow2: read L1 table: %w", err)
	}
	l1 := make([]uint64, h.L1Size)
	for i := range l1 {
		l1[i] = binary.BigEndian.Uint64(raw[i*8:])
	}
	return &Image{r: r, fileSize: fileSize, h: h, clusterSize: 1 << h.ClusterBits, l1: l1, l2: map[uint64][]uint64{}}, nil
}

// Header returns the parsed header.
func (im *Image) Header() Header { return *im.h }

// Size is the virtual disk size in bytes.
func (im *Image) Size() int64 { return int64(im.h.Size) }

// ReadAt reads the virtual disk.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("qcow2: negative offset %d", off)
	}
	size := im.Size()
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p = p[:size-off]
		eof = io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		inCluster := pos & (im.clusterSize - 1)
		chunk := p[n:]
		if rest := im.clusterSize - inCluster; int64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		if err := im.readCluster(chunk, pos, inCluster); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, eof
}

func (im *Image) readCluster(p []byte, pos, inCluster int64) error {
	entry, err := im.l2Entry(pos)
	if err != nil {
		return err
	}
	switch {
	case entry&flagCompr != 0:
		data, err := im.inflate(entry)
		if err != nil {
			return err
		}
		copy(p, data[inCluster:])
		return nil
	case entry&flagZero != 0 && im.h.Version == 3:
		clear(p)
		return nil
	case entry&offsetMask == 0: // unallocated: the backing image's content, or zeros
		clear(p)
		if im.backing != nil && pos < im.backingSize {
			q := p[:min(int64(len(p)), im.backingSize-pos)]
			if _, err := im.backing.ReadAt(q, pos); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("qcow2: backing file: %w", err)
			}
		}
		return nil
	}
	host := entry & offsetMask
	if host%uint64(im.clusterSize) != 0 {
		return fmt.Errorf("qcow2: data cluster at unaligned offset %d", host)
	}
	if host+uint64(inCluster)+uint64(len(p)) > uint64(im.fileSize) {
		return fmt.Errorf("qcow2: data cluster at offset %d lies past the end of the %d-byte file", host, im.fileSize)
	}
	if _, err := im.r.ReadAt(p, int64(host)+inCluster); err != nil {
		return fmt.Errorf("qcow2: read data cluster at %d: %w", host, err)
	}
	return nil
}

// l2Entry returns the L2 entry mapping the guest offset pos, or 0 for an unallocated cluster.
func (im *Image) l2Entry(pos int64) (uint64, error) {
	perL2 := im.clusterSize / 8
	vcluster := pos >> im.h.ClusterBits
	l1i := vcluster / perL2
	if l1i >= int64(len(im.l1)) {
		return 0, nil
	}
	l2Off := im.l1[l1i] & offsetMask
	if l2Off == 0 {
		return 0, nil
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	tbl, ok := im.l2[l2Off]
	if !ok {
		if l2Off%uint64(im.clusterSize) != 0 || l2Off+uint64(im.clusterSize) > uint64(im.fileSize) {
			return 0, fmt.Errorf("qcow2: L2 table at offset %d lies outside the %d-byte file", l2Off, im.fileSize)
		}
		raw := make([]byte, im.clusterSize)
		if _, err := im.r.ReadAt(raw, int64(l2Off)); err != nil {
			return 0, fmt.Errorf("qcow2: read L2 table at %d: %w", l2Off, err)
		}
		tbl = make([]uint64, perL2)
		for i := range tbl {
			tbl[i] = binary.BigEndian.Uint64(raw[i*8:])
		}
		if len(im.l2Lru) >= l2CacheTables {
			delete(im.l2, im.l2Lru[0])
			im.l2Lru = im.l2Lru[1:]
		}
		im.l2[l2Off] = tbl
		im.l2Lru = append(im.l2Lru, l2Off)
	}
	return tbl[vcluster%perL2], nil
}

// inflate returns the content of a compressed cluster, whose L2 entry packs the host offset and
// the number of 512-byte sectors it spans.
func (im *Image) inflate(entry uint64) ([]byte, error) {
	x := 62 - (im.h.ClusterBits - 8)
	host := entry & (1<<x - 1)
	sectors := (entry>>x)&(1<<(im.h.ClusterBits-8)-1) + 1
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.zValid && im.zOff == host {
		return im.zData, nil
	}
	clen := sectors*512 - host%512
	if host >= uint64(im.fileSize) {
		return nil, fmt.Errorf("qcow2: compressed cluster at offset %d lies past the end of the %d-byte file", host, im.fileSize)
	}
	if host+clen > uint64(im.fileSize) {
		clen = uint64(im.fileSize) - host // the last compressed cluster may end the file early
	}
	comp := make([]byte, clen)
	if _, err := im.r.ReadAt(comp, int64(host)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("qcow2: read compressed cluster at %d: %w", host, err)
	}
	if im.zData == nil {
		im.zData = make([]byte, im.clusterSize)
	}
	im.zValid = false
	zr := flate.NewReader(bytes.NewReader(comp))
	defer zr.Close()
	if _, err := io.ReadFull(zr, im.zData); err != nil {
		return nil, fmt.Errorf("qcow2: inflate cluster at %d: %w", host, err)
	}
	im.zOff, im.zValid = host, true
	return im.zData, nil
}
