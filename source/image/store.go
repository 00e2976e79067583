package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// tarLayout is an OCI image layout read from inside a tar (an "oci-archive"): blobs are served with
// io.SectionReader over the archive, never extracted. It yields go-containerregistry types, so that
// platform selection and image reading are the same code as for layout directories and registries.
type tarLayout struct{ t *tarIndex }

func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// meta reads a small blob and checks its digest: manifests and configs decide what is read next.
func (l tarLayout) meta(h v1.Hash) ([]byte, error) {
	b, err := l.t.readSmall(blobName(h))
	if err != nil {
		return nil, err
	}
	if h.Algorithm == "sha256" {
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != h.Hex {
			return nil, fmt.Errorf("blob %s: content does not match its digest", h)
		}
	}
	return b, nil
}

// index returns the layout's top index.json as a v1.ImageIndex.
func (l tarLayout) index() (v1.ImageIndex, error) {
	raw, err := l.t.readSmall("index.json")
	if err != nil {
		return nil, err
	}
	return newTarIndex(l, raw)
}

func newTarIndex(l tarLayout, raw []byte) (*tarImageIndex, error) {
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("image index: %w", err)
	}
	return &tarImageIndex{l: l, raw: raw, m: m}, nil
}

type tarImageIndex struct {
	l   tarLayout
	raw []byte
	m   *v1.IndexManifest
}

func (x *tarImageIndex) MediaType() (types.MediaType, error) {
	if x.m.MediaType != "" {
		return x.m.MediaType, nil
	}
	return types.OCIImageIndex, nil
}
func (x *tarImageIndex) Digest() (v1.Hash, error)                  { return digestOf(x.raw), nil }
func (x *tarImageIndex) Size() (int64, error)                      { return int64(len(x.raw)), nil }
func (x *tarImageIndex) IndexManifest() (*v1.IndexManifest, error) { return x.m, nil }
func (x *tarImageIndex) RawManifest() ([]byte, error)              { return x.raw, nil }

func (x *tarImageIndex) Image(h v1.Hash) (v1.Image, error) {
	raw, err := x.l.meta(h)
	if err != nil {
		return nil, err
	}
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	return partial.CompressedToImage(&tarImage{l: x.l, raw: raw, mt: m.MediaType})
}

func (x *tarImageIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	raw, err := x.l.meta(h)
	if err != nil {
		return nil, err
	}
	return newTarIndex(x.l, raw)
}

// tarImage implements partial.CompressedImageCore.
type tarImage struct {
	l   tarLayout
	raw []byte
	mt  types.MediaType
	m   *v1.Manifest
}

func (i *tarImage) RawManifest() ([]byte, error) { return i.raw, nil }
func (i *tarImage) MediaType() (types.MediaType, error) {
	if i.mt != "" {
		return i.mt, nil
	}
	return types.OCIManifestSchema1, nil
}

func (i *tarImage) manifest() (*v1.Manifest, error) {
	if i.m == nil {
		m, err := v1.ParseManifest(bytes.NewReader(i.raw))
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		i.m = m
	}
	return i.m, nil
}

func (i *tarImage) RawConfigFile() ([]byte, error) {
	m, err := i.manifest()
	if err != nil {
		return nil, err
	}
	return i.l.meta(m.Config.Digest)
}

func (i *tarImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := i.manifest()
	if err != nil {
		return nil, err
	}
	if h == m.Config.Digest {
		return tarBlob{l: i.l, d: m.Config}, nil
	}
	for _, d := range m.Layers {
		if d.Digest == h {
			return tarBlob{l: i.l, d: d}, nil
		}
	}
	return nil, fmt.Errorf("blob %s: not in the manifest", h)
}

type tarBlob struct {
	l tarLayout
	d v1.Descriptor
}

func (b tarBlob) Digest() (v1.Hash, error)            { return b.d.Digest, nil }
func (b tarBlob) Size() (int64, error)                { return b.d.Size, nil }
func (b tarBlob) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }
func (b tarBlob) Compressed() (io.ReadCloser, error) {
	sr, err := b.l.t.open(blobName(b.d.Digest))
	if err != nil {
		return nil, err
	}
	return io.NopCloser(sr), nil
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
