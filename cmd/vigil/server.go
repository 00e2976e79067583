//go:build !scanonly

package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/findings"
)

func newServerCmd() *cobra.Command {
	var cfg app.Config
	var listen string
	var poll time.Duration
	var hooks []string
	var every time.Duration
	var sf sourceFlags
	var hookSecret string
	var denyPrivate bool
	var workers int
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Vigil server: stored inventories, continuous findings, the API",
		Long: `Run the Vigil server. With no flags it keeps everything in ./vigil-data (SQLite), serves HTTPS on :8443 with a
CA and certificate it makes on first start, and prints an administrator API key once. --postgres URL stores the
server's data in PostgreSQL instead (several servers may share it). Findings follow changes to the vulnerability
database without rescanning. Feeds are fetched by a background job every --update-every (and on
'vigil db update --server URL'); jobs live in the database, so several servers sharing one PostgreSQL
(and one vulnerability database file) share the work, and a job of a server that dies is taken over.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.Logger = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			if len(hooks) > 0 && hookSecret == "" {
				return fmt.Errorf("--webhook needs --webhook-secret (or $VIGIL_WEBHOOK_SECRET) to sign deliveries")
			}
			for _, u := range hooks {
				cfg.Webhooks = append(cfg.Webhooks, app.Webhook{URL: u, Secret: hookSecret})
			}
			cfg.WebhookGuard = events.AddressGuard{DenyLoopback: denyPrivate, DenyLinkLocal: denyPrivate, DenyPrivate: denyPrivate}
			cfg.FeedSources, cfg.UpdateEvery, cfg.FeedPoll = sf.sources(), every, poll
			if workers == 0 {
				cfg.Workers = -1 // an API-only process
			} else {
				cfg.Workers = workers
			}
			srv, err := app.New(ctx, cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			out := cmd.ErrOrStderr()
			if key := srv.AdminKey(); key != "" {
				fmt.Fprintf(out, "\nAdministrator API key (shown once, store it now):\n\n    %s\n\n", key)
			}
			fmt.Fprintf(out, "CA certificate %s, SHA-256 fingerprint %s\n", srv.CAFile(), srv.CAFingerprint())
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "serving https://%s\n", ln.Addr())
			go func() {
				if err := srv.DeliverEvents(ctx); err != nil && ctx.Err() == nil {
					cfg.Logger.Error("webhook delivery stopped", "error", err)
				}
			}()
			return srv.Serve(ctx, ln)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.DataDir, "data-dir", envOr("VIGIL_DATA_DIR", "vigil-data"), "data directory ($VIGIL_DATA_DIR)")
	fl.StringVar(&cfg.Postgres, "postgres", os.Getenv("VIGIL_POSTGRES"), "PostgreSQL URL ($VIGIL_POSTGRES); empty: SQLite in the data directory")
	fl.StringVar(&cfg.VulnDB, "vulndb", os.Getenv("VIGIL_DB"), "vulnerability database file (default DATA_DIR/vulndb.sqlite)")
	fl.StringVar(&cfg.Hostname, "hostname", "", "host name for the generated certificate (default: this machine's)")
	fl.StringSliceVar(&cfg.ExtraNames, "san", nil, "extra names or addresses for the generated certificate")
	fl.StringVar(&listen, "listen", envOr("VIGIL_LISTEN", ":8443"), "address to serve HTTPS on ($VIGIL_LISTEN)")
	fl.StringSliceVar(&hooks, "webhook", nil, "deliver every event to this URL as a signed CloudEvent (repeatable)")
	fl.StringVar(&hookSecret, "webhook-secret", os.Getenv("VIGIL_WEBHOOK_SECRET"), "HMAC-SHA256 secret for webhook signatures ($VIGIL_WEBHOOK_SECRET)")
	fl.BoolVar(&denyPrivate, "webhook-deny-private", false, "refuse webhook sinks on loopback, link-local and private addresses (when tenants you do not trust create sinks)")
	fl.DurationVar(&every, "update-every", 6*time.Hour, "fetch the vulnerability feeds this often (0: never; import mirrors instead)")
	sf.register(cmd)
	fl.DurationVar(&poll, "feed-poll", 30*time.Second, "how often to look for vulnerability database changes made outside the server")
	fl.IntVar(&workers, "workers", envInt("VIGIL_WORKERS", 2), "background jobs this process runs at once ($VIGIL_WORKERS; 0: none, serve the API only)")
	fl.StringVar(&cfg.FeedMirror, "feed-mirror", os.Getenv("VIGIL_FEED_MIRROR"), "feed updates import this mirror directory instead of fetching ($VIGIL_FEED_MIRROR)")
	fl.StringVar(&cfg.NVDAPIKey, "nvd-api-key", os.Getenv("NVD_API_KEY"), "NVD API key for feed updates ($NVD_API_KEY)")
	fl.DurationVar(&cfg.FeedMaxAge, "feed-max-age", 48*time.Hour, "a feed source without a successful update for longer is reported stale")
	lc := &cfg.Lifecycle
	fl.DurationVar(&lc.ReopenWindow, "reopen-window", model.DefaultReopenWindow, "a closed finding whose cause returns within this reopens (same ID)")
	fl.DurationVar(&lc.ClosedRetention, "closed-retention", model.DefaultClosedRetain, "closed findings are deleted after this")
	fl.DurationVar(&lc.RemovedRetention, "removed-retention", model.DefaultRemovedRetain, "findings of a removed resource are deleted after this")
	fl.DurationVar(&lc.StaleAfter, "stale-after", findings.DefaultStaleAfter, "coverage of a resource whose inventory is older is STALE_INVENTORY")
	fl.DurationVar(&cfg.ObserveEvery, "observe-every", app.DefaultObserveEvery, "granularity of findings' lastObservedAt: seeing a finding again moves it once it is this old (negative: every time)")
	return cmd
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
