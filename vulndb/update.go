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
	"time"

	"github.com/vigil-sec/vigil/vulndb/feed"
)

// UpdateConfig drives Update.
type UpdateConfig struct {
	Sources []Source
	// Parsers by kind; nil means DefaultParsers().
	Parsers map[string]feed.Parser
	// Client is the HTTP client (nil: a client with a 30-minute overall timeout).
	Client    *http.Client
	UserAgent string
	// TempDir holds downloads until they are imported ("" = os.TempDir()).
	TempDir string
	// MaxDownload caps one download in bytes (0 = 4 GiB).
	MaxDownload int64
	// Force ignores ETag / Last-Modified and downloads everything.
	Force bool
	// NVD API settings: key (header "apiKey"), page size (max 2000) and the pause between pages
	// (NVD asks for 6 s without a key).
	NVDAPIKey   string
	NVDPageSize int
	NVDDelay    time.Duration
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
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Minute}
	}
	if cfg.MaxDownload <= 0 {
		cfg.MaxDownload = 4 << 30
	}
	states, err := d.sourceStates(ctx)
	if err != nil {
		return UpdateReport{}, err
	}
	var rep UpdateReport
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
			res, err = d.updateNVD(ctx, cfg, src, st, parser, progress)
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
	return rep, rep.err()
}

func (d *DB) updateOne(ctx context.Context, cfg UpdateConfig, src Source, st SourceState, parser feed.Parser, progress ProgressFunc) (ImportResult, bool, error) {
	cond := st
	if cfg.Force || st.URL != src.URL {
		cond = SourceState{} // a different URL's validators say nothing about this one
	}
	dl, err := download(ctx, cfg, src, cond.ETag, cond.LastModified, progress)
	if err != nil {
		d.recordFailure(src.Name, src.URL, d.Now(), err)
		return ImportResult{}, false, err
	}
	if dl.notModified {
		return ImportResult{}, true, d.MarkNotModified(ctx, src.Name, src.URL)
	}
	defer os.Remove(dl.path)
	progress(Progress{Source: src.Name, Phase: "import"})
	meta := SourceMeta{URL: src.URL, ETag: dl.etag, LastModified: dl.lastModified}
	res, err := d.ImportSource(ctx, src.Name, meta, func(ctx context.Context, sink feed.Sink) error {
		return parseFile(ctx, parser, src.Kind, src.URL, dl.path, sink)
	})
	return res, false, err
}

type downloaded struct {
	path               string
	etag, lastModified string
	notModified        bool
}

// download fetches src.URL into a temporary file. A short body (connection cut), a status other
// than 200/304 or a body above the cap is an error and leaves no file behind.
func download(ctx context.Context, cfg UpdateConfig, src Source, etag, lastMod string, progress ProgressFunc) (dl downloaded, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return dl, fmt.Errorf("vulndb: source %s: %w", src.Name, err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if lastMod != "" {
		req.Header.Set("If-Modified-Since", lastMod)
	}
	if cfg.UserAgent != "" {
		req.Header.Set("User-Agent", cfg.UserAgent)
	}
	if src.Kind == KindNVD && cfg.NVDAPIKey != "" {
		req.Header.Set("apiKey", cfg.NVDAPIKey)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return dl, fmt.Errorf("vulndb: source %s: GET %s: %w", src.Name, src.URL, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		dl.notModified = true
		return dl, nil
	default:
		return dl, fmt.Errorf("vulndb: source %s: GET %s: %s", src.Name, src.URL, resp.Status)
	}
	if resp.ContentLength > cfg.MaxDownload {
		return dl, fmt.Errorf("vulndb: source %s: %d bytes exceed the %d-byte limit", src.Name, resp.ContentLength, cfg.MaxDownload)
	}
	f, err := os.CreateTemp(cfg.TempDir, "vigil-feed-*")
	if err != nil {
		return dl, fmt.Errorf("vulndb: source %s: %w", src.Name, err)
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	pw := &progressWriter{w: f, src: src.Name, total: resp.ContentLength, fn: progress, last: time.Now()}
	n, err := io.Copy(pw, io.LimitReader(resp.Body, cfg.MaxDownload+1))
	if err != nil {
		return dl, fmt.Errorf("vulndb: source %s: download %s after %d bytes: %w", src.Name, src.URL, n, err)
	}
	if n > cfg.MaxDownload {
		return dl, fmt.Errorf("vulndb: source %s: body exceeds the %d-byte limit", src.Name, cfg.MaxDownload)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return dl, fmt.Errorf("vulndb: source %s: got %d of %d bytes", src.Name, n, resp.ContentLength)
	}
	if err := f.Close(); err != nil {
		return dl, fmt.Errorf("vulndb: source %s: %w", src.Name, err)
	}
	progress(Progress{Source: src.Name, Phase: "download", Bytes: n, Total: resp.ContentLength})
	dl.path, dl.etag, dl.lastModified = f.Name(), resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return dl, nil
}

type progressWriter struct {
	w     io.Writer
	src   string
	n     int64
	total int64
	fn    ProgressFunc
	last  time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if time.Since(p.last) > 250*time.Millisecond {
		p.last = time.Now()
		p.fn(Progress{Source: p.src, Phase: "download", Bytes: p.n, Total: p.total})
	}
	return n, err
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
