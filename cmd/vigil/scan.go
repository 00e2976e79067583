package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/match/cpe"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/policy"
	"github.com/vigil-sec/vigil/report/sbom"
	"github.com/vigil-sec/vigil/report/scan"
	"github.com/vigil-sec/vigil/score"
	"github.com/vigil-sec/vigil/vulndb"
)

// dbStore adapts the vulnerability database to the matcher.
type dbStore struct {
	ctx context.Context
	db  *vulndb.DB
}

func (s dbStore) Advisories(ecosystem, name string) ([]model.Advisory, error) {
	return s.db.LookupDirect(s.ctx, ecosystem, name)
}

// CPEVulns serves the opt-in CPE matching (scan --cpe).
func (s dbStore) CPEVulns(vendor, product string) ([]cpe.Vuln, error) {
	return s.db.CPEVulns(s.ctx, vendor, product)
}

func (s dbStore) Vulnerability(id string) (*model.Vulnerability, error) {
	v, err := s.db.Enrichments(s.ctx, id)
	if err != nil || v == nil {
		return nil, err
	}
	return &model.Vulnerability{ID: v.ID, Description: v.Description, CVSS: v.CVSS, CWEs: v.CWEs,
		References: v.References, Published: v.Published, Modified: v.Modified, EPSS: v.EPSS, KEV: v.KEV}, nil
}

type scanFlags struct {
	targetFlags
	submitFlags
	format, output string
	failOn         string
	ignoreUnfixed  bool
	ignoreFile     string
	vex            []string
	showSuppressed bool
	dbPath         string
	cpe            bool
	cpeOS          bool
}

func newScanCmd() *cobra.Command {
	var f scanFlags
	cmd := &cobra.Command{
		Use:   "scan TARGET",
		Short: "Find the vulnerabilities in a directory, image, disk snapshot, archive or SBOM",
		Long: `Inventory a target and match it against the local vulnerability database (see 'vigil db update').

TARGET is anything 'vigil sbom' accepts, or a CycloneDX or SPDX JSON SBOM file (sbom:FILE, or detected).
Exit status: 0; 3 when --fail-on is set and an active finding is at least that severe; 1 on error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runScan(cmd, &f, args[0]) },
	}
	f.targetFlags.register(cmd)
	f.submitFlags.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.format, "format", "table", "output format: table, json, sarif or cyclonedx-json")
	fl.StringVarP(&f.output, "output", "o", "", "write to this file instead of standard output")
	fl.StringVar(&f.failOn, "fail-on", "", "exit with status 3 when an active finding is at least this severe (LOW, MEDIUM, HIGH, CRITICAL)")
	fl.BoolVar(&f.ignoreUnfixed, "ignore-unfixed", false, "hide vulnerabilities that have no fix yet")
	fl.StringVar(&f.ignoreFile, "ignore-file", "", "YAML ignore rules, each with a reason and an optional expiry")
	fl.StringSliceVar(&f.vex, "vex", nil, "OpenVEX documents whose not_affected/fixed statements suppress findings")
	fl.BoolVar(&f.showSuppressed, "show-suppressed", false, "list suppressed findings in the table")
	fl.StringVar(&f.dbPath, "db", defaultDBPath(), "vulnerability database file ($VIGIL_DB)")
	fl.BoolVar(&f.cpe, "cpe", false, "also match packages' CPEs (SBOM-given, or guessed for Java archives) against NVD configurations; more findings, more false alarms")
	fl.BoolVar(&f.cpeOS, "cpe-os-packages", false, "with --cpe, CPE-match OS packages too (distributions backport fixes, so expect false alarms)")
	return cmd
}

// failExit is the exit status for --fail-on, distinct from 1 (an error).
const failExit = 3

func runScan(cmd *cobra.Command, f *scanFlags, target string) error {
	ctx := cmd.Context()
	if f.failOn != "" && score.Rank(f.failOn) == 0 {
		return fmt.Errorf("--fail-on %q: want LOW, MEDIUM, HIGH or CRITICAL", f.failOn)
	}
	pol := &policy.Policy{}
	if f.ignoreFile != "" {
		rf, err := os.Open(f.ignoreFile)
		if err != nil {
			return err
		}
		pol.Rules, err = policy.ParseIgnoreFile(rf, f.ignoreFile)
		rf.Close()
		if err != nil {
			return err
		}
	}
	for _, v := range f.vex {
		rf, err := os.Open(v)
		if err != nil {
			return err
		}
		st, err := policy.ParseOpenVEX(rf, v)
		rf.Close()
		if err != nil {
			return err
		}
		pol.VEX = append(pol.VEX, st...)
	}
	if f.server != "" {
		// The server matches continuously; the local database is not needed.
		invs, err := scanInventories(cmd, &f.targetFlags, target)
		if err != nil {
			return err
		}
		return f.submitFlags.submit(cmd.ErrOrStderr(), invs)
	}
	if err := scanDBExists(f.dbPath); err != nil {
		return err // before a long walk
	}
	invs, err := scanInventories(cmd, &f.targetFlags, target)
	if err != nil {
		return err
	}
	// The walk's garbage (tar headers, inflate windows, file trees) goes back to the OS before SQLite
	// allocates its own memory, so that the two phases' peaks do not add up.
	debug.FreeOSMemory()
	db, err := openScanDB(ctx, f.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	if f.cpeOS && !f.cpe {
		return fmt.Errorf("--cpe-os-packages needs --cpe")
	}
	var cpeWarn string
	if f.cpe {
		if n, err := db.CPECount(ctx); err != nil {
			return err
		} else if n == 0 {
			cpeWarn = "--cpe: the vulnerability database holds no NVD configurations (import NVD data with 'vigil db update'); nothing was CPE-matched"
		}
	}
	m := match.New(dbStore{ctx: ctx, db: db})
	now := time.Now()
	var reports []*scan.Report
	for _, inv := range invs {
		res, err := m.Match(ctx, inv, match.Options{IgnoreUnfixed: f.ignoreUnfixed, Resource: inv.Source.Name,
			CPE: match.CPEOptions{Enabled: f.cpe, OSPackages: f.cpeOS}})
		if err != nil {
			return err
		}
		r := &scan.Report{Target: inv.Source, OS: inv.OS, Findings: res.Findings, Inventory: inv, ScannedAt: now.UTC()}
		if r.Findings == nil {
			r.Findings = []model.Finding{}
		}
		if cpeWarn != "" {
			r.Warnings = append(r.Warnings, cpeWarn)
		}
		r.Warnings = append(r.Warnings, inv.Warnings...)
		r.Warnings = append(r.Warnings, res.Warnings...)
		r.Warnings = append(r.Warnings, pol.Apply(r.Findings, now)...)
		for _, st := range inv.Extractors {
			if st.Status != model.StatusOK {
				r.Warnings = append(r.Warnings, fmt.Sprintf("extractor %s: %s (%d file errors)", st.Name, st.Status, len(st.Errors)))
			}
		}
		if inv.OS != nil && inv.OS.EOL != nil && inv.OS.EOL.Before(now) {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s reached its end of life on %s: it gets no more security fixes",
				firstNonEmpty(inv.OS.PrettyName, inv.OS.Ecosystem), inv.OS.EOL.Format("2006-01-02")))
		}
		scan.Summarize(r)
		reports = append(reports, r)
	}

	w := cmd.OutOrStdout()
	color := isTerminal(os.Stdout)
	if f.output != "" {
		out, err := os.Create(f.output)
		if err != nil {
			return err
		}
		defer out.Close()
		w, color = out, false
	}
	switch f.format {
	case "table":
		err = scan.WriteTable(w, reports, color, f.showSuppressed)
	case "json":
		err = scan.WriteJSON(w, reports)
	case "sarif":
		err = scan.SARIF(w, reports, version)
	case "cyclonedx-json", "cyclonedx":
		err = scan.CycloneDX(w, reports, sbom.Tool{Name: "vigil", Version: version})
	default:
		err = fmt.Errorf("unknown format %q (want table, json, sarif or cyclonedx-json)", f.format)
	}
	if err != nil {
		return err
	}
	if f.failOn != "" {
		for _, r := range reports {
			for _, fd := range r.Findings {
				if fd.Status == model.FindingActive && score.Rank(fd.Severity) >= score.Rank(f.failOn) {
					return exitError{code: failExit}
				}
			}
		}
	}
	return nil
}

// scanInventories reads an SBOM file, or inventories a target.
func scanInventories(cmd *cobra.Command, tf *targetFlags, target string) ([]*model.Inventory, error) {
	path, isSBOM := strings.CutPrefix(target, "sbom:")
	if !isSBOM {
		isSBOM = looksLikeSBOM(target)
	}
	if !isSBOM {
		return tf.inventories(cmd, target)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var inv *model.Inventory
	if bytes.Contains(b[:min(len(b), 4096)], []byte(`"spdxVersion"`)) {
		inv, err = sbom.ReadSPDX(bytes.NewReader(b), path)
	} else {
		inv, err = sbom.ReadCycloneDX(bytes.NewReader(b), path)
	}
	if err != nil {
		return nil, err
	}
	return []*model.Inventory{inv}, nil
}

// looksLikeSBOM reports whether a local file is a CycloneDX or SPDX JSON document.
func looksLikeSBOM(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	head = bytes.TrimSpace(head[:n])
	return len(head) > 0 && head[0] == '{' &&
		(bytes.Contains(head, []byte(`"bomFormat"`)) || bytes.Contains(head, []byte(`"spdxVersion"`)))
}
