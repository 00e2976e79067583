package sqlitedb

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/vigil-sec/vigil/inventory/rpm/rpmdb"
)

func open(t testing.TB, main, wal []byte) (*DB, error) {
	t.Helper()
	var wr *bytes.Reader
	if wal != nil {
		wr = bytes.NewReader(wal)
		return Open(bytes.NewReader(main), int64(len(main)), wr, int64(len(wal)))
	}
	return Open(bytes.NewReader(main), int64(len(main)), nil, 0)
}

func names(t *testing.T, db *DB) []string {
	t.Helper()
	var out []string
	err := db.Rows("Packages", func(cols []any) error {
		blob, ok := cols[1].([]byte)
		if !ok {
			t.Fatalf("column 1 is %T", cols[1])
		}
		p, err := rpmdb.ReadPackage(blob)
		if err != nil {
			return err
		}
		out = append(out, p.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func read(t testing.TB, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRows(t *testing.T) {
	rocky := read(t, "../testdata/rocky9-sqlite/var/lib/rpm/rpmdb.sqlite")
	walMain, walLog := read(t, "testdata/wal.sqlite"), read(t, "testdata/wal.sqlite-wal")
	torn := slices.Clone(walLog)
	torn[len(torn)-100] ^= 0xff // the last frame (the commit) fails its checksum
	tests := []struct {
		name      string
		main, wal []byte
		want      []string
	}{
		{"rocky 9 rpmdb.sqlite", rocky, nil, []string{"bash", "openssl-libs", "tzdata"}},
		{"main file alone", walMain, nil, []string{"bash"}},
		{"with its WAL", walMain, walLog, []string{"bash", "openssl-libs", "tzdata"}},
		{"torn WAL commit", walMain, torn, []string{"bash"}},
		{"WAL of another page size ignored", rocky, walLog, []string{"bash", "openssl-libs", "tzdata"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := open(t, tc.main, tc.wal)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(t, db); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	good := read(t, "testdata/wal.sqlite")
	mut := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"not sqlite", mut(func(b []byte) []byte { copy(b, "SQLite format 2\x00"); return b })},
		{"page size 1000", mut(func(b []byte) []byte { b[16], b[17] = 0x03, 0xe8; return b })},
		{"truncated", good[:1500]},
		{"page type", mut(func(b []byte) []byte { b[100] = 0x42; return b })},
		{"cell count", mut(func(b []byte) []byte { b[103], b[104] = 0xff, 0xff; return b })},
		{"cell offset", mut(func(b []byte) []byte { b[108], b[109] = 0x00, 0x01; return b })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := open(t, tc.b, nil)
			if err == nil {
				err = db.Rows("Packages", func([]any) error { return nil })
			}
			if !errors.Is(err, ErrFormat) && err == nil {
				t.Errorf("accepted: %v", err)
			}
		})
	}
	db, _ := open(t, good, nil)
	if err := db.Rows("Nope", func([]any) error { return nil }); err == nil {
		t.Error("missing table found")
	}
}

func TestVarint(t *testing.T) {
	tests := []struct {
		in   []byte
		v    uint64
		size int
	}{
		{[]byte{0x00}, 0, 1},
		{[]byte{0x7f}, 127, 1},
		{[]byte{0x81, 0x00}, 128, 2},
		{[]byte{0x82, 0x2c}, 300, 2},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ^uint64(0), 9},
		{[]byte{0x81}, 0, 0}, // truncated
	}
	for _, tc := range tests {
		if v, k := varint(tc.in); v != tc.v || k != tc.size {
			t.Errorf("varint(%x) = %d, %d", tc.in, v, k)
		}
	}
}

func FuzzRows(f *testing.F) {
	f.Add(read(f, "testdata/wal.sqlite"), read(f, "testdata/wal.sqlite-wal"))
	f.Fuzz(func(t *testing.T, main, wal []byte) {
		db, err := open(t, main, wal)
		if err != nil {
			return
		}
		_ = db.Rows("Packages", func([]any) error { return nil })
	})
}
