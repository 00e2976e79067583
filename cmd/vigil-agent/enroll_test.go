package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/agenttest"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/state"
)

// spendBurst sends one request to the enrollment endpoint from this address.
func spendBurst(t *testing.T, rs *agenttest.RealServer) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Post(rs.URL+protocol.PathEnroll, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestEnrollRateLimited: `vigil-agent enroll` against the real server's per-address rate limit
// says it is retrying, waits the Retry-After and enrolls.
func TestEnrollRateLimited(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{Rate: 0.5, Burst: 1})
	spendBurst(t, rs)
	stateDir := filepath.Join(t.TempDir(), "state")
	var out, errOut bytes.Buffer
	start := time.Now()
	err := run(context.Background(), []string{"enroll", "--server", rs.URL, "--token", rs.Token(t, 1), "--ca-fingerprint", rs.Fingerprint,
		"--state-dir", stateDir, "--root", t.TempDir()}, &out, &errOut)
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "the server is busy (429 Too Many Requests); enrolling again in") ||
		!strings.Contains(out.String(), "enrolled as agt-") || time.Since(start) < 2*time.Second {
		t.Fatalf("after %v:\nstdout %s\nstderr %s", time.Since(start), out.String(), errOut.String())
	}
}

// TestEnrollGivesUp: a Retry-After beyond --retry-for ends the command at once with what to do;
// nothing is saved.
func TestEnrollGivesUp(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{Rate: 0.001, Burst: 1}) // Retry-After 1000 s
	spendBurst(t, rs)
	stateDir := filepath.Join(t.TempDir(), "state")
	var out bytes.Buffer
	err := run(context.Background(), []string{"enroll", "--server", rs.URL, "--token", rs.Token(t, 1), "--ca-fingerprint", rs.Fingerprint,
		"--state-dir", stateDir, "--root", t.TempDir(), "--retry-for", "30s"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "enrollment not done") || !strings.Contains(err.Error(), "run the same enroll command again later") ||
		!strings.Contains(err.Error(), "429") {
		t.Fatalf("err %v", err)
	}
	st, _ := state.Open(stateDir)
	if _, err := st.LoadConfig(); err == nil {
		t.Fatal("a configuration was saved")
	}
}

// TestRunRefusedWithoutHostScanning: `run --once` for an account without host scanning fails with
// the reason, and `status` shows the refusal and the next try, until an accepted upload.
func TestRunRefusedWithoutHostScanning(t *testing.T) {
	rs := agenttest.Real(t, agenttest.RealOptions{Enabled: []string{"image"}})
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"), 0o644)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte("Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\n\n"), 0o644)
	stateDir := filepath.Join(t.TempDir(), "state")
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"enroll", "--server", rs.URL, "--token", rs.Token(t, 1), "--ca-fingerprint", rs.Fingerprint,
		"--state-dir", stateDir, "--root", root}, &out, &out); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out.String())
	}
	err := run(ctx, []string{"run", "--once", "--root", root, "--state-dir", stateDir}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "has not enabled host scanning") || !strings.Contains(err.Error(), "/enable") {
		t.Fatalf("run --once: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"status", "--state-dir", stateDir}, &out, &out); err != nil || !strings.Contains(out.String(), "uploads refused since") {
		t.Fatalf("status: %v\n%s", err, out.String())
	}
	rs.SetEnabled(t, "host")
	if err := run(ctx, []string{"run", "--once", "--root", root, "--state-dir", stateDir}, &out, &out); err != nil {
		t.Fatalf("run --once once enabled: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"status", "--state-dir", stateDir}, &out, &out); err != nil || strings.Contains(out.String(), "uploads refused") {
		t.Fatalf("status after an accepted upload: %v\n%s", err, out.String())
	}
	if rs.Submitted.Load() != 1 {
		t.Fatalf("%d inventories submitted", rs.Submitted.Load())
	}
}
