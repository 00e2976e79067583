// Package sqlitedb reads the rows of one table of an SQLite 3 database file, with its write-ahead
// log, in pure Go and without a SQL engine. It exists so that the rpm extractor, and with it
// vigil-agent, reads rpm's rpmdb.sqlite (RHEL 9+, Fedora, Amazon Linux 2023) straight from any fs.FS
// (an image layer, a disk snapshot) without copying it to a file or linking an SQLite driver: it walks the
// table's b-tree and decodes records, per the documented file format
// (https://www.sqlite.org/fileformat2.html). It reads rowid tables only, never writes, and bounds
// every count, offset and depth it reads from the file.
package sqlitedb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrFormat reports a file that is not a well-formed SQLite database.
var ErrFormat = errors.New("malformed SQLite database")

const (
	magic     = "SQLite format 3\x00"
	maxDepth  = 32       // b-tree depth; real trees are a handful of levels deep
	maxRecord = 64 << 20 // one row's payload
)

// DB is an opened database: the main file plus the committed frames of its WAL.
type DB struct {
	r        io.ReaderAt
	size     int64
	pageSize int
	usable   int
	nPages   uint32
	wal      map[uint32]int64 // page → offset of its newest committed frame's data in walR
	walR     io.ReaderAt
}

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// Open reads the database header from r (size bytes) and, when wal is not nil, the committed
// frames of the write-ahead log (walSize bytes).
func Open(r io.ReaderAt, size int64, wal io.ReaderAt, walSize int64) (*DB, error) {
	var h [100]byte
	if size < 100 {
		return nil, bad("%d bytes is too short", size)
	}
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, err
	}
	if string(h[:16]) != magic {
		return nil, bad("no SQLite header")
	}
	ps := int(binary.BigEndian.Uint16(h[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return nil, bad("page size %d", ps)
	}
	reserved := int(h[20])
	db := &DB{r: r, size: size, pageSize: ps, usable: ps - reserved}
	if db.usable < 480 {
		return nil, bad("usable page size %d", db.usable)
	}
	db.nPages = uint32(size / int64(ps))
	if wal != nil && walSize >= 32 {
		if err := db.readWAL(wal, walSize); err != nil {
			return nil, fmt.Errorf("write-ahead log: %w", err)
		}
	}
	return db, nil
}

// readWAL indexes the frames of the WAL up to its last valid commit: frames must carry the
// header's salts and a checksum that continues the running checksum.
func (db *DB) readWAL(r io.ReaderAt, size int64) error {
	var h [32]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return err
	}
	m := binary.BigEndian.Uint32(h[0:])
	if m != 0x377f0682 && m != 0x377f0683 {
		return nil // not a WAL (or an empty one being reset): the main file is all there is
	}
	var order binary.ByteOrder = binary.LittleEndian
	if m&1 == 1 {
		order = binary.BigEndian
	}
	if int(binary.BigEndian.Uint32(h[8:])) != db.pageSize {
		return nil // a WAL of another page size belongs to no state of this file
	}
	salt1, salt2 := binary.BigEndian.Uint32(h[16:]), binary.BigEndian.Uint32(h[20:])
	s0, s1 := checksum(order, h[:24], 0, 0)
	if s0 != binary.BigEndian.Uint32(h[24:]) || s1 != binary.BigEndian.Uint32(h[28:]) {
		return nil // an invalid header means the WAL holds nothing committed
	}
	frameSize := int64(24 + db.pageSize)
	pending := map[uint32]int64{}
	committed := map[uint32]int64{}
	var nPages uint32
	buf := make([]byte, frameSize)
	for off := int64(32); off+frameSize <= size; off += frameSize {
		if _, err := r.ReadAt(buf, off); err != nil {
			return err
		}
		fh := buf[:24]
		if binary.BigEndian.Uint32(fh[8:]) != salt1 || binary.BigEndian.Uint32(fh[12:]) != salt2 {
			break
		}
		s0, s1 = checksum(order, fh[:8], s0, s1)
		s0, s1 = checksum(order, buf[24:], s0, s1)
		if s0 != binary.BigEndian.Uint32(fh[16:]) || s1 != binary.BigEndian.Uint32(fh[20:]) {
			break
		}
		pg := binary.BigEndian.Uint32(fh[0:])
		if pg == 0 {
			break
		}
		pending[pg] = off + 24
		if commit := binary.BigEndian.Uint32(fh[4:]); commit != 0 {
			for k, v := range pending {
				committed[k] = v
			}
			clear(pending)
			nPages = commit
		}
	}
	if len(committed) > 0 {
		db.wal, db.walR, db.nPages = committed, r, nPages
	}
	return nil
}

// checksum is the WAL's running checksum over 32-bit words.
func checksum(order binary.ByteOrder, b []byte, s0, s1 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// page reads page n (1-based).
func (db *DB) page(n uint32) ([]byte, error) {
	if n == 0 || n > db.nPages {
		return nil, bad("page %d outside 1..%d", n, db.nPages)
	}
	p := make([]byte, db.pageSize)
	if off, ok := db.wal[n]; ok {
		_, err := db.walR.ReadAt(p, off)
		return p, err
	}
	off := int64(n-1) * int64(db.pageSize)
	if off+int64(db.pageSize) > db.size {
		return nil, bad("page %d beyond the end of the file", n)
	}
	_, err := db.r.ReadAt(p, off)
	return p, err
}

// Rows calls fn with the columns of every row of the named table, in rowid order. Values are
// int64, float64 (as raw bits: not needed here, so returned as nil), []byte (BLOB and TEXT) or nil.
func (db *DB) Rows(table string, fn func(cols []any) error) error {
	root := uint32(0)
	err := db.walk(1, 0, map[uint32]bool{}, func(cols []any) error {
		if len(cols) >= 4 && str(cols[0]) == "table" && str(cols[1]) == table {
			if n, ok := cols[3].(int64); ok && n > 0 && n <= int64(^uint32(0)) {
				root = uint32(n)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if root == 0 {
		return fmt.Errorf("no table %q", table)
	}
	return db.walk(root, 0, map[uint32]bool{}, fn)
}

func str(v any) string {
	b, _ := v.([]byte)
	return string(b)
}

// walk visits a table b-tree.
func (db *DB) walk(n uint32, depth int, seen map[uint32]bool, fn func([]any) error) error {
	if depth > maxDepth {
		return bad("b-tree deeper than %d", maxDepth)
	}
	if seen[n] {
		return bad("page %d is reached twice", n)
	}
	seen[n] = true
	p, err := db.page(n)
	if err != nil {
		return err
	}
	hdr := 0
	if n == 1 {
		hdr = 100
	}
	if len(p) < hdr+12 {
		return bad("page %d too short", n)
	}
	kind := p[hdr]
	ncells := int(binary.BigEndian.Uint16(p[hdr+3:]))
	ptrs := hdr + 8
	if kind == 0x05 {
		ptrs = hdr + 12
	} else if kind != 0x0D {
		return bad("page %d: type 0x%02x is not a table b-tree page", n, kind)
	}
	if ptrs+2*ncells > db.usable {
		return bad("page %d: %d cells do not fit", n, ncells)
	}
	for i := 0; i < ncells; i++ {
		off := int(binary.BigEndian.Uint16(p[ptrs+2*i:]))
		if off < ptrs+2*ncells || off >= db.usable {
			return bad("page %d: cell %d at offset %d", n, i, off)
		}
		if kind == 0x05 {
			if off+4 > db.usable {
				return bad("page %d: cell %d truncated", n, i)
			}
			if err := db.walk(binary.BigEndian.Uint32(p[off:]), depth+1, seen, fn); err != nil {
				return err
			}
			continue
		}
		payload, err := db.leafPayload(p, off)
		if err != nil {
			return fmt.Errorf("page %d cell %d: %w", n, i, err)
		}
		cols, err := record(payload)
		if err != nil {
			return fmt.Errorf("page %d cell %d: %w", n, i, err)
		}
		if err := fn(cols); err != nil {
			return err
		}
	}
	if kind == 0x05 {
		return db.walk(binary.BigEndian.Uint32(p[hdr+8:]), depth+1, seen, fn)
	}
	return nil
}

// leafPayload returns the whole payload of a table leaf cell, following overflow pages.
func (db *DB) leafPayload(p []byte, off int) ([]byte, error) {
	c := p[off:db.usable]
	size, k := varint(c)
	if k == 0 {
		return nil, bad("payload size")
	}
	c = c[k:]
	if _, k = varint(c); k == 0 { // the rowid
		return nil, bad("rowid")
	}
	c = c[k:]
	// A payload cannot be larger than the pages that could hold it (bounds the allocation below).
	if size > maxRecord || size > uint64(db.nPages)*uint64(db.usable) {
		return nil, bad("payload of %d bytes", size)
	}
	total := int(size)
	u := db.usable
	x := u - 35
	local := total
	if total > x {
		m := (u-12)*32/255 - 23
		local = m + (total-m)%(u-4)
		if local > x {
			local = m
		}
	}
	if local > len(c) {
		return nil, bad("local payload of %d bytes overruns the page", local)
	}
	out := make([]byte, 0, total)
	out = append(out, c[:local]...)
	if local == total {
		return out, nil
	}
	if local+4 > len(c) {
		return nil, bad("overflow pointer overruns the page")
	}
	next := binary.BigEndian.Uint32(c[local:])
	seen := map[uint32]bool{}
	for len(out) < total {
		if next == 0 || seen[next] {
			return nil, bad("overflow chain broken")
		}
		seen[next] = true
		op, err := db.page(next)
		if err != nil {
			return nil, err
		}
		next = binary.BigEndian.Uint32(op)
		chunk := op[4:u]
		if rest := total - len(out); rest < len(chunk) {
			chunk = chunk[:rest]
		}
		out = append(out, chunk...)
	}
	return out, nil
}

// record decodes a record: a header of serial types, then the values.
func record(b []byte) ([]any, error) {
	hlen, k := varint(b)
	if k == 0 || hlen > uint64(len(b)) || hlen < uint64(k) {
		return nil, bad("record header")
	}
	hdr, body := b[k:hlen], b[hlen:]
	var cols []any
	for len(hdr) > 0 {
		t, k := varint(hdr)
		if k == 0 {
			return nil, bad("serial type")
		}
		hdr = hdr[k:]
		var n int
		switch {
		case t == 0, t == 8, t == 9:
			cols = append(cols, map[uint64]any{0: nil, 8: int64(0), 9: int64(1)}[t])
			continue
		case t >= 1 && t <= 6:
			n = []int{0, 1, 2, 3, 4, 6, 8}[t]
		case t == 7:
			n = 8
		case t >= 12:
			if (t-12)/2 > uint64(len(body)) {
				return nil, bad("value of %d bytes overruns the record", (t-12)/2)
			}
			n = int((t - 12) / 2)
		default:
			return nil, bad("serial type %d", t)
		}
		if n > len(body) {
			return nil, bad("value overruns the record")
		}
		v := body[:n]
		body = body[n:]
		switch {
		case t >= 1 && t <= 6:
			var x int64
			if v[0]&0x80 != 0 {
				x = -1
			}
			for _, c := range v {
				x = x<<8 | int64(c)
			}
			cols = append(cols, x)
		case t == 7:
			cols = append(cols, nil)
		default:
			cols = append(cols, bytes.Clone(v))
		}
	}
	return cols, nil
}

// varint decodes SQLite's big-endian variable-length integer (1 to 9 bytes); k is 0 on error.
func varint(b []byte) (v uint64, k int) {
	for i := 0; i < 9 && i < len(b); i++ {
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}
