package sbom

import (
	"github.com/vigil-sec/vigil/inventory/rpm"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/model"
)

// fromPURL fills a foreign SBOM package's ecosystem (and source package for OS packages) from its PURL.
func fromPURL(p *model.Package, osInfo *model.OS) {
	if p.PURL == "" {
		return
	}
	u, err := packageurl.FromString(p.PURL)
	if err != nil {
		return
	}
	q := u.Qualifiers.Map()
	name := u.Name
	if u.Namespace != "" {
		name = u.Namespace + "/" + u.Name
	}
	switch u.Type {
	case "npm":
		p.Ecosystem = model.EcoNPM
	case "pypi":
		p.Ecosystem = model.EcoPyPI
	case "golang":
		p.Ecosystem = model.EcoGo
		if name == "stdlib" || u.Name == "stdlib" {
			name = "stdlib"
		}
	case "maven":
		p.Ecosystem = model.EcoMaven
		name = u.Namespace + ":" + u.Name
	case "cargo":
		p.Ecosystem = model.EcoCrates
	case "gem":
		p.Ecosystem = model.EcoRubyGems
	case "composer":
		p.Ecosystem = model.EcoPackagist
	case "nuget":
		p.Ecosystem = model.EcoNuGet
	case "deb", "apk", "rpm":
		p.Ecosystem = osEcosystem(u.Type, u.Namespace, q["distro"], osInfo)
		if up := q["upstream"]; up != "" {
			// Syft writes the source package as upstream=name@version or upstream=name.
			// Syft and Trivy write an rpm's source as its file name (openssh-8.7p1-38.el9.src.rpm).
			if n, v, r, ok := rpm.SplitSourceRPM(up); ok && u.Type == "rpm" {
				p.SourceName, p.SourceVersion = n, v+"-"+r
			} else if i := strings.LastIndex(up, "@"); i > 0 {
				p.SourceName, p.SourceVersion = up[:i], up[i+1:]
			} else {
				p.SourceName = up
			}
		}
		if u.Type == "rpm" && q["epoch"] != "" && !strings.Contains(p.Version, ":") {
			p.Version = q["epoch"] + ":" + p.Version
		}
		if p.SourceName == "" {
			p.SourceName = u.Name
		}
		if p.SourceVersion == "" {
			p.SourceVersion = p.Version
		}
		p.Arch = q["arch"]
		return
	default:
		return
	}
	if p.Name == "" || (u.Type != "maven" && p.Name == u.Name && u.Namespace != "") {
		p.Name = name
	}
}

// osEcosystem derives the OSV ecosystem of an OS package from its PURL's distro qualifier
// ("debian-12", "bookworm", "alpine-3.20.1", "el9"), falling back to the SBOM's OS.
func osEcosystem(typ, namespace, distro string, osInfo *model.OS) string {
	if osInfo != nil && osInfo.Ecosystem != "" && distro == "" {
		return osInfo.Ecosystem
	}
	d := strings.ToLower(distro)
	ver := d
	if i := strings.LastIndex(d, "-"); i >= 0 {
		ver = d[i+1:]
	}
	switch {
	case typ == "deb" && (namespace == "debian" || strings.HasPrefix(d, "debian")):
		codenames := map[string]string{"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}
		if v, ok := codenames[d]; ok {
			ver = v
		}
		if i := strings.Index(ver, "."); i > 0 {
			ver = ver[:i]
		}
		return "Debian:" + ver
	case typ == "deb" && (namespace == "ubuntu" || strings.HasPrefix(d, "ubuntu")):
		return "Ubuntu:" + ver
	case typ == "apk":
		parts := strings.Split(ver, ".")
		if len(parts) >= 2 {
			return "Alpine:v" + parts[0] + "." + parts[1]
		}
	case typ == "rpm":
		v := strings.TrimPrefix(ver, "el")
		if i := strings.Index(v, "."); i > 0 {
			v = v[:i]
		}
		switch namespace {
		case "almalinux":
			return "AlmaLinux:" + v
		case "rocky", "rocky-linux":
			return "Rocky Linux:" + v
		case "redhat", "rhel":
			return "Red Hat:enterprise_linux:" + v
		}
	}
	if osInfo != nil {
		return osInfo.Ecosystem
	}
	return ""
}
