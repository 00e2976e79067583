package jsonx

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCapReader(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int64
		fail bool
	}{
		{"12345", 5, false}, // exactly at the cap
		{"123456", 5, true},
		{"", 1, false},
		{"123456", 0, false}, // 0: no cap
	} {
		_, err := io.ReadAll(CapReader(strings.NewReader(tt.in), tt.max))
		if got := errors.Is(err, ErrTooLarge); got != tt.fail {
			t.Errorf("%q cap %d: err = %v", tt.in, tt.max, err)
		}
	}
}

func TestGunzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"a": 1}`))
	zw.Close()
	for name, in := range map[string][]byte{"gzip": buf.Bytes(), "plain": []byte(`{"a": 1}`)} {
		r, closeFn, err := Gunzip(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		closeFn()
		if err != nil || string(out) != `{"a": 1}` {
			t.Errorf("%s: %q, %v", name, out, err)
		}
	}
	if r, _, err := Gunzip(strings.NewReader("")); err != nil {
		t.Errorf("empty input: %v", err)
	} else if b, _ := io.ReadAll(r); len(b) != 0 {
		t.Errorf("empty input read %q", b)
	}
	if _, _, err := Gunzip(bytes.NewReader([]byte{0x1f, 0x8b, 0})); err == nil {
		t.Error("broken gzip header: want an error")
	}
}

func TestWalk(t *testing.T) {
	dec := NewDecoder(strings.NewReader(`{"skip": {"deep": [1, {"x": [2, 3]}, "s"]}, "list": [10, 20], "n": 12345678901234567890}`))
	var keys []string
	var items []string
	err := Object(dec, func(key string) error {
		keys = append(keys, key)
		switch key {
		case "list":
			return Array(dec, func() error {
				raw, err := Raw(dec)
				items = append(items, string(raw))
				return err
			})
		default:
			return Skip(dec)
		}
	})
	if err == nil {
		err = End(dec)
	}
	if err != nil || strings.Join(keys, ",") != "skip,list,n" || strings.Join(items, ",") != "10,20" {
		t.Errorf("keys %q items %q err %v", keys, items, err)
	}
	for in, want := range map[string]error{
		`{"a": [1, 2`: io.ErrUnexpectedEOF,
		`{"a": 1`:     io.ErrUnexpectedEOF,
		``:            io.ErrUnexpectedEOF,
	} {
		dec := NewDecoder(strings.NewReader(in))
		err := Object(dec, func(string) error { return Skip(dec) })
		if !errors.Is(err, want) {
			t.Errorf("%q: err = %v, want %v", in, err, want)
		}
	}
	dec = NewDecoder(strings.NewReader(`null`))
	if err := ArrayOrEmpty(dec, func() error { return nil }); err != nil {
		t.Errorf("null as empty array: %v", err)
	}
	dec = NewDecoder(strings.NewReader(`"x"`))
	if err := ArrayOrEmpty(dec, func() error { return nil }); err == nil {
		t.Error(`"x" as array: want an error`)
	}
}
