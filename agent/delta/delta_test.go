package delta

import (
	"slices"
	"testing"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

func deb(name, version string) model.Package {
	return model.Package{Name: name, Version: version, Ecosystem: "Debian:12", Arch: "amd64", Locations: []string{"/var/lib/dpkg/status"}, Extractor: "dpkg"}
}

var bookworm = &model.OS{Family: "debian", VersionID: "12", Codename: "bookworm", Ecosystem: "Debian:12"}

func TestHash(t *testing.T) {
	a := &model.Inventory{OS: bookworm, Packages: []model.Package{deb("openssl", "3.0.15-1~deb12u1"), deb("bash", "5.2.15-2+b7"), deb("zlib1g", "1:1.2.13.dfsg-1")}}
	b := &model.Inventory{OS: bookworm, Packages: []model.Package{a.Packages[2], a.Packages[0], a.Packages[1]}, Duration: 4.2}
	if Hash(a) != Hash(b) {
		t.Error("hash depends on order or timings")
	}
	c := &model.Inventory{OS: bookworm, Packages: slices.Clone(a.Packages)}
	c.Packages[0].Version = "3.0.14-1~deb12u2"
	if Hash(a) == Hash(c) {
		t.Error("hash ignores a version change")
	}
	// The agent's hash is the contract's: the server verifies deltas with it.
	if Hash(a) != protocol.InventoryHash(a) {
		t.Error("hash differs from protocol.InventoryHash")
	}
}

func TestIdentity(t *testing.T) {
	// Two copies of the same jar in two places are two packages.
	j1 := model.Package{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: "Maven", Locations: []string{"/opt/a/log4j-core-2.14.1.jar"}}
	j2 := j1
	j2.Locations = []string{"/opt/b/log4j-core-2.14.1.jar"}
	if Identity(j1) == Identity(j2) {
		t.Error("locations ignored")
	}
	got, err := FromIdentity(Identity(j1))
	if err != nil || Identity(got) != Identity(j1) {
		t.Errorf("round trip %+v %v", got, err)
	}
	if _, err := FromIdentity("{"); err == nil {
		t.Error("bad identity accepted")
	}
}

func TestDiff(t *testing.T) {
	base := []model.Package{deb("openssl", "3.0.15-1~deb12u1"), deb("bash", "5.2.15-2+b7"), deb("curl", "7.88.1-10+deb12u8")}
	tests := []struct {
		name           string
		base, cur      []model.Package
		added, removed []string
	}{
		{"unchanged", base, base, nil, nil},
		{"upgrade", base, []model.Package{deb("openssl", "3.0.16-1~deb12u1"), deb("bash", "5.2.15-2+b7"), deb("curl", "7.88.1-10+deb12u8")},
			[]string{"openssl 3.0.16-1~deb12u1"}, []string{"openssl 3.0.15-1~deb12u1"}},
		{"install", base, append(slices.Clone(base), deb("nginx", "1.22.1-9")), []string{"nginx 1.22.1-9"}, nil},
		{"remove", base, base[:2], nil, []string{"curl 7.88.1-10+deb12u8"}},
		{"all gone", base, nil, nil, []string{"bash 5.2.15-2+b7", "curl 7.88.1-10+deb12u8", "openssl 3.0.15-1~deb12u1"}},
		{"one of two equal entries removed", append(slices.Clone(base), base[0]), base, nil, []string{"openssl 3.0.15-1~deb12u1"}},
		{"a second equal entry added", base, append(slices.Clone(base), base[2]), []string{"curl 7.88.1-10+deb12u8"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			added, removed := Diff(Identities(tc.base), tc.cur)
			var a, r []string
			for _, p := range added {
				a = append(a, p.Name+" "+p.Version)
			}
			var rp []model.Package
			for _, id := range removed {
				p, err := FromIdentity(id)
				if err != nil {
					t.Fatal(err)
				}
				rp = append(rp, p)
				r = append(r, p.Name+" "+p.Version)
			}
			if !slices.Equal(a, tc.added) || !slices.Equal(r, tc.removed) {
				t.Errorf("added %v removed %v, want %v %v", a, r, tc.added, tc.removed)
			}
			// The server's ApplyDelta rebuilds cur from base and the delta.
			osInv := &model.Inventory{OS: bookworm, Packages: tc.base}
			cur := &model.Inventory{OS: bookworm, Packages: tc.cur}
			got, err := protocol.ApplyDelta(osInv, &protocol.Upload{Added: added, Removed: rp})
			if err != nil || protocol.InventoryHash(got) != Hash(cur) {
				t.Errorf("ApplyDelta does not rebuild the inventory: %v", err)
			}
		})
	}
}
