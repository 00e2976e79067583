package vulndb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

// recordSummary is what every affected entry of a record shares and lookups return.
type recordSummary struct {
	Aliases   []string   `json:"aliases,omitempty"`
	Related   []string   `json:"related,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	CWEs      []string   `json:"cwes,omitempty"`
	Published time.Time  `json:"published,omitzero"`
	Modified  time.Time  `json:"modified,omitzero"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
}

// recordBody holds a record's long texts, read only for Vulnerability().
type recordBody struct {
	Details    string   `json:"details,omitempty"`
	References []string `json:"references,omitempty"`
}

// entry is what is specific to one affected package.
type entry struct {
	PURL     string        `json:"purl,omitempty"`
	Ranges   []model.Range `json:"ranges,omitempty"`
	Versions []string      `json:"versions,omitempty"`
	Unfixed  bool          `json:"unfixed,omitempty"`
	Note     string        `json:"note,omitempty"`
	Severity string        `json:"severity,omitempty"`
	Urgency  string        `json:"urgency,omitempty"`
	CVSS     []model.CVSS  `json:"cvss,omitempty"`
}

// SourceMeta is what an importer knows about where a source's data came from.
type SourceMeta struct {
	URL          string
	ETag         string
	LastModified string
	// Incremental keeps the source's rows that this import does not mention (delta feeds such as
	// NVD's lastModStartDate queries); a full import removes them.
	Incremental bool
}

// ImportResult counts what one source import did.
type ImportResult struct {
	Source      string
	Version     Version // the database version after the import
	Advisories  int     // advisories received
	Enrichments int     // enrichments received
	Skipped     int
	SkipSamples []string // the first few skipped records with their errors
	Added       int
	Changed     int
	Withdrawn   int
	Removed     int
	Enriched    int // enrichments added, changed or removed
	CPEChanged  int // ChangeCPE entries: (vulnerability, vendor:product) pairs whose configurations changed
	Duration    time.Duration
}

// Changes is the number of change-log entries the import wrote.
func (r ImportResult) Changes() int {
	return r.Added + r.Changed + r.Withdrawn + r.Removed + r.Enriched + r.CPEChanged
}

const maxSkipSamples = 20

// ImportSource replaces source's data with what fill delivers to the sink, in one transaction: if
// fill (or the commit) fails, nothing of the source changes, the failure is recorded in the
// source's state and returned.
func (d *DB) ImportSource(ctx context.Context, source string, meta SourceMeta, fill func(ctx context.Context, sink feed.Sink) error) (ImportResult, error) {
	start := d.Now()
	res, err := d.importSource(ctx, source, meta, fill)
	res.Source, res.Duration = source, time.Since(start)
	if err != nil {
		d.recordFailure(source, meta.URL, start, err)
		return res, fmt.Errorf("vulndb: import %s: %w", source, err)
	}
	return res, nil
}

// recordFailure notes an error in the source's state; it runs on a fresh context because the
// failure may be a cancellation.
func (d *DB) recordFailure(source, url string, at time.Time, ferr error) {
	db, release, err := d.handle()
	if err != nil {
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := ferr.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	_, _ = db.ExecContext(ctx, `INSERT INTO vdb_sources(name, url, last_attempt, last_error) VALUES(?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET last_attempt=excluded.last_attempt, last_error=excluded.last_error,
		url=CASE WHEN excluded.url='' THEN url ELSE excluded.url END`, source, url, at.Unix(), msg)
}

// MarkNotModified records a successful check that found the source unchanged (HTTP 304).
func (d *DB) MarkNotModified(ctx context.Context, source, url string) error {
	db, release, err := d.handle()
	if err != nil {
		return err
	}
	defer release()
	now := d.Now().Unix()
	_, err = db.ExecContext(ctx, `INSERT INTO vdb_sources(name, url, last_attempt, last_success) VALUES(?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET last_attempt=excluded.last_attempt, last_success=excluded.last_success, last_error=''`,
		source, url, now, now)
	if err != nil {
		return fmt.Errorf("vulndb: mark %s: %w", source, err)
	}
	return nil
}

type existing struct {
	rowid int64
	hash  []byte
	seen  bool
	// orig is the enrichment's hash before this import (nil when new)
	orig []byte
	// advisory rows only
	recID, vulnID, eco, pkg string
	withdrawn               bool
}

type importer struct {
	ctx    context.Context
	tx     *sql.Tx
	source string
	res    *ImportResult

	records map[string]*existing // by record ID
	advs    map[advKey]*existing
	enrs    map[string]*existing // by vulnerability ID
	cfgs    map[string]*existing // NVD configurations, by vulnerability ID
	seq     map[advKey]int       // advisories per (record, ecosystem, package) in this import (seq 0)

	insRecord, updRecord, delIDs, insID *sql.Stmt
	insAdv, updAdv                      *sql.Stmt
	pendAdv, pendID                     []any // batched insert arguments
	insEnr, updEnr                      *sql.Stmt
	cpe                                 *cpeStmts // nil until the first configuration
	changes                             []Change
}

// advKey identifies an advisory within a source: a record may list one package twice (OSV allows
// it), hence seq.
type advKey struct {
	rec, eco, pkg string
	seq           int
}

// Inserts are batched into multi-row statements: per-statement overhead, not SQLite's b-tree
// work, dominated imports.
const (
	batchRows = 64
	advCols   = 8
	idCols    = 2
)

func multiInsert(head string, cols, rows int) string {
	var b strings.Builder
	b.WriteString(head)
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

const (
	insAdvHead = `INSERT INTO vdb_advisories(record, source, ecosystem, package, name_key, seq, hash, body) VALUES `
	insIDHead  = `INSERT INTO vdb_ids(id, record) VALUES `
)

// flush writes the pending rows of one batched insert.
func (im *importer) flush(full *sql.Stmt, head string, cols int, pending *[]any) error {
	args := *pending
	for len(args) >= batchRows*cols {
		if _, err := full.ExecContext(im.ctx, args[:batchRows*cols]...); err != nil {
			return err
		}
		args = args[batchRows*cols:]
	}
	if len(args) > 0 {
		if _, err := im.tx.ExecContext(im.ctx, multiInsert(head, cols, len(args)/cols), args...); err != nil {
			return err
		}
	}
	*pending = (*pending)[:0]
	return nil
}

func (im *importer) flushAll() error {
	if err := im.flush(im.insAdv, insAdvHead, advCols, &im.pendAdv); err != nil {
		return err
	}
	return im.flush(im.insID, insIDHead, idCols, &im.pendID)
}

func (d *DB) importSource(ctx context.Context, source string, meta SourceMeta, fill func(ctx context.Context, sink feed.Sink) error) (ImportResult, error) {
	res := ImportResult{}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	db, release, err := d.handle()
	if err != nil {
		return res, err
	}
	defer release()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return res, err
	}
	defer tx.Rollback()
	im := &importer{ctx: ctx, tx: tx, source: source, res: &res,
		records: map[string]*existing{}, advs: map[advKey]*existing{}, enrs: map[string]*existing{}, cfgs: map[string]*existing{}, seq: map[advKey]int{}}
	if err := im.load(); err != nil {
		return res, err
	}
	if err := im.prepare(); err != nil {
		return res, err
	}
	defer im.close()

	if err := fill(ctx, im); err != nil {
		return res, err
	}
	if err := im.flushAll(); err != nil {
		return res, err
	}
	im.logEnrichments()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if !meta.Incremental {
		if err := im.removeUnseen(); err != nil {
			return res, err
		}
	}

	cur, err := readVersion(ctx, tx)
	if err != nil {
		return res, err
	}
	res.Version = cur
	now := d.Now().Unix()
	lastChange := int64(0)
	if len(im.changes) > 0 {
		res.Version = cur + 1
		lastChange = now
		if _, err := tx.ExecContext(ctx, `UPDATE vdb_meta SET value=? WHERE key='version'`, fmt.Sprint(int64(res.Version))); err != nil {
			return res, err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO vdb_changes(version, kind, source, id, vuln_id, ecosystem, package) VALUES(?,?,?,?,?,?,?)`)
		if err != nil {
			return res, err
		}
		for _, c := range im.changes {
			if _, err := ins.ExecContext(ctx, int64(res.Version), c.Kind, c.Source, c.ID, c.VulnID, c.Ecosystem, c.Package); err != nil {
				ins.Close()
				return res, err
			}
		}
		ins.Close()
	}
	var nAdv, nEnr int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM vdb_advisories WHERE source=?`, source).Scan(&nAdv); err != nil {
		return res, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM vdb_enrichments WHERE source=?`, source).Scan(&nEnr); err != nil {
		return res, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO vdb_sources(name, url, etag, last_modified, last_attempt, last_success, last_change, advisories, enrichments, skipped, last_error, version)
		VALUES(?,?,?,?,?,?,?,?,?,?,'',?)
		ON CONFLICT(name) DO UPDATE SET url=excluded.url, etag=excluded.etag, last_modified=excluded.last_modified,
		last_attempt=excluded.last_attempt, last_success=excluded.last_success,
		last_change=CASE WHEN excluded.last_change=0 THEN last_change ELSE excluded.last_change END,
		advisories=excluded.advisories, enrichments=excluded.enrichments, skipped=excluded.skipped, last_error='',
		version=CASE WHEN excluded.version=0 THEN version ELSE excluded.version END`,
		source, meta.URL, meta.ETag, meta.LastModified, now, now, lastChange, nAdv, nEnr, res.Skipped, versionIf(len(im.changes) > 0, res.Version))
	if err != nil {
		return res, err
	}
	im.close()
	if err := tx.Commit(); err != nil {
		return res, err
	}
	if len(im.changes) > 0 {
		d.markStale()
	}
	return res, nil
}

func versionIf(ok bool, v Version) int64 {
	if ok {
		return int64(v)
	}
	return 0
}

func (im *importer) load() error {
	rows, err := im.tx.QueryContext(im.ctx, `SELECT rowid, id, hash FROM vdb_records WHERE source=?`, im.source)
	if err != nil {
		return err
	}
	for rows.Next() {
		var e existing
		var id string
		if err := rows.Scan(&e.rowid, &id, &e.hash); err != nil {
			rows.Close()
			return err
		}
		im.records[id] = &e
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = im.tx.QueryContext(im.ctx, `SELECT a.rowid, r.id, r.vuln_id, r.withdrawn, a.ecosystem, a.package, a.seq, a.hash
		FROM vdb_advisories a JOIN vdb_records r ON r.rowid = a.record WHERE a.source=?`, im.source)
	if err != nil {
		return err
	}
	for rows.Next() {
		var e existing
		var seq int
		if err := rows.Scan(&e.rowid, &e.recID, &e.vulnID, &e.withdrawn, &e.eco, &e.pkg, &seq, &e.hash); err != nil {
			rows.Close()
			return err
		}
		im.advs[advKey{e.recID, e.eco, e.pkg, seq}] = &e
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := im.loadConfigs(); err != nil {
		return err
	}
	rows, err = im.tx.QueryContext(im.ctx, `SELECT id, hash FROM vdb_enrichments WHERE source=?`, im.source)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e existing
		var id string
		if err := rows.Scan(&id, &e.hash); err != nil {
			return err
		}
		e.orig = e.hash
		im.enrs[id] = &e
	}
	return rows.Err()
}

func (im *importer) prepare() error {
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = im.tx.PrepareContext(im.ctx, q)
		return s
	}
	im.insRecord = p(`INSERT INTO vdb_records(source, id, vuln_id, withdrawn, hash, summary, body) VALUES(?,?,?,?,?,?,?)`)
	im.updRecord = p(`UPDATE vdb_records SET vuln_id=?, withdrawn=?, hash=?, summary=?, body=? WHERE rowid=?`)
	im.delIDs = p(`DELETE FROM vdb_ids WHERE record=?`)
	im.insID = p(multiInsert(insIDHead, idCols, batchRows))
	im.insAdv = p(multiInsert(insAdvHead, advCols, batchRows))
	im.updAdv = p(`UPDATE vdb_advisories SET record=?, hash=?, body=? WHERE rowid=?`)
	im.insEnr = p(`INSERT INTO vdb_enrichments(source, id, hash, body) VALUES(?,?,?,?)`)
	im.updEnr = p(`UPDATE vdb_enrichments SET hash=?, body=? WHERE source=? AND id=?`)
	return err
}

func (im *importer) close() {
	im.cpe.close()
	im.cpe = nil
	for _, s := range []*sql.Stmt{im.insRecord, im.updRecord, im.delIDs, im.insID, im.insAdv, im.updAdv, im.insEnr, im.updEnr} {
		if s != nil {
			s.Close()
		}
	}
}

func hashOf(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:16]
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// Skip implements feed.Sink.
func (im *importer) Skip(record string, err error) {
	im.res.Skipped++
	if len(im.res.SkipSamples) < maxSkipSamples {
		im.res.SkipSamples = append(im.res.SkipSamples, fmt.Sprintf("%s: %v", record, err))
	}
}

// Advisory implements feed.Sink.
func (im *importer) Advisory(a *model.Advisory) error {
	if err := im.ctx.Err(); err != nil {
		return err
	}
	if a.ID == "" || a.Ecosystem == "" || a.Package == "" {
		im.Skip(a.ID, errors.New("advisory without ID, ecosystem or package"))
		return nil
	}
	im.res.Advisories++
	rec, recHash, withdrawn, vulnID, err := im.record(a)
	if err != nil {
		return err
	}
	body := encodeEntry(&entry{PURL: a.PURL, Ranges: a.Ranges, Versions: a.Versions, Unfixed: a.Unfixed,
		Note: a.Note, Severity: a.Severity, Urgency: a.Urgency, CVSS: a.CVSS})
	hash := hashOf(body, recHash)
	sk := advKey{a.ID, a.Ecosystem, a.Package, 0}
	seq := im.seq[sk]
	im.seq[sk] = seq + 1
	key := advKey{a.ID, a.Ecosystem, a.Package, seq}
	ak := AdvisoryKey{Source: im.source, ID: a.ID, VulnID: vulnID, Ecosystem: a.Ecosystem, Package: a.Package}
	if old := im.advs[key]; old != nil {
		old.seen = true
		if bytesEqual(old.hash, hash) {
			return nil
		}
		if _, err := im.updAdv.ExecContext(im.ctx, rec, hash, body, old.rowid); err != nil {
			return err
		}
		switch {
		case withdrawn && !old.withdrawn:
			im.change(ChangeWithdrawn, ak)
			im.res.Withdrawn++
		case withdrawn && old.withdrawn:
			// Still withdrawn: nothing that matches changed.
		default:
			im.change(ChangeChanged, ak)
			im.res.Changed++
		}
		return nil
	}
	im.pendAdv = append(im.pendAdv, rec, im.source, a.Ecosystem, a.Package, NormalizeName(a.Ecosystem, a.Package), seq, hash, body)
	if len(im.pendAdv) >= batchRows*advCols {
		if err := im.flush(im.insAdv, insAdvHead, advCols, &im.pendAdv); err != nil {
			return err
		}
	}
	im.advs[key] = &existing{seen: true}
	if !withdrawn {
		im.change(ChangeAdded, ak)
		im.res.Added++
	}
	return nil
}

func (im *importer) change(kind string, k AdvisoryKey) {
	im.changes = append(im.changes, Change{Kind: kind, AdvisoryKey: k})
}

// record stores a's record-level part once per import (the first entry of a record wins) and
// returns its rowid and hash.
func (im *importer) record(a *model.Advisory) (int64, []byte, bool, string, error) {
	if e := im.records[a.ID]; e != nil && e.seen {
		return e.rowid, e.hash, e.withdrawn, e.vulnID, nil
	}
	sum, err := json.Marshal(recordSummary{Aliases: a.Aliases, Related: a.Related, Summary: a.Summary, CWEs: a.CWEs,
		Published: a.Published, Modified: a.Modified, Withdrawn: a.Withdrawn})
	if err != nil {
		return 0, nil, false, "", err
	}
	body, err := json.Marshal(recordBody{Details: a.Details, References: a.References})
	if err != nil {
		return 0, nil, false, "", err
	}
	hash := hashOf(sum, body)
	withdrawn := a.Withdrawn != nil
	vulnID := VulnID(a.ID, a.Aliases)
	e := im.records[a.ID]
	switch {
	case e != nil && bytesEqual(e.hash, hash):
	case e != nil:
		if _, err := im.updRecord.ExecContext(im.ctx, vulnID, withdrawn, hash, sum, body, e.rowid); err != nil {
			return 0, nil, false, "", err
		}
		if _, err := im.delIDs.ExecContext(im.ctx, e.rowid); err != nil {
			return 0, nil, false, "", err
		}
		if err := im.ids(e.rowid, a.ID, vulnID, a.Aliases); err != nil {
			return 0, nil, false, "", err
		}
	default:
		r, err := im.insRecord.ExecContext(im.ctx, im.source, a.ID, vulnID, withdrawn, hash, sum, body)
		if err != nil {
			return 0, nil, false, "", err
		}
		e = &existing{}
		if e.rowid, err = r.LastInsertId(); err != nil {
			return 0, nil, false, "", err
		}
		im.records[a.ID] = e
		if err := im.ids(e.rowid, a.ID, vulnID, a.Aliases); err != nil {
			return 0, nil, false, "", err
		}
	}
	e.seen, e.hash, e.withdrawn, e.vulnID = true, hash, withdrawn, vulnID
	return e.rowid, e.hash, withdrawn, vulnID, nil
}

func (im *importer) ids(rowid int64, id, vulnID string, aliases []string) error {
	seen := map[string]bool{}
	for _, s := range append([]string{id, vulnID}, aliases...) {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		im.pendID = append(im.pendID, s, rowid)
	}
	return nil
}

// Enrich implements feed.Sink. Two enrichments of one ID from one source merge field by field
// (later non-zero fields win), so a source may deliver a CVE's data in pieces.
func (im *importer) Enrich(e *model.Enrichment) error {
	if err := im.ctx.Err(); err != nil {
		return err
	}
	if e.ID == "" {
		im.Skip("", errors.New("enrichment without ID"))
		return nil
	}
	im.res.Enrichments++
	old := im.enrs[e.ID]
	if old != nil && old.seen {
		// Second piece within this import: merge with what was stored a moment ago.
		var prev model.Enrichment
		var body []byte
		if err := im.tx.QueryRowContext(im.ctx, `SELECT body FROM vdb_enrichments WHERE source=? AND id=?`, im.source, e.ID).Scan(&body); err != nil {
			return err
		}
		if err := json.Unmarshal(body, &prev); err != nil {
			return err
		}
		merged := mergeEnrichment(prev, *e)
		e = &merged
	}
	if err := im.configurations(e.ID, e.Configurations); err != nil {
		return err
	}
	cp := *e
	cp.Configurations = nil // stored apart, in vdb_cpe_configs
	if cp.Source == "" {
		cp.Source = im.source
	}
	body, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	hash := hashOf(body)
	if old != nil {
		old.seen = true
		if bytesEqual(old.hash, hash) {
			return nil
		}
		if _, err := im.updEnr.ExecContext(im.ctx, hash, body, im.source, e.ID); err != nil {
			return err
		}
		old.hash = hash
		return nil
	}
	if _, err := im.insEnr.ExecContext(im.ctx, im.source, e.ID, hash, body); err != nil {
		return err
	}
	im.enrs[e.ID] = &existing{seen: true, hash: hash}
	return nil
}

// logEnrichments writes one change per enrichment whose final state differs from the one before
// the import (a CVE may arrive in pieces; only the sum counts).
func (im *importer) logEnrichments() {
	var changed []string
	for id, e := range im.enrs {
		if e.seen && !bytesEqual(e.hash, e.orig) {
			changed = append(changed, id)
		}
	}
	sort.Strings(changed)
	for _, id := range changed {
		im.enrichChange(id)
	}
}

func (im *importer) enrichChange(id string) {
	im.change(ChangeEnrichment, AdvisoryKey{Source: im.source, ID: id, VulnID: id})
	im.res.Enriched++
}

func mergeEnrichment(a, b model.Enrichment) model.Enrichment {
	if b.Description != "" {
		a.Description = b.Description
	}
	a.CVSS = append(a.CVSS, b.CVSS...)
	a.CWEs = append(a.CWEs, b.CWEs...)
	a.References = append(a.References, b.References...)
	if !b.Published.IsZero() {
		a.Published = b.Published
	}
	if !b.Modified.IsZero() {
		a.Modified = b.Modified
	}
	if b.EPSS != nil {
		a.EPSS = b.EPSS
	}
	if b.KEV != nil {
		a.KEV = b.KEV
	}
	return a
}

func (im *importer) removeUnseen() error {
	del, err := im.tx.PrepareContext(im.ctx, `DELETE FROM vdb_advisories WHERE rowid=?`)
	if err != nil {
		return err
	}
	defer del.Close()
	for _, e := range im.advs {
		if e.seen || e.rowid == 0 {
			continue
		}
		if _, err := del.ExecContext(im.ctx, e.rowid); err != nil {
			return err
		}
		if !e.withdrawn {
			im.change(ChangeRemoved, AdvisoryKey{Source: im.source, ID: e.recID, VulnID: e.vulnID, Ecosystem: e.eco, Package: e.pkg})
			im.res.Removed++
		}
	}
	delRec, err := im.tx.PrepareContext(im.ctx, `DELETE FROM vdb_records WHERE rowid=?`)
	if err != nil {
		return err
	}
	defer delRec.Close()
	for _, e := range im.records {
		if e.seen {
			continue
		}
		if _, err := delRec.ExecContext(im.ctx, e.rowid); err != nil {
			return err
		}
		if _, err := im.delIDs.ExecContext(im.ctx, e.rowid); err != nil {
			return err
		}
	}
	if err := im.removeUnseenConfigs(); err != nil {
		return err
	}
	delEnr, err := im.tx.PrepareContext(im.ctx, `DELETE FROM vdb_enrichments WHERE source=? AND id=?`)
	if err != nil {
		return err
	}
	defer delEnr.Close()
	for id, e := range im.enrs {
		if e.seen {
			continue
		}
		if _, err := delEnr.ExecContext(im.ctx, im.source, id); err != nil {
			return err
		}
		im.enrichChange(id)
	}
	return nil
}
