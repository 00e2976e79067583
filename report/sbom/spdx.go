package sbom

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"

	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/vigil-sec/vigil/model"
)

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.\-]+`)

// SPDX builds an SPDX 2.3 document: one package per target (the described element) containing
// one package per inventory package, with PURLs as external references.
func SPDX(invs []*model.Inventory, tool Tool, now time.Time) *spdx.Document {
	name := "vigil-sbom"
	if len(invs) > 0 {
		name = invs[0].Source.Name
	}
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: "https://vigil.dev/spdx/" + spdxIDUnsafe.ReplaceAllString(name, "-") + "-" + uuid.NewString(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: tool.Name + "-" + tool.Version}},
			Created:  now.UTC().Format(time.RFC3339),
		},
	}
	for i, inv := range invs {
		subjectID := common.ElementID(fmt.Sprintf("Target-%d", i))
		subject := &spdx.Package{
			PackageName:             inv.Source.Name,
			PackageSPDXIdentifier:   subjectID,
			PackageVersion:          inv.Source.Digest,
			PackageDownloadLocation: "NOASSERTION",
			PackageComment:          "vigil source kind: " + inv.Source.Kind,
			PrimaryPackagePurpose:   subjectPurpose(inv.Source.Kind),
		}
		if inv.OS != nil {
			subject.PackageComment += "; os ecosystem: " + inv.OS.Ecosystem
		}
		doc.Packages = append(doc.Packages, subject)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(subjectID)),
			Relationship: common.TypeRelationshipDescribe,
		})
		for j, p := range inv.Packages {
			id := common.ElementID(fmt.Sprintf("Package-%d-%d-%s", i, j, spdxIDUnsafe.ReplaceAllString(p.Name, "-")))
			sp := &spdx.Package{
				PackageName:             p.Name,
				PackageSPDXIdentifier:   id,
				PackageVersion:          p.Version,
				PackageDownloadLocation: "NOASSERTION",
				PackageSourceInfo:       sourceInfo(p),
				PrimaryPackagePurpose:   "LIBRARY",
			}
			if len(p.Licenses) > 0 {
				sp.PackageLicenseDeclared = "NOASSERTION"
				sp.PackageLicenseComments = "as declared: " + strings.Join(p.Licenses, ", ")
			}
			if p.PURL != "" {
				sp.PackageExternalReferences = []*spdx.PackageExternalReference{{
					Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: p.PURL,
				}}
			}
			for _, c := range p.CPEs {
				sp.PackageExternalReferences = append(sp.PackageExternalReferences, &spdx.PackageExternalReference{
					Category: common.CategorySecurity, RefType: cpeRefType(c), Locator: c,
				})
			}
			sp.PackageComment = fmt.Sprintf("ecosystem: %s; extractor: %s", p.Ecosystem, p.Extractor)
			if p.SourceName != "" {
				sp.PackageComment += fmt.Sprintf("; source: %s %s", p.SourceName, p.SourceVersion)
			}
			if p.LayerDigest != "" {
				sp.PackageComment += "; layer: " + p.LayerDigest
			}
			doc.Packages = append(doc.Packages, sp)
			doc.Relationships = append(doc.Relationships, &spdx.Relationship{
				RefA: common.MakeDocElementID("", string(subjectID)), RefB: common.MakeDocElementID("", string(id)),
				Relationship: common.TypeRelationshipContains,
			})
		}
	}
	return doc
}

func subjectPurpose(kind string) string {
	switch kind {
	case "docker-archive", "oci-archive", "oci-dir", "registry":
		return "CONTAINER"
	case "dir", "disk":
		return "OPERATING-SYSTEM"
	}
	return "ARCHIVE"
}

func sourceInfo(p model.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return "found in " + strings.Join(p.Locations, ", ")
}

// WriteSPDX writes the inventories as SPDX 2.3 JSON.
func WriteSPDX(w io.Writer, invs []*model.Inventory, tool Tool) error {
	return spdxjson.Write(SPDX(invs, tool, time.Now()), w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false))
}

var commentField = regexp.MustCompile(`(ecosystem|source|layer|os ecosystem): ([^;]+)`)

// ReadSPDX reads an SPDX 2.x JSON document into an inventory, using PURL external references (and
// the comments Vigil writes) for ecosystems.
func ReadSPDX(r io.Reader, name string) (*model.Inventory, error) {
	doc, err := spdxjson.Read(r)
	if err != nil {
		return nil, fmt.Errorf("%s: not an SPDX JSON document: %w", name, err)
	}
	inv := &model.Inventory{Source: model.SourceInfo{Kind: "sbom", Name: name}, Packages: []model.Package{}}
	for _, sp := range doc.Packages {
		for _, m := range commentField.FindAllStringSubmatch(sp.PackageComment, -1) {
			if m[1] == "os ecosystem" && strings.TrimSpace(m[2]) != "" {
				inv.OS = &model.OS{Ecosystem: strings.TrimSpace(m[2])}
			}
		}
	}
	for _, sp := range doc.Packages {
		if sp.PrimaryPackagePurpose == "CONTAINER" || sp.PrimaryPackagePurpose == "OPERATING-SYSTEM" || sp.PackageVersion == "" {
			continue
		}
		p := model.Package{Name: sp.PackageName, Version: sp.PackageVersion, Extractor: "sbom"}
		for _, ref := range sp.PackageExternalReferences {
			switch ref.RefType {
			case common.TypePackageManagerPURL:
				p.PURL = ref.Locator
			case common.TypeSecurityCPE23Type, common.TypeSecurityCPE22Type, "http://spdx.org/rdf/references/cpe23Type", "http://spdx.org/rdf/references/cpe22Type":
				if ref.Locator != "" && !slices.Contains(p.CPEs, ref.Locator) {
					p.CPEs = append(p.CPEs, ref.Locator)
				}
			}
		}
		for _, m := range commentField.FindAllStringSubmatch(sp.PackageComment, -1) {
			v := strings.TrimSpace(m[2])
			switch m[1] {
			case "ecosystem":
				p.Ecosystem = v
			case "source":
				if i := strings.LastIndex(v, " "); i > 0 {
					p.SourceName, p.SourceVersion = v[:i], v[i+1:]
				}
			case "layer":
				p.LayerDigest = v
			}
		}
		if loc, ok := strings.CutPrefix(sp.PackageSourceInfo, "found in "); ok {
			p.Locations = strings.Split(loc, ", ")
		}
		if p.Ecosystem == "" {
			fromPURL(&p, inv.OS)
		}
		if p.Ecosystem == "" && len(p.CPEs) > 0 {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("package %s@%s: no ecosystem (no usable purl); only CPE matching (--cpe) can match it", p.Name, p.Version))
		} else if p.Ecosystem == "" {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("package %s@%s: no ecosystem (no usable purl); not matched", p.Name, p.Version))
			continue
		}
		inv.Packages = append(inv.Packages, p)
	}
	return inv, nil
}

// cpeRefType names the SPDX reference type of a CPE by its binding.
func cpeRefType(c string) string {
	if strings.HasPrefix(c, "cpe:/") {
		return common.TypeSecurityCPE22Type
	}
	return common.TypeSecurityCPE23Type
}
