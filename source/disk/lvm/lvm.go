// Package lvm reads LVM2 physical volumes and maps linear logical volumes, read-only and without
// device-mapper: the PV label, the metadata area's current text, and segments of type "striped"
// with one stripe (linear). Thin, RAID, mirror, snapshot and cache volumes are reported as not
// supported. Every size and offset read from the disk is bounded before use.
package lvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

const (
	sectorSize  = 512
	labelMagic  = "LABELONE"
	labelType   = "LVM2 001"
	mdaMagic    = " LVM2 x[5A%r0N*>"
	maxMetadata = 4 << 20
	maxAreas    = 16
)

// PV is a physical volume found on a disk partition.
type PV struct {
	UUID     string // 32 characters, without dashes
	Metadata string // the current metadata text ("" when this PV holds no metadata area)
	r        io.ReaderAt
	size     int64
}

// Probe reports whether r starts with an LVM2 label.
func Probe(r io.ReaderAt) bool {
	_, _, err := findLabel(r)
	return err == nil
}

func findLabel(r io.ReaderAt) ([]byte, int64, error) {
	for s := int64(0); s < 4; s++ {
		b := make([]byte, sectorSize)
		if _, err := r.ReadAt(b, s*sectorSize); err != nil {
			return nil, 0, err
		}
		if string(b[:8]) == labelMagic && string(b[24:32]) == labelType {
			return b, s * sectorSize, nil
		}
	}
	return nil, 0, errors.New("no LVM2 label")
}

// ReadPV reads the label, PV header and current metadata of the physical volume in r (size bytes).
func ReadPV(r io.ReaderAt, size int64) (*PV, error) {
	label, _, err := findLabel(r)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	off := int(le.Uint32(label[20:]))
	if off < 32 || off+32+8 > sectorSize {
		return nil, fmt.Errorf("LVM label: PV header offset %d out of range", off)
	}
	h := label[off:]
	pv := &PV{UUID: string(h[:32]), r: r, size: size}
	// Two lists of (offset, size) areas follow, each ended by a zero entry: data, then metadata.
	p := 40
	var mdas [][2]uint64
	for list := 0; list < 2; list++ {
		for n := 0; ; n++ {
			if off+p+16 > sectorSize || n > maxAreas {
				return nil, errors.New("LVM PV header: area lists overrun the label sector")
			}
			a, s := le.Uint64(h[p:]), le.Uint64(h[p+8:])
			p += 16
			if a == 0 {
				break
			}
			if list == 1 {
				mdas = append(mdas, [2]uint64{a, s})
			}
		}
	}
	for _, m := range mdas {
		text, err := readMetadata(r, size, m[0], m[1])
		if err != nil {
			return nil, fmt.Errorf("LVM metadata area at %d: %w", m[0], err)
		}
		if text != "" {
			pv.Metadata = text
			break
		}
	}
	return pv, nil
}

// readMetadata reads the current metadata text of the metadata area at start (size bytes): a
// header, then a circular buffer whose first raw location points at the text.
func readMetadata(r io.ReaderAt, devSize int64, start, size uint64) (string, error) {
	if size < 1024 || size > 1<<30 || start+size > uint64(devSize) {
		return "", fmt.Errorf("area of %d bytes out of range", size)
	}
	h := make([]byte, sectorSize)
	if _, err := r.ReadAt(h, int64(start)); err != nil {
		return "", err
	}
	if string(h[4:20]) != mdaMagic {
		return "", errors.New("bad metadata area magic")
	}
	le := binary.LittleEndian
	loff, lsize := le.Uint64(h[40:]), le.Uint64(h[48:])
	if loff == 0 || lsize == 0 {
		return "", nil
	}
	if lsize > maxMetadata || lsize > size-sectorSize || loff < sectorSize || loff >= size {
		return "", fmt.Errorf("metadata text of %d bytes at %d out of range", lsize, loff)
	}
	text := make([]byte, lsize)
	first := min(lsize, size-loff)
	if _, err := r.ReadAt(text[:first], int64(start+loff)); err != nil {
		return "", err
	}
	if first < lsize { // wrapped around the end of the circular buffer
		if _, err := r.ReadAt(text[first:], int64(start+sectorSize)); err != nil {
			return "", err
		}
	}
	return string(bytes.TrimRight(text, "\x00")), nil
}

// LV is a logical volume; it reads as an io.ReaderAt.
type LV struct {
	VG, Name string
	size     int64
	segs     []segment
}

type segment struct {
	start, end int64 // byte range in the LV
	pv         io.ReaderAt
	pvOff      int64 // byte offset of start on the PV
}

// Size is the LV size in bytes.
func (lv *LV) Size() int64 { return lv.size }

// ReadAt reads the LV.
func (lv *LV) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= lv.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > lv.size-off {
		p, eof = p[:lv.size-off], io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := sort.Search(len(lv.segs), func(i int) bool { return lv.segs[i].end > pos })
		if i == len(lv.segs) || lv.segs[i].start > pos {
			return n, fmt.Errorf("LV %s/%s: no segment maps byte %d", lv.VG, lv.Name, pos)
		}
		s := lv.segs[i]
		chunk := p[n:min(len(p), n+int(min(s.end-pos, 1<<30)))]
		if _, err := s.pv.ReadAt(chunk, s.pvOff+pos-s.start); err != nil {
			return n, fmt.Errorf("LV %s/%s: %w", lv.VG, lv.Name, err)
		}
		n += len(chunk)
	}
	return n, eof
}

// Volumes maps the logical volumes of every volume group described by pvs. Volumes that cannot
// be mapped (a PV missing from this disk, a segment type other than linear) are returned as
// problems.
func Volumes(pvs []*PV) (lvs []*LV, problems []error) {
	byUUID := map[string]*PV{}
	for _, pv := range pvs {
		byUUID[pv.UUID] = pv
	}
	seen := map[string]bool{}
	for _, pv := range pvs {
		if pv.Metadata == "" {
			continue
		}
		root, err := parse(pv.Metadata)
		if err != nil {
			problems = append(problems, fmt.Errorf("LVM metadata of PV %s: %w", pv.UUID, err))
			continue
		}
		for _, vg := range root.sections {
			if seen[vg.name] {
				continue
			}
			seen[vg.name] = true
			l, p := vgVolumes(vg, byUUID)
			lvs = append(lvs, l...)
			problems = append(problems, p...)
		}
	}
	return lvs, problems
}

func vgVolumes(vg *section, byUUID map[string]*PV) (lvs []*LV, problems []error) {
	extent := vg.num("extent_size") * sectorSize
	if extent <= 0 || extent > 1<<40 {
		return nil, []error{fmt.Errorf("LVM VG %s: extent size %d", vg.name, extent)}
	}
	type pvInfo struct {
		pv      *PV
		peStart int64
		peCount int64
	}
	pvs := map[string]pvInfo{}
	if s := vg.section("physical_volumes"); s != nil {
		for _, p := range s.sections {
			id := strings.ReplaceAll(p.str("id"), "-", "")
			if pv := byUUID[id]; pv != nil {
				pvs[p.name] = pvInfo{pv, p.num("pe_start") * sectorSize, p.num("pe_count")}
			}
		}
	}
	lvSec := vg.section("logical_volumes")
	if lvSec == nil {
		return nil, nil
	}
	for _, l := range lvSec.sections {
		lv := &LV{VG: vg.name, Name: l.name}
		err := func() error {
			if !l.has("status", "VISIBLE") {
				return errors.New("not visible (an internal volume)")
			}
			for _, s := range l.sections {
				if !strings.HasPrefix(s.name, "segment") {
					continue
				}
				typ := s.str("type")
				stripes := s.list("stripes")
				if typ != "striped" || s.num("stripe_count") != 1 || len(stripes) != 2 {
					return fmt.Errorf("segment type %q with %d stripes is not supported (linear only)", typ, s.num("stripe_count"))
				}
				pvName, _ := stripes[0].(string)
				peOff, _ := stripes[1].(int64)
				pi, ok := pvs[pvName]
				if !ok {
					return fmt.Errorf("physical volume %s is not on this disk", pvName)
				}
				start, count := s.num("start_extent"), s.num("extent_count")
				if start < 0 || count <= 0 || peOff < 0 || peOff+count > pi.peCount || start > 1<<40/extent || count > 1<<40/extent {
					return fmt.Errorf("segment %s out of range", s.name)
				}
				seg := segment{start: start * extent, end: (start + count) * extent, pv: pi.pv.r, pvOff: pi.peStart + peOff*extent}
				if seg.pvOff+(seg.end-seg.start) > pi.pv.size {
					return fmt.Errorf("segment %s lies past the end of its physical volume", s.name)
				}
				lv.segs = append(lv.segs, seg)
			}
			sort.Slice(lv.segs, func(i, j int) bool { return lv.segs[i].start < lv.segs[j].start })
			var at int64
			for _, s := range lv.segs {
				if s.start != at {
					return errors.New("segments leave a gap or overlap")
				}
				at = s.end
			}
			if at == 0 {
				return errors.New("no segments")
			}
			lv.size = at
			return nil
		}()
		if err != nil {
			problems = append(problems, fmt.Errorf("LVM %s/%s: %w", vg.name, l.name, err))
			continue
		}
		lvs = append(lvs, lv)
	}
	return lvs, problems
}
