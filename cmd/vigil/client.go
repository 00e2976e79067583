//go:build !scanonly

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/agents"
)

// apiClient talks to a Vigil server for the read commands.
type apiClient struct{ submitFlags }

func (c *apiClient) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&c.server, "server", os.Getenv("VIGIL_SERVER"), "Vigil server URL ($VIGIL_SERVER)")
	fl.StringVar(&c.apiKey, "api-key", os.Getenv("VIGIL_API_KEY"), "API key ($VIGIL_API_KEY)")
	fl.StringVar(&c.caFile, "ca-file", os.Getenv("VIGIL_CA_FILE"), "the server's CA certificate (PEM)")
	fl.StringVar(&c.caFingerprint, "ca-fingerprint", os.Getenv("VIGIL_CA_FINGERPRINT"), "pin the server's CA by its SHA-256 fingerprint")
}

func (c *apiClient) get(path string, q url.Values, out any) error {
	return c.do(http.MethodGet, path, q, nil, out)
}

// do sends one request; body, when not nil, is sent as JSON.
func (c *apiClient) do(method, path string, q url.Values, body any, out any) error {
	if c.server == "" || c.apiKey == "" {
		return fmt.Errorf("set --server and --api-key (or $VIGIL_SERVER and $VIGIL_API_KEY)")
	}
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	u := strings.TrimRight(c.server, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Title, Detail string
			Errors        []struct{ Field, Message string }
		}
		_ = json.Unmarshal(b, &p)
		msg := fmt.Sprintf("%s: %s %s", resp.Status, p.Title, p.Detail)
		for _, e := range p.Errors {
			msg += fmt.Sprintf("; %s %s", e.Field, e.Message)
		}
		return errors.New(msg)
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

func newFindingsCmd() *cobra.Command {
	var c apiClient
	var severity, status, vuln, resource, pkg, fix, exploit []string
	var jsonOut bool
	var max int
	cmd := &cobra.Command{
		Use:   "findings",
		Short: "List a server's findings with filters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			add := func(k string, vs []string) {
				for _, v := range vs {
					q.Add(k, v)
				}
			}
			add("severity", severity)
			add("status", status)
			add("vulnerabilityId", vuln)
			add("resourceId", resource)
			add("packageName", pkg)
			add("fixAvailable", fix)
			add("exploitAvailable", exploit)
			var all []model.Finding
			for {
				var page struct {
					Findings  []model.Finding `json:"findings"`
					NextToken string          `json:"nextToken"`
				}
				if err := c.get("/v1/findings", q, &page); err != nil {
					return err
				}
				all = append(all, page.Findings...)
				if page.NextToken == "" || (max > 0 && len(all) >= max) {
					break
				}
				q.Set("nextToken", page.NextToken)
			}
			if max > 0 && len(all) > max {
				all = all[:max]
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(all)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEVERITY\tRISK\tVULNERABILITY\tRESOURCE\tPACKAGES\tFIX\tSTATUS\tFIRST SEEN")
			for _, f := range all {
				var pk []string
				for _, p := range f.Packages {
					pk = append(pk, p.Name+" "+p.Version)
				}
				fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, f.RiskScore.Score, f.VulnerabilityID, f.ResourceID,
					strings.Join(pk, ", "), f.FixAvailable, f.Status, f.FirstObservedAt.Format("2006-01-02"))
			}
			tw.Flush()
			fmt.Fprintf(cmd.ErrOrStderr(), "%d findings\n", len(all))
			return nil
		},
	}
	c.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&severity, "severity", nil, "CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED")
	fl.StringSliceVar(&status, "status", nil, "ACTIVE, SUPPRESSED, CLOSED")
	fl.StringSliceVar(&vuln, "vulnerability", nil, "vulnerability IDs")
	fl.StringSliceVar(&resource, "resource", nil, "resource IDs")
	fl.StringSliceVar(&pkg, "package", nil, "package names")
	fl.StringSliceVar(&fix, "fix-available", nil, "YES, NO, PARTIAL")
	fl.StringSliceVar(&exploit, "exploit-available", nil, "YES, NO")
	fl.BoolVar(&jsonOut, "json", false, "print JSON")
	fl.IntVar(&max, "max", 0, "stop after this many findings (0: all)")
	cmd.AddCommand(newFindingsAggregateCmd(), newFindingsGetCmd())
	return cmd
}

func newCoverageCmd() *cobra.Command {
	var c apiClient
	var o output
	var cf coverageFilters
	cmd := &cobra.Command{
		Use:   "coverage",
		Short: "Show a server's coverage per resource and scan type",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			q := url.Values{}
			cf.query(q)
			var all []model.Coverage
			for {
				var page struct {
					Coverage  []model.Coverage `json:"coverage"`
					NextToken string           `json:"nextToken"`
				}
				if err := c.get("/v1/coverage", q, &page); err != nil {
					return err
				}
				all = append(all, page.Coverage...)
				if page.NextToken == "" {
					break
				}
				q.Set("nextToken", page.NextToken)
			}
			return o.print(cmd.OutOrStdout(), all, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "RESOURCE\tTYPE\tSCAN TYPE\tSTATUS\tREASON\tMODE\tLAST SCANNED")
				for _, cv := range all {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cv.ResourceID, cv.ResourceType, cv.ScanType, cv.Status,
						cv.Reason, cv.ScanMode, cv.LastScannedAt.Format("2006-01-02 15:04"))
				}
			})
		},
	}
	c.register(cmd)
	o.register(cmd)
	cf.register(cmd)
	cmd.AddCommand(newCoverageStatsCmd())
	return cmd
}

func newAgentsCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "agents", Short: "List and revoke a server's agents"}
	c.register(cmd)
	cmd.PersistentFlags().AddFlagSet(cmd.Flags())
	list := &cobra.Command{
		Use: "list", Short: "List agents with their ping status", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Agents []agents.AgentView `json:"agents"`
			}
			if err := c.get("/v1/agents", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AGENT	HOSTNAME	PING	VERSION	LAST HEARTBEAT	SENSORS	ERRORS")
			for _, a := range out.Agents {
				hb := "-"
				if !a.LastHeartbeat.IsZero() {
					hb = a.LastHeartbeat.Format("2006-01-02 15:04:05")
				}
				ping := a.PingStatus
				if a.RevokedAt != nil {
					ping = "REVOKED"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", a.ID, a.Hostname, ping, a.Version, hb, strings.Join(a.Sensors, ","), len(a.Errors))
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use: "revoke AGENT_ID", Short: "Revoke an agent: its certificate is refused from now on", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.do(http.MethodPost, "/v1/agents/"+url.PathEscape(args[0])+"/revoke", nil, nil, nil)
		},
	}
	cmd.AddCommand(list, revoke)
	return cmd
}

func newTokensCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "tokens", Short: "Create, list and revoke agent join tokens"}
	c.register(cmd)
	cmd.PersistentFlags().AddFlagSet(cmd.Flags())
	var name string
	var validity time.Duration
	var uses int
	create := &cobra.Command{
		Use: "create", Short: "Create a join token (shown once)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out agents.CreatedToken
			if err := c.do(http.MethodPost, "/v1/agent-join-tokens", nil, agents.TokenRequest{Name: name,
				ValiditySeconds: int64(validity.Seconds()), MaxUses: uses}, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", out.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s: %d uses, expires %s (shown once)\n", out.ID, out.MaxUses, out.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "a label for the token")
	create.Flags().DurationVar(&validity, "valid-for", 24*time.Hour, "how long the token may be used")
	create.Flags().IntVar(&uses, "max-uses", 1, "how many agents may enroll with it")
	list := &cobra.Command{
		Use: "list", Short: "List join tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Tokens []agents.JoinToken `json:"tokens"`
			}
			if err := c.get("/v1/agent-join-tokens", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOKEN\tNAME\tUSES\tEXPIRES\tREVOKED")
			for _, t := range out.Tokens {
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%v\n", t.ID, t.Name, t.Uses, t.MaxUses, t.ExpiresAt.Format(time.RFC3339), t.RevokedAt != nil)
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use: "revoke TOKEN_ID", Short: "Revoke a join token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.do(http.MethodPost, "/v1/agent-join-tokens/"+url.PathEscape(args[0])+"/revoke", nil, nil, nil)
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
