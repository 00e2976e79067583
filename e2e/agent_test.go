// Package e2e runs Vigil's real processes against each other over loopback: `vigil server` and
// `vigil-agent`, built from this tree.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// build compiles a command of this module into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "github.com/vigil-sec/vigil/"+pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a background process whose output is kept.
type proc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *proc) stop() {
	if p.cmd.Process != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

// summary lists every finding as ID:STATUS:SEVERITY.
func summary(client func(...string) (string, error)) string {
	out, err := client("findings", "--json")
	if err != nil {
		return err.Error()
	}
	var fs []struct {
		VulnerabilityID, Status, Severity string
	}
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		return err.Error()
	}
	var parts []string
	for _, f := range fs {
		parts = append(parts, f.VulnerabilityID+":"+f.Status+":"+f.Severity)
	}
	return strings.Join(parts, " ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

const status = `Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2
`

const curl = `
Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u5
`

const tracker = `{
 "openssl": {"CVE-2023-5678": {"description": "slow X9.42 DH key checks", "scope": "local",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.11-1~deb12u2"}, "fixed_version": "3.0.13-1~deb12u1", "urgency": "low"}}}},
 "curl": {"CVE-2023-38545": {"description": "SOCKS5 heap buffer overflow", "scope": "remote",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "7.88.1-10+deb12u5"}, "fixed_version": "7.88.1-10+deb12u4", "urgency": "high"}}},
          "CVE-2023-46218": {"description": "cookie mixed case PSL bypass", "scope": "remote",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "7.88.1-10+deb12u5"}, "fixed_version": "7.88.1-10+deb12u5", "urgency": "medium"}}},
          "CVE-2024-2398": {"description": "HTTP/2 push headers memory leak", "scope": "remote",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "7.88.1-10+deb12u5"}, "fixed_version": "7.88.1-10+deb12u6", "urgency": "medium"}}}}
}`

// TestAgentAndServer enrolls a real agent with a real server, sees its findings, kills and restarts
// the server while the agent's host installs a package, and checks that nothing is lost.
func TestAgentAndServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	t.Parallel()
	bin := t.TempDir()
	vigil, agent := build(t, bin, "cmd/vigil"), build(t, bin, "cmd/vigil-agent")
	data, mirror, root, state := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	write(t, filepath.Join(mirror, "debian", "tracker.json"), tracker)
	if out, err := exec.Command(vigil, "db", "import", "--db", filepath.Join(data, "vulndb.sqlite"), mirror).CombinedOutput(); err != nil {
		t.Fatalf("db import: %v\n%s", err, out)
	}
	write(t, filepath.Join(root, "etc", "os-release"), "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
	write(t, filepath.Join(root, "etc", "hostname"), "web-1\n")
	write(t, filepath.Join(root, "var", "lib", "dpkg", "status"), status)

	addr := freePort(t)
	url := "https://" + addr
	serve := func() *proc {
		p := start(t, vigil, "server", "--data-dir", data, "--listen", addr, "--update-every", "0", "--feed-poll", "1s")
		waitFor(t, 30*time.Second, "the server to listen", func() bool { return strings.Contains(p.output(), "serving https://") })
		return p
	}
	srv := serve()
	key := regexp.MustCompile(`vgl_[a-z0-9_]+`).FindString(srv.output())
	fp := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(srv.output())
	if key == "" || fp == "" {
		t.Fatalf("no admin key or CA fingerprint in:\n%s", srv.output())
	}
	client := func(args ...string) (string, error) {
		cmd := exec.Command(vigil, args...)
		cmd.Env = append(os.Environ(), "VIGIL_SERVER="+url, "VIGIL_API_KEY="+key, "VIGIL_CA_FINGERPRINT="+fp)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, errb.String())
		}
		return out.String(), err
	}
	token, err := client("tokens", "create", "--name", "e2e", "--max-uses", "1")
	if err != nil {
		t.Fatal(err)
	}
	token = strings.TrimSpace(token)

	// Enrollment with the token, pinned by the CA fingerprint; the token's single use is spent.
	enroll := func(stateDir string) ([]byte, error) {
		return exec.Command(agent, "enroll", "--server", url, "--token", token, "--ca-fingerprint", fp,
			"--root", root, "--state-dir", stateDir).CombinedOutput()
	}
	if out, err := enroll(state); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if out, err := enroll(t.TempDir()); err == nil {
		t.Fatalf("a second enrollment with a one-use token must be refused:\n%s", out)
	}
	wrongFP := "sha256:" + strings.Repeat("0", 64)
	if out, err := exec.Command(agent, "enroll", "--server", url, "--token", token, "--ca-fingerprint", wrongFP,
		"--state-dir", t.TempDir()).CombinedOutput(); err == nil {
		t.Fatalf("enrolling against a server whose CA does not match the pin must fail:\n%s", out)
	}

	ag := start(t, agent, "run", "--root", root, "--state-dir", state)
	findings := func() map[string]string {
		out, err := client("findings", "--json", "--status", "ACTIVE")
		if err != nil {
			t.Logf("vigil findings: %v", err)
			return nil
		}
		var fs []struct {
			VulnerabilityID string `json:"vulnerabilityId"`
			Severity        string `json:"severity"`
		}
		if err := json.Unmarshal([]byte(out), &fs); err != nil {
			t.Logf("vigil findings output: %v: %.300s", err, out)
			return nil
		}
		m := map[string]string{}
		for _, f := range fs {
			m[f.VulnerabilityID] = f.Severity
		}
		return m
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("all findings: %s", summary(client))
			t.Logf("agent output:\n%s", ag.output())
			t.Logf("server output (last):\n%s", tail(srv.output(), 3000))
		}
	})

	waitFor(t, 60*time.Second, "the agent's first inventory to produce a finding", func() bool {
		return findings()["CVE-2023-5678"] == "LOW"
	})
	agents, err := client("agents", "list")
	if err != nil || !strings.Contains(agents, "ONLINE") || !strings.Contains(agents, "web-1") {
		t.Fatalf("agents list: %v\n%s", err, agents)
	}

	// The server goes away; meanwhile the host installs curl. The agent notices the package
	// database change, keeps the inventory, and delivers it once the server is back.
	srv.stop()
	f, err := os.OpenFile(filepath.Join(root, "var", "lib", "dpkg", "status"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(curl)
	f.Close()
	time.Sleep(3 * time.Second)
	srv = serve()
	t.Logf("right after the restart: %s", summary(client))
	start := time.Now()
	waitFor(t, 90*time.Second, "curl's findings after the outage", func() bool {
		fs := findings()
		return fs["CVE-2024-2398"] == "MEDIUM" && fs["CVE-2023-5678"] == "LOW"
	})
	t.Logf("curl's finding arrived %s after the server came back", time.Since(start).Round(time.Second))
	if fs := findings(); len(fs) != 2 {
		t.Errorf("findings after the outage: %v (CVE-2023-38545 and CVE-2023-46218 are fixed in the installed curl)", fs)
	}
	cov, err := client("coverage")
	if err != nil || !strings.Contains(cov, "SUCCESSFUL") || !strings.Contains(cov, "agent") {
		t.Errorf("coverage: %v\n%s", err, cov)
	}

	// Revocation: the agent's certificate is refused from then on.
	id := regexp.MustCompile(`agt-[0-9a-f]+`).FindString(agents)
	if _, err := client("agents", "revoke", id); err != nil {
		t.Fatal(err)
	}
	before := len(ag.output())
	// A package change makes the agent upload at once; the server must refuse its certificate.
	write(t, filepath.Join(root, "var", "lib", "dpkg", "status"), status)
	waitFor(t, 45*time.Second, "the revoked agent's next call to be refused", func() bool {
		tail := ag.output()[before:]
		return strings.Contains(tail, "403") || strings.Contains(strings.ToLower(tail), "revoked")
	})
}
