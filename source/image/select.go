package image

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vigil-sec/vigil/source/image/unpack"
)

// DefaultPlatform is chosen from a multi-platform index when the caller names none.
const DefaultPlatform = "linux/amd64"

// Annotations that name an image in a layout or archive index.
const (
	annotRefName    = "org.opencontainers.image.ref.name"
	annotContainerd = "io.containerd.image.name"
	annotRefType    = "vnd.docker.reference.type" // "attestation-manifest" for BuildKit provenance
)

type picked struct {
	img      v1.Image
	tags     []string
	platform string
}

type candidate struct {
	desc v1.Descriptor
	idx  v1.ImageIndex
	tags []string
	plat *v1.Platform
}

// pick selects the images of an index: one for a platform ("" is the only image, else DefaultPlatform),
// or every platform for "all". tag, when set, restricts the top level to descriptors named so.
func pick(ii v1.ImageIndex, platform, tag string) ([]picked, error) {
	var cands []candidate
	seen := map[v1.Hash]bool{}
	if err := collect(ii, nil, tag, 0, seen, &cands); err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		if tag != "" {
			return nil, fmt.Errorf("no image named %q in the index", tag)
		}
		return nil, errors.New("the index lists no image")
	}
	// Descriptors in a layout's index.json often carry no platform: read it from the config.
	for i := range cands {
		if cands[i].plat != nil && cands[i].plat.OS != "" {
			continue
		}
		img, err := cands[i].idx.Image(cands[i].desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", cands[i].desc.Digest, err)
		}
		if cfg, err := img.ConfigFile(); err == nil {
			cands[i].plat = cfg.Platform()
		}
	}
	var chosen []candidate
	switch {
	case platform == "all":
		chosen = cands
	case platform == "" && len(cands) == 1:
		chosen = cands
	default:
		if platform == "" {
			platform = DefaultPlatform
		}
		spec, err := v1.ParsePlatform(platform)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", platform, err)
		}
		for _, c := range cands {
			if c.plat != nil && platformMatch(*c.plat, *spec) {
				chosen = append(chosen, c)
				break
			}
		}
		if len(chosen) == 0 {
			return nil, fmt.Errorf("no image for platform %s; the index has %s", platform, strings.Join(platforms(cands), ", "))
		}
	}
	var out []picked
	for _, c := range chosen {
		img, err := c.idx.Image(c.desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", c.desc.Digest, err)
		}
		p := ""
		if c.plat != nil {
			p = c.plat.String()
		}
		out = append(out, picked{img: img, tags: c.tags, platform: p})
	}
	return out, nil
}

// collect walks nested indexes (bounded) and gathers image manifests, leaving out attestations.
func collect(ii v1.ImageIndex, tags []string, tag string, depth int, seen map[v1.Hash]bool, out *[]candidate) error {
	if depth > 4 {
		return errors.New("image indexes nested too deep")
	}
	m, err := ii.IndexManifest()
	if err != nil {
		return fmt.Errorf("image index: %w", err)
	}
	for _, d := range m.Manifests {
		t := tags
		if depth == 0 {
			t = descTags(d)
			if tag != "" && !tagMatches(t, tag) {
				continue
			}
		}
		if d.Size > maxMetaBytes {
			return fmt.Errorf("manifest %s: %w: %d bytes", d.Digest, unpack.ErrLimit, d.Size)
		}
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		switch {
		case d.MediaType.IsIndex():
			sub, err := ii.ImageIndex(d.Digest)
			if err != nil {
				return fmt.Errorf("image index %s: %w", d.Digest, err)
			}
			if err := collect(sub, t, "", depth+1, seen, out); err != nil {
				return err
			}
		case d.MediaType.IsImage():
			if d.Annotations[annotRefType] == "attestation-manifest" || (d.Platform != nil && d.Platform.OS == "unknown") {
				continue
			}
			*out = append(*out, candidate{desc: d, idx: ii, tags: t, plat: d.Platform})
			if len(*out) > 1000 {
				return errors.New("more than 1000 images in the index")
			}
		}
	}
	return nil
}

func descTags(d v1.Descriptor) []string {
	var out []string
	for _, k := range []string{annotContainerd, annotRefName} {
		if v := d.Annotations[k]; v != "" && !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func tagMatches(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag || strings.HasSuffix(t, ":"+tag) {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// platformMatch compares os, architecture and variant; arm64 without a variant is arm64/v8.
func platformMatch(have, want v1.Platform) bool {
	norm := func(p v1.Platform) v1.Platform {
		if p.Architecture == "arm64" && p.Variant == "" {
			p.Variant = "v8"
		}
		return p
	}
	h, w := norm(have), norm(want)
	if w.Variant == "v8" && want.Variant == "" {
		w.Variant = h.Variant
	}
	return h.OS == w.OS && h.Architecture == w.Architecture && (w.Variant == "" || h.Variant == w.Variant)
}

func platforms(cands []candidate) []string {
	var out []string
	for _, c := range cands {
		if c.plat != nil {
			out = append(out, c.plat.String())
		} else {
			out = append(out, "unknown")
		}
	}
	sort.Strings(out)
	return out
}
