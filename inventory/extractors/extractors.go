// Package extractors is the one explicit list of inventory extractors (no init() registration).
package extractors

import (
	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/apk"
	"github.com/vigil-sec/vigil/inventory/dotnet"
	"github.com/vigil-sec/vigil/inventory/dpkg"
	"github.com/vigil-sec/vigil/inventory/golang"
	"github.com/vigil-sec/vigil/inventory/java"
	"github.com/vigil-sec/vigil/inventory/npm"
	"github.com/vigil-sec/vigil/inventory/osrelease"
	"github.com/vigil-sec/vigil/inventory/php"
	"github.com/vigil-sec/vigil/inventory/python"
	"github.com/vigil-sec/vigil/inventory/rpm"
	"github.com/vigil-sec/vigil/inventory/ruby"
	"github.com/vigil-sec/vigil/inventory/rust"
)

// Default returns every extractor, OS package databases first.
func Default() *inventory.Registry {
	return inventory.NewRegistry(
		dpkg.Extractor{},
		rpm.Extractor{},
		apk.Extractor{},
		golang.NewBinary(),
		golang.NewGoMod(),
		npm.New(),
		python.New(),
		java.NewArchive(),
		java.NewGradleLock(),
		ruby.NewGemspec(),
		ruby.NewGemfileLock(),
		rust.NewCargoLock(),
		rust.NewAuditable(),
		php.NewComposer(),
		dotnet.NewDepsJSON(),
		dotnet.NewPackagesLock(),
	)
}

// OSDetector returns the operating-system detector.
func OSDetector() inventory.OSDetector { return osrelease.Detector{} }
