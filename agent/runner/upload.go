package runner

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/delta"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/state"
)

// maxPending bounds the decompressed pending upload read back from disk.
const maxPending = 512 << 20

// Wire returns what to send for the pending snapshot p (an Upload with Full set) given the last
// acknowledged inventory: the full inventory for a first upload, when forced (NeedFull), or when the
// OS changed; otherwise only the packages added and removed since acked.Hash, with the facts only
// when they changed. An unchanged inventory yields an upload with Hash == BaseHash and no lists.
func Wire(p *protocol.Upload, acked *state.Acked, full bool) *protocol.Upload {
	w := &protocol.Upload{Hash: p.Hash, CollectedAt: p.CollectedAt}
	if full || acked == nil || acked.Hash == "" || p.Full == nil || jsonHash(p.Full.OS) != acked.OSHash {
		w.Full, w.Facts = p.Full, p.Facts
		return w
	}
	w.BaseHash = acked.Hash
	added, removed := delta.Diff(acked.Packages, p.Full.Packages)
	w.Added = added
	for _, id := range removed {
		rp, err := delta.FromIdentity(id)
		if err != nil {
			// A damaged record of what was acknowledged: send everything.
			return &protocol.Upload{Hash: p.Hash, CollectedAt: p.CollectedAt, Full: p.Full, Facts: p.Facts}
		}
		w.Removed = append(w.Removed, rp)
	}
	if jsonHash(p.Facts) != acked.FactsHash {
		w.Facts = p.Facts
	}
	return w
}

// AckedFor is what to remember once the server acknowledged p.
func AckedFor(p *protocol.Upload, at time.Time) *state.Acked {
	a := &state.Acked{Hash: p.Hash, FactsHash: jsonHash(p.Facts), At: at}
	if p.Full != nil {
		a.Packages = delta.Identities(p.Full.Packages)
		a.OSHash = jsonHash(p.Full.OS)
	}
	return a
}

// jsonHash hashes a value's JSON form (maps and struct fields marshal in a fixed order).
func jsonHash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// decodePending reads a gzip JSON upload, bounded.
func decodePending(gz []byte) (*protocol.Upload, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("pending upload: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxPending+1))
	if err != nil {
		return nil, fmt.Errorf("pending upload: %w", err)
	}
	if len(b) > maxPending {
		return nil, fmt.Errorf("pending upload: larger than %d bytes", maxPending)
	}
	var u protocol.Upload
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("pending upload: %w", err)
	}
	return &u, nil
}

// Backoff bounds.
const (
	backoffBase = 5 * time.Second
	backoffMax  = 10 * time.Minute
	// MaxRetryAfter caps the server's Retry-After: a wrong or hostile value must not stop uploads
	// for longer than the backoff ever would.
	MaxRetryAfter = backoffMax
	// notEnabledRetry is the period of retries while the account has not enabled host scanning.
	notEnabledRetry = time.Hour
)

// RetryAfterWait is the wait before retrying after the server asked for ra (Retry-After of a 429 or
// 503, capped at MaxRetryAfter): never sooner than asked, plus up to half again (r in [0,1)) so that
// agents refused together do not return together.
func RetryAfterWait(ra time.Duration, r float64) time.Duration {
	return client.RetryWait(min(ra, MaxRetryAfter), r)
}

// NotEnabledWait is the wait after the server refused an upload because the account has not
// enabled host scanning: 30 to 60 minutes (equal jitter), since only an administrator can change
// that; a COLLECT_NOW instruction sends at once.
func NotEnabledWait(r float64) time.Duration {
	return notEnabledRetry/2 + time.Duration(r*float64(notEnabledRetry/2))
}

// Backoff is the wait before retry number attempt (1 for the first retry): exponential from 5 s,
// capped at 10 minutes, with "equal jitter" (half fixed, half random, r in [0,1)) so that a fleet
// coming back after a server outage does not retry in step.
func Backoff(attempt int, r float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := backoffMax
	if attempt < 30 {
		d = time.Duration(math.Min(float64(backoffBase)*math.Pow(2, float64(attempt-1)), float64(backoffMax)))
	}
	return d/2 + time.Duration(r*float64(d/2))
}
