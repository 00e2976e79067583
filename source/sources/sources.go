// Package sources lists every source kind Vigil reads, in detection order.
package sources

import (
	"github.com/vigil-sec/vigil/source"
	"github.com/vigil-sec/vigil/source/archive"
	"github.com/vigil-sec/vigil/source/dir"
	"github.com/vigil-sec/vigil/source/disk"
	"github.com/vigil-sec/vigil/source/file"
	"github.com/vigil-sec/vigil/source/image"
)

// Default returns the registry of all sources. Detection tries them in this order: the most specific
// content checks first (image layouts inside tarballs before plain tarballs), plain directories last.
func Default() *source.Registry {
	return source.NewRegistry(
		image.OCIDir{},
		image.DockerArchive{},
		image.OCIArchive{},
		disk.Opener{},
		archive.Opener{},
		image.Registry{},
		dir.Opener{},
		file.Opener{},
	)
}
