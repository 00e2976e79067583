package debian

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/tracker.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"a": {"CVE-1": {"releases": {"bookworm": {"status": "open", "nodsa": "x", "nodsa_reason": "ignored"}}}}}`))
	f.Add([]byte(`{"a": {"CVE-1": {"releases": {"sid": {"status": "resolved", "fixed_version": "0"}}, "debianbug": "12"}}}`))
	f.Add([]byte(`{"a": []}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sink feedtest.Sink
		err := (&Parser{Unstable: true, MaxSize: 1 << 20}).Parse(context.Background(), "fuzz.json", bytes.NewReader(data), &sink)
		if err != nil {
			return
		}
		for _, a := range sink.Advisories {
			if a.Package == "" || a.ID == "" || a.Ecosystem == "" {
				t.Fatalf("advisory without identity: %+v", a)
			}
			if !a.Unfixed && (len(a.Ranges) != 1 || len(a.Ranges[0].Events) != 2 || a.Ranges[0].Events[1].Fixed == "") {
				t.Fatalf("fixed advisory without a fixed event: %+v", a)
			}
		}
	})
}
