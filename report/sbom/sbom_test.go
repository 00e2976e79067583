package sbom

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

func sampleInventory() *model.Inventory {
	return &model.Inventory{
		Source: model.SourceInfo{Kind: "oci-archive", Name: "bookworm.tar", Digest: "sha256:aa"},
		OS:     &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"},
		Packages: []model.Package{
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian:12", Arch: "amd64",
				PURL:       "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
				SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2", Locations: []string{"/var/lib/dpkg/status"},
				LayerDigest: "sha256:bb", Extractor: "dpkg"},
			{Name: "lodash", Version: "4.17.15", Ecosystem: "npm", PURL: "pkg:npm/lodash@4.17.15",
				Locations: []string{"/app/package-lock.json"}, Extractor: "npm-lockfile", Dev: true},
			{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Ecosystem: "Maven",
				PURL: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", Locations: []string{"/app/app.jar!/BOOT-INF/lib/log4j-core-2.14.1.jar"}, Extractor: "java-archive",
				CPEs: []string{"cpe:2.3:a:apache:log4j:2.14.1:*:*:*:*:*:*:*", "cpe:/a:apache:log4j:2.14.1"}},
		},
	}
}

func TestCycloneDXRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	inv := sampleInventory()
	if err := WriteCycloneDX(&buf, []*model.Inventory{inv}, Tool{"vigil", "test"}); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["specVersion"] != "1.6" || raw["bomFormat"] != "CycloneDX" {
		t.Fatalf("not a CycloneDX 1.6 document: %v %v", raw["bomFormat"], raw["specVersion"])
	}
	back, err := ReadCycloneDX(&buf, "x.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	assertSamePackages(t, inv, back, true)
	if back.OS == nil || back.OS.Ecosystem != "Debian:12" {
		t.Fatalf("OS lost: %+v", back.OS)
	}
}

func TestSPDXRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	inv := sampleInventory()
	if err := WriteSPDX(&buf, []*model.Inventory{inv}, Tool{"vigil", "test"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"spdxVersion": "SPDX-2.3"`) {
		t.Fatalf("not SPDX 2.3: %.200s", buf.String())
	}
	back, err := ReadSPDX(&buf, "x.spdx.json")
	if err != nil {
		t.Fatal(err)
	}
	assertSamePackages(t, inv, back, false)
}

func assertSamePackages(t *testing.T, want, got *model.Inventory, withDev bool) {
	t.Helper()
	if len(got.Packages) != len(want.Packages) {
		t.Fatalf("got %d packages, want %d: %+v", len(got.Packages), len(want.Packages), got.Packages)
	}
	for i, w := range want.Packages {
		g := got.Packages[i]
		if g.Name != w.Name || g.Version != w.Version || g.Ecosystem != w.Ecosystem || g.PURL != w.PURL ||
			g.SourceName != w.SourceName || g.SourceVersion != w.SourceVersion || g.LayerDigest != w.LayerDigest ||
			strings.Join(g.Locations, ",") != strings.Join(w.Locations, ",") || (withDev && g.Dev != w.Dev) ||
			strings.Join(g.CPEs, ",") != strings.Join(w.CPEs, ",") {
			t.Errorf("package %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// Foreign SBOMs (syft's, say) carry only PURLs; the ecosystem and source package come from them.
func TestForeignCycloneDXUsesPURL(t *testing.T) {
	doc := `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[
	 {"type":"library","name":"libssl3","version":"3.0.11-1~deb12u2","purl":"pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&upstream=openssl&distro=debian-12"},
	 {"type":"library","name":"requests","version":"2.28.1","purl":"pkg:pypi/requests@2.28.1"},
	 {"type":"library","group":"org.apache.logging.log4j","name":"log4j-core","version":"2.14.1","purl":"pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
	 {"type":"library","name":"musl","version":"1.2.4-r2","purl":"pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4"},
	 {"type":"library","name":"openssh-server","version":"8.7p1-38.el9","purl":"pkg:rpm/redhat/openssh-server@8.7p1-38.el9?arch=x86_64&distro=rhel-9.4&upstream=openssh-8.7p1-38.el9.src.rpm"},
	 {"type":"library","name":"mystery","version":"1"}]}`
	inv, err := ReadCycloneDX(strings.NewReader(doc), "syft.json")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"libssl3": "Debian:12", "requests": "PyPI", "org.apache.logging.log4j:log4j-core": "Maven", "musl": "Alpine:v3.18",
		"openssh-server": "Red Hat:enterprise_linux:9"}
	if len(inv.Packages) != len(want) {
		t.Fatalf("got %d packages: %+v", len(inv.Packages), inv.Packages)
	}
	for _, p := range inv.Packages {
		if want[p.Name] != p.Ecosystem {
			t.Errorf("%s: ecosystem %q, want %q", p.Name, p.Ecosystem, want[p.Name])
		}
		if p.Name == "libssl3" && (p.SourceName != "openssl" || p.SourceVersion != "3.0.11-1~deb12u2") {
			t.Errorf("libssl3 source = %s %s", p.SourceName, p.SourceVersion)
		}
		if p.Name == "openssh-server" && (p.SourceName != "openssh" || p.SourceVersion != "8.7p1-38.el9") {
			t.Errorf("an rpm's upstream names its source rpm file: source = %s %s", p.SourceName, p.SourceVersion)
		}
	}
	if len(inv.Warnings) != 1 {
		t.Errorf("the component without a purl must be reported, got warnings %v", inv.Warnings)
	}
}

// SBOMs name packages by CPE: CycloneDX's cpe field, SPDX's SECURITY cpe23Type/cpe22Type
// references. A component with a CPE but no usable PURL is kept for CPE matching.
func TestForeignCPEs(t *testing.T) {
	cdxDoc := `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[
	 {"type":"library","group":"org.apache.commons","name":"commons-text","version":"1.9","purl":"pkg:maven/org.apache.commons/commons-text@1.9","cpe":"cpe:2.3:a:apache:commons_text:1.9:*:*:*:*:*:*:*"},
	 {"type":"application","name":"tomcat","version":"9.0.17","cpe":"cpe:2.3:a:apache:tomcat:9.0.17:*:*:*:*:*:*:*"},
	 {"type":"library","name":"mystery","version":"1"}]}`
	inv, err := ReadCycloneDX(strings.NewReader(cdxDoc), "syft.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 2 || inv.Packages[0].CPEs[0] != "cpe:2.3:a:apache:commons_text:1.9:*:*:*:*:*:*:*" || inv.Packages[0].Ecosystem != "Maven" ||
		inv.Packages[1].Ecosystem != "" || len(inv.Packages[1].CPEs) != 1 {
		t.Fatalf("packages: %+v", inv.Packages)
	}
	if len(inv.Warnings) != 2 || !strings.Contains(inv.Warnings[0], "only CPE matching") || !strings.Contains(inv.Warnings[1], "not matched") {
		t.Errorf("warnings: %q", inv.Warnings)
	}
	spdxDoc := `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"x","documentNamespace":"https://x/y",
	 "creationInfo":{"created":"2024-01-01T00:00:00Z","creators":["Tool: syft"]},
	 "packages":[{"name":"commons-text","SPDXID":"SPDXRef-a","versionInfo":"1.9","downloadLocation":"NOASSERTION","externalRefs":[
	   {"referenceCategory":"SECURITY","referenceType":"cpe23Type","referenceLocator":"cpe:2.3:a:apache:commons_text:1.9:*:*:*:*:*:*:*"},
	   {"referenceCategory":"SECURITY","referenceType":"cpe22Type","referenceLocator":"cpe:/a:apache:commons-text:1.9"},
	   {"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:maven/org.apache.commons/commons-text@1.9"}]},
	  {"name":"openssl","SPDXID":"SPDXRef-b","versionInfo":"1.0.2k","downloadLocation":"NOASSERTION","externalRefs":[
	   {"referenceCategory":"SECURITY","referenceType":"cpe23Type","referenceLocator":"cpe:2.3:a:openssl:openssl:1.0.2k:*:*:*:*:*:*:*"}]}]}`
	inv, err = ReadSPDX(strings.NewReader(spdxDoc), "syft.spdx.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 2 || len(inv.Packages[0].CPEs) != 2 || inv.Packages[0].Ecosystem != "Maven" ||
		inv.Packages[1].Ecosystem != "" || inv.Packages[1].CPEs[0] != "cpe:2.3:a:openssl:openssl:1.0.2k:*:*:*:*:*:*:*" {
		t.Fatalf("packages: %+v", inv.Packages)
	}
}

func FuzzReadCycloneDX(f *testing.F) {
	f.Add(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"a","version":"1","purl":"pkg:npm/a@1"}]}`)
	f.Add(`{"components":[{"type":"container","components":[{"name":"x","version":"1","purl":"pkg:deb/debian/x@1?distro=bookworm"}]}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		_, _ = ReadCycloneDX(strings.NewReader(doc), "fuzz")
	})
}

func FuzzReadSPDX(f *testing.F) {
	f.Add(`{"spdxVersion":"SPDX-2.3","packages":[{"name":"a","versionInfo":"1","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:npm/a@1"}]}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		_, _ = ReadSPDX(strings.NewReader(doc), "fuzz")
	})
}
