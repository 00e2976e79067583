// Package dotnet finds NuGet packages in .NET applications: the <app>.deps.json that the build and
// publish steps write next to the application (what it loads at run time) and the packages.lock.json
// of NuGet's lock mode (what a project restores).
package dotnet

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

const maxFileSize = 64 << 20

func nugetPackage(name, version string) (model.Package, bool) {
	name, version = strings.TrimSpace(name), strings.TrimSpace(version)
	if name == "" || version == "" || strings.ContainsAny(name, " \t/\\\"") || strings.ContainsAny(version, " \t/\\\"[]()") {
		return model.Package{}, false
	}
	return model.Package{
		Name:      name,
		Version:   version,
		Ecosystem: model.EcoNuGet,
		PURL:      packageurl.NewPackageURL(packageurl.TypeNuget, "", name, version, nil, "").ToString(),
	}, true
}

// DepsJSON reads *.deps.json files.
type DepsJSON struct{}

// NewDepsJSON returns the deps.json extractor.
func NewDepsJSON() *DepsJSON { return &DepsJSON{} }

// Name implements inventory.Extractor.
func (*DepsJSON) Name() string { return "dotnet-deps" }

// Version implements inventory.Extractor.
func (*DepsJSON) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*DepsJSON) Required(name string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && strings.HasSuffix(name, ".deps.json")
}

// Extract implements inventory.Extractor.
func (*DepsJSON) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fsx.ReadFileLimit(in.FS, in.Path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	pkgs, err := ParseDepsJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

// ParseDepsJSON returns the "libraries" of a deps.json whose type is "package" (from NuGet) or
// "runtimepack" (the runtime a self-contained app carries, such as
// "runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/6.0.0", reported under its NuGet name
// Microsoft.NETCore.App.Runtime.linux-x64). "project" and "reference" libraries are the application's
// own code and are left out.
func ParseDepsJSON(b []byte) ([]model.Package, error) {
	var doc depsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a deps.json: %w", err)
	}
	if doc.Libraries == nil {
		return nil, fmt.Errorf("not a deps.json: no \"libraries\"")
	}
	keys := make([]string, 0, len(doc.Libraries))
	for k := range doc.Libraries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pkgs []model.Package
	for _, k := range keys {
		name, version, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		switch strings.ToLower(doc.Libraries[k].Type) {
		case "package":
		case "runtimepack":
			name = strings.TrimPrefix(name, "runtimepack.")
		default:
			continue
		}
		if p, ok := nugetPackage(name, version); ok {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}

// PackagesLock reads NuGet's packages.lock.json.
type PackagesLock struct{}

// NewPackagesLock returns the packages.lock.json extractor.
func NewPackagesLock() *PackagesLock { return &PackagesLock{} }

// Name implements inventory.Extractor.
func (*PackagesLock) Name() string { return "dotnet-packages-lock" }

// Version implements inventory.Extractor.
func (*PackagesLock) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*PackagesLock) Required(name string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && path.Base(name) == "packages.lock.json"
}

// Extract implements inventory.Extractor.
func (*PackagesLock) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fsx.ReadFileLimit(in.FS, in.Path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	pkgs, err := ParsePackagesLock(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

// ParsePackagesLock returns the resolved packages of every target framework (and runtime) of a
// packages.lock.json, each name and version once. "Project" entries are other projects of the same
// solution, not NuGet packages, and are left out.
func ParsePackagesLock(b []byte) ([]model.Package, error) {
	var doc lockDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a packages.lock.json: %w", err)
	}
	if doc.Dependencies == nil {
		return nil, fmt.Errorf("not a packages.lock.json: no \"dependencies\"")
	}
	seen := map[[2]string]bool{}
	var pkgs []model.Package
	for _, deps := range doc.Dependencies {
		for name, d := range deps {
			if strings.EqualFold(d.Type, "Project") || d.Resolved == "" {
				continue
			}
			k := [2]string{strings.ToLower(name), strings.ToLower(d.Resolved)}
			if seen[k] {
				continue
			}
			if p, ok := nugetPackage(name, d.Resolved); ok {
				seen[k] = true
				pkgs = append(pkgs, p)
			}
		}
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Version < pkgs[j].Version
	})
	return pkgs, nil
}

// Named document types keep json's type errors readable ("of type dotnet.lockDoc").
type (
	depsDoc struct {
		Libraries map[string]depsLibrary `json:"libraries"`
	}
	depsLibrary struct {
		Type string `json:"type"`
	}
	lockDoc struct {
		Version      int                             `json:"version"`
		Dependencies map[string]map[string]lockedDep `json:"dependencies"`
	}
	lockedDep struct {
		Type     string `json:"type"`
		Resolved string `json:"resolved"`
	}
)
