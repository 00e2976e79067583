package runner

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/agenttest"
	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/collect"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/state"
	"github.com/vigil-sec/vigil/agent/update"
	"github.com/vigil-sec/vigil/model"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// host is a fake host whose packages tests change.
type host struct{ pkgs []model.Package }

func deb(name, version string) model.Package {
	return model.Package{Name: name, Version: version, Ecosystem: "Debian:12", Arch: "amd64",
		PURL: "pkg:deb/debian/" + name + "@" + version + "?arch=amd64&distro=debian-12", Locations: []string{"/var/lib/dpkg/status"}, Extractor: "dpkg"}
}

func (h *host) collect(_ context.Context, sensors, _ []string) (*collect.Snapshot, error) {
	inv := &model.Inventory{OS: &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}, Packages: slices.Clone(h.pkgs)}
	return &collect.Snapshot{Inventory: inv, Facts: &protocol.Facts{Hostname: "web-01", KernelVersion: "6.1.0-26-amd64"}}, nil
}

// enrolled returns a runner enrolled with srv over real mTLS.
func enrolled(t *testing.T, srv *agenttest.Server, h *host) *Runner {
	t.Helper()
	return enrolledAt(t, srv.URL, srv.Fingerprint, agenttest.Token, h)
}

// enrolledAt returns a runner enrolled with the server at url with token over real mTLS.
func enrolledAt(t *testing.T, url, fingerprint, token string, h *host) *Runner {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := client.NewKey()
	csr, _ := client.CSR(key, "web-01")
	resp, ca, err := client.Enroll(context.Background(), url, fingerprint, &protocol.EnrollRequest{Token: token, CSR: csr, Hostname: "web-01", Version: "1.3.0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveIdentity(key, []byte(resp.Certificate)); err != nil {
		t.Fatal(err)
	}
	cert, _ := client.ParseCert([]byte(resp.Certificate))
	pair, err := st.LoadPair()
	if err != nil {
		t.Fatal(err)
	}
	var cp atomic.Pointer[tls.Certificate]
	cp.Store(pair)
	api, err := client.New(url, ca, func() (*tls.Certificate, error) { return cp.Load(), nil })
	if err != nil {
		t.Fatal(err)
	}
	cfg := &state.Config{Server: url, AgentID: resp.AgentID, HeartbeatSeconds: 60, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
	return &Runner{State: st, Config: cfg, API: api, Collect: h.collect, Version: "1.3.0",
		Clock: &fakeClock{t: time.Now()}, Rand: func() float64 { return 0.5 }, Cert: &cp, OnRenew: api.CloseIdle}
}

func TestUploadsFullThenDelta(t *testing.T) {
	srv := agenttest.New(t)
	h := &host{pkgs: []model.Package{deb("bash", "5.2.15-2+b7"), deb("openssl", "3.0.15-1~deb12u1"), deb("curl", "7.88.1-10+deb12u8")}}
	r := enrolled(t, srv, h)
	ctx := context.Background()
	step := func() {
		t.Helper()
		if err := r.CollectAndStore(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if r.State.Exists(state.PendingFile) {
			t.Error("pending upload left after acknowledgement")
		}
	}
	step()
	h.pkgs[1] = deb("openssl", "3.0.16-1~deb12u1") // a security upgrade
	h.pkgs = append(h.pkgs, deb("nginx", "1.22.1-9"))
	step()
	step() // unchanged

	var ups []protocol.Upload
	var sizes []int
	srv.Lock(func(s *agenttest.Server) { ups, sizes = slices.Clone(s.Uploads), slices.Clone(s.UploadBytes) })
	if len(ups) != 3 {
		t.Fatalf("%d uploads", len(ups))
	}
	if ups[0].Full == nil || len(ups[0].Full.Packages) != 3 || ups[0].Facts == nil {
		t.Errorf("first upload not full: %+v", ups[0])
	}
	if ups[1].Full != nil || ups[1].BaseHash != ups[0].Hash || len(ups[1].Added) != 2 || len(ups[1].Removed) != 1 || ups[1].Facts != nil {
		t.Errorf("second upload not a delta: %+v", ups[1])
	}
	if ups[2].Full != nil || ups[2].Hash != ups[2].BaseHash || len(ups[2].Added)+len(ups[2].Removed) != 0 {
		t.Errorf("unchanged upload: %+v", ups[2])
	}
	if sizes[2] > 1024 {
		t.Errorf("an unchanged upload is %d bytes on the wire", sizes[2])
	}
	t.Logf("wire sizes: full %d B, delta %d B, unchanged %d B", sizes[0], sizes[1], sizes[2])
	want := []string{"bash=5.2.15-2+b7", "curl=7.88.1-10+deb12u8", "nginx=1.22.1-9", "openssl=3.0.16-1~deb12u1"}
	if got := srv.Names(r.Config.AgentID); !slices.Equal(got, want) {
		t.Errorf("server holds %v", got)
	}
}

func TestNeedFull(t *testing.T) {
	srv := agenttest.New(t)
	h := &host{pkgs: []model.Package{deb("bash", "5.2.15-2+b7")}}
	r := enrolled(t, srv, h)
	ctx := context.Background()
	// The agent believes the server holds an inventory it never received (the server was restored
	// from a backup): its delta names an unknown base, and the server asks for the full inventory.
	if err := r.State.SaveAcked(&state.Acked{Hash: "sha256:0000", OSHash: jsonHash(&model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"})}); err != nil {
		t.Fatal(err)
	}
	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var ups []protocol.Upload
	srv.Lock(func(s *agenttest.Server) { ups = slices.Clone(s.Uploads) })
	if len(ups) != 2 || ups[0].Full != nil || ups[0].BaseHash != "sha256:0000" || ups[1].Full == nil {
		t.Fatalf("uploads %+v", ups)
	}
	a, _ := r.State.LoadAcked()
	if a.Hash != ups[1].Hash {
		t.Errorf("acked %s, sent %s", a.Hash, ups[1].Hash)
	}
}

func TestWireOSChangeIsFull(t *testing.T) {
	p := &protocol.Upload{Hash: "h2", Full: &model.Inventory{OS: &model.OS{Family: "debian", VersionID: "13", Ecosystem: "Debian:13"}}}
	acked := &state.Acked{Hash: "h1", OSHash: jsonHash(&model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"})}
	if w := Wire(p, acked, false); w.Full == nil {
		t.Error("an OS upgrade was sent as a delta")
	}
}

// flaky is an API whose uploads fail while down.
type flaky struct {
	API
	down    bool
	uploads [][]byte
}

func (f *flaky) Upload(ctx context.Context, gz []byte) (*protocol.UploadResponse, error) {
	if f.down {
		return nil, errors.New("dial tcp 203.0.113.10:8443: connect: connection refused")
	}
	f.uploads = append(f.uploads, gz)
	return f.API.Upload(ctx, gz)
}

func TestOfflineQueueAndBackoff(t *testing.T) {
	srv := agenttest.New(t)
	h := &host{pkgs: []model.Package{deb("bash", "5.2.15-2+b7")}}
	r := enrolled(t, srv, h)
	api := &flaky{API: r.API, down: true}
	r.API = api
	clk := r.Clock.(*fakeClock)
	ctx := context.Background()

	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	for i := 0; i < 4; i++ {
		if err := r.Flush(ctx); err == nil {
			t.Fatal("upload succeeded while the server is down")
		}
		waits = append(waits, r.nextTry.Sub(clk.Now()))
		// Before the backoff elapses nothing is tried.
		if err := r.Flush(ctx); !errors.Is(err, errWaiting) {
			t.Fatalf("retry before the backoff: %v", err)
		}
		clk.Advance(waits[i])
	}
	// Rand is 0.5: 3/4 of 5 s, 10 s, 20 s, 40 s.
	want := []time.Duration{3750 * time.Millisecond, 7500 * time.Millisecond, 15 * time.Second, 30 * time.Second}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if !r.State.Exists(state.PendingFile) {
		t.Fatal("the pending upload is not on disk")
	}
	if errs := r.errors(); len(errs) == 0 || !strings.HasPrefix(errs[0], "upload:") {
		t.Errorf("heartbeat errors %v", errs)
	}
	// The host changes during the outage; a restart of the agent loses nothing.
	h.pkgs = append(h.pkgs, deb("openssl", "3.0.15-1~deb12u1"))
	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	// A restarted agent: a new runner over the same state directory.
	r2 := &Runner{State: r.State, Config: r.Config, API: api, Collect: h.collect, Version: r.Version, Clock: clk}
	api.down = false
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(api.uploads) != 1 {
		t.Errorf("%d uploads after the outage, want 1 (only the newest)", len(api.uploads))
	}
	if got := srv.Names(r.Config.AgentID); !slices.Equal(got, []string{"bash=5.2.15-2+b7", "openssl=3.0.15-1~deb12u1"}) {
		t.Errorf("server holds %v", got)
	}
	if len(r2.errors()) != 0 {
		t.Errorf("errors after recovery: %v", r2.errors())
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0, 2500 * time.Millisecond},
		{1, 0.999999999, 5 * time.Second},
		{2, 0, 5 * time.Second},
		{5, 0, 40 * time.Second},
		{8, 0, 5 * time.Minute}, // 5 s·2^7 = 640 s, capped at 600 s
		{1000, 0, 5 * time.Minute},
		{0, 0, 2500 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := Backoff(tc.attempt, tc.r); got.Round(time.Millisecond) != tc.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
}

func TestNeedRenew(t *testing.T) {
	nb := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(9 * 24 * time.Hour) // 2/3 of it is day 6
	tests := []struct {
		name        string
		now, before time.Time
		want        bool
	}{
		{"fresh", nb.Add(24 * time.Hour), time.Time{}, false},
		{"just before 2/3", nb.Add(6*24*time.Hour - time.Minute), time.Time{}, false},
		{"at 2/3", nb.Add(6 * 24 * time.Hour), time.Time{}, true},
		{"server says so", nb.Add(time.Hour), na.Add(time.Hour), true},
		{"server's bound earlier than expiry", nb.Add(time.Hour), na.Add(-time.Hour), false},
	}
	for _, tc := range tests {
		if got := NeedRenew(tc.now, nb, na, tc.before); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	if NeedRenew(nb, time.Time{}, time.Time{}, time.Time{}) {
		t.Error("no certificate: renew")
	}
}

func TestRenewThroughHeartbeat(t *testing.T) {
	srv := agenttest.New(t)
	r := enrolled(t, srv, &host{})
	oldDER := r.Cert.Load().Certificate[0]
	srv.Lock(func(s *agenttest.Server) { s.RenewBefore = time.Now().Add(365 * 24 * time.Hour) })
	if err := r.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Lock(func(s *agenttest.Server) { s.RenewBefore = time.Time{} })
	if string(r.Cert.Load().Certificate[0]) == string(oldDER) {
		t.Fatal("certificate not renewed")
	}
	pair, err := r.State.LoadPair()
	if err != nil || string(pair.Certificate[0]) != string(r.Cert.Load().Certificate[0]) {
		t.Fatalf("stored identity: %v", err)
	}
	// The new certificate works.
	if err := r.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	srv.Lock(func(s *agenttest.Server) { n = s.Renewals })
	if n != 1 {
		t.Errorf("%d renewals", n)
	}
}

// The release key of the tests (fixed seed).
var relPriv = ed25519.NewKeyFromSeed([]byte("vigil-agent-test-release-key-32b"))

func TestInstructions(t *testing.T) {
	srv := agenttest.New(t)
	newBin := []byte("\x7fELF vigil-agent 1.4.0")
	sha, sig := update.Sign(newBin, relPriv)
	_, badSig := update.Sign(newBin, ed25519.NewKeyFromSeed([]byte("some-other-key-that-is-not-ours!")))
	tampered := append(slices.Clone(newBin), '!')
	srv.Lock(func(s *agenttest.Server) {
		s.Releases["1.4.0"] = agenttest.Release{Body: newBin, SHA: sha, Sig: sig}
		s.Releases["1.4.1"] = agenttest.Release{Body: tampered, SHA: sha, Sig: sig}
		s.Releases["1.4.2"] = agenttest.Release{Body: newBin, SHA: sha}
		s.Releases["1.4.3"] = agenttest.Release{Body: newBin, SHA: sha, Sig: badSig}
	})
	pub := base64.StdEncoding.EncodeToString(relPriv.Public().(ed25519.PublicKey))

	tests := []struct {
		name      string
		in        protocol.Instruction
		noKey     bool
		ok        bool
		errText   string
		check     func(t *testing.T, r *Runner)
		triggered bool
		exec      bool
	}{
		{name: "enable sensor with paths", in: protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorLangPackages, Paths: []string{"/srv/app", "/opt/tools"}}, ok: true, triggered: true,
			check: func(t *testing.T, r *Runner) {
				if !slices.Equal(r.Config.ExtraPaths, []string{"/srv/app", "/opt/tools"}) {
					t.Errorf("paths %v", r.Config.ExtraPaths)
				}
			}},
		{name: "disable sensor", in: protocol.Instruction{Type: protocol.InstructionDisableSensor, Sensor: protocol.SensorPorts}, ok: true, triggered: true,
			check: func(t *testing.T, r *Runner) {
				if slices.Contains(r.Config.Sensors, protocol.SensorPorts) || !slices.Contains(r.Config.Sensors, protocol.SensorOSPackages) {
					t.Errorf("sensors %v", r.Config.Sensors)
				}
				saved, _ := r.State.LoadConfig()
				if slices.Contains(saved.Sensors, protocol.SensorPorts) {
					t.Error("not saved")
				}
			}},
		{name: "unknown sensor", in: protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: "keylogger"}, errText: "unknown sensor"},
		{name: "relative path", in: protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorLangPackages, Paths: []string{"srv/app"}}, errText: "not absolute"},
		{name: "traversing path", in: protocol.Instruction{Type: protocol.InstructionEnableSensor, Sensor: protocol.SensorLangPackages, Paths: []string{"/srv/../etc"}}, errText: "not clean"},
		{name: "set interval", in: protocol.Instruction{Type: protocol.InstructionSetInterval, IntervalSeconds: 3600}, ok: true,
			check: func(t *testing.T, r *Runner) {
				if r.interval() != time.Hour {
					t.Errorf("interval %v", r.interval())
				}
			}},
		{name: "interval too short", in: protocol.Instruction{Type: protocol.InstructionSetInterval, IntervalSeconds: 5}, errText: "outside"},
		{name: "collect now", in: protocol.Instruction{Type: protocol.InstructionCollectNow}, ok: true, triggered: true},
		{name: "update", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "1.4.0"}, ok: true, exec: true,
			check: func(t *testing.T, r *Runner) {
				if b, _ := os.ReadFile(r.Exe); string(b) != string(newBin) {
					t.Errorf("exe holds %q", b)
				}
				if !r.State.Exists(UpdateMarker) {
					t.Error("no pending-update marker")
				}
			}},
		{name: "update to the running version", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "1.3.0"}, ok: true},
		{name: "tampered release", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "1.4.1"}, errText: "does not match its SHA-256"},
		{name: "unsigned release", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "1.4.2"}, errText: "unsigned"},
		{name: "release signed by another key", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "1.4.3"}, errText: "signature does not verify"},
		{name: "no release key pinned", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "1.4.0"}, noKey: true, errText: "no release key"},
		{name: "missing release", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "9.9.9"}, errText: "404"},
		{name: "traversing version", in: protocol.Instruction{Type: protocol.InstructionUpdate, Version: "../../admin"}, errText: "bad release version"},
		{name: "unknown type", in: protocol.Instruction{Type: "RUN_COMMAND", Version: "rm -rf /"}, errText: "unknown instruction type"},
		{name: "lower-case type", in: protocol.Instruction{Type: "collect_now"}, errText: "unknown instruction type"},
		{name: "empty type", in: protocol.Instruction{}, errText: "unknown instruction type"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := enrolled(t, srv, &host{})
			r.Config.ReleaseKey = pub
			if tc.noKey {
				r.Config.ReleaseKey = ""
			}
			r.Exe = filepath.Join(t.TempDir(), "vigil-agent")
			if err := os.WriteFile(r.Exe, []byte("old binary"), 0o755); err != nil {
				t.Fatal(err)
			}
			r.HealthCheck = func(_ context.Context, exe string) error {
				b, _ := os.ReadFile(exe)
				if string(b) != string(newBin) {
					return errors.New("not the new binary")
				}
				return r.State.Write(state.HealthyFile, []byte("1.4.0\n"), 0o600)
			}
			execed := 0
			r.Exec = func(string) error { execed++; return nil }
			r.init()

			tc.in.ID = "ins-" + strings.Repeat("x", i%3) + string(rune('a'+i))
			srv.Lock(func(s *agenttest.Server) { s.Pending = []protocol.Instruction{tc.in} })
			if err := r.Heartbeat(context.Background()); err != nil {
				t.Fatal(err)
			}
			var res protocol.InstructionResult
			var found bool
			srv.Lock(func(s *agenttest.Server) { res, found = s.Results[tc.in.ID] })
			if !found {
				t.Fatal("no result reported")
			}
			if res.OK != tc.ok || !strings.Contains(res.Error, tc.errText) {
				t.Errorf("result %+v, want ok=%v error containing %q", res, tc.ok, tc.errText)
			}
			select {
			case <-r.collectNow:
				if !tc.triggered {
					t.Error("collection triggered")
				}
			default:
				if tc.triggered {
					t.Error("collection not triggered")
				}
			}
			if (r.execAfter != "") != tc.exec || execed != 0 {
				t.Errorf("execAfter %q, exec called %d times during Handle", r.execAfter, execed)
			}
			if !tc.exec {
				if b, _ := os.ReadFile(r.Exe); string(b) != "old binary" {
					t.Errorf("binary changed to %q", b)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestUpdateHealthCheckFailsRollsBack(t *testing.T) {
	srv := agenttest.New(t)
	newBin := []byte("\x7fELF broken 1.4.0")
	sha, sig := update.Sign(newBin, relPriv)
	srv.Lock(func(s *agenttest.Server) { s.Releases["1.4.0"] = agenttest.Release{Body: newBin, SHA: sha, Sig: sig} })
	r := enrolled(t, srv, &host{})
	r.Config.ReleaseKey = base64.StdEncoding.EncodeToString(relPriv.Public().(ed25519.PublicKey))
	r.Exe = filepath.Join(t.TempDir(), "vigil-agent")
	os.WriteFile(r.Exe, []byte("old binary"), 0o755)
	r.HealthCheck = func(context.Context, string) error { return errors.New("exit status 1") }
	r.Exec = func(string) error { t.Error("exec after a failed health check"); return nil }
	res := r.Handle(context.Background(), protocol.Instruction{ID: "u1", Type: protocol.InstructionUpdate, Version: "1.4.0"})
	if res.OK || !strings.Contains(res.Error, "previous binary restored") {
		t.Errorf("result %+v", res)
	}
	if b, _ := os.ReadFile(r.Exe); string(b) != "old binary" {
		t.Errorf("exe holds %q", b)
	}
	if r.execAfter != "" || r.State.Exists(UpdateMarker) {
		t.Error("update left pending")
	}
}

func TestHeartbeatCarriesState(t *testing.T) {
	srv := agenttest.New(t)
	r := enrolled(t, srv, &host{pkgs: []model.Package{deb("bash", "5.2.15-2+b7")}})
	srv.Lock(func(s *agenttest.Server) { s.HeartbeatSec = 120 })
	ctx := context.Background()
	if err := r.CollectAndStore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	var hb protocol.Heartbeat
	srv.Lock(func(s *agenttest.Server) { hb = s.Heartbeats[len(s.Heartbeats)-1] })
	a, _ := r.State.LoadAcked()
	if hb.State != protocol.StateRunning || hb.InventoryHash != a.Hash || hb.Version != "1.3.0" || len(hb.Sensors) != 4 {
		t.Errorf("heartbeat %+v", hb)
	}
	if r.heartbeatPeriod() != 2*time.Minute {
		t.Errorf("period %v", r.heartbeatPeriod())
	}
}

func TestShutdownHeartbeat(t *testing.T) {
	srv := agenttest.New(t)
	r := enrolled(t, srv, &host{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx, func() bool { return true }) }()
	// Wait for the first heartbeat, then stop as the host does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		srv.Lock(func(s *agenttest.Server) { n = len(s.Heartbeats) })
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var last protocol.Heartbeat
	srv.Lock(func(s *agenttest.Server) { last = s.Heartbeats[len(s.Heartbeats)-1] })
	if last.State != protocol.StateShutdown {
		t.Errorf("last heartbeat %+v", last)
	}
}

func FuzzDecodeHeartbeatResponse(f *testing.F) {
	f.Add([]byte(`{"heartbeatSeconds":60,"instructions":[{"id":"i-1","type":"COLLECT_NOW"}]}`))
	f.Add([]byte(`{"instructions":[{"id":"i-2","type":"ENABLE_SENSOR","sensor":"language-packages","paths":["/srv/app"]}],"renewBefore":"2026-12-01T00:00:00Z"}`))
	f.Add([]byte(`{"instructions":[{"id":"i-3","type":"UPDATE","version":"1.4.0"},{"id":"x","type":"RUN_COMMAND","command":"id"}]}`))
	f.Add([]byte(`{"instructions":[{"id":"i-4","type":"SET_INTERVAL","intervalSeconds":3600}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := DecodeHeartbeatResponse(b)
		if err != nil {
			return
		}
		if len(resp.Instructions) > maxInstrPerHB {
			t.Fatal("too many instructions kept")
		}
		for _, in := range resp.Instructions {
			if Validate(in) != nil {
				continue
			}
			switch in.Type {
			case protocol.InstructionEnableSensor, protocol.InstructionDisableSensor, protocol.InstructionSetInterval,
				protocol.InstructionCollectNow, protocol.InstructionUpdate:
			default:
				t.Fatalf("accepted type %q", in.Type)
			}
			if in.Type == protocol.InstructionUpdate && (strings.Contains(in.Version, "/") || strings.Contains(in.Version, "..") && len(in.Version) <= 2) {
				t.Fatalf("accepted version %q", in.Version)
			}
			for _, p := range in.Paths {
				if !strings.HasPrefix(p, "/") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
					t.Fatalf("accepted path %q", p)
				}
			}
			sensors, paths := applySensor(in, collect.DefaultSensors, nil)
			for _, s := range sensors {
				if !collect.KnownSensor(s) {
					t.Fatalf("unknown sensor %q enabled", s)
				}
			}
			if len(paths) > maxExtraPaths {
				t.Fatalf("%d paths", len(paths))
			}
		}
	})
}

// TestWireSizesBookworm measures the uploads of a real root file system (the benchmark corpus's
// Debian 12 root): the full one, and an unchanged one, whose goal is at most 1 KB on the wire.
func TestWireSizesBookworm(t *testing.T) {
	root := "/root/vigil-bench/targets/rootfs-bookworm"
	if _, err := os.Stat(filepath.Join(root, "var/lib/dpkg/status")); err != nil {
		t.Skip("benchmark corpus not present")
	}
	srv := agenttest.New(t)
	r := enrolled(t, srv, &host{})
	r.Collect = func(ctx context.Context, sensors, paths []string) (*collect.Snapshot, error) {
		return (&collect.Collector{Root: root, Sensors: sensors, ExtraPaths: paths}).Collect(ctx)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := r.CollectAndStore(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	var n int
	srv.Lock(func(s *agenttest.Server) { sizes = slices.Clone(s.UploadBytes); n = len(s.Uploads[0].Full.Packages) })
	t.Logf("rootfs-bookworm: %d packages; full upload %d B, unchanged upload %d B (gzip JSON bodies)", n, sizes[0], sizes[1])
	if sizes[1] > 1024 {
		t.Errorf("unchanged upload is %d bytes", sizes[1])
	}
}
