package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/agent/state"
)

// Paths written by install (under --root-prefix).
const (
	unitPath = "etc/systemd/system/vigil-agent.service"
	envPath  = "etc/default/vigil-agent"
	binPath  = "/usr/bin/vigil-agent"
)

// Unit is the systemd unit. It orders itself before systemd-user-sessions so that at shutdown it
// stops after it, when /run/nologin exists: that is how the agent tells a host shutdown (heartbeat
// SHUTDOWN) from a service stop. The state directory is the only writable path.
func Unit(bin string) string {
	return `[Unit]
Description=Vigil agent (host inventory for a Vigil server)
Documentation=https://github.com/vigil-sec/vigil
Wants=network-online.target
After=network-online.target
Before=systemd-user-sessions.service

[Service]
Type=simple
EnvironmentFile=-/` + envPath + `
ExecStart=` + bin + ` run $VIGIL_AGENT_ARGS
Restart=always
RestartSec=10
# The agent reads the whole file system (as root) but writes only its state directory and, for
# self-update, its own binary.
ProtectSystem=full
ReadWritePaths=/var/lib/vigil-agent ` + filepath.Dir(bin) + `
PrivateTmp=yes
NoNewPrivileges=yes
Nice=10
IOSchedulingClass=idle
MemoryMax=256M
CPUQuota=50%
TimeoutStopSec=15

[Install]
WantedBy=multi-user.target
`
}

// EnvFile is the unit's configuration file.
func EnvFile(root, stateDir string) string {
	return `# vigil-agent configuration (read by vigil-agent.service).
# Enroll first: vigil-agent enroll --server https://HOST:8443 --token TOKEN --ca-fingerprint sha256:HEX
VIGIL_AGENT_ARGS="--root ` + root + ` --state-dir ` + stateDir + `"
`
}

func cmdInstall(args []string, stdout io.Writer) error {
	f := newFlags("install")
	prefix := f.String("root-prefix", "/", "write under this directory instead of / (packaging, tests)")
	bin := f.String("binary", binPath, "where the agent binary is installed (ExecStart)")
	copyBin := f.Bool("copy-binary", false, "copy this executable to --binary")
	root := f.String("root", "/", "the root file system the installed agent inventories")
	stateDir := f.String("state-dir", state.DefaultDir, "state directory")
	force := f.Bool("force", false, "overwrite an existing configuration file")
	if err := f.Parse(args); err != nil {
		return err
	}
	if !filepath.IsAbs(*bin) || strings.ContainsAny(*bin+*root+*stateDir, " \"'\n$") {
		return errors.New("install: --binary, --root and --state-dir must be absolute paths without spaces, quotes or $")
	}
	write := func(rel, content string, mode fs.FileMode, keep bool) error {
		p := filepath.Join(*prefix, rel)
		if keep {
			if _, err := os.Stat(p); err == nil {
				fmt.Fprintf(stdout, "kept %s\n", p)
				return nil
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := state.WriteAtomic(p, []byte(content), mode); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", p)
		return nil
	}
	if err := write(unitPath, Unit(*bin), 0o644, false); err != nil {
		return err
	}
	if err := write(envPath, EnvFile(*root, *stateDir), 0o644, !*force); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(*prefix, *stateDir), 0o700); err != nil {
		return err
	}
	if *copyBin {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(exe)
		if err != nil {
			return err
		}
		if err := write(*bin, string(b), 0o755, false); err != nil {
			return err
		}
	}
	if *prefix == "/" {
		fmt.Fprintln(stdout, "next: systemctl daemon-reload && vigil-agent enroll ... && systemctl enable --now vigil-agent")
	}
	return nil
}

func cmdStatus(args []string, stdout io.Writer) error {
	f := newFlags("status")
	stateDir := f.String("state-dir", state.DefaultDir, "state directory")
	asJSON := f.Bool("json", false, "print JSON")
	if err := f.Parse(args); err != nil {
		return err
	}
	st, err := state.Open(*stateDir)
	if err != nil {
		return err
	}
	cfg, err := st.LoadConfig()
	if err != nil {
		return err
	}
	acked, err := st.LoadAcked()
	if err != nil {
		return err
	}
	s := struct {
		Version       string    `json:"agentVersion"`
		AgentID       string    `json:"agentId"`
		Account       string    `json:"account"`
		Server        string    `json:"server"`
		CertNotAfter  time.Time `json:"certNotAfter"`
		Sensors       []string  `json:"sensors"`
		ExtraPaths    []string  `json:"extraPaths,omitempty"`
		Interval      int       `json:"intervalSeconds"`
		Heartbeat     int       `json:"heartbeatSeconds"`
		InventoryHash string    `json:"inventoryHash,omitempty"`
		Packages      int       `json:"packages"`
		UploadedAt    time.Time `json:"uploadedAt,omitzero"`
		Pending       bool      `json:"pendingUpload"`
		ReleaseKey    bool      `json:"releaseKeyPinned"`
		// Refused is set while the server refuses uploads (the account has not enabled host scanning).
		Refused *state.Refused `json:"uploadsRefused,omitempty"`
	}{version, cfg.AgentID, cfg.Account, cfg.Server, cfg.NotAfter, cfg.Sensors, cfg.ExtraPaths, cfg.IntervalSeconds,
		cfg.HeartbeatSeconds, acked.Hash, len(acked.Packages), acked.At, st.Exists(state.PendingFile), cfg.ReleaseKey != "", nil}
	if s.Refused, err = st.LoadRefused(); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(stdout, "agent %s (account %s), version %s\nserver %s\ncertificate valid until %s\n",
		s.AgentID, s.Account, s.Version, s.Server, s.CertNotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "sensors %s; collection every %d s; heartbeat every %d s\n", strings.Join(s.Sensors, ", "), s.Interval, s.Heartbeat)
	if s.InventoryHash == "" {
		fmt.Fprintln(stdout, "no inventory acknowledged yet")
	} else {
		fmt.Fprintf(stdout, "last inventory %s: %d packages, acknowledged %s\n", s.InventoryHash, s.Packages, s.UploadedAt.UTC().Format(time.RFC3339))
	}
	if s.Pending {
		fmt.Fprintln(stdout, "an upload is waiting to be sent")
	}
	if s.Refused != nil {
		fmt.Fprintf(stdout, "uploads refused since %s, next try %s: %s\n", s.Refused.Since.UTC().Format(time.RFC3339),
			s.Refused.RetryAt.UTC().Format(time.RFC3339), s.Refused.Reason)
	}
	if !s.ReleaseKey {
		fmt.Fprintln(stdout, "no release key pinned: self-update is refused")
	}
	return nil
}
