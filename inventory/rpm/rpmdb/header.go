// Package rpmdb reads rpm databases without rpm or cgo: header blobs, Berkeley DB hash files and ndb
// files (SQLite databases are read through database/sql by the rpm extractor). It is separate from
// the extractor so that it links nothing but the standard library: its fuzz targets stay fast.
package rpmdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// rpm header tags Vigil reads (rpm's lib/rpmtag.h).
const (
	TagName      = 1000
	TagVersion   = 1001
	TagRelease   = 1002
	TagEpoch     = 1003
	TagVendor    = 1011
	TagLicense   = 1014
	TagArch      = 1022
	TagSourceRPM = 1044
)

// rpm header data types (rpmTagType).
const (
	typeNull        = 0
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

// Limits from rpm's header.c (HEADER_TAGS_MAX, HEADER_DATA_MAX): a blob over them is not a header.
const (
	maxTags     = 0xffff
	maxDataSize = 0x0fffffff
)

// ErrBadHeader is wrapped by every header parse error.
var ErrBadHeader = errors.New("invalid rpm header")

type indexEntry struct {
	tag, typ uint32
	offset   int32
	count    uint32
}

// Header is a parsed rpm header blob, as the rpm database stores it: two big-endian counts (index
// entries il, data bytes dl), il 16-byte index entries (tag, type, offset, count), then the data store.
// Every access is checked against the data store's bounds.
type Header struct {
	index []indexEntry
	data  []byte
}

// ParseHeader parses a header blob. It keeps a reference to blob.
func ParseHeader(blob []byte) (*Header, error) {
	if len(blob) < 8 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadHeader, len(blob))
	}
	il := binary.BigEndian.Uint32(blob[0:4])
	dl := binary.BigEndian.Uint32(blob[4:8])
	if il == 0 || il > maxTags || dl > maxDataSize {
		return nil, fmt.Errorf("%w: %d index entries, %d data bytes", ErrBadHeader, il, dl)
	}
	need := 8 + uint64(il)*16 + uint64(dl)
	if uint64(len(blob)) < need {
		return nil, fmt.Errorf("%w: %d bytes, the counts need %d", ErrBadHeader, len(blob), need)
	}
	h := &Header{index: make([]indexEntry, il), data: blob[8+il*16 : need]}
	for i := range h.index {
		e := blob[8+i*16:]
		h.index[i] = indexEntry{
			tag:    binary.BigEndian.Uint32(e[0:4]),
			typ:    binary.BigEndian.Uint32(e[4:8]),
			offset: int32(binary.BigEndian.Uint32(e[8:12])),
			count:  binary.BigEndian.Uint32(e[12:16]),
		}
	}
	return h, nil
}

func (h *Header) find(tag uint32) (indexEntry, bool) {
	for _, e := range h.index {
		if e.tag == tag {
			return e, true
		}
	}
	return indexEntry{}, false
}

// String returns a STRING tag, or the first string of a STRING_ARRAY or I18NSTRING tag (the default
// locale). ok is false when the tag is absent; err is set when it is malformed.
func (h *Header) String(tag uint32) (s string, ok bool, err error) {
	e, found := h.find(tag)
	if !found {
		return "", false, nil
	}
	switch e.typ {
	case typeString, typeStringArray, typeI18NString:
	default:
		return "", true, fmt.Errorf("%w: tag %d has type %d, not a string", ErrBadHeader, tag, e.typ)
	}
	if e.count == 0 || e.offset < 0 || int64(e.offset) >= int64(len(h.data)) {
		return "", true, fmt.Errorf("%w: tag %d: offset %d outside %d data bytes", ErrBadHeader, tag, e.offset, len(h.data))
	}
	rest := h.data[e.offset:]
	end := bytes.IndexByte(rest, 0)
	if end < 0 {
		return "", true, fmt.Errorf("%w: tag %d: unterminated string", ErrBadHeader, tag)
	}
	return string(rest[:end]), true, nil
}

// Int returns the first value of an integer tag.
func (h *Header) Int(tag uint32) (v int64, ok bool, err error) {
	e, found := h.find(tag)
	if !found {
		return 0, false, nil
	}
	var size int64
	switch e.typ {
	case typeChar, typeInt8:
		size = 1
	case typeInt16:
		size = 2
	case typeInt32:
		size = 4
	case typeInt64:
		size = 8
	default:
		return 0, true, fmt.Errorf("%w: tag %d has type %d, not an integer", ErrBadHeader, tag, e.typ)
	}
	off := int64(e.offset)
	if e.count == 0 || off < 0 || off+size > int64(len(h.data)) {
		return 0, true, fmt.Errorf("%w: tag %d: offset %d outside %d data bytes", ErrBadHeader, tag, e.offset, len(h.data))
	}
	b := h.data[off : off+size]
	switch size {
	case 1:
		return int64(b[0]), true, nil
	case 2:
		return int64(binary.BigEndian.Uint16(b)), true, nil
	case 4:
		return int64(binary.BigEndian.Uint32(b)), true, nil
	}
	return int64(binary.BigEndian.Uint64(b)), true, nil
}

// Package is the identity of one installed rpm.
type Package struct {
	Name, Version, Release, Arch, SourceRPM, License, Vendor string
	Epoch                                                    int64
	HasEpoch                                                 bool
}

// ReadPackage parses a header blob into a Package.
func ReadPackage(blob []byte) (Package, error) {
	h, err := ParseHeader(blob)
	if err != nil {
		return Package{}, err
	}
	var p Package
	var errs []error
	str := func(tag uint32, dst *string, required bool) {
		s, ok, err := h.String(tag)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok && required:
			errs = append(errs, fmt.Errorf("%w: no tag %d", ErrBadHeader, tag))
		}
		*dst = s
	}
	str(TagName, &p.Name, true)
	str(TagVersion, &p.Version, true)
	str(TagRelease, &p.Release, true)
	str(TagArch, &p.Arch, false)
	str(TagSourceRPM, &p.SourceRPM, false)
	str(TagLicense, &p.License, false)
	str(TagVendor, &p.Vendor, false)
	if v, ok, err := h.Int(TagEpoch); err != nil {
		errs = append(errs, err)
	} else if ok {
		p.Epoch, p.HasEpoch = v, true
	}
	if err := errors.Join(errs...); err != nil {
		return p, err
	}
	return p, nil
}

// Format names an rpm database format.
type Format string

// The database formats, told apart by their content, not their names.
const (
	FormatSQLite Format = "sqlite"
	FormatBDB    Format = "bdb"
	FormatNDB    Format = "ndb"
)

// DetectFormat tells the format from the first 32 bytes of a database file.
func DetectFormat(head []byte) (Format, bool) {
	switch {
	case bytes.HasPrefix(head, []byte("SQLite format 3\x00")):
		return FormatSQLite, true
	case len(head) >= 4 && binary.LittleEndian.Uint32(head) == ndbMagic:
		return FormatNDB, true
	case len(head) >= 16 && (binary.LittleEndian.Uint32(head[12:]) == bdbHashMagic || binary.BigEndian.Uint32(head[12:]) == bdbHashMagic):
		return FormatBDB, true
	}
	return "", false
}
