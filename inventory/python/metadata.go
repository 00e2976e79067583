package python

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/vigil-sec/vigil/model"
)

// Metadata is what Vigil reads from a core-metadata file (METADATA, PKG-INFO).
type Metadata struct {
	Name, Version, License string
}

// ParseMetadata reads the header block of a core-metadata file (RFC 822 style: "Key: value" lines,
// continuation lines starting with white space, ended by a blank line before the description). It reads
// at most maxHeaderSize bytes of headers.
func ParseMetadata(r io.Reader) (Metadata, error) {
	var m Metadata
	br := bufio.NewReaderSize(io.LimitReader(r, maxHeaderSize+1), 64<<10)
	read, last := 0, ""
	for {
		line, err := br.ReadString('\n')
		read += len(line)
		if read > maxHeaderSize {
			return m, fmt.Errorf("metadata headers longer than %d bytes", maxHeaderSize)
		}
		line = strings.TrimPrefix(strings.TrimRight(line, "\r\n"), "\ufeff")
		if line == "" {
			break // the blank line before the description, or the end of the file
		}
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			if last == "License" {
				m.License += " " + strings.TrimSpace(line)
			}
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			last = k
			v = strings.TrimSpace(v)
			switch strings.ToLower(k) {
			case "name":
				if m.Name == "" {
					m.Name = v
				}
			case "version":
				if m.Version == "" {
					m.Version = v
				}
			case "license":
				if m.License == "" {
					m.License = v
				}
			case "license-expression": // core metadata 2.4: an SPDX expression, preferred
				m.License = v
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return m, err
		}
	}
	return m, nil
}

// readMetadata reads an installed distribution's metadata. When Name or Version is missing, it is taken
// from the metadata directory's name ("charset_normalizer-3.0.1.dist-info"), which installers write as
// name-version with dashes in the name escaped.
func readMetadata(fsys fs.FS, name string) (model.Package, bool, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return model.Package{}, false, err
	}
	defer f.Close()
	m, err := ParseMetadata(f)
	if err != nil {
		return model.Package{}, false, err
	}
	if m.Name == "" || m.Version == "" {
		dir := path.Base(path.Dir(name))
		if strings.HasSuffix(path.Base(name), ".egg-info") {
			dir = path.Base(name)
		}
		stem := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(dir, ".dist-info"), ".egg-info"), ".egg")
		if n, v, ok := strings.Cut(stem, "-"); ok {
			if m.Name == "" {
				m.Name = n
			}
			if m.Version == "" {
				v, _, _ = strings.Cut(v, "-") // egg names carry "-py3.11" after the version
				m.Version = v
			}
		}
	}
	if m.Name == "" || m.Version == "" {
		return model.Package{}, false, errors.New("metadata has no Name or Version")
	}
	p := newPackage(m.Name, m.Version)
	if m.License != "" && m.License != "UNKNOWN" && len(m.License) < 200 {
		p.Licenses = []string{m.License}
	}
	return p, true, nil
}
