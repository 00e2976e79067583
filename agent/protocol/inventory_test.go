package protocol

import (
	"testing"

	"github.com/vigil-sec/vigil/model"
)

func pkg(name, version string) model.Package {
	return model.Package{Name: name, Version: version, Ecosystem: "Alpine:v3.20", SourceName: name, SourceVersion: version,
		Locations: []string{"/lib/apk/db/installed"}, Extractor: "apk"}
}

func TestInventoryHashAndDelta(t *testing.T) {
	osA := &model.OS{Family: "alpine", VersionID: "3.20.3", Ecosystem: "Alpine:v3.20"}
	base := &model.Inventory{OS: osA, Packages: []model.Package{pkg("musl", "1.2.5-r0"), pkg("busybox", "1.36.1-r29"), pkg("openssl", "3.3.2-r0")}}
	reordered := &model.Inventory{OS: osA, Packages: []model.Package{base.Packages[2], base.Packages[0], base.Packages[1]}, Duration: 3}
	if InventoryHash(base) != InventoryHash(reordered) {
		t.Fatal("hash depends on package order or timings")
	}
	other := &model.Inventory{OS: &model.OS{Family: "alpine", VersionID: "3.21.0", Ecosystem: "Alpine:v3.21"}, Packages: base.Packages}
	if InventoryHash(base) == InventoryHash(other) {
		t.Fatal("hash ignores the OS")
	}
	next := &model.Inventory{OS: osA, Packages: []model.Package{pkg("musl", "1.2.5-r0"), pkg("busybox", "1.36.1-r29"), pkg("openssl", "3.3.2-r1"), pkg("curl", "8.11.0-r2")}}
	u := &Upload{Hash: InventoryHash(next), BaseHash: InventoryHash(base),
		Removed: []model.Package{pkg("openssl", "3.3.2-r0")}, Added: []model.Package{pkg("openssl", "3.3.2-r1"), pkg("curl", "8.11.0-r2")}}
	got, err := ApplyDelta(base, u)
	if err != nil {
		t.Fatal(err)
	}
	if InventoryHash(got) != u.Hash {
		t.Fatal("delta does not rebuild the inventory")
	}
	if len(base.Packages) != 3 || base.Packages[2].Version != "3.3.2-r0" {
		t.Fatal("ApplyDelta modified its base")
	}
	if _, err := ApplyDelta(base, &Upload{Removed: []model.Package{pkg("zlib", "1.3.1-r1")}}); err == nil {
		t.Fatal("removing an absent package succeeded")
	}
	// Multiset: removing one of two equal entries keeps the other.
	dup := &model.Inventory{Packages: []model.Package{pkg("a", "1"), pkg("a", "1")}}
	if got, err := ApplyDelta(dup, &Upload{Removed: []model.Package{pkg("a", "1")}}); err != nil || len(got.Packages) != 1 {
		t.Fatalf("multiset removal: %v %v", got, err)
	}
}
