package nvd

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseMeta(t *testing.T) {
	in := "lastModifiedDate:2025-08-07T03:01:41-04:00\r\nsize:66078439\r\nzipSize:4924668\r\ngzSize:4924532\r\nsha256:D165E29D8D911F3F1E0919A5C1E8C423B14AF1C38F57847DD0A8CC9DBD027618\r\n"
	m, err := ParseMeta("nvdcve-2.0-modified.meta", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{
		LastModified: time.Date(2025, 8, 7, 7, 1, 41, 0, time.UTC),
		Size:         66078439, ZipSize: 4924668, GzSize: 4924532,
		SHA256: "d165e29d8d911f3f1e0919a5c1e8c423b14af1c38f57847dd0a8cc9dbd027618",
	}
	if !m.LastModified.Equal(want.LastModified) || m.Size != want.Size || m.ZipSize != want.ZipSize || m.GzSize != want.GzSize || m.SHA256 != want.SHA256 {
		t.Errorf("meta = %+v", m)
	}
	for _, bad := range []string{"", "size:12\n", "size:x\nsha256:" + strings.Repeat("a", 64), `{"vulnerabilities": []}`} {
		if _, err := ParseMeta("x.meta", strings.NewReader(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// TestRealMetaMismatch: the vulndata .meta describes the full upstream feed, not the excerpt next
// to it, so an integrity check must reject the pair.
func TestRealMetaMismatch(t *testing.T) {
	metaFile, err := os.Open("/work/shared/vulndata/samples/nvd/nvdcve-2.0-excerpt.meta")
	if err != nil {
		t.Skip("vulndata not present")
	}
	defer metaFile.Close()
	m, err := ParseMeta(metaFile.Name(), metaFile)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/work/shared/vulndata/samples/nvd/nvdcve-2.0-excerpt.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) == m.SHA256 || int64(len(data)) == m.Size {
		t.Errorf("excerpt matches the full feed's descriptor: %+v", m)
	}
	if m.Size != 66078439 {
		t.Errorf("size = %d", m.Size)
	}
}
