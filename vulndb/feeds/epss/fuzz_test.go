package epss

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/epss_scores-2025-08-25.csv"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("cve,epss,percentile\nCVE-2021-44228,NaN,1e-3\n"))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sink feedtest.Sink
		if err := (&Parser{MaxSize: 1 << 20}).Parse(context.Background(), "fuzz.csv", bytes.NewReader(data), &sink); err != nil {
			return
		}
		for _, e := range sink.Enrichments {
			if e.EPSS == nil || e.EPSS.Score < 0 || e.EPSS.Score > 1 || e.EPSS.Percentile < 0 || e.EPSS.Percentile > 1 {
				t.Fatalf("bad enrichment %+v", e)
			}
		}
	})
}
