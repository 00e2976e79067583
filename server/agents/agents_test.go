package agents

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/bootstrap"
)

func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

func TestEnrollHeartbeatInstructions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		e := h.enroll("web-1.example.com")
		if e.resp.Account != testAccount || e.resp.HeartbeatSeconds != 60 || e.resp.CA == "" {
			t.Fatalf("enroll response %+v", e.resp)
		}
		leaf := e.cert.Leaf
		if leaf == nil {
			var err error
			if leaf, err = x509.ParseCertificate(e.cert.Certificate[0]); err != nil {
				t.Fatal(err)
			}
		}
		if bootstrap.AgentID(leaf) != e.id || leaf.Subject.CommonName != e.id {
			t.Fatalf("certificate names %q/%q, want %s (the CSR's subject must be ignored)", bootstrap.AgentID(leaf), leaf.Subject.CommonName, e.id)
		}
		if d := leaf.NotAfter.Sub(h.clock.Now()); d < 6*24*time.Hour || d > 7*24*time.Hour+time.Minute {
			t.Fatalf("certificate validity %s, want 7 days", d)
		}
		res, err := h.fleet.GetResource(context.Background(), testAccount, e.id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Type != model.ResourceHost || res.Name != "web-1.example.com" || res.ScanMode != ScanModeAgent || res.Metadata["machineId"] == "" {
			t.Fatalf("host resource %+v", res)
		}
		if c := h.coverage(e.id); c.Reason != model.ReasonPendingInitialScan || c.Status != model.CoverageActive {
			t.Fatalf("coverage after enrollment %+v", c)
		}

		code, hb := h.heartbeat(e, protocol.StateRunning)
		if code != 200 || hb.HeartbeatSeconds != 60 || len(hb.Instructions) != 0 || !hb.RenewBefore.After(h.clock.Now()) {
			t.Fatalf("heartbeat %d %+v", code, hb)
		}
		ctx := context.Background()
		q1, err := h.svc.QueueInstruction(ctx, testAccount, e.id, protocol.Instruction{Type: protocol.InstructionCollectNow})
		if err != nil {
			t.Fatal(err)
		}
		h.clock.Add(time.Millisecond)
		q2, err := h.svc.QueueInstruction(ctx, testAccount, e.id, protocol.Instruction{Type: protocol.InstructionEnableSensor,
			Sensor: protocol.SensorLangPackages, Paths: []string{"/opt/app"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.QueueInstruction(ctx, "other", e.id, protocol.Instruction{Type: protocol.InstructionCollectNow}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("queue for another account's agent: %v", err)
		}
		_, hb = h.heartbeat(e, protocol.StateRunning)
		if len(hb.Instructions) != 2 || hb.Instructions[0].ID != q1.ID || hb.Instructions[1].Paths[0] != "/opt/app" {
			t.Fatalf("instructions %+v", hb.Instructions)
		}
		// Delivered once; sent again only when no result came within RedeliverAfter.
		if _, hb = h.heartbeat(e, protocol.StateRunning); len(hb.Instructions) != 0 {
			t.Fatalf("redelivered at once: %+v", hb.Instructions)
		}
		if code := h.do(e.client, "POST", protocol.PathInstructions+q1.ID, protocol.InstructionResult{OK: true}, nil); code != http.StatusNoContent {
			t.Fatalf("result: %d", code)
		}
		if code := h.do(e.client, "POST", protocol.PathInstructions+"ins-nope", protocol.InstructionResult{OK: true}, nil); code != http.StatusNotFound {
			t.Fatalf("result for unknown instruction: %d", code)
		}
		h.clock.Add(DefaultRedeliverAfter + time.Second)
		_, hb = h.heartbeat(e, protocol.StateRunning)
		if len(hb.Instructions) != 1 || hb.Instructions[0].ID != q2.ID {
			t.Fatalf("redelivery %+v", hb.Instructions)
		}
		h.do(e.client, "POST", protocol.PathInstructions+q2.ID, protocol.InstructionResult{OK: false, Error: "path /opt/app does not exist"}, nil)
		list, err := h.st.ListInstructions(ctx, testAccount, e.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Status != InstructionSucceeded || list[1].Status != InstructionFailed || list[1].Attempts != 2 ||
			list[1].Error != "path /opt/app does not exist" {
			t.Fatalf("instruction records %+v", list)
		}
		// Per-agent heartbeat period.
		if err := h.svc.SetHeartbeatSeconds(ctx, testAccount, e.id, 30); err != nil {
			t.Fatal(err)
		}
		if _, hb = h.heartbeat(e, protocol.StateRunning); hb.HeartbeatSeconds != 30 {
			t.Fatalf("per-agent heartbeat %d", hb.HeartbeatSeconds)
		}
		agents, err := h.svc.ListAgents(ctx, testAccount)
		if err != nil {
			t.Fatal(err)
		}
		if len(agents) != 1 || agents[0].PingStatus != PingOnline || agents[0].Version != "0.3.0" ||
			!slices.Equal(agents[0].Sensors, []string{protocol.SensorPorts, protocol.SensorOSPackages}) {
			t.Fatalf("agents %+v", agents)
		}
	})
}

func TestTokenRefusals(t *testing.T) {
	h := newHarness(t, "sqlite")
	ctx := context.Background()
	good := h.token(1, time.Hour)
	wrongSecret := good[:len(good)-4] + "AAAA"
	revokedTok, revokedSecret, err := h.svc.CreateToken(ctx, TokenSpec{Account: testAccount, MaxUses: 5, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.RevokeToken(ctx, testAccount, revokedTok.ID); err != nil {
		t.Fatal(err)
	}
	short := h.token(5, time.Minute)
	for _, tc := range []struct{ name, token string }{
		{"empty-format", "not-a-token"},
		{"unknown id", "vjt_0123456789abcdef_secret"},
		{"wrong secret", wrongSecret},
		{"revoked", revokedSecret},
	} {
		if code, _ := h.enrollWith(tc.token, "h"); code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", tc.name, code)
		}
	}
	// A wrong secret burns no use of the real token.
	if code, _ := h.enrollWith(good, "h1"); code != 200 {
		t.Fatalf("good token: %d", code)
	}
	if code, _ := h.enrollWith(good, "h2"); code != http.StatusUnauthorized {
		t.Fatalf("token past its use limit: %d", code)
	}
	h.clock.Add(2 * time.Minute)
	if code, _ := h.enrollWith(short, "h3"); code != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", code)
	}
	// A bad CSR is refused before the token is consumed.
	bad := h.token(1, time.Hour)
	if code := h.do(h.client(nil), "POST", protocol.PathEnroll, protocol.EnrollRequest{Token: bad, CSR: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", Hostname: "h"}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad CSR: %d", code)
	}
	if code, _ := h.enrollWith(bad, "h4"); code != 200 {
		t.Fatalf("token after a refused CSR: %d", code)
	}
	toks, err := h.st.ListTokens(ctx, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 4 {
		t.Fatalf("tokens %d", len(toks))
	}
}

// Racing enrollments take at most MaxUses uses, on every backend.
func TestTokenUseLimitUnderRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		tok := h.token(3, time.Hour)
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key, csr := newKeyCSR(t)
				_ = key
				code := h.do(h.client(nil), "POST", protocol.PathEnroll, protocol.EnrollRequest{Token: tok, CSR: csr, Hostname: "race"}, nil)
				switch code {
				case 200:
					ok.Add(1)
				case 401:
					refused.Add(1)
				default:
					t.Errorf("enrollment %d: status %d", i, code)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 3 || refused.Load() != 5 {
			t.Fatalf("%d enrolled, %d refused; want 3 and 5", ok.Load(), refused.Load())
		}
	})
}

func TestValidateInstruction(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   protocol.Instruction
		ok   bool
	}{
		{"collect", protocol.Instruction{Type: protocol.InstructionCollectNow}, true},
		{"enable ports", protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorPorts}, true},
		{"enable lang paths", protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorLangPackages, Paths: []string{"/srv/app", "/opt"}}, true},
		{"disable", protocol.Instruction{Type: protocol.InstructionDisableSensor, Sensor: protocol.SensorHostFacts}, true},
		{"interval", protocol.Instruction{Type: protocol.InstructionSetInterval, IntervalSeconds: 1800}, true},
		{"update", protocol.Instruction{Type: protocol.InstructionUpdate, Version: "0.4.0"}, true},
		{"update prerelease", protocol.Instruction{Type: protocol.InstructionUpdate, Version: "v1.2.3-rc.1"}, true},
		{"shell", protocol.Instruction{Type: "RUN_COMMAND"}, false},
		{"empty type", protocol.Instruction{}, false},
		{"lowercase type", protocol.Instruction{Type: "collect_now"}, false},
		{"unknown sensor", protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: "keylogger"}, false},
		{"relative path", protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorLangPackages, Paths: []string{"opt/app"}}, false},
		{"dotdot path", protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorLangPackages, Paths: []string{"/opt/../etc"}}, false},
		{"paths on ports", protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorPorts, Paths: []string{"/opt"}}, false},
		{"interval too short", protocol.Instruction{Type: protocol.InstructionSetInterval, IntervalSeconds: 5}, false},
		{"interval with version", protocol.Instruction{Type: protocol.InstructionSetInterval, IntervalSeconds: 600, Version: "1.0.0"}, false},
		{"collect with sensor", protocol.Instruction{Type: protocol.InstructionCollectNow, Sensor: protocol.SensorPorts}, false},
		{"update no version", protocol.Instruction{Type: protocol.InstructionUpdate}, false},
		{"update path version", protocol.Instruction{Type: protocol.InstructionUpdate, Version: "../../etc/passwd"}, false},
	} {
		if err := ValidateInstruction(tc.in); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestInvalidInstructionNotQueued(t *testing.T) {
	h := newHarness(t, "memory")
	e := h.enroll("db-1")
	_, err := h.svc.QueueInstruction(context.Background(), testAccount, e.id, protocol.Instruction{Type: "EXEC", Version: "rm -rf /"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
	if list, _ := h.st.ListInstructions(context.Background(), testAccount, e.id); len(list) != 0 {
		t.Fatalf("queued %+v", list)
	}
	if _, hb := h.heartbeat(e, protocol.StateRunning); len(hb.Instructions) != 0 {
		t.Fatalf("delivered %+v", hb.Instructions)
	}
}

func TestAgentAuthentication(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		e := h.enroll("app-1")
		other := h.enroll("app-2")
		if code, _ := h.heartbeat(&enrolled{client: h.client(nil)}, protocol.StateRunning); code != http.StatusUnauthorized {
			t.Fatalf("no client certificate: %d", code)
		}
		// A certificate from another CA fails the handshake.
		foreign, err := bootstrap.Bootstrap(context.Background(), bootstrap.Options{Dir: t.TempDir(), Hostname: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		key, csr := newKeyCSR(t)
		fpem, err := bootstrap.IssueClientCert(foreign.CA, foreign.CAKey, bootstrap.ClientCertRequest{CSR: []byte(csr), AgentID: e.id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.client(tlsCert(t, string(fpem), key)).Post(h.srv.URL+protocol.PathHeartbeat, "application/json", nil); err == nil {
			t.Fatal("certificate of another CA accepted")
		}
		// A certificate of our CA that the agent does not hold (unknown serial) is refused.
		key2, csr2 := newKeyCSR(t)
		spem, err := bootstrap.IssueClientCert(h.boot.CA, h.boot.CAKey, bootstrap.ClientCertRequest{CSR: []byte(csr2), AgentID: e.id})
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := h.heartbeat(&enrolled{client: h.client(tlsCert(t, string(spem), key2))}, protocol.StateRunning); code != http.StatusUnauthorized {
			t.Fatalf("unknown serial: %d", code)
		}
		// Certificates already expired by the wall clock fail the handshake.
		key3, csr3 := newKeyCSR(t)
		epem, err := bootstrap.IssueClientCert(h.boot.CA, h.boot.CAKey, bootstrap.ClientCertRequest{CSR: []byte(csr3), AgentID: "agt-expired",
			Validity: time.Hour, Now: time.Now().Add(-48 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(epem)
		ec, _ := x509.ParseCertificate(blk.Bytes)
		if err := h.st.CreateAgent(context.Background(), Agent{ID: "agt-expired", Account: testAccount, Hostname: "x", EnrolledAt: h.clock.Now(),
			CertSerial: serialHex(ec), CertNotAfter: ec.NotAfter, State: protocol.StateRunning}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client(tlsCert(t, string(epem), key3)).Post(h.srv.URL+protocol.PathHeartbeat, "application/json", nil); err == nil {
			t.Fatal("expired certificate accepted")
		}
		// Expired by the service's clock: refused with 401.
		if code, _ := h.heartbeat(e, protocol.StateRunning); code != 200 {
			t.Fatalf("valid agent: %d", code)
		}
		// Revocation is immediate and answers 403; the other agent is unaffected.
		h.clock.Add(time.Second)
		if err := h.svc.RevokeAgent(context.Background(), testAccount, e.id); err != nil {
			t.Fatal(err)
		}
		if code, _ := h.heartbeat(e, protocol.StateRunning); code != http.StatusForbidden {
			t.Fatalf("revoked agent: %d", code)
		}
		if c := h.coverage(e.id); c.Reason != model.ReasonUnmanagedInstance {
			t.Fatalf("revoked agent's host coverage %+v", c)
		}
		if code, _ := h.heartbeat(other, protocol.StateRunning); code != 200 {
			t.Fatalf("other agent: %d", code)
		}
		if err := h.svc.RevokeAgent(context.Background(), "someone-else", other.id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke across accounts: %v", err)
		}
		h.clock.Add(7*24*time.Hour + time.Hour)
		if !h.refused(other.client) {
			t.Fatal("certificate expired at the service clock accepted")
		}
	})
}

func TestRenewal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		e := h.enroll("renew-1")
		h.clock.Add(4 * 24 * time.Hour)
		key, csr := newKeyCSR(t)
		var rr protocol.RenewResponse
		if code := h.do(e.client, "POST", protocol.PathRenew, protocol.RenewRequest{CSR: csr}, &rr); code != 200 {
			t.Fatalf("renew: %d", code)
		}
		if !rr.NotAfter.After(e.resp.NotAfter) {
			t.Fatalf("renewed certificate ends %s, before the old %s", rr.NotAfter, e.resp.NotAfter)
		}
		renewed := &enrolled{id: e.id, client: h.client(tlsCert(t, rr.Certificate, key))}
		if code, _ := h.heartbeat(renewed, protocol.StateRunning); code != 200 {
			t.Fatalf("heartbeat with renewed certificate: %d", code)
		}
		// The old certificate works until the next renewal (the answer may have been lost).
		if code, _ := h.heartbeat(e, protocol.StateRunning); code != 200 {
			t.Fatalf("heartbeat with previous certificate: %d", code)
		}
		_, csr2 := newKeyCSR(t)
		if code := h.do(renewed.client, "POST", protocol.PathRenew, protocol.RenewRequest{CSR: csr2}, nil); code != 200 {
			t.Fatalf("second renewal: %d", code)
		}
		if code, _ := h.heartbeat(e, protocol.StateRunning); code != http.StatusUnauthorized {
			t.Fatalf("certificate two renewals old: %d", code)
		}
		if code := h.do(renewed.client, "POST", protocol.PathRenew, protocol.RenewRequest{CSR: "garbage"}, nil); code != http.StatusUnprocessableEntity {
			t.Fatalf("bad CSR: %d", code)
		}
	})
}

// Routine heartbeats are written in batches: the store lags by at most the flush delay, the
// admin view never does, and a heartbeat that changes something is written at once.
func TestHeartbeatBatching(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			h := newHarness(t, backend, func(c *Config) { c.HeartbeatFlush = time.Hour })
			e := h.enroll("web-1")
			ctx := context.Background()
			stored := func() time.Time {
				a, err := h.st.GetAgent(ctx, e.id)
				if err != nil {
					t.Fatal(err)
				}
				return a.LastHeartbeat
			}
			// The first heartbeat sets version and sensors: written at once.
			if code, _ := h.heartbeat(e, protocol.StateRunning); code != 200 {
				t.Fatalf("heartbeat: %d", code)
			}
			t1 := h.clock.Now()
			if got := stored(); !got.Equal(t1) {
				t.Fatalf("first heartbeat stored at %s, want %s", got, t1)
			}
			// A routine one waits in memory...
			h.clock.Add(time.Minute)
			if code, _ := h.heartbeat(e, protocol.StateRunning); code != 200 {
				t.Fatalf("heartbeat: %d", code)
			}
			t2 := h.clock.Now()
			if got := stored(); !got.Equal(t1) {
				t.Fatalf("a routine heartbeat was written at once (%s)", got)
			}
			// ...but the admin view shows it (and writes it).
			views, err := h.svc.ListAgents(ctx, testAccount)
			if err != nil || len(views) != 1 || !views[0].LastHeartbeat.Equal(t2) {
				t.Fatalf("admin view %+v %v, want the heartbeat of %s", views, err, t2)
			}
			if got := stored(); !got.Equal(t2) {
				t.Fatalf("after the flush the store has %s, want %s", got, t2)
			}
			// A pending timestamp never moves a later direct write back.
			h.clock.Add(time.Minute)
			h.heartbeat(e, protocol.StateRunning) // routine: pending at t3
			t3 := h.clock.Now()
			h.clock.Add(time.Minute)
			if code, _ := h.heartbeat(e, protocol.StateShutdown); code != 200 { // a change: written at t4
				t.Fatalf("heartbeat: %d", code)
			}
			t4 := h.clock.Now()
			if err := h.svc.flushHeartbeats(ctx); err != nil {
				t.Fatal(err)
			}
			a, _ := h.st.GetAgent(ctx, e.id)
			if !a.LastHeartbeat.Equal(t4) || a.State != protocol.StateShutdown || t3.Equal(t4) {
				t.Fatalf("stored %s %s, want %s SHUTDOWN", a.LastHeartbeat, a.State, t4)
			}
		})
	}
}
