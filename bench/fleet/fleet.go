// Package fleet generates the synthetic fleet of Vigil's server benchmarks: hosts of 500 packages
// with real names and versions — Debian bookworm's dpkg database (200 packages of a bookworm
// system, versions varied ±1 in the last number so hosts differ), a real node application's npm
// lockfile (150 of its packages per host), and PyPI packages and versions taken from the OSV PyPI
// records (skewed: popular packages and new versions are shared widely, the rest form a long
// tail). Advisories are the real OSV PyPI records plus synthetic Debian and npm ones (those feeds
// are not in the shared offline corpus).
//
// Everything is derived deterministically from the host number.
package fleet

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"hash/fnv"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/version"
	"github.com/vigil-sec/vigil/vulndb/osv"
)

// PyPIZip is the OSV PyPI zip of the shared offline corpus.
const PyPIZip = "/work/shared/vulndata/osv/PyPI/all.zip"

// dpkgTSV: `dpkg-query -W` of a Debian 12 system (every third package, 200): name, version, arch,
// source, source version.
//
//go:embed testdata/bookworm.dpkg.tsv
var dpkgTSV []byte

// npmTSV: the name@version pairs of golang.org/x/telemetry's package-lock.json (a real node
// application's tree, 354 packages).
//
//go:embed testdata/npm.tsv
var npmTSV []byte

// Key is an (ecosystem, lookup name) pair, as vulndb logs changes under.
type Key struct{ Ecosystem, Name string }

// Pool is a package hosts may hold with the versions they choose among.
type Pool struct {
	Name, Source, Arch, Ecosystem string
	Versions, SourceVersions      []string
}

// Corpus is the material the fleet is drawn from.
type Corpus struct {
	Debian, NPM, PyPI []Pool
	// Advisories: real OSV PyPI records and synthetic Debian and npm ones.
	Advisories []model.Advisory
	// KeyVersions are the versions hosts may hold under each lookup key.
	KeyVersions map[Key][]string
}

// Available reports whether the OSV PyPI zip is present.
func Available() bool {
	_, err := os.Stat(PyPIZip)
	return err == nil
}

type advSink struct{ advs []model.Advisory }

func (s *advSink) Advisory(a *model.Advisory) error { s.advs = append(s.advs, *a); return nil }
func (s *advSink) Enrich(*model.Enrichment) error   { return nil }
func (s *advSink) Skip(string, error)               {}

func readTSV(b []byte) ([][]string, error) {
	var rows [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		rows = append(rows, strings.Split(sc.Text(), "\t"))
	}
	return rows, sc.Err()
}

var lastNum = regexp.MustCompile(`(\d+)(\D*)$`)

// variants derives neighbouring versions (one lower, one higher in the last number) so hosts differ.
func variants(v string) []string {
	out := []string{v}
	m := lastNum.FindStringSubmatchIndex(v)
	if m == nil {
		return out
	}
	n, err := strconv.Atoi(v[m[2]:m[3]])
	if err != nil {
		return out
	}
	if n > 0 {
		out = append(out, v[:m[2]]+strconv.Itoa(n-1)+v[m[3]:])
	}
	out = append(out, v[:m[2]]+strconv.Itoa(n+1)+v[m[3]:])
	return out
}

// Load builds the corpus (it parses the OSV PyPI zip: about a second).
func Load(ctx context.Context) (*Corpus, error) {
	c := &Corpus{}
	rows, err := readTSV(dpkgTSV)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if len(r) < 5 {
			continue
		}
		c.Debian = append(c.Debian, Pool{Name: r[0], Arch: r[2], Source: r[3], Ecosystem: "Debian:12", Versions: variants(r[1]), SourceVersions: variants(r[4])})
	}
	rows, err = readTSV(npmTSV)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if len(r) < 2 || seen[r[0]] {
			continue
		}
		seen[r[0]] = true
		c.NPM = append(c.NPM, Pool{Name: r[0], Ecosystem: "npm", Versions: variants(r[1])})
	}
	f, err := os.Open(PyPIZip)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sink := &advSink{}
	if err := osv.ParseZip(ctx, PyPIZip, f, st.Size(), sink); err != nil {
		return nil, err
	}
	scheme, _ := version.Lookup("PyPI")
	vers := map[string]map[string]bool{}
	for _, a := range sink.advs {
		if a.Ecosystem != "PyPI" {
			continue
		}
		c.Advisories = append(c.Advisories, a)
		n := match.NormalizeName("PyPI", a.Package)
		if vers[n] == nil {
			vers[n] = map[string]bool{}
		}
		// Versions hosts may run: the fixes and the listed affected versions (real releases).
		cand := append([]string(nil), a.Versions...)
		for _, r := range a.Ranges {
			for _, e := range r.Events {
				cand = append(cand, e.Fixed)
			}
		}
		for _, v := range cand {
			if v == "" {
				continue
			}
			if _, err := scheme.Parse(v); err == nil {
				vers[n][v] = true
			}
		}
	}
	names := make([]string, 0, len(vers))
	for n, vs := range vers {
		if len(vs) > 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		var vs []string
		for v := range vers[n] {
			vs = append(vs, v)
		}
		// Newest first, at most 12; hosts favour the newest (see Inventory), so old releases form a
		// long tail held by few hosts.
		// Spellings PEP 440 holds equal (1.0, 1.0.0) are ordered by text: the corpus must be the
		// same in every process, or a host's inventory differs between two runs.
		sort.Slice(vs, func(i, j int) bool {
			if c, _ := version.Compare(scheme, vs[i], vs[j]); c != 0 {
				return c > 0
			}
			return vs[i] > vs[j]
		})
		vs = vs[:min(12, len(vs))]
		c.PyPI = append(c.PyPI, Pool{Name: n, Ecosystem: "PyPI", Versions: vs})
	}
	// Synthetic Debian and npm advisories: per source package / npm name, a few fixed in the newest
	// variant (older hosts affected), and for Debian some unfixed ones (no-dsa), as the tracker has.
	n := 0
	srcSeen := map[string]bool{}
	for i, p := range c.Debian {
		if srcSeen[p.Source] {
			continue
		}
		srcSeen[p.Source] = true
		for j := 0; j < i%4; j++ {
			n++
			a := model.Advisory{Source: "debian", ID: fmt.Sprintf("VIGIL-BENCH-DEB-%05d", n), Ecosystem: p.Ecosystem, Package: p.Source,
				Severity: []string{model.SeverityLow, model.SeverityMedium, model.SeverityHigh}[n%3], Summary: "synthetic benchmark advisory"}
			if j == 2 {
				a.Unfixed, a.Note = true, "no-dsa: Minor issue"
			} else {
				a.Ranges = []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{{Introduced: "0"}, {Fixed: p.SourceVersions[0]}}}}
			}
			c.Advisories = append(c.Advisories, a)
		}
	}
	for i, p := range c.NPM {
		if i%3 != 0 {
			continue
		}
		n++
		c.Advisories = append(c.Advisories, model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-NPM-%05d", n), Ecosystem: "npm", Package: p.Name,
			Severity: model.SeverityMedium, Summary: "synthetic benchmark advisory",
			Ranges: []model.Range{{Type: model.RangeSemver, Events: []model.Event{{Introduced: "0"}, {Fixed: p.Versions[0]}}}}})
	}
	c.KeyVersions = map[Key][]string{}
	for _, p := range c.Debian {
		c.KeyVersions[Key{p.Ecosystem, p.Source}] = p.SourceVersions
	}
	for _, p := range append(append([]Pool(nil), c.NPM...), c.PyPI...) {
		c.KeyVersions[Key{p.Ecosystem, p.Name}] = p.Versions
	}
	return c, nil
}

// Hash32 is the FNV-1a hash of the parts, the fleet's source of deterministic choices.
func Hash32(parts ...string) uint32 {
	h := fnv.New32a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum32()
}

// Inventory builds host i's packages (pkgs of them, 500 in the benchmarks): the Debian base, up
// to 150 npm and the rest PyPI, versions picked per host.
func (c *Corpus) Inventory(i int, pkgs int) *model.Inventory {
	return c.InventoryGen(i, 0, pkgs)
}

// InventoryGen is host i's inventory after gen upgrades: each generation moves a few of its
// packages (gen+1 of them, at most 3) to another of their versions, as a package upgrade does.
func (c *Corpus) InventoryGen(i, gen, pkgs int) *model.Inventory {
	host := strconv.Itoa(i)
	pick := func(p Pool, vs []string, salt string) string {
		return vs[Hash32(host, p.Name, salt)%uint32(len(vs))]
	}
	inv := &model.Inventory{OS: &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}}
	for _, p := range c.Debian {
		if len(inv.Packages) >= pkgs {
			break
		}
		k := Hash32(host, p.Name) % uint32(len(p.Versions))
		sv := p.SourceVersions[min(int(k), len(p.SourceVersions)-1)]
		inv.Packages = append(inv.Packages, model.Package{Name: p.Name, Version: p.Versions[k], Ecosystem: p.Ecosystem, SourceName: p.Source,
			SourceVersion: sv, Arch: p.Arch, Locations: []string{"/var/lib/dpkg/status"},
			PURL: "pkg:deb/debian/" + p.Name + "@" + p.Versions[k] + "?arch=" + p.Arch + "&distro=debian-12"})
	}
	npmN := max(0, min(150, pkgs-len(inv.Packages)))
	start := int(Hash32(host, "npm") % uint32(len(c.NPM)))
	for j := 0; j < npmN; j++ {
		p := c.NPM[(start+j*7)%len(c.NPM)]
		v := pick(p, p.Versions, "v")
		inv.Packages = append(inv.Packages, model.Package{Name: p.Name, Version: v, Ecosystem: "npm",
			Locations: []string{"/srv/app/node_modules/" + p.Name + "/package.json"}, PURL: "pkg:npm/" + p.Name + "@" + v})
	}
	seen := map[string]bool{}
	for j := 0; len(inv.Packages) < pkgs && j < 4*pkgs; j++ {
		// Skewed choice: squaring a uniform number favours the head of the list.
		u := float64(Hash32(host, "py", strconv.Itoa(j))%1_000_000) / 1_000_000
		p := c.PyPI[int(u*u*float64(len(c.PyPI)))]
		if seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		w := float64(Hash32(host, p.Name, "pv")%1_000_000) / 1_000_000
		v := p.Versions[int(w*w*w*w*float64(len(p.Versions)))]
		inv.Packages = append(inv.Packages, model.Package{Name: p.Name, Version: v, Ecosystem: "PyPI",
			Locations: []string{"/usr/lib/python3/dist-packages/" + p.Name + "-" + v + ".dist-info/METADATA"}, PURL: "pkg:pypi/" + p.Name + "@" + v})
	}
	// Upgrades: move a few packages (chosen per host and generation) to a neighbouring version.
	for g := 1; g <= gen; g++ {
		for k := 0; k < min(g, 3); k++ {
			j := int(Hash32(host, "up", strconv.Itoa(g), strconv.Itoa(k)) % uint32(len(inv.Packages)))
			p := &inv.Packages[j]
			vs := variants(p.Version)
			p.Version = vs[len(vs)-1]
			if p.Ecosystem == "PyPI" || p.Ecosystem == "npm" {
				p.PURL = "pkg:" + strings.ToLower(p.Ecosystem) + "/" + p.Name + "@" + p.Version
			}
		}
	}
	return inv
}
