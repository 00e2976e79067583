// Package extractors is the one explicit list of inventory extractors (no init() registration).
package extractors

import (
	"github.com/vigil-sec/vigil/inventory"
)

// Default returns every extractor, OS package databases first.
func Default() *inventory.Registry {
	return inventory.NewRegistry()
}

// OSDetector returns the operating-system detector.
func OSDetector() inventory.OSDetector { return nil }
