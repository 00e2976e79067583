package rpmdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"
)

// --- header blob builder, the layout rpm's headerExport writes ---

type tagVal struct {
	tag uint32
	val any // string, []string, int32
}

func buildHeader(tags []tagVal) []byte {
	var index, data bytes.Buffer
	for _, t := range tags {
		var typ, count uint32
		switch v := t.val.(type) {
		case string:
			typ, count = typeString, 1
			fmt.Fprintf(&data, "%s\x00", v)
		case []string:
			typ, count = typeStringArray, uint32(len(v))
			for _, s := range v {
				fmt.Fprintf(&data, "%s\x00", s)
			}
		case int32:
			for data.Len()%4 != 0 {
				data.WriteByte(0)
			}
			typ, count = typeInt32, 1
			binary.Write(&data, binary.BigEndian, v)
		}
		off := data.Len() - dataLen(t.val)
		binary.Write(&index, binary.BigEndian, [4]uint32{t.tag, typ, uint32(off), count})
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(tags)))
	out = binary.BigEndian.AppendUint32(out, uint32(data.Len()))
	return append(append(out, index.Bytes()...), data.Bytes()...)
}

func dataLen(v any) int {
	switch v := v.(type) {
	case string:
		return len(v) + 1
	case []string:
		n := 0
		for _, s := range v {
			n += len(s) + 1
		}
		return n
	}
	return 4
}

func rockyOpenSSL() []byte {
	return buildHeader([]tagVal{
		{TagName, "openssl-libs"}, {TagVersion, "3.0.7"}, {TagRelease, "27.el9"}, {TagEpoch, int32(1)},
		{TagArch, "x86_64"}, {TagSourceRPM, "openssl-3.0.7-27.el9.src.rpm"}, {TagLicense, "ASL 2.0"},
		{TagVendor, "Rocky Enterprise Software Foundation"},
	})
}

func TestReadPackage(t *testing.T) {
	p, err := ReadPackage(rockyOpenSSL())
	if err != nil {
		t.Fatal(err)
	}
	want := Package{Name: "openssl-libs", Version: "3.0.7", Release: "27.el9", Arch: "x86_64", SourceRPM: "openssl-3.0.7-27.el9.src.rpm",
		License: "ASL 2.0", Vendor: "Rocky Enterprise Software Foundation", Epoch: 1, HasEpoch: true}
	if p != want {
		t.Errorf("got %+v", p)
	}
	// I18N summary-style array: the first string is used.
	p, err = ReadPackage(buildHeader([]tagVal{{TagName, []string{"bash", "x"}}, {TagVersion, "5.1.8"}, {TagRelease, "9.el9"}}))
	if err != nil || p.Name != "bash" || p.HasEpoch {
		t.Errorf("got %+v, %v", p, err)
	}
}

func TestReadPackageErrors(t *testing.T) {
	good := rockyOpenSSL()
	corrupt := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"empty":             {},
		"short":             {0, 0, 0, 1},
		"zero index":        {0, 0, 0, 0, 0, 0, 0, 0},
		"huge index":        {0, 1, 0, 0, 0, 0, 0, 0},
		"huge data":         {0, 0, 0, 1, 0x7f, 0, 0, 0},
		"truncated":         good[:len(good)-5],
		"offset outside":    corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+8:], 1<<30); return b }),
		"negative offset":   corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+8:], 0xfffffff0); return b }),
		"int past the end":  corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+3*16+8:], uint32(len(b)-8-8*16-2)); return b }),
		"string not string": corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+4:], typeInt32); return b }),
		"no name":           buildHeader([]tagVal{{TagVersion, "1"}, {TagRelease, "1"}}),
		"unterminated": corrupt(func(b []byte) []byte {
			b = b[:len(b)-1]
			binary.BigEndian.PutUint32(b[4:], binary.BigEndian.Uint32(b[4:])-1)
			return b
		}),
	}
	for name, blob := range tests {
		if _, err := ReadPackage(blob); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: err = %v, want ErrBadHeader", name, err)
		}
	}
}

// blobsOf returns the header blobs of the BDB fixture.
func blobsOf(t testing.TB) [][]byte {
	b, err := os.ReadFile("../testdata/bdb/Packages")
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	if err := ReadBDB(bytes.NewReader(b), int64(len(b)), func(blob []byte) error {
		blobs = append(blobs, append([]byte(nil), blob...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return blobs
}

func TestNDBCorruptions(t *testing.T) {
	db := WriteNDB(blobsOf(t))
	// Corruptions are errors, never panics or silent partial results.
	for name, mut := range map[string]func(b []byte){
		"slot magic":   func(b []byte) { b[ndbHeaderSize+16] = 'X' },
		"blob magic":   func(b []byte) { b[ndbPageSize] = 'X' },
		"blob index":   func(b []byte) { b[ndbPageSize+4] = 9 },
		"blob length":  func(b []byte) { binary.LittleEndian.PutUint32(b[ndbPageSize+12:], 1<<30) },
		"slot outside": func(b []byte) { binary.LittleEndian.PutUint32(b[ndbHeaderSize+16+8:], 1<<30) },
		"slot pages":   func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 1<<20) },
		"version":      func(b []byte) { b[4] = 1 },
	} {
		b := append([]byte(nil), db...)
		mut(b)
		if err := ReadNDB(bytes.NewReader(b), int64(len(b)), func([]byte) error { return nil }); !errors.Is(err, ErrBadNDB) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestBDBCorruptions(t *testing.T) {
	db, err := os.ReadFile("../testdata/bdb/Packages")
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.LittleEndian.Uint32(db[20:]))
	for name, mut := range map[string]func(b []byte){
		"magic":     func(b []byte) { b[12] = 0 },
		"page size": func(b []byte) { binary.LittleEndian.PutUint32(b[20:], 1000) },
		"encrypted": func(b []byte) { b[24] = 1 },
		"entries": func(b []byte) {
			for pg := 1; pg*ps < len(b); pg++ {
				if t := b[pg*ps+25]; t == pHash || t == pHashUnsorted {
					binary.LittleEndian.PutUint16(b[pg*ps+20:], 0xffff)
				}
			}
		},
		"overflow chain": func(b []byte) {
			for pg := 1; pg*ps < len(b); pg++ {
				if b[pg*ps+25] == pOverflow {
					binary.LittleEndian.PutUint32(b[pg*ps+16:], uint32(pg)) // a loop onto itself
					binary.LittleEndian.PutUint16(b[pg*ps+22:], 1)
				}
			}
		},
	} {
		b := append([]byte(nil), db...)
		mut(b)
		if err := ReadBDB(bytes.NewReader(b), int64(len(b)), func([]byte) error { return nil }); !errors.Is(err, ErrBadBDB) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// The fixture really exercises overflow pages.
	overflow := 0
	for pg := 1; pg*ps < len(db); pg++ {
		if db[pg*ps+25] == pOverflow {
			overflow++
		}
	}
	if overflow == 0 {
		t.Error("fixture has no overflow pages")
	}
}

func TestDetectFormat(t *testing.T) {
	mt := map[string]Format{"SQLite format 3\x00xxxxxxxxxxxxxxxx": FormatSQLite, "RpmP": FormatNDB,
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x61\x15\x06\x00": FormatBDB}
	for head, want := range mt {
		if got, ok := DetectFormat([]byte(head)); !ok || got != want {
			t.Errorf("DetectFormat(%q) = %v", head, got)
		}
	}
	if _, ok := DetectFormat([]byte("garbage")); ok {
		t.Error("garbage detected as a database")
	}
}

func FuzzReadPackage(f *testing.F) {
	f.Add(rockyOpenSSL())
	for _, b := range blobsOf(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ReadPackage(b); err == nil && p.Name == "" {
			t.Fatal("a package without a name was accepted")
		}
	})
}

func FuzzReadBDB(f *testing.F) {
	db, err := os.ReadFile("../testdata/bdb/Packages")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(db)
	f.Add(db[:2048])
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ReadBDB(bytes.NewReader(b), int64(len(b)), func(blob []byte) error { _, _ = ReadPackage(blob); return nil })
	})
}

func FuzzReadNDB(f *testing.F) {
	f.Add(WriteNDB(blobsOf(f)))
	f.Add(WriteNDB(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ReadNDB(bytes.NewReader(b), int64(len(b)), func(blob []byte) error { _, _ = ReadPackage(blob); return nil })
	})
}
