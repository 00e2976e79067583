// Package agents is the server side of vigil-agent (agent/protocol): join tokens, enrollment,
// mutual-TLS authentication of agents, heartbeats with queued typed instructions, certificate
// renewal, inventory uploads (full or delta), release downloads, and the ping status and host
// coverage of agent-managed hosts.
//
// Identity: the server chooses every agent ID ("agt-" and 24 hex digits) and names it in the
// client certificate. The host resource an agent reports for has the agent ID as its resource ID.
// The machine ID an agent claims is recorded (resource metadata "machineId") but never used as
// an identity: any holder of a join token could claim another host's machine ID and overwrite its
// inventory. Re-installing an agent therefore makes a new host resource; the old one goes
// CONNECTION_LOST, then STALE_INVENTORY, and an administrator revokes its agent.
//
// Load: a heartbeat that changes nothing but the time is not written at once; such heartbeats are
// written together every 2 s (Config.HeartbeatFlush), and the admin views and Refresh write the
// pending ones first. At most Config.MaxUploads uploads are decoded and stored at once; another
// waits up to Config.UploadWait, unread, and is then answered 503 with Retry-After, which the
// agent honours (bench/agent-scale.sh: 5,000 agents on one 2-core server).
//
// Scan types: an upload for an account that has not enabled package scanning of hosts ("host",
// or the legacy "package") is refused unread with 409 and the problem type
// protocol.ProblemScanNotEnabled, and the host's coverage becomes INACTIVE PENDING_DISABLE
// (Refresh keeps it so, and brings it back once the scan type is enabled).
//
// Mounting: AgentRoutes are public as far as API keys go (each authenticates itself: enrollment
// by join token, the rest by client certificate); AdminRoutes sit behind API-key auth and call
// Config.Authorize. The server's TLS listener must request client certificates (ConfigureTLS;
// bootstrap.Result.TLSConfig already does).
//
// Wiring, in server/app:
//
//	st, _ := agents.NewSQL(ctx, s.Store.DB(), s.Store.Dialect())
//	svc, _ := agents.New(agents.Config{Storage: st, Fleet: s.Store, CA: boot.CA, CAKey: boot.CAKey,
//		Sink: agents.SinkFunc(func(ctx context.Context, r model.Resource, inv *model.Inventory) error {
//			_, err := s.Submit(ctx, r, inv)
//			return err
//		}), Authorize: s.router.Authorize, Now: cfg.Now})
//	for _, r := range svc.AgentRoutes() { rt.Handle(r.Pattern, r.Handler, api.Public(), api.BodyLimit(r.BodyLimit), ...) }
//	for _, r := range svc.AdminRoutes() { rt.Handle(r.Pattern, r.Handler, api.Doc(r.OperationID, r.Summary, "agents")) }
//	every minute: svc.Refresh(ctx, allAccountIDs)
package agents

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/server/store"
)

// Defaults.
const (
	DefaultHeartbeatSeconds = 60
	DefaultCertValidity     = 7 * 24 * time.Hour
	DefaultMaxUploadBytes   = 32 << 20  // compressed body
	DefaultMaxInventory     = 256 << 20 // decompressed JSON
	DefaultRedeliverAfter   = 10 * time.Minute
	DefaultNoInventoryAfter = time.Hour
	DefaultTokenValidity    = 24 * time.Hour
	DefaultMaxUploads       = 32
	DefaultUploadWait       = 10 * time.Second
	MaxTokenValidity        = 365 * 24 * time.Hour
	ScanModeAgent           = "agent"
)

// InventorySink turns an agent's inventory into findings. server/app.Server.Submit satisfies it
// through an adapter that drops its result.
type InventorySink interface {
	Submit(ctx context.Context, res model.Resource, inv *model.Inventory) error
}

// SinkFunc adapts a function to InventorySink:
//
//	agents.SinkFunc(func(ctx context.Context, r model.Resource, inv *model.Inventory) error {
//		_, err := srv.Submit(ctx, r, inv)
//		return err
//	})
type SinkFunc func(ctx context.Context, res model.Resource, inv *model.Inventory) error

// Submit calls f.
func (f SinkFunc) Submit(ctx context.Context, res model.Resource, inv *model.Inventory) error {
	return f(ctx, res, inv)
}

// Fleet is the part of the server store the agents package reads and writes: host resources and
// their coverage, and the accounts' enabled scan types. *store.Store implements it.
type Fleet interface {
	ListAccounts(ctx context.Context, accounts []string) ([]model.Account, error)
	PutResource(ctx context.Context, r model.Resource) error
	GetResource(ctx context.Context, account, id string) (model.Resource, error)
	ListResources(ctx context.Context, accounts []string, q store.ResourceQuery) (store.ResourcePage, error)
	ListCoverage(ctx context.Context, accounts []string, q store.CoverageQuery) (store.CoveragePage, error)
	ApplyChanges(ctx context.Context, c store.Changes) error
}

var _ Fleet = (*store.Store)(nil)

// Config configures a Service. Storage, Fleet, Sink, CA and CAKey are required.
type Config struct {
	Storage Storage
	Fleet   Fleet
	Sink    InventorySink
	// CA and CAKey issue client certificates (bootstrap.Result.CA / CAKey).
	CA    *x509.Certificate
	CAKey crypto.Signer
	// CertValidity of client certificates (default 7 days, capped by bootstrap at 90).
	CertValidity time.Duration
	// HeartbeatSeconds is the global heartbeat period (default 60); agents may override it.
	HeartbeatSeconds int
	// MaxUploadBytes caps the compressed upload body, MaxInventoryBytes its decompressed JSON.
	MaxUploadBytes, MaxInventoryBytes int64
	// RedeliverAfter: a delivered instruction without a result is sent again after this long.
	RedeliverAfter time.Duration
	// NoInventoryAfter: an agent enrolled this long without an inventory is NO_INVENTORY.
	NoInventoryAfter time.Duration
	// HeartbeatFlush: routine heartbeats (only the time changed) are written in batches at most
	// this long after they arrive (default DefaultHeartbeatFlush; negative: each at once).
	HeartbeatFlush time.Duration
	// MaxUploads bounds the uploads decoded or being stored at once (default
	// DefaultMaxUploads); more are answered 503 with Retry-After, and the agent retries after that
	// Retry-After. A fleet enrolled at once then queues on the agents, not in the server's memory.
	MaxUploads int
	// UploadWait is how long an upload waits for one of those slots before it is refused
	// (default DefaultUploadWait): a burst queues briefly instead of retrying at once.
	UploadWait time.Duration
	// ReleasesDir holds agent releases: <dir>/<version>/<os>/<arch>/vigil-agent and
	// vigil-agent.sig (the ed25519 signature over the binary's SHA-256 digest, raw 64 bytes or
	// base64). ReleaseKey, when set, must verify that signature before a release is served.
	ReleasesDir string
	ReleaseKey  ed25519.PublicKey
	// Authorize checks an admin request (the API router's Authorize). Without it admin routes
	// refuse everything.
	Authorize func(r *http.Request, action auth.Action, account string) error
	Lifecycle findings.Config
	Logger    *slog.Logger
	Now       func() time.Time
}

// Service serves the agent endpoints and the admin API.
type Service struct {
	cfg  Config
	st   Storage
	log  *slog.Logger
	now  func() time.Time
	rels *releaseCache
	hb   heartbeatBatch
	// uploads holds a token per upload in progress (Config.MaxUploads).
	uploads chan struct{}
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Storage == nil || cfg.Fleet == nil || cfg.Sink == nil {
		return nil, errors.New("agents: Storage, Fleet and Sink are required")
	}
	if cfg.CA == nil || cfg.CAKey == nil {
		return nil, errors.New("agents: a CA certificate and key are required")
	}
	if cfg.CertValidity <= 0 {
		cfg.CertValidity = DefaultCertValidity
	}
	if cfg.HeartbeatSeconds <= 0 {
		cfg.HeartbeatSeconds = DefaultHeartbeatSeconds
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.MaxInventoryBytes <= 0 {
		cfg.MaxInventoryBytes = DefaultMaxInventory
	}
	if cfg.RedeliverAfter <= 0 {
		cfg.RedeliverAfter = DefaultRedeliverAfter
	}
	if cfg.NoInventoryAfter <= 0 {
		cfg.NoInventoryAfter = DefaultNoInventoryAfter
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = DefaultMaxUploads
	}
	if cfg.UploadWait <= 0 {
		cfg.UploadWait = DefaultUploadWait
	}
	if cfg.HeartbeatFlush == 0 {
		cfg.HeartbeatFlush = DefaultHeartbeatFlush
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, st: cfg.Storage, log: cfg.Logger, now: cfg.Now, rels: &releaseCache{},
		uploads: make(chan struct{}, cfg.MaxUploads)}, nil
}

// nowUTC is the clock at the stores' precision.
func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }
