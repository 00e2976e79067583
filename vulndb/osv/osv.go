// Package osv reads OSV records (https://ossf.github.io/osv-schema/) and the per-ecosystem all.zip
// files osv.dev publishes, and turns each record's affected[] entries into model.Advisory values.
package osv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

// SourceName is the Advisory.Source of everything this package emits.
const SourceName = "osv"

// MaxRecordSize bounds one OSV JSON record. The largest upstream records (kernel advisories with
// thousands of versions) are a few MiB.
const MaxRecordSize = 32 << 20

// Record is the subset of the OSV schema Vigil reads.
type Record struct {
	SchemaVersion    string          `json:"schema_version"`
	ID               string          `json:"id"`
	Modified         string          `json:"modified"`
	Published        string          `json:"published"`
	Withdrawn        string          `json:"withdrawn"`
	Aliases          []string        `json:"aliases"`
	Upstream         []string        `json:"upstream"`
	Related          []string        `json:"related"`
	Summary          string          `json:"summary"`
	Details          string          `json:"details"`
	Severity         []Severity      `json:"severity"`
	Affected         []Affected      `json:"affected"`
	References       []Reference     `json:"references"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
}

// Severity is an OSV severity entry: a CVSS vector or a vendor rating ("Ubuntu": "medium").
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one affected[] entry.
type Affected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		PURL      string `json:"purl"`
	} `json:"package"`
	Severity          []Severity      `json:"severity"`
	Ranges            []Range         `json:"ranges"`
	Versions          []string        `json:"versions"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific"`
	DatabaseSpecific  json.RawMessage `json:"database_specific"`
}

// Range is an OSV range.
type Range struct {
	Type   string        `json:"type"`
	Repo   string        `json:"repo"`
	Events []model.Event `json:"events"`
}

// Reference is an OSV reference.
type Reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// specific is what Vigil reads from ecosystem_specific / database_specific objects. Fields have
// different types across databases (GHSA writes a string severity, others objects), so they stay raw.
type specific struct {
	Severity json.RawMessage `json:"severity"`
	CWEIDs   []string        `json:"cwe_ids"`
}

// Parser is a feed.Parser for one OSV JSON record (or a JSON array of records, as the osv.dev
// query API returns them).
type Parser struct{}

// Parse implements feed.Parser. A record that is not valid OSV is reported through sink.Skip; only
// an unreadable stream is an error.
func (Parser) Parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxRecordSize+1))
	if err != nil {
		return fmt.Errorf("osv: read %s: %w", name, err)
	}
	if len(data) > MaxRecordSize {
		sink.Skip(name, fmt.Errorf("osv: record larger than %d bytes", MaxRecordSize))
		return nil
	}
	return ParseBytes(ctx, name, data, sink)
}

// ParseBytes parses one record (or an array of records) held in memory.
func ParseBytes(ctx context.Context, name string, data []byte, sink feed.Sink) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var recs []json.RawMessage
		if err := json.Unmarshal(trimmed, &recs); err != nil {
			sink.Skip(name, fmt.Errorf("osv: %w", err))
			return nil
		}
		for i, raw := range recs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := parseOne(fmt.Sprintf("%s[%d]", name, i), raw, sink); err != nil {
				return err
			}
		}
		return nil
	}
	return parseOne(name, data, sink)
}

func parseOne(name string, data []byte, sink feed.Sink) error {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		sink.Skip(name, fmt.Errorf("osv: %w", err))
		return nil
	}
	advs, err := Convert(&rec)
	if err != nil {
		sink.Skip(recordName(name, rec.ID), err)
		return nil
	}
	for i := range advs {
		if err := sink.Advisory(&advs[i]); err != nil {
			return err
		}
	}
	return nil
}

func recordName(name, id string) string {
	if id == "" {
		return name
	}
	return name + " (" + id + ")"
}

// Convert maps a record to one Advisory per affected[] entry. Record-level fields (aliases, texts,
// references, CWEs, top-level CVSS) are shared by all entries. A record without an ID or without a
// usable affected entry is an error.
func Convert(rec *Record) ([]model.Advisory, error) {
	if rec.ID == "" {
		return nil, errors.New("osv: record has no id")
	}
	if len(rec.ID) > 256 {
		return nil, fmt.Errorf("osv: id too long (%d bytes)", len(rec.ID))
	}
	published, err := parseTime(rec.Published)
	if err != nil {
		return nil, fmt.Errorf("osv: published: %w", err)
	}
	modified, err := parseTime(rec.Modified)
	if err != nil {
		return nil, fmt.Errorf("osv: modified: %w", err)
	}
	var withdrawn *time.Time
	if rec.Withdrawn != "" {
		w, err := parseTime(rec.Withdrawn)
		if err != nil {
			return nil, fmt.Errorf("osv: withdrawn: %w", err)
		}
		withdrawn = &w
	}

	aliases := dedupe(rec.ID, rec.Aliases, rec.Upstream)
	var refs []string
	for _, r := range rec.References {
		if r.URL != "" {
			refs = append(refs, r.URL)
		}
	}
	var dbs specific
	if len(rec.DatabaseSpecific) > 0 {
		// database_specific is free-form; a shape we do not expect just yields nothing.
		_ = json.Unmarshal(rec.DatabaseSpecific, &dbs)
	}
	cwes := normCWEs(dbs.CWEIDs)
	scorer := scorerName(rec.ID)
	topCVSS, topRating := severities(scorer, rec.Severity)
	recRating := rating(dbs.Severity)

	var out []model.Advisory
	for i, aff := range rec.Affected {
		if aff.Package.Name == "" || aff.Package.Ecosystem == "" {
			// Entries keyed only on a GIT range (no package) cannot be matched against an inventory.
			continue
		}
		a := model.Advisory{
			Source:     SourceName,
			ID:         rec.ID,
			Aliases:    aliases,
			Related:    rec.Related,
			Ecosystem:  CanonicalEcosystem(aff.Package.Ecosystem),
			Package:    aff.Package.Name,
			PURL:       aff.Package.PURL,
			Summary:    rec.Summary,
			Details:    rec.Details,
			References: refs,
			CWEs:       cwes,
			Published:  published,
			Modified:   modified,
			Withdrawn:  withdrawn,
			Versions:   aff.Versions,
		}
		for j, r := range aff.Ranges {
			if r.Type != model.RangeEcosystem && r.Type != model.RangeSemver && r.Type != model.RangeGit {
				return nil, fmt.Errorf("osv: affected[%d].ranges[%d]: unknown type %q", i, j, r.Type)
			}
			if err := checkEvents(r.Events); err != nil {
				return nil, fmt.Errorf("osv: affected[%d].ranges[%d]: %w", i, j, err)
			}
			a.Ranges = append(a.Ranges, model.Range{Type: r.Type, Events: r.Events})
		}
		if len(a.Ranges) == 0 && len(a.Versions) == 0 {
			// OSV: no ranges and no versions means every version is affected (RustSec uses this
			// for unmaintained crates with no safe release).
			a.Unfixed = true
		}
		entCVSS, entRating := severities(scorer, aff.Severity)
		a.CVSS = mergeCVSS(topCVSS, entCVSS)

		// Vendor rating: affected-level beats record-level; ecosystem_specific beats database_specific.
		raw := ""
		for _, blob := range []json.RawMessage{aff.EcosystemSpecific, aff.DatabaseSpecific} {
			if raw != "" || len(blob) == 0 {
				continue
			}
			var s specific
			if json.Unmarshal(blob, &s) == nil {
				raw = rating(s.Severity)
			}
		}
		for _, r := range []string{entRating, topRating, recRating} {
			if raw == "" {
				raw = r
			}
		}
		a.Urgency = raw
		a.Severity = MapSeverity(raw)
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("osv: record has no affected package")
	}
	return out, nil
}

// CanonicalEcosystem names an OSV ecosystem the way inventories name the OS. Red Hat's records are
// split per repository stream ("Red Hat:enterprise_linux:9::appstream"), but an installed host only
// tells its product and major release, and a package name lives in one stream of a release; the
// stream is dropped ("Red Hat:enterprise_linux:9"). Other products (rhel_eus:9.2, …) keep their own
// name, so an EUS fix never speaks for a mainline install.
func CanonicalEcosystem(eco string) string {
	if strings.HasPrefix(eco, "Red Hat:") {
		if i := strings.Index(eco, "::"); i > 0 {
			return eco[:i]
		}
	}
	return eco
}

func checkEvents(evs []model.Event) error {
	for k, e := range evs {
		n := 0
		for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("events[%d]: want exactly one of introduced/fixed/last_affected/limit, got %d", k, n)
		}
	}
	return nil
}

// parseTime accepts RFC 3339; the zero timestamps Go's vulndb files carry become the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Year() <= 1 {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}

func dedupe(self string, lists ...[]string) []string {
	var out []string
	seen := map[string]bool{self: true}
	for _, l := range lists {
		for _, s := range l {
			s = strings.TrimSpace(s)
			if s == "" || seen[s] {
				continue
			}
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func normCWEs(in []string) []string {
	var out []string
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if !strings.HasPrefix(c, "CWE-") {
			c = "CWE-" + c
		}
		out = append(out, c)
	}
	return out
}

// scorerName names who scored a record's CVSS vectors: the database its ID comes from
// ("GHSA-…" → "ghsa", "RUSTSEC-…" → "rustsec", "BIT-…" → "bit").
func scorerName(id string) string {
	if i := strings.IndexByte(id, '-'); i > 0 {
		return strings.ToLower(id[:i])
	}
	return SourceName
}

// severities splits OSV severity entries into CVSS vectors (scored here) and a vendor rating.
func severities(scorer string, in []Severity) ([]model.CVSS, string) {
	var out []model.CVSS
	vendor := ""
	for _, s := range in {
		switch s.Type {
		case "CVSS_V2", "CVSS_V3", "CVSS_V4":
			if c, ok := ScoreCVSS(s.Score); ok {
				c.Source = scorer
				out = append(out, c)
			}
		default:
			// "Ubuntu": "medium" and similar vendor scales.
			if vendor == "" {
				vendor = strings.TrimSpace(s.Score)
			}
		}
	}
	return out, vendor
}

func mergeCVSS(a, b []model.CVSS) []model.CVSS {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := append([]model.CVSS(nil), a...)
	for _, c := range b {
		dup := false
		for _, o := range out {
			if o.Vector == c.Vector {
				dup = true
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

// ScoreCVSS parses a CVSS vector (v2 without prefix, "CVSS:3.0/", "CVSS:3.1/", "CVSS:4.0/") and
// computes its base score. Invalid vectors yield ok=false.
func ScoreCVSS(vector string) (c model.CVSS, ok bool) {
	vector = strings.TrimSpace(vector)
	c.Vector = vector
	defer func() {
		// The scoring library must never take the importer down on a hostile vector.
		if recover() != nil {
			ok = false
		}
	}()
	switch {
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		v, err := gocvss31.ParseVector(vector)
		if err != nil {
			return c, false
		}
		c.Version, c.Score = "3.1", v.BaseScore()
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		v, err := gocvss30.ParseVector(vector)
		if err != nil {
			return c, false
		}
		c.Version, c.Score = "3.0", v.BaseScore()
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		v, err := gocvss40.ParseVector(vector)
		if err != nil {
			return c, false
		}
		c.Version, c.Score = "4.0", v.Score()
	default:
		v, err := gocvss20.ParseVector(strings.TrimPrefix(strings.TrimSuffix(strings.TrimPrefix(vector, "("), ")"), "CVSS:2.0/"))
		if err != nil {
			return c, false
		}
		c.Version, c.Score = "2.0", v.BaseScore()
	}
	return c, true
}

// rating reads a severity that is a plain string ("MODERATE", "High"); other shapes give "".
func rating(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// MapSeverity maps vendor ratings (GHSA, Bitnami, Ubuntu, Red Hat, Debian urgencies) to Vigil's
// scale; anything unknown or empty is UNTRIAGED.
func MapSeverity(raw string) string {
	switch strings.ToLower(strings.TrimRight(strings.TrimSpace(raw), "*")) {
	case "critical":
		return model.SeverityCritical
	case "high", "important":
		return model.SeverityHigh
	case "moderate", "medium":
		return model.SeverityMedium
	case "low":
		return model.SeverityLow
	case "negligible", "unimportant", "none", "informational", "info":
		return model.SeverityInformational
	}
	return model.SeverityUntriaged
}
