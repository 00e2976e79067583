package collect

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

// testdata/rpm-bdb/var/lib/rpm/Packages is the Berkeley DB fixture of inventory/rpm (bash,
// openssl-libs with epoch 1, tzdata from Rocky Linux 9).
func TestRPMBerkeleyDB(t *testing.T) {
	c := &Collector{Root: "testdata/rpm-bdb", Sensors: []string{protocol.SensorOSPackages}}
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

func TestRPMSQLiteReported(t *testing.T) {
	root := "/root/vigil-bench/targets/rpm-root-sqlite"
	if _, err := os.Stat(root + "/var/lib/rpm/rpmdb.sqlite"); err != nil {
		t.Skip("benchmark corpus not present")
	}
	c := &Collector{Root: root, Sensors: []string{protocol.SensorOSPackages}}
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range snap.Inventory.Extractors {
		if st.Name == "rpm" {
			if st.Status != model.StatusFailed || len(st.Errors) == 0 || !strings.Contains(st.Errors[0].Error, "rpmdb.sqlite is not read") {
				t.Errorf("rpm status %+v", st)
			}
			return
		}
	}
	t.Error("no rpm status")
}
