package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/collect"
	"github.com/vigil-sec/vigil/agent/runner"
	"github.com/vigil-sec/vigil/agent/state"
	"github.com/vigil-sec/vigil/agent/update"
)

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlags("run")
	root := f.String("root", "/", "the host's root file system (a mounted root when the agent runs in a container)")
	stateDir := f.String("state-dir", state.DefaultDir, "state directory")
	health := f.Bool("health-check", false, "check that the state loads and the server is reachable, write the healthy marker, exit")
	releaseKey := f.String("release-key", "", "pin this base64 ed25519 release key in the config")
	once := f.Bool("once", false, "collect, upload and send one heartbeat, then exit")
	if err := f.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	st, err := state.Open(*stateDir)
	if err != nil {
		return err
	}
	cfg, err := st.LoadConfig()
	if err != nil {
		return err
	}
	if *releaseKey != "" && *releaseKey != cfg.ReleaseKey {
		if _, err := update.ParseKey(*releaseKey); err != nil {
			return err
		}
		cfg.ReleaseKey = *releaseKey
		if err := st.SaveConfig(cfg); err != nil {
			return err
		}
	}
	pair, ca, err := st.LoadIdentity()
	if err != nil {
		return err
	}
	var cert atomic.Pointer[tls.Certificate]
	cert.Store(pair)
	api, err := client.New(cfg.Server, ca, func() (*tls.Certificate, error) { return cert.Load(), nil })
	if err != nil {
		return err
	}

	if *health {
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := api.Ping(hctx); err != nil {
			return fmt.Errorf("health check: %w", err)
		}
		return st.Write(state.HealthyFile, []byte(version+"\n"), 0o600)
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	// A new binary that keeps dying before its first heartbeat is replaced by the previous one.
	rolledBack, err := update.CheckPending(st.File(runner.UpdateMarker), exe, version)
	if err != nil {
		log.Warn("update marker", "err", err)
	}
	if rolledBack {
		log.Error("the updated agent did not become healthy; the previous binary is restored")
		return reexec(exe)
	}

	col := func(ctx context.Context, sensors, paths []string) (*collect.Snapshot, error) {
		c := &collect.Collector{Root: *root, Sensors: sensors, ExtraPaths: paths}
		return c.Collect(ctx)
	}
	r := &runner.Runner{
		State: st, Config: cfg, API: api, Collect: col, Version: version, Log: log,
		Exe: exe, Exec: reexec, Cert: &cert, OnRenew: api.CloseIdle,
		HealthCheck: func(ctx context.Context, exe string) error {
			cmd := exec.CommandContext(ctx, exe, "run", "--health-check", "--state-dir", *stateDir, "--root", *root)
			cmd.Stdout, cmd.Stderr = stderr, stderr
			return cmd.Run()
		},
		Watch: runner.WatchPaths(*root),
	}
	if *once {
		if err := r.CollectAndStore(ctx); err != nil {
			return err
		}
		if err := r.Flush(ctx); err != nil {
			return err
		}
		return r.Heartbeat(ctx)
	}
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("vigil-agent running", "version", version, "agent", cfg.AgentID, "server", cfg.Server, "root", *root)
	return r.Run(sctx, hostStopping)
}

// hostStopping tells a host shutdown from a service stop: systemd-user-sessions creates
// /run/nologin when it stops at shutdown, and the unit is ordered so that it stops after it;
// a scheduled shutdown leaves /run/systemd/shutdown/scheduled.
func hostStopping() bool {
	for _, p := range []string{"/run/nologin", "/run/systemd/shutdown/scheduled"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// reexec replaces the process with exe, same arguments and environment (same PID for systemd).
func reexec(exe string) error {
	err := syscall.Exec(exe, os.Args, os.Environ())
	if err == nil {
		return errors.New("exec returned")
	}
	return fmt.Errorf("exec %s: %w", exe, err)
}
