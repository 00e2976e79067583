//go:build !scanonly

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/store"
)

func newKeysCmd() *cobra.Command {
	cmd, m := newMgmtGroup("keys", "Create, list and revoke your account's API keys")
	list := &cobra.Command{Use: "list", Short: "List API keys (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Keys []store.APIKey `json:"keys"`
			}
			if err := m.get("/v1/keys", nil, &out); err != nil {
				return err
			}
			return m.show(cmd, out.Keys, func(w io.Writer) {
				fmt.Fprintln(w, "KEY\tNAME\tROLE\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
				when := func(t *time.Time) string {
					if t == nil {
						return "-"
					}
					return t.Format(time.RFC3339)
				}
				for _, k := range out.Keys {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.CreatedAt.Format(time.RFC3339), when(k.ExpiresAt),
						when(k.LastUsedAt), when(k.RevokedAt))
				}
			})
		}}
	var req app.KeyRequest
	var validFor time.Duration
	create := &cobra.Command{Use: "create", Short: "Create an API key; the secret is printed once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if validFor > 0 {
				t := time.Now().Add(validFor)
				req.ExpiresAt = &t
			}
			var out app.CreatedKey
			if err := m.do(http.MethodPost, "/v1/keys", nil, req, &out); err != nil {
				return err
			}
			if m.output == "json" {
				return m.show(cmd, out, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "key %s (%s, %s) — the secret above is shown once\n", out.Key.ID, out.Key.Name, out.Key.Role)
			return nil
		}}
	create.Flags().StringVar(&req.Name, "name", "", "what the key is for (required)")
	create.Flags().StringVar(&req.Role, "role", "READ_ONLY", "ADMIN or READ_ONLY")
	create.Flags().DurationVar(&validFor, "valid-for", 0, "expire the key after this long (0: never)")
	revoke := &cobra.Command{Use: "revoke KEY_ID", Short: "Revoke an API key at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.do(http.MethodDelete, "/v1/keys/"+url.PathEscape(args[0]), nil, nil, nil)
		}}
	cmd.AddCommand(list, create, revoke)
	return cmd
}
