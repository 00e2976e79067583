package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/extractors"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/report/sbom"
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/sources"
)

// targetFlags are the flags shared by every command that opens a target.
type targetFlags struct {
	platform   string
	insecure   bool
	username   string
	password   string
	token      string
	host       bool
	extraPaths []string
	maxPkgs    int
	timeout    time.Duration
}

func (f *targetFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.platform, "platform", "linux/amd64", "platform of a multi-platform image (os/arch[/variant], or all)")
	fl.BoolVar(&f.insecure, "insecure", false, "allow plain-HTTP registries")
	fl.StringVar(&f.username, "username", os.Getenv("VIGIL_REGISTRY_USERNAME"), "registry user name")
	fl.StringVar(&f.password, "password", os.Getenv("VIGIL_REGISTRY_PASSWORD"), "registry password")
	fl.StringVar(&f.token, "registry-token", os.Getenv("VIGIL_REGISTRY_TOKEN"), "registry bearer token")
	fl.BoolVar(&f.host, "host", false, "the target is a host root: skip container storage, search language packages in default and --path paths")
	fl.StringSliceVar(&f.extraPaths, "path", nil, "extra paths searched for language packages on hosts")
	fl.IntVar(&f.maxPkgs, "max-packages", 0, "stop after this many packages, reporting the limit (0: none)")
	fl.DurationVar(&f.timeout, "timeout", 0, "stop the walk after this long, reporting the limit (0: none)")
}

// inventories opens target and inventories each of its targets (several for --platform all).
func (f *targetFlags) inventories(cmd *cobra.Command, target string) ([]*model.Inventory, error) {
	ctx := cmd.Context()
	// The machine's own root is a host: virtual file systems and container storage are skipped.
	host := f.host || target == "/" || target == "dir:/"
	eng := inventory.New(extractors.OSDetector(), extractors.Default(), inventory.Config{
		Host: host, ExtraPaths: f.extraPaths, MaxPackages: f.maxPkgs, Timeout: f.timeout,
	})
	bar := newProgress(cmd.ErrOrStderr())
	defer bar.finish()
	opts := source.Options{
		Platform:   f.platform,
		Insecure:   f.insecure,
		Auth:       source.Credentials{Username: f.username, Password: f.password, Token: f.token},
		Want:       eng.Filter(),
		OnProgress: bar.report,
	}
	targets, err := sources.Default().Open(ctx, target, opts)
	if err != nil {
		return nil, err
	}
	var out []*model.Inventory
	for _, t := range targets {
		inv, err := eng.Run(ctx, t.FS, t.Info)
		t.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", target, err)
		}
		out = append(out, inv)
	}
	return out, nil
}

func newSbomCmd() *cobra.Command {
	var tf targetFlags
	var sf submitFlags
	var format, output string
	cmd := &cobra.Command{
		Use:   "sbom TARGET",
		Short: "Inventory the software in a directory, image, disk snapshot or archive",
		Long: `Inventory the software in a target and write it as an SBOM.

TARGET is KIND:REF or a local path whose kind is detected from its content. Kinds:
  dir:PATH             a directory or mounted root
  docker-archive:FILE  a 'docker save' tarball
  oci-archive:FILE     an OCI image archive
  oci-dir:DIR          an OCI image layout directory
  registry:REF         an image in a registry (anonymous, --username/--password, --registry-token,
                       or docker config.json credentials)
  disk:FILE            a raw or qcow2 disk image (MBR, GPT or bare ext2/3/4 or xfs)
  archive:FILE         a zip function package, tar, tar.gz, jar/war/ear
  file:FILE            one file on its own (a binary, a lockfile)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			invs, err := tf.inventories(cmd, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if sf.server != "" {
				return sf.submit(cmd.ErrOrStderr(), invs)
			}
			if err := writeSBOM(w, format, invs); err != nil {
				return err
			}
			if output != "" || !isTerminal(os.Stdout) {
				printSummary(cmd.ErrOrStderr(), invs)
			}
			return nil
		},
	}
	tf.register(cmd)
	sf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "cyclonedx-json", "output format: cyclonedx-json, spdx-json or json")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}

func writeSBOM(w io.Writer, format string, invs []*model.Inventory) error {
	tool := sbom.Tool{Name: "vigil", Version: version}
	switch format {
	case "cyclonedx-json", "cyclonedx":
		return sbom.WriteCycloneDX(w, invs, tool)
	case "spdx-json", "spdx":
		return sbom.WriteSPDX(w, invs, tool)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if len(invs) == 1 {
			return enc.Encode(invs[0])
		}
		return enc.Encode(invs)
	default:
		return fmt.Errorf("unknown format %q (want cyclonedx-json, spdx-json or json)", format)
	}
}
