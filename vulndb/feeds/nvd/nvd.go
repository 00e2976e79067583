// Package nvd reads NVD CVE API 2.0 data — API response pages and the JSON 2.0 feed files
// (nvdcve-2.0-*.json[.gz]), which share one layout — into model.Enrichment values, and fetches it
// from the live API (client.go).
//
// Per CVE it keeps the English description, every CVSS metric (v4.0, v3.1, v3.0, v2; NVD's own
// "Primary" scores before the CNAs' "Secondary" ones, each with its source), CWE IDs, reference
// URLs, the published and last-modified times, and the configurations as NVD writes them (nodes
// with AND/OR and negate, cpeMatch criteria with their version bounds; see DecodeConfigurations).
// Vigil matches OS packages on vendor data only; configurations are for the opt-in CPE matching
// (match/cpe).
package nvd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/match/cpe"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

// SourceName is the Enrichment.Source of everything this package emits, and the CVSS source of
// NVD's own scores.
const SourceName = "nvd"

// DefaultMaxSize caps one uncompressed page or feed file (a yearly feed is a few hundred MB).
const DefaultMaxSize = 2 << 30

// Parser reads one API page or feed file. The zero value is ready to use.
type Parser struct {
	// MaxSize caps the uncompressed input in bytes; 0 means DefaultMaxSize.
	MaxSize int64
}

var _ feed.Parser = (*Parser)(nil)

// Page is the header of an API response or feed file.
type Page struct {
	ResultsPerPage int
	StartIndex     int
	TotalResults   int
	Format         string
	Version        string
	Timestamp      time.Time
	// Records counts the elements of vulnerabilities[], emitted or skipped.
	Records int
}

// Parse implements feed.Parser. The input may be gzip-compressed.
func (p *Parser) Parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) error {
	_, err := p.ParsePage(ctx, name, r, sink)
	return err
}

// ParsePage is Parse that also returns the page header, which the API client needs for paging.
func (p *Parser) ParsePage(ctx context.Context, name string, r io.Reader, sink feed.Sink) (*Page, error) {
	max := p.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	zr, closeZ, err := jsonx.Gunzip(r)
	if err != nil {
		return nil, fmt.Errorf("nvd %s: %w", name, err)
	}
	defer closeZ()
	dec := jsonx.NewDecoder(jsonx.CapReader(zr, max))
	page := &Page{}
	saw := false
	intField := func(dst *int) error {
		var n json.Number
		if err := dec.Decode(&n); err != nil {
			return err
		}
		v, err := n.Int64()
		*dst = int(v)
		return err
	}
	err = jsonx.Object(dec, func(key string) error {
		switch key {
		case "resultsPerPage":
			return intField(&page.ResultsPerPage)
		case "startIndex":
			return intField(&page.StartIndex)
		case "totalResults":
			return intField(&page.TotalResults)
		case "format":
			return dec.Decode(&page.Format)
		case "version":
			return dec.Decode(&page.Version)
		case "timestamp":
			var s string
			if err := dec.Decode(&s); err != nil {
				return err
			}
			page.Timestamp = parseTime(s)
			return nil
		case "vulnerabilities":
			saw = true
			return jsonx.Array(dec, func() error {
				if err := ctx.Err(); err != nil {
					return err
				}
				raw, err := jsonx.Raw(dec)
				if err != nil {
					return err
				}
				page.Records++
				e, err := convert(raw)
				if err != nil {
					sink.Skip(fmt.Sprintf("vulnerabilities[%d]", page.Records-1), err)
					return nil
				}
				return sink.Enrich(e)
			})
		default:
			return jsonx.Skip(dec)
		}
	})
	if err == nil {
		err = jsonx.End(dec)
	}
	if err == nil && !saw {
		err = fmt.Errorf("no vulnerabilities array: not an NVD CVE API 2.0 document")
	}
	if err == nil && page.Format != "" && page.Format != "NVD_CVE" {
		err = fmt.Errorf("format %q, want NVD_CVE", page.Format)
	}
	if err != nil {
		return nil, fmt.Errorf("nvd %s: %w", name, err)
	}
	return page, nil
}

type item struct {
	CVE *cve `json:"cve"`
}

type cve struct {
	ID           string              `json:"id"`
	Published    string              `json:"published"`
	LastModified string              `json:"lastModified"`
	VulnStatus   string              `json:"vulnStatus"`
	Descriptions []langString        `json:"descriptions"`
	Metrics      map[string][]metric `json:"metrics"`
	Weaknesses   []struct {
		Source      string       `json:"source"`
		Type        string       `json:"type"`
		Description []langString `json:"description"`
	} `json:"weaknesses"`
	Configurations json.RawMessage `json:"configurations"`
	References     []struct {
		URL string `json:"url"`
	} `json:"references"`
}

type langString struct {
	Lang  string `json:"lang"`
	Value string `json:"value"`
}

type metric struct {
	Source   string `json:"source"`
	Type     string `json:"type"`
	CVSSData struct {
		Version      string  `json:"version"`
		VectorString string  `json:"vectorString"`
		BaseScore    float64 `json:"baseScore"`
	} `json:"cvssData"`
}

type configuration struct {
	Operator string `json:"operator"`
	Negate   bool   `json:"negate"`
	Nodes    []struct {
		Operator string           `json:"operator"`
		Negate   bool             `json:"negate"`
		CPEMatch []model.CPEMatch `json:"cpeMatch"`
	} `json:"nodes"`
}

// Caps on one CVE's configurations; the largest real ones (Intel CPU microcode, Cisco IOS) have a
// few thousand criteria.
const (
	maxConfigurations = 1000
	maxCriteria       = 50000
)

// DecodeConfigurations reads a CVE's configurations array and keeps what CPE matching can evaluate
// without ever widening a statement:
//   - a criterion whose string is not a valid CPE 2.3 name (cpe.Parse) is dropped from an OR node;
//     in an AND or negated node it makes the whole configuration unusable (dropping it would make
//     the configuration match more), so that configuration is dropped;
//   - a configuration left with an empty node is dropped, as are empty configurations;
//   - operators are upper-cased; a node without one is OR, as NVD means it; duplicate criteria in
//     a node are kept once.
//
// The result is nil when nothing usable remains.
func DecodeConfigurations(raw []byte) ([]model.CPEConfig, error) {
	var in []configuration
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	if len(in) > maxConfigurations {
		return nil, fmt.Errorf("%d configurations, more than %d", len(in), maxConfigurations)
	}
	var out []model.CPEConfig
	total := 0
outer:
	for _, c := range in {
		op, ok := operator(c.Operator)
		if !ok {
			continue
		}
		cfg := model.CPEConfig{Operator: op, Negate: c.Negate}
		for _, n := range c.Nodes {
			nop, ok := operator(n.Operator)
			if !ok {
				continue outer
			}
			node := model.CPENode{Operator: nop, Negate: n.Negate}
			seen := map[model.CPEMatch]bool{}
			for _, m := range n.CPEMatch {
				total++
				if total > maxCriteria {
					return nil, fmt.Errorf("more than %d criteria", maxCriteria)
				}
				if _, err := cpe.Parse(m.Criteria); err != nil || !strings.HasPrefix(m.Criteria, "cpe:2.3:") {
					if nop == "AND" || n.Negate {
						continue outer
					}
					continue
				}
				if seen[m] {
					continue
				}
				seen[m] = true
				node.Matches = append(node.Matches, m)
			}
			if len(node.Matches) == 0 {
				continue outer
			}
			cfg.Nodes = append(cfg.Nodes, node)
		}
		if len(cfg.Nodes) == 0 {
			continue
		}
		if len(cfg.Nodes) == 1 && cfg.Operator == "OR" {
			cfg.Operator = "" // a single node needs no join; keep the stored form small
		}
		out = append(out, cfg)
	}
	return out, nil
}

// operator normalises "AND"/"OR" (any case; empty is OR) and refuses anything else.
func operator(s string) (string, bool) {
	switch strings.ToUpper(s) {
	case "", "OR":
		return "OR", true
	case "AND":
		return "AND", true
	}
	return "", false
}

// metricKeys lists the metric arrays, newest CVSS version first.
var metricKeys = []struct{ key, version string }{
	{"cvssMetricV40", "4.0"},
	{"cvssMetricV31", "3.1"},
	{"cvssMetricV30", "3.0"},
	{"cvssMetricV2", "2.0"},
}

var (
	cveRE = regexp.MustCompile(`^CVE-\d{4}-\d{4,}$`)
	cweRE = regexp.MustCompile(`^CWE-\d+$`)
)

func convert(raw json.RawMessage) (*model.Enrichment, error) {
	var it item
	if err := json.Unmarshal(raw, &it); err != nil {
		return nil, err
	}
	c := it.CVE
	if c == nil {
		return nil, fmt.Errorf("no cve object")
	}
	if !cveRE.MatchString(c.ID) {
		return nil, fmt.Errorf("bad CVE ID %q", c.ID)
	}
	e := &model.Enrichment{
		Source:    SourceName,
		ID:        c.ID,
		Published: parseTime(c.Published),
		Modified:  parseTime(c.LastModified),
	}
	for _, d := range c.Descriptions {
		if d.Lang == "en" {
			e.Description = d.Value
			break
		}
	}
	for _, primary := range []bool{true, false} {
		for _, mk := range metricKeys {
			for _, m := range c.Metrics[mk.key] {
				if (m.Type == "Primary") != primary || m.CVSSData.VectorString == "" {
					continue
				}
				version := m.CVSSData.Version
				if version == "" {
					version = mk.version
				}
				e.CVSS = append(e.CVSS, model.CVSS{
					Source:  cvssSource(m.Source),
					Version: version,
					Vector:  m.CVSSData.VectorString,
					Score:   m.CVSSData.BaseScore,
				})
			}
		}
	}
	for _, primary := range []bool{true, false} {
		for _, w := range c.Weaknesses {
			if (w.Type == "Primary") != primary {
				continue
			}
			for _, d := range w.Description {
				// NVD-CWE-Other and NVD-CWE-noinfo say nothing useful.
				if cweRE.MatchString(d.Value) && !slices.Contains(e.CWEs, d.Value) {
					e.CWEs = append(e.CWEs, d.Value)
				}
			}
		}
	}
	for _, r := range c.References {
		if u := strings.TrimSpace(r.URL); u != "" && !slices.Contains(e.References, u) {
			e.References = append(e.References, u)
		}
	}
	if len(c.Configurations) > 0 && string(c.Configurations) != "null" {
		cfgs, err := DecodeConfigurations(c.Configurations)
		if err != nil {
			return nil, fmt.Errorf("%s configurations: %w", c.ID, err)
		}
		e.Configurations = cfgs
	}
	return e, nil
}

// cvssSource names NVD's own scores "nvd" and keeps the CNA's identifier (an e-mail address or a
// UUID) for the others.
func cvssSource(s string) string {
	if s == "nvd@nist.gov" || s == "" {
		return SourceName
	}
	return s
}

// parseTime reads NVD timestamps, which carry no zone ("2017-02-07T15:59:00.333") and are UTC.
func parseTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", time.RFC3339Nano, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
