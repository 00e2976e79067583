package vulndb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/nvd"
)

// isNVDAPI tells the paged CVE API 2.0 from a plain feed file URL (a mirror's .json / .json.gz).
func isNVDAPI(u string) bool {
	return strings.Contains(u, "/rest/json/cves/")
}

// updateNVD pages through the CVE API inside the source's transaction. The first run (or a
// forced one) fetches every CVE and replaces the source; later runs ask only for CVEs modified
// since the end of the previous run's window and import incrementally (rows not mentioned stay).
// That window end is kept in the source's LastModified field, which plain HTTP validators use
// for other sources. An interrupted run rolls back and the next one starts from the same point.
func (d *DB) updateNVD(ctx context.Context, cfg UpdateConfig, src Source, st SourceState, progress ProgressFunc) (ImportResult, error) {
	c := cfg.NVD
	if c == nil {
		c = &nvd.Client{HTTP: cfg.Client, APIKey: cfg.NVDAPIKey}
	}
	c.BaseURL = src.URL
	c.Progress = func(done, total int) {
		progress(Progress{Source: src.Name, Phase: "download", Bytes: int64(done), Total: int64(total)})
	}
	var q nvd.Query
	if !cfg.Force && st.URL == src.URL && !st.LastSuccess.IsZero() {
		if since, err := time.Parse(time.RFC3339, st.LastModified); err == nil {
			q.LastModStart = since
		}
	}
	start := d.Now().UTC()
	var until time.Time
	meta := SourceMeta{URL: src.URL, Incremental: !q.LastModStart.IsZero()}
	res, err := d.ImportSource(ctx, src.Name, meta, func(ctx context.Context, sink feed.Sink) error {
		r, err := c.Fetch(ctx, q, sink)
		if err != nil {
			return fmt.Errorf("nvd api: %w", err)
		}
		until = r.Until
		return nil
	})
	if err != nil {
		return res, err
	}
	if until.IsZero() {
		until = start // a full fetch covers everything modified before it began
	}
	// Record the window end; a failure here only costs a larger window next time.
	_ = d.setLastModified(ctx, src.Name, until.UTC().Format(time.RFC3339))
	return res, nil
}

func (d *DB) setLastModified(ctx context.Context, source, v string) error {
	db, release, err := d.handle()
	if err != nil {
		return err
	}
	defer release()
	_, err = db.ExecContext(ctx, `UPDATE vdb_sources SET last_modified=? WHERE name=?`, v, source)
	return err
}
