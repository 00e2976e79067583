// Package sources lists every source kind Vigil reads, in detection order.
package sources

import (
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/dir"
)

// Default returns the registry of all sources. Detection tries them in this order: the most specific
// content checks first, plain directories last.
func Default() *source.Registry {
	return source.NewRegistry(
		dir.Opener{},
	)
}
