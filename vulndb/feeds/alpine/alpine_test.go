package alpine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func summary(a *model.Advisory) string {
	var fixed []string
	for _, r := range a.Ranges {
		fixed = append(fixed, r.Events[1].Fixed)
	}
	s := fmt.Sprintf("%s %s %s fixed=%s", a.Ecosystem, a.Package, a.ID, strings.Join(fixed, ","))
	if len(a.Aliases) > 0 {
		s += " aliases=" + strings.Join(a.Aliases, ",")
	}
	return s
}

func TestParseFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/v3.11/main.json")
	if err != nil {
		t.Fatal(err)
	}
	var sink feedtest.Sink
	if err := (&Parser{}).Parse(context.Background(), "v3.11/main.json", bytes.NewReader(data), &sink); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Alpine:v3.11 openssl CVE-2019-1551 fixed=1.1.1d-r3",
		"Alpine:v3.11 openssl CVE-2019-1547 fixed=1.1.1d-r1",
		"Alpine:v3.11 openssl CVE-2019-1549 fixed=1.1.1d-r1",
		"Alpine:v3.11 openssl CVE-2019-1563 fixed=1.1.1d-r1",
		"Alpine:v3.11 busybox CVE-2019-5747 fixed=1.30.1-r2,1.29.3-r10",
		"Alpine:v3.11 busybox CVE-2018-20679 fixed=1.29.3-r10",
		"Alpine:v3.11 db CVE-2017-10140 fixed=5.3.28-r1",
		"Alpine:v3.11 xen CVE-2016-6258 fixed=4.7.0-r0 aliases=XSA-182",
		"Alpine:v3.11 xen XSA-207 fixed=4.7.1-r5",
		"Alpine:v3.11 xen XSA-295 fixed=4.12.1-r0",
		"Alpine:v3.11 rsync CVE-2017-17434 fixed=3.1.2-r7",
		"Alpine:v3.11 tcpdump CVE-2018-14881 fixed=4.9.3-r0",
		"Alpine:v3.11 tcpdump CVE-2018-16859 fixed=4.9.3-r0",
		"Alpine:v3.11 tcpdump CVE-2019-2426 fixed=4.9.3-r0",
	}
	var got []string
	for _, a := range sink.Advisories {
		got = append(got, summary(a))
		if a.Source != SourceName || a.Severity != model.SeverityUntriaged || a.Unfixed {
			t.Errorf("%s: unexpected Source/Severity/Unfixed %q %q %v", a.ID, a.Source, a.Severity, a.Unfixed)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("advisories:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	// "CVE-????-?????" alone, the package named 42 and musl's secfixes value that is not a list.
	if len(sink.Skips) != 3 {
		t.Errorf("skips = %q, want 3", sink.Skips)
	}
}

func TestParseIDs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"CVE-2019-1551", []string{"CVE-2019-1551"}},
		{"CVE-2016-6258 XSA-182", []string{"CVE-2016-6258", "XSA-182"}},
		{"CVE-2019-5060 TALOS-2019-0844", []string{"CVE-2019-5060", "TALOS-2019-0844"}},
		{"CVE-2018-10103 (SMB - partially fixed, but SMB printing disabled)", []string{"CVE-2018-10103"}},
		{"CVE_2019-2426", []string{"CVE-2019-2426"}},
		{"CVE 2018-16859", []string{"CVE-2018-16859"}},
		{"CVE-2019-19451.patch", []string{"CVE-2019-19451"}},
		{"CVE-2017-17434-1", []string{"CVE-2017-17434"}},
		{"ZBX-11023", []string{"ZBX-11023"}},
		{"wnpa-sec-2017-18", []string{"wnpa-sec-2017-18"}},
		{"GHSA-jfh8-c2jp-5v3q", []string{"GHSA-jfh8-c2jp-5v3q"}},
		{"CVE-????-?????  XSA-295", []string{"XSA-295"}},
		{"CVE-????-?????", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := ParseIDs(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("ParseIDs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReleaseFromName(t *testing.T) {
	data := `{"packages": [{"pkg": {"name": "musl", "secfixes": {"1.1.23-r2": ["CVE-2019-14697"]}}}]}`
	for name, want := range map[string]string{
		"v3.20/main.json":                    "Alpine:v3.20",
		"/mirror/alpine/v3.9/community.json": "Alpine:v3.9",
		"edge/main.json":                     "Alpine:edge",
	} {
		var sink feedtest.Sink
		if err := (&Parser{}).Parse(context.Background(), name, strings.NewReader(data), &sink); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(sink.Advisories) != 1 || sink.Advisories[0].Ecosystem != want {
			t.Errorf("%s: got %v, want ecosystem %s", name, sink.Advisories, want)
		}
	}
	if err := (&Parser{}).Parse(context.Background(), "main.json", strings.NewReader(data), &feedtest.Sink{}); err == nil {
		t.Error("no release anywhere: want an error")
	}
}

func TestParseErrors(t *testing.T) {
	data, _ := os.ReadFile("testdata/v3.11/main.json")
	for name, in := range map[string]string{
		"truncated":   string(data[:len(data)-40]),
		"empty":       "",
		"not secdb":   `{"title": "CISA Catalog", "vulnerabilities": []}`,
		"array":       `[]`,
		"yaml":        "---\ndistroversion: v3.11\n",
		"bad package": `{"distroversion": "v3.11", "packages": {}}`,
	} {
		err := (&Parser{}).Parse(context.Background(), "v3.11/main.json", strings.NewReader(in), &feedtest.Sink{})
		if err == nil || !strings.Contains(err.Error(), "v3.11/main.json") {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
	err := (&Parser{MaxSize: 100}).Parse(context.Background(), "v3.11/main.json", bytes.NewReader(data), &feedtest.Sink{})
	if err == nil {
		t.Error("over the size cap: want an error")
	}
}

// TestRealSecdb parses the alpine-secdb snapshot in /work/shared/vulndata (v3.3–v3.11).
func TestRealSecdb(t *testing.T) {
	files, _ := filepath.Glob("/work/shared/vulndata/alpine/v*/*.json")
	if len(files) == 0 {
		t.Skip("vulndata not present")
	}
	start := time.Now()
	var advisories, ranges, skips int
	perFile := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sink feedtest.Sink
		if err := (&Parser{}).Parse(context.Background(), f, bytes.NewReader(data), &sink); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		rel := filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
		perFile[rel] = len(sink.Advisories)
		advisories += len(sink.Advisories)
		skips += len(sink.Skips)
		for _, s := range sink.Skips {
			t.Logf("%s: skipped %s", rel, s)
		}
		for _, a := range sink.Advisories {
			ranges += len(a.Ranges)
			if want := "Alpine:" + filepath.Base(filepath.Dir(f)); a.Ecosystem != want {
				t.Fatalf("%s: ecosystem %s, want %s", f, a.Ecosystem, want)
			}
		}
	}
	t.Logf("%d files, %d advisories, %d ranges, %d skipped entries in %v", len(files), advisories, ranges, skips, time.Since(start))
	// Counted independently (python json) from the snapshot; see the package comment for the rules.
	for rel, want := range map[string]int{"v3.11/main.json": 1179, "v3.3/community.json": 0, "v3.8/main.json": 1124} {
		if perFile[rel] != want {
			t.Errorf("%s: %d advisories, want %d", rel, perFile[rel], want)
		}
	}
	if advisories != 11873 {
		t.Errorf("total advisories = %d, want 11873", advisories)
	}
	if skips != 0 || ranges != 11997 {
		t.Errorf("skipped entries = %d (want 0), ranges = %d (want 11997)", skips, ranges)
	}
}
