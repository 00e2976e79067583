// Package epss parses FIRST's daily EPSS scores (https://epss.cyentia.com/epss_scores-current.csv.gz,
// plain or gzip-compressed CSV) into one model.Enrichment per CVE. The file is read row by row, so
// memory stays flat whatever its length (about 300,000 rows in 2026).
package epss

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

// SourceName is the Enrichment.Source of everything this package emits.
const SourceName = "epss"

// DefaultMaxSize caps the uncompressed CSV (about 10 MB in 2026).
const DefaultMaxSize = 1 << 30

// Parser reads one EPSS scores file. The zero value is ready to use.
type Parser struct {
	// MaxSize caps the uncompressed input in bytes; 0 means DefaultMaxSize.
	MaxSize int64
}

var _ feed.Parser = (*Parser)(nil)

// Meta is what the file's comment line says.
type Meta struct {
	ModelVersion string
	// ScoreDate is the day the scores are for; from the comment line, else from a file name like
	// epss_scores-2024-10-25.csv.gz, else zero.
	ScoreDate time.Time
}

// Parse implements feed.Parser.
func (p *Parser) Parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) error {
	_, err := p.ParseMeta(ctx, name, r, sink)
	return err
}

var (
	cveRE      = regexp.MustCompile(`^CVE-\d{4}-\d{4,}$`)
	nameDateRE = regexp.MustCompile(`(\d{4}-\d{2}-\d{2})`)
)

// ParseMeta is Parse that also returns the model version and score date.
func (p *Parser) ParseMeta(ctx context.Context, name string, r io.Reader, sink feed.Sink) (*Meta, error) {
	meta, err := p.parse(ctx, name, r, sink)
	if err != nil {
		return nil, fmt.Errorf("epss %s: %w", name, err)
	}
	return meta, nil
}

func (p *Parser) parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) (*Meta, error) {
	max := p.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	// The cap applies after decompression: it bounds what the CSV reader may be asked to hold.
	zr, closeZ, err := jsonx.Gunzip(r)
	if err != nil {
		return nil, err
	}
	defer closeZ()
	br := bufio.NewReader(jsonx.CapReader(zr, max))
	meta := &Meta{}
	if m := nameDateRE.FindString(name); m != "" {
		meta.ScoreDate, _ = time.Parse(time.DateOnly, m)
	}
	// The comment line is optional (files before 2022 have none).
	if b, err := br.Peek(1); err == nil && b[0] == '#' {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("comment line: %w", unexpected(err))
		}
		parseComment(strings.TrimSpace(line), meta)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", unexpected(err))
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	ci, ok1 := col["cve"]
	ei, ok2 := col["epss"]
	pi, ok3 := col["percentile"]
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("header %q lacks cve,epss,percentile: not an EPSS file", strings.Join(header, ","))
	}
	need := max3(ci, ei, pi)
	for row := 2; ; row++ {
		if row%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return meta, nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			sink.Skip(fmt.Sprintf("line %d", perr.Line), err)
			continue
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		e, err := record(rec, need, ci, ei, pi)
		if err != nil {
			sink.Skip(fmt.Sprintf("line %d", line), err)
			continue
		}
		e.EPSS.Date = meta.ScoreDate
		if err := sink.Enrich(e); err != nil {
			return nil, err
		}
	}
}

func record(rec []string, need, ci, ei, pi int) (*model.Enrichment, error) {
	if len(rec) <= need {
		return nil, fmt.Errorf("%d fields, want at least %d", len(rec), need+1)
	}
	id := strings.TrimSpace(rec[ci])
	if !cveRE.MatchString(id) {
		return nil, fmt.Errorf("bad CVE ID %q", rec[ci])
	}
	score, err := probability(rec[ei])
	if err != nil {
		return nil, fmt.Errorf("%s: epss: %w", id, err)
	}
	pct, err := probability(rec[pi])
	if err != nil {
		return nil, fmt.Errorf("%s: percentile: %w", id, err)
	}
	return &model.Enrichment{Source: SourceName, ID: id, EPSS: &model.EPSS{Score: score, Percentile: pct}}, nil
}

// probability parses a value that must lie in [0, 1].
func probability(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, err
	}
	if !(f >= 0 && f <= 1) { // also rejects NaN
		return 0, fmt.Errorf("%v out of [0,1]", f)
	}
	return f, nil
}

// parseComment reads "#model_version:v2023.03.01,score_date:2024-10-25T00:00:00+0000".
func parseComment(line string, meta *Meta) {
	for _, kv := range strings.Split(strings.TrimPrefix(line, "#"), ",") {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model_version":
			meta.ModelVersion = strings.TrimSpace(v)
		case "score_date":
			v = strings.TrimSpace(v)
			for _, layout := range []string{"2006-01-02T15:04:05-0700", time.RFC3339, time.DateOnly} {
				if t, err := time.Parse(layout, v); err == nil {
					meta.ScoreDate = t.UTC()
					break
				}
			}
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func max3(a, b, c int) int { return max(a, max(b, c)) }
