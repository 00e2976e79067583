package alpine

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/v3.11/main.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"packages": [{"pkg": {"name": "a", "secfixes": {"0": ["CVE-2020-1"], "1-r0": [null, "XSA-1 CVE_2020-12345"]}}}]}`))
	f.Add([]byte(`{"distroversion": "v3.20", "packages": ""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sink feedtest.Sink
		if err := (&Parser{MaxSize: 1 << 20}).Parse(context.Background(), "v3.20/main.json", bytes.NewReader(data), &sink); err != nil {
			return
		}
		for _, a := range sink.Advisories {
			if a.Package == "" || a.ID == "" || len(a.Ranges) == 0 {
				t.Fatalf("incomplete advisory %+v", a)
			}
			for _, r := range a.Ranges {
				if len(r.Events) != 2 || r.Events[1].Fixed == "" || r.Events[1].Fixed == "0" {
					t.Fatalf("bad range %+v", r)
				}
			}
		}
	})
}
