// Command vigil-agent is Vigil's host agent: it enrolls with a Vigil server, keeps a mutually
// authenticated channel to it, sends the host's inventory when it changes, obeys only a closed set
// of typed instructions and updates itself from signed releases. It never runs a command it was
// sent, and it has no listening port.
//
//	vigil-agent enroll --server URL --token TOKEN --ca-fingerprint sha256:HEX [--state-dir DIR] [--release-key B64] [--retry-for 2m]
//	vigil-agent run [--root /] [--state-dir DIR] [--health-check]
//	vigil-agent install [--root-prefix DIR] [--binary PATH] [--state-dir DIR] [--root /]
//	vigil-agent status [--state-dir DIR] [--json]
//	vigil-agent version
package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/collect"
	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/agent/state"
	"github.com/vigil-sec/vigil/agent/update"
	"github.com/vigil-sec/vigil/inventory/osrelease"
	"github.com/vigil-sec/vigil/source/dir"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-agent:", err)
		os.Exit(1)
	}
}

const usage = `usage: vigil-agent <command> [flags]
commands:
  enroll    enroll this host with a Vigil server (join token + pinned CA fingerprint)
  run       run the agent (what the systemd unit starts)
  install   write the systemd unit and its configuration file
  status    show the agent's enrollment and last upload
  collect   collect once and print what would be sent (no server needed)
  version   print the version`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "enroll":
		return cmdEnroll(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stderr)
	case "install":
		return cmdInstall(args[1:], stdout)
	case "status":
		return cmdStatus(args[1:], stdout)
	case "collect":
		return cmdCollect(ctx, args[1:], stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil-agent "+name, flag.ContinueOnError)
	return fs
}

func cmdEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("enroll")
	server := f.String("server", "", "server URL, https://host:port")
	token := f.String("token", os.Getenv("VIGIL_AGENT_TOKEN"), "join token (or $VIGIL_AGENT_TOKEN)")
	fp := f.String("ca-fingerprint", "", "the server CA's fingerprint, sha256:<hex>, as `vigil server` prints it")
	stateDir := f.String("state-dir", state.DefaultDir, "state directory")
	root := f.String("root", "/", "the host's root file system (for hostname, machine-id, OS)")
	releaseKey := f.String("release-key", "", "base64 ed25519 public key of agent releases (self-update is refused without it)")
	force := f.Bool("force", false, "enroll again even if already enrolled")
	retryFor := f.Duration("retry-for", 2*time.Minute, "keep retrying a rate-limited enrollment (429) this long at most")
	if err := f.Parse(args); err != nil {
		return err
	}
	if *server == "" || *token == "" || *fp == "" {
		return errors.New("enroll needs --server, --token and --ca-fingerprint")
	}
	if *releaseKey != "" {
		if _, err := update.ParseKey(*releaseKey); err != nil {
			return err
		}
	}
	st, err := state.Open(*stateDir)
	if err != nil {
		return err
	}
	if old, err := st.LoadConfig(); err == nil && old.AgentID != "" && !*force {
		return fmt.Errorf("already enrolled as %s with %s (use --force to enroll again)", old.AgentID, old.Server)
	}
	key, err := client.NewKey()
	if err != nil {
		return err
	}
	facts := quickFacts(ctx, *root)
	csr, err := client.CSR(key, facts.Hostname)
	if err != nil {
		return err
	}
	// The server rate-limits enrollment per client address (50/s by default): a fleet enrolled at
	// once, or hosts behind one NAT address, are told to come back later.
	resp, ca, err := client.EnrollRetrying(ctx, *server, *fp, &protocol.EnrollRequest{
		Token: *token, CSR: csr, Hostname: facts.Hostname, MachineID: facts.MachineID, Version: version, OS: facts.OS,
	}, client.EnrollPolicy{Within: *retryFor, OnRetry: func(err error, attempt int, wait time.Duration) {
		fmt.Fprintf(stderr, "vigil-agent: the server is busy (%s); enrolling again in %s (attempt %d)\n",
			refusal(err), wait.Round(100*time.Millisecond), attempt+1)
	}})
	if errors.Is(err, client.ErrGaveUp) {
		return fmt.Errorf("enrollment not done, the server is busy: %v\nnothing was saved and the join token was not used: run the same enroll command again later (or with a longer --retry-for)", err)
	}
	if err != nil {
		return err
	}
	cert, err := client.ParseCert([]byte(resp.Certificate))
	if err != nil {
		return err
	}
	if err := st.SaveIdentity(key, []byte(resp.Certificate)); err != nil {
		return err
	}
	if err := st.Write(state.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		return err
	}
	nfp, _ := client.NormalizeFingerprint(*fp)
	cfg := &state.Config{
		Server: strings.TrimRight(*server, "/"), AgentID: resp.AgentID, Account: resp.Account, CAFingerprint: nfp,
		HeartbeatSeconds: resp.HeartbeatSeconds, IntervalSeconds: 1800, Sensors: collect.DefaultSensors,
		ReleaseKey: *releaseKey, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
	}
	if err := st.SaveConfig(cfg); err != nil {
		return err
	}
	_ = st.Remove(state.AckedFile) // a new identity starts with a full upload
	fmt.Fprintf(stdout, "enrolled as %s (account %s); certificate valid until %s\n", resp.AgentID, resp.Account, cert.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// refusal names a server refusal briefly: "429 Too Many Requests".
func refusal(err error) string {
	var se *client.StatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %s", se.Status, http.StatusText(se.Status))
	}
	return err.Error()
}

// quickFacts reads what enrollment tells the server: hostname, machine-id, OS.
func quickFacts(ctx context.Context, root string) *protocol.Facts {
	f := &protocol.Facts{}
	if b, err := os.ReadFile(filepath.Join(root, "etc/machine-id")); err == nil {
		f.MachineID = strings.TrimSpace(string(b))
	}
	for _, p := range []string{"proc/sys/kernel/hostname", "etc/hostname"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil && f.Hostname == "" {
			f.Hostname = strings.TrimSpace(string(b))
		}
	}
	if f.Hostname == "" {
		f.Hostname, _ = os.Hostname() // the server requires one
	}
	if t, err := dir.Open(root); err == nil {
		f.OS, _ = osrelease.Detector{}.Detect(ctx, t.FS)
		t.Close()
	}
	return f
}

func cmdCollect(ctx context.Context, args []string, stdout io.Writer) error {
	f := newFlags("collect")
	root := f.String("root", "/", "the host's root file system")
	sensors := f.String("sensors", strings.Join(collect.DefaultSensors, ","), "comma-separated sensors")
	summary := f.Bool("summary", false, "print counts instead of the JSON snapshot")
	if err := f.Parse(args); err != nil {
		return err
	}
	c := &collect.Collector{Root: *root, Sensors: strings.Split(*sensors, ",")}
	snap, err := c.Collect(ctx)
	if err != nil {
		return err
	}
	if *summary {
		n := 0
		if snap.Facts != nil {
			n = len(snap.Facts.Listening)
		}
		fmt.Fprintf(stdout, "%d packages, %d listening sockets, %d errors, %.3f s\n", len(snap.Inventory.Packages), n, len(snap.Errors), snap.Inventory.Duration)
		return nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(snap)
}
