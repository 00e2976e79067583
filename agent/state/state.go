// Package state is the agent's state directory: its key, certificate, CA, configuration, the last
// inventory the server acknowledged and the upload still waiting to be sent. The directory is 0700
// and every file is written atomically (temporary file, fsync, rename), so a crash or a power cut
// leaves either the old or the new version, never half of one.
//
// Layout:
//
//	<dir>/config.json    Config (server URL, agent ID, intervals, sensors, pinned keys)
//	<dir>/key.pem        the agent's ECDSA P-256 private key (0600); generated here, never sent
//	<dir>/cert.pem       the client certificate issued by the server
//	<dir>/ca.pem         the server's CA (trust anchor after enrollment)
//	<dir>/acked.json     the last inventory the server acknowledged: hash and package identities
//	<dir>/pending.json.gz the newest upload not yet acknowledged (gzip JSON, as sent)
//	<dir>/healthy        marker written by a new binary's health check during self-update
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DefaultDir is the state directory of an installed agent.
const DefaultDir = "/var/lib/vigil-agent"

// File names inside the state directory.
const (
	ConfigFile  = "config.json"
	KeyFile     = "key.pem"
	CertFile    = "cert.pem"
	CAFile      = "ca.pem"
	AckedFile   = "acked.json"
	PendingFile = "pending.json.gz"
	HealthyFile = "healthy"
	// RefusedFile records that the server refuses this agent's uploads because its account has not
	// enabled host scanning (Refused); removed by the next accepted upload.
	RefusedFile = "refused.json"
)

// maxStateFile bounds what is read back from the state directory (a pending upload of a large host
// is the biggest file; 64 MiB compressed is far above any real inventory).
const maxStateFile = 64 << 20

// ErrNotEnrolled is returned when the state directory holds no enrollment.
var ErrNotEnrolled = errors.New("the agent is not enrolled (run vigil-agent enroll)")

// Config is the agent's persistent configuration.
type Config struct {
	Server  string `json:"server"` // https://host:port
	AgentID string `json:"agentId,omitempty"`
	Account string `json:"account,omitempty"`
	// CAFingerprint is the pinned fingerprint used at enrollment ("sha256:<hex>").
	CAFingerprint    string   `json:"caFingerprint,omitempty"`
	HeartbeatSeconds int      `json:"heartbeatSeconds,omitempty"`
	IntervalSeconds  int      `json:"intervalSeconds,omitempty"`
	Sensors          []string `json:"sensors,omitempty"`
	ExtraPaths       []string `json:"extraPaths,omitempty"`
	// ReleaseKey is the base64 ed25519 public key that signs agent releases. Without it, UPDATE
	// instructions are refused.
	ReleaseKey string    `json:"releaseKey,omitempty"`
	NotAfter   time.Time `json:"certNotAfter,omitzero"`
	NotBefore  time.Time `json:"certNotBefore,omitzero"`
}

// Acked is the last inventory the server acknowledged.
type Acked struct {
	Hash string `json:"hash"`
	// Packages are the identities (protocol.PackageIdentity: each package's JSON) of the
	// acknowledged inventory, sorted: a delta's Removed entries are rebuilt from them.
	Packages []string `json:"packages"`
	// OSHash and FactsHash name the OS and facts last sent: a changed OS needs a full upload, and
	// unchanged facts are left out of a delta.
	OSHash    string    `json:"osHash,omitempty"`
	FactsHash string    `json:"factsHash,omitempty"`
	At        time.Time `json:"at"`
}

// Dir is a state directory.
type Dir struct{ Path string }

// Open returns the state directory at path, creating it 0700 if needed and tightening its mode.
func Open(path string) (*Dir, error) {
	if path == "" {
		path = DefaultDir
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", path, err)
	}
	return &Dir{Path: path}, nil
}

// File returns the path of a file in the directory.
func (d *Dir) File(name string) string { return filepath.Join(d.Path, name) }

// Read reads a state file, bounded in size.
func (d *Dir) Read(name string) ([]byte, error) {
	f, err := os.Open(d.File(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxStateFile {
		return nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit", d.File(name), fi.Size(), maxStateFile)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w", d.File(name), err)
	}
	return b, nil
}

// Write replaces a state file atomically with the given mode.
func (d *Dir) Write(name string, data []byte, mode fs.FileMode) error {
	return WriteAtomic(d.File(name), data, mode)
}

// Remove deletes a state file; a missing file is not an error.
func (d *Dir) Remove(name string) error {
	if err := os.Remove(d.File(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Exists reports whether a state file exists.
func (d *Dir) Exists(name string) bool {
	_, err := os.Stat(d.File(name))
	return err == nil
}

// LoadConfig reads the configuration; a missing file yields ErrNotEnrolled.
func (d *Dir) LoadConfig() (*Config, error) {
	b, err := d.Read(ConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", d.File(ConfigFile), err)
	}
	return &c, nil
}

// SaveConfig writes the configuration.
func (d *Dir) SaveConfig(c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return d.Write(ConfigFile, append(b, '\n'), 0o600)
}

// LoadAcked reads the last acknowledged inventory; none yields a zero Acked.
func (d *Dir) LoadAcked() (*Acked, error) {
	b, err := d.Read(AckedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &Acked{}, nil
	}
	if err != nil {
		return nil, err
	}
	var a Acked
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", d.File(AckedFile), err)
	}
	return &a, nil
}

// SaveAcked records the acknowledged inventory.
func (d *Dir) SaveAcked(a *Acked) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return d.Write(AckedFile, b, 0o600)
}

// Refused is why and since when the server refuses uploads, and when the agent offers the
// inventory again.
type Refused struct {
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
	RetryAt time.Time `json:"retryAt"`
}

// LoadRefused reads the refusal record; nil when uploads are not refused.
func (d *Dir) LoadRefused() (*Refused, error) {
	b, err := d.Read(RefusedFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Refused
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", d.File(RefusedFile), err)
	}
	return &r, nil
}

// SaveRefused records a refusal.
func (d *Dir) SaveRefused(r *Refused) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return d.Write(RefusedFile, b, 0o600)
}

// WriteAtomic writes data to path through a temporary file in the same directory, synced and
// renamed over the target.
func WriteAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
