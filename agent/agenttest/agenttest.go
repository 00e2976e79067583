// Package agenttest is an in-process Vigil server speaking the agent protocol over real TLS 1.3
// with the CA and certificates of server/bootstrap, for the agent's tests. It keeps what a real
// server keeps for the protocol's sake (each agent's inventory by hash, so that a delta against an
// unknown base gets NeedFull) and records every call. Only tests import it.
package agenttest

import (
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/bootstrap"
)

// Token is the join token the server accepts.
const Token = "vigil-join-4f2a9c0e1b7d"

// Release is a binary served under PathReleases with its headers.
type Release struct {
	Body     []byte
	SHA, Sig string
	NotFound bool
}

// Server is the fake server.
type Server struct {
	URL         string
	Fingerprint string
	CA          *bootstrap.Result

	mu           sync.Mutex
	nextID       int
	Enrollments  []protocol.EnrollRequest
	Heartbeats   []protocol.Heartbeat
	Uploads      []protocol.Upload
	UploadBytes  []int // size on the wire of each upload
	Results      map[string]protocol.InstructionResult
	Pending      []protocol.Instruction
	Releases     map[string]Release
	Renewals     int
	HeartbeatSec int
	RenewBefore  time.Time
	// Down makes every agent call answer 503.
	Down bool
	// inventories per agent by hash, and the latest hash
	inv    map[string]map[string]*model.Inventory
	latest map[string]string
	// Full per agent: the current package list after applying uploads
	Current map[string][]model.Package
}

// New starts a server on 127.0.0.1; it stops with the test.
func New(t testing.TB) *Server {
	t.Helper()
	res, err := bootstrap.Bootstrap(context.Background(), bootstrap.Options{Dir: t.TempDir(), Hostname: "localhost", ExtraNames: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{CA: res, Fingerprint: res.CAFingerprint, Results: map[string]protocol.InstructionResult{},
		Releases: map[string]Release{}, HeartbeatSec: 60, inv: map[string]map[string]*model.Inventory{}, latest: map[string]string{}, Current: map[string][]model.Package{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathEnroll, s.enroll)
	mux.HandleFunc("POST "+protocol.PathHeartbeat, s.agent(s.heartbeat))
	mux.HandleFunc("PUT "+protocol.PathInventory, s.agent(s.upload))
	mux.HandleFunc("POST "+protocol.PathInstructions+"{id}", s.agent(s.result))
	mux.HandleFunc("POST "+protocol.PathRenew, s.agent(s.renew))
	mux.HandleFunc("GET "+protocol.PathReleases+"{version}/{os}/{arch}", s.agent(s.release))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: res.TLSConfig(), ErrorLog: nil}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	s.URL = "https://" + ln.Addr().String()
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req protocol.EnrollRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Token != Token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	// The CSR must hold an ECDSA P-256 key and be self-signed by it.
	blk, _ := pem.Decode([]byte(req.CSR))
	if blk == nil {
		http.Error(w, "no CSR", http.StatusBadRequest)
		return
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		http.Error(w, "bad CSR", http.StatusBadRequest)
		return
	}
	if k, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		http.Error(w, "want ECDSA P-256", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.nextID++
	id := fmt.Sprintf("agent-%04d", s.nextID)
	s.Enrollments = append(s.Enrollments, req)
	s.mu.Unlock()
	certPEM, err := bootstrap.IssueClientCert(s.CA.CA, s.CA.CAKey, bootstrap.ClientCertRequest{CSR: []byte(req.CSR), AgentID: id})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cert, _ := x509.ParseCertificate(mustPEM(certPEM))
	writeJSON(w, protocol.EnrollResponse{AgentID: id, Account: "111122223333", Certificate: string(certPEM),
		CA: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.CA.CA.Raw})), NotAfter: cert.NotAfter, HeartbeatSeconds: s.HeartbeatSec})
}

func mustPEM(b []byte) []byte {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil
	}
	return blk.Bytes
}

// agent admits only calls with a verified client certificate naming an agent.
func (s *Server) agent(h func(w http.ResponseWriter, r *http.Request, id string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "client certificate required", http.StatusUnauthorized)
			return
		}
		id := bootstrap.AgentID(r.TLS.VerifiedChains[0][0])
		if id == "" {
			http.Error(w, "not an agent", http.StatusForbidden)
			return
		}
		s.mu.Lock()
		down := s.Down
		s.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h(w, r, id)
	}
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, _ string) {
	var hb protocol.Heartbeat
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Heartbeats = append(s.Heartbeats, hb)
	resp := protocol.HeartbeatResponse{HeartbeatSeconds: s.HeartbeatSec, Instructions: s.Pending, RenewBefore: s.RenewBefore}
	s.Pending = nil
	writeJSON(w, resp)
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request, id string) {
	body := io.Reader(io.LimitReader(r.Body, 64<<20))
	cr := &countReader{r: body}
	if r.Header.Get("Content-Encoding") != "gzip" {
		http.Error(w, "want gzip", http.StatusUnsupportedMediaType)
		return
	}
	zr, err := gzip.NewReader(cr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var u protocol.Upload
	if err := json.NewDecoder(zr).Decode(&u); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	io.Copy(io.Discard, cr)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Uploads = append(s.Uploads, u)
	s.UploadBytes = append(s.UploadBytes, cr.n)
	// As server/agents does: a repeated hash is a confirmation; a delta is applied to the stored
	// base with protocol.ApplyDelta; the result must hash to u.Hash, or a full upload is asked for.
	known := s.inv[id]
	if known == nil {
		known = map[string]*model.Inventory{}
		s.inv[id] = known
	}
	if _, ok := known[u.Hash]; ok && u.Hash == s.latest[id] {
		writeJSON(w, protocol.UploadResponse{Hash: u.Hash})
		return
	}
	inv := u.Full
	if inv == nil {
		base, ok := known[u.BaseHash]
		if !ok {
			writeJSON(w, protocol.UploadResponse{Hash: u.Hash, NeedFull: true})
			return
		}
		var err error
		if inv, err = protocol.ApplyDelta(base, &u); err != nil {
			writeJSON(w, protocol.UploadResponse{Hash: u.Hash, NeedFull: true})
			return
		}
	}
	if got := protocol.InventoryHash(inv); got != u.Hash {
		if u.Full == nil {
			writeJSON(w, protocol.UploadResponse{Hash: u.Hash, NeedFull: true})
			return
		}
		http.Error(w, fmt.Sprintf("hash %s does not match the content %s", u.Hash, got), http.StatusUnprocessableEntity)
		return
	}
	known[u.Hash] = inv
	s.latest[id] = u.Hash
	s.Current[id] = inv.Packages
	writeJSON(w, protocol.UploadResponse{Hash: u.Hash})
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (s *Server) result(w http.ResponseWriter, r *http.Request, _ string) {
	var res protocol.InstructionResult
	if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.Results[r.PathValue("id")] = res
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request, id string) {
	var req protocol.RenewRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	certPEM, err := bootstrap.IssueClientCert(s.CA.CA, s.CA.CAKey, bootstrap.ClientCertRequest{CSR: []byte(req.CSR), AgentID: id})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cert, _ := x509.ParseCertificate(mustPEM(certPEM))
	s.mu.Lock()
	s.Renewals++
	s.mu.Unlock()
	writeJSON(w, protocol.RenewResponse{Certificate: string(certPEM), NotAfter: cert.NotAfter})
}

func (s *Server) release(w http.ResponseWriter, r *http.Request, _ string) {
	s.mu.Lock()
	rel, ok := s.Releases[r.PathValue("version")]
	s.mu.Unlock()
	if !ok || rel.NotFound {
		http.NotFound(w, r)
		return
	}
	if rel.SHA != "" {
		w.Header().Set(protocol.HeaderReleaseSHA256, rel.SHA)
	}
	if rel.Sig != "" {
		w.Header().Set(protocol.HeaderReleaseSignature, rel.Sig)
	}
	w.Write(rel.Body)
}

// Lock runs f with the server's state locked.
func (s *Server) Lock(f func(s *Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// Names returns the sorted package names the server holds for an agent.
func (s *Server) Names(agent string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.Current[agent] {
		out = append(out, p.Name+"="+p.Version)
	}
	slices.Sort(out)
	return out
}
