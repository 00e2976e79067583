package e2e

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/server/agents"
	"github.com/vigil-sec/vigil/server/bootstrap"
)

// buildAgent compiles vigil-agent with a version stamped in.
func buildAgent(t *testing.T, out, version string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, "github.com/vigil-sec/vigil/cmd/vigil-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build vigil-agent %s: %v\n%s", version, err, b)
	}
}

// release puts bin into the server's releases directory as version, with sig as its signature.
func release(t *testing.T, data, version string, bin, sig []byte) {
	t.Helper()
	dir := filepath.Join(data, "releases", version, runtime.GOOS, runtime.GOARCH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, agents.ReleaseBinary), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, agents.ReleaseSignature), []byte(base64.StdEncoding.EncodeToString(sig)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// adminAPI calls the server's API with the administrator key, trusting only the server's CA.
type adminAPI struct {
	t    *testing.T
	base string
	key  string
	hc   *http.Client
}

func newAdminAPI(t *testing.T, base, key, caFile string) *adminAPI {
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	return &adminAPI{t: t, base: base, key: key, hc: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}}
}

func (a *adminAPI) call(method, path string, in, out any) int {
	a.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, body)
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (a *adminAPI) agent(id string) agents.AgentView {
	var v agents.AgentView
	if st := a.call("GET", "/v1/agents/"+id, nil, &v); st != 200 {
		a.t.Fatalf("GET agent: %d", st)
	}
	return v
}

func (a *adminAPI) instruction(agentID, id string) agents.QueuedInstruction {
	var out struct {
		Instructions []agents.QueuedInstruction `json:"instructions"`
	}
	if st := a.call("GET", "/v1/agents/"+agentID+"/instructions", nil, &out); st != 200 {
		a.t.Fatalf("GET instructions: %d", st)
	}
	for _, q := range out.Instructions {
		if q.ID == id {
			return q
		}
	}
	a.t.Fatalf("no instruction %s in %+v", id, out.Instructions)
	return agents.QueuedInstruction{}
}

// TestAgentInstructionsUpdateAndCertificates runs a real server and agent: a package database
// change becomes a finding within 60 s; an instruction outside the closed set is refused by the
// server's API and, slipped into the server's database, by the agent; tampered and foreign-signed
// releases are refused and a signed one is applied (the binary on disk replaced, the health check
// passed, the new version reported); an expired client certificate is refused.
func TestAgentInstructionsUpdateAndCertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	t.Parallel()
	bin := t.TempDir()
	vigil := build(t, bin, "cmd/vigil")
	agentBin := filepath.Join(bin, "vigil-agent")
	buildAgent(t, agentBin, "1.3.0")
	newBin := filepath.Join(t.TempDir(), "vigil-agent")
	buildAgent(t, newBin, "1.4.0")

	data, mirror, root, state := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	// Releases: 1.4.0 signed with the pinned key; 1.4.1 altered after signing; 1.4.2 signed by
	// another key.
	relKey := ed25519.NewKeyFromSeed([]byte("vigil-e2e-release-signing-key-32"))
	otherKey := ed25519.NewKeyFromSeed([]byte("someone-else-s-release-key-32byt"))
	good, err := os.ReadFile(newBin)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(good)
	release(t, data, "1.4.0", good, ed25519.Sign(relKey, digest[:]))
	release(t, data, "1.4.1", append(bytes.Clone(good), "#!/bin/sh\nrm -rf /\n"...), ed25519.Sign(relKey, digest[:]))
	release(t, data, "1.4.2", good, ed25519.Sign(otherKey, digest[:]))

	write(t, filepath.Join(mirror, "debian", "tracker.json"), tracker)
	if out, err := exec.Command(vigil, "db", "import", "--db", filepath.Join(data, "vulndb.sqlite"), mirror).CombinedOutput(); err != nil {
		t.Fatalf("db import: %v\n%s", err, out)
	}
	write(t, filepath.Join(root, "etc", "os-release"), "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
	write(t, filepath.Join(root, "etc", "hostname"), "db-1\n")
	write(t, filepath.Join(root, "var", "lib", "dpkg", "status"), status)

	addr := freePort(t)
	url := "https://" + addr
	srv := start(t, vigil, "server", "--data-dir", data, "--listen", addr, "--update-every", "0", "--feed-poll", "1s")
	waitFor(t, 30*time.Second, "the server to listen", func() bool { return strings.Contains(srv.output(), "serving https://") })
	key := regexp.MustCompile(`vgl_[a-z0-9_]+`).FindString(srv.output())
	fp := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(srv.output())
	api := newAdminAPI(t, url, key, filepath.Join(data, "tls", "ca.pem"))
	var tok agents.CreatedToken
	if st := api.call("POST", "/v1/agent-join-tokens", agents.TokenRequest{Name: "e2e"}, &tok); st != 201 && st != 200 {
		t.Fatalf("create token: %d", st)
	}
	if out, err := exec.Command(agentBin, "enroll", "--server", url, "--token", tok.Token, "--ca-fingerprint", fp,
		"--root", root, "--state-dir", state, "--release-key", base64.StdEncoding.EncodeToString(relKey.Public().(ed25519.PublicKey))).CombinedOutput(); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	var list struct {
		Agents []agents.AgentView `json:"agents"`
	}
	if api.call("GET", "/v1/agents", nil, &list); len(list.Agents) != 1 {
		t.Fatalf("agents: %+v", list.Agents)
	}
	id := list.Agents[0].ID
	// The shortest heartbeat the server allows, so instructions arrive within 10 s.
	if st := api.call("PUT", "/v1/agents/"+id+"/heartbeat", agents.HeartbeatSetting{HeartbeatSeconds: 10}, nil); st != 204 {
		t.Fatalf("set heartbeat: %d", st)
	}

	ag := start(t, agentBin, "run", "--root", root, "--state-dir", state)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent output:\n%s", tail(ag.output(), 6000))
			t.Logf("server output:\n%s", tail(srv.output(), 3000))
		}
	})
	findings := func() map[string]bool {
		var out struct {
			Findings []struct {
				VulnerabilityID string `json:"vulnerabilityId"`
			} `json:"findings"`
		}
		api.call("GET", "/v1/findings?status=ACTIVE", nil, &out)
		m := map[string]bool{}
		for _, f := range out.Findings {
			m[f.VulnerabilityID] = true
		}
		return m
	}
	waitFor(t, 60*time.Second, "the first inventory's finding", func() bool { return findings()["CVE-2023-5678"] })

	// The host installs curl: its finding must follow within 60 s.
	f, err := os.OpenFile(filepath.Join(root, "var", "lib", "dpkg", "status"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(curl)
	f.Close()
	changed := time.Now()
	waitFor(t, 60*time.Second, "curl's finding after the package database changed", func() bool { return findings()["CVE-2024-2398"] })
	t.Logf("the package change became a finding in %s", time.Since(changed).Round(100*time.Millisecond))

	// An instruction outside the closed set: the API refuses to queue it...
	if st := api.call("POST", "/v1/agents/"+id+"/instructions", map[string]any{"type": "RUN_COMMAND", "version": "rm -rf /"}, nil); st/100 != 4 {
		t.Fatalf("queueing RUN_COMMAND answered %d, want a 4xx", st)
	}
	// ...and when it is in the server's database anyway (a compromised or newer server), the
	// agent refuses it and reports the refusal.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "vigil.sqlite")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO agent_instructions (id, account, agent_id, body, status, created_at, attempts, error)
		VALUES ('ins-e2e-unknown', ?, ?, '{"id":"ins-e2e-unknown","type":"RUN_COMMAND","version":"rm -rf /"}', 'PENDING', ?, 0, '')`,
		list.Agents[0].Account, id, time.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Tampered and foreign-signed releases, delivered with the same heartbeat as RUN_COMMAND.
	queue := func(version string) string {
		var q agents.QueuedInstruction
		if st := api.call("POST", "/v1/agents/"+id+"/instructions", protocol.Instruction{Type: protocol.InstructionUpdate, Version: version}, &q); st != 201 {
			t.Fatalf("queue UPDATE %s: %d", version, st)
		}
		return q.ID
	}
	finished := func(ids ...string) func() bool {
		return func() bool {
			for _, qid := range ids {
				if st := api.instruction(id, qid).Status; st != agents.InstructionFailed && st != agents.InstructionSucceeded {
					return false
				}
			}
			return true
		}
	}
	bad := map[string]string{"1.4.1": queue("1.4.1"), "1.4.2": queue("1.4.2")}
	waitFor(t, 60*time.Second, "the results of RUN_COMMAND and two bad updates", finished("ins-e2e-unknown", bad["1.4.1"], bad["1.4.2"]))
	if q := api.instruction(id, "ins-e2e-unknown"); q.Status != agents.InstructionFailed || !strings.Contains(q.Error, "refused") {
		t.Errorf("RUN_COMMAND: %s %q, want FAILED and refused", q.Status, q.Error)
	}
	for v, qid := range bad {
		if q := api.instruction(id, qid); q.Status != agents.InstructionFailed {
			t.Errorf("UPDATE %s (bad signature): %s %q, want FAILED", v, q.Status, q.Error)
		} else {
			t.Logf("UPDATE %s refused: %s", v, q.Error)
		}
	}
	if got, _ := exec.Command(agentBin, "version").Output(); strings.TrimSpace(string(got)) != "1.3.0" {
		t.Fatalf("after the refused updates the binary on disk is %q", got)
	}
	update := func(version string) agents.QueuedInstruction {
		qid := queue(version)
		waitFor(t, 90*time.Second, "the result of UPDATE "+version, finished(qid))
		return api.instruction(id, qid)
	}
	if q := update("1.4.0"); q.Status != agents.InstructionSucceeded {
		t.Fatalf("UPDATE 1.4.0: %s %q", q.Status, q.Error)
	}
	waitFor(t, 60*time.Second, "the agent to report 1.4.0", func() bool { return api.agent(id).Version == "1.4.0" })
	if got, _ := exec.Command(agentBin, "version").Output(); strings.TrimSpace(string(got)) != "1.4.0" {
		t.Errorf("the binary on disk is %q after the update", got)
	}
	if !strings.Contains(ag.output(), `"version":"1.4.0"`) && !strings.Contains(ag.output(), "version=1.4.0") {
		t.Errorf("the re-executed agent did not log its new version")
	}

	// An expired client certificate for the right agent, from the right CA: refused.
	ag.stop()
	hbBefore := api.agent(id).LastHeartbeat
	expireCertificate(t, data, state, id)
	out, err := exec.Command(agentBin, "run", "--once", "--root", root, "--state-dir", state).CombinedOutput()
	if err == nil {
		t.Fatalf("an agent with an expired certificate was served:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(string(out)), "certificate") {
		t.Errorf("the refusal does not name the certificate:\n%s", out)
	}
	t.Logf("with an expired certificate: %s", tail(strings.TrimSpace(string(out)), 300))
	if after := api.agent(id).LastHeartbeat; !after.Equal(hbBefore) {
		t.Errorf("a heartbeat was recorded with an expired certificate (%s, before %s)", after, hbBefore)
	}
}

// expireCertificate replaces the agent's certificate with one for the same agent and key, from
// the server's CA, that expired an hour ago.
func expireCertificate(t *testing.T, data, state, agentID string) {
	t.Helper()
	ca := readPEM(t, filepath.Join(data, "tls", "ca.pem"))
	caCert, err := x509.ParseCertificate(ca)
	if err != nil {
		t.Fatal(err)
	}
	caKey := parseKey(t, readPEM(t, filepath.Join(data, "tls", "ca-key.pem")))
	agentKey := parseKey(t, readPEM(t, filepath.Join(state, "key.pem")))
	csr, err := client.CSR(agentKey, "expired")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certPEM, err := bootstrap.IssueClientCert(caCert, caKey, bootstrap.ClientCertRequest{CSR: []byte(csr), AgentID: agentID,
		Validity: time.Hour, Now: now.Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.ParseCert(certPEM)
	if err != nil || !c.NotAfter.Before(now) {
		t.Fatalf("the crafted certificate is not expired: %v %v", c.NotAfter, err)
	}
	if err := os.WriteFile(filepath.Join(state, "cert.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readPEM(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	return blk.Bytes
}

func parseKey(t *testing.T, der []byte) crypto.Signer {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		if ec, err2 := x509.ParseECPrivateKey(der); err2 == nil {
			return ec
		}
		t.Fatal(err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		t.Fatalf("key %T is not a signer", k)
	}
	return s
}
