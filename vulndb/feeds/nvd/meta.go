package nvd

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Meta is an NVD feed's .meta descriptor (nvdcve-2.0-2024.meta): it lets an updater skip an
// unchanged feed and verify the one it downloaded. SHA256 is of the uncompressed JSON.
type Meta struct {
	LastModified time.Time
	Size         int64
	ZipSize      int64
	GzSize       int64
	SHA256       string
}

// ParseMeta reads a .meta descriptor ("key:value" lines).
func ParseMeta(name string, r io.Reader) (*Meta, error) {
	m := &Meta{}
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "lastModifiedDate":
			m.LastModified, err = time.Parse(time.RFC3339, v)
		case "size":
			m.Size, err = strconv.ParseInt(v, 10, 64)
		case "zipSize":
			m.ZipSize, err = strconv.ParseInt(v, 10, 64)
		case "gzSize":
			m.GzSize, err = strconv.ParseInt(v, 10, 64)
		case "sha256":
			m.SHA256 = strings.ToLower(v)
		}
		if err != nil {
			return nil, fmt.Errorf("nvd meta %s: %s: %w", name, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nvd meta %s: %w", name, err)
	}
	if len(m.SHA256) != 64 || m.Size <= 0 {
		return nil, fmt.Errorf("nvd meta %s: no sha256/size: not a feed descriptor", name)
	}
	return m, nil
}
