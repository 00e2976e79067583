package npm

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParseYarnLock reads a yarn.lock: the classic (v1) format or the YAML of yarn 2+ ("berry", told apart
// by its __metadata block). Neither records dev-only dependencies, so no entry is marked Dev. Each
// name@version is reported once (yarn installs hoisted copies from one lock entry).
func ParseYarnLock(data []byte) ([]Entry, error) {
	var (
		out []Entry
		err error
	)
	if isBerry(data) {
		out, err = parseBerry(data)
	} else {
		out, err = parseYarnClassic(data)
	}
	if err != nil {
		return nil, err
	}
	return dedupe(out), nil
}

func isBerry(data []byte) bool {
	return bytes.HasPrefix(data, []byte("__metadata:")) || bytes.Contains(data, []byte("\n__metadata:"))
}

// localProtocols name resolutions that are the project's own code or a patch over another entry
// (yarn berry lists the unpatched package too), not registry packages.
var localProtocols = []string{"workspace:", "link:", "portal:", "file:", "patch:", "exec:"}

func isLocal(ref string) bool {
	for _, p := range localProtocols {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	return false
}

// splitDescriptor splits "name@range" at the "@" that ends the (possibly scoped) name:
// "@babel/core@^7.0.0" → "@babel/core", "^7.0.0"; "foo@npm:bar@^1" → "foo", "npm:bar@^1".
func splitDescriptor(d string) (name, ref string, ok bool) {
	start := 0
	if strings.HasPrefix(d, "@") {
		start = 1
	}
	i := strings.IndexByte(d[start:], '@')
	if i < 0 {
		return "", "", false
	}
	i += start
	if i == 0 {
		return "", "", false
	}
	return d[:i], d[i+1:], true
}

func parseYarnClassic(data []byte) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	name, skip, line := "", false, 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(text)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if text[0] != ' ' && text[0] != '\t' {
			// A header: one or more comma-separated descriptors of the same resolution.
			if !strings.HasSuffix(trimmed, ":") {
				return nil, fmt.Errorf("yarn.lock line %d: expected an entry header ending in ':'", line)
			}
			first, _, _ := strings.Cut(strings.TrimSuffix(trimmed, ":"), ",")
			first = strings.Trim(strings.TrimSpace(first), `"`)
			n, ref, ok := splitDescriptor(first)
			if !ok {
				return nil, fmt.Errorf("yarn.lock line %d: bad descriptor %q", line, first)
			}
			skip = isLocal(ref)
			if alias, ok := strings.CutPrefix(ref, "npm:"); ok {
				if real, _, ok := splitDescriptor(alias); ok {
					n = real
				}
			}
			name = n
			continue
		}
		if name == "" || skip {
			continue
		}
		// Only the entry's own fields (two-space indent) matter; "version" under "dependencies:" is
		// indented further and names a dependency.
		if strings.HasPrefix(text, "  version ") && !strings.HasPrefix(text, "   ") {
			v := strings.Trim(strings.TrimSpace(strings.TrimPrefix(text, "  version ")), `"`)
			if registryVersion(v) {
				out = append(out, Entry{Name: name, Version: v})
			}
			name = ""
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("yarn.lock: %w", err)
	}
	return out, nil
}

type berryEntry struct {
	Version    string `yaml:"version"`
	Resolution string `yaml:"resolution"`
}

func parseBerry(data []byte) ([]Entry, error) {
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("yarn.lock (berry): %w", err)
	}
	var out []Entry
	for key, node := range doc {
		if key == "__metadata" || node.Kind != yaml.MappingNode {
			continue
		}
		var e berryEntry
		if err := node.Decode(&e); err != nil {
			return nil, fmt.Errorf("yarn.lock (berry) entry %q: %w", key, err)
		}
		name, ref, ok := splitDescriptor(e.Resolution)
		if !ok || isLocal(ref) || !registryVersion(e.Version) {
			continue
		}
		out = append(out, Entry{Name: name, Version: e.Version})
	}
	return out, nil
}

func dedupe(in []Entry) []Entry {
	sort.Slice(in, func(a, b int) bool {
		if in[a].Name != in[b].Name {
			return in[a].Name < in[b].Name
		}
		return in[a].Version < in[b].Version
	})
	out := in[:0]
	for i, e := range in {
		if i > 0 && e.Name == in[i-1].Name && e.Version == in[i-1].Version && e.Path == in[i-1].Path {
			// Keep an entry dev only if every occurrence is dev.
			if !e.Dev {
				out[len(out)-1].Dev = false
			}
			continue
		}
		out = append(out, e)
	}
	return out
}
