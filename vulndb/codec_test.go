package vulndb

import (
	"reflect"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

var codecCases = []entry{
	{},
	{PURL: "pkg:pypi/urllib3", Ranges: []model.Range{
		{Type: "GIT", Events: []model.Event{{Introduced: "0"}, {Fixed: "8d65ea1ecf6e2cdc27d42124e587c1b83a3118b0"}}},
		{Type: "ECOSYSTEM", Events: []model.Event{{Introduced: "1.26.0"}, {Fixed: "1.26.4"}}}},
		Versions: []string{"1.26.0", "1.26.1", "1.26.2", "1.26.3"}, Severity: "UNTRIAGED"},
	{Ranges: []model.Range{{Type: "SEMVER", Events: []model.Event{{Introduced: "5.0.0"}, {LastAffected: "5.15.11"}, {Limit: "6"}}}},
		Severity: "MEDIUM", Urgency: "Medium",
		CVSS: []model.CVSS{{Source: "bit", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", Score: 6.1}}},
	{Unfixed: true, Note: "no-dsa: Minor issue", Severity: "LOW", Urgency: "unimportant"},
}

func TestEntryCodec(t *testing.T) {
	for i, e := range codecCases {
		b := encodeEntry(&e)
		for _, alias := range []bool{false, true} {
			got, err := decodeEntry(b, alias)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("case %d (alias %v): got %+v, want %+v", i, alias, got, e)
			}
		}
		for cut := 0; cut < len(b); cut++ {
			if _, err := decodeEntry(b[:cut], false); err == nil {
				t.Errorf("case %d: truncated at %d decoded", i, cut)
			}
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, e := range codecCases {
		f.Add(encodeEntry(&e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b, false)
		if err != nil {
			return
		}
		// Whatever decodes must survive a round trip.
		again, err := decodeEntry(encodeEntry(&e), false)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(again.Ranges) != len(e.Ranges) || len(again.Versions) != len(e.Versions) || len(again.CVSS) != len(e.CVSS) {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}
