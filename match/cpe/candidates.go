package cpe

import (
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Names returns the CPE names a package is matched under: the ones its SBOM states (any that do
// not parse are reported in bad), else generated candidates. Generation is deliberately narrow,
// because a wrong guess is a false alarm, and a vendor's or ecosystem's own feed is the better
// source wherever one exists:
//
//   - Maven (Java archives, with the groupId from pom.properties or the manifest's
//     Implementation-Vendor-Id): vendor is the groupId's organisation label (org.apache.logging.log4j
//     → apache, com.fasterxml.jackson.core → fasterxml, io.netty → netty), product the artifactId,
//     plus the artifactId without "-core" when that is the groupId's last label
//     (org.apache.logging.log4j:log4j-core → apache:log4j, the name NVD uses for Log4Shell; log4j-api
//     gets no such alias, so it stays clear of Log4Shell as it should).
//     Coordinates known to collide with another product's NVD name (the PostgreSQL JDBC driver and
//     the server) get none.
//   - Nothing else: OS packages have their vendor's advisories, and the other ecosystems' names do
//     not say who the vendor is. A package that needs CPE matching can carry its CPE in an SBOM.
func Names(p *model.Package) (names []Name, bad []string) {
	for _, s := range p.CPEs {
		n, err := Parse(s)
		if err != nil {
			bad = append(bad, s)
			continue
		}
		names = append(names, n)
	}
	if len(p.CPEs) > 0 {
		return names, bad
	}
	if p.Ecosystem == model.EcoMaven {
		return mavenNames(p), nil
	}
	return nil, nil
}

// clientNames are Maven coordinates whose generated name is NVD's name of a different product: the
// PostgreSQL JDBC driver (org.postgresql:postgresql) is not the PostgreSQL server NVD calls
// postgresql:postgresql, and "every version" entries of the server would flag every driver.
var clientNames = map[string]bool{"org.postgresql:postgresql": true}

// orgPrefixes are reverse-domain first labels after which the organisation comes.
var orgPrefixes = map[string]bool{"org": true, "com": true, "io": true, "net": true, "dev": true, "de": true, "uk": true, "eu": true, "ch": true, "fr": true, "nl": true}

func mavenNames(p *model.Package) []Name {
	group, artifact, ok := strings.Cut(p.Name, ":")
	if !ok || group == "" || artifact == "" || p.Version == "" || clientNames[strings.ToLower(p.Name)] {
		return nil
	}
	labels := strings.Split(strings.ToLower(group), ".")
	vendor := labels[0]
	if orgPrefixes[vendor] {
		if len(labels) < 2 {
			return nil
		}
		vendor = labels[1]
	}
	products := []string{artifact}
	if base, ok := strings.CutSuffix(strings.ToLower(artifact), "-core"); ok && base == labels[len(labels)-1] {
		products = append(products, base)
	}
	var out []Name
	for _, prod := range products {
		n := Name{"a", Escape(vendor), Escape(prod), Any, Any, Any, Any, Any, Any, Any, Any}
		if n[Vendor] == "" || n[Product] == "" {
			continue
		}
		out = append(out, n)
	}
	return out
}

// osNames are the NVD names of the operating systems Vigil recognises, by os-release ID, and how
// much of VERSION_ID NVD's versions use (0: all of it).
var osNames = map[string]struct {
	vendor, product string
	parts           int
}{
	"debian":    {"debian", "debian_linux", 1},
	"ubuntu":    {"canonical", "ubuntu_linux", 0},
	"alpine":    {"alpinelinux", "alpine_linux", 2},
	"rhel":      {"redhat", "enterprise_linux", 1},
	"almalinux": {"almalinux", "almalinux", 1},
	"rocky":     {"rocky", "rocky_linux", 1},
	"fedora":    {"fedoraproject", "fedora", 1},
	"amzn":      {"amazon", "linux", 0},
	"sles":      {"suse", "linux_enterprise_server", 1},
}

// OSName returns the CPE of an inventory's operating system, when Vigil knows NVD's name for it.
// It serves only as context for platform criteria ("running on Debian 11").
func OSName(o *model.OS) (Name, bool) {
	if o == nil {
		return Name{}, false
	}
	info, ok := osNames[o.Family]
	if !ok {
		return Name{}, false
	}
	v := o.VersionID
	if info.parts > 0 {
		parts := strings.Split(v, ".")
		if len(parts) > info.parts {
			v = strings.Join(parts[:info.parts], ".")
		}
	}
	ver := Any
	if v != "" {
		ver = Escape(v)
	}
	return Name{"o", info.vendor, info.product, ver, Any, Any, Any, Any, Any, Any, Any}, true
}
