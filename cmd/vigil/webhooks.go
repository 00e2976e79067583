//go:build !scanonly

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/server/app"
)

func sinkRows(w io.Writer, sinks ...app.SinkView) {
	fmt.Fprintln(w, "WEBHOOK\tURL\tEVENT TYPES\tENABLED\tROTATING\tDESCRIPTION")
	for _, s := range sinks {
		enabled := strconv.FormatBool(s.Enabled)
		if s.DisabledReason != "" {
			enabled += " (" + s.DisabledReason + ")"
		}
		types := strings.Join(s.EventTypes, ",")
		if types == "" {
			types = "all"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\n", s.ID, s.URL, types, enabled, s.Rotating, orDash(s.Description))
	}
}

func newWebhooksCmd() *cobra.Command {
	cmd, m := newMgmtGroup("webhooks", "Manage your account's webhook sinks and dead letters")
	printSink := func(cmd *cobra.Command, s app.SinkView) error {
		if s.Secret != "" && m.output != "json" {
			fmt.Fprintf(cmd.ErrOrStderr(), "signing secret of %s (shown once, store it now):\n%s\n", s.ID, s.Secret)
		}
		return m.show(cmd, s, func(w io.Writer) { sinkRows(w, s) })
	}
	list := &cobra.Command{Use: "list", Short: "List webhook sinks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Webhooks []app.SinkView `json:"webhooks"`
			}
			if err := m.get("/v1/webhooks", nil, &out); err != nil {
				return err
			}
			return m.show(cmd, out.Webhooks, func(w io.Writer) { sinkRows(w, out.Webhooks...) })
		}}
	get := &cobra.Command{Use: "get WEBHOOK_ID", Short: "Show a webhook sink", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var s app.SinkView
			if err := m.get("/v1/webhooks/"+url.PathEscape(args[0]), nil, &s); err != nil {
				return err
			}
			return printSink(cmd, s)
		}}
	var req app.SinkRequest
	var disabled bool
	create := &cobra.Command{Use: "create URL", Short: "Create a webhook sink (without --secret the server draws one and prints it once)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.URL = args[0]
			req.EventTypes = splitList(req.EventTypes)
			if disabled {
				f := false
				req.Enabled = &f
			}
			var s app.SinkView
			if err := m.do(http.MethodPost, "/v1/webhooks", nil, req, &s); err != nil {
				return err
			}
			return printSink(cmd, s)
		}}
	create.Flags().StringVar(&req.Secret, "secret", "", "signing secret, at least 16 bytes (default: drawn by the server)")
	create.Flags().StringSliceVar(&req.EventTypes, "event-type", nil, `event types to deliver, e.g. "vigil.finding.*" (default: all)`)
	create.Flags().StringVar(&req.Description, "description", "", "what the sink is for")
	create.Flags().BoolVar(&disabled, "disabled", false, "create it disabled")
	var (
		newURL, secret, description string
		types                       []string
		enable, disable             bool
		upd                         app.SinkUpdate
	)
	update := &cobra.Command{Use: "update WEBHOOK_ID", Short: "Change a webhook sink: URL, event types, enabled, secret rotation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			if fl.Changed("url") {
				upd.URL = &newURL
			}
			if fl.Changed("secret") {
				upd.Secret = &secret
			}
			if fl.Changed("description") {
				upd.Description = &description
			}
			if fl.Changed("event-type") {
				t := splitList(types)
				upd.EventTypes = &t
			}
			if enable && disable {
				return fmt.Errorf("--enable or --disable, not both")
			}
			if enable || disable {
				upd.Enabled = &enable
			}
			var s app.SinkView
			if err := m.do(http.MethodPatch, "/v1/webhooks/"+url.PathEscape(args[0]), nil, upd, &s); err != nil {
				return err
			}
			return printSink(cmd, s)
		}}
	ufl := update.Flags()
	ufl.StringVar(&newURL, "url", "", "new URL")
	ufl.StringVar(&secret, "secret", "", "new signing secret (the old one keeps signing until --clear-previous-secret)")
	ufl.BoolVar(&upd.RotateSecret, "rotate-secret", false, "draw a new signing secret on the server and print it once")
	ufl.BoolVar(&upd.ClearPreviousSecret, "clear-previous-secret", false, "stop signing with the previous secret")
	ufl.StringSliceVar(&types, "event-type", nil, "event types to deliver (empty: all)")
	ufl.StringVar(&description, "description", "", "what the sink is for")
	ufl.BoolVar(&enable, "enable", false, "enable the sink (also after the receiver answered 410 Gone)")
	ufl.BoolVar(&disable, "disable", false, "disable the sink")
	del := &cobra.Command{Use: "delete WEBHOOK_ID", Short: "Delete a webhook sink", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.do(http.MethodDelete, "/v1/webhooks/"+url.PathEscape(args[0]), nil, nil, nil)
		}}
	var account string
	dead := &cobra.Command{Use: "dead-letters", Short: "List events whose delivery was given up", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if account != "" {
				q.Set("account", account)
			}
			var all []app.DeadLetterView
			for {
				var page struct {
					DeadLetters []app.DeadLetterView `json:"deadLetters"`
					NextToken   string               `json:"nextToken"`
				}
				if err := m.get("/v1/webhook-dead-letters", q, &page); err != nil {
					return err
				}
				all = append(all, page.DeadLetters...)
				if page.NextToken == "" {
					break
				}
				q.Set("nextToken", page.NextToken)
			}
			return m.show(cmd, all, func(w io.Writer) {
				fmt.Fprintln(w, "SEQ\tEVENT\tTYPE\tACCOUNT\tSUBJECT\tTIME\tATTEMPTS\tLAST ERROR")
				for _, d := range all {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.Seq, d.EventID, d.Type, d.Account, d.Subject, d.Time.Format(time.RFC3339),
						d.Attempts, d.LastError)
				}
			})
		}}
	dead.Flags().StringVar(&account, "account", "", "one account of your scope")
	retry := &cobra.Command{Use: "retry SEQ", Short: "Deliver a dead-lettered event again", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.do(http.MethodPost, "/v1/webhook-dead-letters/"+url.PathEscape(args[0])+"/retry", nil, nil, nil)
		}}
	cmd.AddCommand(list, get, create, update, del, dead, retry)
	return cmd
}
