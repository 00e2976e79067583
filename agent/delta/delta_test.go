package delta

import (
	"slices"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

func deb(name, version string) model.Package {
	return model.Package{Name: name, Version: version, Ecosystem: "Debian:12", Arch: "amd64", Locations: []string{"/var/lib/dpkg/status"}}
}

func TestHashOrderIndependent(t *testing.T) {
	a := []model.Package{deb("openssl", "3.0.15-1~deb12u1"), deb("bash", "5.2.15-2+b7"), deb("zlib1g", "1:1.2.13.dfsg-1")}
	b := []model.Package{a[2], a[0], a[1], a[0]} // reordered, with a duplicate
	if Hash(Identities(a)) != Hash(Identities(b)) {
		t.Error("hash depends on order or duplicates")
	}
	c := slices.Clone(a)
	c[0].Version = "3.0.14-1~deb12u2"
	if Hash(Identities(a)) == Hash(Identities(c)) {
		t.Error("hash ignores a version change")
	}
	// The empty inventory's hash is SHA-256 of nothing.
	if got := Hash(nil); got != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty hash %s", got)
	}
}

func TestIdentityNoCollisions(t *testing.T) {
	// Without a separator these two would read the same.
	a := model.Package{Name: "ab", Version: "c", Ecosystem: "npm"}
	b := model.Package{Name: "a", Version: "bc", Ecosystem: "npm"}
	if Identity(a) == Identity(b) {
		t.Error("identities collide")
	}
	// Two copies of the same jar in two places are two packages.
	j1 := model.Package{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: "Maven", Locations: []string{"/opt/a/log4j-core-2.14.1.jar"}}
	j2 := j1
	j2.Locations = []string{"/opt/b/log4j-core-2.14.1.jar"}
	if Identity(j1) == Identity(j2) {
		t.Error("locations ignored")
	}
	if got := FromIdentity(Identity(j1)); got.Name != j1.Name || got.Version != j1.Version || got.Ecosystem != j1.Ecosystem || got.Locations[0] != j1.Locations[0] {
		t.Errorf("round trip %+v", got)
	}
}

func TestDiff(t *testing.T) {
	base := []model.Package{deb("openssl", "3.0.15-1~deb12u1"), deb("bash", "5.2.15-2+b7"), deb("curl", "7.88.1-10+deb12u8")}
	tests := []struct {
		name        string
		cur         []model.Package
		added       []string
		removedName []string
	}{
		{"unchanged", base, nil, nil},
		{"upgrade", []model.Package{deb("openssl", "3.0.16-1~deb12u1"), deb("bash", "5.2.15-2+b7"), deb("curl", "7.88.1-10+deb12u8")},
			[]string{"openssl 3.0.16-1~deb12u1"}, []string{"openssl 3.0.15-1~deb12u1"}},
		{"install", append(slices.Clone(base), deb("nginx", "1.22.1-9")), []string{"nginx 1.22.1-9"}, nil},
		{"remove", base[:2], nil, []string{"curl 7.88.1-10+deb12u8"}},
		{"all gone", nil, nil, []string{"bash 5.2.15-2+b7", "curl 7.88.1-10+deb12u8", "openssl 3.0.15-1~deb12u1"}},
	}
	ids := Identities(base)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			added, removed := Diff(ids, tc.cur)
			var a, r []string
			for _, p := range added {
				a = append(a, p.Name+" "+p.Version)
			}
			for _, id := range removed {
				p := FromIdentity(id)
				r = append(r, p.Name+" "+p.Version)
			}
			if !slices.Equal(a, tc.added) || !slices.Equal(r, tc.removedName) {
				t.Errorf("added %v removed %v, want %v %v", a, r, tc.added, tc.removedName)
			}
		})
	}
}
