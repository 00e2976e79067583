//go:build !scanonly

package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/server/app"
)

// vigil db update --server --wait and vigil db status --server against a real server (SQLite, TLS on
// loopback) whose workers import a mirror.
func TestDBUpdateAndStatusOnServer(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	data := t.TempDir()
	srv, err := app.New(ctx, app.Config{DataDir: data, FeedMirror: mirror(t), JobPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.RunBackground(ctx); close(done) }()
	defer func() { stop(); <-done; srv.Close() }()
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	defer ts.Close()
	url := strings.Replace(ts.URL, "127.0.0.1", "localhost", 1)
	flags := []string{"--server", url, "--api-key", srv.AdminKey(), "--ca-file", srv.CAFile()}
	jobPoll = 20 * time.Millisecond

	// Before any update the server's data is stale: status says so and fails.
	out, err := run(t, append([]string{"db", "status"}, flags...)...)
	if err == nil || !strings.Contains(out, "warning: the vulnerability database is empty") {
		t.Fatalf("status before an update: %v\n%s", err, out)
	}
	out, err = run(t, append([]string{"db", "update", "--wait"}, flags...)...)
	if err != nil {
		t.Fatalf("update --wait: %v\n%s", err, out)
	}
	// stdout: the job ID, then the status once the job is done.
	id, _, _ := strings.Cut(out, "\n")
	if id == "" || !strings.Contains(out, "osv/npm") || !strings.Contains(out, "last vulndb.update job: "+id+" done") {
		t.Errorf("update --wait printed:\n%s", out)
	}
	out, err = run(t, append([]string{"db", "status"}, flags...)...)
	if err != nil || !strings.Contains(out, "debian") || strings.Contains(out, "STALE") {
		t.Errorf("status after the update: %v\n%s", err, out)
	}
	// Flags that only make sense locally are refused rather than ignored.
	if _, err := run(t, append([]string{"db", "update", "--mirror", data}, flags...)...); err == nil || !strings.Contains(err.Error(), "--mirror cannot be used with --server") {
		t.Errorf("--mirror with --server: %v", err)
	}
	// A wrong key is an error, not a silent local update.
	bad := []string{"db", "update", "--server", url, "--api-key", "vgl_aaaaaaaaaaaaaaaa_" + strings.Repeat("b", 52), "--ca-file", srv.CAFile()}
	if _, err := run(t, bad...); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a forged key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "vulndb.sqlite")); err != nil {
		t.Error(err)
	}
}
