package cpe

import (
	"fmt"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Options tune CPE matching.
type Options struct {
	// OSPackages also matches OS packages (those of a "Debian:12"-style ecosystem) that carry CPEs.
	// Off by default: distributions backport fixes without changing the upstream version, so NVD's
	// upstream ranges flag fixed packages; their vendor's advisories are the truth for them.
	OSPackages bool
}

// Match finds the vulnerabilities NVD's configurations assign to an inventory's packages. It
// looks every package's names up by (vendor, product), then evaluates each vulnerability found
// once over all of the resource's names (packages and OS), so AND configurations can see the
// platform. Warnings name CPE strings that do not parse.
func Match(store Store, inv *model.Inventory, opts Options) ([]Hit, []string, error) {
	var targets []Target
	var warnings []string
	eligible := map[*model.Package]bool{}
	for i := range inv.Packages {
		p := &inv.Packages[i]
		names, bad := Names(p)
		for _, b := range bad {
			warnings = append(warnings, fmt.Sprintf("%s %s: CPE %q not understood; not CPE-matched", p.Name, p.Version, b))
		}
		if len(names) == 0 {
			continue
		}
		eligible[p] = opts.OSPackages || !strings.Contains(p.Ecosystem, ":")
		for _, n := range names {
			targets = append(targets, Target{Name: n, Package: p})
		}
	}
	if n, ok := OSName(inv.OS); ok {
		targets = append(targets, Target{Name: n})
	}
	ev := NewEvaluator(targets)
	looked := map[string]bool{}
	done := map[string]bool{}
	var out []Hit
	for _, t := range targets {
		if t.Package == nil || !eligible[t.Package] {
			continue
		}
		k := ProductKey(t.Name[Vendor], t.Name[Product])
		if looked[k] {
			continue
		}
		looked[k] = true
		vulns, err := store.CPEVulns(t.Name[Vendor], t.Name[Product])
		if err != nil {
			return nil, nil, fmt.Errorf("cpe lookup %s: %w", k, err)
		}
		for _, v := range vulns {
			if done[v.ID] {
				continue
			}
			done[v.ID] = true
			for _, h := range ev.Evaluate(v) {
				if eligible[h.Package] {
					out = append(out, h)
				}
			}
		}
	}
	return out, warnings, nil
}
