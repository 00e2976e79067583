package vulndb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/vigil-sec/vigil/match/cpe"
	"github.com/vigil-sec/vigil/model"
)

// ChangeCPE logs that a vulnerability's NVD configurations naming a (vendor, product) were added,
// changed or removed. Its Ecosystem is CPEEcosystem and its Package the cpe.ProductKey
// ("apache:log4j"), so a consumer re-evaluates the resources whose packages carry that CPE; consumers
// that know nothing of CPE matching find no package under that ecosystem and ignore it.
const ChangeCPE = "cpe"

// CPEEcosystem is the Ecosystem of ChangeCPE entries.
const CPEEcosystem = "cpe"

// productKeys lists the (vendor, product) pairs a vulnerability's configurations can match on:
// those of vulnerable criteria outside negated nodes (a platform-only or negated criterion never
// makes a hit by itself). Criteria with ANY vendor or product are not indexed.
func productKeys(cfgs []model.CPEConfig) [][2]string {
	seen := map[[2]string]bool{}
	var out [][2]string
	for _, c := range cfgs {
		for _, n := range c.Nodes {
			if n.Negate {
				continue
			}
			for _, m := range n.Matches {
				if !m.Vulnerable {
					continue
				}
				name, err := cpe.Parse(m.Criteria)
				if err != nil {
					continue
				}
				k := [2]string{name[cpe.Vendor], name[cpe.Product]}
				if !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] || out[i][0] == out[j][0] && out[i][1] < out[j][1] })
	return out
}

func (im *importer) loadConfigs() error {
	rows, err := im.tx.QueryContext(im.ctx, `SELECT id, hash FROM vdb_cpe_configs WHERE source=?`, im.source)
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
		im.cfgs[id] = &e
	}
	return rows.Err()
}

// configurations stores one vulnerability's configurations (replacing what the source said
// before) and logs a ChangeCPE per (vendor, product) named before or after. An enrichment without
// configurations removes stored ones, unless this import already stored some for the ID (a source
// delivering a CVE in pieces).
func (im *importer) configurations(id string, cfgs []model.CPEConfig) error {
	old := im.cfgs[id]
	if len(cfgs) == 0 {
		if old == nil || old.seen {
			return nil
		}
		old.seen = true
		return im.dropConfigs(id)
	}
	body, err := json.Marshal(cfgs)
	if err != nil {
		return err
	}
	hash := hashOf(body)
	if old != nil {
		old.seen = true
		if bytesEqual(old.hash, hash) {
			return nil
		}
	}
	st, err := im.cpeStatements()
	if err != nil {
		return err
	}
	var before [][2]string
	if old != nil {
		if before, err = im.indexedKeys(id); err != nil {
			return err
		}
		if _, err := st.delIndex.ExecContext(im.ctx, im.source, id); err != nil {
			return err
		}
	}
	if _, err := st.upsert.ExecContext(im.ctx, im.source, id, hash, body); err != nil {
		return err
	}
	after := productKeys(cfgs)
	for _, k := range after {
		if _, err := st.insIndex.ExecContext(im.ctx, k[0], k[1], im.source, id); err != nil {
			return err
		}
	}
	if old == nil {
		im.cfgs[id] = &existing{seen: true, hash: hash}
	} else {
		old.hash = hash
	}
	im.cpeChanges(id, append(before, after...))
	return nil
}

// cpeStmts are the statements of configuration writes, prepared on first use in an import.
type cpeStmts struct {
	upsert, delIndex, insIndex *sql.Stmt
}

func (im *importer) cpeStatements() (*cpeStmts, error) {
	if im.cpe != nil {
		return im.cpe, nil
	}
	st := &cpeStmts{}
	var err error
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.upsert, `INSERT INTO vdb_cpe_configs(source, id, hash, body) VALUES(?,?,?,?)
			ON CONFLICT(source, id) DO UPDATE SET hash=excluded.hash, body=excluded.body`},
		{&st.delIndex, `DELETE FROM vdb_cpe_index WHERE source=? AND id=?`},
		{&st.insIndex, `INSERT OR IGNORE INTO vdb_cpe_index(vendor, product, source, id) VALUES(?,?,?,?)`},
	} {
		if *p.dst, err = im.tx.PrepareContext(im.ctx, p.q); err != nil {
			st.close()
			return nil, err
		}
	}
	im.cpe = st
	return st, nil
}

func (st *cpeStmts) close() {
	if st == nil {
		return
	}
	for _, s := range []*sql.Stmt{st.upsert, st.delIndex, st.insIndex} {
		if s != nil {
			s.Close()
		}
	}
}

func (im *importer) indexedKeys(id string) ([][2]string, error) {
	rows, err := im.tx.QueryContext(im.ctx, `SELECT vendor, product FROM vdb_cpe_index WHERE source=? AND id=?`, im.source, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func (im *importer) dropConfigs(id string) error {
	before, err := im.indexedKeys(id)
	if err != nil {
		return err
	}
	if _, err := im.tx.ExecContext(im.ctx, `DELETE FROM vdb_cpe_configs WHERE source=? AND id=?`, im.source, id); err != nil {
		return err
	}
	if _, err := im.tx.ExecContext(im.ctx, `DELETE FROM vdb_cpe_index WHERE source=? AND id=?`, im.source, id); err != nil {
		return err
	}
	delete(im.cfgs, id)
	im.cpeChanges(id, before)
	return nil
}

// cpeChanges logs one ChangeCPE per distinct key.
func (im *importer) cpeChanges(id string, keys [][2]string) {
	seen := map[[2]string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		im.change(ChangeCPE, AdvisoryKey{Source: im.source, ID: id, VulnID: id, Ecosystem: CPEEcosystem, Package: cpe.ProductKey(k[0], k[1])})
		im.res.CPEChanged++
	}
}

// removeUnseenConfigs drops, at the end of a full import, the configurations of IDs the source no
// longer listed with any.
func (im *importer) removeUnseenConfigs() error {
	var gone []string
	for id, e := range im.cfgs {
		if !e.seen {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for _, id := range gone {
		if err := im.dropConfigs(id); err != nil {
			return err
		}
	}
	return nil
}

// CPEVulns returns the vulnerabilities whose NVD configurations name vendor and product (in CPE
// formatted-string spelling, lower case, as cpe.Name holds them) in a vulnerable criterion, with
// all of their configurations, ordered by ID. It reads SQLite through the (vendor, product) primary
// key; nothing is cached.
func (d *DB) CPEVulns(ctx context.Context, vendor, product string) ([]cpe.Vuln, error) {
	db, release, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := db.QueryContext(ctx, `SELECT c.id, c.body FROM vdb_cpe_index i
		JOIN vdb_cpe_configs c ON c.source = i.source AND c.id = i.id
		WHERE i.vendor = ? AND i.product = ? ORDER BY c.id, c.source`, vendor, product)
	if err != nil {
		return nil, fmt.Errorf("vulndb: cpe lookup %s:%s: %w", vendor, product, err)
	}
	defer rows.Close()
	var out []cpe.Vuln
	for rows.Next() {
		var id string
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("vulndb: cpe lookup: %w", err)
		}
		var cfgs []model.CPEConfig
		if err := json.Unmarshal(body, &cfgs); err != nil {
			return nil, fmt.Errorf("vulndb: configurations of %s: %w", id, err)
		}
		if n := len(out); n > 0 && out[n-1].ID == id {
			// Two sources (an NVD API source and a feed mirror) may both know the CVE: any holds.
			out[n-1].Configurations = append(out[n-1].Configurations, cfgs...)
			continue
		}
		out = append(out, cpe.Vuln{ID: id, Configurations: cfgs})
	}
	return out, rows.Err()
}

// CPECount is the number of vulnerabilities with stored configurations (0: CPE matching has
// nothing to match against; import NVD data first).
func (d *DB) CPECount(ctx context.Context) (int, error) {
	db, release, err := d.handle()
	if err != nil {
		return 0, err
	}
	defer release()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(DISTINCT id) FROM vdb_cpe_configs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("vulndb: cpe count: %w", err)
	}
	return n, nil
}

// upgrade1 moves a schema-1 database to this schema. The new tables already exist (New ran the
// schema); what is missing is their content: schema 1 kept NVD criteria flattened inside the
// enrichment body. The sources that stored such bodies lose their validators and last success, so
// the next update fetches them in full and fills the configurations.
func upgrade1(ctx context.Context, sdb *sql.DB) error {
	tx, err := sdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE vdb_sources SET etag='', last_modified='', last_success=0
		WHERE name IN (SELECT DISTINCT source FROM vdb_enrichments WHERE instr(body, '"cpes":[') > 0)`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE vdb_meta SET value=? WHERE key='schema'`, fmt.Sprint(SchemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}
