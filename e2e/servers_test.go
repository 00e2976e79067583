package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/server/store/pgtest"
)

// TestTwoServerProcesses runs two real `vigil server` processes on one PostgreSQL database and one
// data directory (TLS material and vulnerability database shared, as on one host). An inventory
// goes to the first; a feed update asked of the second (`vigil db update --server … --wait`) runs as
// a job on whichever process claims it; the new advisory's finding appears, and every finding's
// "created" event is written once. Then the process that ran the jobs is killed (SIGKILL) and the
// survivor serves on, running the next update alone.
func TestTwoServerProcesses(t *testing.T) { twoServerProcesses(t, false) }

// TestTwoServerHosts is the same with a data directory each, as on two hosts: only the CA is
// copied to the second; its vulnerability database starts empty and follows the one the first
// published, and each update reaches the other process's file through PostgreSQL.
func TestTwoServerHosts(t *testing.T) { twoServerProcesses(t, true) }

func twoServerProcesses(t *testing.T, twoHosts bool) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	c := pgtest.Start(t)
	dbname, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dsn := c.DSN(dbname)
	vigil := build(t, t.TempDir(), "cmd/vigil")
	data, mirror := t.TempDir(), t.TempDir()
	write(t, filepath.Join(mirror, "debian", "tracker.json"), trackerOpenSSL)
	if out, err := exec.Command(vigil, "db", "import", "--db", filepath.Join(data, "vulndb.sqlite"), mirror).CombinedOutput(); err != nil {
		t.Fatalf("db import: %v\n%s", err, out)
	}
	serve := func(data string) (*proc, string) {
		addr := freePort(t)
		p := start(t, vigil, "server", "--data-dir", data, "--postgres", dsn, "--listen", addr, "--update-every", "0",
			"--feed-mirror", mirror, "--feed-poll", "500ms", "--workers", "2")
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(p.output(), "serving https://"); {
			if time.Now().After(deadline) {
				t.Fatalf("a server did not listen within 30 s:\n%s", tail(p.output(), 4000))
			}
			time.Sleep(100 * time.Millisecond)
		}
		return p, "https://" + addr
	}
	a, urlA := serve(data)
	dataB := data
	if twoHosts {
		dataB = t.TempDir()
		for _, f := range []string{"ca.pem", "ca-key.pem"} { // the agents' trust anchor, copied by hand
			b, err := os.ReadFile(filepath.Join(data, "tls", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dataB, "tls"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dataB, "tls", f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, urlB := serve(dataB)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server A:\n%s", tail(a.output(), 4000))
			t.Logf("server B:\n%s", tail(b.output(), 4000))
		}
	})
	key := regexp.MustCompile(`vgl_[a-z0-9_]+`).FindString(a.output())
	if key == "" || strings.Contains(b.output(), "vgl_") {
		t.Fatalf("the first server must print the admin key, the second none:\nA: %s\nB: %s", a.output(), b.output())
	}
	ca := filepath.Join(data, "tls", "ca.pem")
	hc := httpsClient(t, ca)
	put := func(url, id string, inv string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", url+"/v1/resources/host/"+id+"/inventory", strings.NewReader(inv))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT inventory: %d %s", resp.StatusCode, body)
		}
	}
	put(urlA, "web-1", debInventory)

	// curl's advisories are published; the update is asked of B.
	write(t, filepath.Join(mirror, "debian", "tracker.json"), tracker)
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(vigil, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, errb.String())
		}
		return out.String() + errb.String(), err
	}
	remote := func(url string) []string { return []string{"--server", url, "--api-key", key, "--ca-file", ca} }
	out, err := cli(append([]string{"db", "update", "--wait"}, remote(urlB)...)...)
	if err != nil {
		t.Fatalf("db update --server B --wait: %v\n%s", err, out)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	created := func() map[string]int {
		rows, err := db.Query(`SELECT subject FROM outbox WHERE type = 'vigil.finding.created'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[string]int{}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			m[s]++
		}
		return m
	}
	// openssl's finding from the submission, curl's CVE-2024-2398 (the other two are fixed in the
	// installed version) from the re-evaluation job.
	waitFor(t, 30*time.Second, "curl's finding", func() bool { return len(created()) == 2 })
	for subj, n := range created() {
		if n != 1 {
			t.Errorf("finding %s: %d created events", subj, n)
		}
	}
	var worker string
	if err := db.QueryRow(`SELECT worker FROM jobs WHERE kind = 'vulndb.update' AND state = 'done'`).Scan(&worker); err != nil {
		t.Fatal(err)
	}
	// Both processes follow the new version; a resubmission through B changes nothing.
	put(urlB, "web-1", debInventory)
	time.Sleep(time.Second)
	if n := len(created()); n != 2 {
		t.Errorf("%d findings created after the resubmission through B, want 2", n)
	}

	// The process that ran the update dies without a word; the other one carries on alone.
	victim, survivorURL := a, urlB
	if strings.Contains(worker, fmt.Sprintf("-%d-", b.cmd.Process.Pid)) {
		victim, survivorURL = b, urlA
	}
	t.Logf("the update ran on %s; killing it", worker)
	victim.cmd.Process.Kill()
	victim.cmd.Wait()
	write(t, filepath.Join(mirror, "debian", "tracker.json"), trackerOpenSSL) // curl's advisories withdrawn
	if out, err := cli(append([]string{"db", "update", "--wait"}, remote(survivorURL)...)...); err != nil {
		t.Fatalf("db update on the survivor: %v\n%s", err, out)
	}
	waitFor(t, 30*time.Second, "curl's finding to close", func() bool {
		var n int
		db.QueryRow(`SELECT count(*) FROM outbox WHERE type = 'vigil.finding.closed'`).Scan(&n)
		return n == 1
	})
	out, err = cli(append([]string{"db", "status"}, remote(survivorURL)...)...)
	if err != nil || !strings.Contains(out, "last vulndb.update job") || !strings.Contains(out, "debian") ||
		!strings.Contains(out, "shared with the other server processes: version") {
		t.Errorf("db status on the survivor: %v\n%s", err, out)
	}
}

func httpsClient(t *testing.T, caFile string) *http.Client {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
}

const trackerOpenSSL = `{
 "openssl": {"CVE-2023-5678": {"description": "slow X9.42 DH key checks", "scope": "local",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.11-1~deb12u2"}, "fixed_version": "3.0.13-1~deb12u1", "urgency": "low"}}}}
}`

var debInventory = func() string {
	pkg := func(name, src, v string) map[string]any {
		return map[string]any{"name": name, "version": v, "ecosystem": "Debian:12", "sourceName": src, "sourceVersion": v, "arch": "amd64",
			"purl": "pkg:deb/debian/" + name + "@" + v + "?arch=amd64&distro=debian-12", "locations": []string{"/var/lib/dpkg/status"}}
	}
	b, _ := json.Marshal(map[string]any{"inventory": map[string]any{
		"os":       map[string]any{"family": "debian", "versionId": "12", "ecosystem": "Debian:12"},
		"packages": []any{pkg("libssl3", "openssl", "3.0.11-1~deb12u2"), pkg("curl", "curl", "7.88.1-10+deb12u5")},
	}})
	return string(b)
}()
