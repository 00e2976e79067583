// Package php finds Packagist packages in Composer lockfiles (composer.lock) and in what Composer
// installed (vendor/composer/installed.json, formats of Composer 1 and 2).
//
// Versions are Composer's "pretty" versions with a leading "v" removed ("v5.4.0" is reported as
// "5.4.0"): Composer itself drops it when it normalizes versions, and the OSV Packagist records
// (from the GitHub advisory database) write their ranges without it. PURLs carry the same version.
package php

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

const maxFileSize = 64 << 20

const installedSuffix = "vendor/composer/installed.json"

// Composer reads composer.lock and vendor/composer/installed.json. It is a Finisher: a project with
// both is reported once per package.
type Composer struct{}

// NewComposer returns the Composer extractor.
func NewComposer() *Composer { return &Composer{} }

// Name implements inventory.Extractor.
func (*Composer) Name() string { return "php-composer" }

// Version implements inventory.Extractor.
func (*Composer) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*Composer) Required(name string, info fs.FileInfo) bool {
	if !info.Mode().IsRegular() {
		return false
	}
	return path.Base(name) == "composer.lock" || name == installedSuffix || strings.HasSuffix(name, "/"+installedSuffix)
}

// Extract implements inventory.Extractor.
func (*Composer) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fsx.ReadFileLimit(in.FS, in.Path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	var pkgs []model.Package
	if path.Base(in.Path) == "composer.lock" {
		pkgs, err = ParseComposerLock(b)
	} else {
		pkgs, err = ParseInstalled(b)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

type composerLockDoc struct {
	Packages    []composerPackage `json:"packages"`
	PackagesDev []composerPackage `json:"packages-dev"`
}

type installedV2Doc struct {
	Packages        []composerPackage `json:"packages"`
	DevPackageNames []string          `json:"dev-package-names"`
}

type composerPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ParseComposerLock returns the packages of a composer.lock; those of "packages-dev" are marked Dev.
func ParseComposerLock(b []byte) ([]model.Package, error) {
	var lock composerLockDoc
	if err := json.Unmarshal(b, &lock); err != nil {
		return nil, fmt.Errorf("not a composer.lock: %w", err)
	}
	var pkgs []model.Package
	for _, p := range lock.Packages {
		if pkg, ok := packagistPackage(p); ok {
			pkgs = append(pkgs, pkg)
		}
	}
	for _, p := range lock.PackagesDev {
		if pkg, ok := packagistPackage(p); ok {
			pkg.Dev = true
			pkgs = append(pkgs, pkg)
		}
	}
	return pkgs, nil
}

// ParseInstalled returns the packages of a vendor/composer/installed.json: a bare array (Composer 1)
// or {"packages": [...], "dev-package-names": [...]} (Composer 2, which says which are dev).
func ParseInstalled(b []byte) ([]model.Package, error) {
	var list []composerPackage
	dev := map[string]bool{}
	if err := json.Unmarshal(b, &list); err != nil {
		var v2 installedV2Doc
		if err2 := json.Unmarshal(b, &v2); err2 != nil {
			return nil, fmt.Errorf("not an installed.json: %w", err2)
		}
		list = v2.Packages
		for _, n := range v2.DevPackageNames {
			dev[n] = true
		}
	}
	var pkgs []model.Package
	for _, p := range list {
		if pkg, ok := packagistPackage(p); ok {
			pkg.Dev = dev[p.Name]
			pkgs = append(pkgs, pkg)
		}
	}
	return pkgs, nil
}

// NormalizeVersion drops the "v" of tag-style versions ("v5.4.0" → "5.4.0"); branch versions such as
// "dev-main" are kept as written.
func NormalizeVersion(v string) string {
	if len(v) > 1 && (v[0] == 'v' || v[0] == 'V') && v[1] >= '0' && v[1] <= '9' {
		return v[1:]
	}
	return v
}

func packagistPackage(p composerPackage) (model.Package, bool) {
	vendor, name, ok := strings.Cut(p.Name, "/")
	version := NormalizeVersion(strings.TrimSpace(p.Version))
	if !ok || vendor == "" || name == "" || strings.ContainsAny(p.Name, " \t\"") || version == "" {
		return model.Package{}, false
	}
	return model.Package{
		Name:      p.Name,
		Version:   version,
		Ecosystem: model.EcoPackagist,
		PURL:      packageurl.NewPackageURL(packageurl.TypeComposer, vendor, name, version, nil, "").ToString(),
	}, true
}

// projectOf returns the project directory a package location belongs to and whether it is an
// installed.json.
func projectOf(loc string) (dir string, installed bool) {
	if d, ok := strings.CutSuffix(loc, "/"+installedSuffix); ok {
		return d, true
	}
	return path.Dir(loc), false
}

// Finish merges, per project directory, composer.lock with the installed.json Composer wrote from it.
// What is installed is the truth: the package keeps the installed.json location first, gains the
// lockfile's location and dev flag, and lockfile entries that were not installed (dev packages under
// --no-dev, or a stale lock) are dropped. Projects with only one of the files are kept as they are.
func (*Composer) Finish(pkgs []model.Package) []model.Package {
	type key struct{ dir, name, version string }
	hasInstalled := map[string]bool{}
	lock := map[key]int{}
	for i, p := range pkgs {
		if len(p.Locations) == 0 {
			continue
		}
		dir, inst := projectOf(p.Locations[0])
		if inst {
			hasInstalled[dir] = true
		} else {
			lock[key{dir, p.Name, p.Version}] = i
		}
	}
	if len(hasInstalled) == 0 {
		return pkgs
	}
	drop := make([]bool, len(pkgs))
	for i := range pkgs {
		p := &pkgs[i]
		if len(p.Locations) == 0 {
			continue
		}
		dir, inst := projectOf(p.Locations[0])
		if !hasInstalled[dir] {
			continue
		}
		if !inst {
			drop[i] = true
			continue
		}
		if j, ok := lock[key{dir, p.Name, p.Version}]; ok {
			p.Locations = append(p.Locations, pkgs[j].Locations...)
			p.Dev = p.Dev || pkgs[j].Dev
		}
	}
	out := pkgs[:0]
	for i, p := range pkgs {
		if !drop[i] {
			out = append(out, p)
		}
	}
	return out
}
