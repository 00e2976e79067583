// Package image opens container images — docker save tarballs, OCI archives, OCI layout directories and
// registry references — as one merged, read-only file system: layers applied lowest first with
// whiteouts and opaque directories, every node knowing the diff ID of the layer that last wrote it.
//
// Each layer is streamed exactly once and never held whole; only the content of the files the caller's
// source.Filter wants is kept (see package unpack).
package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/fsx"
	"github.com/vigil-sec/vigil/source/image/unpack"
)

// Limits bound the cost of one image (decompressed bytes per layer, entries, memory, spool).
type Limits = unpack.Limits

// rawLayer is one layer as stored: open returns its bytes, compressed or not.
type rawLayer struct {
	digest string // the blob digest (what progress reports); the diff ID when the blob is a plain tar
	diffID string
	size   int64
	open   func() (io.ReadCloser, error)
}

// build applies the layers in order into a new tree and returns the target over it.
func build(ctx context.Context, info model.SourceInfo, cfg *v1.ConfigFile, layers []rawLayer, opts source.Options, lim Limits) (*source.Target, error) {
	if cfg != nil {
		if len(cfg.RootFS.DiffIDs) != len(layers) {
			return nil, fmt.Errorf("the config lists %d layer diff IDs but the manifest %d layers", len(cfg.RootFS.DiffIDs), len(layers))
		}
		if p := cfg.Platform(); p != nil && p.OS != "" {
			info.Platform = p.String()
		}
	}
	b := unpack.NewBuilder(opts.Want, opts.TempDir, lim)
	for i, l := range layers {
		info.Layers = append(info.Layers, l.diffID)
		if err := applyLayer(ctx, b, l, i, opts); err != nil {
			b.Close()
			return nil, err
		}
	}
	return source.NewTarget(info, fsx.New(b.Tree), b.Close), nil
}

func applyLayer(ctx context.Context, b *unpack.Builder, l rawLayer, i int, opts source.Options) error {
	label := fmt.Sprintf("layer %d (%s)", i+1, l.digest)
	rc, err := l.open()
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	defer rc.Close()
	r := unpack.ProgressReader(rc, opts.OnProgress, "layer", l.digest, l.size)
	return b.Apply(ctx, r, unpack.Stream{Label: label, Layer: l.diffID, Whiteouts: true})
}

// fromImage reads a go-containerregistry image (from a layout, an OCI archive or a registry).
func fromImage(ctx context.Context, img v1.Image, info model.SourceInfo, opts source.Options, lim Limits) (*source.Target, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	if m.Config.Size > maxMetaBytes {
		return nil, fmt.Errorf("image config: %w: %d bytes", unpack.ErrLimit, m.Config.Size)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	info.Digest = d.String()
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image layers: %w", err)
	}
	if len(ls) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("the config lists %d layer diff IDs but the manifest %d layers", len(cfg.RootFS.DiffIDs), len(ls))
	}
	var layers []rawLayer
	for i, l := range ls {
		ld, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		size, _ := l.Size()
		layers = append(layers, rawLayer{digest: ld.String(), diffID: cfg.RootFS.DiffIDs[i].String(), size: size, open: l.Compressed})
	}
	return build(ctx, info, cfg, layers, opts, lim)
}

// DockerArchive opens `docker save` tarballs ("docker-archive:PATH").
type DockerArchive struct{ Limits Limits }

// Kind implements source.Opener.
func (DockerArchive) Kind() string { return "docker-archive" }

// Detect implements source.Opener: a tar holding manifest.json.
func (DockerArchive) Detect(p string) bool { return tarHas(p, "manifest.json") }

// Open implements source.Opener. PATH may end in ":REPO:TAG" to pick one image of several.
func (o DockerArchive) Open(ctx context.Context, ref string, opts source.Options) ([]*source.Target, error) {
	p, tag := splitTag(ref)
	idx, err := openTarIndex(p)
	if err != nil {
		return nil, err
	}
	defer idx.Close()
	raw, err := idx.readSmall("manifest.json")
	if err != nil {
		return nil, fmt.Errorf("not a docker save tarball: %w", err)
	}
	var m tarball.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("manifest.json lists no image")
	}
	d := m[0]
	if tag != "" {
		found := false
		for _, c := range m {
			for _, t := range c.RepoTags {
				if t == tag || strings.HasSuffix(t, "/"+tag) {
					d, found = c, true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("no image tagged %q in manifest.json", tag)
		}
	}
	cfgRaw, err := idx.readSmall(d.Config)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(cfgRaw)))
	if err != nil {
		return nil, fmt.Errorf("image config %s: %w", d.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
		return nil, fmt.Errorf("the config lists %d layer diff IDs but manifest.json %d layers", len(cfg.RootFS.DiffIDs), len(d.Layers))
	}
	var layers []rawLayer
	for i, lp := range d.Layers {
		sr, err := idx.open(lp)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		diffID := cfg.RootFS.DiffIDs[i].String()
		digest := diffID
		if src, ok := d.LayerSources[cfg.RootFS.DiffIDs[i]]; ok {
			digest = src.Digest.String()
		}
		layers = append(layers, rawLayer{digest: digest, diffID: diffID, size: sr.Size(),
			open: func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(sr, 0, sr.Size())), nil }})
	}
	// A docker save tarball has no manifest; its image ID (the config digest) is what docker shows.
	info := model.SourceInfo{Kind: "docker-archive", Name: ref, Digest: digestOf(cfgRaw).String(), RepoTags: d.RepoTags}
	t, err := build(ctx, info, cfg, layers, opts, o.Limits)
	if err != nil {
		return nil, err
	}
	return []*source.Target{t}, nil
}

// OCIArchive opens a tar of an OCI image layout ("oci-archive:PATH[:TAG]").
type OCIArchive struct{ Limits Limits }

// Kind implements source.Opener.
func (OCIArchive) Kind() string { return "oci-archive" }

// Detect implements source.Opener: a tar holding oci-layout.
func (OCIArchive) Detect(p string) bool { return tarHas(p, "oci-layout") }

// Open implements source.Opener.
func (o OCIArchive) Open(ctx context.Context, ref string, opts source.Options) ([]*source.Target, error) {
	p, tag := splitTag(ref)
	idx, err := openTarIndex(p)
	if err != nil {
		return nil, err
	}
	defer idx.Close()
	if !idx.has("oci-layout") {
		return nil, fmt.Errorf("not an OCI archive: no oci-layout file")
	}
	ii, err := tarLayout{idx}.index()
	if err != nil {
		return nil, err
	}
	return openIndex(ctx, ii, model.SourceInfo{Kind: "oci-archive", Name: ref}, tag, opts, o.Limits)
}

// OCIDir opens an OCI image layout directory ("oci-dir:PATH[:TAG]").
type OCIDir struct{ Limits Limits }

// Kind implements source.Opener.
func (OCIDir) Kind() string { return "oci-dir" }

// Detect implements source.Opener: a directory holding oci-layout.
func (OCIDir) Detect(p string) bool {
	fi, err := os.Stat(filepath.Join(p, "oci-layout"))
	return err == nil && fi.Mode().IsRegular()
}

// Open implements source.Opener.
func (o OCIDir) Open(ctx context.Context, ref string, opts source.Options) ([]*source.Target, error) {
	p, tag := splitTag(ref)
	// go-containerregistry reads index.json whole: refuse a hostile one first.
	if fi, err := os.Stat(filepath.Join(p, "index.json")); err == nil && fi.Size() > maxMetaBytes {
		return nil, fmt.Errorf("index.json: %w: %d bytes", unpack.ErrLimit, fi.Size())
	}
	ii, err := layout.ImageIndexFromPath(p)
	if err != nil {
		return nil, fmt.Errorf("not an OCI layout: %w", err)
	}
	return openIndex(ctx, ii, model.SourceInfo{Kind: "oci-dir", Name: ref}, tag, opts, o.Limits)
}

func openIndex(ctx context.Context, ii v1.ImageIndex, info model.SourceInfo, tag string, opts source.Options, lim Limits) ([]*source.Target, error) {
	picks, err := pick(ii, opts.Platform, tag)
	if err != nil {
		return nil, err
	}
	return readPicks(ctx, picks, info, opts, lim)
}

func readPicks(ctx context.Context, picks []picked, info model.SourceInfo, opts source.Options, lim Limits) ([]*source.Target, error) {
	var out []*source.Target
	for _, pk := range picks {
		in := info
		if len(pk.tags) > 0 {
			in.RepoTags = pk.tags
		}
		t, err := fromImage(ctx, pk.img, in, opts, lim)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			if len(picks) > 1 {
				return nil, fmt.Errorf("%s: %w", pk.platform, err)
			}
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// splitTag separates "PATH:TAG" when PATH exists and the whole does not.
func splitTag(ref string) (string, string) {
	if _, err := os.Stat(ref); err == nil {
		return ref, ""
	}
	i := strings.LastIndex(ref, ":")
	if i <= 0 || strings.ContainsRune(ref[i:], '/') {
		return ref, ""
	}
	// A docker tag "repo:tag" after the path: PATH:REPO:TAG.
	for j := i; j > 0; j = strings.LastIndex(ref[:j], ":") {
		if _, err := os.Stat(ref[:j]); err == nil {
			return ref[:j], ref[j+1:]
		}
	}
	return ref, ""
}
