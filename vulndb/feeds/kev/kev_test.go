package kev

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func TestParseFixture(t *testing.T) {
	f, err := os.Open("testdata/kev.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sink feedtest.Sink
	cat, err := (&Parser{}).ParseCatalog(context.Background(), "kev.json", f, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if cat.CatalogVersion != "2025.08.25" || cat.Count != 5 || !cat.DateReleased.Equal(time.Date(2025, 8, 25, 17, 4, 19, 979600000, time.UTC)) {
		t.Errorf("catalog = %+v", cat)
	}
	if len(sink.Enrichments) != 3 || len(sink.Skips) != 3 {
		t.Fatalf("got %d enrichments, skips %q; want 3 and 3", len(sink.Enrichments), sink.Skips)
	}
	log4j := sink.Enrichments[0]
	want := &model.KEV{
		DateAdded:        time.Date(2021, 12, 10, 0, 0, 0, 0, time.UTC),
		DueDate:          time.Date(2021, 12, 24, 0, 0, 0, 0, time.UTC),
		VendorProject:    "Apache",
		Product:          "Log4j2",
		Name:             "Apache Log4j2 Remote Code Execution Vulnerability",
		KnownRansomware:  "Known",
		RequiredAction:   log4j.KEV.RequiredAction,
		ShortDescription: log4j.KEV.ShortDescription,
	}
	if log4j.ID != "CVE-2021-44228" || log4j.Source != SourceName || *log4j.KEV != *want {
		t.Errorf("log4j = %+v %+v", log4j, log4j.KEV)
	}
	if !strings.HasPrefix(log4j.KEV.RequiredAction, "For all affected") || !slices.Equal(log4j.CWEs, []string{"CWE-20", "CWE-400", "CWE-502"}) {
		t.Errorf("log4j details: %q %q", log4j.KEV.RequiredAction, log4j.CWEs)
	}
	citrix := sink.Enrichments[1]
	if len(citrix.References) != 3 || citrix.References[2] != "https://nvd.nist.gov/vuln/detail/CVE-2023-4966" ||
		!strings.HasSuffix(citrix.References[0], "netscaler-gateway/") {
		t.Errorf("citrix references = %q", citrix.References)
	}
	bash := sink.Enrichments[2]
	if !bash.KEV.DueDate.IsZero() || bash.References != nil || bash.CWEs != nil || bash.KEV.KnownRansomware != "Unknown" {
		t.Errorf("bash = %+v %+v", bash, bash.KEV)
	}
}

func TestParseErrors(t *testing.T) {
	data, _ := os.ReadFile("testdata/kev.json")
	for name, in := range map[string]string{
		"truncated":   string(data[:len(data)/2]),
		"empty":       "",
		"osv":         `{"id": "GHSA-jfh8-c2jp-5v3q", "affected": []}`,
		"not array":   `{"vulnerabilities": {}}`,
		"csv":         "cveID,vendorProject,product\nCVE-2021-44228,Apache,Log4j2\n",
		"after value": `{"vulnerabilities": []} x`,
	} {
		if err := (&Parser{}).Parse(context.Background(), "kev.json", strings.NewReader(in), &feedtest.Sink{}); err == nil || !strings.Contains(err.Error(), "kev.json") {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
}

// TestRealCatalog parses the 2025-08-25 catalog in /work/shared/vulndata.
func TestRealCatalog(t *testing.T) {
	f, err := os.Open("/work/shared/vulndata/kev/known_exploited_vulnerabilities.json")
	if err != nil {
		t.Skip("vulndata not present")
	}
	defer f.Close()
	start := time.Now()
	var sink feedtest.Sink
	cat, err := (&Parser{}).ParseCatalog(context.Background(), f.Name(), f, &sink)
	if err != nil {
		t.Fatal(err)
	}
	var refs, cwes, known int
	for _, e := range sink.Enrichments {
		refs += len(e.References)
		cwes += len(e.CWEs)
		if e.KEV.KnownRansomware == "Known" {
			known++
		}
		if e.KEV.DueDate.IsZero() {
			t.Errorf("%s: no due date", e.ID)
		}
	}
	t.Logf("%d entries in %v", len(sink.Enrichments), time.Since(start))
	// Counted independently with python's json module.
	if cat.CatalogVersion != "2025.08.25" || len(sink.Enrichments) != 1404 || cat.Count != 1404 || len(sink.Skips) != 0 {
		t.Errorf("version %s, %d entries (count %d), %d skips; want 2025.08.25, 1404, 0", cat.CatalogVersion, len(sink.Enrichments), cat.Count, len(sink.Skips))
	}
	if refs != 2213 || cwes != 1338 || known != 293 {
		t.Errorf("refs %d cwes %d known-ransomware %d; want 2213 1338 293", refs, cwes, known)
	}
}
