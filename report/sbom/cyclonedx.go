// Package sbom writes inventories as CycloneDX 1.6 and SPDX 2.3 documents through the formats'
// official Go libraries, and reads such documents back into inventories (for `vigil scan SBOM`).
package sbom

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/uuid"

	"github.com/vigil-sec/vigil/model"
)

// Property names Vigil writes, so that its own SBOMs read back without loss.
const (
	propEcosystem     = "vigil:ecosystem"
	propLocation      = "vigil:location"
	propLayer         = "vigil:layerDigest"
	propSourceName    = "vigil:sourceName"
	propSourceVersion = "vigil:sourceVersion"
	propExtractor     = "vigil:extractor"
	propArch          = "vigil:arch"
	propDev           = "vigil:dev"
	propCPE           = "vigil:cpe" // a package's CPEs after the first (CycloneDX has one cpe field)
	propOSEcosystem   = "vigil:os:ecosystem"
	propOSFamily      = "vigil:os:family"
	propOSVersion     = "vigil:os:versionId"
	propSourceKind    = "vigil:source:kind"
)

// Tool describes the program writing a document.
type Tool struct{ Name, Version string }

// CycloneDX builds a CycloneDX 1.6 BOM of the inventories. One inventory becomes the BOM's subject;
// several (a multi-platform image) become one top-level component each, holding its packages.
func CycloneDX(invs []*model.Inventory, tool Tool, now time.Time) *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuid.NewString()
	bom.Metadata = &cdx.Metadata{
		Timestamp: now.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: tool.Name, Version: tool.Version,
		}}},
	}
	var comps []cdx.Component
	for i, inv := range invs {
		subject := subjectComponent(inv)
		pkgs := packageComponents(inv, i)
		if len(invs) == 1 {
			bom.Metadata.Component = &subject
			comps = pkgs
			break
		}
		subject.BOMRef = fmt.Sprintf("target-%d", i)
		subject.Components = &pkgs
		comps = append(comps, subject)
	}
	bom.Components = &comps
	return bom
}

func subjectComponent(inv *model.Inventory) cdx.Component {
	c := cdx.Component{Type: cdx.ComponentTypeFile, Name: inv.Source.Name, BOMRef: "subject"}
	switch inv.Source.Kind {
	case "docker-archive", "oci-archive", "oci-dir", "registry":
		c.Type = cdx.ComponentTypeContainer
		c.Version = inv.Source.Digest
	case "dir", "disk":
		c.Type = cdx.ComponentTypeOS
		if inv.Source.Kind == "disk" {
			c.Type = cdx.ComponentTypeFile
		}
	}
	props := []cdx.Property{{Name: propSourceKind, Value: inv.Source.Kind}}
	if inv.OS != nil {
		props = append(props,
			cdx.Property{Name: propOSFamily, Value: inv.OS.Family},
			cdx.Property{Name: propOSVersion, Value: inv.OS.VersionID},
			cdx.Property{Name: propOSEcosystem, Value: inv.OS.Ecosystem})
	}
	if inv.Source.Platform != "" {
		props = append(props, cdx.Property{Name: "vigil:platform", Value: inv.Source.Platform})
	}
	c.Properties = &props
	return c
}

func packageComponents(inv *model.Inventory, target int) []cdx.Component {
	out := make([]cdx.Component, 0, len(inv.Packages))
	for i, p := range inv.Packages {
		c := cdx.Component{
			BOMRef:     fmt.Sprintf("pkg-%d-%d", target, i),
			Type:       cdx.ComponentTypeLibrary,
			Name:       p.Name,
			Version:    p.Version,
			PackageURL: p.PURL,
		}
		if len(p.CPEs) > 0 {
			c.CPE = p.CPEs[0]
		}
		if strings.Contains(p.Ecosystem, ":") || p.SourceName != "" {
			c.Type = cdx.ComponentTypeLibrary // OS packages are libraries in CycloneDX's vocabulary too
		}
		if p.Dev {
			c.Scope = cdx.ScopeExcluded
		}
		if len(p.Licenses) > 0 {
			lic := cdx.Licenses{}
			for _, l := range p.Licenses {
				lic = append(lic, cdx.LicenseChoice{License: &cdx.License{Name: l}})
			}
			c.Licenses = &lic
		}
		props := []cdx.Property{{Name: propEcosystem, Value: p.Ecosystem}, {Name: propExtractor, Value: p.Extractor}}
		add := func(name, value string) {
			if value != "" {
				props = append(props, cdx.Property{Name: name, Value: value})
			}
		}
		add(propSourceName, p.SourceName)
		add(propSourceVersion, p.SourceVersion)
		add(propArch, p.Arch)
		add(propLayer, p.LayerDigest)
		if p.Dev {
			add(propDev, "true")
		}
		for _, l := range p.Locations {
			add(propLocation, l)
		}
		for _, cp := range p.CPEs[min(1, len(p.CPEs)):] {
			add(propCPE, cp)
		}
		c.Properties = &props
		if len(p.Locations) > 0 {
			occ := make([]cdx.EvidenceOccurrence, 0, len(p.Locations))
			for _, l := range p.Locations {
				occ = append(occ, cdx.EvidenceOccurrence{Location: l})
			}
			c.Evidence = &cdx.Evidence{Occurrences: &occ}
		}
		out = append(out, c)
	}
	return out
}

// WriteCycloneDX writes the inventories as CycloneDX 1.6 JSON.
func WriteCycloneDX(w io.Writer, invs []*model.Inventory, tool Tool) error {
	return EncodeCycloneDX(w, CycloneDX(invs, tool, time.Now()))
}

// EncodeCycloneDX writes a BOM as indented CycloneDX 1.6 JSON.
func EncodeCycloneDX(w io.Writer, bom *cdx.BOM) error {
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	return enc.EncodeVersion(bom, cdx.SpecVersion1_6)
}

// ReadCycloneDX reads a CycloneDX JSON document into an inventory. Components written by Vigil keep
// every field; foreign ones get their ecosystem from the PURL.
func ReadCycloneDX(r io.Reader, name string) (*model.Inventory, error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(r, cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, fmt.Errorf("%s: not a CycloneDX JSON document: %w", name, err)
	}
	inv := &model.Inventory{Source: model.SourceInfo{Kind: "sbom", Name: name}, Packages: []model.Package{}}
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		inv.OS = osFromProps(bom.Metadata.Component.Properties)
	}
	var walk func(cs *[]cdx.Component)
	walk = func(cs *[]cdx.Component) {
		if cs == nil {
			return
		}
		for _, c := range *cs {
			if inv.OS == nil && (c.Type == cdx.ComponentTypeContainer || c.Type == cdx.ComponentTypeOS) {
				inv.OS = osFromProps(c.Properties)
			}
			if c.Type != cdx.ComponentTypeContainer && c.Type != cdx.ComponentTypeOS && c.Version != "" {
				p := model.Package{Name: c.Name, Version: c.Version, PURL: c.PackageURL, Extractor: "sbom"}
				if c.Group != "" && !strings.Contains(c.Name, ":") && strings.HasPrefix(c.PackageURL, "pkg:maven/") {
					p.Name = c.Group + ":" + c.Name
				}
				if c.CPE != "" {
					p.CPEs = []string{c.CPE}
				}
				if c.Properties != nil {
					for _, pr := range *c.Properties {
						applyProp(&p, pr.Name, pr.Value)
					}
				}
				if p.Ecosystem == "" {
					fromPURL(&p, inv.OS)
				}
				switch {
				case p.Ecosystem != "":
					inv.Packages = append(inv.Packages, p)
				case len(p.CPEs) > 0:
					// Only CPE matching can place it; keep it for that (and for the listing).
					inv.Packages = append(inv.Packages, p)
					inv.Warnings = append(inv.Warnings, fmt.Sprintf("component %s@%s: no ecosystem (no usable purl); only CPE matching (--cpe) can match it", c.Name, c.Version))
				default:
					inv.Warnings = append(inv.Warnings, fmt.Sprintf("component %s@%s: no ecosystem (no usable purl); not matched", c.Name, c.Version))
				}
			}
			walk(c.Components)
		}
	}
	walk(bom.Components)
	return inv, nil
}

func osFromProps(props *[]cdx.Property) *model.OS {
	if props == nil {
		return nil
	}
	o := &model.OS{}
	for _, p := range *props {
		switch p.Name {
		case propOSFamily:
			o.Family = p.Value
		case propOSVersion:
			o.VersionID = p.Value
		case propOSEcosystem:
			o.Ecosystem = p.Value
		}
	}
	if o.Family == "" && o.Ecosystem == "" {
		return nil
	}
	return o
}

func applyProp(p *model.Package, name, value string) {
	switch name {
	case propEcosystem:
		p.Ecosystem = value
	case propLocation:
		p.Locations = append(p.Locations, value)
	case propLayer:
		p.LayerDigest = value
	case propSourceName:
		p.SourceName = value
	case propSourceVersion:
		p.SourceVersion = value
	case propArch:
		p.Arch = value
	case propExtractor:
		p.Extractor = value
	case propDev:
		p.Dev, _ = strconv.ParseBool(value)
	case propCPE:
		if !slices.Contains(p.CPEs, value) {
			p.CPEs = append(p.CPEs, value)
		}
	}
}
