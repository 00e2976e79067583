package agents

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/server/api"
)

// Release file names inside <ReleasesDir>/<version>/<os>/<arch>/.
const (
	ReleaseBinary    = "vigil-agent"
	ReleaseSignature = "vigil-agent.sig"
	maxReleaseBytes  = 512 << 20
)

var platformRE = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// releaseCache remembers a release's digest by path, size and modification time, so a
// download does not hash the binary twice.
type releaseCache struct {
	mu sync.Mutex
	m  map[string]releaseInfo
}

type releaseInfo struct {
	size   int64
	mod    time.Time
	digest [32]byte
}

func (c *releaseCache) digest(path string, f *os.File, fi os.FileInfo) ([32]byte, error) {
	c.mu.Lock()
	if ri, ok := c.m[path]; ok && ri.size == fi.Size() && ri.mod.Equal(fi.ModTime()) {
		c.mu.Unlock()
		return ri.digest, nil
	}
	c.mu.Unlock()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, fmt.Errorf("agents: hash release %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return [32]byte{}, err
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]releaseInfo{}
	}
	c.m[path] = releaseInfo{size: fi.Size(), mod: fi.ModTime(), digest: d}
	c.mu.Unlock()
	return d, nil
}

// readSignature accepts the raw 64-byte signature or its standard base64.
func readSignature(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) == ed25519.SignatureSize {
		return b, nil
	}
	if len(b) > 200 {
		return nil, fmt.Errorf("agents: %s is not an ed25519 signature", path)
	}
	sig, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("agents: %s is not an ed25519 signature", path)
	}
	return sig, nil
}

func (s *Service) release(w http.ResponseWriter, r *http.Request) error {
	version, goos, arch := r.PathValue("version"), r.PathValue("os"), r.PathValue("arch")
	if !versionRE.MatchString(version) || len(version) > 64 || !platformRE.MatchString(goos) || !platformRE.MatchString(arch) {
		return api.NotFound("no such release")
	}
	if s.cfg.ReleasesDir == "" {
		return api.NotFound("this server distributes no agent releases")
	}
	dir := filepath.Join(s.cfg.ReleasesDir, version, goos, arch)
	bin := filepath.Join(dir, ReleaseBinary)
	f, err := os.Open(bin)
	if errors.Is(err, os.ErrNotExist) {
		return api.NotFound("no such release")
	} else if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxReleaseBytes {
		return api.NotFound("no such release")
	}
	sig, err := readSignature(filepath.Join(dir, ReleaseSignature))
	if errors.Is(err, os.ErrNotExist) {
		return api.NotFound("the release has no signature")
	} else if err != nil {
		return err
	}
	digest, err := s.rels.digest(bin, f, fi)
	if err != nil {
		return err
	}
	// A release that does not verify is never offered: the agent would refuse it anyway, and
	// the operator must hear about a tampered or mis-signed file.
	if s.cfg.ReleaseKey != nil && !ed25519.Verify(s.cfg.ReleaseKey, digest[:], sig) {
		s.log.ErrorContext(r.Context(), "agent release signature does not verify", "path", bin)
		return api.NewProblem(http.StatusServiceUnavailable, "the release's signature does not verify")
	}
	h := w.Header()
	h.Set(protocol.HeaderReleaseSHA256, hex.EncodeToString(digest[:]))
	h.Set(protocol.HeaderReleaseSignature, base64.StdEncoding.EncodeToString(sig))
	h.Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, ReleaseBinary, fi.ModTime(), f)
	return nil
}
