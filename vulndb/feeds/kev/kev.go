// Package kev parses the CISA Known Exploited Vulnerabilities catalog
// (https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json) into one
// model.Enrichment per CVE carrying a model.KEV entry, its CWEs and the reference URLs in notes.
package kev

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

// SourceName is the Enrichment.Source of everything this package emits.
const SourceName = "kev"

// DefaultMaxSize caps the catalog (about 2 MB in 2026).
const DefaultMaxSize = 128 << 20

// Parser reads the KEV JSON catalog. The zero value is ready to use.
type Parser struct {
	// MaxSize caps the input in bytes; 0 means DefaultMaxSize.
	MaxSize int64
}

var _ feed.Parser = (*Parser)(nil)

// Catalog is the catalog's header, available after a parse through ParseCatalog.
type Catalog struct {
	CatalogVersion string
	DateReleased   time.Time
	Count          int
}

// Parse implements feed.Parser.
func (p *Parser) Parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) error {
	_, err := p.ParseCatalog(ctx, name, r, sink)
	return err
}

// ParseCatalog is Parse that also returns the catalog header (its version tells an updater whether
// anything changed).
func (p *Parser) ParseCatalog(ctx context.Context, name string, r io.Reader, sink feed.Sink) (*Catalog, error) {
	max := p.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	zr, closeZ, err := jsonx.Gunzip(jsonx.CapReader(r, max))
	if err != nil {
		return nil, fmt.Errorf("kev %s: %w", name, err)
	}
	defer closeZ()
	dec := jsonx.NewDecoder(zr)
	var cat Catalog
	saw := false
	err = jsonx.Object(dec, func(key string) error {
		switch key {
		case "catalogVersion":
			return dec.Decode(&cat.CatalogVersion)
		case "dateReleased":
			var s string
			if err := dec.Decode(&s); err != nil {
				return err
			}
			cat.DateReleased, _ = time.Parse(time.RFC3339Nano, s)
			return nil
		case "count":
			var n json.Number
			if err := dec.Decode(&n); err != nil {
				return fmt.Errorf("count: %w", err)
			}
			c, _ := n.Int64()
			cat.Count = int(c)
			return nil
		case "vulnerabilities":
			saw = true
			i := 0
			return jsonx.Array(dec, func() error {
				if err := ctx.Err(); err != nil {
					return err
				}
				raw, err := jsonx.Raw(dec)
				if err != nil {
					return err
				}
				i++
				e, err := entry(raw)
				if err != nil {
					sink.Skip(fmt.Sprintf("vulnerabilities[%d]", i-1), err)
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
		err = fmt.Errorf("no vulnerabilities array: not a KEV catalog")
	}
	if err != nil {
		return nil, fmt.Errorf("kev %s: %w", name, err)
	}
	return &cat, nil
}

type record struct {
	CveID                      string   `json:"cveID"`
	VendorProject              string   `json:"vendorProject"`
	Product                    string   `json:"product"`
	VulnerabilityName          string   `json:"vulnerabilityName"`
	DateAdded                  string   `json:"dateAdded"`
	ShortDescription           string   `json:"shortDescription"`
	RequiredAction             string   `json:"requiredAction"`
	DueDate                    string   `json:"dueDate"`
	KnownRansomwareCampaignUse string   `json:"knownRansomwareCampaignUse"`
	Notes                      string   `json:"notes"`
	CWEs                       []string `json:"cwes"`
}

var cveRE = regexp.MustCompile(`^CVE-\d{4}-\d{4,}$`)

func entry(raw json.RawMessage) (*model.Enrichment, error) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	id := strings.TrimSpace(r.CveID)
	if !cveRE.MatchString(id) {
		return nil, fmt.Errorf("bad cveID %q", r.CveID)
	}
	added, err := time.Parse(time.DateOnly, strings.TrimSpace(r.DateAdded))
	if err != nil {
		return nil, fmt.Errorf("%s: dateAdded: %w", id, err)
	}
	k := &model.KEV{
		DateAdded:        added,
		VendorProject:    r.VendorProject,
		Product:          r.Product,
		Name:             r.VulnerabilityName,
		RequiredAction:   r.RequiredAction,
		KnownRansomware:  r.KnownRansomwareCampaignUse,
		ShortDescription: r.ShortDescription,
	}
	// A missing or odd due date is no reason to lose the entry: exploitation is the fact that counts.
	if due, err := time.Parse(time.DateOnly, strings.TrimSpace(r.DueDate)); err == nil {
		k.DueDate = due
	}
	e := &model.Enrichment{Source: SourceName, ID: id, KEV: k, References: NoteURLs(r.Notes)}
	for _, c := range r.CWEs {
		if c = strings.TrimSpace(c); strings.HasPrefix(c, "CWE-") {
			e.CWEs = append(e.CWEs, c)
		}
	}
	return e, nil
}

// NoteURLs returns the http(s) URLs in a KEV notes field, which separates them with " ; " and
// sometimes ", ".
func NoteURLs(notes string) []string {
	var urls []string
	for _, f := range strings.Fields(notes) {
		f = strings.TrimRight(f, ";,")
		if strings.HasPrefix(f, "https://") || strings.HasPrefix(f, "http://") {
			urls = append(urls, f)
		}
	}
	return urls
}
