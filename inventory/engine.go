package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Engine runs a registry of extractors over file systems.
type Engine struct {
	os   OSDetector
	reg  *Registry
	cfg  Config
	skip map[string]bool
}

// New returns an engine. osd may be nil (no OS detection).
func New(osd OSDetector, reg *Registry, cfg Config) *Engine {
	e := &Engine{os: osd, reg: reg, cfg: cfg, skip: map[string]bool{}}
	if e.cfg.MaxFileSize == 0 {
		e.cfg.MaxFileSize = DefaultMaxFileSize
	}
	if e.cfg.Workers <= 0 {
		e.cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Host {
		for _, p := range SkippedOnHosts {
			e.skip[p] = true
		}
	}
	return e
}

// Filter reports whether any extractor (or the OS detector) will read a file. Streaming sources use
// it to keep only the content that will be read.
func (e *Engine) Filter() func(name string, info fs.FileInfo) bool {
	return func(name string, info fs.FileInfo) bool {
		if e.os != nil && e.os.Required(name, info) {
			return true
		}
		if !e.searched(name) {
			return false
		}
		for _, x := range e.reg.extractors {
			if x.Required(name, info) {
				return true
			}
		}
		return false
	}
}

// searched reports whether a path is inside what a run walks.
func (e *Engine) searched(name string) bool {
	if !e.cfg.Host {
		return true
	}
	for p := name; ; {
		if e.skip[p] {
			return false
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return e.inHostPaths(name)
}

func (e *Engine) inHostPaths(name string) bool {
	under := func(prefix string) bool {
		prefix = strings.Trim(prefix, "/")
		return prefix == "" || name == prefix || strings.HasPrefix(name, prefix+"/") || strings.HasPrefix(prefix, name+"/")
	}
	for _, p := range DefaultHostPaths {
		if under(p) {
			return true
		}
	}
	for _, p := range e.cfg.ExtraPaths {
		if under(p) {
			return true
		}
	}
	return false
}

type job struct {
	ext  Extractor
	idx  int
	path string
	info fs.FileInfo
}

type result struct {
	idx  int
	path string
	pkgs []model.Package
	err  error
}

// Run inventories fsys. It fails only when the walk itself cannot start; problems with single files or
// extractors are reported in the inventory's extractor statuses and warnings.
func (e *Engine) Run(ctx context.Context, fsys fs.FS, info model.SourceInfo) (*model.Inventory, error) {
	start := time.Now()
	inv := &model.Inventory{Source: info, Started: start.UTC(), Packages: []model.Package{}}
	if e.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.Timeout)
		defer cancel()
	}
	if e.os != nil {
		osInfo, err := e.os.Detect(ctx, fsys)
		if err != nil {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("os detection: %v", err))
		}
		inv.OS = osInfo
	}
	if _, err := fs.Stat(fsys, "."); err != nil {
		return nil, fmt.Errorf("cannot read the target's root: %w", err)
	}

	exts := e.reg.extractors
	statuses := make([]model.ExtractorStatus, len(exts))
	found := make([][]model.Package, len(exts))
	for i, x := range exts {
		statuses[i] = model.ExtractorStatus{Name: x.Name(), Version: x.Version(), Status: model.StatusOK}
	}

	jobs := make(chan job, 64)
	results := make(chan result, 64)
	var wg sync.WaitGroup
	for w := 0; w < e.cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- e.extract(ctx, fsys, inv.OS, j)
			}
		}()
	}
	var collectWG sync.WaitGroup
	collectWG.Add(1)
	limited := false
	total := 0
	var mu sync.Mutex // guards limited/total against the walker's reads
	go func() {
		defer collectWG.Done()
		for r := range results {
			st := &statuses[r.idx]
			st.Files++
			if r.err != nil {
				st.Errors = append(st.Errors, model.FileError{Path: "/" + r.path, Error: r.err.Error()})
			}
			mu.Lock()
			if e.cfg.MaxPackages > 0 && total+len(r.pkgs) > e.cfg.MaxPackages {
				r.pkgs = r.pkgs[:max(0, e.cfg.MaxPackages-total)]
				limited = true
			}
			total += len(r.pkgs)
			mu.Unlock()
			found[r.idx] = append(found[r.idx], r.pkgs...)
		}
	}()

	walkErr := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		mu.Lock()
		stop := limited
		mu.Unlock()
		if stop {
			return fs.SkipAll
		}
		if err != nil {
			if name == "." {
				return err
			}
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("/%s: %v", name, err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if name != "." && !e.searchedDir(name) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if !e.searched(name) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("/%s: %v", name, err))
			return nil
		}
		for i, x := range exts {
			if !x.Required(name, fi) {
				continue
			}
			if fi.Size() > e.cfg.MaxFileSize {
				results <- result{idx: i, path: name, err: fmt.Errorf("skipped: %d bytes is over the %d-byte limit", fi.Size(), e.cfg.MaxFileSize)}
				continue
			}
			select {
			case jobs <- job{ext: x, idx: i, path: name, info: fi}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	close(jobs)
	wg.Wait()
	close(results)
	collectWG.Wait()

	switch {
	case walkErr == nil:
	case errors.Is(walkErr, context.DeadlineExceeded) && e.cfg.Timeout > 0:
		limited = true
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("time limit of %s reached: the inventory is incomplete", e.cfg.Timeout))
	default:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("walking the target: %w", walkErr)
	}
	if limited && e.cfg.MaxPackages > 0 && total >= e.cfg.MaxPackages {
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("package limit of %d reached: the inventory is incomplete", e.cfg.MaxPackages))
	}

	layered, _ := fsys.(interface{ LayerOf(string) string })
	for i, x := range exts {
		pkgs := found[i]
		if f, ok := x.(Finisher); ok {
			pkgs = f.Finish(pkgs)
		}
		st := &statuses[i]
		switch {
		case limited:
			st.Status = model.StatusLimited
		case st.Files > 0 && len(st.Errors) == st.Files:
			st.Status = model.StatusFailed
		case len(st.Errors) > 0:
			st.Status = model.StatusPartial
		}
		st.Packages = len(pkgs)
		for _, p := range pkgs {
			p.Extractor = x.Name()
			if layered != nil && p.LayerDigest == "" && len(p.Locations) > 0 {
				p.LayerDigest = layered.LayerOf(strings.TrimPrefix(p.Locations[0], "/"))
			}
			inv.Packages = append(inv.Packages, p)
		}
	}
	inv.Extractors = statuses
	SortPackages(inv.Packages)
	inv.Duration = time.Since(start).Seconds()
	return inv, nil
}

// searchedDir reports whether a directory may hold searched files.
func (e *Engine) searchedDir(name string) bool {
	if !e.cfg.Host {
		return true
	}
	if e.skip[name] {
		return false
	}
	return e.inHostPaths(name)
}

func (e *Engine) extract(ctx context.Context, fsys fs.FS, osInfo *model.OS, j job) (r result) {
	r = result{idx: j.idx, path: j.path}
	defer func() {
		// An extractor bug on one hostile file must not take the whole scan down; it is reported.
		if p := recover(); p != nil {
			r.pkgs, r.err = nil, fmt.Errorf("extractor %s panicked: %v", j.ext.Name(), p)
		}
	}()
	in := &Input{Path: j.path, Info: j.info, FS: fsys, OS: osInfo, Config: &e.cfg}
	pkgs, err := j.ext.Extract(ctx, in)
	for i := range pkgs {
		if len(pkgs[i].Locations) == 0 {
			pkgs[i].Locations = []string{in.Location()}
		}
	}
	r.pkgs, r.err = pkgs, err
	return r
}

// SortPackages orders packages by ecosystem, name, version and location, for stable output.
func SortPackages(pkgs []model.Package) {
	sort.SliceStable(pkgs, func(i, j int) bool {
		a, b := pkgs[i], pkgs[j]
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return firstLoc(a) < firstLoc(b)
	})
}

func firstLoc(p model.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0]
}
