package kev

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/kev.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"count": 1e400, "vulnerabilities": [{"cveID": "CVE-2024-3400", "dateAdded": "2024-04-12", "cwes": [null]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sink feedtest.Sink
		if err := (&Parser{MaxSize: 1 << 20}).Parse(context.Background(), "fuzz.json", bytes.NewReader(data), &sink); err != nil {
			return
		}
		for _, e := range sink.Enrichments {
			if e.KEV == nil || e.KEV.DateAdded.IsZero() || !cveRE.MatchString(e.ID) {
				t.Fatalf("bad enrichment %+v", e)
			}
		}
	})
}
