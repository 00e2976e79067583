// Package partition reads MBR and GPT partition tables from a disk image without trusting them: every
// count, size and offset is bounded before it is used.
package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Scheme names a partition table kind.
type Scheme string

const (
	None Scheme = ""    // no partition table: the disk is one bare file system
	MBR  Scheme = "MBR" // DOS partition table, with logical partitions in an extended one
	GPT  Scheme = "GPT"
)

// Partition is one entry of a table.
type Partition struct {
	Index  int    // 1-based, as Linux numbers them (logical MBR partitions start at 5)
	Scheme Scheme // MBR or GPT
	Start  int64  // byte offset on the disk
	Size   int64  // bytes
	Type   string // MBR: "0x83"; GPT: the type GUID
	Name   string // GPT partition name
}

// Label is how reports name the partition: "p1 (GPT 'root')", "p2 (MBR type 0x83)".
func (p Partition) Label() string {
	if p.Scheme == GPT {
		if p.Name != "" {
			return fmt.Sprintf("p%d (GPT '%s')", p.Index, p.Name)
		}
		return fmt.Sprintf("p%d (GPT)", p.Index)
	}
	return fmt.Sprintf("p%d (MBR type %s)", p.Index, p.Type)
}

// End is the byte just past the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Limits on what a table may claim, so that garbage cannot make us allocate or loop without bound.
const (
	maxGPTEntries   = 1024
	maxGPTEntrySize = 4096
	maxLogical      = 128
)

// ErrNoTable means the disk has no recognised partition table.
var ErrNoTable = errors.New("no partition table")

// Read parses the partition table of a disk of the given size. It returns ErrNoTable when there is
// none. Partitions that lie partly past the end of the disk are returned as they are: the caller
// reports them (with their name) when it tries to use them.
func Read(r io.ReaderAt, size int64) (Scheme, []Partition, error) {
	if size < 512 {
		return None, nil, ErrNoTable
	}
	var mbr [512]byte
	if _, err := r.ReadAt(mbr[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return None, nil, fmt.Errorf("read MBR: %w", err)
	}
	// GPT first: a protective MBR is optional in practice (some tools write a hybrid one). When the
	// primary header or its entries are damaged, the backup in the disk's last sector is used.
	for _, sector := range []int64{512, 4096} {
		var hdr [8]byte
		if _, err := r.ReadAt(hdr[:], sector); err == nil && string(hdr[:]) == "EFI PART" {
			parts, err := readGPT(r, size, sector, sector)
			if err != nil {
				if backup, berr := readGPT(r, size, sector, size/sector*sector-sector); berr == nil {
					return GPT, backup, nil
				}
				return GPT, nil, fmt.Errorf("%w (and no valid backup GPT)", err)
			}
			return GPT, parts, nil
		}
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return None, nil, ErrNoTable
	}
	for _, e := range mbrEntries(mbr[:]) {
		if e.typ == 0xEE { // protective MBR without a primary GPT header: try the backup
			for _, sector := range []int64{512, 4096} {
				if parts, err := readGPT(r, size, sector, size/sector*sector-sector); err == nil {
					return GPT, parts, nil
				}
			}
			return GPT, nil, errors.New("protective MBR (type 0xEE) but no valid GPT header, primary or backup")
		}
	}
	parts, ok, err := readMBR(r, size, mbr[:])
	if !ok {
		return None, nil, ErrNoTable
	}
	return MBR, parts, err
}

type mbrEntry struct {
	status byte
	typ    byte
	lba    uint32
	count  uint32
}

func mbrEntries(sector []byte) [4]mbrEntry {
	var out [4]mbrEntry
	for i := range out {
		e := sector[446+16*i : 446+16*(i+1)]
		out[i] = mbrEntry{status: e[0], typ: e[4], lba: binary.LittleEndian.Uint32(e[8:]), count: binary.LittleEndian.Uint32(e[12:])}
	}
	return out
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0F || t == 0x85 }

// readMBR parses a DOS table. ok is false when the sector only looks like one (a file-system boot
// sector also ends in 0x55AA): every status byte must be 0x00 or 0x80 and at least one entry used.
func readMBR(r io.ReaderAt, size int64, sector []byte) (parts []Partition, ok bool, err error) {
	entries := mbrEntries(sector)
	used := 0
	for _, e := range entries {
		if e.status != 0 && e.status != 0x80 {
			return nil, false, nil
		}
		if e.typ != 0 && e.count != 0 {
			used++
		}
	}
	if used == 0 {
		return nil, false, nil
	}
	for i, e := range entries {
		if e.typ == 0 || e.count == 0 {
			continue
		}
		if isExtended(e.typ) {
			logical, err := readEBRs(r, size, int64(e.lba), int64(e.count))
			parts = append(parts, logical...)
			if err != nil {
				return parts, true, err
			}
			continue
		}
		parts = append(parts, Partition{Index: i + 1, Scheme: MBR, Start: int64(e.lba) * 512, Size: int64(e.count) * 512,
			Type: fmt.Sprintf("0x%02x", e.typ)})
	}
	sortByIndex(parts)
	return parts, true, nil
}

// readEBRs follows the chain of extended boot records. Each EBR's first entry is a logical partition
// relative to that EBR; its second points to the next EBR, relative to the start of the extended one.
func readEBRs(r io.ReaderAt, size, extStart, extCount int64) ([]Partition, error) {
	var parts []Partition
	seen := map[int64]bool{}
	next := extStart
	for n := 0; ; n++ {
		if n >= maxLogical {
			return parts, fmt.Errorf("extended partition: more than %d logical partitions", maxLogical)
		}
		if seen[next] {
			return parts, fmt.Errorf("extended partition: EBR chain loops at LBA %d", next)
		}
		seen[next] = true
		if next*512+512 > size {
			return parts, fmt.Errorf("extended partition: EBR at LBA %d is past the end of the disk", next)
		}
		var sector [512]byte
		if _, err := r.ReadAt(sector[:], next*512); err != nil {
			return parts, fmt.Errorf("read EBR at LBA %d: %w", next, err)
		}
		if sector[510] != 0x55 || sector[511] != 0xAA {
			return parts, fmt.Errorf("EBR at LBA %d: bad signature", next)
		}
		es := mbrEntries(sector[:])
		if es[0].typ != 0 && es[0].count != 0 {
			parts = append(parts, Partition{Index: 5 + len(parts), Scheme: MBR, Start: (next + int64(es[0].lba)) * 512,
				Size: int64(es[0].count) * 512, Type: fmt.Sprintf("0x%02x", es[0].typ)})
		}
		if es[1].count == 0 || !isExtended(es[1].typ) {
			return parts, nil
		}
		next = extStart + int64(es[1].lba)
		if int64(es[1].lba) >= extCount {
			return parts, fmt.Errorf("extended partition: next EBR at LBA %d lies outside it", next)
		}
	}
}

func sortByIndex(p []Partition) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].Index < p[j-1].Index; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// readGPT parses the GPT header at byte offset hdrOff: the primary at LBA 1, or the backup in the
// last sector.
func readGPT(r io.ReaderAt, size, sectorSize, hdrOff int64) ([]Partition, error) {
	if hdrOff < sectorSize {
		return nil, errors.New("GPT header: disk too small")
	}
	var h [512]byte
	if _, err := r.ReadAt(h[:92], hdrOff); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	hdrSize := binary.LittleEndian.Uint32(h[12:])
	if hdrSize < 92 || hdrSize > 512 {
		return nil, fmt.Errorf("GPT header: size %d out of range", hdrSize)
	}
	if _, err := r.ReadAt(h[:hdrSize], hdrOff); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	binary.LittleEndian.PutUint32(h[16:], 0)
	if got := crc32.ChecksumIEEE(h[:hdrSize]); got != want {
		return nil, fmt.Errorf("GPT header: CRC mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if my := binary.LittleEndian.Uint64(h[24:]); my != uint64(hdrOff/sectorSize) {
		return nil, fmt.Errorf("GPT header at LBA %d says it is at LBA %d", hdrOff/sectorSize, my)
	}
	entLBA := binary.LittleEndian.Uint64(h[72:])
	num := binary.LittleEndian.Uint32(h[80:])
	entSize := binary.LittleEndian.Uint32(h[84:])
	entCRC := binary.LittleEndian.Uint32(h[88:])
	if num == 0 || num > maxGPTEntries {
		return nil, fmt.Errorf("GPT header: %d partition entries (limit %d)", num, maxGPTEntries)
	}
	if entSize < 128 || entSize > maxGPTEntrySize || entSize%8 != 0 {
		return nil, fmt.Errorf("GPT header: partition entry size %d is invalid", entSize)
	}
	tableLen := int64(num) * int64(entSize)
	if entLBA > uint64(size/sectorSize) || int64(entLBA)*sectorSize+tableLen > size {
		return nil, fmt.Errorf("GPT header: partition entries at LBA %d lie past the end of the disk", entLBA)
	}
	table := make([]byte, tableLen)
	if _, err := r.ReadAt(table, int64(entLBA)*sectorSize); err != nil {
		return nil, fmt.Errorf("read GPT partition entries: %w", err)
	}
	if got := crc32.ChecksumIEEE(table); got != entCRC {
		return nil, fmt.Errorf("GPT partition entries: CRC mismatch (stored %#08x, computed %#08x)", entCRC, got)
	}
	var parts []Partition
	for i := uint32(0); i < num; i++ {
		e := table[int64(i)*int64(entSize):]
		typ := e[0:16]
		if allZero(typ) {
			continue
		}
		first := binary.LittleEndian.Uint64(e[32:])
		last := binary.LittleEndian.Uint64(e[40:])
		if last < first {
			return nil, fmt.Errorf("GPT partition %d: last LBA %d before first LBA %d", i+1, last, first)
		}
		maxLBA := uint64(1) << 40 // 512 TiB at 512-byte sectors; keeps byte offsets within int64
		if last >= maxLBA {
			return nil, fmt.Errorf("GPT partition %d: LBA %d out of range", i+1, last)
		}
		parts = append(parts, Partition{
			Index: int(i) + 1, Scheme: GPT,
			Start: int64(first) * sectorSize, Size: int64(last-first+1) * sectorSize,
			Type: guid(typ), Name: utf16Name(e[56:128]),
		})
	}
	return parts, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// guid formats a GUID stored in mixed endianness, as GPT stores them.
func guid(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.ToValidUTF8(string(utf16.Decode(u)), "?")
}
