package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/agents"
	"github.com/vigil-sec/vigil/server/bootstrap"
	"github.com/vigil-sec/vigil/server/store"
)

// recorder is the inventory sink: what the server would turn into findings.
type recorder struct {
	mu   sync.Mutex
	invs []*model.Inventory
}

func (r *recorder) Submit(_ context.Context, _ model.Resource, inv *model.Inventory) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.invs = append(r.invs, inv)
	return nil
}

func (r *recorder) last() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.invs) == 0 {
		return nil
	}
	var out []string
	for _, p := range r.invs[len(r.invs)-1].Packages {
		out = append(out, p.Name+"="+p.Version)
	}
	slices.Sort(out)
	return out
}

// TestAgainstServerAgents runs the built agent against the real server side (server/agents on a
// SQLite store): enrollment with a join token, a full upload, a delta the server must rebuild to
// the same hash, an unchanged upload, and an instruction queued by an administrator.
func TestAgainstServerAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx := context.Background()
	boot, err := bootstrap.Bootstrap(ctx, bootstrap.Options{Dir: t.TempDir(), Hostname: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "vigil.sqlite"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	if err := fleet.PutAccount(ctx, model.Account{ID: "acme", Name: "Acme", Role: model.AccountStandalone,
		Enabled: []string{model.ResourceHost}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	// A signed release 1.4.0 in the server's releases directory.
	priv := ed25519.NewKeyFromSeed([]byte("vigil-agent-test-release-key-32b"))
	relDir := t.TempDir()
	relBin := filepath.Join(relDir, "1.4.0", runtime.GOOS, runtime.GOARCH, agents.ReleaseBinary)
	os.MkdirAll(filepath.Dir(relBin), 0o755)
	if b, err := exec.Command("go", "build", "-ldflags", "-X main.version=1.4.0", "-o", relBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	digest := sha256.Sum256(readFile(t, relBin))
	os.WriteFile(relBin+".sig", []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, digest[:]))), 0o644)
	svc, err := agents.New(agents.Config{Storage: agents.NewMemory(), Fleet: fleet, Sink: rec, CA: boot.CA, CAKey: boot.CAKey,
		ReleasesDir: relDir, ReleaseKey: priv.Public().(ed25519.PublicKey), HeartbeatSeconds: 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(svc.Handler())
	srv.TLS = boot.TLSConfig()
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	_, token, err := svc.CreateToken(ctx, agents.TokenSpec{Account: "acme", Name: "ci", MaxUses: 1, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "vigil-agent")
	if b, err := exec.Command("go", "build", "-ldflags", "-X main.version=1.3.0", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"), 0o644)
	status := func(pkgs ...string) {
		var b []byte
		for i := 0; i+1 < len(pkgs); i += 2 {
			b = append(b, "Package: "+pkgs[i]+"\nStatus: install ok installed\nArchitecture: amd64\nVersion: "+pkgs[i+1]+"\n\n"...)
		}
		os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), b, 0o644)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	agent := func(args ...string) {
		t.Helper()
		if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
	}
	agent("enroll", "--server", srv.URL, "--token", token, "--ca-fingerprint", boot.CAFingerprint, "--state-dir", stateDir, "--root", root,
		"--release-key", base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)))

	status("bash", "5.2.15-2+b7", "openssl", "3.0.15-1~deb12u1")
	agent("run", "--once", "--root", root, "--state-dir", stateDir)
	if got := rec.last(); !slices.Equal(got, []string{"bash=5.2.15-2+b7", "openssl=3.0.15-1~deb12u1"}) {
		t.Fatalf("server received %v", got)
	}
	status("bash", "5.2.15-2+b7", "openssl", "3.0.16-1~deb12u1", "curl", "7.88.1-10+deb12u8")
	agent("run", "--once", "--root", root, "--state-dir", stateDir)
	if got := rec.last(); !slices.Equal(got, []string{"bash=5.2.15-2+b7", "curl=7.88.1-10+deb12u8", "openssl=3.0.16-1~deb12u1"}) {
		t.Fatalf("after the delta the server holds %v", got)
	}
	rec.mu.Lock()
	n := len(rec.invs)
	rec.mu.Unlock()
	agent("run", "--once", "--root", root, "--state-dir", stateDir) // unchanged: a confirmation
	rec.mu.Lock()
	if len(rec.invs) != n {
		t.Errorf("an unchanged upload was submitted again")
	}
	rec.mu.Unlock()

	views, err := svc.ListAgents(ctx, "acme")
	if err != nil || len(views) != 1 {
		t.Fatalf("agents %v %v", views, err)
	}
	id := views[0].ID
	if _, err := svc.QueueInstruction(ctx, "acme", id, protocol.Instruction{Type: protocol.InstructionSetInterval, IntervalSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	agent("run", "--once", "--root", root, "--state-dir", stateDir)
	st, _ := stateOf(stateDir)
	if st.IntervalSeconds != 3600 {
		t.Errorf("interval %d after SET_INTERVAL", st.IntervalSeconds)
	}

	// Self-update from the server's signed release, in the running loop.
	if _, err := svc.QueueInstruction(ctx, "acme", id, protocol.Instruction{Type: protocol.InstructionUpdate, Version: "1.4.0"}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--root", root, "--state-dir", stateDir)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, err := svc.ListAgents(ctx, "acme")
		if err == nil && len(a) == 1 && a[0].Version == "1.4.0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not come back as 1.4.0: %+v", a)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v, _ := exec.Command(bin, "version").Output(); string(bytes.TrimSpace(v)) != "1.4.0" {
		t.Errorf("installed binary is %q", v)
	}
}
