package osv

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/vigil-sec/vigil/vulndb/feed"
)

// Limits on an all.zip. osv.dev's largest ecosystem zips hold ~200k records and a few GiB
// uncompressed; the caps stop zip bombs, not real data.
const (
	MaxZipEntries      = 2_000_000
	MaxZipUncompressed = 16 << 30
)

// ParseZip streams every *.json entry of an OSV all.zip into sink. The zip's structure is checked
// first and every entry's CRC is verified while reading, so a truncated or corrupt zip fails the
// whole source (the caller must then keep the previous data); a malformed record is skipped.
func ParseZip(ctx context.Context, name string, r io.ReaderAt, size int64, sink feed.Sink) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("osv: %s: %w", name, err)
	}
	if len(zr.File) > MaxZipEntries {
		return fmt.Errorf("osv: %s: %d entries exceed the limit of %d", name, len(zr.File), MaxZipEntries)
	}
	var total uint64
	buf := make([]byte, 0, 64<<10)
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() || !strings.EqualFold(path.Ext(f.Name), ".json") {
			continue
		}
		entry := name + ":" + f.Name
		if f.UncompressedSize64 > MaxRecordSize {
			sink.Skip(entry, fmt.Errorf("osv: record larger than %d bytes", MaxRecordSize))
			continue
		}
		total += f.UncompressedSize64
		if total > MaxZipUncompressed {
			return fmt.Errorf("osv: %s: uncompressed size exceeds %d bytes", name, uint64(MaxZipUncompressed))
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("osv: %s: %w", entry, err)
		}
		// The header's size is untrusted; the limit holds whatever the stream says. Reading to EOF
		// makes archive/zip verify the CRC.
		buf, err = readAllInto(buf[:0], io.LimitReader(rc, MaxRecordSize+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("osv: %s: %w", entry, err)
		}
		if len(buf) > MaxRecordSize {
			return fmt.Errorf("osv: %s: entry larger than its header says", entry)
		}
		if err := ParseBytes(ctx, entry, buf, sink); err != nil {
			return err
		}
	}
	return nil
}

func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// ZipParser is a feed.Parser for an OSV all.zip. A zip needs random access: an *os.File is read in
// place, any other reader is spooled to a temporary file first (bounded by MaxZipSize).
type ZipParser struct {
	// TempDir is where non-file readers are spooled ("" = os.TempDir()).
	TempDir string
}

// MaxZipSize bounds a spooled all.zip.
const MaxZipSize = 8 << 30

// Parse implements feed.Parser.
func (p ZipParser) Parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) error {
	if f, ok := r.(*os.File); ok {
		st, err := f.Stat()
		if err == nil && st.Mode().IsRegular() {
			return ParseZip(ctx, name, f, st.Size(), sink)
		}
	}
	tmp, err := os.CreateTemp(p.TempDir, "osv-*.zip")
	if err != nil {
		return fmt.Errorf("osv: spool %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(r, MaxZipSize+1))
	if err != nil {
		return fmt.Errorf("osv: spool %s: %w", name, err)
	}
	if n > MaxZipSize {
		return fmt.Errorf("osv: %s larger than %d bytes", name, int64(MaxZipSize))
	}
	return ParseZip(ctx, name, tmp, n, sink)
}
