package agents

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
)

// Upload limits beyond the byte caps.
const (
	maxUploadPackages = 200000
	maxSockets        = 10000
)

// ErrTooLarge is returned by DecodeUpload when a cap is exceeded.
var ErrTooLarge = errors.New("upload exceeds the size limit")

var hashRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// DecodeUpload reads an upload body: gzip-compressed JSON (Content-Encoding gzip; "" or
// identity is accepted uncompressed), at most maxCompressed bytes on the wire and maxJSON bytes
// once decompressed, so a small gzip bomb cannot exhaust memory. It checks the shape of the
// upload, not its hash.
func DecodeUpload(body io.Reader, contentEncoding string, maxCompressed, maxJSON int64) (*protocol.Upload, error) {
	wire := &capReader{r: body, left: maxCompressed}
	var src io.Reader = wire
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "gzip":
		zr, err := gzip.NewReader(wire)
		if err != nil {
			if wire.over {
				return nil, ErrTooLarge
			}
			return nil, fmt.Errorf("upload: gzip: %w", err)
		}
		defer zr.Close()
		src = zr
	case "", "identity":
	default:
		return nil, fmt.Errorf("upload: content encoding %q is not supported (gzip)", contentEncoding)
	}
	plain := &capReader{r: src, left: maxJSON}
	dec := json.NewDecoder(plain)
	var u protocol.Upload
	err := dec.Decode(&u)
	if wire.over || plain.over {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("upload: JSON: %w", err)
	}
	// Read to the end: trailing data and a corrupt gzip trailer (CRC) are errors too.
	rest, err := io.ReadAll(io.MultiReader(dec.Buffered(), plain))
	if wire.over || plain.over {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("upload: data after the JSON object")
	}
	if err := checkUpload(&u); err != nil {
		return nil, err
	}
	return &u, nil
}

func checkUpload(u *protocol.Upload) error {
	if !hashRE.MatchString(u.Hash) {
		return errors.New("upload: hash must be sha256:<64 lowercase hex digits>")
	}
	if u.BaseHash != "" && !hashRE.MatchString(u.BaseHash) {
		return errors.New("upload: baseHash must be sha256:<64 lowercase hex digits>")
	}
	switch {
	case u.Full != nil && (u.BaseHash != "" || len(u.Added) > 0 || len(u.Removed) > 0):
		return errors.New("upload: a full upload carries no baseHash, added or removed")
	case u.Full == nil && u.BaseHash == "":
		return errors.New("upload: neither a full inventory nor a baseHash")
	}
	n := len(u.Added) + len(u.Removed)
	if u.Full != nil {
		n += len(u.Full.Packages)
	}
	if n > maxUploadPackages {
		return fmt.Errorf("upload: %d packages exceed the limit of %d", n, maxUploadPackages)
	}
	if u.Facts != nil && len(u.Facts.Listening) > maxSockets {
		return fmt.Errorf("upload: %d sockets exceed the limit of %d", len(u.Facts.Listening), maxSockets)
	}
	return nil
}

// capReader fails once more than left bytes were read.
type capReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		c.over = true
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		c.over = true
		return n, ErrTooLarge
	}
	return n, err
}

// scanNotEnabled is the answer to an upload for an account without host scanning: 409 with the
// problem type the agent recognizes (it then retries rarely instead of backing off as for an
// outage), and the detail saying how to enable it.
func scanNotEnabled(account string) *api.Problem {
	return &api.Problem{Type: protocol.ProblemScanNotEnabled, Title: "Scan type not enabled", Status: http.StatusConflict,
		Detail: fmt.Sprintf("package scanning of hosts is not enabled for account %s, so its agents' inventories are refused: "+
			"POST /v1/accounts/%s/enable {\"scanTypes\": [%q]}", account, account, model.ResourceHost)}
}

// uploadRetryAfter is the Retry-After of an upload refused for load; agents wait at least that
// long, plus up to half again of jitter so that refused agents do not come back in step.
const uploadRetryAfter = 15

func (s *Service) upload(w http.ResponseWriter, r *http.Request) error {
	a, _ := AgentFrom(r.Context())
	// Checked before anything else: a refused upload takes no slot and is not read.
	enabled, err := s.hostScanEnabled(r.Context(), a.Account)
	if err != nil {
		return err
	}
	if !enabled {
		if err := s.refreshHostScan(r.Context(), a, false, s.nowUTC()); err != nil {
			return err
		}
		return scanNotEnabled(a.Account)
	}
	// Taken before the body is read: a waiting or refused upload costs neither decoding nor memory.
	wait := time.NewTimer(s.cfg.UploadWait)
	select {
	case s.uploads <- struct{}{}:
		wait.Stop()
		defer func() { <-s.uploads }()
	case <-wait.C:
		w.Header().Set("Retry-After", strconv.Itoa(uploadRetryAfter))
		return api.NewProblem(http.StatusServiceUnavailable, "the server is busy with other uploads; retry later")
	case <-r.Context().Done():
		wait.Stop()
		return r.Context().Err()
	}
	u, err := DecodeUpload(r.Body, r.Header.Get("Content-Encoding"), s.cfg.MaxUploadBytes, s.cfg.MaxInventoryBytes)
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrTooLarge) || errors.As(err, &mbe):
		return api.NewProblem(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("uploads are limited to %d bytes compressed and %d bytes of JSON", s.cfg.MaxUploadBytes, s.cfg.MaxInventoryBytes))
	case err != nil:
		return api.BadRequest(err.Error())
	}
	out, err := s.receive(r.Context(), a, u)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, out)
}

// receive applies an upload (of an account with host scanning enabled): a repeated hash is only a confirmation; a delta is rebuilt on the
// stored base; the result must hash to u.Hash. The sink runs before the inventory is stored, so
// a failed submission is retried by the agent's next upload of the same hash.
func (s *Service) receive(ctx context.Context, a Agent, u *protocol.Upload) (protocol.UploadResponse, error) {
	now := s.nowUTC()
	facts := boundFacts(u.Facts)
	if u.Hash == a.InventoryHash {
		if _, err := s.st.Inventory(ctx, a.ID, u.Hash); err == nil {
			if err := s.st.ConfirmInventory(ctx, a.ID, u.Hash, now, facts); err != nil {
				return protocol.UploadResponse{}, err
			}
			a.LastInventoryAt = now
			return protocol.UploadResponse{Hash: u.Hash}, s.refreshHostScan(ctx, a, true, now)
		}
	}
	inv := u.Full
	if inv == nil {
		base, err := s.loadInventory(ctx, a.ID, u.BaseHash)
		if errors.Is(err, ErrNotFound) {
			return protocol.UploadResponse{Hash: u.Hash, NeedFull: true}, nil
		} else if err != nil {
			return protocol.UploadResponse{}, err
		}
		if inv, err = protocol.ApplyDelta(base, u); err != nil {
			return protocol.UploadResponse{Hash: u.Hash, NeedFull: true}, nil
		}
		if !u.CollectedAt.IsZero() {
			inv.Started = u.CollectedAt
		}
	}
	if got := protocol.InventoryHash(inv); got != u.Hash {
		if u.Full == nil {
			// The two sides disagree about the base: start again from a full inventory.
			return protocol.UploadResponse{Hash: u.Hash, NeedFull: true}, nil
		}
		return protocol.UploadResponse{}, api.Validation(api.FieldError{Field: "hash",
			Message: fmt.Sprintf("the inventory hashes to %s", got)})
	}
	if inv.Packages == nil {
		inv.Packages = []model.Package{}
	}
	if inv.OS != nil {
		a.OS = inv.OS
	}
	res, err := s.hostResource(ctx, a)
	if err != nil {
		return protocol.UploadResponse{}, err
	}
	if err := s.cfg.Sink.Submit(ctx, res, inv); err != nil {
		return protocol.UploadResponse{}, fmt.Errorf("agents: submit inventory of %s: %w", a.ID, err)
	}
	blob, err := gzipJSON(inv)
	if err != nil {
		return protocol.UploadResponse{}, err
	}
	if err := s.st.PutInventory(ctx, a.ID, StoredInventory{Hash: u.Hash, ReceivedAt: now, Gzip: blob}, inv.OS, facts); err != nil {
		return protocol.UploadResponse{}, err
	}
	a.InventoryHash, a.LastInventoryAt = u.Hash, now
	return protocol.UploadResponse{Hash: u.Hash}, s.refreshHostScan(ctx, a, true, now)
}

// boundFacts keeps the facts an agent reports to a displayable size.
func boundFacts(f *protocol.Facts) *protocol.Facts {
	if f == nil {
		return nil
	}
	c := *f
	if len(c.Addresses) > 64 {
		c.Addresses = c.Addresses[:64]
	}
	return &c
}

func (s *Service) loadInventory(ctx context.Context, agentID, hash string) (*model.Inventory, error) {
	si, err := s.st.Inventory(ctx, agentID, hash)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(si.Gzip))
	if err != nil {
		return nil, fmt.Errorf("agents: stored inventory %s: %w", hash, err)
	}
	var inv model.Inventory
	if err := json.NewDecoder(zr).Decode(&inv); err != nil {
		return nil, fmt.Errorf("agents: stored inventory %s: %w", hash, err)
	}
	return &inv, nil
}

func gzipJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
