package rpm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/osrelease"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/dir"
)

// --- header blob builder, the layout rpm's headerExport writes ---

type tagVal struct {
	tag uint32
	val any // string, []string, int32
}

func buildHeader(tags []tagVal) []byte {
	var index, data bytes.Buffer
	for _, t := range tags {
		var typ, count uint32
		switch v := t.val.(type) {
		case string:
			typ, count = typeString, 1
			fmt.Fprintf(&data, "%s\x00", v)
		case []string:
			typ, count = typeStringArray, uint32(len(v))
			for _, s := range v {
				fmt.Fprintf(&data, "%s\x00", s)
			}
		case int32:
			for data.Len()%4 != 0 {
				data.WriteByte(0)
			}
			typ, count = typeInt32, 1
			binary.Write(&data, binary.BigEndian, v)
		}
		off := data.Len() - dataLen(t.val)
		binary.Write(&index, binary.BigEndian, [4]uint32{t.tag, typ, uint32(off), count})
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(tags)))
	out = binary.BigEndian.AppendUint32(out, uint32(data.Len()))
	return append(append(out, index.Bytes()...), data.Bytes()...)
}

func dataLen(v any) int {
	switch v := v.(type) {
	case string:
		return len(v) + 1
	case []string:
		n := 0
		for _, s := range v {
			n += len(s) + 1
		}
		return n
	}
	return 4
}

func rockyOpenSSL() []byte {
	return buildHeader([]tagVal{
		{TagName, "openssl-libs"}, {TagVersion, "3.0.7"}, {TagRelease, "27.el9"}, {TagEpoch, int32(1)},
		{TagArch, "x86_64"}, {TagSourceRPM, "openssl-3.0.7-27.el9.src.rpm"}, {TagLicense, "ASL 2.0"},
		{TagVendor, "Rocky Enterprise Software Foundation"},
	})
}

func TestReadPackage(t *testing.T) {
	p, err := ReadPackage(rockyOpenSSL())
	if err != nil {
		t.Fatal(err)
	}
	want := Package{Name: "openssl-libs", Version: "3.0.7", Release: "27.el9", Arch: "x86_64", SourceRPM: "openssl-3.0.7-27.el9.src.rpm",
		License: "ASL 2.0", Vendor: "Rocky Enterprise Software Foundation", Epoch: 1, HasEpoch: true}
	if p != want {
		t.Errorf("got %+v", p)
	}
	// I18N summary-style array: the first string is used.
	p, err = ReadPackage(buildHeader([]tagVal{{TagName, []string{"bash", "x"}}, {TagVersion, "5.1.8"}, {TagRelease, "9.el9"}}))
	if err != nil || p.Name != "bash" || p.HasEpoch {
		t.Errorf("got %+v, %v", p, err)
	}
}

func TestReadPackageErrors(t *testing.T) {
	good := rockyOpenSSL()
	corrupt := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"empty":             {},
		"short":             {0, 0, 0, 1},
		"zero index":        {0, 0, 0, 0, 0, 0, 0, 0},
		"huge index":        {0, 1, 0, 0, 0, 0, 0, 0},
		"huge data":         {0, 0, 0, 1, 0x7f, 0, 0, 0},
		"truncated":         good[:len(good)-5],
		"offset outside":    corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+8:], 1<<30); return b }),
		"negative offset":   corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+8:], 0xfffffff0); return b }),
		"int past the end":  corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+3*16+8:], uint32(len(b)-8-8*16-2)); return b }),
		"string not string": corrupt(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+4:], typeInt32); return b }),
		"no name":           buildHeader([]tagVal{{TagVersion, "1"}, {TagRelease, "1"}}),
		"unterminated": corrupt(func(b []byte) []byte {
			b = b[:len(b)-1]
			binary.BigEndian.PutUint32(b[4:], binary.BigEndian.Uint32(b[4:])-1)
			return b
		}),
	}
	for name, blob := range tests {
		if _, err := ReadPackage(blob); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%s: err = %v, want ErrBadHeader", name, err)
		}
	}
}

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
	rp, _ := ReadPackage(rockyOpenSSL())
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
		rp := Package{Vendor: tc.vendor, Release: tc.release}
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

// blobsOf returns the header blobs of the BDB fixture.
func blobsOf(t testing.TB) [][]byte {
	b, err := os.ReadFile("testdata/bdb/Packages")
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	if err := ReadBDB(bytes.NewReader(b), int64(len(b)), func(blob []byte) error {
		blobs = append(blobs, append([]byte(nil), blob...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return blobs
}

// writeNDB lays blobs out in rpm's ndb format (see ndb.go), with a free slot and padding blocks.
func writeNDB(blobs [][]byte) []byte {
	le := binary.LittleEndian
	out := make([]byte, ndbPageSize)
	copy(out, "RpmP")
	le.PutUint32(out[12:], 1)                    // slot pages
	le.PutUint32(out[16:], uint32(len(blobs)+1)) // next package index
	for o := ndbHeaderSize; o < ndbPageSize; o += ndbSlotSize {
		copy(out[o:], "Slot")
	}
	for i, blob := range blobs {
		idx := uint32(i + 1)
		blkOff := uint32(len(out) / ndbBlockSize)
		n := ndbBlobHead + len(blob) + ndbBlobTail
		blkCnt := uint32((n + ndbBlockSize - 1) / ndbBlockSize)
		rec := make([]byte, int(blkCnt)*ndbBlockSize)
		copy(rec, "BlbS")
		le.PutUint32(rec[4:], idx)
		le.PutUint32(rec[12:], uint32(len(blob)))
		copy(rec[ndbBlobHead:], blob)
		tail := rec[len(rec)-ndbBlobTail:]
		le.PutUint32(tail[4:], uint32(len(blob)))
		copy(tail[8:], "BlbE")
		out = append(out, rec...)
		slot := out[ndbHeaderSize+(i+1)*ndbSlotSize:] // slot 0 stays free
		le.PutUint32(slot[4:], idx)
		le.PutUint32(slot[8:], blkOff)
		le.PutUint32(slot[12:], blkCnt)
	}
	return out
}

func TestNDB(t *testing.T) {
	blobs := blobsOf(t)
	db := writeNDB(blobs)
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
	// Corruptions are errors, never panics or silent partial results.
	for name, mut := range map[string]func(b []byte){
		"slot magic":   func(b []byte) { b[ndbHeaderSize+16] = 'X' },
		"blob magic":   func(b []byte) { b[ndbPageSize] = 'X' },
		"blob index":   func(b []byte) { b[ndbPageSize+4] = 9 },
		"blob length":  func(b []byte) { binary.LittleEndian.PutUint32(b[ndbPageSize+12:], 1<<30) },
		"slot outside": func(b []byte) { binary.LittleEndian.PutUint32(b[ndbHeaderSize+16+8:], 1<<30) },
		"slot pages":   func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 1<<20) },
		"version":      func(b []byte) { b[4] = 1 },
	} {
		b := append([]byte(nil), db...)
		mut(b)
		if err := ReadNDB(bytes.NewReader(b), int64(len(b)), func([]byte) error { return nil }); !errors.Is(err, ErrBadNDB) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestBDBCorruptions(t *testing.T) {
	db, err := os.ReadFile("testdata/bdb/Packages")
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.LittleEndian.Uint32(db[20:]))
	for name, mut := range map[string]func(b []byte){
		"magic":     func(b []byte) { b[12] = 0 },
		"page size": func(b []byte) { binary.LittleEndian.PutUint32(b[20:], 1000) },
		"encrypted": func(b []byte) { b[24] = 1 },
		"entries": func(b []byte) {
			for pg := 1; pg*ps < len(b); pg++ {
				if t := b[pg*ps+25]; t == pHash || t == pHashUnsorted {
					binary.LittleEndian.PutUint16(b[pg*ps+20:], 0xffff)
				}
			}
		},
		"overflow chain": func(b []byte) {
			for pg := 1; pg*ps < len(b); pg++ {
				if b[pg*ps+25] == pOverflow {
					binary.LittleEndian.PutUint32(b[pg*ps+16:], uint32(pg)) // a loop onto itself
					binary.LittleEndian.PutUint16(b[pg*ps+22:], 1)
				}
			}
		},
	} {
		b := append([]byte(nil), db...)
		mut(b)
		if err := ReadBDB(bytes.NewReader(b), int64(len(b)), func([]byte) error { return nil }); !errors.Is(err, ErrBadBDB) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// The fixture really exercises overflow pages.
	overflow := 0
	for pg := 1; pg*ps < len(db); pg++ {
		if db[pg*ps+25] == pOverflow {
			overflow++
		}
	}
	if overflow == 0 {
		t.Error("fixture has no overflow pages")
	}
}

func TestRequiredAndFormat(t *testing.T) {
	for p, want := range map[string]bool{
		"var/lib/rpm/Packages": true, "var/lib/rpm/rpmdb.sqlite": true, "usr/lib/sysimage/rpm/rpmdb.sqlite": true,
		"usr/lib/sysimage/rpm/Packages.db": true, "var/lib/rpm/rpmdb.sqlite-wal": true, "var/lib/rpm/rpmdb.sqlite-shm": false,
		"var/lib/rpm/Name": false, "opt/var/lib/rpm/Packages": false, "var/lib/rpm/x/Packages": false,
	} {
		if got := (Extractor{}).Required(p, nil); got != want {
			t.Errorf("Required(%q) = %v", p, got)
		}
	}
	mt := map[string]Format{"SQLite format 3\x00xxxxxxxxxxxxxxxx": FormatSQLite, "RpmP": FormatNDB,
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x61\x15\x06\x00": FormatBDB}
	for head, want := range mt {
		if got, ok := DetectFormat([]byte(head)); !ok || got != want {
			t.Errorf("DetectFormat(%q) = %v", head, got)
		}
	}
	if _, ok := DetectFormat([]byte("garbage")); ok {
		t.Error("garbage detected as a database")
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

func FuzzReadPackage(f *testing.F) {
	f.Add(rockyOpenSSL())
	for _, b := range blobsOf(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ReadPackage(b); err == nil {
			_, _ = toPackage(p, nil)
		}
	})
}

func FuzzReadBDB(f *testing.F) {
	db, err := os.ReadFile("testdata/bdb/Packages")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(db)
	f.Add(db[:2048])
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ReadBDB(bytes.NewReader(b), int64(len(b)), func(blob []byte) error { _, _ = ReadPackage(blob); return nil })
	})
}

func FuzzReadNDB(f *testing.F) {
	f.Add(writeNDB(blobsOf(f)))
	f.Add(writeNDB(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ReadNDB(bytes.NewReader(b), int64(len(b)), func(blob []byte) error { _, _ = ReadPackage(blob); return nil })
	})
}
