package runner

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// PackageDBs are the package databases whose change triggers a collection, relative to the root.
// A trailing "/" means every file in that directory.
var PackageDBs = []string{"var/lib/dpkg/status", "var/lib/rpm/", "usr/lib/sysimage/rpm/", "lib/apk/db/installed"}

// WatchPaths returns PackageDBs under root.
func WatchPaths(root string) []string {
	out := make([]string, len(PackageDBs))
	for i, p := range PackageDBs {
		out[i] = filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			out[i] += string(filepath.Separator)
		}
	}
	return out
}

// Quiet period and polling: a package manager writes its database in several steps, so a
// collection starts once the files have been quiet for settle (well within the 60 s promised).
var (
	settle       = 10 * time.Second
	pollInterval = 15 * time.Second
)

// Watch calls trigger soon after a change to one of paths (files, or directories ending in "/"),
// with inotify through fsnotify; where inotify is unavailable (no kernel support, watches exhausted)
// it falls back to polling sizes and modification times every 15 s. It returns when ctx ends.
func Watch(ctx context.Context, paths []string, trigger func(), log *slog.Logger) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		dirs := map[string]bool{}
		for _, p := range paths {
			// Watch the directory: dpkg and apk replace their files by rename.
			// (filepath.Dir of "a/rpm/" is "a/rpm".)
			d := filepath.Dir(p)
			if _, serr := os.Stat(d); serr == nil && !dirs[d] {
				if aerr := w.Add(d); aerr != nil {
					err = aerr
					break
				}
				dirs[d] = true
			}
		}
		if err == nil {
			defer w.Close()
			watchEvents(ctx, w, paths, trigger)
			return
		}
		w.Close()
	}
	log.Info("inotify unavailable, polling package databases", "err", err, "every", pollInterval)
	Poll(ctx, paths, pollInterval, trigger)
}

func matches(paths []string, name string) bool {
	for _, p := range paths {
		if strings.HasSuffix(p, string(filepath.Separator)) {
			if filepath.Dir(name)+string(filepath.Separator) == p {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

func watchEvents(ctx context.Context, w *fsnotify.Watcher, paths []string, trigger func()) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if matches(paths, ev.Name) {
				timer.Reset(settle)
			}
		case _, ok := <-w.Errors:
			if !ok {
				return
			}
			// An overflow may hide a change: collect to be sure.
			timer.Reset(settle)
		case <-timer.C:
			trigger()
		}
	}
}

type stamp struct {
	size int64
	mod  time.Time
}

// snapshot stats the watched files (directory entries for directories).
func snapshotStamps(paths []string) map[string]stamp {
	out := map[string]stamp{}
	add := func(p string) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out[p] = stamp{fi.Size(), fi.ModTime()}
		}
	}
	for _, p := range paths {
		if strings.HasSuffix(p, string(filepath.Separator)) {
			ents, _ := os.ReadDir(p)
			for _, e := range ents {
				add(filepath.Join(p, e.Name()))
			}
			continue
		}
		add(p)
	}
	return out
}

// Poll calls trigger when the size or modification time of a watched file changes, checking
// every interval.
func Poll(ctx context.Context, paths []string, interval time.Duration, trigger func()) {
	last := snapshotStamps(paths)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cur := snapshotStamps(paths)
			if !sameStamps(last, cur) {
				trigger()
			}
			last = cur
		}
	}
}

func sameStamps(a, b map[string]stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.mod.Equal(v.mod) || w.size != v.size {
			return false
		}
	}
	return true
}
