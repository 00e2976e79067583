package agenttest

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/agents"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/bootstrap"
	"github.com/vigil-sec/vigil/server/store"
)

// RealAccount is the account of a Real server's join tokens.
const RealAccount = "acme"

// RealOptions configures Real.
type RealOptions struct {
	// Enabled are the account's scan types (nil: "host").
	Enabled []string
	// Rate and Burst are the API router's rate limit (zero: its defaults, 50/s and a burst of 100,
	// keyed on the client address before enrollment and on the client certificate after).
	Rate  float64
	Burst int
	// Config adjusts the agents service's configuration before it starts.
	Config func(*agents.Config)
}

// RealServer is the real server side of the protocol: server/agents on a SQLite store, mounted
// on the API router (rate limit included) the way server/app mounts it, over TLS on loopback. The
// fake Server above is for what a test must steer; this one is for the real answers (refusals,
// upload admission, rate limits).
type RealServer struct {
	URL         string
	Fingerprint string
	Service     *agents.Service
	Fleet       *store.Store
	// Submitted counts the inventories that reached the sink (what would become findings).
	Submitted atomic.Int64
}

// Real starts a RealServer; it stops with the test.
func Real(t testing.TB, o RealOptions) *RealServer {
	t.Helper()
	ctx := context.Background()
	boot, err := bootstrap.Bootstrap(ctx, bootstrap.Options{Dir: t.TempDir(), Hostname: "localhost", ExtraNames: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "vigil.sqlite"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	if o.Enabled == nil {
		o.Enabled = []string{model.ResourceHost}
	}
	if err := fleet.PutAccount(ctx, model.Account{ID: RealAccount, Name: "Acme", Role: model.AccountStandalone, Enabled: o.Enabled}); err != nil {
		t.Fatal(err)
	}
	s := &RealServer{Fleet: fleet, Fingerprint: boot.CAFingerprint}
	cfg := agents.Config{Storage: agents.NewMemory(), Fleet: fleet, CA: boot.CA, CAKey: boot.CAKey,
		Sink: agents.SinkFunc(func(context.Context, model.Resource, *model.Inventory) error {
			s.Submitted.Add(1)
			return nil
		})}
	if o.Config != nil {
		o.Config(&cfg)
	}
	if s.Service, err = agents.New(cfg); err != nil {
		t.Fatal(err)
	}
	rt := api.New(api.Config{Rate: o.Rate, Burst: o.Burst})
	for _, r := range s.Service.AgentRoutes() {
		opts := []api.RouteOption{api.Public(), api.Doc(r.OperationID, r.Summary, "agent")}
		if r.BodyLimit > 0 {
			opts = append(opts, api.BodyLimit(r.BodyLimit))
		}
		rt.Handle(r.Pattern, r.Handler, opts...)
	}
	srv := httptest.NewUnstartedServer(rt)
	srv.TLS = boot.TLSConfig()
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Token returns a join token of RealAccount for uses enrollments.
func (s *RealServer) Token(t testing.TB, uses int) string {
	t.Helper()
	_, secret, err := s.Service.CreateToken(context.Background(), agents.TokenSpec{Account: RealAccount, Name: "test", MaxUses: uses, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// SetEnabled stores RealAccount's enabled scan types.
func (s *RealServer) SetEnabled(t testing.TB, types ...string) {
	t.Helper()
	a, err := s.Fleet.GetAccount(context.Background(), RealAccount)
	if err != nil {
		t.Fatal(err)
	}
	a.Enabled = types
	if err := s.Fleet.PutAccount(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// Coverage is the package-scan coverage of an agent's host.
func (s *RealServer) Coverage(t testing.TB, agentID string) model.Coverage {
	t.Helper()
	page, err := s.Fleet.ListCoverage(context.Background(), []string{RealAccount}, store.CoverageQuery{ResourceIDs: []string{agentID}, ScanTypes: []string{model.ScanPackage}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Coverage) != 1 {
		t.Fatalf("coverage of %s: %d rows", agentID, len(page.Coverage))
	}
	return page.Coverage[0]
}
