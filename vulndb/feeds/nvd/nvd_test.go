package nvd

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

func cvssList(cs []model.CVSS) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s %.1f %s", c.Source, c.Version, c.Score, c.Vector))
	}
	return out
}

func TestParsePage(t *testing.T) {
	data, err := os.ReadFile("testdata/page.json")
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(data)
	zw.Close()
	for name, input := range map[string][]byte{"plain": data, "gzip": zipped.Bytes()} {
		t.Run(name, func(t *testing.T) {
			var sink feedtest.Sink
			page, err := (&Parser{}).ParsePage(context.Background(), "page.json", bytes.NewReader(input), &sink)
			if err != nil {
				t.Fatal(err)
			}
			if page.TotalResults != 4 || page.Records != 4 || page.Format != "NVD_CVE" || page.Version != "2.0" ||
				!page.Timestamp.Equal(time.Date(2025, 8, 25, 18, 20, 31, 733e6, time.UTC)) {
				t.Errorf("page = %+v", page)
			}
			if len(sink.Enrichments) != 2 || len(sink.Skips) != 2 {
				t.Fatalf("%d enrichments, skips %q; want 2 and 2", len(sink.Enrichments), sink.Skips)
			}
			log4j, panos := sink.Enrichments[0], sink.Enrichments[1]
			if log4j.ID != "CVE-2021-44228" || log4j.Source != "nvd" || !strings.HasPrefix(log4j.Description, "Apache Log4j2 2.0-beta9") {
				t.Errorf("log4j = %s %s %q", log4j.ID, log4j.Source, log4j.Description)
			}
			if !log4j.Published.Equal(time.Date(2021, 12, 10, 10, 15, 9, 143e6, time.UTC)) ||
				!log4j.Modified.Equal(time.Date(2025, 2, 4, 15, 15, 13, 773e6, time.UTC)) {
				t.Errorf("log4j times %v %v", log4j.Published, log4j.Modified)
			}
			wantCVSS := []string{
				"nvd 3.1 10.0 CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
				"nvd 2.0 9.3 AV:N/AC:M/Au:N/C:C/I:C/A:C",
				"security@apache.org 3.1 10.0 CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
			}
			if got := cvssList(log4j.CVSS); !slices.Equal(got, wantCVSS) {
				t.Errorf("log4j CVSS\n got %q\nwant %q", got, wantCVSS)
			}
			if want := []string{"CWE-917", "CWE-20", "CWE-400", "CWE-502"}; !slices.Equal(log4j.CWEs, want) {
				t.Errorf("log4j CWEs = %q, want %q", log4j.CWEs, want)
			}
			if len(log4j.References) != 2 {
				t.Errorf("log4j references not deduplicated: %q", log4j.References)
			}
			// Two configurations: one OR node of five criteria (one a duplicate), and an AND of a
			// firmware with the hardware it runs on.
			if len(log4j.Configurations) != 2 {
				t.Fatalf("log4j configurations = %+v", log4j.Configurations)
			}
			first := log4j.Configurations[0]
			if first.Operator != "" || len(first.Nodes) != 1 || first.Nodes[0].Operator != "OR" || len(first.Nodes[0].Matches) != 4 {
				t.Fatalf("first configuration = %+v", first)
			}
			wantFirst := model.CPEMatch{Criteria: "cpe:2.3:a:apache:log4j:*:*:*:*:*:*:*:*", Vulnerable: true, VersionStartIncluding: "2.0.1", VersionEndExcluding: "2.3.1"}
			if first.Nodes[0].Matches[0] != wantFirst {
				t.Errorf("first criterion = %+v", first.Nodes[0].Matches[0])
			}
			and := log4j.Configurations[1]
			if and.Operator != "AND" || len(and.Nodes) != 2 {
				t.Fatalf("AND configuration = %+v", and)
			}
			if hw := and.Nodes[1].Matches[0]; hw.Vulnerable || !strings.Contains(hw.Criteria, ":h:siemens:") {
				t.Errorf("platform criterion = %+v", hw)
			}
			wantPan := []string{
				"nvd 3.1 10.0 CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
				"psirt@paloaltonetworks.com 4.0 10.0 CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
			}
			if got := cvssList(panos.CVSS); !slices.Equal(got, wantPan) {
				t.Errorf("PAN-OS CVSS\n got %q\nwant %q", got, wantPan)
			}
			if !slices.Equal(panos.CWEs, []string{"CWE-77", "CWE-20"}) {
				t.Errorf("PAN-OS CWEs = %q", panos.CWEs)
			}
			if c := panos.Configurations; len(c) != 1 || len(c[0].Nodes) != 2 || c[0].Nodes[0].Negate || !c[0].Nodes[1].Negate {
				t.Errorf("PAN-OS negated node not kept: %+v", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	data, _ := os.ReadFile("testdata/page.json")
	tests := []struct {
		name, in string
		max      int64
		want     error
	}{
		{"truncated", string(data[:len(data)*2/3]), 0, io.ErrUnexpectedEOF},
		{"empty", "", 0, io.ErrUnexpectedEOF},
		{"legacy 1.1 feed", `{"CVE_data_type": "CVE", "CVE_Items": []}`, 0, nil},
		{"other format", `{"format": "NVD_CPE", "vulnerabilities": []}`, 0, nil},
		{"not array", `{"vulnerabilities": 3}`, 0, nil},
		{"too large", string(data), 512, jsonx.ErrTooLarge},
	}
	for _, tt := range tests {
		err := (&Parser{MaxSize: tt.max}).Parse(context.Background(), "nvdcve-2.0-2021.json", strings.NewReader(tt.in), &feedtest.Sink{})
		if err == nil || !strings.Contains(err.Error(), "nvdcve-2.0-2021.json") {
			t.Errorf("%s: err = %v, want an error naming the file", tt.name, err)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestRealSample parses the 3-CVE excerpt of the 2025-08-07 feed in /work/shared/vulndata.
func TestRealSample(t *testing.T) {
	f, err := os.Open("/work/shared/vulndata/samples/nvd/nvdcve-2.0-excerpt.json")
	if err != nil {
		t.Skip("vulndata not present")
	}
	defer f.Close()
	var sink feedtest.Sink
	page, err := (&Parser{}).ParsePage(context.Background(), f.Name(), f, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if page.TotalResults != 3 || len(sink.Enrichments) != 3 || len(sink.Skips) != 0 {
		t.Fatalf("page %+v, %d enrichments, %d skips", page, len(sink.Enrichments), len(sink.Skips))
	}
	var ids []string
	for _, e := range sink.Enrichments {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"CVE-2016-2781", "CVE-2016-3197", "CVE-2016-3674"}) {
		t.Errorf("ids = %q", ids)
	}
	coreutils := sink.Enrichments[0]
	want := []string{
		"nvd 3.0 6.5 CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:C/C:N/I:H/A:N",
		"nvd 2.0 2.1 AV:L/AC:L/Au:N/C:N/I:P/A:N",
		"134c704f-9b21-4f2e-91b3-4a467353bcc0 3.1 4.6 CVSS:3.1/AV:L/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N",
	}
	if got := cvssList(coreutils.CVSS); !slices.Equal(got, want) {
		t.Errorf("CVE-2016-2781 CVSS\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(coreutils.CWEs, []string{"CWE-20"}) || len(coreutils.Configurations) != 1 {
		t.Errorf("CVE-2016-2781 CWEs %q configurations %+v", coreutils.CWEs, coreutils.Configurations)
	}
	if rejected := sink.Enrichments[1]; len(rejected.CVSS) != 0 || rejected.Configurations != nil {
		t.Errorf("CVE-2016-3197: %+v", rejected)
	}
	if x := sink.Enrichments[2]; len(x.Configurations) != 3 || len(x.Configurations[1].Nodes[0].Matches) != 3 || !slices.Equal(x.CWEs, []string{"CWE-200"}) {
		t.Errorf("CVE-2016-3674: configurations %+v CWEs %q", x.Configurations, x.CWEs)
	}
}
