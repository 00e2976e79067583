package epss

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestParseFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/epss_scores-2025-08-25.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CVE-2021-44228 0.94358 0.99957",
		"CVE-2014-6271 0.94199 0.99924",
		"CVE-2023-4966 0.94284 0.99943",
		"CVE-2016-2781 0.00043 0.11812",
		"CVE-2023-5678 0.00215 0.43857",
		"CVE-2023-38545 0.23519 0.95684",
	}
	day := time.Date(2025, 8, 25, 12, 55, 0, 0, time.UTC)
	for name, input := range map[string][]byte{"plain": data, "gzip": gz(data)} {
		t.Run(name, func(t *testing.T) {
			var sink feedtest.Sink
			meta, err := (&Parser{}).ParseMeta(context.Background(), "epss_scores-2025-08-25.csv", bytes.NewReader(input), &sink)
			if err != nil {
				t.Fatal(err)
			}
			if meta.ModelVersion != "v2025.03.14" || !meta.ScoreDate.Equal(day) {
				t.Errorf("meta = %+v", meta)
			}
			var got []string
			for _, e := range sink.Enrichments {
				got = append(got, fmt.Sprintf("%s %.5f %.5f", e.ID, e.EPSS.Score, e.EPSS.Percentile))
				if !e.EPSS.Date.Equal(day) || e.Source != SourceName {
					t.Errorf("%s: date %v source %q", e.ID, e.EPSS.Date, e.Source)
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// not-a-cve, score 1.7, empty percentile, bare quote.
			if len(sink.Skips) != 4 {
				t.Errorf("skips = %q, want 4", sink.Skips)
			}
		})
	}
}

func TestNoCommentLine(t *testing.T) {
	// Files before 2022 start with the header; the date then comes from the file name.
	in := "cve,epss,percentile\nCVE-2021-44228,0.97565,0.99996\n"
	var sink feedtest.Sink
	meta, err := (&Parser{}).ParseMeta(context.Background(), "/mirror/epss_scores-2021-12-20.csv", strings.NewReader(in), &sink)
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.Enrichments) != 1 || !meta.ScoreDate.Equal(time.Date(2021, 12, 20, 0, 0, 0, 0, time.UTC)) || meta.ModelVersion != "" {
		t.Errorf("meta %+v, %d rows", meta, len(sink.Enrichments))
	}
	// Columns are found by name.
	sink = feedtest.Sink{}
	if err := (&Parser{}).Parse(context.Background(), "x.csv", strings.NewReader("percentile,cve,epss\n0.5,CVE-2023-5678,0.1\n"), &sink); err != nil {
		t.Fatal(err)
	}
	if e := sink.Enrichments[0]; e.ID != "CVE-2023-5678" || e.EPSS.Score != 0.1 || e.EPSS.Percentile != 0.5 {
		t.Errorf("reordered columns: %+v", e.EPSS)
	}
}

func TestParseErrors(t *testing.T) {
	data, _ := os.ReadFile("testdata/epss_scores-2025-08-25.csv")
	zipped := gz(data)
	tests := []struct {
		name string
		in   []byte
		max  int64
		want error
	}{
		{"empty", nil, 0, io.ErrUnexpectedEOF},
		{"comment only", []byte("#model_version:v2023.03.01\n"), 0, nil},
		{"kev json", []byte(`{"title": "CISA Catalog", "vulnerabilities": []}`), 0, nil},
		{"truncated gzip", zipped[:len(zipped)/2], 0, io.ErrUnexpectedEOF},
		{"too large", data, 100, jsonx.ErrTooLarge},
	}
	for _, tt := range tests {
		err := (&Parser{MaxSize: tt.max}).Parse(context.Background(), "epss.csv.gz", bytes.NewReader(tt.in), &feedtest.Sink{})
		if err == nil || !strings.Contains(err.Error(), "epss.csv.gz") {
			t.Errorf("%s: err = %v, want an error naming the file", tt.name, err)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestRealSample parses the 29-row excerpt of the 2024-10-25 file in /work/shared/vulndata.
func TestRealSample(t *testing.T) {
	f, err := os.Open("/work/shared/vulndata/samples/epss/epss_scores-excerpt-2024-10-25.csv")
	if err != nil {
		t.Skip("vulndata not present")
	}
	defer f.Close()
	var sink feedtest.Sink
	meta, err := (&Parser{}).ParseMeta(context.Background(), f.Name(), f, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.Enrichments) != 29 || len(sink.Skips) != 0 || meta.ModelVersion != "v2023.03.01" ||
		!meta.ScoreDate.Equal(time.Date(2024, 10, 25, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("%d rows, %d skips, meta %+v", len(sink.Enrichments), len(sink.Skips), meta)
	}
	if e := sink.Enrichments[0]; e.ID != "CVE-1999-0005" || e.EPSS.Score != 0.91963 || e.EPSS.Percentile != 0.99030 {
		t.Errorf("first row = %s %+v", e.ID, e.EPSS)
	}
}

// TestLarge streams a generated file the size of a real day (300,000 rows, gzip).
func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	var raw bytes.Buffer
	raw.WriteString("#model_version:v2025.03.14,score_date:2025-08-25T00:00:00+0000\ncve,epss,percentile\n")
	for i := range 300_000 {
		fmt.Fprintf(&raw, "CVE-%d-%d,0.%05d,0.%05d\n", 1999+i%27, 1000+i, i%99999, (i*7)%99999)
	}
	zipped := gz(raw.Bytes())
	var n countSink
	start := time.Now()
	if err := (&Parser{}).Parse(context.Background(), "epss_scores-current.csv.gz", bytes.NewReader(zipped), &n); err != nil {
		t.Fatal(err)
	}
	t.Logf("300000 rows (%d MB raw, %d MB gzip) in %v", raw.Len()>>20, len(zipped)>>20, time.Since(start))
	if n != 300_000 {
		t.Fatalf("rows = %d", n)
	}
}
