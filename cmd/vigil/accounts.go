//go:build !scanonly

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/store"
)

// mgmtCmd is a command group talking to a server's management API: the connection flags are
// shared by every subcommand, and so is -o table|json.
type mgmtCmd struct {
	apiClient
	output string
}

func newMgmtGroup(use, short string) (*cobra.Command, *mgmtCmd) {
	m := &mgmtCmd{}
	cmd := &cobra.Command{Use: use, Short: short}
	m.register(cmd)
	cmd.Flags().StringVarP(&m.output, "output", "o", "table", "output format: table or json")
	cmd.PersistentFlags().AddFlagSet(cmd.Flags())
	return cmd, m
}

// show prints v as JSON with -o json, else calls table with a tab writer.
func (m *mgmtCmd) show(cmd *cobra.Command, v any, table func(w io.Writer)) error {
	switch m.output {
	case "json":
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
	return fmt.Errorf("-o %q: want table or json", m.output)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func accountRows(w io.Writer, accts ...app.AccountView) {
	fmt.Fprintln(w, "ACCOUNT\tNAME\tROLE\tORGANIZATION\tRELATIONSHIP\tDELEGATED ADMIN\tSTATUS\tSCAN TYPES")
	for _, a := range accts {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.AccountID, a.Name, a.Role, orDash(a.OrganizationID), orDash(a.RelationshipStatus),
			orDash(a.DelegatedAdminAccountID), a.Status, orDash(strings.Join(a.EnabledScanTypes, ",")))
	}
}

func orgRows(w io.Writer, o app.OrganizationView) {
	fmt.Fprintln(w, "ORGANIZATION\tMANAGEMENT\tDELEGATED ADMIN\tMEMBERS\tAUTO-ENABLE")
	fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", o.ID, o.ManagementAccount, orDash(o.DelegatedAdmin), o.Members, orDash(strings.Join(o.AutoEnable, ",")))
}

func newAccountsCmd() *cobra.Command {
	cmd, m := newMgmtGroup("accounts", "Manage accounts, their scan types and organizations")
	cmd.Long = `Manage accounts and organizations on a Vigil server.

Scan types: ` + strings.Join(app.ScanTypes, ", ") + `.
The operator (an ADMIN key of the "default" account) creates standalone accounts; an organization's management
account creates members, designates the delegated admin and sets auto-enable; the delegated admin manages members.`

	list := &cobra.Command{Use: "list", Short: "List the accounts you may see", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Accounts []app.AccountView `json:"accounts"`
			}
			if err := m.get("/v1/accounts", nil, &out); err != nil {
				return err
			}
			return m.show(cmd, out.Accounts, func(w io.Writer) { accountRows(w, out.Accounts...) })
		}}
	get := &cobra.Command{Use: "get ACCOUNT", Short: "Show an account", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a app.AccountView
			if err := m.get("/v1/accounts/"+url.PathEscape(args[0]), nil, &a); err != nil {
				return err
			}
			return m.show(cmd, a, func(w io.Writer) { accountRows(w, a) })
		}}
	status := &cobra.Command{Use: "status [ACCOUNT...]", Short: "Status of accounts (default: your own)",
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Accounts []app.AccountView          `json:"accounts"`
				Failed   []app.AccountStatusFailure `json:"failedAccounts"`
			}
			if err := m.get("/v1/account-status", url.Values{"accountId": args}, &out); err != nil {
				return err
			}
			return m.show(cmd, out, func(w io.Writer) {
				fmt.Fprintln(w, "ACCOUNT\tSTATUS\t"+strings.ToUpper(strings.Join(app.ScanTypes, "\t")))
				for _, a := range out.Accounts {
					row := []string{a.AccountID, a.Status}
					for _, t := range app.ScanTypes {
						row = append(row, a.ResourceStatus[t])
					}
					fmt.Fprintln(w, strings.Join(row, "\t"))
				}
				for _, f := range out.Failed {
					fmt.Fprintf(w, "%s\t%s\t%s\n", f.AccountID, f.ErrorCode, f.ErrorMessage)
				}
			})
		}}
	var req app.CreateAccountRequest
	var scanTypes []string
	create := &cobra.Command{Use: "create ACCOUNT", Short: "Create an account (the operator) or a member (a management account)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.AccountID = args[0]
			if cmd.Flags().Changed("scan-types") {
				req.EnabledScanTypes = &scanTypes
			}
			var out app.CreatedAccount
			if err := m.do(http.MethodPost, "/v1/accounts", nil, req, &out); err != nil {
				return err
			}
			if out.AdminKey != "" && m.output != "json" {
				fmt.Fprintf(cmd.ErrOrStderr(), "administrator key of %s (shown once, store it now):\n%s\n", out.Account.AccountID, out.AdminKey)
			}
			return m.show(cmd, out, func(w io.Writer) { accountRows(w, out.Account) })
		}}
	create.Flags().StringVar(&req.Name, "name", "", "display name")
	create.Flags().StringVar(&req.OrganizationID, "organization", "", "create it as an associated member of this organization")
	create.Flags().StringSliceVar(&scanTypes, "scan-types", nil, "scan types to enable (default: the organization's auto-enable, else none)")
	create.Flags().BoolVar(&req.IssueAdminKey, "issue-admin-key", false, "return a first ADMIN key of the new account")
	setTypes := func(verb string) *cobra.Command {
		return &cobra.Command{Use: verb + " ACCOUNT SCAN_TYPE...", Short: strings.ToUpper(verb[:1]) + verb[1:] + " scan types for an account",
			Args: cobra.MinimumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				var a app.AccountView
				if err := m.do(http.MethodPost, "/v1/accounts/"+url.PathEscape(args[0])+"/"+verb, nil,
					app.ScanTypesRequest{ScanTypes: splitList(args[1:])}, &a); err != nil {
					return err
				}
				return m.show(cmd, a, func(w io.Writer) { accountRows(w, a) })
			}}
	}
	cmd.AddCommand(list, get, status, create, setTypes("enable"), setTypes("disable"), newOrgCmd(m))
	return cmd
}

func splitList(args []string) []string {
	var out []string
	for _, a := range args {
		for _, p := range strings.Split(a, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func newOrgCmd(m *mgmtCmd) *cobra.Command {
	cmd := &cobra.Command{Use: "org", Short: "Organizations: members, delegated admin, auto-enable"}
	orgPath := func(id string, rest ...string) string {
		return "/v1/organizations/" + url.PathEscape(id) + strings.Join(rest, "")
	}
	printOrg := func(cmd *cobra.Command, o app.OrganizationView) error {
		return m.show(cmd, o, func(w io.Writer) { orgRows(w, o) })
	}
	var creq app.CreateOrganizationRequest
	create := &cobra.Command{Use: "create ORGANIZATION", Short: "Create an organization (the operator)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			creq.OrganizationID = args[0]
			var o app.OrganizationView
			if err := m.do(http.MethodPost, "/v1/organizations", nil, creq, &o); err != nil {
				return err
			}
			return printOrg(cmd, o)
		}}
	create.Flags().StringVar(&creq.Name, "name", "", "display name")
	create.Flags().StringVar(&creq.ManagementAccountID, "management-account", "", "its management account (default: the operator's own)")
	show := &cobra.Command{Use: "show ORGANIZATION", Short: "Show an organization and its configuration", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o app.OrganizationView
			if err := m.get(orgPath(args[0]), nil, &o); err != nil {
				return err
			}
			return printOrg(cmd, o)
		}}
	var auto []string
	config := &cobra.Command{Use: "configure ORGANIZATION", Short: "Set the scan types enabled for new members", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o app.OrganizationView
			if err := m.do(http.MethodPut, orgPath(args[0], "/configuration"), nil, app.OrganizationConfiguration{AutoEnable: splitList(auto)}, &o); err != nil {
				return err
			}
			return printOrg(cmd, o)
		}}
	config.Flags().StringSliceVar(&auto, "auto-enable", nil, "scan types enabled for every new member (empty: none)")
	members := &cobra.Command{Use: "members ORGANIZATION", Short: "List an organization's accounts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Members []app.MemberView `json:"members"`
			}
			if err := m.get(orgPath(args[0], "/members"), nil, &out); err != nil {
				return err
			}
			return m.show(cmd, out.Members, func(w io.Writer) {
				fmt.Fprintln(w, "ACCOUNT\tNAME\tROLE\tRELATIONSHIP\tDELEGATED ADMIN\tSCAN TYPES\tUPDATED")
				for _, x := range out.Members {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.AccountID, x.Name, x.Role, x.RelationshipStatus, orDash(x.DelegatedAdminAccountID),
						orDash(strings.Join(x.EnabledScanTypes, ",")), x.UpdatedAt.Format(time.RFC3339))
				}
			})
		}}
	associate := &cobra.Command{Use: "associate ORGANIZATION ACCOUNT", Short: "Associate an account with the organization's delegated admin", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a app.AccountView
			if err := m.do(http.MethodPost, orgPath(args[0], "/members"), nil, app.MemberRequest{AccountID: args[1]}, &a); err != nil {
				return err
			}
			return m.show(cmd, a, func(w io.Writer) { accountRows(w, a) })
		}}
	disassociate := &cobra.Command{Use: "disassociate ORGANIZATION ACCOUNT", Short: "Disassociate a member: it becomes standalone", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.do(http.MethodDelete, orgPath(args[0], "/members/", url.PathEscape(args[1])), nil, nil, nil)
		}}
	da := &cobra.Command{Use: "delegated-admin", Short: "Designate or remove the organization's delegated admin"}
	daEnable := &cobra.Command{Use: "enable ORGANIZATION ACCOUNT", Short: "Designate the delegated admin (at most one)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o app.OrganizationView
			if err := m.do(http.MethodPut, orgPath(args[0], "/delegated-admin"), nil, app.MemberRequest{AccountID: args[1]}, &o); err != nil {
				return err
			}
			return printOrg(cmd, o)
		}}
	daDisable := &cobra.Command{Use: "disable ORGANIZATION", Short: "Remove the delegated admin; members become standalone", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.do(http.MethodDelete, orgPath(args[0], "/delegated-admin"), nil, nil, nil)
		}}
	da.AddCommand(daEnable, daDisable)
	cmd.AddCommand(create, show, config, members, associate, disassociate, da)
	return cmd
}

func newAuditCmd() *cobra.Command {
	cmd, m := newMgmtGroup("audit", "Read the audit log: who changed what, when and from where")
	var account, actor, action, since, until string
	var max int
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		q := url.Values{}
		for k, v := range map[string]string{"account": account, "actor": actor, "action": action, "since": since, "until": until} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var all []store.AuditEntry
		for {
			var page struct {
				Entries   []store.AuditEntry `json:"entries"`
				NextToken string             `json:"nextToken"`
			}
			if err := m.get("/v1/audit-log", q, &page); err != nil {
				return err
			}
			all = append(all, page.Entries...)
			if page.NextToken == "" || (max > 0 && len(all) >= max) {
				break
			}
			q.Set("nextToken", page.NextToken)
		}
		if max > 0 && len(all) > max {
			all = all[:max]
		}
		return m.show(cmd, all, func(w io.Writer) {
			fmt.Fprintln(w, "TIME\tACCOUNT\tACTOR\tACTION\tTARGET\tFROM")
			for _, e := range all {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Account, e.Actor, e.Action, e.Target, e.RemoteAddr)
			}
		})
	}
	fl := cmd.Flags()
	fl.StringVar(&account, "account", "", "one account of your scope")
	fl.StringVar(&actor, "actor", "", "an API key id")
	fl.StringVar(&action, "action", "", `a route and status, e.g. "POST /v1/keys -> 201"`)
	fl.StringVar(&since, "since", "", "RFC 3339 time")
	fl.StringVar(&until, "until", "", "RFC 3339 time")
	fl.IntVar(&max, "max", 100, "stop after this many entries (0: all)")
	return cmd
}
