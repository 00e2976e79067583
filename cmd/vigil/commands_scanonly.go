//go:build scanonly

package main

import "github.com/spf13/cobra"

// serverCommands: none in a scan-only build (sbom, scan, db and --submit remain).
func serverCommands() []*cobra.Command { return nil }
