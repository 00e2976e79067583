package rpmdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Berkeley DB hash database, as rpm ≤ 4.15 (RHEL/CentOS 7 and 8, Amazon Linux 2) keeps
// var/lib/rpm/Packages: key = the header number (4 bytes, host order), value = the header blob.
// Only what reading needs is implemented: the metadata page, hash pages and overflow chains (see
// Berkeley DB's dbinc/db_page.h for the layouts).

const (
	bdbHashMagic = 0x061561
	// page types
	pInvalid      = 0
	pHashUnsorted = 2
	pOverflow     = 7
	pHashMeta     = 8
	pHash         = 13
	// hash item types
	hKeyData = 1
	hOffPage = 3

	pageHeaderSize = 26
	// maxBlobSize bounds one record; rpm's own header limit is 256 MiB, real headers are < 1 MiB.
	maxBlobSize = 64 << 20
)

// ErrBadBDB is wrapped by every Berkeley DB format error.
var ErrBadBDB = errors.New("invalid Berkeley DB hash file")

type bdbReader struct {
	r        io.ReaderAt
	order    binary.ByteOrder
	pageSize uint32
	lastPage uint32
}

// ReadBDB calls fn with every value of the Berkeley DB hash database in r (size bytes), skipping rpm's
// bookkeeping record (key 0). Pages are read one at a time, so memory stays at one page plus the
// largest record.
func ReadBDB(r io.ReaderAt, size int64, fn func(blob []byte) error) error {
	meta := make([]byte, 512)
	if _, err := r.ReadAt(meta, 0); err != nil {
		return fmt.Errorf("%w: metadata page: %v", ErrBadBDB, err)
	}
	b := &bdbReader{r: r}
	switch {
	case binary.LittleEndian.Uint32(meta[12:]) == bdbHashMagic:
		b.order = binary.LittleEndian
	case binary.BigEndian.Uint32(meta[12:]) == bdbHashMagic:
		b.order = binary.BigEndian
	default:
		return fmt.Errorf("%w: not a hash database (magic %#x)", ErrBadBDB, binary.LittleEndian.Uint32(meta[12:]))
	}
	if meta[25] != pHashMeta {
		return fmt.Errorf("%w: page 0 has type %d", ErrBadBDB, meta[25])
	}
	if meta[24] != 0 {
		return fmt.Errorf("%w: encrypted databases are not supported", ErrBadBDB)
	}
	b.pageSize = b.order.Uint32(meta[20:])
	if b.pageSize < 512 || b.pageSize > 65536 || b.pageSize&(b.pageSize-1) != 0 {
		return fmt.Errorf("%w: page size %d", ErrBadBDB, b.pageSize)
	}
	b.lastPage = b.order.Uint32(meta[32:])
	if n := size / int64(b.pageSize); n == 0 || int64(b.lastPage) >= n {
		if n == 0 {
			return fmt.Errorf("%w: %d bytes is less than a page", ErrBadBDB, size)
		}
		b.lastPage = uint32(n - 1) // a truncated file: read what is there
	}

	page := make([]byte, b.pageSize)
	for pg := uint32(1); pg <= b.lastPage; pg++ {
		if _, err := r.ReadAt(page, int64(pg)*int64(b.pageSize)); err != nil {
			return fmt.Errorf("%w: page %d: %v", ErrBadBDB, pg, err)
		}
		if t := page[25]; t != pHash && t != pHashUnsorted {
			continue
		}
		entries := int(b.order.Uint16(page[20:]))
		if pageHeaderSize+2*entries > len(page) {
			return fmt.Errorf("%w: page %d: %d entries do not fit", ErrBadBDB, pg, entries)
		}
		// Items come in key/data pairs; LEN_HITEM: an item ends where the previous one starts.
		for i := 0; i+1 < entries; i += 2 {
			key, err := b.item(page, entries, i)
			if err != nil {
				return fmt.Errorf("page %d: %w", pg, err)
			}
			if len(key) == 5 && key[0] == hKeyData && b.order.Uint32(key[1:]) == 0 {
				continue // rpm's record 0 holds the next header number, not a header
			}
			data, err := b.item(page, entries, i+1)
			if err != nil {
				return fmt.Errorf("page %d: %w", pg, err)
			}
			var blob []byte
			switch data[0] {
			case hKeyData:
				blob = data[1:]
			case hOffPage:
				if len(data) < 12 {
					return fmt.Errorf("%w: page %d: short off-page item", ErrBadBDB, pg)
				}
				blob, err = b.overflow(b.order.Uint32(data[4:]), b.order.Uint32(data[8:]))
				if err != nil {
					return fmt.Errorf("page %d: %w", pg, err)
				}
			default:
				continue // duplicates are not used by rpm's Packages database
			}
			if err := fn(blob); err != nil {
				return err
			}
		}
	}
	return nil
}

// item returns hash item i of page (its type byte first).
func (b *bdbReader) item(page []byte, entries, i int) ([]byte, error) {
	off := int(b.order.Uint16(page[pageHeaderSize+2*i:]))
	end := len(page)
	if i > 0 {
		end = int(b.order.Uint16(page[pageHeaderSize+2*(i-1):]))
	}
	if off < pageHeaderSize+2*entries || off >= end || end > len(page) {
		return nil, fmt.Errorf("%w: item %d at %d..%d out of bounds", ErrBadBDB, i, off, end)
	}
	return page[off:end], nil
}

// overflow reads a record of length tlen stored in the overflow chain that starts at page pg.
func (b *bdbReader) overflow(pg, tlen uint32) ([]byte, error) {
	if tlen > maxBlobSize || uint64(tlen) > uint64(b.lastPage)*uint64(b.pageSize) {
		return nil, fmt.Errorf("%w: record of %d bytes is over the %d-byte limit or the file's size", ErrBadBDB, tlen, maxBlobSize)
	}
	out := make([]byte, 0, tlen)
	page := make([]byte, b.pageSize)
	// A chain has at most lastPage pages; more means a loop.
	for hops := uint32(0); uint32(len(out)) < tlen; hops++ {
		if pg == 0 || pg > b.lastPage || hops > b.lastPage {
			return nil, fmt.Errorf("%w: broken overflow chain at page %d (%d of %d bytes read)", ErrBadBDB, pg, len(out), tlen)
		}
		if _, err := b.r.ReadAt(page, int64(pg)*int64(b.pageSize)); err != nil {
			return nil, fmt.Errorf("%w: overflow page %d: %v", ErrBadBDB, pg, err)
		}
		if page[25] != pOverflow {
			return nil, fmt.Errorf("%w: page %d has type %d, want overflow", ErrBadBDB, pg, page[25])
		}
		n := uint32(b.order.Uint16(page[22:])) // hf_offset holds the bytes used on an overflow page
		if n == 0 || pageHeaderSize+n > b.pageSize || uint32(len(out))+n > tlen {
			return nil, fmt.Errorf("%w: overflow page %d holds %d bytes", ErrBadBDB, pg, n)
		}
		out = append(out, page[pageHeaderSize:pageHeaderSize+n]...)
		pg = b.order.Uint32(page[16:])
	}
	return out, nil
}
