// Command vigil is Vigil's one binary: inventory (sbom), one-shot scans (scan), the vulnerability
// database (db) and the server.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code chosen by a command (for example --fail-on in scan).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// A one-shot scan's live heap is small but churns (tar headers, decompression); collecting at 50%
	// growth instead of 100% keeps peak memory about a quarter lower for a few percent of CPU.
	// GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vigil",
		Short:         "Continuous vulnerability management for hosts, images and functions",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newSbomCmd(), newScanCmd(), newDBCmd())
	root.AddCommand(serverCommands()...)
	return root
}
