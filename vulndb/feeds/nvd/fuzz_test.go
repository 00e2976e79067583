package nvd

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/page.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"totalResults": 1e99, "vulnerabilities": [{"cve": {"id": "CVE-2024-3094", "metrics": {"cvssMetricV31": [{"type": "Primary", "cvssData": {"vectorString": "x", "baseScore": "10"}}]}}}]}`))
	f.Add([]byte(`{"vulnerabilities": [{"cve": {"id": "CVE-2024-3094", "configurations": [{"nodes": [{"negate": true, "cpeMatch": [{"criteria": "cpe:2.3:a:tukaani:xz:5.6.0"}]}]}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sink feedtest.Sink
		if err := (&Parser{MaxSize: 1 << 20}).Parse(context.Background(), "fuzz.json", bytes.NewReader(data), &sink); err != nil {
			return
		}
		for _, e := range sink.Enrichments {
			if !cveRE.MatchString(e.ID) {
				t.Fatalf("bad ID %q", e.ID)
			}
		}
	})
}
