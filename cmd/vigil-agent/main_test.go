package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/agenttest"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/state"
	"github.com/vigil-sec/vigil/agent/update"
)

// TestDependencies keeps the agent lean: it must not link the vulnerability DB, the matcher, the
// server or the database drivers.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := []string{
		"github.com/vigil-sec/vigil/vulndb", "github.com/vigil-sec/vigil/match", "github.com/vigil-sec/vigil/server",
		"modernc.org/sqlite", "github.com/jackc/pgx", "modernc.org/libc",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 20 {
		t.Fatalf("implausible dependency list: %v", deps)
	}
	for _, d := range deps {
		for _, b := range banned {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("vigil-agent links %s", d)
			}
		}
	}
}

func TestInstall(t *testing.T) {
	prefix := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"install", "--root-prefix", prefix}, &out, &out); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(prefix, "etc/systemd/system/vigil-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/bin/vigil-agent run $VIGIL_AGENT_ARGS", "EnvironmentFile=-/etc/default/vigil-agent",
		"Restart=always", "After=network-online.target", "Before=systemd-user-sessions.service", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	env := filepath.Join(prefix, "etc/default/vigil-agent")
	b, err := os.ReadFile(env)
	if err != nil || !strings.Contains(string(b), `VIGIL_AGENT_ARGS="--root / --state-dir /var/lib/vigil-agent"`) {
		t.Errorf("config file: %v %s", err, b)
	}
	if fi, err := os.Stat(filepath.Join(prefix, "var/lib/vigil-agent")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v", err, fi)
	}
	// An edited configuration file is kept on reinstall.
	os.WriteFile(env, []byte("VIGIL_AGENT_ARGS=\"--root /host\"\n"), 0o644)
	if err := run(context.Background(), []string{"install", "--root-prefix", prefix}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(env); !strings.Contains(string(b), "/host") {
		t.Error("configuration overwritten")
	}
	if err := run(context.Background(), []string{"install", "--root-prefix", prefix, "--binary", "usr/bin/x"}, &out, &out); err == nil {
		t.Error("relative binary path accepted")
	}
}

func TestBuildDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	out := t.TempDir()
	cmd := exec.Command("sh", "../../packaging/build-deb.sh", "-v", "1.2.3", "-a", runtime.GOARCH, "-o", out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build-deb: %v\n%s", err, b)
	}
	deb := filepath.Join(out, "vigil-agent_1.2.3_"+runtime.GOARCH+".deb")
	list, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, list)
	}
	for _, want := range []string{"./usr/bin/vigil-agent", "./lib/systemd/system/vigil-agent.service", "./etc/default/vigil-agent"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("package lacks %s:\n%s", want, list)
		}
	}
	info, _ := exec.Command("dpkg-deb", "-f", deb, "Package", "Version", "Architecture").CombinedOutput()
	if !strings.Contains(string(info), "Version: 1.2.3") || !strings.Contains(string(info), "Architecture: "+runtime.GOARCH) {
		t.Errorf("control: %s", info)
	}
	x := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, b)
	}
	v, err := exec.Command(filepath.Join(x, "usr/bin/vigil-agent"), "version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "1.2.3" {
		t.Errorf("packaged binary version %q %v", v, err)
	}
}

// TestEndToEnd drives the built binary: enroll against the protocol test server, one run, the
// health check, status.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "vigil-agent")
	if b, err := exec.Command("go", "build", "-ldflags", "-X main.version=1.3.0", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	srv := agenttest.New(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("db-02\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte("0d5e3c2b1a0f4e9d8c7b6a5f4e3d2c1b\n"), 0o644)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte("Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.15-1~deb12u1\n\n"), 0o644)
	stateDir := filepath.Join(t.TempDir(), "state")
	agent := func(args ...string) (string, error) {
		b, err := exec.Command(bin, args...).CombinedOutput()
		return string(b), err
	}
	out, err := agent("enroll", "--server", srv.URL, "--token", agenttest.Token, "--ca-fingerprint", "sha256:"+strings.Repeat("ab", 32), "--state-dir", stateDir, "--root", root)
	if err == nil || !strings.Contains(out, "does not match the pinned fingerprint") {
		t.Fatalf("enrolled with a wrong fingerprint: %s", out)
	}
	out, err = agent("enroll", "--server", srv.URL, "--token", agenttest.Token, "--ca-fingerprint", srv.Fingerprint, "--state-dir", stateDir, "--root", root)
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	var enr protocol.EnrollRequest
	srv.Lock(func(s *agenttest.Server) { enr = s.Enrollments[0] })
	if enr.Hostname != "db-02" || enr.MachineID != "0d5e3c2b1a0f4e9d8c7b6a5f4e3d2c1b" || enr.OS == nil || enr.OS.Ecosystem != "Debian:12" || enr.Version != "1.3.0" {
		t.Errorf("enrollment %+v", enr)
	}
	for _, f := range []string{state.KeyFile, state.ConfigFile} {
		if fi, err := os.Stat(filepath.Join(stateDir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, err, fi)
		}
	}
	if fi, _ := os.Stat(stateDir); fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v", fi.Mode())
	}
	if out, err := agent("enroll", "--server", srv.URL, "--token", agenttest.Token, "--ca-fingerprint", srv.Fingerprint, "--state-dir", stateDir); err == nil {
		t.Errorf("enrolled twice: %s", out)
	}
	if out, err := agent("run", "--once", "--root", root, "--state-dir", stateDir); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if got := srv.Names("agent-0001"); len(got) != 1 || got[0] != "libssl3=3.0.15-1~deb12u1" {
		t.Errorf("server holds %v", got)
	}
	if out, err := agent("run", "--health-check", "--state-dir", stateDir); err != nil {
		t.Fatalf("health check: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(stateDir, state.HealthyFile)); strings.TrimSpace(string(b)) != "1.3.0" {
		t.Errorf("healthy marker %q", b)
	}
	out, err = agent("status", "--json", "--state-dir", stateDir)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st struct {
		AgentID  string `json:"agentId"`
		Packages int    `json:"packages"`
		Pending  bool   `json:"pendingUpload"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.AgentID != "agent-0001" || st.Packages != 1 || st.Pending {
		t.Errorf("status %s (%v)", out, err)
	}
	// The server goes down: the run fails, the upload waits on disk.
	srv.Lock(func(s *agenttest.Server) { s.Down = true })
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte("Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.16-1~deb12u1\n\n"), 0o644)
	if _, err := agent("run", "--once", "--root", root, "--state-dir", stateDir); err == nil {
		t.Error("run succeeded with the server down")
	}
	if _, err := os.Stat(filepath.Join(stateDir, state.PendingFile)); err != nil {
		t.Error("no pending upload after the failed run")
	}
	srv.Lock(func(s *agenttest.Server) { s.Down = false })
	if out, err := agent("run", "--once", "--root", root, "--state-dir", stateDir); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if got := srv.Names("agent-0001"); len(got) != 1 || got[0] != "libssl3=3.0.16-1~deb12u1" {
		t.Errorf("server holds %v", got)
	}
}

// TestSelfUpdateEndToEnd runs the real loop of a 1.3.0 binary that receives UPDATE 1.4.0: it
// downloads and verifies the signed release, swaps the binary, runs the new one's health check and
// re-executes into it; the new process heartbeats as 1.4.0. A second UPDATE to a signed release
// that cannot pass its health check is rolled back and reported as failed.
func TestSelfUpdateEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	dir := t.TempDir()
	build := func(version, out string) []byte {
		if b, err := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, ".").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, b)
		}
		return readFile(t, out)
	}
	bin := filepath.Join(dir, "bin", "vigil-agent")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	build("1.3.0", bin)
	newBody := build("1.4.0", filepath.Join(dir, "release-1.4.0"))
	broken := []byte("#!/bin/sh\nexit 3\n") // signed, but fails its health check

	priv := ed25519.NewKeyFromSeed([]byte("vigil-agent-test-release-key-32b"))
	pub := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	srv := agenttest.New(t)
	sha, sig := update.Sign(newBody, priv)
	bsha, bsig := update.Sign(broken, priv)
	srv.Lock(func(s *agenttest.Server) {
		s.Releases["1.4.0"] = agenttest.Release{Body: newBody, SHA: sha, Sig: sig}
		s.Releases["1.4.1"] = agenttest.Release{Body: broken, SHA: bsha, Sig: bsig}
		s.Pending = []protocol.Instruction{{ID: "upd-1", Type: protocol.InstructionUpdate, Version: "1.4.0"}}
		s.HeartbeatSec = 10 // the shortest period the agent accepts
	})
	root := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if b, err := exec.Command(bin, "enroll", "--server", srv.URL, "--token", agenttest.Token, "--ca-fingerprint", srv.Fingerprint,
		"--state-dir", stateDir, "--root", root, "--release-key", pub).CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, b)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "--root", root, "--state-dir", stateDir)
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
	waitFor := func(what string, cond func(s *agenttest.Server) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			ok := false
			srv.Lock(func(s *agenttest.Server) { ok = cond(s) })
			if ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	waitFor("a heartbeat from 1.4.0", func(s *agenttest.Server) bool {
		for _, hb := range s.Heartbeats {
			if hb.Version == "1.4.0" {
				return true
			}
		}
		return false
	})
	srv.Lock(func(s *agenttest.Server) {
		if r := s.Results["upd-1"]; !r.OK {
			t.Errorf("update result %+v", r)
		}
	})
	if !bytes.Equal(readFile(t, bin), newBody) {
		t.Error("the binary was not replaced")
	}
	if v, _ := exec.Command(bin+".previous", "version").Output(); strings.TrimSpace(string(v)) != "1.3.0" {
		t.Errorf("previous binary is %q", v)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "update.json")); err == nil {
		t.Error("update marker left after the new binary's first heartbeat")
	}

	// The broken release: refused after its health check, the 1.4.0 binary stays.
	srv.Lock(func(s *agenttest.Server) {
		s.Pending = []protocol.Instruction{{ID: "upd-2", Type: protocol.InstructionUpdate, Version: "1.4.1"}}
	})
	waitFor("the result of the broken update", func(s *agenttest.Server) bool { _, ok := s.Results["upd-2"]; return ok })
	srv.Lock(func(s *agenttest.Server) {
		if r := s.Results["upd-2"]; r.OK || !strings.Contains(r.Error, "previous binary restored") {
			t.Errorf("broken update result %+v", r)
		}
	})
	if !bytes.Equal(readFile(t, bin), newBody) {
		t.Error("the broken release was left in place")
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stateOf(dir string) (*state.Config, error) {
	d, err := state.Open(dir)
	if err != nil {
		return nil, err
	}
	return d.LoadConfig()
}
