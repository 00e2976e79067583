package vulndb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/vigil-sec/vigil/model"
)

// LookupDirect answers one package from SQLite through the (ecosystem, name_key) index, without
// building the in-memory index. A one-shot scan looks up a few hundred packages: this costs tens of
// microseconds each and no start-up, where the in-memory index (for the server's continuous
// re-evaluation) costs a load of the whole database first. Results match Lookup's.
func (d *DB) LookupDirect(ctx context.Context, ecosystem, name string) ([]model.Advisory, error) {
	db, release, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer release()
	return lookupRows(ctx, db, ecosystem, name)
}

// lookupRows reads one package's non-withdrawn advisories, in the order the index holds them.
func lookupRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, ecosystem, name string) ([]model.Advisory, error) {
	rows, err := q.QueryContext(ctx, `SELECT r.source, r.id, r.summary, a.package, a.body
		FROM vdb_advisories a JOIN vdb_records r ON r.rowid = a.record
		WHERE a.ecosystem = ? AND a.name_key = ? AND r.withdrawn = 0 ORDER BY a.rowid`,
		ecosystem, NormalizeName(ecosystem, name))
	if err != nil {
		return nil, fmt.Errorf("vulndb: lookup %s %s: %w", ecosystem, name, err)
	}
	defer rows.Close()
	var out []model.Advisory
	for rows.Next() {
		var source, id, pkg string
		var sumb, body []byte
		if err := rows.Scan(&source, &id, &sumb, &pkg, &body); err != nil {
			return nil, fmt.Errorf("vulndb: lookup %s %s: %w", ecosystem, name, err)
		}
		var sum recordSummary
		if err := json.Unmarshal(sumb, &sum); err != nil {
			return nil, fmt.Errorf("vulndb: advisory %s: %w", id, err)
		}
		en, err := decodeEntry(body, true)
		if err != nil {
			return nil, fmt.Errorf("vulndb: advisory %s %s: %w", id, pkg, err)
		}
		out = append(out, model.Advisory{
			Source: source, ID: id, Aliases: sum.Aliases, Related: sum.Related, Ecosystem: ecosystem, Package: pkg, PURL: en.PURL,
			Ranges: en.Ranges, Versions: en.Versions, Unfixed: en.Unfixed, Note: en.Note, Severity: en.Severity,
			Urgency: en.Urgency, CVSS: en.CVSS, Summary: sum.Summary, CWEs: sum.CWEs,
			Published: sum.Published, Modified: sum.Modified,
		})
	}
	return out, rows.Err()
}

// Enrichments returns what the enrichment sources (NVD, KEV, EPSS) say about one ID, merged, or
// nil. It is the light half of Vulnerability(): the matcher already holds the advisories.
func (d *DB) Enrichments(ctx context.Context, id string) (*Vulnerability, error) {
	db, release, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := db.QueryContext(ctx, `SELECT body FROM vdb_enrichments WHERE id = ? ORDER BY source`, id)
	if err != nil {
		return nil, fmt.Errorf("vulndb: enrichments %s: %w", id, err)
	}
	defer rows.Close()
	v := &Vulnerability{ID: id}
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("vulndb: enrichments %s: %w", id, err)
		}
		var e model.Enrichment
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("vulndb: enrichment %s: %w", id, err)
		}
		v.Enrichments = append(v.Enrichments, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Other sources' advisories for the same ID carry CVSS vectors too (Bitnami scores Go's
	// standard library, the GitHub advisory scores an npm package): one entry per record suffices.
	arows, err := db.QueryContext(ctx, `SELECT r.source, a.body FROM vdb_advisories a JOIN vdb_records r ON r.rowid = a.record
		WHERE a.rowid IN (SELECT MIN(rowid) FROM vdb_advisories WHERE record IN (SELECT record FROM vdb_ids WHERE id = ?) GROUP BY record)`, id)
	if err != nil {
		return nil, fmt.Errorf("vulndb: enrichments %s: %w", id, err)
	}
	defer arows.Close()
	var advCVSS []model.CVSS
	for arows.Next() {
		var source string
		var body []byte
		if err := arows.Scan(&source, &body); err != nil {
			return nil, fmt.Errorf("vulndb: enrichments %s: %w", id, err)
		}
		en, err := decodeEntry(body, true)
		if err != nil {
			return nil, fmt.Errorf("vulndb: enrichments %s: %w", id, err)
		}
		advCVSS = append(advCVSS, en.CVSS...)
	}
	if err := arows.Err(); err != nil {
		return nil, err
	}
	if len(v.Enrichments) == 0 && len(advCVSS) == 0 {
		return nil, nil
	}
	v.merge()
	v.CVSS = append(v.CVSS, advCVSS...)
	return v, nil
}
