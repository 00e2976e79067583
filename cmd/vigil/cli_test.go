package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// write creates files under dir from a name → content map.
func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// run executes the CLI in-process and returns its standard output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

const dpkgStatus = `Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2

Package: tar
Status: install ok installed
Architecture: amd64
Version: 1.34+dfsg-1.2+deb12u1
`

const trackerJSON = `{
 "openssl": {
  "CVE-2023-5678": {"description": "Generating excessively long X9.42 DH keys or checking excessively long X9.42 DH keys or parameters may be very slow.",
   "scope": "local", "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.11-1~deb12u2"},
   "fixed_version": "3.0.13-1~deb12u1", "urgency": "not yet assigned"}}},
  "CVE-2010-0928": {"description": "OpenSSL 0.9.8i on the Gaisler Research LEON3 SoC ... fault-based attack",
   "scope": "local", "releases": {"bookworm": {"status": "open", "repositories": {"bookworm": "3.0.11-1~deb12u2"},
   "urgency": "unimportant"}}}
 },
 "tar": {
  "CVE-2022-48303": {"description": "GNU Tar through 1.34 has a one-byte out-of-bounds read", "scope": "local",
   "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "1.34+dfsg-1.2+deb12u1"},
   "fixed_version": "1.34+dfsg-1.2", "urgency": "low"}}}
 }
}`

const lodashGHSA = `{"schema_version": "1.6.0", "id": "GHSA-35jh-r3h4-6jhm", "modified": "2024-02-20T00:00:00Z",
 "published": "2021-05-06T16:05:51Z", "aliases": ["CVE-2021-23337"], "summary": "Command Injection in lodash",
 "affected": [{"package": {"ecosystem": "npm", "name": "lodash", "purl": "pkg:npm/lodash"},
   "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}],
 "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}],
 "database_specific": {"severity": "HIGH", "cwe_ids": ["CWE-77", "CWE-94"]}}`

func mirror(t *testing.T) string {
	dir := t.TempDir()
	write(t, dir, map[string]string{"debian/tracker.json": trackerJSON})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("GHSA-35jh-r3h4-6jhm.json")
	w.Write([]byte(lodashGHSA))
	zw.Close()
	write(t, dir, map[string]string{"osv/npm/all.zip": buf.String()})
	return dir
}

func TestScanEndToEnd(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"etc/os-release":       "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
		"var/lib/dpkg/status":  dpkgStatus,
		"srv/app/package.json": `{"name": "app", "version": "1.0.0", "dependencies": {"lodash": "^4.17.15"}}`,
		"srv/app/package-lock.json": `{"name": "app", "version": "1.0.0", "lockfileVersion": 3, "packages": {
			"": {"name": "app", "version": "1.0.0"},
			"node_modules/lodash": {"version": "4.17.15", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.15.tgz"}}}`,
	})
	db := filepath.Join(t.TempDir(), "vulndb.sqlite")
	if _, err := run(t, "scan", "--db", db, "dir:"+root); err == nil || !strings.Contains(err.Error(), "vigil db update") {
		t.Fatalf("a scan without a database must say how to get one, got %v", err)
	}
	if _, err := run(t, "db", "import", "--db", db, mirror(t)); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "scan", "--db", db, "--format", "json", "dir:"+root)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Findings []struct {
			VulnerabilityID        string   `json:"vulnerabilityId"`
			RelatedVulnerabilities []string `json:"relatedVulnerabilities"`
			Severity, FixAvailable string
			Packages               []struct {
				Name, FixedInVersion, SourceName string
			} `json:"vulnerablePackages"`
		}
		Summary map[string]int
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]string{}
	for _, f := range rep.Findings {
		got[f.VulnerabilityID] = f.Severity + " " + f.FixAvailable + " " + f.Packages[0].FixedInVersion
	}
	want := map[string]string{
		"CVE-2023-5678":  "UNTRIAGED YES 3.0.13-1~deb12u1", // Debian's urgency not yet assigned, no NVD data offline
		"CVE-2010-0928":  "LOW NO ",                        // open, unimportant: no fix
		"CVE-2021-23337": "HIGH YES 4.17.21",
	}
	if len(got) != len(want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}

	// --fail-on sets the exit status; an ignore rule with a reason suppresses.
	_, err = run(t, "scan", "--db", db, "--fail-on", "HIGH", "dir:"+root)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != failExit {
		t.Fatalf("--fail-on HIGH: %v", err)
	}
	ignore := filepath.Join(t.TempDir(), "ignore.yaml")
	write(t, filepath.Dir(ignore), map[string]string{"ignore.yaml": "ignore:\n  - vulnerability: GHSA-35jh-r3h4-6jhm\n    reason: template strings never reach lodash.template\n"})
	if _, err := run(t, "scan", "--db", db, "--fail-on", "HIGH", "--ignore-file", ignore, "dir:"+root); err != nil {
		t.Fatalf("the only HIGH finding is ignored, want exit 0: %v", err)
	}
	out, _ = run(t, "scan", "--db", db, "--ignore-unfixed", "--format", "json", "dir:"+root)
	if strings.Contains(out, "CVE-2010-0928") {
		t.Error("--ignore-unfixed must hide unfixed vulnerabilities")
	}

	// An SBOM written by vigil sbom scans to the same findings.
	bom := filepath.Join(t.TempDir(), "bom.cdx.json")
	if _, err := run(t, "sbom", "-o", bom, "dir:"+root); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "scan", "--db", db, "--format", "json", bom)
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if !strings.Contains(out, id) {
			t.Errorf("scanning the SBOM lost %s", id)
		}
	}
	// SARIF for CI dashboards.
	out, err = run(t, "scan", "--db", db, "--format", "sarif", "dir:"+root)
	if err != nil || !strings.Contains(out, `"version": "2.1.0"`) || !strings.Contains(out, "CVE-2021-23337") {
		t.Fatalf("sarif: %v\n%.300s", err, out)
	}
}

func TestDBStatusExportImport(t *testing.T) {
	db := filepath.Join(t.TempDir(), "vulndb.sqlite")
	if _, err := run(t, "db", "import", "--db", db, mirror(t)); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "db", "status", "--db", db)
	if err != nil || !strings.Contains(out, "osv/npm") || !strings.Contains(out, "debian") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	bundle := filepath.Join(t.TempDir(), "vigil-db.bundle")
	if _, err := run(t, "db", "export", "--db", db, bundle); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.sqlite")
	if _, err := run(t, "db", "import", "--db", other, bundle); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "db", "status", "--db", other)
	if err != nil || !strings.Contains(out, "osv/npm") {
		t.Fatalf("imported bundle status: %v\n%s", err, out)
	}
}

// Red Hat's OSV records are per repository stream ("Red Hat:enterprise_linux:9::baseos"); a RHEL 9
// host's packages match them, each package against its own fixed version, and an EUS stream's
// record does not speak for a mainline host.
func TestScanRedHatStreams(t *testing.T) {
	rec, err := os.ReadFile("../../vulndb/osv/testdata/RHSA-2024-4312.json")
	if err != nil {
		t.Fatal(err)
	}
	mir := t.TempDir()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("RHSA-2024-4312.json")
	w.Write(rec)
	zw.Close()
	write(t, mir, map[string]string{"osv/Red Hat/all.zip": buf.String()})
	db := filepath.Join(t.TempDir(), "vulndb.sqlite")
	if _, err := run(t, "db", "import", "--db", db, mir); err != nil {
		t.Fatal(err)
	}
	bom := filepath.Join(t.TempDir(), "rhel.cdx.json")
	write(t, filepath.Dir(bom), map[string]string{filepath.Base(bom): `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[
	 {"type":"library","name":"openssh-server","version":"8.7p1-38.el9","purl":"pkg:rpm/redhat/openssh-server@8.7p1-38.el9?arch=x86_64&distro=rhel-9.4&upstream=openssh-8.7p1-38.el9.src.rpm"},
	 {"type":"library","name":"openssh","version":"8.7p1-38.el9_4.1","purl":"pkg:rpm/redhat/openssh@8.7p1-38.el9_4.1?arch=x86_64&distro=rhel-9.4&upstream=openssh-8.7p1-38.el9_4.1.src.rpm"}]}`})
	out, err := run(t, "scan", "--db", db, "--format", "json", bom)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Findings []struct {
			VulnerabilityID        string                                  `json:"vulnerabilityId"`
			RelatedVulnerabilities []string                                `json:"relatedVulnerabilities"`
			Packages               []struct{ Name, FixedInVersion string } `json:"vulnerablePackages"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Findings) != 1 {
		t.Fatalf("want one finding (openssh-server before the fix; openssh already fixed), got %s", out)
	}
	f := rep.Findings[0]
	if f.VulnerabilityID != "RHSA-2024:4312" || strings.Join(f.RelatedVulnerabilities, ",") != "CVE-2024-6387" ||
		len(f.Packages) != 1 || f.Packages[0].Name != "openssh-server" || f.Packages[0].FixedInVersion != "0:8.7p1-38.el9_4.1" {
		t.Fatalf("finding %+v", f)
	}
}

// log4jGHSA is GitHub's Maven advisory for Log4Shell, trimmed to what matching reads.
const log4jGHSA = `{"schema_version": "1.4.0", "id": "GHSA-jfh8-c2jp-5v3q", "modified": "2024-07-24T00:00:00Z",
 "published": "2021-12-10T00:40:56Z", "aliases": ["CVE-2021-44228"], "summary": "Remote code injection in Log4j",
 "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
   "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.13.0"}, {"fixed": "2.15.0"}]},
              {"type": "ECOSYSTEM", "events": [{"introduced": "2.4"}, {"fixed": "2.12.2"}]},
              {"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.3.1"}]}]}],
 "database_specific": {"severity": "CRITICAL", "cwe_ids": ["CWE-502", "CWE-917"]}}`

// TestScanCPE scans a CycloneDX SBOM with CPEs with and without --cpe, against a mirror holding a
// Maven advisory and NVD data of real CVEs (vulndb/feeds/nvd/testdata/cpe-cves.json).
func TestScanCPE(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("GHSA-jfh8-c2jp-5v3q.json")
	w.Write([]byte(log4jGHSA))
	zw.Close()
	nvdPage, err := os.ReadFile("../../vulndb/feeds/nvd/testdata/cpe-cves.json")
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, map[string]string{"osv/Maven/all.zip": buf.String(), "nvd/cpe-cves.json": string(nvdPage)})
	db := filepath.Join(t.TempDir(), "vulndb.sqlite")

	type finding struct {
		VulnerabilityID string `json:"vulnerabilityId"`
		Severity        string
		Advisories      []struct{ Source, ID string }
		Packages        []struct{ Name, FixedInVersion string } `json:"vulnerablePackages"`
	}
	scanJSON := func(args ...string) (map[string]finding, []string) {
		t.Helper()
		out, err := run(t, append([]string{"scan", "--db", db, "--format", "json"}, append(args, "testdata/cpe-sbom.cdx.json")...)...)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Findings []finding
			Warnings []string
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		got := map[string]finding{}
		for _, f := range rep.Findings {
			got[f.VulnerabilityID] = f
		}
		return got, rep.Warnings
	}
	keys := func(m map[string]finding) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return strings.Join(ks, " ")
	}

	// Only the Maven advisory at first: --cpe then says it had nothing to match with.
	mavenOnly := t.TempDir()
	write(t, mavenOnly, map[string]string{"osv/Maven/all.zip": buf.String()})
	if _, err := run(t, "db", "import", "--db", db, mavenOnly); err != nil {
		t.Fatal(err)
	}
	got, warns := scanJSON("--cpe")
	if keys(got) != "CVE-2021-44228" || len(warns) == 0 || !strings.Contains(warns[0], "no NVD configurations") {
		t.Errorf("--cpe without NVD data: %s, warnings %q", keys(got), warns)
	}
	if _, err := run(t, "db", "import", "--db", db, dir); err != nil {
		t.Fatal(err)
	}

	// Default: NVD is enrichment only; the Maven advisory finds Log4Shell.
	got, _ = scanJSON()
	if keys(got) != "CVE-2021-44228" || len(got["CVE-2021-44228"].Advisories) != 1 {
		t.Fatalf("without --cpe: %+v", got)
	}

	// --cpe: Log4Shell stays one finding (GHSA and NVD's CPE hit joined by the CVE); Text4Shell is
	// found through the SBOM's CPE; Tomcat's Windows-only CGI bug is not (no Windows here); the
	// fixed jackson-databind is clean; the Debian package is left to Debian.
	got, _ = scanJSON("--cpe")
	if keys(got) != "CVE-2021-44228 CVE-2022-42889" {
		t.Fatalf("with --cpe: %s", keys(got))
	}
	var srcs []string
	for _, a := range got["CVE-2021-44228"].Advisories {
		srcs = append(srcs, a.Source+":"+a.ID)
	}
	slices.Sort(srcs)
	if strings.Join(srcs, " ") != "nvd-cpe:CVE-2021-44228 osv/Maven:GHSA-jfh8-c2jp-5v3q" || len(got["CVE-2021-44228"].Packages) != 1 {
		t.Errorf("Log4Shell: %+v", got["CVE-2021-44228"])
	}
	if f := got["CVE-2022-42889"]; f.Severity != "CRITICAL" || f.Packages[0].Name != "org.apache.commons:commons-text" || f.Packages[0].FixedInVersion != "1.10.0" {
		t.Errorf("Text4Shell: %+v", f)
	}

	// --cpe-os-packages: the Debian build is matched on upstream ranges too (the false-alarm risk
	// the flag warns about: Debian may have backported the fix).
	got, _ = scanJSON("--cpe", "--cpe-os-packages")
	if f, ok := got["CVE-2020-36518"]; !ok || f.Packages[0].Name != "libjackson2-databind-java" {
		t.Errorf("with --cpe-os-packages: %s", keys(got))
	}
	if _, err := run(t, "scan", "--db", db, "--cpe-os-packages", "testdata/cpe-sbom.cdx.json"); err == nil {
		t.Error("--cpe-os-packages without --cpe must be refused")
	}
}
