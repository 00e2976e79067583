package vulndb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vigil-sec/vigil/vulndb/feed"
)

// MirrorOptions tunes ImportMirror.
type MirrorOptions struct {
	// Parsers by kind; nil means DefaultParsers().
	Parsers map[string]feed.Parser
}

// mirrorSource is one source found in a mirror directory.
type mirrorSource struct {
	Source
	files []string
}

// ScanMirror lists the sources a mirror directory holds, in the layout of the osv.dev bucket and
// the upstream files:
//
//	osv/<Ecosystem>/all.zip             source "osv/<Ecosystem>"
//	debian/tracker.json[.gz]            source "debian"
//	alpine/<vX.Y>/<repo>.json           source "alpine/<vX.Y>/<repo>"
//	nvd/*.json[.gz]                     source "nvd" (all files in one import)
//	kev/known_exploited_vulnerabilities.json   source "kev"
//	epss/*.csv[.gz]                     source "epss" (the newest file by name)
func ScanMirror(dir string) ([]Source, error) {
	ms, err := scanMirror(dir)
	if err != nil {
		return nil, err
	}
	out := make([]Source, len(ms))
	for i, m := range ms {
		out[i] = m.Source
	}
	return out, nil
}

func scanMirror(dir string) ([]mirrorSource, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("vulndb: mirror: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("vulndb: mirror %s: not a directory", dir)
	}
	var out []mirrorSource
	add := func(name, kind string, files ...string) {
		out = append(out, mirrorSource{Source: Source{Name: name, Kind: kind, URL: "file://" + files[0]}, files: files})
	}
	isFile := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && st.Mode().IsRegular()
	}
	subdirs := func(p string) []string {
		ents, _ := os.ReadDir(p)
		var names []string
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		return names
	}
	glob := func(p string, suffixes ...string) []string {
		ents, _ := os.ReadDir(p)
		var names []string
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			for _, s := range suffixes {
				if strings.HasSuffix(e.Name(), s) {
					names = append(names, filepath.Join(p, e.Name()))
					break
				}
			}
		}
		sort.Strings(names)
		return names
	}

	for _, eco := range subdirs(filepath.Join(dir, "osv")) {
		if p := filepath.Join(dir, "osv", eco, "all.zip"); isFile(p) {
			add("osv/"+eco, KindOSV, p)
		}
	}
	for _, n := range []string{"tracker.json", "tracker.json.gz"} {
		if p := filepath.Join(dir, "debian", n); isFile(p) {
			add("debian", KindDebian, p)
			break
		}
	}
	for _, rel := range subdirs(filepath.Join(dir, "alpine")) {
		for _, p := range glob(filepath.Join(dir, "alpine", rel), ".json") {
			repo := strings.TrimSuffix(filepath.Base(p), ".json")
			add("alpine/"+rel+"/"+repo, KindAlpine, p)
		}
	}
	if files := glob(filepath.Join(dir, "nvd"), ".json", ".json.gz"); len(files) > 0 {
		add("nvd", KindNVD, files...)
	}
	for _, n := range []string{"known_exploited_vulnerabilities.json", "known_exploited_vulnerabilities.json.gz"} {
		if p := filepath.Join(dir, "kev", n); isFile(p) {
			add("kev", KindKEV, p)
			break
		}
	}
	if files := glob(filepath.Join(dir, "epss"), ".csv", ".csv.gz"); len(files) > 0 {
		add("epss", KindEPSS, files[len(files)-1])
	}
	return out, nil
}

// ImportMirror imports every source of a mirror directory (see ScanMirror), each in its own
// transaction. Sources whose kind has no parser, or whose files are corrupt, fail alone and keep
// their previous data. The returned error joins every source's failure.
func (d *DB) ImportMirror(ctx context.Context, dir string, opts MirrorOptions, progress ProgressFunc) (UpdateReport, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	parsers := opts.Parsers
	if parsers == nil {
		parsers = DefaultParsers()
	}
	srcs, err := scanMirror(dir)
	if err != nil {
		return UpdateReport{}, err
	}
	var rep UpdateReport
	// A first fill of an empty database builds its indexes once, at the end.
	if err := d.bulk(ctx, func() error {
		for _, src := range srcs {
			if err := ctx.Err(); err != nil {
				rep.fail(src.Name, err)
				break
			}
			parser := parsers[src.Kind]
			if parser == nil {
				err := fmt.Errorf("vulndb: source %s: no parser for kind %q", src.Name, src.Kind)
				rep.fail(src.Name, err)
				progress(Progress{Source: src.Name, Phase: "failed", Err: err})
				continue
			}
			progress(Progress{Source: src.Name, Phase: "import"})
			res, err := d.ImportSource(ctx, src.Name, SourceMeta{URL: src.URL}, func(ctx context.Context, sink feed.Sink) error {
				for _, f := range src.files {
					if err := parseFile(ctx, parser, src.Kind, f, f, sink); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				rep.fail(src.Name, err)
				progress(Progress{Source: src.Name, Phase: "failed", Err: err})
				continue
			}
			rep.Results = append(rep.Results, res)
			progress(Progress{Source: src.Name, Phase: "done", Result: &res})
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
