// Package update verifies and installs agent releases.
//
// The sequence (runner drives it on an UPDATE instruction):
//
//  1. Download PathReleases/{version}/{GOOS}/{GOARCH}; Verify checks the SHA-256 header against the
//     body and the ed25519 signature over the raw digest with the release key pinned in the
//     agent's config. Anything unsigned, tampered or signed by another key is refused.
//  2. Install writes the new binary beside the current one (<exe>.new, fsynced), hard-links the
//     current binary to <exe>.previous, and renames <exe>.new over <exe>: the path always holds a
//     complete binary.
//  3. Gate runs the installed binary as `vigil-agent run --health-check`, which loads the state,
//     reaches the server and writes the healthy marker (state/healthy) holding its version. The
//     old process waits for exit status 0 and that marker, with a timeout. On failure Rollback
//     renames <exe>.previous back over <exe> and the instruction is reported as failed.
//  4. On success the old process records a Pending marker and replaces itself with the new binary
//     (syscall.Exec, same PID, so systemd sees no restart). The new process counts its starts in
//     the marker; it removes it after its first successful heartbeat. A binary that passes the
//     health check but then crash-loops (systemd restarts it) is rolled back by CheckPending after
//     MaxStarts starts.
package update

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// Verification errors.
var (
	ErrUnsigned     = errors.New("release is unsigned (no SHA-256 or signature header)")
	ErrDigest       = errors.New("release body does not match its SHA-256 header")
	ErrSignature    = errors.New("release signature does not verify with the pinned release key")
	ErrNoReleaseKey = errors.New("no release key is pinned in the agent's config; updates are refused")
)

// ParseKey parses a base64 (standard or URL, padded or not) ed25519 public key.
func ParseKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, ErrNoReleaseKey
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, fmt.Errorf("release key: want %d bytes of base64", ed25519.PublicKeySize)
}

// Verify checks a downloaded release against its headers and the pinned key.
func Verify(body []byte, shaHex, sigB64 string, key ed25519.PublicKey) error {
	if len(key) != ed25519.PublicKeySize {
		return ErrNoReleaseKey
	}
	shaHex, sigB64 = strings.TrimSpace(shaHex), strings.TrimSpace(sigB64)
	if shaHex == "" || sigB64 == "" {
		return ErrUnsigned
	}
	want, err := hex.DecodeString(shaHex)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("%w: malformed header %q", ErrDigest, shaHex)
	}
	sum := sha256.Sum256(body)
	if string(sum[:]) != string(want) {
		return ErrDigest
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return fmt.Errorf("%w: malformed signature: %w", ErrSignature, err)
	}
	if !ed25519.Verify(key, sum[:], sig) {
		return ErrSignature
	}
	return nil
}

// Sign signs a release body (for release tooling and tests): hex SHA-256 and base64 signature.
func Sign(body []byte, priv ed25519.PrivateKey) (shaHex, sigB64 string) {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(ed25519.Sign(priv, sum[:]))
}

// Previous is the path the replaced binary is kept at.
func Previous(exe string) string { return exe + ".previous" }

// Install puts body in place of the binary at exe, keeping the current one as exe.previous.
func Install(exe string, body []byte) error {
	mode := fs.FileMode(0o755)
	if fi, err := os.Stat(exe); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp := exe + ".new"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install: writing %s: %w", tmp, err)
	}
	prev := Previous(exe)
	if err := os.Remove(prev); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.Remove(tmp)
		return fmt.Errorf("install: %w", err)
	}
	// A hard link keeps exe in place until the rename below replaces it in one step.
	if err := os.Link(exe, prev); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install: keeping the current binary: %w", err)
	}
	if err := os.Rename(tmp, exe); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// Rollback puts exe.previous back in place of exe.
func Rollback(exe string) error {
	prev := Previous(exe)
	if _, err := os.Stat(prev); err != nil {
		return fmt.Errorf("rollback: no previous binary: %w", err)
	}
	if err := os.Rename(prev, exe); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// HealthCheck runs the installed binary's health check; it returns nil only if the check exited
// successfully within the timeout and left the healthy marker naming version.
type HealthCheck func(ctx context.Context, exe string) error

// Gate runs check on the newly installed exe and rolls back on failure. markerPath is the healthy
// marker the new binary writes; it is removed before the check so a stale one cannot pass.
func Gate(ctx context.Context, exe, version, markerPath string, timeout time.Duration, check HealthCheck) error {
	_ = os.Remove(markerPath)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := check(cctx, exe)
	if err == nil {
		b, rerr := os.ReadFile(markerPath)
		switch {
		case rerr != nil:
			err = fmt.Errorf("no healthy marker: %w", rerr)
		case strings.TrimSpace(string(b)) != version:
			err = fmt.Errorf("healthy marker names version %q, want %q", strings.TrimSpace(string(b)), version)
		}
	}
	if err != nil {
		if rerr := Rollback(exe); rerr != nil {
			return fmt.Errorf("health check of %s failed: %w; %w", version, err, rerr)
		}
		return fmt.Errorf("health check of %s failed, previous binary restored: %w", version, err)
	}
	return nil
}

// MaxStarts is how many starts a new binary gets to send its first heartbeat before the previous
// binary is restored.
const MaxStarts = 3

// Pending records an update whose new binary has not yet proved itself.
type Pending struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Starts int    `json:"starts"`
}

// CheckPending is called by a starting agent of version self. With a marker for this version it
// counts the start; past MaxStarts it restores the previous binary and returns rolledBack, and the
// caller re-executes exe. A marker for another version (a rollback already happened) is removed.
func CheckPending(markerPath, exe, self string) (rolledBack bool, err error) {
	b, err := os.ReadFile(markerPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil || p.To != self {
		return false, os.Remove(markerPath)
	}
	p.Starts++
	if p.Starts > MaxStarts {
		if err := Rollback(exe); err != nil {
			return false, err
		}
		return true, os.Remove(markerPath)
	}
	nb, _ := json.Marshal(p)
	return false, os.WriteFile(markerPath, nb, 0o600)
}
