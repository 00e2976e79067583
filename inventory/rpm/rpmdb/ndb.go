package rpmdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ndb, rpm's own package database (lib/backend/ndb/rpmpkg.c), used by SUSE and openSUSE
// (usr/lib/sysimage/rpm/Packages.db). All integers are little-endian. The file starts with slot
// pages of 4096 bytes: a 32-byte header ("RpmP", version, generation, slot page count, next package
// index) then 16-byte slots ("Slot", package index, block offset, block count). Each slot points at a
// blob in 16-byte blocks: a 16-byte head ("BlbS", package index, generation, length), the header blob,
// and a 12-byte tail (checksum, length, "BlbE").

const (
	ndbMagic       = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic   = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic   = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbVersion     = 0
	ndbPageSize    = 4096
	ndbHeaderSize  = 32
	ndbSlotSize    = 16
	ndbBlockSize   = 16
	ndbBlobHead    = 16
	ndbBlobTail    = 12
	ndbMaxSlotPage = 1 << 16 // 16 Mi slots' worth; real databases use one or two pages
)

// ErrBadNDB is wrapped by every ndb format error.
var ErrBadNDB = errors.New("invalid rpm ndb database")

// ReadNDB calls fn with every header blob of the ndb database in r (size bytes).
func ReadNDB(r io.ReaderAt, size int64, fn func(blob []byte) error) error {
	hdr := make([]byte, ndbHeaderSize)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("%w: header: %v", ErrBadNDB, err)
	}
	le := binary.LittleEndian
	if le.Uint32(hdr) != ndbMagic {
		return fmt.Errorf("%w: bad magic %#x", ErrBadNDB, le.Uint32(hdr))
	}
	if v := le.Uint32(hdr[4:]); v != ndbVersion {
		return fmt.Errorf("%w: unsupported version %d", ErrBadNDB, v)
	}
	slotPages := le.Uint32(hdr[12:])
	if slotPages == 0 || slotPages > ndbMaxSlotPage || int64(slotPages)*ndbPageSize > size {
		return fmt.Errorf("%w: %d slot pages in a %d-byte file", ErrBadNDB, slotPages, size)
	}
	page := make([]byte, ndbPageSize)
	for pg := int64(0); pg < int64(slotPages); pg++ {
		if _, err := r.ReadAt(page, pg*ndbPageSize); err != nil {
			return fmt.Errorf("%w: slot page %d: %v", ErrBadNDB, pg, err)
		}
		start := 0
		if pg == 0 {
			start = ndbHeaderSize
		}
		for o := start; o < ndbPageSize; o += ndbSlotSize {
			s := page[o : o+ndbSlotSize]
			if le.Uint32(s) != ndbSlotMagic {
				return fmt.Errorf("%w: slot at %d: bad magic", ErrBadNDB, pg*ndbPageSize+int64(o))
			}
			pkgIdx, blkOff, blkCnt := le.Uint32(s[4:]), le.Uint32(s[8:]), le.Uint32(s[12:])
			if pkgIdx == 0 || blkOff == 0 {
				continue // a free slot
			}
			blob, err := ndbBlob(r, size, pkgIdx, blkOff, blkCnt)
			if err != nil {
				return err
			}
			if err := fn(blob); err != nil {
				return err
			}
		}
	}
	return nil
}

func ndbBlob(r io.ReaderAt, size int64, pkgIdx, blkOff, blkCnt uint32) ([]byte, error) {
	off := int64(blkOff) * ndbBlockSize
	span := int64(blkCnt) * ndbBlockSize
	if span < ndbBlobHead+ndbBlobTail || off+span > size || span > maxBlobSize+ndbBlobHead+ndbBlobTail+ndbBlockSize {
		return nil, fmt.Errorf("%w: package %d: blocks %d+%d outside the %d-byte file", ErrBadNDB, pkgIdx, blkOff, blkCnt, size)
	}
	head := make([]byte, ndbBlobHead)
	if _, err := r.ReadAt(head, off); err != nil {
		return nil, fmt.Errorf("%w: package %d: %v", ErrBadNDB, pkgIdx, err)
	}
	le := binary.LittleEndian
	if le.Uint32(head) != ndbBlobMagic || le.Uint32(head[4:]) != pkgIdx {
		return nil, fmt.Errorf("%w: package %d: bad blob head", ErrBadNDB, pkgIdx)
	}
	n := int64(le.Uint32(head[12:]))
	if ndbBlobHead+n+ndbBlobTail > span {
		return nil, fmt.Errorf("%w: package %d: %d-byte blob overflows its %d blocks", ErrBadNDB, pkgIdx, n, blkCnt)
	}
	blob := make([]byte, n)
	if _, err := r.ReadAt(blob, off+ndbBlobHead); err != nil {
		return nil, fmt.Errorf("%w: package %d: %v", ErrBadNDB, pkgIdx, err)
	}
	return blob, nil
}

// WriteNDB lays header blobs out in the ndb format, as rpm's rpmpkgPut does (one slot page; slot 0 left
// free to exercise free-slot handling). Tests and fixture generators use it; rpm's own ndb backend is not
// available on Debian to write real ones.
func WriteNDB(blobs [][]byte) []byte {
	le := binary.LittleEndian
	out := make([]byte, ndbPageSize)
	le.PutUint32(out, ndbMagic)
	le.PutUint32(out[12:], 1)                    // slot pages
	le.PutUint32(out[16:], uint32(len(blobs)+1)) // next package index
	for o := ndbHeaderSize; o < ndbPageSize; o += ndbSlotSize {
		le.PutUint32(out[o:], ndbSlotMagic)
	}
	for i, blob := range blobs {
		slot := ndbHeaderSize + (i+1)*ndbSlotSize
		if slot+ndbSlotSize > ndbPageSize {
			break // one slot page is enough for tests
		}
		idx := uint32(i + 1)
		blkOff := uint32(len(out) / ndbBlockSize)
		blkCnt := uint32((ndbBlobHead + len(blob) + ndbBlobTail + ndbBlockSize - 1) / ndbBlockSize)
		rec := make([]byte, int(blkCnt)*ndbBlockSize)
		le.PutUint32(rec, ndbBlobMagic)
		le.PutUint32(rec[4:], idx)
		le.PutUint32(rec[12:], uint32(len(blob)))
		copy(rec[ndbBlobHead:], blob)
		tail := rec[len(rec)-ndbBlobTail:]
		le.PutUint32(tail[4:], uint32(len(blob)))
		le.PutUint32(tail[8:], 'B'|'l'<<8|'b'<<16|'E'<<24)
		out = append(out, rec...)
		le.PutUint32(out[slot+4:], idx)
		le.PutUint32(out[slot+8:], blkOff)
		le.PutUint32(out[slot+12:], blkCnt)
	}
	return out
}
