// Package runner is the agent's loop: heartbeats, the closed set of typed instructions, inventory
// collection (at start, every interval and soon after a package database changes), uploads that
// survive outages, certificate renewal and self-update.
package runner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/collect"
	"github.com/vigil-sec/vigil/agent/delta"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/state"
	"github.com/vigil-sec/vigil/agent/update"
	"github.com/vigil-sec/vigil/model"
)

// API is the server as the runner uses it (client.Client implements it).
type API interface {
	Heartbeat(ctx context.Context, hb *protocol.Heartbeat) (*protocol.HeartbeatResponse, error)
	Upload(ctx context.Context, gz []byte) (*protocol.UploadResponse, error)
	Report(ctx context.Context, id string, res *protocol.InstructionResult) error
	Renew(ctx context.Context, req *protocol.RenewRequest) (*protocol.RenewResponse, error)
	Release(ctx context.Context, version, goos, goarch string) (body []byte, sha, sig string, err error)
}

// Clock is time as the runner sees it; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// CollectFunc takes a snapshot with the given sensors and extra paths.
type CollectFunc func(ctx context.Context, sensors, extraPaths []string) (*collect.Snapshot, error)

// Runner holds the agent's running state. Its methods are called from one goroutine (Run's),
// except Trigger.
type Runner struct {
	State   *state.Dir
	Config  *state.Config
	API     API
	Collect CollectFunc
	Version string
	Log     *slog.Logger
	Clock   Clock
	// Rand returns jitter in [0,1); nil uses math/rand/v2.
	Rand func() float64
	// Exe is the agent's own binary (os.Executable), replaced by updates.
	Exe string
	// HealthCheck runs a new binary's health check (see update.Gate).
	HealthCheck update.HealthCheck
	// Exec replaces the process with exe (syscall.Exec in production).
	Exec func(exe string) error
	// Cert holds the client certificate the API presents; renewal swaps it.
	Cert *atomic.Pointer[tls.Certificate]
	// OnRenew is called after a renewal (to drop pooled connections).
	OnRenew func()
	// Watch lists the files whose change triggers a collection (see Watch); nil: none.
	Watch []string

	collectNow chan struct{}
	attempt    int
	nextTry    time.Time
	notEnabled bool // the last upload was refused: the account has not enabled host scanning
	mu         sync.Mutex
	errs       []string
	execAfter  string // set by a verified, installed, healthy update
}

// init fills defaults.
func (r *Runner) init() {
	if r.Clock == nil {
		r.Clock = realClock{}
	}
	if r.Rand == nil {
		r.Rand = rand.Float64
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if r.collectNow == nil {
		r.collectNow = make(chan struct{}, 1)
	}
}

// Trigger asks for a collection soon; safe from any goroutine.
func (r *Runner) Trigger() {
	r.init()
	select {
	case r.collectNow <- struct{}{}:
	default:
	}
}

func (r *Runner) heartbeatPeriod() time.Duration {
	s := r.Config.HeartbeatSeconds
	if s <= 0 {
		s = 60
	}
	return time.Duration(min(max(s, 10), 3600)) * time.Second
}

func (r *Runner) interval() time.Duration {
	s := r.Config.IntervalSeconds
	if s <= 0 {
		s = 1800
	}
	return time.Duration(s) * time.Second
}

func (r *Runner) sensors() []string {
	if r.Config.Sensors == nil {
		return slices.Clone(collect.DefaultSensors)
	}
	return r.Config.Sensors
}

func (r *Runner) setErr(kind string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = slices.DeleteFunc(r.errs, func(s string) bool { return len(s) > len(kind) && s[:len(kind)+1] == kind+":" })
	if err != nil {
		r.errs = append(r.errs, kind+": "+err.Error())
	}
}

func (r *Runner) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// Run loops until ctx ends. On the way out it sends a SHUTDOWN heartbeat if hostStopping says the
// host is going down (best effort, bounded to 5 s).
func (r *Runner) Run(ctx context.Context, hostStopping func() bool) error {
	r.init()
	if len(r.Watch) > 0 {
		go Watch(ctx, r.Watch, r.Trigger, r.Log)
	}
	r.resumeRefusal()
	r.Trigger() // collect at start
	hb := time.NewTimer(0)
	coll := time.NewTimer(r.interval())
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer hb.Stop()
	defer coll.Stop()
	defer retry.Stop()
	armRetry := func() {
		if !r.nextTry.IsZero() {
			retry.Reset(max(r.nextTry.Sub(r.Clock.Now()), time.Second))
		}
	}
	for {
		select {
		case <-ctx.Done():
			if hostStopping != nil && hostStopping() {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _ = r.API.Heartbeat(sctx, r.heartbeatBody(protocol.StateShutdown))
				cancel()
			}
			return nil
		case <-hb.C:
			if err := r.Heartbeat(ctx); err != nil {
				r.Log.Warn("heartbeat", "err", err)
			}
			if r.execAfter != "" {
				exe := r.execAfter
				r.execAfter = ""
				r.Log.Info("re-executing the updated agent", "exe", exe)
				if err := r.Exec(exe); err != nil {
					r.Log.Error("re-exec", "err", err)
					r.setErr("update", err)
				}
			}
			hb.Reset(r.heartbeatPeriod())
		case <-coll.C:
			r.Trigger()
			coll.Reset(r.interval())
		case <-r.collectNow:
			if err := r.CollectAndStore(ctx); err != nil {
				r.Log.Warn("collection", "err", err)
			}
			if err := r.Flush(ctx); err != nil {
				r.Log.Warn("upload", "err", err, "retry_at", r.nextTry)
				armRetry()
			}
			coll.Reset(r.interval())
		case <-retry.C:
			if err := r.Flush(ctx); err != nil {
				r.Log.Warn("upload", "err", err, "retry_at", r.nextTry)
				armRetry()
			}
		}
	}
}

// resumeRefusal carries a refusal for want of host scanning across a restart: a service restarted
// (or crash-looping) within the wait does not send again before it ends. `run --once` does not
// call it: an operator running it by hand means to try now.
func (r *Runner) resumeRefusal() {
	rec, err := r.State.LoadRefused()
	if err != nil || rec == nil {
		return
	}
	if left := rec.RetryAt.Sub(r.Clock.Now()); left > 0 && left <= notEnabledRetry {
		r.notEnabled, r.nextTry = true, rec.RetryAt
	}
}

// CollectAndStore takes a snapshot and makes it the pending upload, replacing any older one: after
// an outage only the newest inventory is sent, diffed against the last acknowledged one.
func (r *Runner) CollectAndStore(ctx context.Context) error {
	r.init()
	snap, err := r.Collect(ctx, r.sensors(), r.Config.ExtraPaths)
	if err != nil {
		r.setErr("collection", err)
		return err
	}
	var cerr error
	if len(snap.Errors) > 0 {
		cerr = errors.New(snap.Errors[0])
	}
	r.setErr("collection", cerr)
	p := &protocol.Upload{Full: snap.Inventory, Facts: snap.Facts, CollectedAt: r.Clock.Now().UTC()}
	p.Hash = hashOf(snap)
	gz, err := client.EncodeUpload(p)
	if err != nil {
		return err
	}
	if err := r.State.Write(state.PendingFile, gz, 0o600); err != nil {
		return fmt.Errorf("saving the pending upload: %w", err)
	}
	// A new snapshot is worth sending now, whatever the backoff said about the old one; but not
	// while the server refuses every inventory of this account.
	if !r.notEnabled {
		r.nextTry = time.Time{}
	}
	return nil
}

// errWaiting is returned by Flush while a backoff runs.
var errWaiting = errors.New("waiting to retry")

// Flush sends the pending upload, if any and if no backoff is running. On a transport or server
// error the upload stays on disk and the next try is scheduled with Backoff.
func (r *Runner) Flush(ctx context.Context) error {
	r.init()
	now := r.Clock.Now()
	if !r.nextTry.IsZero() && now.Before(r.nextTry) {
		return errWaiting
	}
	gz, err := r.State.Read(state.PendingFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	p, err := decodePending(gz)
	if err != nil {
		_ = r.State.Remove(state.PendingFile) // unreadable: the next collection replaces it
		return err
	}
	acked, err := r.State.LoadAcked()
	if err != nil {
		acked = &state.Acked{} // a damaged record only costs a full upload
	}
	err = r.send(ctx, p, acked)
	if err != nil {
		return r.failed(now, err)
	}
	r.attempt, r.nextTry, r.notEnabled = 0, time.Time{}, false
	r.setErr("upload", nil)
	_ = r.State.Remove(state.RefusedFile)
	if err := r.State.SaveAcked(AckedFor(p, now.UTC())); err != nil {
		return err
	}
	return r.State.Remove(state.PendingFile)
}

// failed schedules the next try after a failed upload and records the error. A refusal because
// the account has not enabled host scanning waits NotEnabledWait (new snapshots do not cut it
// short; a COLLECT_NOW instruction does) and is saved for `vigil-agent status`; a 429 or 503 with
// Retry-After waits what the server asked (RetryAfterWait); anything else backs off (Backoff).
func (r *Runner) failed(now time.Time, err error) error {
	if client.ScanNotEnabled(err) {
		r.notEnabled = true
		r.nextTry = now.Add(NotEnabledWait(r.Rand()))
		err = fmt.Errorf("refused: the server does not scan this host because its account has not enabled host scanning; "+
			"the inventory is kept and offered again at %s (%w)", r.nextTry.UTC().Format(time.RFC3339), err)
		rec := &state.Refused{Reason: err.Error(), Since: now.UTC(), RetryAt: r.nextTry.UTC()}
		if old, lerr := r.State.LoadRefused(); lerr == nil && old != nil && !old.Since.IsZero() {
			rec.Since = old.Since
		}
		if serr := r.State.SaveRefused(rec); serr != nil {
			r.Log.Warn("recording the refusal", "err", serr)
		}
		r.setErr("upload", err)
		return err
	}
	r.attempt++
	if ra := client.RetryAfterOf(err); ra > 0 {
		r.nextTry = now.Add(RetryAfterWait(ra, r.Rand()))
	} else {
		r.nextTry = now.Add(Backoff(r.attempt, r.Rand()))
	}
	r.setErr("upload", err)
	return err
}

func (r *Runner) send(ctx context.Context, p *protocol.Upload, acked *state.Acked) error {
	for _, full := range []bool{false, true} {
		w := Wire(p, acked, full)
		gz, err := client.EncodeUpload(w)
		if err != nil {
			return err
		}
		resp, err := r.API.Upload(ctx, gz)
		if err != nil {
			return err
		}
		if resp.NeedFull {
			if w.Full != nil {
				return errors.New("the server asked again for a full inventory after receiving one")
			}
			r.Log.Info("the server asked for a full inventory")
			continue
		}
		if resp.Hash != p.Hash {
			return fmt.Errorf("the server acknowledged %q, not %q", resp.Hash, p.Hash)
		}
		return nil
	}
	return nil
}

func (r *Runner) heartbeatBody(st string) *protocol.Heartbeat {
	hb := &protocol.Heartbeat{Version: r.Version, State: st, Sensors: r.sensors(), Errors: r.errors(), Time: r.Clock.Now().UTC()}
	if a, err := r.State.LoadAcked(); err == nil {
		hb.InventoryHash = a.Hash
	}
	return hb
}

// Heartbeat sends a heartbeat and carries out its answer: the period, instructions, renewal.
func (r *Runner) Heartbeat(ctx context.Context) error {
	r.init()
	resp, err := r.API.Heartbeat(ctx, r.heartbeatBody(protocol.StateRunning))
	if err != nil {
		return err
	}
	// The first heartbeat of an updated binary proves it: the rollback watch ends.
	_ = r.State.Remove(UpdateMarker)
	if resp.HeartbeatSeconds > 0 {
		if s := min(max(resp.HeartbeatSeconds, 10), 3600); s != r.Config.HeartbeatSeconds {
			r.Config.HeartbeatSeconds = s
			r.saveConfig()
		}
	}
	for _, in := range resp.Instructions {
		res := r.Handle(ctx, in)
		if !res.OK {
			r.Log.Warn("instruction failed", "id", in.ID, "type", in.Type, "err", res.Error)
		}
		if validID(in.ID) {
			if err := r.API.Report(ctx, in.ID, &res); err != nil {
				r.Log.Warn("reporting an instruction", "id", in.ID, "err", err)
			}
		}
		if r.execAfter != "" {
			break // the rest waits for the new binary
		}
	}
	if NeedRenew(r.Clock.Now(), r.Config.NotBefore, r.Config.NotAfter, resp.RenewBefore) {
		if err := r.Renew(ctx); err != nil {
			r.setErr("renew", err)
			return fmt.Errorf("certificate renewal: %w", err)
		}
		r.setErr("renew", nil)
	}
	return nil
}

func validID(id string) bool {
	return Validate(protocol.Instruction{ID: id, Type: protocol.InstructionCollectNow}) == nil
}

func (r *Runner) saveConfig() {
	if err := r.State.SaveConfig(r.Config); err != nil {
		r.setErr("config", err)
	}
}

// Handle carries out one instruction from the closed set and says how it went. It never runs
// anything the server sent: each type maps to a fixed action.
func (r *Runner) Handle(ctx context.Context, in protocol.Instruction) protocol.InstructionResult {
	r.init()
	fail := func(err error) protocol.InstructionResult { return protocol.InstructionResult{Error: err.Error()} }
	if err := Validate(in); err != nil {
		return fail(err)
	}
	switch in.Type {
	case protocol.InstructionEnableSensor, protocol.InstructionDisableSensor:
		r.Config.Sensors, r.Config.ExtraPaths = applySensor(in, r.sensors(), r.Config.ExtraPaths)
		r.saveConfig()
		r.Trigger()
	case protocol.InstructionSetInterval:
		r.Config.IntervalSeconds = in.IntervalSeconds
		r.saveConfig()
	case protocol.InstructionCollectNow:
		// An administrator asking (say, after enabling host scanning): upload without waiting.
		r.notEnabled, r.nextTry = false, time.Time{}
		r.Trigger()
	case protocol.InstructionUpdate:
		if in.Version == r.Version {
			return protocol.InstructionResult{OK: true}
		}
		if err := r.Update(ctx, in.Version); err != nil {
			return fail(err)
		}
	}
	return protocol.InstructionResult{OK: true}
}

// UpdateMarker is the state file of an update whose binary has not yet sent a heartbeat.
const UpdateMarker = "update.json"

// healthTimeout bounds a new binary's health check.
const healthTimeout = 60 * time.Second

// Update fetches, verifies, installs and health-checks release version, rolling back on failure.
// On success the process is replaced by the new binary after the result is reported.
func (r *Runner) Update(ctx context.Context, version string) error {
	key, err := update.ParseKey(r.Config.ReleaseKey)
	if err != nil {
		return err
	}
	if r.Exe == "" || r.HealthCheck == nil || r.Exec == nil {
		return errors.New("self-update is not available in this mode")
	}
	body, sha, sig, err := r.API.Release(ctx, version, runtime.GOOS, runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := update.Verify(body, sha, sig, key); err != nil {
		return fmt.Errorf("release %s refused: %w", version, err)
	}
	if err := update.Install(r.Exe, body); err != nil {
		return err
	}
	if err := update.Gate(ctx, r.Exe, version, r.State.File(state.HealthyFile), healthTimeout, r.HealthCheck); err != nil {
		return err
	}
	marker := fmt.Appendf(nil, `{"from":%q,"to":%q,"starts":0}`, r.Version, version)
	if err := r.State.Write(UpdateMarker, marker, 0o600); err != nil {
		_ = update.Rollback(r.Exe)
		return err
	}
	r.execAfter = r.Exe
	return nil
}

// NeedRenew reports whether the certificate valid from notBefore to notAfter should be renewed now:
// when the server's renewBefore says so, or once two thirds of its validity have passed.
func NeedRenew(now, notBefore, notAfter, renewBefore time.Time) bool {
	if notAfter.IsZero() {
		return false
	}
	if !renewBefore.IsZero() && notAfter.Before(renewBefore) {
		return true
	}
	if notBefore.IsZero() || !notAfter.After(notBefore) {
		return !now.Before(notAfter.Add(-24 * time.Hour))
	}
	return !now.Before(notBefore.Add(notAfter.Sub(notBefore) * 2 / 3))
}

// Renew makes a new key, has its certificate issued and switches to it.
func (r *Runner) Renew(ctx context.Context) error {
	key, err := client.NewKey()
	if err != nil {
		return err
	}
	csr, err := client.CSR(key, r.Config.AgentID)
	if err != nil {
		return err
	}
	resp, err := r.API.Renew(ctx, &protocol.RenewRequest{CSR: csr})
	if err != nil {
		return err
	}
	cert, err := client.ParseCert([]byte(resp.Certificate))
	if err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	if err := r.State.SaveIdentity(key, []byte(resp.Certificate)); err != nil {
		return err
	}
	r.Config.NotBefore, r.Config.NotAfter = cert.NotBefore, cert.NotAfter
	r.saveConfig()
	if r.Cert != nil {
		pair, err := r.State.LoadPair()
		if err != nil {
			return err
		}
		r.Cert.Store(pair)
	}
	if r.OnRenew != nil {
		r.OnRenew()
	}
	return nil
}

// hashOf is the upload hash of a snapshot (protocol.InventoryHash: OS and packages).
func hashOf(s *collect.Snapshot) string {
	if s.Inventory == nil {
		return delta.Hash(&model.Inventory{})
	}
	return delta.Hash(s.Inventory)
}
