//go:build !scanonly

package main

import "github.com/spf13/cobra"

// serverCommands are the server and its API clients. A scan-only build (go build -tags scanonly)
// leaves them out: it links no server code, which keeps a CI runner's one-shot scans lean.
func serverCommands() []*cobra.Command {
	return []*cobra.Command{newServerCmd(), newFindingsCmd(), newCoverageCmd(), newAgentsCmd(), newTokensCmd(),
		newFiltersCmd(), newResourcesCmd(), newAccountsCmd(), newKeysCmd(), newWebhooksCmd(), newAuditCmd()}
}
