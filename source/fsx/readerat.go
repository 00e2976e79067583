package fsx

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// spoolLimit is the size up to which ReaderAt buffers a file in memory; larger ones go to a temp file.
const spoolLimit = 8 << 20

// ReaderAt gives random access to an open file (ELF and zip readers need it). Files that support it
// are used as they are; others are buffered in memory when small, else in a temporary file. The
// returned func releases what was allocated.
func ReaderAt(f fs.File, size int64) (io.ReaderAt, func(), error) {
	if ra, ok := f.(io.ReaderAt); ok {
		return ra, func() {}, nil
	}
	if size <= spoolLimit {
		b, err := ReadAllLimit(f, spoolLimit, "file")
		if err != nil {
			return nil, nil, err
		}
		return bytes.NewReader(b), func() {}, nil
	}
	tmp, err := os.CreateTemp("", "vigil-spool-*")
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, f); err != nil {
		tmp.Close()
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	return tmp, func() { tmp.Close() }, nil
}
