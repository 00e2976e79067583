// Package jsonx holds the small streaming helpers the feed parsers share: walking a JSON object or
// array with encoding/json's token API so that only one record at a time is in memory, a size cap
// that fails loudly instead of truncating, and gzip detection by magic bytes.
package jsonx

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is returned when an input exceeds its size cap.
var ErrTooLarge = errors.New("input exceeds size cap")

// CapReader returns a reader that fails with ErrTooLarge once more than max bytes were read, so a
// cap never looks like a clean end of file.
func CapReader(r io.Reader, max int64) io.Reader {
	if max <= 0 {
		return r
	}
	return &capReader{r: r, left: max}
}

type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, ErrTooLarge
	}
	// Read one byte past the cap so an input of exactly max bytes still ends cleanly.
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, ErrTooLarge
	}
	return n, err
}

// Gunzip returns r decompressed when it starts with the gzip magic bytes, r itself otherwise. The
// returned closer releases the gzip reader (a no-op for plain input).
func Gunzip(r io.Reader) (io.Reader, func() error, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() error { return nil }, nil
}

// NewDecoder returns a decoder that keeps numbers as json.Number (no float rounding of IDs).
func NewDecoder(r io.Reader) *json.Decoder {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return dec
}

// Expect reads the next token and checks it is the delimiter want.
func Expect(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return eof(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, found %v", want, describe(tok))
	}
	return nil
}

// Object walks the members of the object that starts at the decoder's position. fn gets each key and
// must consume exactly the member's value (with dec.Decode, Skip, or nested walks).
func Object(dec *json.Decoder, fn func(key string) error) error {
	if err := Expect(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return eof(err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("expected object key, found %v", describe(tok))
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	return Expect(dec, '}')
}

// Array walks the elements of the array that starts at the decoder's position; fn must consume one
// element per call.
func Array(dec *json.Decoder, fn func() error) error {
	if err := Expect(dec, '['); err != nil {
		return err
	}
	for dec.More() {
		if err := fn(); err != nil {
			return err
		}
	}
	return Expect(dec, ']')
}

// ArrayOrEmpty is Array, except that null and "" (what YAML-to-JSON converters make of an empty
// list) are accepted as an empty array.
func ArrayOrEmpty(dec *json.Decoder, fn func() error) error {
	tok, err := dec.Token()
	if err != nil {
		return eof(err)
	}
	switch t := tok.(type) {
	case nil:
		return nil
	case string:
		if t == "" {
			return nil
		}
	case json.Delim:
		if t == '[' {
			for dec.More() {
				if err := fn(); err != nil {
					return err
				}
			}
			return Expect(dec, ']')
		}
	}
	return fmt.Errorf("expected an array, found %v", describe(tok))
}

// Skip consumes one value token by token, so skipping a huge value costs no memory.
func Skip(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return eof(err)
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// Raw reads one value as raw bytes. A syntax error is fatal (the stream cannot resynchronise), while
// the caller unmarshals the bytes itself so that a record of the wrong shape can be skipped.
func Raw(dec *json.Decoder) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, eof(err)
	}
	return raw, nil
}

// End checks that nothing but whitespace follows the top-level value.
func End(dec *json.Decoder) error {
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return errors.New("unexpected data after the top-level value")
	}
	return nil
}

// EOF turns a bare io.EOF in the middle of a value into io.ErrUnexpectedEOF: truncated JSON is an
// error, not an empty feed.
func EOF(err error) error { return eof(err) }

func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func describe(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", t.String())
	case string:
		return "string"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", t)
	}
}
