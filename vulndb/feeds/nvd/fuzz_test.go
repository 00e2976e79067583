package nvd

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/vigil-sec/vigil/match/cpe"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/feedtest"
)

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/page.json", "testdata/cpe-cves.json"} {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
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
			for _, c := range e.Configurations {
				for _, n := range c.Nodes {
					for _, m := range n.Matches {
						if _, err := cpe.Parse(m.Criteria); err != nil {
							t.Fatalf("unparseable criterion kept: %q", m.Criteria)
						}
					}
				}
			}
		}
	})
}

// FuzzDecodeConfigurations feeds arbitrary configurations arrays to the decoder, then evaluates what
// it kept against names made from its own criteria: nothing may panic, and what is kept must be
// well formed.
func FuzzDecodeConfigurations(f *testing.F) {
	f.Add([]byte(`[{"nodes":[{"operator":"OR","negate":false,"cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:a:apache:log4j:*:*:*:*:*:*:*:*","versionStartIncluding":"2.13.0","versionEndExcluding":"2.15.0"}]}]}]`))
	f.Add([]byte(`[{"operator":"AND","nodes":[{"operator":"OR","cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:a:apache:tomcat:*:*:*:*:*:*:*:*","versionEndIncluding":"9.0.17"}]},{"operator":"OR","cpeMatch":[{"vulnerable":false,"criteria":"cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*"}]}]}]`))
	f.Add([]byte(`[{"operator":"AND","nodes":[{"operator":"and","negate":true,"cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:o:paloaltonetworks:pan-os:10.2.9:h1:*:*:*:*:*:*"},{"criteria":"bad"}]}]}]`))
	f.Add([]byte(`[{"operator":"XOR","nodes":[]}, null, {"nodes":[{"cpeMatch":null}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfgs, err := DecodeConfigurations(data)
		if err != nil {
			return
		}
		var targets []cpe.Target
		pkg := &model.Package{Name: "p", Version: "1.0"}
		for _, c := range cfgs {
			if len(c.Nodes) == 0 || (c.Operator != "" && c.Operator != "AND" && c.Operator != "OR") {
				t.Fatalf("bad configuration kept: %+v", c)
			}
			for _, n := range c.Nodes {
				if len(n.Matches) == 0 || (n.Operator != "AND" && n.Operator != "OR") {
					t.Fatalf("bad node kept: %+v", n)
				}
				for _, m := range n.Matches {
					name, err := cpe.Parse(m.Criteria)
					if err != nil {
						t.Fatalf("unparseable criterion kept: %q", m.Criteria)
					}
					targets = append(targets, cpe.Target{Name: name, Package: pkg}, cpe.Target{Name: name})
				}
			}
		}
		for _, h := range cpe.NewEvaluator(targets).Evaluate(cpe.Vuln{ID: "CVE-2000-0001", Configurations: cfgs}) {
			if h.Package != pkg || !h.Criterion.Vulnerable {
				t.Fatalf("hit without a package or on a platform criterion: %+v", h)
			}
		}
	})
}
