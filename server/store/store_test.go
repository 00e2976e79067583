package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/store/pgtest"
)

var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one dialect under test: open returns a new Store (a new pool) on the same database.
type env struct {
	name  string
	clock *clock
	open  func(t testing.TB) *Store
}

func (e env) store(t testing.TB) *Store {
	s := e.open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

func dialects(t *testing.T) []env {
	sqlitePath := filepath.Join(t.TempDir(), "vigil.db")
	c1, c2 := newClock(), newClock()
	var (
		dsnOnce sync.Once
		dsn     string
	)
	return []env{
		{name: "sqlite", clock: c1, open: func(tb testing.TB) *Store {
			s, err := OpenSQLite(context.Background(), sqlitePath, Options{Now: c1.Now})
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}},
		{name: "postgres", clock: c2, open: func(tb testing.TB) *Store {
			dsnOnce.Do(func() { dsn = pg.Database(tb) })
			if dsn == "" {
				tb.Skip("no PostgreSQL database")
			}
			s, err := OpenPostgres(context.Background(), dsn, Options{Now: c2.Now})
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}},
	}
}

// each runs fn against every dialect, each with a fresh database.
func each(t *testing.T, fn func(t *testing.T, e env, s *Store)) {
	for _, e := range dialects(t) {
		t.Run(e.name, func(t *testing.T) { fn(t, e, e.store(t)) })
	}
}

var ctx = context.Background()

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func seedAccounts(t testing.TB, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		must(t, s.PutAccount(ctx, model.Account{ID: id, Name: "acct " + id, Role: model.AccountStandalone}))
	}
}

func seedResource(t testing.TB, s *Store, r model.Resource) {
	t.Helper()
	must(t, s.PutResource(ctx, r))
}

// finding builds a package finding; opts tweak it.
func finding(account, resource, vuln, severity string, opts ...func(*model.Finding)) model.Finding {
	f := model.Finding{
		ID: account + "/" + resource + "/" + vuln, Type: model.FindingPackageVulnerability,
		Account: account, ResourceID: resource, ResourceType: model.ResourceHost,
		VulnerabilityID: vuln, Severity: severity, Status: model.FindingActive,
		FixAvailable: model.Yes, ExploitAvailable: model.No,
		FirstObservedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		LastObservedAt:  time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		UpdatedAt:       time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
	}
	for _, o := range opts {
		o(&f)
	}
	return f
}

func ids(fs []model.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.ID)
	}
	sort.Strings(out)
	return out
}

func TestMigrationsIdempotent(t *testing.T) {
	for _, e := range dialects(t) {
		t.Run(e.name, func(t *testing.T) {
			for i := 0; i < 3; i++ {
				s := e.open(t)
				v, err := s.SchemaVersion(ctx)
				must(t, err)
				if want := latestMigration(t); v != want {
					t.Fatalf("schema version %d, want %d", v, want)
				}
				if i == 0 {
					seedAccounts(t, s, "111111111111")
				} else if _, err := s.GetAccount(ctx, "111111111111"); err != nil {
					t.Fatalf("reopen %d lost data: %v", i, err)
				}
				must(t, s.Close())
			}
		})
	}
}

func TestAccountsOrganizationsKeys(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		for _, a := range []model.Account{
			{ID: "100000000001", Name: "mgmt", Organization: "o-1", Role: model.AccountManagement},
			{ID: "100000000002", Name: "admin", Organization: "o-1", Role: model.AccountDelegated, Enabled: []string{model.ScanPackage}},
			{ID: "100000000003", Name: "member", Organization: "o-1", Role: model.AccountMember},
			{ID: "200000000001", Name: "alone", Role: model.AccountStandalone},
		} {
			must(t, s.PutAccount(ctx, a))
		}
		must(t, s.PutOrganization(ctx, Organization{ID: "o-1", ManagementAccount: "100000000001", DelegatedAdmin: "100000000002"}))
		a, err := s.GetAccount(ctx, "100000000002")
		must(t, err)
		if a.Organization != "o-1" || !slices.Equal(a.Enabled, []string{"package"}) || a.CreatedAt.IsZero() {
			t.Errorf("account = %+v", a)
		}
		for acc, want := range map[string][]string{
			"100000000002": {"100000000001", "100000000002", "100000000003"},
			"100000000001": {"100000000001"},
			"100000000003": {"100000000003"},
			"200000000001": {"200000000001"},
		} {
			got, err := s.VisibleAccounts(ctx, acc)
			must(t, err)
			if !slices.Equal(got, want) {
				t.Errorf("VisibleAccounts(%s) = %v, want %v", acc, got, want)
			}
		}
		if _, err := s.VisibleAccounts(ctx, "999"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown account: %v", err)
		}

		exp := e.clock.Now().Add(time.Hour)
		must(t, s.CreateAPIKey(ctx, APIKey{ID: "k1", Account: "100000000003", Role: "admin", SecretHash: []byte{1, 2, 3}, ExpiresAt: &exp}))
		if err := s.CreateAPIKey(ctx, APIKey{ID: "k1", Account: "200000000001", Role: "admin", SecretHash: []byte{9}}); err == nil {
			t.Error("duplicate key ID accepted")
		}
		k, err := s.LookupAPIKey(ctx, "k1")
		must(t, err)
		if k.Account != "100000000003" || !slices.Equal(k.SecretHash, []byte{1, 2, 3}) || !k.Usable(e.clock.Now()) || k.Usable(exp) {
			t.Errorf("key = %+v", k)
		}
		must(t, s.TouchAPIKey(ctx, "k1", e.clock.Now()))
		if err := s.RevokeAPIKey(ctx, "200000000001", "k1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke by another account: %v", err)
		}
		must(t, s.RevokeAPIKey(ctx, "100000000003", "k1"))
		keys, err := s.ListAPIKeys(ctx, "100000000003")
		must(t, err)
		if len(keys) != 1 || keys[0].RevokedAt == nil || keys[0].LastUsedAt == nil || keys[0].Usable(e.clock.Now()) {
			t.Errorf("keys = %+v", keys)
		}
		if _, err := s.LookupAPIKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup unknown: %v", err)
		}
	})
}

// debianHost returns a Debian 12 inventory with real package names and versions.
func debianHost() []model.Package {
	return []model.Package{
		{Ecosystem: "Debian:12", Name: "libssl3", Version: "3.0.11-1~deb12u2", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2", Arch: "amd64",
			PURL: "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12", Locations: []string{"/var/lib/dpkg/status"}, Extractor: "dpkg"},
		{Ecosystem: "Debian:12", Name: "openssl", Version: "3.0.11-1~deb12u2", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2", Arch: "amd64",
			Locations: []string{"/var/lib/dpkg/status"}, Extractor: "dpkg"},
		{Ecosystem: "Debian:12", Name: "zlib1g", Version: "1:1.2.13.dfsg-1", SourceName: "zlib", SourceVersion: "1:1.2.13.dfsg-1", Arch: "amd64",
			Locations: []string{"/var/lib/dpkg/status"}, Extractor: "dpkg"},
		{Ecosystem: "npm", Name: "lodash", Version: "4.17.20", PURL: "pkg:npm/lodash@4.17.20",
			Locations: []string{"/srv/app/node_modules/lodash/package.json"}, Extractor: "npm"},
	}
}

func TestInventory(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, "111111111111", "222222222222")
		seedResource(t, s, model.Resource{Account: "111111111111", ID: "i-0a1b2c3d", Type: model.ResourceHost})
		seedResource(t, s, model.Resource{Account: "222222222222", ID: "i-0f0f0f0f", Type: model.ResourceHost})
		seedResource(t, s, model.Resource{Account: "222222222222", ID: "sha256:aa", Type: model.ResourceImage, ImageRepository: "registry.example.com/team/app"})

		d, err := s.PutInventory(ctx, "111111111111", "i-0a1b2c3d", "h1", debianHost())
		must(t, err)
		if d.NoOp || len(d.Added) != 4 || len(d.Removed) != 0 || d.Unchanged != 0 {
			t.Fatalf("first put: %+v", d)
		}
		d, err = s.PutInventory(ctx, "111111111111", "i-0a1b2c3d", "h1", nil)
		must(t, err)
		if !d.NoOp || len(d.Added)+len(d.Removed)+d.Unchanged != 0 {
			t.Fatalf("same hash: %+v", d)
		}
		// openssl 3.0.13-1~deb12u1 (DSA-5657-1) replaces both binaries; lodash goes.
		next := debianHost()[:3]
		for i := range next[:2] {
			next[i].Version, next[i].SourceVersion = "3.0.13-1~deb12u1", "3.0.13-1~deb12u1"
		}
		d, err = s.PutInventory(ctx, "111111111111", "i-0a1b2c3d", "h2", next)
		must(t, err)
		if d.NoOp || len(d.Added) != 2 || len(d.Removed) != 3 || d.Unchanged != 1 {
			t.Fatalf("upgrade: added %v removed %v unchanged %d", d.Added, d.Removed, d.Unchanged)
		}
		if d.Added[0].Version != "3.0.13-1~deb12u1" || d.Removed[0].Name != "libssl3" || d.Removed[2].Name != "lodash" {
			t.Errorf("diff contents: %+v / %+v", d.Added, d.Removed)
		}
		inv, err := s.Inventory(ctx, "111111111111", "i-0a1b2c3d")
		must(t, err)
		if len(inv) != 3 || inv[0].Name != "libssl3" || inv[0].Locations[0] != "/var/lib/dpkg/status" || inv[0].PURL != "" && inv[0].Version != "3.0.13-1~deb12u1" {
			t.Errorf("inventory = %+v", inv)
		}
		r, err := s.GetResource(ctx, "111111111111", "i-0a1b2c3d")
		must(t, err)
		if r.InventoryHash != "h2" || r.LastScannedAt.IsZero() {
			t.Errorf("resource after put = %+v", r)
		}

		_, err = s.PutInventory(ctx, "222222222222", "i-0f0f0f0f", "h9", debianHost())
		must(t, err)
		_, err = s.PutInventory(ctx, "222222222222", "sha256:aa", "h8", []model.Package{{Ecosystem: "npm", Name: "lodash", Version: "4.17.21"}})
		must(t, err)
		if _, err := s.PutInventory(ctx, "111111111111", "i-0f0f0f0f", "hx", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("put inventory of another account's resource: %v", err)
		}
		// Another account's inventory is untouched.
		if inv, _ := s.Inventory(ctx, "111111111111", "i-0f0f0f0f"); len(inv) != 0 {
			t.Errorf("cross-account inventory read: %v", inv)
		}

	})
}

// A writer that stores another inventory between PutInventory's read and its transaction: the
// packages are read again under the write lock, so the result is exactly the last inventory.
func TestPutInventoryConcurrentWriter(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		seedResource(t, s, model.Resource{Account: acctA, ID: "h1", Type: model.ResourceHost})
		_, err := s.PutInventory(ctx, acctA, "h1", "a", debianHost())
		must(t, err)
		// b upgrades openssl's binaries; c keeps b's openssl and drops lodash.
		b := debianHost()
		for i := range b[:2] {
			b[i].Version, b[i].SourceVersion = "3.0.13-1~deb12u1", "3.0.13-1~deb12u1"
		}
		c := b[:3]
		putInventoryRead = func() {
			putInventoryRead = nil
			_, err := s.PutInventory(ctx, acctA, "h1", "b", b)
			must(t, err)
		}
		t.Cleanup(func() { putInventoryRead = nil })
		d, err := s.PutInventory(ctx, acctA, "h1", "c", c)
		must(t, err)
		if len(d.Added) != 0 || len(d.Removed) != 1 || d.Removed[0].Name != "lodash" || d.Unchanged != 3 {
			t.Errorf("diff against the concurrent writer's inventory: %+v", d)
		}
		inv, err := s.Inventory(ctx, acctA, "h1")
		must(t, err)
		var got []string
		for _, p := range inv {
			got = append(got, p.Name+"@"+p.Version)
		}
		want := []string{"libssl3@3.0.13-1~deb12u1", "openssl@3.0.13-1~deb12u1", "zlib1g@1:1.2.13.dfsg-1"}
		if !slices.Equal(got, want) {
			t.Errorf("inventory %v, want %v", got, want)
		}
	})
}

func TestResources(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, "111111111111", "222222222222")
		for i := 0; i < 5; i++ {
			seedResource(t, s, model.Resource{Account: "111111111111", ID: fmt.Sprintf("i-%02d", i), Type: model.ResourceHost,
				Tags: map[string]string{"env": "prod"}, Metadata: map[string]string{"platform": "DEBIAN_12"}})
		}
		removed := e.clock.Now()
		seedResource(t, s, model.Resource{Account: "111111111111", ID: "gone", Type: model.ResourceFunction, RemovedAt: &removed})
		seedResource(t, s, model.Resource{Account: "222222222222", ID: "i-99", Type: model.ResourceHost})
		var got []string
		tok := ""
		for {
			p, err := s.ListResources(ctx, []string{"111111111111"}, ResourceQuery{PageSize: 2, PageToken: tok})
			must(t, err)
			for _, r := range p.Resources {
				got = append(got, r.ID)
			}
			if tok = p.NextToken; tok == "" {
				break
			}
		}
		if !slices.Equal(got, []string{"i-00", "i-01", "i-02", "i-03", "i-04"}) {
			t.Errorf("resources = %v", got)
		}
		p, err := s.ListResources(ctx, []string{"111111111111"}, ResourceQuery{Types: []string{model.ResourceFunction}, IncludeRemoved: true})
		must(t, err)
		if len(p.Resources) != 1 || p.Resources[0].RemovedAt == nil {
			t.Errorf("removed = %+v", p.Resources)
		}
		r, err := s.GetResource(ctx, "111111111111", "i-01")
		must(t, err)
		if r.Tags["env"] != "prod" || r.Metadata["platform"] != "DEBIAN_12" {
			t.Errorf("resource = %+v", r)
		}
		if _, err := s.GetResource(ctx, "222222222222", "i-01"); !errors.Is(err, ErrNotFound) {
			t.Errorf("cross-account get: %v", err)
		}
		if err := s.DeleteResource(ctx, "222222222222", "i-01"); !errors.Is(err, ErrNotFound) {
			t.Errorf("cross-account delete: %v", err)
		}
		must(t, s.DeleteResource(ctx, "111111111111", "i-01"))
		if _, err := s.ListResources(ctx, nil, ResourceQuery{}); !errors.Is(err, ErrNoAccounts) {
			t.Errorf("no accounts: %v", err)
		}
	})
}

const (
	acctA = "111111111111"
	acctB = "222222222222"
)

// seedFindings writes a small, varied fleet of findings with real vulnerability IDs.
func seedFindings(t testing.TB, s *Store) {
	t.Helper()
	seedAccounts(t, s, acctA, acctB)
	seedResource(t, s, model.Resource{Account: acctA, ID: "i-web", Type: model.ResourceHost, Tags: map[string]string{"env": "prod", "team": "web"}})
	seedResource(t, s, model.Resource{Account: acctA, ID: "sha256:1111", Type: model.ResourceImage, ImageRepository: "registry.example.com/team/api", Tags: map[string]string{"env": "dev"}})
	seedResource(t, s, model.Resource{Account: acctB, ID: "i-web", Type: model.ResourceHost, Tags: map[string]string{"env": "prod"}})
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	pkgs := func(ps ...model.VulnerablePackage) func(*model.Finding) {
		return func(f *model.Finding) { f.Packages = ps }
	}
	libssl := model.VulnerablePackage{Name: "libssl3", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", FixedInVersion: "3.0.13-1~deb12u1"}
	opensslPkg := model.VulnerablePackage{Name: "openssl", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", FixedInVersion: "3.0.13-1~deb12u1"}
	log4j := model.VulnerablePackage{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: "Maven", FixedInVersion: "2.15.0", LayerDigest: "sha256:layer2"}
	lodash := model.VulnerablePackage{Name: "lodash", Version: "4.17.20", Ecosystem: "npm", FixedInVersion: "4.17.21", LayerDigest: "sha256:layer3"}
	xnet := model.VulnerablePackage{Name: "golang.org/x/net", Version: "0.15.0", Ecosystem: "Go", FixedInVersion: "0.17.0", LayerDigest: "sha256:layer3"}
	fs := []model.Finding{
		finding(acctA, "i-web", "CVE-2024-0727", "MEDIUM", pkgs(libssl, opensslPkg), func(f *model.Finding) {
			f.EPSS = &model.EPSS{Score: 0.0043}
			f.RiskScore.Score = 5.5
		}),
		finding(acctA, "i-web", "CVE-2023-5678", "LOW", pkgs(libssl), func(f *model.Finding) {
			f.Status = model.FindingSuppressed
			f.EPSS = &model.EPSS{Score: 0.0011}
			f.RiskScore.Score = 3.1
			f.FirstObservedAt, f.LastObservedAt, f.UpdatedAt = day(2), day(3), day(3)
		}),
		finding(acctA, "sha256:1111", "CVE-2021-44228", "CRITICAL", pkgs(log4j), func(f *model.Finding) {
			f.ResourceType = model.ResourceImage
			f.ExploitAvailable = model.Yes
			f.EPSS = &model.EPSS{Score: 0.94358}
			f.RiskScore.Score = 10
			f.FirstObservedAt, f.LastObservedAt, f.UpdatedAt = day(5), day(21), day(21)
		}),
		finding(acctA, "sha256:1111", "CVE-2021-23337", "HIGH", pkgs(lodash), func(f *model.Finding) {
			f.ResourceType = model.ResourceImage
			f.FixAvailable = model.Partial
			f.EPSS = &model.EPSS{Score: 0.0112}
			f.RiskScore.Score = 7.2
			f.FirstObservedAt = day(6)
		}),
		finding(acctA, "sha256:1111", "CVE-2023-44487", "HIGH", pkgs(xnet), func(f *model.Finding) {
			f.ResourceType = model.ResourceImage
			f.ExploitAvailable = model.Yes
			f.Status = model.FindingClosed
			f.EPSS = &model.EPSS{Score: 0.81}
			f.RiskScore.Score = 8.2
			f.FirstObservedAt, f.LastObservedAt, f.UpdatedAt = day(4), day(10), day(12)
		}),
		finding(acctA, "i-web", "CVE-2023-50495", "UNTRIAGED", func(f *model.Finding) {
			f.FixAvailable = model.No
		}),
		// Account B: same vulnerability and resource ID as account A, never visible to A.
		finding(acctB, "i-web", "CVE-2024-0727", "MEDIUM", pkgs(libssl), func(f *model.Finding) { f.RiskScore.Score = 5.5 }),
		finding(acctB, "i-web", "CVE-2021-44228", "CRITICAL", pkgs(log4j), func(f *model.Finding) { f.RiskScore.Score = 10 }),
	}
	byAcct := map[string][]model.Finding{}
	for _, f := range fs {
		byAcct[f.Account] = append(byAcct[f.Account], f)
	}
	for acc, list := range byAcct {
		must(t, s.ApplyChanges(ctx, Changes{Account: acc, Upsert: list}))
	}
}

func fid(acc, res, vuln string) string { return acc + "/" + res + "/" + vuln }

func TestFindingFilters(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedFindings(t, s)
		a := func(res, vuln string) string { return fid(acctA, res, vuln) }
		img := "sha256:1111"
		day := func(d int) *time.Time { return ptr(time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC)) }
		all := []string{a("i-web", "CVE-2024-0727"), a("i-web", "CVE-2023-5678"), a(img, "CVE-2021-44228"), a(img, "CVE-2021-23337"), a(img, "CVE-2023-44487"), a("i-web", "CVE-2023-50495")}
		sort.Strings(all)
		for _, tc := range []struct {
			name string
			f    model.FindingFilter
			want []string
		}{
			{"all", model.FindingFilter{}, all},
			{"accounts narrowing to other tenant", model.FindingFilter{Accounts: []string{acctB}}, nil},
			{"accounts narrowing to self", model.FindingFilter{Accounts: []string{acctA, acctB}}, all},
			{"severity", model.FindingFilter{Severities: []string{"HIGH", "CRITICAL"}}, []string{a(img, "CVE-2021-23337"), a(img, "CVE-2021-44228"), a(img, "CVE-2023-44487")}},
			{"status", model.FindingFilter{Statuses: []string{model.FindingSuppressed}}, []string{a("i-web", "CVE-2023-5678")}},
			{"type", model.FindingFilter{Types: []string{model.FindingNetworkReachability}}, nil},
			{"vulnerability", model.FindingFilter{VulnerabilityIDs: []string{"CVE-2021-44228"}}, []string{a(img, "CVE-2021-44228")}},
			{"package name", model.FindingFilter{PackageNames: []string{"libssl3"}}, []string{a("i-web", "CVE-2023-5678"), a("i-web", "CVE-2024-0727")}},
			{"package name+version same package", model.FindingFilter{PackageNames: []string{"lodash"}, PackageVersions: []string{"4.17.20"}}, []string{a(img, "CVE-2021-23337")}},
			{"package name+version mismatch", model.FindingFilter{PackageNames: []string{"lodash"}, PackageVersions: []string{"2.14.1"}}, nil},
			{"package version", model.FindingFilter{PackageVersions: []string{"2.14.1"}}, []string{a(img, "CVE-2021-44228")}},
			{"resource id", model.FindingFilter{ResourceIDs: []string{"i-web"}}, []string{a("i-web", "CVE-2023-50495"), a("i-web", "CVE-2023-5678"), a("i-web", "CVE-2024-0727")}},
			{"resource type", model.FindingFilter{ResourceTypes: []string{model.ResourceImage}}, []string{a(img, "CVE-2021-23337"), a(img, "CVE-2021-44228"), a(img, "CVE-2023-44487")}},
			{"resource tags", model.FindingFilter{ResourceTags: map[string]string{"env": "prod", "team": "web"}}, []string{a("i-web", "CVE-2023-50495"), a("i-web", "CVE-2023-5678"), a("i-web", "CVE-2024-0727")}},
			{"resource tags no match", model.FindingFilter{ResourceTags: map[string]string{"env": "prod", "team": "api"}}, nil},
			{"image repository", model.FindingFilter{ImageRepositories: []string{"registry.example.com/team/api"}}, []string{a(img, "CVE-2021-23337"), a(img, "CVE-2021-44228"), a(img, "CVE-2023-44487")}},
			{"fix available", model.FindingFilter{FixAvailable: []string{model.No, model.Partial}}, []string{a(img, "CVE-2021-23337"), a("i-web", "CVE-2023-50495")}},
			{"exploit available", model.FindingFilter{ExploitAvailable: []string{model.Yes}}, []string{a(img, "CVE-2021-44228"), a(img, "CVE-2023-44487")}},
			{"epss min", model.FindingFilter{EPSS: &model.NumberRange{Min: ptr(0.5)}}, []string{a(img, "CVE-2021-44228"), a(img, "CVE-2023-44487")}},
			{"epss range", model.FindingFilter{EPSS: &model.NumberRange{Min: ptr(0.001), Max: ptr(0.0112)}}, []string{a(img, "CVE-2021-23337"), a("i-web", "CVE-2023-5678"), a("i-web", "CVE-2024-0727")}},
			{"risk score", model.FindingFilter{RiskScore: &model.NumberRange{Min: ptr(7.2), Max: ptr(9.0)}}, []string{a(img, "CVE-2021-23337"), a(img, "CVE-2023-44487")}},
			{"first observed", model.FindingFilter{FirstObserved: &model.TimeRange{From: day(4), To: day(5)}}, []string{a(img, "CVE-2021-44228"), a(img, "CVE-2023-44487")}},
			{"last observed", model.FindingFilter{LastObserved: &model.TimeRange{To: day(10)}}, []string{a("i-web", "CVE-2023-5678"), a(img, "CVE-2023-44487")}},
			{"combined", model.FindingFilter{Statuses: []string{model.FindingActive}, ResourceTypes: []string{model.ResourceImage}, ExploitAvailable: []string{model.Yes}}, []string{a(img, "CVE-2021-44228")}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{Filter: tc.f})
				must(t, err)
				want := slices.Clone(tc.want)
				sort.Strings(want)
				if got := ids(p.Findings); !slices.Equal(got, want) {
					t.Errorf("got %v\nwant %v", got, want)
				}
				n, err := s.CountFindings(ctx, []string{acctA}, tc.f)
				must(t, err)
				if n != len(want) {
					t.Errorf("count %d, want %d", n, len(want))
				}
			})
		}
	})
}

func TestTenantIsolation(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedFindings(t, s)
		must(t, s.PutSuppressionRule(ctx, model.SuppressionRule{Account: acctB, ID: "r1", Name: "b rule"}))
		must(t, s.AppendAudit(ctx, AuditEntry{Account: acctB, Actor: "k-b", Action: "CreateFilter"}))
		must(t, s.PutCoverage(ctx, acctB, model.Coverage{Account: acctB, ResourceID: "i-web", ResourceType: "host", ScanType: "package", Status: "ACTIVE", Reason: "SUCCESSFUL"}))

		p, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{PageSize: 1000})
		must(t, err)
		for _, f := range p.Findings {
			if f.Account != acctA {
				t.Errorf("account A sees %s", f.ID)
			}
		}
		if _, err := s.GetFinding(ctx, []string{acctA}, fid(acctB, "i-web", "CVE-2024-0727")); !errors.Is(err, ErrNotFound) {
			t.Errorf("get B's finding as A: %v", err)
		}
		if f, err := s.GetFinding(ctx, []string{acctB}, fid(acctB, "i-web", "CVE-2024-0727")); err != nil || f.Account != acctB {
			t.Errorf("get B's finding as B: %v %v", f.ID, err)
		}
		rf, err := s.ResourceFindings(ctx, acctA, "i-web")
		must(t, err)
		for _, f := range rf {
			if f.Account != acctA {
				t.Errorf("ResourceFindings leaks %s", f.ID)
			}
		}
		agg, err := s.Aggregate(ctx, []string{acctA}, AggregateQuery{GroupBy: ByAccount})
		must(t, err)
		if len(agg) != 1 || agg[0].Key != acctA {
			t.Errorf("aggregate by account = %+v", agg)
		}
		if rules, _ := s.ListSuppressionRules(ctx, []string{acctA}); len(rules) != 0 {
			t.Errorf("A sees rules %v", rules)
		}
		if _, err := s.GetSuppressionRule(ctx, acctA, "r1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("A gets B's rule: %v", err)
		}
		if err := s.DeleteSuppressionRule(ctx, acctA, "r1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("A deletes B's rule: %v", err)
		}
		if a, _ := s.ListAudit(ctx, []string{acctA}, AuditQuery{}); len(a.Entries) != 0 {
			t.Errorf("A sees audit %v", a.Entries)
		}
		if c, _ := s.ListCoverage(ctx, []string{acctA}, CoverageQuery{}); len(c.Coverage) != 0 {
			t.Errorf("A sees coverage %v", c.Coverage)
		}
		// Writes naming another account's rows are refused as a whole.
		bad := finding(acctB, "i-web", "CVE-2024-0727", "LOW")
		for _, c := range []Changes{
			{Account: acctA, Upsert: []model.Finding{bad}},
			{Account: acctA, Events: []model.OutboxEvent{{ID: "e1", Type: model.EventFindingUpdated, Account: acctB}}},
			{Account: acctA, Coverage: []model.Coverage{{Account: acctB, ResourceID: "i-web", ScanType: "package", Status: "ACTIVE"}}},
			{Account: acctA, Audit: []AuditEntry{{Account: acctB, Actor: "x", Action: "y"}}},
		} {
			if err := s.ApplyChanges(ctx, c); !errors.Is(err, ErrForeign) {
				t.Errorf("foreign change accepted: %v", err)
			}
		}
		// An event whose data is not JSON refuses the whole change, the finding with it.
		good := finding(acctA, "i-db", "CVE-2024-0727", "LOW")
		if err := s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{good},
			Events: []model.OutboxEvent{{ID: "e2", Type: model.EventFindingCreated, Account: acctA, Data: []byte(`{"findingId":`)}}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("event data that is not JSON: %v", err)
		}
		if _, err := s.GetFinding(ctx, []string{acctA}, good.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("the refused change wrote its finding: %v", err)
		}
		// Deleting B's finding ID within A's changes touches nothing.
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Delete: []string{fid(acctB, "i-web", "CVE-2024-0727")}}))
		if _, err := s.GetFinding(ctx, []string{acctB}, fid(acctB, "i-web", "CVE-2024-0727")); err != nil {
			t.Errorf("A deleted B's finding: %v", err)
		}
		if _, err := s.ListFindings(ctx, nil, FindingQuery{}); !errors.Is(err, ErrNoAccounts) {
			t.Errorf("empty accounts: %v", err)
		}
	})
}

func TestPagination(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA, acctB)
		sevs := []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED"}
		for _, acc := range []string{acctA, acctB} {
			seedResource(t, s, model.Resource{Account: acc, ID: "i-1", Type: model.ResourceHost})
			var fs []model.Finding
			for i := 0; i < 120; i++ {
				// Few distinct sort values, so ties across pages are the common case.
				fs = append(fs, finding(acc, "i-1", fmt.Sprintf("CVE-2024-%05d", i), sevs[i%len(sevs)], func(f *model.Finding) {
					f.RiskScore.Score = float64(i%7) + 0.1
					f.EPSS = &model.EPSS{Score: float64(i%5) / 10}
					f.UpdatedAt = f.UpdatedAt.Add(time.Duration(i%4) * time.Hour)
					f.FirstObservedAt = f.FirstObservedAt.Add(time.Duration(i%3) * time.Minute)
					f.LastObservedAt = f.LastObservedAt.Add(time.Duration(i%9) * time.Second)
				}))
			}
			must(t, s.ApplyChanges(ctx, Changes{Account: acc, Upsert: fs}))
		}
		key := func(f model.Finding, sf SortField) float64 {
			switch sf {
			case SortSeverity:
				return float64(severityRank[f.Severity])
			case SortUpdatedAt:
				return float64(f.UpdatedAt.UnixMicro())
			case SortFirstObserved:
				return float64(f.FirstObservedAt.UnixMicro())
			case SortLastObserved:
				return float64(f.LastObservedAt.UnixMicro())
			case SortRiskScore:
				return f.RiskScore.Score
			}
			return f.EPSS.Score
		}
		for _, accounts := range [][]string{{acctA}, {acctA, acctB}} {
			for sf := range sortColumns {
				for _, asc := range []bool{false, true} {
					name := fmt.Sprintf("%d accounts/%s/asc=%v", len(accounts), sf, asc)
					var got []model.Finding
					tok := ""
					for pages := 0; ; pages++ {
						if pages > 100 {
							t.Fatalf("%s: pagination does not end", name)
						}
						p, err := s.ListFindings(ctx, accounts, FindingQuery{Sort: sf, Ascending: asc, PageSize: 7, PageToken: tok})
						must(t, err)
						if len(p.Findings) > 7 {
							t.Fatalf("%s: page of %d", name, len(p.Findings))
						}
						got = append(got, p.Findings...)
						if tok = p.NextToken; tok == "" {
							break
						}
					}
					if len(got) != 120*len(accounts) {
						t.Errorf("%s: %d findings, want %d", name, len(got), 120*len(accounts))
					}
					seen := map[string]bool{}
					for i, f := range got {
						k := f.Account + f.ID
						if seen[k] {
							t.Errorf("%s: duplicate %s", name, k)
						}
						seen[k] = true
						if i > 0 {
							prev, cur := key(got[i-1], sf), key(f, sf)
							if (!asc && cur > prev) || (asc && cur < prev) {
								t.Errorf("%s: out of order at %d: %v then %v", name, i, prev, cur)
							}
						}
					}
				}
			}
		}
		// Stability: rows inserted ahead of the cursor between pages neither repeat nor shift the rest.
		p1, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{Sort: SortRiskScore, PageSize: 10})
		must(t, err)
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{
			finding(acctA, "i-1", "CVE-2099-00001", "CRITICAL", func(f *model.Finding) { f.RiskScore.Score = 9.9 }),
		}}))
		p2, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{Sort: SortRiskScore, PageSize: 10, PageToken: p1.NextToken})
		must(t, err)
		for _, f := range p2.Findings {
			if slices.Contains(ids(p1.Findings), f.ID) || f.VulnerabilityID == "CVE-2099-00001" {
				t.Errorf("page 2 repeats or includes a row ahead of the cursor: %s", f.ID)
			}
		}
		if _, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{Sort: SortEPSS, PageToken: p1.NextToken}); !errors.Is(err, ErrBadToken) {
			t.Errorf("token reused with another sort: %v", err)
		}
		if _, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{PageToken: "!!"}); !errors.Is(err, ErrBadToken) {
			t.Errorf("garbage token: %v", err)
		}
		if _, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{Sort: "title"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown sort: %v", err)
		}
	})
}

func TestAggregate(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedFindings(t, s)
		active := model.FindingFilter{Statuses: []string{model.FindingActive}}
		type row struct {
			acc, key string
			c        SeverityCounts
		}
		for _, tc := range []struct {
			by       GroupBy
			accounts []string
			f        model.FindingFilter
			want     []row
		}{
			{ByResource, []string{acctA}, active, []row{
				{acctA, "sha256:1111", SeverityCounts{Critical: 1, High: 1, Total: 2}},
				{acctA, "i-web", SeverityCounts{Medium: 1, Untriaged: 1, Total: 2}},
			}},
			{ByAccount, []string{acctA, acctB}, model.FindingFilter{}, []row{
				{acctA, acctA, SeverityCounts{Critical: 1, High: 2, Medium: 1, Low: 1, Untriaged: 1, Total: 6}},
				{acctB, acctB, SeverityCounts{Critical: 1, Medium: 1, Total: 2}},
			}},
			{ByVulnerability, []string{acctA, acctB}, active, []row{
				{"", "CVE-2021-44228", SeverityCounts{Critical: 2, Total: 2}},
				{"", "CVE-2021-23337", SeverityCounts{High: 1, Total: 1}},
				{"", "CVE-2024-0727", SeverityCounts{Medium: 2, Total: 2}},
				{"", "CVE-2023-50495", SeverityCounts{Untriaged: 1, Total: 1}},
			}},
			{ByPackage, []string{acctA}, model.FindingFilter{}, []row{
				{"", "org.apache.logging.log4j:log4j-core", SeverityCounts{Critical: 1, Total: 1}},
				{"", "golang.org/x/net", SeverityCounts{High: 1, Total: 1}},
				{"", "lodash", SeverityCounts{High: 1, Total: 1}},
				{"", "libssl3", SeverityCounts{Medium: 1, Low: 1, Total: 2}},
				{"", "openssl", SeverityCounts{Medium: 1, Total: 1}},
			}},
			{ByImageRepository, []string{acctA}, model.FindingFilter{}, []row{
				{"", "registry.example.com/team/api", SeverityCounts{Critical: 1, High: 2, Total: 3}},
			}},
			{ByImageLayer, []string{acctA}, model.FindingFilter{}, []row{
				{"", "sha256:layer2", SeverityCounts{Critical: 1, Total: 1}},
				{"", "sha256:layer3", SeverityCounts{High: 2, Total: 2}},
			}},
			{ByResourceType, []string{acctA}, active, []row{
				{"", "image", SeverityCounts{Critical: 1, High: 1, Total: 2}},
				{"", "host", SeverityCounts{Medium: 1, Untriaged: 1, Total: 2}},
			}},
		} {
			got, err := s.Aggregate(ctx, tc.accounts, AggregateQuery{GroupBy: tc.by, Filter: tc.f})
			must(t, err)
			var rows []row
			for _, r := range got {
				rows = append(rows, row{r.Account, r.Key, r.Counts})
			}
			if !slices.Equal(rows, tc.want) {
				t.Errorf("by %s:\n got %+v\nwant %+v", tc.by, rows, tc.want)
			}
		}
		if _, err := s.Aggregate(ctx, []string{acctA}, AggregateQuery{GroupBy: "title"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown grouping: %v", err)
		}
	})
}

func countEvents(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	must(t, s.db.QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&n))
	return n
}

func TestApplyChangesAtomic(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		seedResource(t, s, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
		good := finding(acctA, "i-1", "CVE-2024-0727", "MEDIUM", func(f *model.Finding) {
			f.Packages = []model.VulnerablePackage{{Name: "libssl3", Version: "3.0.11-1~deb12u2"}}
		})
		orphan := finding(acctA, "i-missing", "CVE-2023-5678", "LOW") // its resource does not exist
		ev := model.OutboxEvent{ID: "ev-1", Type: model.EventFindingCreated, Account: acctA, Subject: good.ID, Data: json.RawMessage(`{"findingId":"x"}`)}
		cov := model.Coverage{Account: acctA, ResourceID: "i-1", ResourceType: "host", ScanType: "package", Status: "ACTIVE", Reason: "SUCCESSFUL"}
		audit := AuditEntry{Account: acctA, Actor: "system", Action: "Rescan"}
		err := s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{good, orphan}, Events: []model.OutboxEvent{ev}, Coverage: []model.Coverage{cov}, Audit: []AuditEntry{audit}})
		if err == nil {
			t.Fatal("change with an orphan finding succeeded")
		}
		checkEmpty := func(when string) {
			t.Helper()
			if n, _ := s.CountFindings(ctx, []string{acctA}, model.FindingFilter{}); n != 0 {
				t.Errorf("%s: %d findings written", when, n)
			}
			if n := countEvents(t, s); n != 0 {
				t.Errorf("%s: %d events written", when, n)
			}
			if c, _ := s.ListCoverage(ctx, []string{acctA}, CoverageQuery{}); len(c.Coverage) != 0 {
				t.Errorf("%s: coverage written", when)
			}
			if a, _ := s.ListAudit(ctx, []string{acctA}, AuditQuery{}); len(a.Entries) != 0 {
				t.Errorf("%s: audit written", when)
			}
			var n int
			must(t, s.db.QueryRow(`SELECT COUNT(*) FROM finding_packages`).Scan(&n))
			if n != 0 {
				t.Errorf("%s: %d finding packages written", when, n)
			}
		}
		checkEmpty("orphan")
		// A failure at the very end (a duplicate event ID) also undoes everything before it.
		err = s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{good}, Coverage: []model.Coverage{cov}, Events: []model.OutboxEvent{ev, ev}})
		if err == nil {
			t.Fatal("duplicate event IDs accepted")
		}
		checkEmpty("duplicate event")

		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{good}, Events: []model.OutboxEvent{ev}, Coverage: []model.Coverage{cov}, Audit: []AuditEntry{audit}}))
		got, err := s.GetFinding(ctx, []string{acctA}, good.ID)
		must(t, err)
		if got.Packages[0].Name != "libssl3" || got.Severity != "MEDIUM" {
			t.Errorf("finding = %+v", got)
		}
		if n := countEvents(t, s); n != 1 {
			t.Errorf("%d events", n)
		}
		// An update replaces the row and its package index; a delete removes both.
		good.Severity, good.Packages = "HIGH", []model.VulnerablePackage{{Name: "openssl", Version: "3.0.11-1~deb12u2"}}
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{good}}))
		if p, _ := s.ListFindings(ctx, []string{acctA}, FindingQuery{Filter: model.FindingFilter{PackageNames: []string{"libssl3"}}}); len(p.Findings) != 0 {
			t.Error("stale package index after update")
		}
		if p, _ := s.ListFindings(ctx, []string{acctA}, FindingQuery{Filter: model.FindingFilter{Severities: []string{"HIGH"}, PackageNames: []string{"openssl"}}}); len(p.Findings) != 1 {
			t.Error("updated finding not found by new columns")
		}
		must(t, s.ApplyChanges(ctx, Changes{Account: acctA, Delete: []string{good.ID}}))
		if _, err := s.GetFinding(ctx, []string{acctA}, good.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted finding: %v", err)
		}
		var n int
		must(t, s.db.QueryRow(`SELECT COUNT(*) FROM finding_packages`).Scan(&n))
		if n != 0 {
			t.Errorf("%d finding packages left after delete", n)
		}
	})
}

func TestSuppressionCoverageAudit(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA, acctB)
		exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		rule := model.SuppressionRule{Account: acctA, ID: "r-1", Name: "accepted risk", Reason: "not reachable",
			Filter: model.FindingFilter{VulnerabilityIDs: []string{"CVE-2023-5678"}, EPSS: &model.NumberRange{Max: ptr(0.01)}}, ExpiresAt: &exp}
		must(t, s.PutSuppressionRule(ctx, rule))
		got, err := s.GetSuppressionRule(ctx, acctA, "r-1")
		must(t, err)
		if got.Filter.VulnerabilityIDs[0] != "CVE-2023-5678" || *got.Filter.EPSS.Max != 0.01 || !got.ExpiresAt.Equal(exp) || got.CreatedAt.IsZero() {
			t.Errorf("rule = %+v", got)
		}
		e.clock.Advance(time.Minute)
		rule.Name, rule.UpdatedAt = "renamed", time.Time{}
		must(t, s.PutSuppressionRule(ctx, rule))
		got2, _ := s.GetSuppressionRule(ctx, acctA, "r-1")
		if got2.Name != "renamed" || !got2.CreatedAt.Equal(got.CreatedAt) || !got2.UpdatedAt.After(got.UpdatedAt) {
			t.Errorf("updated rule = %+v", got2)
		}
		must(t, s.DeleteSuppressionRule(ctx, acctA, "r-1"))
		if rs, _ := s.ListSuppressionRules(ctx, []string{acctA}); len(rs) != 0 {
			t.Errorf("rules after delete: %v", rs)
		}

		for i, c := range []struct{ acc, id, typ, status, reason string }{
			{acctA, "i-1", "host", "ACTIVE", "SUCCESSFUL"},
			{acctA, "i-2", "host", "INACTIVE", "UNSUPPORTED_OS"},
			{acctA, "i-3", "host", "INACTIVE", "EXCLUDED_BY_TAG"},
			{acctA, "sha256:1", "image", "ACTIVE", "SUCCESSFUL"},
			{acctB, "i-9", "host", "ACTIVE", "PENDING_INITIAL_SCAN"},
		} {
			seedResource(t, s, model.Resource{Account: c.acc, ID: c.id, Type: c.typ})
			must(t, s.PutCoverage(ctx, c.acc, model.Coverage{Account: c.acc, ResourceID: c.id, ResourceType: c.typ, ScanType: "package",
				Status: c.status, Reason: c.reason, ScanMode: "agent", LastScannedAt: e.clock.Now().Add(time.Duration(i) * time.Second)}))
		}
		// An upsert changes the reason in place.
		must(t, s.PutCoverage(ctx, acctA, model.Coverage{Account: acctA, ResourceID: "i-2", ResourceType: "host", ScanType: "package", Status: "INACTIVE", Reason: "NO_INVENTORY"}))
		stats := func(accs []string, by CoverageGroup, q CoverageQuery) []CountRow {
			r, err := s.CoverageStatistics(ctx, accs, by, q)
			must(t, err)
			return r
		}
		if got := stats([]string{acctA}, CoverageByStatus, CoverageQuery{}); !slices.Equal(got, []CountRow{{"ACTIVE", 2}, {"INACTIVE", 2}}) {
			t.Errorf("by status %v", got)
		}
		if got := stats([]string{acctA}, CoverageByReason, CoverageQuery{Statuses: []string{"INACTIVE"}}); !slices.Equal(got, []CountRow{{"EXCLUDED_BY_TAG", 1}, {"NO_INVENTORY", 1}}) {
			t.Errorf("by reason %v", got)
		}
		if got := stats([]string{acctA, acctB}, CoverageByAccount, CoverageQuery{}); !slices.Equal(got, []CountRow{{acctA, 4}, {acctB, 1}}) {
			t.Errorf("by account %v", got)
		}
		if got := stats([]string{acctA}, CoverageByResourceType, CoverageQuery{}); !slices.Equal(got, []CountRow{{"host", 3}, {"image", 1}}) {
			t.Errorf("by type %v", got)
		}
		var all []model.Coverage
		tok := ""
		for {
			p, err := s.ListCoverage(ctx, []string{acctA, acctB}, CoverageQuery{PageSize: 2, PageToken: tok})
			must(t, err)
			all = append(all, p.Coverage...)
			if tok = p.NextToken; tok == "" {
				break
			}
		}
		if len(all) != 5 || all[0].ResourceID != "i-1" || all[0].LastScannedAt.IsZero() || all[4].Account != acctB {
			t.Errorf("coverage pages = %+v", all)
		}

		for i := 0; i < 5; i++ {
			e.clock.Advance(time.Second)
			must(t, s.AppendAudit(ctx, AuditEntry{Account: acctA, Actor: "key-1", Action: fmt.Sprintf("Action%d", i), RemoteAddr: "192.0.2.10", Detail: json.RawMessage(`{"n":1}`)}))
		}
		if err := s.AppendAudit(ctx, AuditEntry{Account: acctA, Actor: "k", Action: "a", Detail: json.RawMessage(`{`)}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad detail: %v", err)
		}
		p1, err := s.ListAudit(ctx, []string{acctA}, AuditQuery{PageSize: 3})
		must(t, err)
		p2, err := s.ListAudit(ctx, []string{acctA}, AuditQuery{PageSize: 3, PageToken: p1.NextToken})
		must(t, err)
		if len(p1.Entries) != 3 || len(p2.Entries) != 2 || p1.Entries[0].Action != "Action4" || p2.Entries[1].Action != "Action0" || p2.NextToken != "" {
			t.Errorf("audit pages %+v %+v", p1.Entries, p2.Entries)
		}
		if p1.Entries[0].RemoteAddr != "192.0.2.10" || string(p1.Entries[0].Detail) != `{"n":1}` {
			t.Errorf("audit entry %+v", p1.Entries[0])
		}
		since, _ := s.ListAudit(ctx, []string{acctA}, AuditQuery{Action: "Action2"})
		if len(since.Entries) != 1 {
			t.Errorf("audit by action %+v", since.Entries)
		}
	})
}

// TestConcurrentMigrations opens several stores on one fresh PostgreSQL database at once, as several
// server processes starting together do: the advisory lock serialises the migrations.
func TestConcurrentMigrations(t *testing.T) {
	dsn := pg.Database(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenPostgres(ctx, dsn, Options{})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			if v, err := s.SchemaVersion(ctx); err != nil || v != latestMigration(t) {
				errs <- fmt.Errorf("version %d, %v", v, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestConcurrentWriters writes from two pools at once: SQLite's immediate transactions and busy
// timeout queue writers instead of failing with SQLITE_BUSY.
func TestConcurrentWriters(t *testing.T) {
	for _, e := range dialects(t) {
		t.Run(e.name, func(t *testing.T) {
			s1, s2 := e.store(t), e.store(t)
			seedAccounts(t, s1, acctA)
			seedResource(t, s1, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
			var wg sync.WaitGroup
			for w, s := range []*Store{s1, s2, s1, s2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 25; i++ {
						f := finding(acctA, "i-1", fmt.Sprintf("CVE-2024-%d%04d", w, i), "HIGH")
						ev := model.OutboxEvent{ID: f.ID, Type: model.EventFindingCreated, Account: acctA}
						if err := s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{f}, Events: []model.OutboxEvent{ev}}); err != nil {
							t.Error(err)
							return
						}
						if _, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{PageSize: 5}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if n, _ := s1.CountFindings(ctx, []string{acctA}, model.FindingFilter{}); n != 100 {
				t.Errorf("%d findings, want 100", n)
			}
			if n := countEvents(t, s2); n != 100 {
				t.Errorf("%d events, want 100", n)
			}
		})
	}
}

// TestPaginationManyAccounts covers the plain (non-merged) path used above maxMergeAccounts.
func TestPaginationManyAccounts(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		var accounts []string
		for a := 0; a < maxMergeAccounts+3; a++ {
			acc := fmt.Sprintf("%012d", 300000000000+a)
			accounts = append(accounts, acc)
			seedAccounts(t, s, acc)
			seedResource(t, s, model.Resource{Account: acc, ID: "i-1", Type: model.ResourceHost})
			var fs []model.Finding
			for i := 0; i < 3; i++ {
				fs = append(fs, finding(acc, "i-1", fmt.Sprintf("CVE-2024-%04d", i), []string{"HIGH", "LOW", "CRITICAL"}[i]))
			}
			must(t, s.ApplyChanges(ctx, Changes{Account: acc, Upsert: fs}))
		}
		var got []model.Finding
		tok := ""
		for {
			p, err := s.ListFindings(ctx, accounts, FindingQuery{PageSize: 4, PageToken: tok, Filter: model.FindingFilter{Severities: []string{"HIGH", "CRITICAL"}}})
			must(t, err)
			got = append(got, p.Findings...)
			if tok = p.NextToken; tok == "" {
				break
			}
		}
		if len(got) != 2*len(accounts) {
			t.Fatalf("%d findings, want %d", len(got), 2*len(accounts))
		}
		seen := map[string]bool{}
		for i, f := range got {
			if seen[f.Account+f.ID] {
				t.Errorf("duplicate %s", f.ID)
			}
			seen[f.Account+f.ID] = true
			if i > 0 && severityRank[f.Severity] > severityRank[got[i-1].Severity] {
				t.Errorf("out of order at %d", i)
			}
		}
	})
}

// FuzzPageToken: a page token comes from the client; any value yields a page or ErrBadToken.
func FuzzPageToken(f *testing.F) {
	s, err := OpenSQLite(ctx, filepath.Join(f.TempDir(), "fuzz.db"), Options{})
	must(f, err)
	defer s.Close()
	seedAccounts(f, s, acctA)
	seedResource(f, s, model.Resource{Account: acctA, ID: "i-1", Type: model.ResourceHost})
	must(f, s.ApplyChanges(ctx, Changes{Account: acctA, Upsert: []model.Finding{
		finding(acctA, "i-1", "CVE-2024-0727", "MEDIUM"), finding(acctA, "i-1", "CVE-2023-5678", "LOW"),
	}}))
	p, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{PageSize: 1})
	must(f, err)
	f.Add(p.NextToken)
	f.Add("")
	f.Add("eyJzIjoic2V2ZXJpdHkiLCJrIjoiMWUzMDAiLCJpIjoieCIsImMiOiJ5In0")
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, sf := range []SortField{SortSeverity, SortRiskScore} {
			if _, err := s.ListFindings(ctx, []string{acctA}, FindingQuery{Sort: sf, PageToken: tok}); err != nil && !errors.Is(err, ErrBadToken) {
				t.Fatalf("token %q: %v", tok, err)
			}
		}
		for _, q := range []func() error{
			func() error {
				_, err := s.ListResources(ctx, []string{acctA}, ResourceQuery{PageToken: tok})
				return err
			},
			func() error {
				_, err := s.ListCoverage(ctx, []string{acctA}, CoverageQuery{PageToken: tok})
				return err
			},
			func() error { _, err := s.ListAudit(ctx, []string{acctA}, AuditQuery{PageToken: tok}); return err },
			func() error { _, err := s.ListDeadLetters(ctx, []string{acctA}, 10, tok); return err },
		} {
			if err := q(); err != nil && !errors.Is(err, ErrBadToken) {
				t.Fatalf("token %q: %v", tok, err)
			}
		}
	})
}
