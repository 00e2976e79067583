package vulndb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// index maps (ecosystem, normalized name) to the non-withdrawn advisories of every source.
//
// It is built at the first Lookup from the advisories table in one pass, and kept compact: each
// advisory's entry stays in its stored JSON form inside one pointer-free byte arena (the garbage
// collector never scans it), and only record-level data (IDs, aliases, summary, CWEs) is decoded,
// once per record, shared by its entries. A package's advisories are decoded on its first lookup
// and cached in its slot, so later lookups cost a map probe. Details and References never enter
// memory; Vulnerability() reads them from SQLite.
type index struct {
	keys    map[string]int32 // pkgKey → slots index
	slots   []slot
	arena   []byte
	recs    []recShared
	entries int
	built   time.Duration
	version Version // the database version the index reflects
	// over holds, decoded, the packages whose advisories changed since the arena was built
	// (patch); an empty slice: the package has none any more. Lookups look here first.
	over map[string][]model.Advisory
}

type slot struct {
	eco     string
	ents    []entRef
	decoded atomic.Pointer[[]model.Advisory]
	mu      sync.Mutex // serialises the first decode
}

type entRef struct {
	rec      int32
	off, len uint32
	pkg      string
}

type recShared struct {
	source, id string
	sum        recordSummary
}

func pkgKey(ecosystem, name string) string {
	return ecosystem + "\x00" + NormalizeName(ecosystem, name)
}

// invalidate drops the index: the next Lookup builds it afresh (the database file was replaced).
func (d *DB) invalidate() {
	d.idxMu.Lock()
	d.idx = nil
	d.idxStale = false
	d.idxMu.Unlock()
}

// markStale says the database moved on through imports: the next Lookup patches the index.
func (d *DB) markStale() {
	d.idxMu.Lock()
	d.idxStale = d.idx != nil
	d.idxMu.Unlock()
}

// Refresh notes that another process (or connection) changed the database since the index was
// built; the next Lookup brings the index up to date. Imports through this DB do so by themselves.
func (d *DB) Refresh(ctx context.Context) error {
	v, err := d.Version(ctx)
	if err != nil {
		return err
	}
	d.idxMu.Lock()
	if d.idx != nil && d.idx.version != v {
		d.idxStale = true
	}
	d.idxMu.Unlock()
	return nil
}

// loadIndex returns the index, building it on first use and patching it after a change.
func (d *DB) loadIndex(ctx context.Context) (*index, error) {
	d.idxMu.Lock()
	defer d.idxMu.Unlock()
	if d.idx != nil && d.idxStale {
		idx, err := d.patchIndex(ctx, d.idx)
		if err != nil {
			return nil, err
		}
		d.idx, d.idxStale = idx, false // nil: too much changed to patch, built below
	}
	if d.idx != nil {
		return d.idx, nil
	}
	idx, err := d.buildIndex(ctx)
	if err != nil {
		return nil, err
	}
	d.idx = idx
	d.builds++
	return idx, nil
}

// patchLimit bounds a patch: past this many changed packages (or an eighth of the index) a full
// rebuild is cheaper than carrying them decoded beside the arena.
const patchLimit = 20_000

// patchIndex brings idx up to the database's current version by re-reading only the packages the
// change log names since idx.version: a real feed's update touches a few hundred of 100,000
// packages, and the full build costs ~0.4 s on all of vulndata. It returns nil when the change
// log cannot vouch for the gap (pruned entries, a replaced file) or too much changed.
func (d *DB) patchIndex(ctx context.Context, idx *index) (*index, error) {
	db, release, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer release()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // one snapshot for the log and the rows
	if err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	defer tx.Rollback()
	cur, err := readVersion(ctx, tx)
	if err != nil {
		return nil, err
	}
	if cur == idx.version {
		return idx, nil
	}
	if cur < idx.version {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT version, ecosystem, package FROM vdb_changes WHERE version > ? ORDER BY version`, int64(idx.version))
	if err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	type key struct{ eco, name string }
	var keys []key
	seen := map[string]bool{}
	next := idx.version + 1 // every import that changes something logs at least one entry
	for rows.Next() {
		var v Version
		var eco, pkg string
		if err := rows.Scan(&v, &eco, &pkg); err != nil {
			rows.Close()
			return nil, fmt.Errorf("vulndb: index: %w", err)
		}
		switch v {
		case next - 1:
		case next:
			next++
		default: // a gap: entries were pruned
			rows.Close()
			return nil, nil
		}
		if eco == "" || pkg == "" { // enrichments are not in the index
			continue
		}
		if k := pkgKey(eco, pkg); !seen[k] {
			seen[k] = true
			keys = append(keys, key{eco, pkg})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	if next != cur+1 || len(idx.over)+len(keys) > min(patchLimit, max(len(idx.slots)/8, 1000)) {
		return nil, nil
	}
	start := time.Now()
	out := *idx // the arena, slots and records are shared, read-only
	out.version = cur
	out.over = make(map[string][]model.Advisory, len(idx.over)+len(keys))
	for k, v := range idx.over {
		out.over[k] = v
	}
	for _, k := range keys {
		advs, err := lookupRows(ctx, tx, k.eco, k.name)
		if err != nil {
			return nil, err
		}
		out.over[pkgKey(k.eco, k.name)] = slices.Clip(advs)
	}
	out.built = idx.built + time.Since(start)
	return &out, nil
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
	idx := &index{keys: map[string]int32{}}
	if idx.version, err = readVersion(ctx, tx); err != nil {
		return nil, err
	}
	recByRow := map[int64]int32{}
	rows, err := tx.QueryContext(ctx, `SELECT rowid, source, id, summary FROM vdb_records WHERE withdrawn=0`)
	if err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	for rows.Next() {
		var rowid int64
		var r recShared
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
		recByRow[rowid] = int32(len(idx.recs))
		idx.recs = append(idx.recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}

	rows, err = tx.QueryContext(ctx, `SELECT record, ecosystem, package, body FROM vdb_advisories ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	defer rows.Close()
	var body sql.RawBytes
	for rows.Next() {
		var recRow int64
		var eco, pkg string
		if err := rows.Scan(&recRow, &eco, &pkg, &body); err != nil {
			return nil, fmt.Errorf("vulndb: index: %w", err)
		}
		ri, ok := recByRow[recRow]
		if !ok {
			continue // withdrawn
		}
		if len(idx.arena)+len(body) > math.MaxUint32 {
			return nil, errors.New("vulndb: index: advisory data exceeds 4 GiB")
		}
		k := pkgKey(eco, pkg)
		si, ok := idx.keys[k]
		if !ok {
			si = int32(len(idx.slots))
			idx.keys[k] = si
			idx.slots = append(idx.slots, slot{eco: in(eco)})
		}
		s := &idx.slots[si]
		s.ents = append(s.ents, entRef{rec: ri, off: uint32(len(idx.arena)), len: uint32(len(body)), pkg: in(pkg)})
		idx.arena = append(idx.arena, body...)
		idx.entries++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulndb: index: %w", err)
	}
	idx.arena = slices.Clip(idx.arena)
	for i := range idx.slots {
		idx.slots[i].ents = slices.Clip(idx.slots[i].ents)
	}
	idx.built = time.Since(start)
	return idx, nil
}

// decode materialises a slot's advisories.
func (idx *index) decode(s *slot) ([]model.Advisory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.decoded.Load(); p != nil {
		return *p, nil
	}
	out := make([]model.Advisory, len(s.ents))
	for i, e := range s.ents {
		en, err := decodeEntry(idx.arena[e.off:e.off+e.len], true)
		if err != nil {
			return nil, fmt.Errorf("vulndb: advisory %s %s: %w", idx.recs[e.rec].id, e.pkg, err)
		}
		r := &idx.recs[e.rec]
		out[i] = model.Advisory{
			Source: r.source, ID: r.id, Aliases: r.sum.Aliases, Related: r.sum.Related, Ecosystem: s.eco, Package: e.pkg, PURL: en.PURL,
			Ranges: en.Ranges, Versions: en.Versions, Unfixed: en.Unfixed, Note: en.Note, Severity: en.Severity,
			Urgency: en.Urgency, CVSS: en.CVSS, Summary: r.sum.Summary, CWEs: r.sum.CWEs,
			Published: r.sum.Published, Modified: r.sum.Modified,
		}
	}
	s.decoded.Store(&out)
	return out, nil
}

// Lookup returns the advisories (of every source, withdrawn ones excluded) for a package of an
// ecosystem. OS packages are looked up by their SOURCE package name and release ecosystem
// ("Debian:12", "openssl"). Details and References are left empty here (the index keeps only what
// matching and listing need); Vulnerability() returns them.
//
// The result is the index's own slice, READ-ONLY: callers must not modify its elements (its
// capacity is exact, so append copies). Copying it would cost more than the lookup itself: a
// package like Go's stdlib has hundreds of advisories.
func (d *DB) Lookup(ctx context.Context, ecosystem, name string) ([]model.Advisory, error) {
	idx, err := d.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	k := pkgKey(ecosystem, name)
	if advs, ok := idx.over[k]; ok {
		if len(advs) == 0 {
			return nil, nil
		}
		return advs, nil
	}
	si, ok := idx.keys[k]
	if !ok {
		return nil, nil
	}
	s := &idx.slots[si]
	if p := s.decoded.Load(); p != nil {
		return *p, nil
	}
	return idx.decode(s)
}

// IndexStats describes the in-memory index.
type IndexStats struct {
	Packages   int
	Advisories int
	BuildTime  time.Duration
	// ArenaBytes holds the encoded advisory entries.
	ArenaBytes int
	// HeapBytes is the growth of the Go heap while building, measured after a GC: an estimate of
	// the index's memory before any package is decoded (valid when nothing else allocates).
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
	st := IndexStats{Packages: len(idx.slots), Advisories: idx.entries, BuildTime: idx.built, ArenaBytes: len(idx.arena)}
	if after.HeapAlloc > before.HeapAlloc {
		st.HeapBytes = after.HeapAlloc - before.HeapAlloc
	}
	return st, nil
}

// IndexHeap decodes every package of the index and returns the heap growth: the index's memory
// when every package has been looked up (a worst case for a long-running server).
func (d *DB) IndexHeap(ctx context.Context) (uint64, error) {
	idx, err := d.loadIndex(ctx)
	if err != nil {
		return 0, err
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range idx.slots {
		if _, err := idx.decode(&idx.slots[i]); err != nil {
			return 0, err
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapAlloc > before.HeapAlloc {
		return after.HeapAlloc - before.HeapAlloc, nil
	}
	return 0, nil
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
			if err := arows.Scan(&a.Ecosystem, &a.Package, &body); err != nil {
				arows.Close()
				return nil, fmt.Errorf("vulndb: vulnerability %s: %w", id, err)
			}
			e, err := decodeEntry(body, false)
			if err != nil {
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
