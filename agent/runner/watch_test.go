package runner

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// dpkg writes status-new and renames it over status.
	if err := os.WriteFile(p+"-new", []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+"-new", p); err != nil {
		t.Fatal(err)
	}
}

func TestWatchTriggers(t *testing.T) {
	old := settle
	settle = 50 * time.Millisecond
	defer func() { settle = old }()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "Package: bash\n")
	os.MkdirAll(filepath.Join(root, "var/lib/rpm"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg/info"), 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fired := make(chan struct{}, 10)
	go Watch(ctx, WatchPaths(root), func() { fired <- struct{}{} }, slog.New(slog.DiscardHandler))
	time.Sleep(100 * time.Millisecond) // the watches are in place

	expect := func(name string, want bool) {
		t.Helper()
		wait := 300 * time.Millisecond // long enough for a wrong trigger (settle is 50 ms)
		if want {
			wait = 5 * time.Second // generous on a loaded machine
		}
		select {
		case <-fired:
			if !want {
				t.Errorf("%s: triggered", name)
			}
		case <-time.After(wait):
			if want {
				t.Errorf("%s: not triggered", name)
			}
		}
	}
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "Package: bash\n\nPackage: nginx\n")
	expect("dpkg status", true)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/info/nginx.list"), []byte("/usr/sbin/nginx\n"), 0o644)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/lock"), nil, 0o644)
	expect("other dpkg files", false)
	os.WriteFile(filepath.Join(root, "var/lib/rpm/rpmdb.sqlite"), []byte("SQLite format 3\x00"), 0o644)
	expect("rpm database", true)
}

func TestPollTriggers(t *testing.T) {
	root := t.TempDir()
	status := filepath.Join(root, "lib/apk/db/installed")
	writeFile(t, status, "P:musl\nV:1.2.5-r0\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fired := make(chan struct{}, 10)
	go Poll(ctx, WatchPaths(root), 20*time.Millisecond, func() { fired <- struct{}{} })
	time.Sleep(50 * time.Millisecond)
	select {
	case <-fired:
		t.Fatal("triggered without a change")
	default:
	}
	writeFile(t, status, "P:musl\nV:1.2.5-r1\n")
	select {
	case <-fired:
	case <-time.After(2 * time.Second):
		t.Fatal("a changed apk database did not trigger")
	}
}
