//go:build !scanonly

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/store"
)

// output is the -o flag of the server commands: a table for people, JSON for programs.
type output struct{ format string }

func (o *output) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table or json")
}

func (o *output) check() error {
	if o.format != "table" && o.format != "json" {
		return fmt.Errorf("--output %q: want table or json", o.format)
	}
	return nil
}

// print writes v as indented JSON with -o json, else calls table.
func (o *output) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if o.format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// filterFlags are the finding filters shared by aggregations and suppression rules.
type filterFlags struct {
	severity, status, vuln, resource, resourceType, pkg, pkgVersion, fix, exploit, repo, tags []string
}

func (f *filterFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.severity, "severity", nil, "CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED")
	fl.StringSliceVar(&f.status, "status", nil, "ACTIVE, SUPPRESSED, CLOSED")
	fl.StringSliceVar(&f.vuln, "vulnerability", nil, "vulnerability IDs")
	fl.StringSliceVar(&f.resource, "resource", nil, "resource IDs")
	fl.StringSliceVar(&f.resourceType, "resource-type", nil, "host, image, function")
	fl.StringSliceVar(&f.pkg, "package", nil, "package names")
	fl.StringSliceVar(&f.pkgVersion, "package-version", nil, "package versions")
	fl.StringSliceVar(&f.fix, "fix-available", nil, "YES, NO, PARTIAL")
	fl.StringSliceVar(&f.exploit, "exploit-available", nil, "YES, NO")
	fl.StringSliceVar(&f.repo, "image-repository", nil, "image repositories")
	fl.StringSliceVar(&f.tags, "tag", nil, "resource tag KEY=VALUE (repeatable)")
}

// changed reports whether any filter flag was given.
func (f *filterFlags) changed(cmd *cobra.Command) bool {
	for _, n := range []string{"severity", "status", "vulnerability", "resource", "resource-type", "package", "package-version",
		"fix-available", "exploit-available", "image-repository", "tag"} {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

func (f *filterFlags) filter() (model.FindingFilter, error) {
	ff := model.FindingFilter{Severities: f.severity, Statuses: f.status, VulnerabilityIDs: f.vuln, ResourceIDs: f.resource,
		ResourceTypes: f.resourceType, PackageNames: f.pkg, PackageVersions: f.pkgVersion, FixAvailable: f.fix,
		ExploitAvailable: f.exploit, ImageRepositories: f.repo}
	for _, t := range f.tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return ff, fmt.Errorf("--tag %q: want KEY=VALUE", t)
		}
		if ff.ResourceTags == nil {
			ff.ResourceTags = map[string]string{}
		}
		ff.ResourceTags[k] = v
	}
	return ff, nil
}

// query adds the filters to a ListFindings-style query string.
func (f *filterFlags) query(q url.Values) {
	for name, vs := range map[string][]string{"severity": f.severity, "status": f.status, "vulnerabilityId": f.vuln,
		"resourceId": f.resource, "resourceType": f.resourceType, "packageName": f.pkg, "packageVersion": f.pkgVersion,
		"fixAvailable": f.fix, "exploitAvailable": f.exploit, "imageRepository": f.repo, "tag": f.tags} {
		for _, v := range vs {
			q.Add(name, v)
		}
	}
}

// describeFilter renders a rule's filter on one line: field=values, sorted.
func describeFilter(f model.FindingFilter) string {
	b, _ := json.Marshal(f)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v, _ := json.Marshal(m[k])
		s := strings.NewReplacer(`"`, "", "[", "", "]", "").Replace(string(v))
		parts = append(parts, k+"="+s)
	}
	return strings.Join(parts, " ")
}

func newFiltersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "filters", Aliases: []string{"suppression-rules"},
		Short: "Manage a server's suppression rules: saved filters whose findings become SUPPRESSED"}
	ruleTable := func(rules ...model.SuppressionRule) func(tw *tabwriter.Writer) {
		return func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "RULE\tNAME\tFILTER\tREASON\tEXPIRES\tUPDATED")
			for _, r := range rules {
				exp := "never"
				if r.ExpiresAt != nil {
					exp = r.ExpiresAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, describeFilter(r.Filter), r.Reason, exp, r.UpdatedAt.Format(time.RFC3339))
			}
		}
	}

	list := func() *cobra.Command {
		var c apiClient
		var o output
		cmd := &cobra.Command{Use: "list", Short: "List suppression rules", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := o.check(); err != nil {
					return err
				}
				var out struct {
					Rules []model.SuppressionRule `json:"rules"`
				}
				if err := c.get("/v1/suppression-rules", nil, &out); err != nil {
					return err
				}
				return o.print(cmd.OutOrStdout(), out.Rules, ruleTable(out.Rules...))
			}}
		c.register(cmd)
		o.register(cmd)
		return cmd
	}
	get := func() *cobra.Command {
		var c apiClient
		var o output
		cmd := &cobra.Command{Use: "get RULE_ID", Short: "Show one suppression rule", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := o.check(); err != nil {
					return err
				}
				var r model.SuppressionRule
				if err := c.get("/v1/suppression-rules/"+url.PathEscape(args[0]), nil, &r); err != nil {
					return err
				}
				return o.print(cmd.OutOrStdout(), r, ruleTable(r))
			}}
		c.register(cmd)
		o.register(cmd)
		return cmd
	}
	// write builds create, or update when update is set.
	write := func(update bool) *cobra.Command {
		var (
			c            apiClient
			o            output
			ff           filterFlags
			name, reason string
			expires      string
			noExpiry     bool
		)
		use, short, args := "create", "Create a suppression rule; it applies at once to existing and future findings", cobra.NoArgs
		if update {
			use, short, args = "update RULE_ID", "Change a suppression rule's name, reason, filter or expiry; it applies at once", cobra.ExactArgs(1)
		}
		cmd := &cobra.Command{Use: use, Short: short, Args: args,
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := o.check(); err != nil {
					return err
				}
				filter, err := ff.filter()
				if err != nil {
					return err
				}
				var exp *time.Time
				if expires != "" {
					t, err := parseExpiry(expires, time.Now())
					if err != nil {
						return err
					}
					exp = &t
				}
				var rule model.SuppressionRule
				if !update {
					body := app.RuleRequest{Name: name, Reason: reason, Filter: filter, ExpiresAt: exp}
					if err := c.do(http.MethodPost, "/v1/suppression-rules", nil, body, &rule); err != nil {
						return err
					}
				} else {
					body := map[string]any{}
					if cmd.Flags().Changed("name") {
						body["name"] = name
					}
					if cmd.Flags().Changed("reason") {
						body["reason"] = reason
					}
					if ff.changed(cmd) {
						body["filter"] = filter
					}
					switch {
					case noExpiry && exp != nil:
						return fmt.Errorf("--expires and --no-expiry exclude each other")
					case noExpiry:
						body["expiresAt"] = nil
					case exp != nil:
						body["expiresAt"] = exp
					}
					if len(body) == 0 {
						return fmt.Errorf("nothing to change: give --name, --reason, --expires, --no-expiry or filter flags (a new filter replaces the old one)")
					}
					if err := c.do(http.MethodPatch, "/v1/suppression-rules/"+url.PathEscape(args[0]), nil, body, &rule); err != nil {
						return err
					}
				}
				return o.print(cmd.OutOrStdout(), rule, ruleTable(rule))
			}}
		c.register(cmd)
		o.register(cmd)
		ff.register(cmd)
		fl := cmd.Flags()
		fl.StringVar(&name, "name", "", "the rule's name")
		fl.StringVar(&reason, "reason", "", "why these findings are accepted")
		fl.StringVar(&expires, "expires", "", "when the rule ends: an RFC 3339 time or a duration from now (720h)")
		if update {
			fl.BoolVar(&noExpiry, "no-expiry", false, "make the rule permanent")
		}
		return cmd
	}
	del := func() *cobra.Command {
		var c apiClient
		cmd := &cobra.Command{Use: "delete RULE_ID", Short: "Delete a suppression rule; its findings become active again", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := c.do(http.MethodDelete, "/v1/suppression-rules/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "deleted %s\n", args[0])
				return nil
			}}
		c.register(cmd)
		return cmd
	}
	cmd.AddCommand(list(), get(), write(false), write(true), del())
	return cmd
}

// parseExpiry reads an RFC 3339 time or a duration from now.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--expires %q: want an RFC 3339 time or a positive duration such as 720h", s)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

func newFindingsAggregateCmd() *cobra.Command {
	var (
		c          apiClient
		o          output
		ff         filterFlags
		by, sortBy string
		order      string
		max        int
	)
	cmd := &cobra.Command{Use: "aggregate", Short: "Count findings by severity per resource, package, vulnerability, image repository, image layer, account or resource type",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			q := url.Values{"aggregationType": {by}}
			if sortBy != "" {
				q.Set("sortBy", sortBy)
			}
			if order != "" {
				q.Set("sortOrder", strings.ToUpper(order))
			}
			ff.query(q)
			var all []store.AggregateRow
			for {
				var page app.AggregationList
				if err := c.get("/v1/findings/aggregations", q, &page); err != nil {
					return err
				}
				all = append(all, page.Groups...)
				if page.NextToken == "" || (max > 0 && len(all) >= max) {
					break
				}
				q.Set("nextToken", page.NextToken)
			}
			if max > 0 && len(all) > max {
				all = all[:max]
			}
			return o.print(cmd.OutOrStdout(), all, func(tw *tabwriter.Writer) {
				head := strings.ToUpper(by)
				if by == string(store.ByResource) {
					head = "ACCOUNT\tRESOURCE"
				}
				fmt.Fprintln(tw, head+"\tCRITICAL\tHIGH\tMEDIUM\tLOW\tINFO\tUNTRIAGED\tALL\tFIXABLE\tEXPLOITED\tRESOURCES")
				for _, r := range all {
					key := r.Key
					if by == string(store.ByResource) {
						key = r.Account + "\t" + r.Key
					}
					s := r.Counts
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", key, s.Critical, s.High, s.Medium, s.Low, s.Informational,
						s.Untriaged, s.Total, r.FixAvailable, r.ExploitAvailable, r.Resources)
				}
			})
		}}
	c.register(cmd)
	o.register(cmd)
	ff.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&by, "by", "vulnerability", "resource, package, vulnerability, imageRepository, imageLayer, account or resourceType")
	fl.StringVar(&sortBy, "sort-by", "", "critical (default), high, medium, low, all, affectedResources or key")
	fl.StringVar(&order, "sort-order", "", "desc or asc")
	fl.IntVar(&max, "max", 0, "stop after this many groups (0: all)")
	return cmd
}

func newFindingsGetCmd() *cobra.Command {
	var c apiClient
	var o output
	cmd := &cobra.Command{Use: "get FINDING_ID", Short: "Show a finding with its score breakdown and vulnerability intelligence",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			var d app.FindingDetails
			if err := c.get("/v1/findings/"+url.PathEscape(args[0])+"/details", nil, &d); err != nil {
				return err
			}
			if o.format == "json" {
				return o.print(cmd.OutOrStdout(), d, nil)
			}
			printFindingDetails(cmd.OutOrStdout(), &d)
			return nil
		}}
	c.register(cmd)
	o.register(cmd)
	return cmd
}

func printFindingDetails(w io.Writer, d *app.FindingDetails) {
	f := d.Finding
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	line("Finding", f.ID)
	line("Vulnerability", f.VulnerabilityID)
	line("Title", f.Title)
	line("Resource", f.ResourceType+"/"+f.ResourceID+" ("+f.Account+")")
	line("Status", f.Status)
	line("Severity", strings.TrimSpace(f.Severity+" "+paren(f.SeveritySource)))
	line("Fix available", f.FixAvailable)
	line("Exploit available", f.ExploitAvailable)
	line("First / last seen", f.FirstObservedAt.Format(time.RFC3339)+" / "+f.LastObservedAt.Format(time.RFC3339))
	for _, p := range f.Packages {
		fix := "no fix"
		if p.FixedInVersion != "" {
			fix = "fixed in " + p.FixedInVersion
		}
		line("Package", fmt.Sprintf("%s %s (%s), %s", p.Name, p.Version, p.Ecosystem, fix))
	}
	if f.Suppression != nil {
		line("Suppressed by", f.Suppression.Rule+": "+f.Suppression.Reason)
	}
	rs := d.ScoreBreakdown
	line("Risk score", fmt.Sprintf("%.1f", rs.Score))
	line("  base", strings.TrimSpace(fmt.Sprintf("%.1f %s %s", rs.Base, paren(rs.BaseSource), rs.BaseVector)))
	for _, a := range rs.Adjustments {
		line("  "+a.Factor, fmt.Sprintf("%+.1f %s", a.Delta, a.Reason))
	}
	if v := d.Vulnerability; v != nil {
		line("Aliases", strings.Join(v.Aliases, ", "))
		for _, c := range v.CVSS {
			line("CVSS "+c.Version, fmt.Sprintf("%.1f %s (%s)", c.Score, c.Vector, c.Source))
		}
		if v.EPSS != nil {
			line("EPSS", fmt.Sprintf("%.5f (percentile %.5f)", v.EPSS.Score, v.EPSS.Percentile))
		}
		if v.KEV != nil {
			k := "added " + v.KEV.DateAdded.Format(time.DateOnly)
			if !v.KEV.DueDate.IsZero() {
				k += ", due " + v.KEV.DueDate.Format(time.DateOnly)
			}
			if v.KEV.KnownRansomware != "" {
				k += ", ransomware use: " + v.KEV.KnownRansomware
			}
			line("CISA KEV", k)
		}
		line("CWE", strings.Join(v.CWEs, ", "))
		line("Published", fmtDate(v.Published))
		line("Description", oneLine(v.Description))
		for _, r := range v.References {
			line("Reference", r)
		}
	}
	tw.Flush()
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// coverageFilters select coverage rows, for the listing and the statistics.
type coverageFilters struct {
	resource, resourceType, scanType, status, reason []string
}

func (f *coverageFilters) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.resource, "resource", nil, "resource IDs")
	fl.StringSliceVar(&f.resourceType, "resource-type", nil, "host, image, function")
	fl.StringSliceVar(&f.scanType, "scan-type", nil, "package, network, code, config")
	fl.StringSliceVar(&f.status, "status", nil, "ACTIVE, INACTIVE")
	fl.StringSliceVar(&f.reason, "reason", nil, "coverage reason codes (EXCLUDED_BY_TAG, STALE_INVENTORY, ...)")
}

func (f *coverageFilters) query(q url.Values) {
	for name, vs := range map[string][]string{"resourceId": f.resource, "resourceType": f.resourceType, "scanType": f.scanType,
		"status": f.status, "reason": f.reason} {
		for _, v := range vs {
			q.Add(name, v)
		}
	}
}

func newCoverageStatsCmd() *cobra.Command {
	var (
		c       apiClient
		o       output
		cf      coverageFilters
		groupBy string
	)
	cmd := &cobra.Command{Use: "stats", Short: "Count coverage by status, reason, account, resource type or scan type", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			q := url.Values{"groupBy": {groupBy}}
			cf.query(q)
			var out app.CoverageStatistics
			if err := c.get("/v1/coverage/statistics", q, &out); err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "%s\tCOUNT\n", strings.ToUpper(groupBy))
				for _, r := range out.Counts {
					fmt.Fprintf(tw, "%s\t%d\n", r.Key, r.Count)
				}
				fmt.Fprintf(tw, "TOTAL\t%d\n", out.Total)
			})
		}}
	c.register(cmd)
	o.register(cmd)
	cf.register(cmd)
	cmd.Flags().StringVar(&groupBy, "group-by", "status", "status, reason, account, resourceType or scanType")
	return cmd
}

func newResourcesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "resources", Short: "List, show and delete a server's resources"}
	resourceTable := func(rs ...app.ResourceView) func(tw *tabwriter.Writer) {
		return func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "TYPE\tRESOURCE\tACCOUNT\tNAME\tTAGS\tLAST SCANNED\tSTATE")
			for _, r := range rs {
				var tags []string
				for k, v := range r.Tags {
					tags = append(tags, k+"="+v)
				}
				sort.Strings(tags)
				state := "active"
				switch {
				case r.RemovedAt != nil:
					state = "removed " + r.RemovedAt.Format(time.DateOnly)
				case r.Excluded:
					state = "excluded"
				}
				scanned := "-"
				if !r.LastScannedAt.IsZero() {
					scanned = r.LastScannedAt.Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Type, r.ID, r.Account, r.Name, strings.Join(tags, ","), scanned, state)
			}
		}
	}
	list := func() *cobra.Command {
		var (
			c                apiClient
			o                output
			types, ids, tags []string
			includeRemoved   bool
		)
		cmd := &cobra.Command{Use: "list", Short: "List resources", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := o.check(); err != nil {
					return err
				}
				q := url.Values{}
				for name, vs := range map[string][]string{"resourceType": types, "resourceId": ids, "tag": tags} {
					for _, v := range vs {
						q.Add(name, v)
					}
				}
				if includeRemoved {
					q.Set("includeRemoved", "true")
				}
				var all []app.ResourceView
				for {
					var page struct {
						Resources []app.ResourceView `json:"resources"`
						NextToken string             `json:"nextToken"`
					}
					if err := c.get("/v1/resources", q, &page); err != nil {
						return err
					}
					all = append(all, page.Resources...)
					if page.NextToken == "" {
						break
					}
					q.Set("nextToken", page.NextToken)
				}
				return o.print(cmd.OutOrStdout(), all, resourceTable(all...))
			}}
		c.register(cmd)
		o.register(cmd)
		fl := cmd.Flags()
		fl.StringSliceVar(&types, "type", nil, "host, image, function")
		fl.StringSliceVar(&ids, "id", nil, "resource IDs")
		fl.StringSliceVar(&tags, "tag", nil, "KEY=VALUE or KEY (repeatable; all must hold)")
		fl.BoolVar(&includeRemoved, "include-removed", false, "also list removed resources awaiting deletion")
		return cmd
	}
	get := func() *cobra.Command {
		var c apiClient
		var o output
		cmd := &cobra.Command{Use: "get TYPE ID", Short: "Show a resource with its coverage and active findings", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := o.check(); err != nil {
					return err
				}
				var d app.ResourceDetail
				if err := c.get("/v1/resources/"+url.PathEscape(args[0])+"/"+pathEscape(args[1]), nil, &d); err != nil {
					return err
				}
				return o.print(cmd.OutOrStdout(), d, func(tw *tabwriter.Writer) {
					resourceTable(d.ResourceView)(tw)
					var meta []string
					for k, v := range d.Metadata {
						meta = append(meta, k+"="+v)
					}
					sort.Strings(meta)
					fmt.Fprintf(tw, "\nMETADATA\t%s\n", strings.Join(meta, ", "))
					s := d.ActiveFindings
					fmt.Fprintf(tw, "ACTIVE FINDINGS\t%d (critical %d, high %d, medium %d, low %d, informational %d, untriaged %d)\n",
						s.Total, s.Critical, s.High, s.Medium, s.Low, s.Informational, s.Untriaged)
					for _, cv := range d.Coverage {
						fmt.Fprintf(tw, "COVERAGE %s\t%s %s\n", cv.ScanType, cv.Status, cv.Reason)
					}
				})
			}}
		c.register(cmd)
		o.register(cmd)
		return cmd
	}
	del := func() *cobra.Command {
		var c apiClient
		cmd := &cobra.Command{Use: "delete TYPE ID", Short: "Remove a resource: its findings close now and are deleted after the retention period",
			Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := c.do(http.MethodDelete, "/v1/resources/"+url.PathEscape(args[0])+"/"+pathEscape(args[1]), nil, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "removed %s/%s\n", args[0], args[1])
				return nil
			}}
		c.register(cmd)
		return cmd
	}
	cmd.AddCommand(list(), get(), del())
	return cmd
}
