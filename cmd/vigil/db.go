package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/vulndb"
)

// defaultDBPath is $VIGIL_DB, else vulndb.sqlite in the user's cache directory.
func defaultDBPath() string {
	if p := os.Getenv("VIGIL_DB"); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "vigil", "vulndb.sqlite")
}

// openDB opens the vulnerability database for the db commands. Without create, a missing file is an error that says
// how to get one, rather than an empty database that would report no vulnerabilities.
func openDB(ctx context.Context, path string, create bool) (*vulndb.DB, error) {
	if _, err := os.Stat(path); err != nil {
		if !create {
			return nil, fmt.Errorf("no vulnerability database at %s: run 'vigil db update' (or 'vigil db import DIR' offline) first", path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
	}
	return vulndb.Open(ctx, path)
}

// openScanDB opens the database for a one-shot scan: per-package queries touch few pages, and the
// OS page cache holds the file anyway, so a small SQLite cache (256 KiB: 2.5 MB less peak than 2 MiB,
// no measurable time on the bench targets) keeps the scan's memory low.
func openScanDB(ctx context.Context, path string) (*vulndb.DB, error) {
	if err := scanDBExists(path); err != nil {
		return nil, err
	}
	return vulndb.OpenWith(ctx, path, vulndb.Options{CacheKiB: 256})
}

func scanDBExists(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no vulnerability database at %s: run 'vigil db update' (or 'vigil db import DIR' offline) first", path)
	}
	return nil
}

type sourceFlags struct {
	osvBase, debianURL, alpineBase, nvdURL, kevURL, epssURL string
	ecosystems, alpineReleases                              []string
	noDebian, noNVD, noKEV, noEPSS                          bool
}

func (s *sourceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.osvBase, "osv-base", vulndb.DefaultOSVBase, "base URL of the OSV per-ecosystem all.zip files")
	fl.StringSliceVar(&s.ecosystems, "osv-ecosystems", vulndb.DefaultEcosystems, "OSV ecosystems to fetch")
	fl.StringVar(&s.debianURL, "debian-url", vulndb.DefaultDebianURL, "Debian security tracker JSON")
	fl.StringVar(&s.alpineBase, "alpine-base", vulndb.DefaultAlpineBase, "base URL of the Alpine secdb")
	fl.StringSliceVar(&s.alpineReleases, "alpine-releases", []string{"v3.19", "v3.20", "v3.21", "v3.22"}, "Alpine releases to fetch")
	fl.StringVar(&s.nvdURL, "nvd-url", vulndb.DefaultNVDURL, "NVD CVE API 2.0 (or a JSON 2.0 feed file URL)")
	fl.StringVar(&s.kevURL, "kev-url", vulndb.DefaultKEVURL, "CISA KEV JSON")
	fl.StringVar(&s.epssURL, "epss-url", vulndb.DefaultEPSSURL, "FIRST EPSS CSV (.gz)")
	fl.BoolVar(&s.noDebian, "no-debian", false, "skip the Debian tracker")
	fl.BoolVar(&s.noNVD, "no-nvd", false, "skip the NVD")
	fl.BoolVar(&s.noKEV, "no-kev", false, "skip CISA KEV")
	fl.BoolVar(&s.noEPSS, "no-epss", false, "skip FIRST EPSS")
}

func (s *sourceFlags) sources() []vulndb.Source {
	return vulndb.DefaultSources(vulndb.SourceOptions{
		OSVBase: s.osvBase, OSVEcosystems: s.ecosystems,
		Debian: !s.noDebian, DebianURL: s.debianURL,
		AlpineBase: s.alpineBase, AlpineReleases: s.alpineReleases,
		NVD: !s.noNVD, NVDURL: s.nvdURL, KEV: !s.noKEV, KEVURL: s.kevURL, EPSS: !s.noEPSS, EPSSURL: s.epssURL,
	})
}

func newDBCmd() *cobra.Command {
	var dbPath string
	cmd := &cobra.Command{Use: "db", Short: "Manage the local vulnerability database"}
	cmd.PersistentFlags().StringVar(&dbPath, "db", defaultDBPath(), "vulnerability database file ($VIGIL_DB)")

	var sf sourceFlags
	var mirror, nvdKey string
	var force, wait bool
	var remote apiClient
	update := &cobra.Command{
		Use:   "update",
		Short: "Fetch the feeds that changed and switch to them atomically",
		Long: `Fetch every feed (OSV per ecosystem, Debian tracker, Alpine secdb, NVD, CISA KEV, FIRST EPSS) with conditional
requests, and import each one that changed in its own transaction: a failed or killed update leaves the previous
data fully usable. With --mirror DIR, read an offline mirror directory instead (see 'vigil db import').

With --server URL, ask a Vigil server to update its database instead: the update runs as a job on one of
its processes (the server's own sources and schedule apply); --wait follows the job to its end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if remote.server != "" {
				for _, name := range []string{"mirror", "osv-base", "osv-ecosystems", "debian-url", "alpine-base", "alpine-releases",
					"nvd-url", "kev-url", "epss-url", "no-debian", "no-nvd", "no-kev", "no-epss", "nvd-api-key"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s cannot be used with --server: the server fetches the sources it was started with", name)
					}
				}
				return remoteUpdate(cmd, &remote, force, wait)
			}
			if wait {
				return errors.New("--wait needs --server")
			}
			db, err := openDB(ctx, dbPath, true)
			if err != nil {
				return err
			}
			defer db.Close()
			bar := newProgress(cmd.ErrOrStderr())
			defer bar.finish()
			var rep vulndb.UpdateReport
			if mirror != "" {
				rep, err = db.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, dbProgress(bar))
			} else {
				rep, err = db.Update(ctx, vulndb.UpdateConfig{Sources: sf.sources(), Force: force, NVDAPIKey: nvdKey,
					UserAgent: "vigil/" + version}, dbProgress(bar))
			}
			bar.finish()
			printUpdateReport(cmd.ErrOrStderr(), rep)
			return err
		},
	}
	sf.register(update)
	update.Flags().StringVar(&mirror, "mirror", "", "import this mirror directory instead of fetching")
	update.Flags().StringVar(&nvdKey, "nvd-api-key", os.Getenv("NVD_API_KEY"), "NVD API key (raises the rate limit)")
	update.Flags().BoolVar(&force, "force", false, "ignore ETag / Last-Modified and fetch everything")
	remote.registerRemote(update)
	update.Flags().BoolVar(&wait, "wait", false, "with --server: follow the update job until it ends")

	imp := &cobra.Command{
		Use:   "import DIR|BUNDLE",
		Short: "Import an offline mirror directory or a bundle written by 'vigil db export'",
		Long: `Import vulnerability data without network access.

A mirror directory has the layout of the upstream files:
  osv/<Ecosystem>/all.zip   debian/tracker.json   alpine/<vX.Y>/<repo>.json   nvd/*.json[.gz]
  kev/known_exploited_vulnerabilities.json   epss/*.csv[.gz]
A bundle file replaces the whole database atomically after its checksum is verified.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			fi, err := os.Stat(args[0])
			if err != nil {
				return err
			}
			db, err := openDB(ctx, dbPath, true)
			if err != nil {
				return err
			}
			defer db.Close()
			if !fi.IsDir() {
				man, err := db.Import(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "imported bundle: database version %v, exported %s\n", man.Version, man.Created.Format(time.RFC3339))
				return nil
			}
			bar := newProgress(cmd.ErrOrStderr())
			defer bar.finish()
			rep, err := db.ImportMirror(ctx, args[0], vulndb.MirrorOptions{}, dbProgress(bar))
			bar.finish()
			printUpdateReport(cmd.ErrOrStderr(), rep)
			return err
		},
	}

	export := &cobra.Command{
		Use:   "export FILE",
		Short: "Write the database as a bundle that another install can import",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := openDB(cmd.Context(), dbPath, false)
			if err != nil {
				return err
			}
			defer db.Close()
			man, err := db.Export(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (database version %v, sha256 %s)\n", args[0], man.Version, man.SHA256)
			return nil
		},
	}

	var maxAge time.Duration
	var statusRemote apiClient
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each source with its age and counts; warn when data is stale",
		Long: `Show each source of the local vulnerability database (--db) with its age and counts, or with --server URL
those of a Vigil server's database together with its last update job. Exits non-zero when data is stale.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if statusRemote.server != "" {
				return remoteStatus(cmd, &statusRemote)
			}
			db, err := openDB(cmd.Context(), dbPath, false)
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.Status(cmd.Context(), nil, maxAge)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), db.Path(), st, maxAge)
		},
	}
	status.Flags().DurationVar(&maxAge, "max-age", 48*time.Hour, "data older than this is stale (the server applies its own)")
	statusRemote.registerRemote(status)

	cmd.AddCommand(update, imp, export, status)
	return cmd
}

// dbProgress draws download progress and prints a line per finished source.
func dbProgress(bar *progress) vulndb.ProgressFunc {
	return func(p vulndb.Progress) {
		switch p.Phase {
		case "download":
			bar.report(source.Progress{Stage: "fetch", Item: p.Source, Done: p.Bytes, Total: p.Total})
		case "import":
			bar.report(source.Progress{Stage: "import", Item: p.Source, Total: -1})
		}
	}
}

func printUpdateReport(w io.Writer, rep vulndb.UpdateReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tRECORDS\tADDED\tCHANGED\tWITHDRAWN\tREMOVED\tSKIPPED\tTIME")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1fs\n", r.Source, r.Advisories+r.Enrichments, r.Added, r.Changed, r.Withdrawn, r.Removed, r.Skipped, r.Duration.Seconds())
	}
	for _, s := range rep.NotModified {
		fmt.Fprintf(tw, "%s\tnot modified\t\t\t\t\t\t\n", s)
	}
	tw.Flush()
	names := make([]string, 0, len(rep.Failed))
	for n := range rep.Failed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "FAILED %s: %v (its previous data is kept)\n", n, rep.Failed[n])
	}
	for _, r := range rep.Results {
		for _, s := range r.SkipSamples {
			fmt.Fprintf(w, "  skipped in %s: %s\n", r.Source, s)
		}
	}
}

func printStatus(w io.Writer, path string, st []vulndb.SourceStatus, maxAge time.Duration) error {
	fmt.Fprintf(w, "database %s\n", path)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tADVISORIES\tENRICHMENTS\tSKIPPED\tLAST SUCCESS\tAGE\tSTATE")
	stale := 0
	for _, s := range st {
		state := "ok"
		if s.Stale {
			state = "STALE"
			stale++
		}
		if s.LastError != "" {
			state += " (last error: " + strings.SplitN(s.LastError, "\n", 2)[0] + ")"
		}
		last, age := "never", "-"
		if !s.LastSuccess.IsZero() {
			last, age = s.LastSuccess.Format(time.RFC3339), s.Age.Round(time.Minute).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Name, s.Advisories, s.Enrichments, s.Skipped, last, age, state)
	}
	tw.Flush()
	if stale > 0 {
		fmt.Fprintf(w, "warning: %d sources have no data newer than %s; run 'vigil db update'\n", stale, maxAge)
		return errors.New("stale vulnerability data")
	}
	return nil
}
