package reeval

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-sec/vigil/match"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/version"
	"github.com/vigil-sec/vigil/vulndb/osv"
)

// The synthetic fleet of the benchmarks: real package names and versions (Debian bookworm's dpkg
// database, a real node application's npm tree, the packages of osv.dev's PyPI records) spread over
// hosts with varied versions; real PyPI advisories from the OSV zip, synthetic ones for Debian and
// npm (their feeds are not in the shared corpus).
const (
	dpkgTSV = "/root/vigil-bench/targets/ground-truth/rootfs-bookworm.dpkg.tsv"
	npmTSV  = "/root/vigil-bench/targets/ground-truth/node-app.npm.tsv"
	pypiZip = "/work/shared/vulndata/osv/PyPI/all.zip"
)

type poolPkg struct {
	name, src, arch string
	eco             string
	versions        []string // realistic versions; hosts pick among them
	srcVersions     []string
}

type corpus struct {
	debian, npm, pypi []poolPkg
	advisories        []model.Advisory
	// keyVersions are the versions hosts may hold under each lookup key.
	keyVersions map[Key][]string
}

// memStore is a concurrency-safe in-memory match.Store.
type memStore struct {
	mu    sync.RWMutex
	advs  map[Key][]model.Advisory
	vulns map[string]*model.Vulnerability
}

func (s *memStore) Advisories(eco, name string) ([]model.Advisory, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.advs[Key{eco, match.NormalizeName(eco, name)}], nil
}

func (s *memStore) Vulnerability(id string) (*model.Vulnerability, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.vulns[id], nil
}

func (s *memStore) add(a model.Advisory) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{a.Ecosystem, match.NormalizeName(a.Ecosystem, a.Package)}
	s.advs[k] = append(s.advs[k], a)
	return k
}

// replace swaps an advisory (same source, ID and package) for a new version of it.
func (s *memStore) replace(a model.Advisory) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{a.Ecosystem, match.NormalizeName(a.Ecosystem, a.Package)}
	advs := append([]model.Advisory(nil), s.advs[k]...)
	for i := range advs {
		if advs[i].Source == a.Source && advs[i].ID == a.ID {
			advs[i] = a
		}
	}
	s.advs[k] = advs
	return k
}

type advSink struct{ advs []model.Advisory }

func (s *advSink) Advisory(a *model.Advisory) error { s.advs = append(s.advs, *a); return nil }
func (s *advSink) Enrich(*model.Enrichment) error   { return nil }
func (s *advSink) Skip(string, error)               {}

func readTSV(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
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

func loadCorpus(ctx context.Context) (*corpus, error) {
	c := &corpus{}
	rows, err := readTSV(dpkgTSV)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if len(r) < 5 {
			continue
		}
		c.debian = append(c.debian, poolPkg{name: r[0], arch: r[2], src: r[3], eco: "Debian:12", versions: variants(r[1]), srcVersions: variants(r[4])})
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
		c.npm = append(c.npm, poolPkg{name: r[0], eco: "npm", versions: variants(r[1])})
	}
	f, err := os.Open(pypiZip)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sink := &advSink{}
	if err := osv.ParseZip(ctx, pypiZip, f, st.Size(), sink); err != nil {
		return nil, err
	}
	scheme, _ := version.Lookup("PyPI")
	vers := map[string]map[string]bool{}
	for _, a := range sink.advs {
		if a.Ecosystem != "PyPI" {
			continue
		}
		c.advisories = append(c.advisories, a)
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
		// Newest first, at most 12; hosts favour the newest (see inventory), so old releases form a
		// long tail held by few hosts.
		sort.Slice(vs, func(i, j int) bool {
			c, _ := version.Compare(scheme, vs[i], vs[j])
			return c > 0
		})
		vs = vs[:min(12, len(vs))]
		c.pypi = append(c.pypi, poolPkg{name: n, eco: "PyPI", versions: vs})
	}
	// Synthetic Debian and npm advisories: per source package / npm name, a few fixed in the newest
	// variant (older hosts affected), and for Debian some unfixed ones (no-dsa), as the tracker has.
	n := 0
	srcSeen := map[string]bool{}
	for i, p := range c.debian {
		if srcSeen[p.src] {
			continue
		}
		srcSeen[p.src] = true
		for j := 0; j < i%4; j++ {
			n++
			a := model.Advisory{Source: "debian", ID: fmt.Sprintf("VIGIL-BENCH-DEB-%05d", n), Ecosystem: p.eco, Package: p.src,
				Severity: []string{model.SeverityLow, model.SeverityMedium, model.SeverityHigh}[n%3], Summary: "synthetic benchmark advisory"}
			if j == 2 {
				a.Unfixed, a.Note = true, "no-dsa: Minor issue"
			} else {
				a.Ranges = []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{{Introduced: "0"}, {Fixed: p.srcVersions[0]}}}}
			}
			c.advisories = append(c.advisories, a)
		}
	}
	for i, p := range c.npm {
		if i%3 != 0 {
			continue
		}
		n++
		c.advisories = append(c.advisories, model.Advisory{Source: "osv", ID: fmt.Sprintf("VIGIL-BENCH-NPM-%05d", n), Ecosystem: "npm", Package: p.name,
			Severity: model.SeverityMedium, Summary: "synthetic benchmark advisory",
			Ranges: []model.Range{{Type: model.RangeSemver, Events: []model.Event{{Introduced: "0"}, {Fixed: p.versions[0]}}}}})
	}
	c.keyVersions = map[Key][]string{}
	for _, p := range c.debian {
		c.keyVersions[Key{p.eco, p.src}] = p.srcVersions
	}
	for _, p := range append(append([]poolPkg(nil), c.npm...), c.pypi...) {
		c.keyVersions[Key{p.eco, p.name}] = p.versions
	}
	return c, nil
}

func (c *corpus) store() *memStore {
	s := &memStore{advs: map[Key][]model.Advisory{}, vulns: map[string]*model.Vulnerability{}}
	for _, a := range c.advisories {
		s.add(a)
	}
	return s
}

func hash32(parts ...string) uint32 {
	h := fnv.New32a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum32()
}

// inventory builds host i's 500 packages: the Debian base (every package), 150 npm and the rest
// PyPI, versions picked per host. Popular PyPI packages are shared widely, the tail by few hosts.
func (c *corpus) inventory(i int, pkgs int) *model.Inventory {
	host := strconv.Itoa(i)
	pick := func(p poolPkg, vs []string, salt string) string {
		return vs[hash32(host, p.name, salt)%uint32(len(vs))]
	}
	inv := &model.Inventory{OS: &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"}}
	for _, p := range c.debian {
		if len(inv.Packages) >= pkgs {
			return inv
		}
		k := hash32(host, p.name) % uint32(len(p.versions))
		sv := p.srcVersions[min(int(k), len(p.srcVersions)-1)]
		inv.Packages = append(inv.Packages, model.Package{Name: p.name, Version: p.versions[k], Ecosystem: p.eco, SourceName: p.src,
			SourceVersion: sv, Arch: p.arch, Locations: []string{"/var/lib/dpkg/status"},
			PURL: "pkg:deb/debian/" + p.name + "@" + p.versions[k] + "?arch=" + p.arch + "&distro=debian-12"})
	}
	npmN := min(150, pkgs-len(inv.Packages))
	start := int(hash32(host, "npm") % uint32(len(c.npm)))
	for j := 0; j < npmN; j++ {
		p := c.npm[(start+j*7)%len(c.npm)]
		v := pick(p, p.versions, "v")
		inv.Packages = append(inv.Packages, model.Package{Name: p.name, Version: v, Ecosystem: "npm",
			Locations: []string{"/srv/app/node_modules/" + p.name + "/package.json"}, PURL: "pkg:npm/" + p.name + "@" + v})
	}
	seen := map[string]bool{}
	for j := 0; len(inv.Packages) < pkgs && j < 4*pkgs; j++ {
		// Skewed choice: squaring a uniform number favours the head of the list.
		u := float64(hash32(host, "py", strconv.Itoa(j))%1_000_000) / 1_000_000
		p := c.pypi[int(u*u*float64(len(c.pypi)))]
		if seen[p.name] {
			continue
		}
		seen[p.name] = true
		w := float64(hash32(host, p.name, "pv")%1_000_000) / 1_000_000
		v := p.versions[int(w*w*w*w*float64(len(p.versions)))]
		inv.Packages = append(inv.Packages, model.Package{Name: p.name, Version: v, Ecosystem: "PyPI",
			Locations: []string{"/usr/lib/python3/dist-packages/" + p.name + "-" + v + ".dist-info/METADATA"}, PURL: "pkg:pypi/" + p.name + "@" + v})
	}
	return inv
}

func TestSyntheticFleetShape(t *testing.T) {
	if _, err := os.Stat(pypiZip); err != nil {
		t.Skip("benchmark corpus not present")
	}
	c, err := loadCorpus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inv := c.inventory(42, 500)
	if len(inv.Packages) != 500 {
		t.Errorf("inventory has %d packages", len(inv.Packages))
	}
	t.Logf("pools: %d debian, %d npm, %d pypi; %d advisories", len(c.debian), len(c.npm), len(c.pypi), len(c.advisories))
}
