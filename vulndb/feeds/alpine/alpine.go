// Package alpine parses Alpine Linux secdb files (https://secdb.alpinelinux.org/vX.Y/main.json and
// community.json) into one model.Advisory per origin package and vulnerability.
//
// secdb lists, per package, the apk versions that fixed vulnerabilities; everything below a fixed
// version is affected. Choices:
//   - Ecosystem is "Alpine:" + distroversion ("Alpine:v3.11"); when the file does not say, the
//     release is taken from the file name (".../v3.11/main.json").
//   - The version key "0" means Alpine was never affected: nothing is emitted for it.
//   - An entry may carry several IDs ("CVE-2016-6258 XSA-182") or free text ("CVE-2018-14881
//     (BGP)"). The first CVE becomes the ID and every other recognised ID an alias; entries with
//     only a vendor ID (XSA-207, ZBX-11023, wnpa-sec-2017-18, TALOS-…) use it as the ID. Common typos
//     are repaired ("CVE_2019-2426", "CVE 2018-16859", "CVE-2019-19451.patch"); entries with no
//     recognisable ID ("CVE-????-?????") go to Sink.Skip.
//   - A vulnerability listed under several fixed versions of one package gives one advisory with one
//     range per fixed version: affected below any of them, the conservative reading.
package alpine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

// SourceName is the Advisory.Source of everything this package emits.
const SourceName = "alpine"

// DefaultMaxSize caps one secdb file (the largest, edge/main.json, is a few MB).
const DefaultMaxSize = 256 << 20

// Parser reads one secdb JSON file. The zero value is ready to use.
type Parser struct {
	// MaxSize caps the input in bytes; 0 means DefaultMaxSize.
	MaxSize int64
}

var _ feed.Parser = (*Parser)(nil)

// Parse implements feed.Parser. name should be the file's path in the secdb layout
// ("v3.20/main.json"), used when the file lacks distroversion. The input may be gzip-compressed.
func (p *Parser) Parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) error {
	max := p.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	zr, closeZ, err := jsonx.Gunzip(jsonx.CapReader(r, max))
	if err != nil {
		return fmt.Errorf("alpine secdb %s: %w", name, err)
	}
	defer closeZ()
	dec := jsonx.NewDecoder(zr)
	var release string
	sawPackages := false
	err = jsonx.Object(dec, func(key string) error {
		switch key {
		case "distroversion":
			if err := dec.Decode(&release); err != nil {
				return fmt.Errorf("distroversion: %w", err)
			}
			return nil
		case "packages":
			sawPackages = true
			if release == "" {
				release = releaseFromName(name)
			}
			if release == "" {
				return fmt.Errorf("no distroversion before packages and none in the file name")
			}
			eco := "Alpine:" + release
			i := 0
			return jsonx.ArrayOrEmpty(dec, func() error {
				if err := ctx.Err(); err != nil {
					return err
				}
				raw, err := jsonx.Raw(dec)
				if err != nil {
					return err
				}
				i++
				return emitPackage(eco, i, raw, sink)
			})
		default:
			return jsonx.Skip(dec)
		}
	})
	if err == nil {
		err = jsonx.End(dec)
	}
	if err == nil && !sawPackages {
		err = fmt.Errorf("no packages array: not a secdb file")
	}
	if err != nil {
		return fmt.Errorf("alpine secdb %s: %w", name, err)
	}
	return nil
}

var releaseRE = regexp.MustCompile(`^(v\d+\.\d+|edge)$`)

// releaseFromName finds the "vX.Y" directory in a secdb path.
func releaseFromName(name string) string {
	for dir := path.Dir(strings.ReplaceAll(name, `\`, "/")); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if base := path.Base(dir); releaseRE.MatchString(base) {
			return base
		}
	}
	return ""
}

type pkgEntry struct {
	Pkg struct {
		Name     string          `json:"name"`
		Secfixes json.RawMessage `json:"secfixes"`
	} `json:"pkg"`
}

func emitPackage(eco string, index int, raw json.RawMessage, sink feed.Sink) error {
	var e pkgEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		sink.Skip(fmt.Sprintf("packages[%d]", index-1), err)
		return nil
	}
	name := e.Pkg.Name
	if name == "" || strings.ContainsAny(name, " \t\n/") {
		sink.Skip(fmt.Sprintf("packages[%d]", index-1), fmt.Errorf("bad package name %q", name))
		return nil
	}
	if len(e.Pkg.Secfixes) == 0 || string(e.Pkg.Secfixes) == "null" {
		return nil
	}
	byID := map[string]*model.Advisory{}
	var order []*model.Advisory
	// Walk secfixes with the token API to keep the file's order (a Go map would shuffle it).
	dec := jsonx.NewDecoder(bytes.NewReader(e.Pkg.Secfixes))
	err := jsonx.Object(dec, func(version string) error {
		raw, err := jsonx.Raw(dec)
		if err != nil {
			return err
		}
		var entries []*string
		switch string(raw) {
		case "null", `""`: // an empty YAML list converted to JSON
		default:
			if err := json.Unmarshal(raw, &entries); err != nil {
				sink.Skip(name+"/"+version, err)
				return nil
			}
		}
		if version == "0" {
			return nil // never affected
		}
		if version == "" || strings.ContainsAny(version, " \t\n") {
			sink.Skip(name+"/"+version, fmt.Errorf("bad fixed version %q", version))
			return nil
		}
		for _, s := range entries {
			if s == nil {
				continue
			}
			ids := ParseIDs(*s)
			if len(ids) == 0 {
				sink.Skip(name+"/"+version, fmt.Errorf("no vulnerability ID in %q", *s))
				continue
			}
			a := byID[ids[0]]
			if a == nil {
				a = &model.Advisory{
					Source:    SourceName,
					ID:        ids[0],
					Ecosystem: eco,
					Package:   name,
					Severity:  model.SeverityUntriaged,
				}
				byID[ids[0]] = a
				order = append(order, a)
			}
			for _, alias := range ids[1:] {
				if !contains(a.Aliases, alias) {
					a.Aliases = append(a.Aliases, alias)
				}
			}
			if !hasFixed(a, version) {
				a.Ranges = append(a.Ranges, model.Range{Type: model.RangeEcosystem, Events: []model.Event{
					{Introduced: "0"}, {Fixed: version},
				}})
			}
		}
		return nil
	})
	if err != nil {
		sink.Skip(name, err)
		return nil
	}
	for _, a := range order {
		if err := sink.Advisory(a); err != nil {
			return err
		}
	}
	return nil
}

var (
	cveRE   = regexp.MustCompile(`(?i)\bCVE[-_ ]?(\d{4})-(\d{4,})`)
	otherRE = regexp.MustCompile(`(?i)\b(XSA-\d+|TALOS-\d{4}-\d+|ZBX-\d+|wnpa-sec-\d{4}-\d+|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})\b`)
)

// ParseIDs extracts the vulnerability IDs from one secfixes entry, CVEs first, normalised and
// without duplicates.
func ParseIDs(entry string) []string {
	var ids []string
	for _, m := range cveRE.FindAllStringSubmatch(entry, -1) {
		if id := "CVE-" + m[1] + "-" + m[2]; !contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, m := range otherRE.FindAllString(entry, -1) {
		var id string
		switch {
		case strings.EqualFold(m[:4], "GHSA"):
			id = "GHSA" + strings.ToLower(m[4:])
		case strings.EqualFold(m[:4], "wnpa"):
			id = strings.ToLower(m)
		default:
			id = strings.ToUpper(m)
		}
		if !contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasFixed(a *model.Advisory, version string) bool {
	for _, r := range a.Ranges {
		for _, e := range r.Events {
			if e.Fixed == version {
				return true
			}
		}
	}
	return false
}
