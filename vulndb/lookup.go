package vulndb

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// index maps (ecosystem, normalized name) to the non-withdrawn advisories of every source, fully
// decoded except the long texts (Details, References), which Vulnerability() reads from SQLite.
// Record-level data (aliases, summary, CWEs) is decoded once per record and shared by its entries.
type index struct {
	byPkg   map[string][]model.Advisory
	entries int
	built   time.Duration
}

func pkgKey(ecosystem, name string) string {
	return ecosystem + "\x00" + NormalizeName(ecosystem, name)
}

func (d *DB) invalidate() {
	d.idxMu.Lock()
	d.idx = nil
	d.idxMu.Unlock()
}

// loadIndex returns the index, building it on first use.
func (d *DB) loadIndex(ctx context.Context) (*index, error) {
	d.idxMu.Lock()
	defer d.idxMu.Unlock()
	if d.idx != nil {
		return d.idx, nil
	}
	idx, err := d.buildIndex(ctx)
	if err != nil {
		return nil, err
	}
	d.idx = idx
	return idx, nil
}

func (d *DB) buildIndex(ctx context.Context) (*index, error) {
	start := time.Now()
	db, release, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil) // one snapshot for both queries
	if err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	defer tx.Rollback()

	intern := map[string]string{}
	in := func(s string) string {
		if v, ok := intern[s]; ok {
			return v
		}
		intern[s] = s
		return s
	}
	type rec struct {
		source, id string
		sum        recordSummary
	}
	recs := map[int64]*rec{}
	rows, err := tx.QueryContext(ctx, `SELECT rowid, source, id, summary FROM vdb_records WHERE withdrawn=0`)
	if err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	for rows.Next() {
		var rowid int64
		r := &rec{}
		var sum []byte
		if err := rows.Scan(&rowid, &r.source, &r.id, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("vulndb: index: %w", err)
		}
		if err := json.Unmarshal(sum, &r.sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("vulndb: index: record %s: %w", r.id, err)
		}
		r.source = in(r.source)
		for i, a := range r.sum.Aliases {
			r.sum.Aliases[i] = in(a)
		}
		for i, c := range r.sum.CWEs {
			r.sum.CWEs[i] = in(c)
		}
		recs[rowid] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}

	idx := &index{byPkg: map[string][]model.Advisory{}}
	rows, err = tx.QueryContext(ctx, `SELECT record, ecosystem, package, body FROM vdb_advisories ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	defer rows.Close()
	var body []byte
	for rows.Next() {
		var recID int64
		var eco, pkg string
		if err := rows.Scan(&recID, &eco, &pkg, &body); err != nil {
			return nil, fmt.Errorf("vulndb: index: %w", err)
		}
		r := recs[recID]
		if r == nil {
			continue // withdrawn
		}
		var e entry
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("vulndb: index: advisory %s %s: %w", r.id, pkg, err)
		}
		eco = in(eco)
		for i := range e.Ranges {
			for j := range e.Ranges[i].Events {
				ev := &e.Ranges[i].Events[j]
				ev.Introduced, ev.Fixed, ev.LastAffected, ev.Limit = in(ev.Introduced), in(ev.Fixed), in(ev.LastAffected), in(ev.Limit)
			}
		}
		for i := range e.CVSS {
			e.CVSS[i].Source, e.CVSS[i].Vector, e.CVSS[i].Version = in(e.CVSS[i].Source), in(e.CVSS[i].Vector), in(e.CVSS[i].Version)
		}
		a := model.Advisory{
			Source: r.source, ID: r.id, Aliases: r.sum.Aliases, Ecosystem: eco, Package: pkg, PURL: e.PURL,
			Ranges: e.Ranges, Versions: e.Versions, Unfixed: e.Unfixed, Note: e.Note, Severity: in(e.Severity),
			Urgency: in(e.Urgency), CVSS: e.CVSS, Summary: r.sum.Summary, CWEs: r.sum.CWEs,
			Published: r.sum.Published, Modified: r.sum.Modified,
		}
		k := pkgKey(eco, pkg)
		idx.byPkg[k] = append(idx.byPkg[k], a)
		idx.entries++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	for k, v := range idx.byPkg {
		idx.byPkg[k] = slices.Clip(v)
	}
	idx.built = time.Since(start)
	return idx, nil
}

// Lookup returns the advisories (of every source, withdrawn ones excluded) for a package of an
// ecosystem. OS packages are looked up by their SOURCE package name and release ecosystem
// ("Debian:12", "openssl"). Details and References are left empty here (the index keeps only what
// matching and listing need); Vulnerability() returns them.
//
// The result is the index's own slice, READ-ONLY: callers must not modify its elements (its
// capacity is clipped, so append copies). Copying it would cost more than the lookup itself: a
// package like Go's stdlib has hundreds of advisories.
func (d *DB) Lookup(ctx context.Context, ecosystem, name string) ([]model.Advisory, error) {
	idx, err := d.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	return idx.byPkg[pkgKey(ecosystem, name)], nil
}

// IndexStats describes the in-memory index.
type IndexStats struct {
	Packages   int
	Advisories int
	BuildTime  time.Duration
	// HeapBytes is the growth of the Go heap while building, measured after a GC: an estimate of
	// the index's memory (valid when nothing else allocates meanwhile).
	HeapBytes uint64
}

// BuildIndex (re)builds the index now, instead of at the first Lookup, and reports its size.
func (d *DB) BuildIndex(ctx context.Context) (IndexStats, error) {
	d.invalidate()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	idx, err := d.loadIndex(ctx)
	if err != nil {
		return IndexStats{}, err
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := IndexStats{Packages: len(idx.byPkg), Advisories: idx.entries, BuildTime: idx.built}
	if after.HeapAlloc > before.HeapAlloc {
		st.HeapBytes = after.HeapAlloc - before.HeapAlloc
	}
	return st, nil
}

// Vulnerability is everything known about one vulnerability ID: the advisories of every source
// that name it (by record ID, vulnerability ID or alias), and the enrichments of the ID and its
// aliases, merged.
type Vulnerability struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	// Description: NVD's when present, else the first advisory's details or summary.
	Description string             `json:"description,omitempty"`
	CVSS        []model.CVSS       `json:"cvss,omitempty"`
	CWEs        []string           `json:"cwes,omitempty"`
	References  []string           `json:"references,omitempty"`
	Published   time.Time          `json:"published,omitzero"`
	Modified    time.Time          `json:"modified,omitzero"`
	EPSS        *model.EPSS        `json:"epss,omitempty"`
	KEV         *model.KEV         `json:"kev,omitempty"`
	Advisories  []model.Advisory   `json:"advisories,omitempty"`
	Enrichments []model.Enrichment `json:"enrichments,omitempty"`
}

// Vulnerability returns the vulnerability known under id (a CVE, GHSA, GO, PYSEC, ALSA… ID), or
// nil when nothing names it.
func (d *DB) Vulnerability(ctx context.Context, id string) (*Vulnerability, error) {
	db, release, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
	}
	defer tx.Rollback()

	// Resolve the ID first (a GHSA names a CVE), then take every record that answers to either.
	primary := id
	var vids []string
	vrows, err := tx.QueryContext(ctx, `SELECT DISTINCT r.vuln_id FROM vdb_records r JOIN vdb_ids i ON i.record = r.rowid WHERE i.id=?`, id)
	if err != nil {
		return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
	}
	for vrows.Next() {
		var s string
		if err := vrows.Scan(&s); err != nil {
			vrows.Close()
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
		vids = append(vids, s)
	}
	vrows.Close()
	if len(vids) == 1 {
		primary = vids[0]
	}
	rows, err := tx.QueryContext(ctx, `SELECT r.rowid, r.source, r.id, r.vuln_id, r.summary, r.body
		FROM vdb_records r WHERE r.rowid IN (SELECT record FROM vdb_ids WHERE id IN (?, ?)) ORDER BY r.source, r.id`, id, primary)
	if err != nil {
		return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
	}
	type rec struct {
		rowid              int64
		source, id, vulnID string
		sum                recordSummary
		body               recordBody
	}
	var recs []rec
	for rows.Next() {
		var r rec
		var sum, body []byte
		if err := rows.Scan(&r.rowid, &r.source, &r.id, &r.vulnID, &sum, &body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
		if err := json.Unmarshal(sum, &r.sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
		if err := json.Unmarshal(body, &r.body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
	}

	v := &Vulnerability{ID: id}
	names := map[string]bool{id: true}
	addName := func(s string) {
		if s != "" && !names[s] {
			names[s] = true
			v.Aliases = append(v.Aliases, s)
		}
	}
	if primary != id {
		v.ID = primary
		names[primary] = true
		v.Aliases = append(v.Aliases, id)
	}
	for _, r := range recs {
		addName(r.id)
		addName(r.vulnID)
		for _, a := range r.sum.Aliases {
			addName(a)
		}
		arows, err := tx.QueryContext(ctx, `SELECT ecosystem, package, body FROM vdb_advisories WHERE record=? ORDER BY rowid`, r.rowid)
		if err != nil {
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
		for arows.Next() {
			var a model.Advisory
			var body []byte
			var e entry
			if err := arows.Scan(&a.Ecosystem, &a.Package, &body); err != nil {
				arows.Close()
				return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
			}
			if err := json.Unmarshal(body, &e); err != nil {
				arows.Close()
				return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
			}
			a.Source, a.ID, a.Aliases, a.PURL, a.Ranges, a.Versions = r.source, r.id, r.sum.Aliases, e.PURL, e.Ranges, e.Versions
			a.Unfixed, a.Note, a.Severity, a.Urgency, a.CVSS = e.Unfixed, e.Note, e.Severity, e.Urgency, e.CVSS
			a.Summary, a.Details, a.References, a.CWEs = r.sum.Summary, r.body.Details, r.body.References, r.sum.CWEs
			a.Published, a.Modified, a.Withdrawn = r.sum.Published, r.sum.Modified, r.sum.Withdrawn
			v.Advisories = append(v.Advisories, a)
		}
		arows.Close()
		if err := arows.Err(); err != nil {
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
	}

	// Enrichments are keyed by CVE; look up every name we now know.
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, n := range keys {
		erows, err := tx.QueryContext(ctx, `SELECT body FROM vdb_enrichments WHERE id=? ORDER BY source`, n)
		if err != nil {
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
		for erows.Next() {
			var body []byte
			var e model.Enrichment
			if err := erows.Scan(&body); err != nil {
				erows.Close()
				return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
			}
			if err := json.Unmarshal(body, &e); err != nil {
				erows.Close()
				return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
			}
			v.Enrichments = append(v.Enrichments, e)
		}
		erows.Close()
		if err := erows.Err(); err != nil {
			return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
		}
	}
	if len(v.Advisories) == 0 && len(v.Enrichments) == 0 {
		return nil, nil
	}
	v.merge()
	return v, nil
}

// merge fills the summary fields: enrichments (NVD first) before advisories.
func (v *Vulnerability) merge() {
	seenVec := map[string]bool{}
	addCVSS := func(cs []model.CVSS) {
		for _, c := range cs {
			if k := c.Source + "|" + c.Vector; !seenVec[k] {
				seenVec[k] = true
				v.CVSS = append(v.CVSS, c)
			}
		}
	}
	seen := map[string]bool{}
	add := func(dst *[]string, xs []string) {
		for _, x := range xs {
			if !seen[x] {
				seen[x] = true
				*dst = append(*dst, x)
			}
		}
	}
	for _, e := range v.Enrichments {
		if e.Description != "" && v.Description == "" {
			v.Description = e.Description
		}
		addCVSS(e.CVSS)
		add(&v.CWEs, e.CWEs)
		add(&v.References, e.References)
		if v.Published.IsZero() {
			v.Published = e.Published
		}
		if e.Modified.After(v.Modified) {
			v.Modified = e.Modified
		}
		if e.EPSS != nil {
			v.EPSS = e.EPSS
		}
		if e.KEV != nil {
			v.KEV = e.KEV
		}
	}
	for _, a := range v.Advisories {
		if v.Description == "" {
			v.Description = a.Details
			if v.Description == "" {
				v.Description = a.Summary
			}
		}
		addCVSS(a.CVSS)
		add(&v.CWEs, a.CWEs)
		add(&v.References, a.References)
		if v.Published.IsZero() || (!a.Published.IsZero() && a.Published.Before(v.Published)) {
			v.Published = a.Published
		}
		if a.Modified.After(v.Modified) {
			v.Modified = a.Modified
		}
	}
}
