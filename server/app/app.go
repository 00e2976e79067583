// Package app assembles Vigil's server from its parts: the store (SQLite or PostgreSQL), the
// vulnerability database, the re-evaluation engine, the finding lifecycle and the HTTP API. It is
// the pipeline's last steps, findings → events, behind `vigil server`.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/agents"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/bootstrap"
	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/server/reeval"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
	"github.com/vigil-sec/vigil/vulndb/feeds/fetch"
)

// DefaultAccount is the account the first administrator key belongs to.
const DefaultAccount = "default"

// Config configures a server.
type Config struct {
	// DataDir holds the SQLite database, the vulnerability database and the TLS material.
	DataDir string
	// Postgres, when set, stores everything but the vulnerability database in PostgreSQL.
	Postgres string
	// VulnDB is the vulnerability database file ("" = DataDir/vulndb.sqlite).
	VulnDB string
	// Hostname and ExtraNames go into the generated server certificate.
	Hostname   string
	ExtraNames []string
	Logger     *slog.Logger
	Now        func() time.Time
	Lifecycle  findings.Config
	// ObserveEvery is the granularity of findings' lastObservedAt (0: an hour; negative: every
	// submission moves it).
	ObserveEvery time.Duration
	// Webhooks receive every account's events, signed with their secret.
	Webhooks []Webhook
	// WebhookGuard refuses sink destinations (loopback, link-local, private); off by default.
	WebhookGuard events.AddressGuard

	// Background work (RunBackground; docs/server.md, "Background jobs and several processes").
	// Workers is how many jobs this process runs at once (0: 2; negative: none, an API-only process).
	Workers int
	// JobLease is how long a claimed job is this process's before another may take it over if it
	// stops renewing (0: 2 minutes); JobPoll how often idle workers look for jobs (0: 1 s).
	JobLease, JobPoll time.Duration
	// FeedSources are fetched by feed update jobs; FeedMirror, when set, is imported instead.
	FeedSources []vulndb.Source
	FeedMirror  string
	NVDAPIKey   string
	// FeedFetcher downloads feed files (nil: the default, 4 retries with backoff per source).
	FeedFetcher *fetch.Fetcher
	// UpdateEvery schedules a feed update (0: never; `POST /v1/vulndb/update` still works).
	UpdateEvery time.Duration
	// HousekeepEvery schedules housekeeping (0: hourly); agent coverage is refreshed every minute.
	// ScheduleTick is how often schedules are checked (0: every 15 s).
	HousekeepEvery, ScheduleTick time.Duration
	// FeedPoll is how often the database is checked for changes made outside the server (0: 30 s).
	FeedPoll time.Duration
	// FeedMaxAge: a source without a successful update for longer is stale (0: 48 h).
	FeedMaxAge time.Duration
}

// Server is a running Vigil server's state.
type Server struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	Store  *store.Store
	VulnDB *vulndb.DB
	engine *reeval.Engine
	boot   *bootstrap.Result
	router *api.Router
	// webhookMetrics count delivery attempts on /metrics.
	webhookMetrics *events.Metrics
	// Agents serves enrollment, heartbeats and uploads of vigil-agent, and their administration.
	Agents   *agents.Service
	registry *prometheus.Registry
	// dbVersion is the vulnerability database version findings reflect.
	dbVersion vulndb.Version
	// submitMu orders inventory submissions against fleet-wide passes (feed updates, rules,
	// housekeeping), which take it exclusively; submissions share it and serialise per resource
	// (resourceMu), so that the engine's state and the store's finding rows of one resource change
	// together while different resources proceed in parallel.
	submitMu   sync.RWMutex
	resourceMu [64]sync.Mutex
	// bodies remembers each resource's last inventory request body (putInventory): an identical
	// body is not decoded again.
	bodies sync.Map
	mgmt   management
	// holdMu guards versionChecked (when a submission last read the vulnerability database's
	// version) and hold (the shared fleet lock kept across submissions).
	holdMu         sync.Mutex
	versionChecked time.Time
	hold           fleetHold
	// shareMu orders this process's publications and adoptions of the shared vulnerability
	// database (vulndbshare.go).
	shareMu sync.Mutex
	// engineSynced says the engine holds every stored inventory. With one process (SQLite) every
	// later inventory goes through it, so feed passes need not compare the stored inventory hashes
	// with the engine's (a read of every resource); several processes sharing PostgreSQL always
	// compare. A failed write clears it (forgetFleet, forgetResource).
	engineSynced atomic.Bool
	// hashMark is where the next feed pass reads the stored inventory hashes from, and
	// hashesReadAll when one last read them all (staleResources; guarded by submitMu).
	hashMark      store.InventoryMark
	hashesReadAll time.Time
	// obs holds unchanged resubmissions' observation times until they are written together.
	obs observations
	// audit holds the API's audit records until they are written together (auditLog).
	audit *auditLog
	// worker names this process in job rows; wake pokes its idle workers.
	worker string
	wake   chan struct{}
}

// New opens (and on first start creates) everything the server needs.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "vigil-data"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.VulnDB == "" {
		cfg.VulnDB = filepath.Join(cfg.DataDir, "vulndb.sqlite")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, worker: workerID(), wake: make(chan struct{})}
	var err error
	if cfg.Postgres != "" {
		s.Store, err = store.OpenPostgres(ctx, cfg.Postgres, store.Options{Now: cfg.Now})
	} else {
		s.Store, err = store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "vigil.sqlite"), store.Options{Now: cfg.Now})
	}
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	s.audit = &auditLog{st: s.Store}
	s.obs.stop, s.obs.done = make(chan struct{}), make(chan struct{})
	go s.runObserver()
	if s.VulnDB, err = vulndb.Open(ctx, cfg.VulnDB); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening the vulnerability database: %w", err)
	}
	// Processes on other hosts may have published a newer database (or this one is the first).
	if _, err := s.syncVulnDB(ctx, adoptOrPublish); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.ensureDefaultAccount(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.boot, err = bootstrap.Bootstrap(ctx, bootstrap.Options{Dir: cfg.DataDir, Hostname: cfg.Hostname, ExtraNames: cfg.ExtraNames,
		AdminAccount: DefaultAccount, Keys: adminKeys{s.Store}, Now: cfg.Now})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	s.engine = reeval.New(vulnStore{ctx: context.WithoutCancel(ctx), db: s.VulnDB}, reeval.Config{Findings: cfg.Lifecycle})
	s.registry = prometheus.NewRegistry()
	if s.webhookMetrics, err = events.NewMetrics(s.registry); err != nil {
		s.Close()
		return nil, err
	}
	s.router = api.New(api.Config{
		Auth:     &auth.Authenticator{Store: keyStore{s.Store}, Now: cfg.Now},
		Org:      orgDirectory{s.Store},
		Logger:   cfg.Logger,
		Auditor:  s.audit,
		Metrics:  s.registry,
		Gatherer: s.registry,
		Now:      cfg.Now,
	})
	agentStore, err := agents.NewSQL(ctx, s.Store.DB(), s.Store.Dialect())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("agent storage: %w", err)
	}
	s.Agents, err = agents.New(agents.Config{Storage: agentStore, Fleet: s.Store, CA: s.boot.CA, CAKey: s.boot.CAKey,
		Sink: agents.SinkFunc(func(ctx context.Context, r model.Resource, inv *model.Inventory) error {
			_, err := s.Submit(ctx, r, inv)
			return err
		}), Authorize: s.router.Authorize, ReleasesDir: filepath.Join(cfg.DataDir, "releases"),
		Lifecycle: cfg.Lifecycle, Logger: cfg.Logger, Now: cfg.Now})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.routes()
	if s.dbVersion, err = s.VulnDB.Version(ctx); err != nil {
		s.Close()
		return nil, err
	}
	// The stored findings reflect the vulnerability database version last applied. When the
	// database changed while no server ran, the engine starts empty at that version: the first
	// feed pass (the poll job, or the next submission's catch-up) finds every stored resource
	// unknown to the engine and evaluates it afresh from the store, writing only the differences.
	// Otherwise the engine restores the stored inventories without evaluating anything.
	applied, ok, err := s.Store.State(ctx, stateFindingsVersion)
	if err != nil {
		s.Close()
		return nil, err
	}
	if ok && vulndb.Version(applied) != s.dbVersion {
		s.log.Info("the vulnerability database changed while the server was down; the fleet is re-evaluated on the first feed pass",
			"applied", applied, "current", s.dbVersion)
		s.dbVersion = vulndb.Version(applied)
		return s, nil
	}
	if err := s.loadFleet(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.engineSynced.Store(true)
	return s, nil
}

func (s *Server) ensureDefaultAccount(ctx context.Context) error {
	if _, err := s.Store.GetAccount(ctx, DefaultAccount); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.Store.PutAccount(ctx, model.Account{ID: DefaultAccount, Name: "Default", Role: model.AccountStandalone,
		Enabled: []string{model.ScanPackage}, CreatedAt: s.now().UTC()})
}

// AdminKey is the administrator key created at first start ("" on later starts): print it once.
func (s *Server) AdminKey() string { return s.boot.AdminKey }

// CAFingerprint is the SHA-256 fingerprint of the server's CA, which clients and agents pin.
func (s *Server) CAFingerprint() string { return s.boot.CAFingerprint }

// CAFile is the PEM file of the server's CA.
func (s *Server) CAFile() string { return filepath.Join(s.cfg.DataDir, "tls", "ca.pem") }

// Handler serves the API.
func (s *Server) Handler() http.Handler { return s.router }

// TLSConfig is the server's TLS configuration (TLS 1.3, the bootstrapped certificate).
func (s *Server) TLSConfig() *tls.Config { return s.boot.TLSConfig() }

// Serve serves HTTPS on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.router, TLSConfig: s.TLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	go s.renewDaily(ctx)
	bgCtx, stopBG := context.WithCancel(ctx)
	bg := make(chan struct{})
	go func() { s.RunBackground(bgCtx); close(bg) }()
	// The jobs in hand are abandoned, not failed: their leases expire and another process (or this
	// one, restarted) runs them again.
	defer func() { stopBG(); <-bg }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	case err := <-errc:
		return err
	}
}

// renewDaily reissues the server certificate when it nears expiry, without a restart.
func (s *Server) renewDaily(ctx context.Context) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.boot.Renew(s.now()); err != nil {
				s.log.Error("renewing the server certificate", "error", err)
			}
		}
	}
}

// Close releases the databases.
func (s *Server) Close() error {
	s.submitMu.Lock()
	s.dropShared() // its watcher finds nothing to watch and stops
	s.submitMu.Unlock()
	if s.obs.stop != nil {
		close(s.obs.stop)
		<-s.obs.done // the pending observations are written
		s.obs.stop = nil
	}
	var errs []error
	if s.VulnDB != nil {
		errs = append(errs, s.VulnDB.Close())
	}
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
	}
	return errors.Join(errs...)
}

// vulnStore adapts the vulnerability database to the matcher: the in-memory index, which a
// long-running server amortises, and the light enrichment query.
type vulnStore struct {
	ctx context.Context
	db  *vulndb.DB
}

func (v vulnStore) Advisories(eco, name string) ([]model.Advisory, error) {
	return v.db.Lookup(v.ctx, eco, name)
}

func (v vulnStore) Vulnerability(id string) (*model.Vulnerability, error) {
	e, err := v.db.Enrichments(v.ctx, id)
	if err != nil || e == nil {
		return nil, err
	}
	return &model.Vulnerability{ID: e.ID, Description: e.Description, CVSS: e.CVSS, CWEs: e.CWEs, References: e.References,
		Published: e.Published, Modified: e.Modified, EPSS: e.EPSS, KEV: e.KEV}, nil
}

var _ match.Store = vulnStore{}
