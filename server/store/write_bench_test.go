package store

import (
	"fmt"
	"github.com/vigil-sec/vigil/bench/fleet"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// The write benchmark replays the store half of the server's write paths (bench/cmd/fleetload
// measures them end to end through the API): a first load of new hosts by 16 concurrent writers
// (SaveResource, PutInventory of 500 packages, ApplyChanges of ~230 created findings with their
// events and coverage), then a feed delta (modified findings and their events, ~2,000 of each per
// ApplyChanges, one writer, as server/app's applyDelta batches them). It reports wall time and CPU
// per host, the database server's processes included (PostgreSQL's backends are read from /proc).
//
//	go test ./server/store -run '^$' -bench Write -benchtime 1x
//	VIGIL_BENCH_HOSTS=300 VIGIL_BENCH_DELTA=13000 ... sizes
//	VIGIL_BENCH_POSTGRES=1 ... on an ephemeral PostgreSQL cluster (fsync off), or
//	VIGIL_BENCH_PG_DSN=postgres://... on a cluster configured like bench/server-api.sh's

func benchEnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// writeBenchFinding is a finding the size of a real one (title, description, CVSS, references,
// one vulnerable package).
func writeBenchFinding(acc, res string, k int, at time.Time) model.Finding {
	vuln := fmt.Sprintf("CVE-%d-%05d", 2015+k%11, k*7919%40000)
	pkg := fmt.Sprintf("pkg%04d", k*31%2000)
	return model.Finding{
		ID: acc + "/" + res + "/" + vuln, Type: model.FindingPackageVulnerability, Account: acc,
		ResourceID: res, ResourceType: model.ResourceHost, VulnerabilityID: vuln,
		Title:       vuln + " - " + pkg,
		Description: strings.Repeat("A flaw was found in the parsing code that may lead to a denial of service. ", 3),
		Severity:    benchSevs[k%len(benchSevs)], SeveritySource: "debian", Status: model.FindingActive,
		FixAvailable: model.Yes, ExploitAvailable: model.No,
		EPSS:       &model.EPSS{Score: float64(k%1000) / 1000},
		RiskScore:  model.RiskScore{Score: float64(k%101) / 10, Base: 7.5, BaseSource: "nvd"},
		CVSS:       []model.CVSS{{Source: "nvd", Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", Score: 7.5}},
		References: []string{"https://nvd.nist.gov/vuln/detail/" + vuln, "https://security-tracker.debian.org/tracker/" + vuln},
		Packages: []model.VulnerablePackage{{Name: pkg, Version: fmt.Sprintf("1.%d.%d-1", k%7, k%13), Ecosystem: "Debian:12",
			FixedInVersion: fmt.Sprintf("1.%d.%d-2", k%7, k%13), SourceName: pkg}},
		Advisories:      []model.AdvisoryRef{{Source: "debian", ID: vuln}},
		FirstObservedAt: at, LastObservedAt: at, UpdatedAt: at,
	}
}

func openWriteBench(b *testing.B) (*Store, int) {
	dsn := os.Getenv("VIGIL_BENCH_PG_DSN")
	if dsn == "" && os.Getenv("VIGIL_BENCH_POSTGRES") == "1" {
		dsn = pg.Database(b)
	}
	if dsn == "" {
		s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "w.db"), Options{})
		must(b, err)
		return s, 0
	}
	s, err := OpenPostgres(ctx, dsn, Options{})
	must(b, err)
	var dir string
	must(b, s.db.QueryRowContext(ctx, `SELECT setting FROM pg_settings WHERE name = 'data_directory'`).Scan(&dir))
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	must(b, err)
	pid, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	return s, pid
}

func BenchmarkWrite(b *testing.B) {
	hosts := benchEnvInt("VIGIL_BENCH_HOSTS", 200)
	deltaN := benchEnvInt("VIGIL_BENCH_DELTA", 13000)
	const (
		clients  = 16
		packages = 500
		perHost  = 230
	)
	for b.Loop() {
		s, pgPid := openWriteBench(b)
		acc := benchAccount(0)
		must(b, s.PutAccount(ctx, model.Account{ID: acc, Role: model.AccountStandalone}))
		t0 := time.Now()
		at := t0.UTC().Truncate(time.Microsecond)
		host := func(h int) error {
			res := model.Resource{Account: acc, ID: fmt.Sprintf("i-%08d", h), Type: model.ResourceHost, Name: fmt.Sprintf("host-%d", h),
				Tags: map[string]string{"env": []string{"prod", "dev", "staging"}[h%3], "team": fmt.Sprintf("t%d", h%7)}}
			if _, err := s.SaveResource(ctx, res); err != nil {
				return err
			}
			pkgs := make([]model.Package, packages)
			for i := range pkgs {
				pkgs[i] = model.Package{Ecosystem: "Debian:12", Name: fmt.Sprintf("pkg%04d", (h*13+i)%2000), Version: fmt.Sprintf("1.%d-%d", i%9, h%3),
					SourceName: fmt.Sprintf("src%04d", (h*13+i)%1500), PURL: fmt.Sprintf("pkg:deb/debian/pkg%04d@1.%d", i, i%9), Arch: "amd64", Extractor: "dpkg"}
			}
			if _, err := s.PutInventory(ctx, acc, res.ID, fmt.Sprintf("h%d", h), pkgs); err != nil {
				return err
			}
			n := perHost - 20 + h%41
			c := Changes{Account: acc, Coverage: []model.Coverage{{Account: acc, ResourceID: res.ID, ScanType: model.ScanPackage,
				ResourceType: model.ResourceHost, Status: "ACTIVE", Reason: "SUCCESSFUL", LastScannedAt: at, UpdatedAt: at}}}
			for k := 0; k < n; k++ {
				f := writeBenchFinding(acc, res.ID, h*3+k, at)
				c.Upsert = append(c.Upsert, f)
				c.Events = append(c.Events, model.OutboxEvent{ID: fmt.Sprintf("e-%d-%d", h, k), Type: model.EventFindingCreated, Account: acc,
					Subject: f.ID, Time: at, Data: []byte(`{"findingId":"` + f.ID + `","severity":"` + f.Severity + `"}`)})
			}
			return s.ApplyChanges(ctx, c)
		}
		var (
			wg   sync.WaitGroup
			next = make(chan int)
			errs = make(chan error, clients)
		)
		c0, g0 := fleet.CPUTime(pgPid), fleet.CPUTime(0)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for h := range next {
					if err := host(h); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for h := 0; h < hosts; h++ {
			next <- h
		}
		close(next)
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		wall, cpu, gcpu := time.Since(t0), fleet.CPUTime(pgPid)-c0, fleet.CPUTime(0)-g0
		b.ReportMetric(float64(hosts)/wall.Seconds(), "load-hosts/s")
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(hosts), "load-cpu-ms/host")
		b.ReportMetric(float64(gcpu.Microseconds())/1000/float64(hosts), "load-go-cpu-ms/host")

		// The feed delta: deltaN findings spread over the hosts are modified (severity re-rated,
		// updatedAt moved), each with an event, in batches of ~4,000 rows as applyDelta writes them.
		var all []model.Finding
		per := max(1, deltaN/hosts)
		at2 := at.Add(time.Hour)
		for h := 0; h < hosts && len(all) < deltaN; h++ {
			for k := 0; k < per && len(all) < deltaN; k++ {
				f := writeBenchFinding(acc, fmt.Sprintf("i-%08d", h), h*3+k*3, at)
				f.Severity, f.UpdatedAt, f.LastObservedAt = benchSevs[(k+1)%len(benchSevs)], at2, at2
				all = append(all, f)
			}
		}
		t1, c1, g1 := time.Now(), fleet.CPUTime(pgPid), fleet.CPUTime(0)
		var batch Changes
		for i, f := range all {
			batch.Account, batch.ObservedAt = acc, at2
			batch.Upsert = append(batch.Upsert, f)
			batch.Events = append(batch.Events, model.OutboxEvent{ID: fmt.Sprintf("d-%d", i), Type: model.EventFindingUpdated, Account: acc,
				Subject: f.ID, Time: at2, Data: []byte(`{"findingId":"` + f.ID + `","severity":"` + f.Severity + `"}`)})
			if len(batch.Upsert)+len(batch.Events) > 4000 || i == len(all)-1 {
				must(b, s.ApplyChanges(ctx, batch))
				batch = Changes{}
			}
		}
		wall, cpu, gcpu = time.Since(t1), fleet.CPUTime(pgPid)-c1, fleet.CPUTime(0)-g1
		b.ReportMetric(wall.Seconds(), "delta-s")
		b.ReportMetric(cpu.Seconds(), "delta-cpu-s")
		b.ReportMetric(gcpu.Seconds(), "delta-go-cpu-s")
		b.ReportMetric(float64(len(all)), "delta-findings")
		s.Close()
	}
}
