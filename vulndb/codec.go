package vulndb

import (
	"encoding/binary"
	"errors"
	"math"
	"unsafe"

	"github.com/vigil-sec/vigil/model"
)

// Advisory entries are stored in a small binary form instead of JSON: decoding one is the cost of
// a package's first lookup, and encoding/json made that ~6 µs per advisory.
//
//	u8 format (1) | str purl | uvarint #ranges { str type | uvarint #events { u8 kind | str value } }
//	| uvarint #versions { str } | u8 flags (1 = unfixed) | str note | str severity | str urgency
//	| uvarint #cvss { str source | str version | str vector | u64 score bits }
//
// where str is a uvarint length and the bytes.
const entryFormat = 1

func encodeEntry(e *entry) []byte {
	b := make([]byte, 0, 64+len(e.PURL)+16*len(e.Versions))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, entryFormat)
	str(e.PURL)
	b = binary.AppendUvarint(b, uint64(len(e.Ranges)))
	for _, r := range e.Ranges {
		str(r.Type)
		b = binary.AppendUvarint(b, uint64(len(r.Events)))
		for _, ev := range r.Events {
			switch {
			case ev.Introduced != "":
				b = append(b, 0)
				str(ev.Introduced)
			case ev.Fixed != "":
				b = append(b, 1)
				str(ev.Fixed)
			case ev.LastAffected != "":
				b = append(b, 2)
				str(ev.LastAffected)
			default:
				b = append(b, 3)
				str(ev.Limit)
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(e.Versions)))
	for _, v := range e.Versions {
		str(v)
	}
	var flags byte
	if e.Unfixed {
		flags |= 1
	}
	b = append(b, flags)
	str(e.Note)
	str(e.Severity)
	str(e.Urgency)
	b = binary.AppendUvarint(b, uint64(len(e.CVSS)))
	for _, c := range e.CVSS {
		str(c.Source)
		str(c.Version)
		str(c.Vector)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(c.Score))
	}
	return b
}

var errBadEntry = errors.New("corrupt advisory entry")

// decodeEntry reads an entry. With alias set, strings point into b instead of being copied: b
// must then never change (the index arena).
func decodeEntry(b []byte, alias bool) (e entry, err error) {
	p := 0
	fail := false
	uv := func() int {
		if fail {
			return 0
		}
		v, n := binary.Uvarint(b[p:])
		if n <= 0 || v > uint64(len(b)) {
			fail = true
			return 0
		}
		p += n
		return int(v)
	}
	str := func() string {
		n := uv()
		if fail || n > len(b)-p {
			fail = true
			return ""
		}
		if n == 0 {
			return ""
		}
		var s string
		if alias {
			s = unsafe.String(&b[p], n)
		} else {
			s = string(b[p : p+n])
		}
		p += n
		return s
	}
	u8 := func() byte {
		if fail || p >= len(b) {
			fail = true
			return 0
		}
		p++
		return b[p-1]
	}
	if u8() != entryFormat {
		return e, errBadEntry
	}
	e.PURL = str()
	if n := uv(); n > 0 {
		e.Ranges = make([]model.Range, n)
		for i := range e.Ranges {
			r := &e.Ranges[i]
			r.Type = str()
			m := uv()
			if fail {
				break
			}
			r.Events = make([]model.Event, m)
			for j := range r.Events {
				k, v := u8(), str()
				switch k {
				case 0:
					r.Events[j].Introduced = v
				case 1:
					r.Events[j].Fixed = v
				case 2:
					r.Events[j].LastAffected = v
				case 3:
					r.Events[j].Limit = v
				default:
					fail = true
				}
			}
		}
	}
	if n := uv(); n > 0 && !fail {
		e.Versions = make([]string, n)
		for i := range e.Versions {
			e.Versions[i] = str()
		}
	}
	e.Unfixed = u8()&1 != 0
	e.Note, e.Severity, e.Urgency = str(), str(), str()
	if n := uv(); n > 0 && !fail {
		e.CVSS = make([]model.CVSS, n)
		for i := range e.CVSS {
			c := &e.CVSS[i]
			c.Source, c.Version, c.Vector = str(), str(), str()
			if fail || len(b)-p < 8 {
				fail = true
				break
			}
			c.Score = math.Float64frombits(binary.LittleEndian.Uint64(b[p:]))
			p += 8
		}
	}
	if fail || p != len(b) {
		return entry{}, errBadEntry
	}
	return e, nil
}
