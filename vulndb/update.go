package vulndb

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/fetch"
	"github.com/vigil-sec/vigil/vulndb/feeds/nvd"
)

// UpdateConfig drives Update.
type UpdateConfig struct {
	Sources []Source
	// Parsers by kind; nil means DefaultParsers().
	Parsers map[string]feed.Parser
	// Fetcher downloads single-file sources (conditional GET, retries, size cap); nil means one
	// built from Client, UserAgent and TempDir.
	Fetcher *fetch.Fetcher
	// NVD pages through the NVD CVE API for KindNVD sources whose URL is the API; nil means one
	// built from Client and NVDAPIKey. Update sets its BaseURL (the source's URL) and Progress.
	NVD *nvd.Client
	// Client is the HTTP client for the default Fetcher and NVD client (nil: http.DefaultClient).
	Client    *http.Client
	UserAgent string
	// TempDir holds downloads until they are imported ("" = os.TempDir()).
	TempDir string
	// MaxDownload caps one download in bytes (0 = the fetcher's default, 4 GiB).
	MaxDownload int64
	// Force ignores ETag / Last-Modified and NVD's last window: everything is fetched in full.
	Force     bool
	NVDAPIKey string
}

// Progress reports what an update or mirror import is doing. Phases: "download", "import",
// "done", "not-modified", "failed".
type Progress struct {
	Source string
	Phase  string
	// Bytes downloaded so far and Total (-1 when unknown) during "download".
	Bytes, Total int64
	Result       *ImportResult // with "done"
	Err          error         // with "failed"
}

// ProgressFunc receives progress; it must not block for long.
type ProgressFunc func(Progress)

// UpdateReport is the outcome of Update or ImportMirror.
type UpdateReport struct {
	Results     []ImportResult
	NotModified []string
	Failed      map[string]error
}

func (r *UpdateReport) fail(src string, err error) {
	if r.Failed == nil {
		r.Failed = map[string]error{}
	}
	r.Failed[src] = err
}

func (r *UpdateReport) err() error {
	var errs []error
	for _, e := range r.Failed {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// Update fetches every source (conditionally, with the stored ETag / Last-Modified) and imports
// the ones that changed, each in its own transaction. A failing source keeps its previous data and
// records the error; the others go on. The returned error joins every source's failure.
func (d *DB) Update(ctx context.Context, cfg UpdateConfig, progress ProgressFunc) (UpdateReport, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	if cfg.Parsers == nil {
		cfg.Parsers = DefaultParsers()
	}
	if cfg.Fetcher == nil {
		cfg.Fetcher = &fetch.Fetcher{Client: cfg.Client, Dir: cfg.TempDir, UserAgent: cfg.UserAgent}
	}
	states, err := d.sourceStates(ctx)
	if err != nil {
		return UpdateReport{}, err
	}
	var rep UpdateReport
	// A first fill of an empty database builds its indexes once, at the end.
	if err := d.bulk(ctx, func() error {
		for _, src := range cfg.Sources {
			if err := ctx.Err(); err != nil {
				rep.fail(src.Name, err)
				break
			}
			parser := cfg.Parsers[src.Kind]
			if parser == nil {
				err := fmt.Errorf("vulndb: source %s: no parser for kind %q", src.Name, src.Kind)
				d.recordFailure(src.Name, src.URL, d.Now(), err)
				rep.fail(src.Name, err)
				progress(Progress{Source: src.Name, Phase: "failed", Err: err})
				continue
			}
			st := states[src.Name]
			var res ImportResult
			var notMod bool
			if src.Kind == KindNVD && isNVDAPI(src.URL) {
				res, err = d.updateNVD(ctx, cfg, src, st, progress)
			} else {
				res, notMod, err = d.updateOne(ctx, cfg, src, st, parser, progress)
			}
			switch {
			case err != nil:
				rep.fail(src.Name, err)
				progress(Progress{Source: src.Name, Phase: "failed", Err: err})
			case notMod:
				rep.NotModified = append(rep.NotModified, src.Name)
				progress(Progress{Source: src.Name, Phase: "not-modified"})
			default:
				rep.Results = append(rep.Results, res)
				progress(Progress{Source: src.Name, Phase: "done", Result: &res})
			}
		}
		return nil
	}); err != nil {
		rep.fail("(indexes)", err)
	}
	if len(rep.Results) > 0 {
		_ = d.Checkpoint(ctx) // only shrinks the WAL; the data is committed either way
	}
	return rep, rep.err()
}

func (d *DB) updateOne(ctx context.Context, cfg UpdateConfig, src Source, st SourceState, parser feed.Parser, progress ProgressFunc) (ImportResult, bool, error) {
	req := fetch.Request{URL: src.URL, SHA256: src.SHA256, MaxBytes: cfg.MaxDownload,
		Progress: func(done, total int64) {
			progress(Progress{Source: src.Name, Phase: "download", Bytes: done, Total: total})
		}}
	// Validators of another URL say nothing about this one.
	if !cfg.Force && st.URL == src.URL {
		req.ETag, req.LastModified = st.ETag, st.LastModified
	}
	if src.Kind == KindNVD && cfg.NVDAPIKey != "" {
		req.Header = http.Header{"apiKey": {cfg.NVDAPIKey}}
	}
	dl, err := cfg.Fetcher.Get(ctx, req)
	if err != nil {
		err = fmt.Errorf("vulndb: source %s: %w", src.Name, err)
		d.recordFailure(src.Name, src.URL, d.Now(), err)
		return ImportResult{}, false, err
	}
	if dl.NotModified {
		return ImportResult{}, true, d.MarkNotModified(ctx, src.Name, src.URL)
	}
	defer os.Remove(dl.Path)
	progress(Progress{Source: src.Name, Phase: "import"})
	meta := SourceMeta{URL: src.URL, ETag: dl.ETag, LastModified: dl.LastModified}
	res, err := d.ImportSource(ctx, src.Name, meta, func(ctx context.Context, sink feed.Sink) error {
		return parseFile(ctx, parser, src.Kind, src.URL, dl.Path, sink)
	})
	return res, false, err
}

// maxDecompressed bounds what a gzipped feed may expand to (the EPSS file is ~10 MB, NVD yearly
// feeds a few hundred MB).
const maxDecompressed = 8 << 30

// parseFile hands a downloaded or mirrored file to its parser, transparently gunzipping it.
func parseFile(ctx context.Context, parser feed.Parser, kind, name, path string, sink feed.Sink) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if kind == KindOSV {
		return parser.Parse(ctx, name, f, sink) // a zip needs the *os.File for random access
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = &capReader{r: zr, left: maxDecompressed, name: name}
	}
	return parser.Parse(ctx, name, r, sink)
}

type capReader struct {
	r    io.Reader
	left int64
	name string
}

func (c *capReader) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%s: decompressed size exceeds %d bytes", c.name, int64(maxDecompressed))
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}
