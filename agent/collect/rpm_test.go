package collect

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

// testdata/rpm-bdb/var/lib/rpm/Packages is the Berkeley DB fixture of inventory/rpm (bash,
// openssl-libs with epoch 1, tzdata from Rocky Linux 9).
func TestRPMBerkeleyDB(t *testing.T) { testRPM(t, "testdata/rpm-bdb") }

// testdata/rpm-sqlite/var/lib/rpm/rpmdb.sqlite is inventory/rpm's SQLite fixture: the same three
// packages in the format of RHEL 9, read without an SQLite driver.
func TestRPMSQLite(t *testing.T) { testRPM(t, "testdata/rpm-sqlite") }

func testRPM(t *testing.T, root string) {
	c := &Collector{Root: root, Sensors: []string{protocol.SensorOSPackages}}
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]model.Package{}
	for _, p := range snap.Inventory.Packages {
		got[p.Name] = p
	}
	tests := []struct{ name, version, srcName, srcVersion, purl string }{
		{"bash", "5.1.8-9.el9", "bash", "5.1.8-9.el9", "pkg:rpm/rocky/bash@5.1.8-9.el9?arch=x86_64&distro=rocky-9.3"},
		{"openssl-libs", "1:3.0.7-27.el9", "openssl", "1:3.0.7-27.el9", "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9.3&epoch=1"},
		{"tzdata", "2024a-1.el9", "tzdata", "2024a-1.el9", "pkg:rpm/rocky/tzdata@2024a-1.el9?arch=noarch&distro=rocky-9.3"},
	}
	if len(got) != len(tests) {
		t.Errorf("%d packages: %+v", len(got), snap.Inventory.Packages)
	}
	for _, tc := range tests {
		p := got[tc.name]
		if p.Version != tc.version || p.SourceName != tc.srcName || p.SourceVersion != tc.srcVersion || p.PURL != tc.purl || p.Extractor != "rpm" {
			t.Errorf("%s: %+v", tc.name, p)
		}
		if !strings.HasPrefix(p.Ecosystem, "Rocky Linux") {
			t.Errorf("%s: ecosystem %q", tc.name, p.Ecosystem)
		}
	}
}

// The corpus's Amazon Linux 2023 root keeps recent transactions in rpmdb.sqlite-wal.
func TestRPMSQLiteWithWAL(t *testing.T) {
	root := "/root/vigil-bench/targets/rpm-root-sqlite"
	truth, err := os.ReadFile("/root/vigil-bench/targets/ground-truth/rpmdb.tsv")
	if err != nil {
		t.Skip("benchmark corpus not present")
	}
	c := &Collector{Root: root, Sensors: []string{protocol.SensorOSPackages}}
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range snap.Inventory.Packages {
		got = append(got, p.Name+" "+p.Version+" "+p.Arch)
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(string(truth)), "\n")[1:] {
		f := strings.Split(line, "\t")
		v := f[2] + "-" + f[3]
		if f[1] != "0" {
			v = f[1] + ":" + v
		}
		want = append(want, f[0]+" "+v+" "+f[4])
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v\nstatuses %+v", got, want, snap.Inventory.Extractors)
	}
}
