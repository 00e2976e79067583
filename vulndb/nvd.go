package vulndb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/vulndb/feed"
)

// isNVDAPI tells the paged CVE API 2.0 from a plain feed file URL (a mirror's .json / .json.gz).
func isNVDAPI(u string) bool {
	return strings.Contains(u, "/rest/json/cves/")
}

// nvdMaxPage bounds one API page (2000 CVEs are ~10-30 MB).
const nvdMaxPage = 256 << 20

// nvdMaxWindow is the longest lastModified window the API accepts.
const nvdMaxWindow = 120 * 24 * time.Hour

// updateNVD pages through the CVE API. After a successful full import it asks only for CVEs
// modified since the last success (imported incrementally: rows not mentioned stay); when that is
// older than the API's 120-day window it fetches everything again. Pages are downloaded first and
// imported in one transaction, so an interrupted paging run changes nothing.
func (d *DB) updateNVD(ctx context.Context, cfg UpdateConfig, src Source, st SourceState, parser feed.Parser, progress ProgressFunc) (ImportResult, error) {
	pageSize := cfg.NVDPageSize
	if pageSize <= 0 || pageSize > 2000 {
		pageSize = 2000
	}
	delay := cfg.NVDDelay
	now := d.Now().UTC()
	incremental := !cfg.Force && st.URL == src.URL && !st.LastSuccess.IsZero() && now.Sub(st.LastSuccess) < nvdMaxWindow
	dir, err := os.MkdirTemp(cfg.TempDir, "vigil-nvd-*")
	if err != nil {
		return ImportResult{}, err
	}
	defer os.RemoveAll(dir)

	var pages []string
	fail := func(err error) (ImportResult, error) {
		err = fmt.Errorf("vulndb: source %s: %w", src.Name, err)
		d.recordFailure(src.Name, src.URL, now, err)
		return ImportResult{}, err
	}
	for start, total := 0, -1; total < 0 || start < total; start += pageSize {
		if start > 0 && delay > 0 {
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(delay):
			}
		}
		u, err := url.Parse(src.URL)
		if err != nil {
			return fail(err)
		}
		q := u.Query()
		q.Set("startIndex", fmt.Sprint(start))
		q.Set("resultsPerPage", fmt.Sprint(pageSize))
		if incremental {
			q.Set("lastModStartDate", st.LastSuccess.UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.000Z"))
			q.Set("lastModEndDate", now.Format("2006-01-02T15:04:05.000Z"))
		}
		u.RawQuery = q.Encode()
		path := fmt.Sprintf("%s/page-%06d.json", dir, start/pageSize)
		n, err := nvdPage(ctx, cfg, u.String(), path)
		if err != nil {
			return fail(err)
		}
		total = n
		pages = append(pages, path)
		progress(Progress{Source: src.Name, Phase: "download", Bytes: int64(min(start+pageSize, total)), Total: int64(total)})
	}
	progress(Progress{Source: src.Name, Phase: "import"})
	meta := SourceMeta{URL: src.URL, Incremental: incremental}
	return d.ImportSource(ctx, src.Name, meta, func(ctx context.Context, sink feed.Sink) error {
		for _, p := range pages {
			if err := parseFile(ctx, parser, KindNVD, p, p, sink); err != nil {
				return err
			}
		}
		return nil
	})
}

// nvdPage fetches one page into path and returns the query's totalResults.
func nvdPage(ctx context.Context, cfg UpdateConfig, u, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	if cfg.NVDAPIKey != "" {
		req.Header.Set("apiKey", cfg.NVDAPIKey)
	}
	if cfg.UserAgent != "" {
		req.Header.Set("User-Agent", cfg.UserAgent)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, nvdMaxPage+1))
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(data) > nvdMaxPage {
		return 0, fmt.Errorf("GET %s: page larger than %d bytes", u, nvdMaxPage)
	}
	var head struct {
		TotalResults *int `json:"totalResults"`
	}
	if err := json.Unmarshal(data, &head); err != nil || head.TotalResults == nil {
		return 0, fmt.Errorf("GET %s: not an NVD CVE API response", u)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return 0, err
	}
	return *head.TotalResults, nil
}
