package debian

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

// summary renders one advisory compactly for table comparison.
func summary(a *model.Advisory) string {
	state := "unfixed(" + a.Note + ")"
	if !a.Unfixed {
		state = "fixed " + a.Ranges[0].Events[1].Fixed
	}
	return fmt.Sprintf("%s %s %s %s %s/%s", a.Ecosystem, a.Package, a.ID, state, a.Severity, a.Urgency)
}

func parseFile(t *testing.T, p *Parser, data []byte) *feedtest.Sink {
	t.Helper()
	var sink feedtest.Sink
	if err := p.Parse(context.Background(), "tracker.json", bytes.NewReader(data), &sink); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return &sink
}

func TestParseFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/tracker.json")
	if err != nil {
		t.Fatal(err)
	}
	gz := gzipped(data)
	want := []string{
		"Debian:12 openssl CVE-2023-5678 fixed 3.0.13-1~deb12u1 UNTRIAGED/not yet assigned",
		"Debian:12 curl CVE-2023-38545 fixed 7.88.1-10+deb12u4 HIGH/high",
		"Debian:13 curl CVE-2023-38545 fixed 8.3.0-3 HIGH/high",
		"Debian:12 coreutils CVE-2016-2781 unfixed(open) LOW/unimportant",
		"Debian:11 coreutils CVE-2016-2781 unfixed(open) LOW/unimportant",
		"Debian:12 procps CVE-2023-4016 unfixed(no-dsa: Minor issue) LOW/low",
		"Debian:11 procps CVE-2023-4016 unfixed(postponed: Minor issue) LOW/low",
		"Debian:10 procps CVE-2023-4016 unfixed(end-of-life) UNTRIAGED/end-of-life",
		"Debian:12 bash TEMP-0841856-B18BAF unfixed(open) LOW/unimportant",
		"Debian:12 tiff CVE-2023-3164 unfixed(undetermined) MEDIUM/medium**",
	}
	wantUnstable := slices.Clone(want)
	wantUnstable = slices.Insert(wantUnstable, 1, "Debian:unstable openssl CVE-2023-5678 fixed 3.1.4-2 UNTRIAGED/not yet assigned")
	wantUnstable = slices.Insert(wantUnstable, 4, "Debian:unstable xz-utils CVE-2024-3094 fixed 5.6.1+really5.4.5-1 LOW/unimportant")
	wantNoTemp := slices.DeleteFunc(slices.Clone(want), func(s string) bool { return strings.Contains(s, "TEMP-") })

	tests := []struct {
		name  string
		p     Parser
		input []byte
		want  []string
	}{
		{"plain", Parser{}, data, want},
		{"gzip", Parser{}, gz, want},
		{"unstable", Parser{Unstable: true}, data, wantUnstable},
		{"skip temp", Parser{SkipTemp: true}, data, wantNoTemp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := parseFile(t, &tt.p, tt.input)
			var got []string
			for _, a := range sink.Advisories {
				got = append(got, summary(a))
				if a.Source != SourceName {
					t.Errorf("%s: Source = %q", a.ID, a.Source)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("advisories:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			// bullseye resolved without a version, an unknown status, and a releases field of the
			// wrong type: skipped, counted, parse goes on.
			if len(sink.Skips) != 3 {
				t.Errorf("skips = %d %q, want 3", len(sink.Skips), sink.Skips)
			}
		})
	}
}

func TestAdvisoryDetails(t *testing.T) {
	data, err := os.ReadFile("testdata/tracker.json")
	if err != nil {
		t.Fatal(err)
	}
	sink := parseFile(t, &Parser{}, data)
	a := sink.Advisories[1] // curl bookworm
	if a.Package != "curl" || a.Ecosystem != "Debian:12" {
		t.Fatalf("unexpected advisory %+v", a)
	}
	wantRanges := []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{{Introduced: "0"}, {Fixed: "7.88.1-10+deb12u4"}}}}
	if fmt.Sprint(a.Ranges) != fmt.Sprint(wantRanges) {
		t.Errorf("Ranges = %v, want %v", a.Ranges, wantRanges)
	}
	wantRefs := []string{"https://security-tracker.debian.org/tracker/CVE-2023-38545", "https://bugs.debian.org/1053769"}
	if !slices.Equal(a.References, wantRefs) {
		t.Errorf("References = %q, want %q", a.References, wantRefs)
	}
	if !strings.HasPrefix(a.Summary, "This flaw makes curl overflow") {
		t.Errorf("Summary = %q", a.Summary)
	}
}

func TestSeverity(t *testing.T) {
	for urgency, want := range map[string]string{
		"low": "LOW", "low**": "LOW", "medium": "MEDIUM", "medium*": "MEDIUM", "high": "HIGH", "high**": "HIGH",
		"unimportant": "LOW", "not yet assigned": "UNTRIAGED", "end-of-life": "UNTRIAGED", "": "UNTRIAGED",
		"critical": "UNTRIAGED",
	} {
		if got := Severity(urgency); got != want {
			t.Errorf("Severity(%q) = %q, want %q", urgency, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/tracker.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		input string
		max   int64
		want  error
	}{
		{"truncated", string(data[:len(data)/2]), 0, io.ErrUnexpectedEOF},
		{"empty", "", 0, io.ErrUnexpectedEOF},
		{"array", `[{"openssl": {}}]`, 0, nil},
		{"package not object", `{"openssl": 3}`, 0, nil},
		{"trailing garbage", `{} {}`, 0, nil},
		{"too large", string(data), 1000, jsonx.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sink feedtest.Sink
			p := Parser{MaxSize: tt.max}
			err := p.Parse(context.Background(), "tracker.json", strings.NewReader(tt.input), &sink)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), "tracker.json") {
				t.Errorf("error %q does not name the file", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSinkErrorStops(t *testing.T) {
	data, err := os.ReadFile("testdata/tracker.json")
	if err != nil {
		t.Fatal(err)
	}
	sink := feedtest.Sink{Stop: 2}
	err = (&Parser{}).Parse(context.Background(), "tracker.json", bytes.NewReader(data), &sink)
	if !errors.Is(err, feedtest.ErrStop) || len(sink.Advisories) != 2 {
		t.Fatalf("err = %v after %d advisories, want ErrStop after 2", err, len(sink.Advisories))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (&Parser{}).Parse(ctx, "tracker.json", bytes.NewReader(data), &feedtest.Sink{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled parse: err = %v", err)
	}
}

// TestStreamingMemory parses a synthetic tracker of about 60 MB and checks that the heap does not
// grow with it.
func TestStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	const entries = 200_000
	gen := &synthetic{n: entries}
	r := io.MultiReader(strings.NewReader("{"), gen, strings.NewReader("}"))
	var count countSink
	start := time.Now()
	if err := (&Parser{}).Parse(context.Background(), "synthetic.json", r, &count); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d MB, %d entries in %v (10 forced GCs included), peak heap %d MiB", gen.bytes>>20, entries, time.Since(start), count.maxHeap>>20)
	if count.n != entries {
		t.Fatalf("advisories = %d, want %d", count.n, entries)
	}
	if count.maxHeap > 64<<20 {
		t.Errorf("heap reached %d MiB while streaming", count.maxHeap>>20)
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestBenchFixture parses the benchmark corpus's tracker-format file when it exists (it is built
// outside this repository from bookworm changelogs; all 754 issues are resolved in bookworm).
func TestBenchFixture(t *testing.T) {
	f, err := os.Open("/root/vigil-bench/debian-fixture/mirror/debian/tracker.json")
	if err != nil {
		t.Skip("benchmark corpus not present")
	}
	defer f.Close()
	var sink feedtest.Sink
	if err := (&Parser{}).Parse(context.Background(), f.Name(), f, &sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.Skips) != 0 || len(sink.Advisories) == 0 {
		t.Fatalf("%d advisories, skips %q", len(sink.Advisories), sink.Skips)
	}
	for _, a := range sink.Advisories {
		if a.Ecosystem != "Debian:12" || a.Unfixed || len(a.Ranges) != 1 {
			t.Fatalf("unexpected %+v", a)
		}
	}
	t.Logf("%d advisories", len(sink.Advisories))
}
