package rpm

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/osrelease"
	"github.com/vigil-sec/vigil/inventory/rpm/rpmdb"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/dir"
	"github.com/vigil-sec/vigil/source/fsx"

	_ "modernc.org/sqlite" // the WAL test writes a real database with SQLite itself
)

func TestSplitSourceRPM(t *testing.T) {
	for _, tc := range []struct{ in, n, v, r string }{
		{"openssl-3.0.8-1.amzn2023.0.1.src.rpm", "openssl", "3.0.8", "1.amzn2023.0.1"},
		{"python3.11-setuptools-65.5.1-2.el9.src.rpm", "python3.11-setuptools", "65.5.1", "2.el9"},
		{"kernel-5.14.0-362.8.1.el9_3.nosrc.rpm", "kernel", "5.14.0", "362.8.1.el9_3"},
		{"bad.src.rpm", "", "", ""}, {"a-1.src.rpm", "", "", ""}, {"", "", "", ""}, {"-1-2.src.rpm", "", "", ""},
	} {
		n, v, r, _ := SplitSourceRPM(tc.in)
		if n != tc.n || v != tc.v || r != tc.r {
			t.Errorf("SplitSourceRPM(%q) = %q %q %q", tc.in, n, v, r)
		}
	}
}

func TestEcosystemAndPURL(t *testing.T) {
	rp := rpmdb.Package{Name: "openssl-libs", Version: "3.0.7", Release: "27.el9", Arch: "x86_64", Epoch: 1, HasEpoch: true}
	rocky := &model.OS{Family: "rocky", VersionID: "9.3", Ecosystem: "Rocky Linux:9"}
	if got := PURL(rp, rocky); got != "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9.3&epoch=1" {
		t.Errorf("PURL = %s", got)
	}
	if got := PURL(rp, &model.OS{Family: "rhel", VersionID: "9.3"}); !strings.HasPrefix(got, "pkg:rpm/redhat/") {
		t.Errorf("PURL = %s", got)
	}
	for _, tc := range []struct {
		os      *model.OS
		vendor  string
		release string
		want    string
	}{
		{rocky, "", "27.el9", "Rocky Linux:9"},
		{nil, "Rocky Enterprise Software Foundation", "27.el9", "Rocky Linux:9"},
		{nil, "AlmaLinux", "27.el9_4", "AlmaLinux:9"},
		{nil, "Red Hat, Inc.", "27.el8", "Red Hat:enterprise_linux:8"},
		{nil, "Amazon Linux", "1.amzn2023.0.1", "Amazon Linux:2023"},
		{nil, "Amazon.com", "1.amzn2.0.2", "Amazon Linux:2"},
		{nil, "SUSE LLC <https://www.suse.com/>", "150400.3.1", "rpm"},
		{&model.OS{Family: "fedora"}, "Fedora Project", "1.fc40", "rpm"},
	} {
		rp := rpmdb.Package{Vendor: tc.vendor, Release: tc.release}
		if got := Ecosystem(tc.os, rp); got != tc.want {
			t.Errorf("Ecosystem(%v, %q %q) = %q, want %q", tc.os, tc.vendor, tc.release, got, tc.want)
		}
	}
}

func readExpected(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "name\t") {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// rows renders packages the way gen.sh's rpm --qf does: NAME EPOCHNUM VERSION RELEASE ARCH SOURCERPM LICENSE.
func rows(pkgs []model.Package, withLicense bool) []string {
	var out []string
	for _, p := range pkgs {
		epoch, vr := "0", p.Version
		if e, rest, ok := strings.Cut(p.Version, ":"); ok {
			epoch, vr = e, rest
		}
		i := strings.LastIndexByte(vr, '-')
		srcVR := p.SourceVersion
		if _, rest, ok := strings.Cut(srcVR, ":"); ok {
			srcVR = rest
		}
		row := []string{p.Name, epoch, vr[:i], vr[i+1:], p.Arch, p.SourceName + "-" + srcVR + ".src.rpm"}
		if withLicense {
			row = append(row, strings.Join(p.Licenses, ""))
		}
		out = append(out, strings.Join(row, "\t"))
	}
	sort.Strings(out)
	return out
}

func runEngine(t *testing.T, root string) *model.Inventory {
	t.Helper()
	tgt, err := dir.Open(root)
	if err != nil {
		t.Skip(err)
	}
	defer tgt.Close()
	eng := inventory.New(osrelease.Detector{}, inventory.NewRegistry(Extractor{}), inventory.Config{Workers: 1})
	inv, err := eng.Run(context.Background(), tgt.FS, tgt.Info)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range inv.Extractors {
		if st.Status != model.StatusOK {
			t.Errorf("extractor status %+v", st)
		}
	}
	return inv
}

// TestEngineSQLite reads the rpm-written Rocky 9 SQLite database through the engine.
func TestEngineSQLite(t *testing.T) {
	inv := runEngine(t, "testdata/rocky9-sqlite")
	if inv.OS == nil || inv.OS.Ecosystem != "Rocky Linux:9" {
		t.Fatalf("OS = %+v", inv.OS)
	}
	if got, want := rows(inv.Packages, true), readExpected(t, "testdata/expected.tsv"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range inv.Packages {
		if p.Ecosystem != "Rocky Linux:9" || !strings.HasPrefix(p.PURL, "pkg:rpm/rocky/"+p.Name+"@") || p.Locations[0] != "/var/lib/rpm/rpmdb.sqlite" {
			t.Errorf("%+v", p)
		}
		if p.Name == "openssl-libs" && (p.Version != "1:3.0.7-27.el9" || p.SourceName != "openssl" || p.SourceVersion != "1:3.0.7-27.el9" ||
			p.PURL != "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9.3&epoch=1") {
			t.Errorf("openssl-libs = %+v", p)
		}
	}
}

// blobsOf returns the header blobs of the Berkeley DB fixture.
func blobsOf(t testing.TB) [][]byte {
	b, err := os.ReadFile("testdata/bdb/Packages")
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	if err := rpmdb.ReadBDB(bytes.NewReader(b), int64(len(b)), func(blob []byte) error {
		blobs = append(blobs, append([]byte(nil), blob...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return blobs
}

func extractFile(t *testing.T, fsys fs.FS, name string, o *model.OS) ([]model.Package, error) {
	t.Helper()
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return Extractor{}.Extract(context.Background(), &inventory.Input{Path: name, Info: fi, FS: fsys, OS: o})
}

// TestBDBFixture reads the Berkeley DB written by db5.3_load (which rpm's bdb_ro backend reads back
// into the same list, see gen.sh).
func TestBDBFixture(t *testing.T) {
	pkgs, err := extractFile(t, os.DirFS("testdata/bdb"), "Packages", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rows(pkgs, true), readExpected(t, "testdata/expected.tsv"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range pkgs {
		if p.Ecosystem != "Rocky Linux:9" { // inferred from vendor and dist tag: no OS given
			t.Errorf("%s: ecosystem %q", p.Name, p.Ecosystem)
		}
	}
}

func TestNDB(t *testing.T) {
	blobs := blobsOf(t)
	db := rpmdb.WriteNDB(blobs)
	dirName := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dirName, "usr/lib/sysimage/rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirName, "usr/lib/sysimage/rpm/Packages.db"), db, 0o644); err != nil {
		t.Fatal(err)
	}
	inv := runEngine(t, dirName)
	if got, want := rows(inv.Packages, true), readExpected(t, "testdata/expected.tsv"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRequired(t *testing.T) {
	for p, want := range map[string]bool{
		"var/lib/rpm/Packages": true, "var/lib/rpm/rpmdb.sqlite": true, "usr/lib/sysimage/rpm/rpmdb.sqlite": true,
		"usr/lib/sysimage/rpm/Packages.db": true, "var/lib/rpm/rpmdb.sqlite-wal": true, "var/lib/rpm/rpmdb.sqlite-shm": false,
		"var/lib/rpm/Name": false, "opt/var/lib/rpm/Packages": false, "var/lib/rpm/x/Packages": false,
	} {
		if got := (Extractor{}).Required(p, nil); got != want {
			t.Errorf("Required(%q) = %v", p, got)
		}
	}
}

func TestFinishPrefersNewestFormat(t *testing.T) {
	pkg := func(name, loc string) model.Package { return model.Package{Name: name, Locations: []string{loc}} }
	got := Extractor{}.Finish([]model.Package{
		pkg("bash", "/var/lib/rpm/Packages"), pkg("bash", "/usr/lib/sysimage/rpm/rpmdb.sqlite"),
		pkg("zsh", "/chroot/var/lib/rpm/Packages"),
	})
	if len(got) != 2 || got[0].Locations[0] != "/usr/lib/sysimage/rpm/rpmdb.sqlite" || got[1].Name != "zsh" {
		t.Errorf("got %+v", got)
	}
}

func TestExtractErrorsNameFile(t *testing.T) {
	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "var/lib/rpm"), 0o755)
	os.WriteFile(filepath.Join(d, "var/lib/rpm/Packages"), []byte("this is not a database at all"), 0o644)
	_, err := extractFile(t, os.DirFS(d), "var/lib/rpm/Packages", nil)
	if err == nil || !strings.Contains(err.Error(), "/var/lib/rpm/Packages") {
		t.Errorf("err = %v", err)
	}
	os.WriteFile(filepath.Join(d, "var/lib/rpm/rpmdb.sqlite"), []byte("SQLite format 3\x00 but truncated"), 0o644)
	if _, err := extractFile(t, os.DirFS(d), "var/lib/rpm/rpmdb.sqlite", nil); err == nil {
		t.Error("truncated sqlite accepted")
	}
}

// TestRealCentOSBerkeleyDB reads the real CentOS 5-8 Berkeley DB Packages files shipped in the module
// cache's copy of knqyf263/go-rpmdb (read in place, not copied), checking every package against what
// rpm's own bdb_ro backend lists. Skipped where the module or rpm is absent.
func TestRealCentOSBerkeleyDB(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rpmBin, err := exec.LookPath("rpm")
	if err != nil {
		t.Skip("rpm not installed")
	}
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skip(err)
	}
	root := filepath.Join(strings.TrimSpace(string(modcache)), "github.com/knqyf263/go-rpmdb@v0.0.0-20210911072402-73bd0ce46c49/pkg/testdata")
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "Packages"))
	if len(dirs) == 0 {
		t.Skip("go-rpmdb test data not in the module cache")
	}
	total := 0
	for _, db := range dirs {
		name := filepath.Base(filepath.Dir(db))
		t.Run(name, func(t *testing.T) {
			// rpm wants a writable dbpath for its lock file: give it a private copy.
			tmp := t.TempDir()
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(tmp, "Packages"), b, 0o644)
			out, err := exec.Command(rpmBin, "--define", "_db_backend bdb_ro", "--dbpath", tmp, "-qa",
				"--qf", `%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\n`).Output()
			if err != nil {
				t.Skipf("rpm cannot read it: %v", err)
			}
			var want []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if !strings.HasPrefix(l, "gpg-pubkey\t") {
					want = append(want, strings.ReplaceAll(l, "(none)", ""))
				}
			}
			sort.Strings(want)
			pkgs, err := extractFile(t, os.DirFS(tmp), "Packages", &model.OS{Family: "centos", Ecosystem: "CentOS:7"})
			if err != nil {
				t.Fatal(err)
			}
			got := rows(pkgs, false)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got %d packages, rpm lists %d", len(got), len(want))
				for i := 0; i < len(got) && i < len(want); i++ {
					if got[i] != want[i] {
						t.Errorf("first difference:\n got %s\nwant %s", got[i], want[i])
						break
					}
				}
			}
			total += len(got)
		})
	}
	t.Logf("%d packages in %d real databases match rpm", total, len(dirs))
}

// TestBenchRPMDB checks the benchmark's Amazon Linux 2023 SQLite root against its `rpm -qa` ground truth.
func TestBenchRPMDB(t *testing.T) {
	const root = "/root/vigil-bench/targets/rpm-root-sqlite"
	want := readExpected(t, "/root/vigil-bench/targets/ground-truth/rpmdb.tsv")
	if _, err := os.Stat(root); err != nil {
		t.Skip(err)
	}
	inv := runEngine(t, root)
	if inv.OS == nil || inv.OS.Ecosystem != "Amazon Linux:2023" {
		t.Errorf("OS = %+v", inv.OS)
	}
	if got := rows(inv.Packages, false); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range inv.Packages {
		if p.Ecosystem != "Amazon Linux:2023" || !strings.Contains(p.PURL, "distro=amzn-2023") {
			t.Errorf("%+v", p)
		}
	}
	t.Logf("%d packages match the ground truth", len(inv.Packages))
}

// TestSQLiteWAL proves committed transactions still in rpmdb.sqlite-wal (not yet checkpointed into the
// main file) are read: the extractor copies the -wal along with the database.
func TestSQLiteWAL(t *testing.T) {
	root := t.TempDir()
	dbDir := filepath.Join(root, "usr/lib/sysimage/rpm")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dbDir, "rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA journal_mode=WAL", "PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
		"PRAGMA wal_checkpoint(TRUNCATE)", // the schema is in the main file, the rows will not be
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	for _, b := range blobsOf(t) {
		if _, err := db.Exec("INSERT INTO Packages (blob) VALUES (?)", b); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dbDir, "rpmdb.sqlite-wal")); err != nil || fi.Size() == 0 {
		t.Fatalf("no WAL content: %v", err)
	}
	inv := runEngine(t, root)
	if got, want := rows(inv.Packages, true), readExpected(t, "testdata/expected.tsv"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := inv.Extractors[0]; st.Files != 2 || st.Status != model.StatusOK {
		t.Errorf("status %+v", st)
	}
}

// TestEngineMemTree reads the SQLite and Berkeley DB fixtures from an in-memory tree, as image sources
// hand files over (no host path to open: the SQLite database is copied out), with the engine's filter
// deciding which contents are kept. The stale Berkeley DB next to the SQLite one is dropped by Finish.
func TestEngineMemTree(t *testing.T) {
	files := map[string]string{
		"usr/lib/sysimage/rpm/rpmdb.sqlite": "testdata/rocky9-sqlite/var/lib/rpm/rpmdb.sqlite",
		"etc/os-release":                    "testdata/rocky9-sqlite/etc/os-release",
		"var/lib/rpm/Packages":              "testdata/bdb/Packages", // left behind by a migration
	}
	eng := inventory.New(osrelease.Detector{}, inventory.NewRegistry(Extractor{}), inventory.Config{Workers: 2})
	keep := eng.Filter()
	mt := fsx.NewMemTree()
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		n := &fsx.MemNode{Mode: 0o644, Size: int64(len(b)), Layer: "sha256:" + path.Dir(name)}
		mt.Put(name, n)
		fi, _ := mt.Lstat(name)
		if keep(name, fi) {
			n.Content = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		}
	}
	inv, err := eng.Run(context.Background(), fsx.New(mt), model.SourceInfo{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.OS == nil || inv.OS.Ecosystem != "Rocky Linux:9" || len(inv.Packages) != 3 {
		t.Fatalf("OS %+v, %d packages", inv.OS, len(inv.Packages))
	}
	for _, p := range inv.Packages {
		if p.Locations[0] != "/usr/lib/sysimage/rpm/rpmdb.sqlite" {
			t.Errorf("%s read from %s", p.Name, p.Locations[0])
		}
		if p.LayerDigest != "sha256:"+path.Dir(strings.TrimPrefix(p.Locations[0], "/")) {
			t.Errorf("%s: layer %q for %s", p.Name, p.LayerDigest, p.Locations[0])
		}
	}
}

// TestOneBadHeader: a corrupt header is reported, and the other packages are still returned.
func TestOneBadHeader(t *testing.T) {
	blobs := blobsOf(t)
	blobs = append(blobs[:1], append([][]byte{[]byte("\x00\x00\x00\x01\x00\x00\x00\x01garbage")}, blobs[1:]...)...)
	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "usr/lib/sysimage/rpm"), 0o755)
	os.WriteFile(filepath.Join(d, "usr/lib/sysimage/rpm/Packages.db"), rpmdb.WriteNDB(blobs), 0o644)
	pkgs, err := extractFile(t, os.DirFS(d), "usr/lib/sysimage/rpm/Packages.db", nil)
	if len(pkgs) != 3 || err == nil || !strings.Contains(err.Error(), "1 unreadable package headers") ||
		!strings.Contains(err.Error(), "/usr/lib/sysimage/rpm/Packages.db (ndb rpm database)") {
		t.Errorf("got %d packages, err %v", len(pkgs), err)
	}
}
