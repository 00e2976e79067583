// Package debian parses the Debian security tracker's JSON export
// (https://security-tracker.debian.org/tracker/data/json) into one model.Advisory per source
// package, vulnerability and release.
//
// Choices, since the tracker leaves them to the consumer:
//   - Ecosystem is "Debian:<major>" (OSV's naming). Codenames map through Releases; sid is skipped
//     unless Parser.Unstable is set ("Debian:unstable"), because sid has no version to detect and
//     moves daily. Codenames that are not in the table (experimental, a future release before this
//     table knows it) are skipped silently: they are not malformed.
//   - resolved with fixed_version "0" means the release never shipped the vulnerable code: nothing
//     is emitted (no advisory means not affected; OS packages never fall back to NVD).
//   - open and undetermined become Unfixed advisories. Note says why: "no-dsa: <reason>",
//     "ignored: <reason>", "postponed: <reason>", "end-of-life", or the status itself.
//   - Urgency maps to Severity: low/medium/high as such, unimportant to LOW (the package is
//     affected but Debian judges it not a security problem in practice; LOW keeps it visible, the
//     raw Urgency lets a scorer demote it further), "not yet assigned", "end-of-life" and anything
//     unknown to UNTRIAGED. The "*"/"**" suffixes (urgency set by the tracker, not confirmed) are
//     ignored for the mapping and kept in Urgency.
//   - TEMP- IDs (issues without a CVE yet) are kept: they are real, tracked issues, and their IDs
//     are stable hashes. Parser.SkipTemp drops them.
package debian

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
	"github.com/vigil-sec/vigil/vulndb/feeds/internal/jsonx"
)

// SourceName is the Advisory.Source of everything this package emits.
const SourceName = "debian"

// DefaultMaxSize caps the uncompressed tracker JSON (about 70 MB in 2026).
const DefaultMaxSize = 1 << 30

// Releases maps tracker codenames to Debian major versions.
var Releases = map[string]string{
	"jessie":   "8",
	"stretch":  "9",
	"buster":   "10",
	"bullseye": "11",
	"bookworm": "12",
	"trixie":   "13",
	"forky":    "14",
	"duke":     "15",
}

// Parser reads the tracker JSON. The zero value is ready to use.
type Parser struct {
	// Unstable emits sid entries as "Debian:unstable" instead of skipping them.
	Unstable bool
	// SkipTemp drops TEMP- issues (no CVE assigned).
	SkipTemp bool
	// MaxSize caps the input in bytes; 0 means DefaultMaxSize.
	MaxSize int64
}

var _ feed.Parser = (*Parser)(nil)

// Parse implements feed.Parser. The input may be gzip-compressed.
func (p *Parser) Parse(ctx context.Context, name string, r io.Reader, sink feed.Sink) error {
	max := p.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	zr, closeZ, err := jsonx.Gunzip(jsonx.CapReader(r, max))
	if err != nil {
		return fmt.Errorf("debian tracker %s: %w", name, err)
	}
	defer closeZ()
	dec := jsonx.NewDecoder(zr)
	err = jsonx.Object(dec, func(pkg string) error {
		return jsonx.Object(dec, func(id string) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			// Decode straight into the record: the decoder consumes the whole value even when its
			// shape is wrong, so a type error only costs this record, while syntax errors stay fatal.
			var e entry
			if err := dec.Decode(&e); err != nil {
				var te *json.UnmarshalTypeError
				if !errors.As(err, &te) {
					return jsonx.EOF(err)
				}
				sink.Skip(pkg+"/"+id, err)
				return nil
			}
			return p.entry(pkg, id, &e, sink)
		})
	})
	if err == nil {
		err = jsonx.End(dec)
	}
	if err != nil {
		return fmt.Errorf("debian tracker %s: %w", name, err)
	}
	return nil
}

// entry is one tracker issue for one source package.
type entry struct {
	Description string             `json:"description"`
	Scope       string             `json:"scope"`
	DebianBug   json.RawMessage    `json:"debianbug"`
	Releases    map[string]release `json:"releases"`
}

type release struct {
	Status       string            `json:"status"`
	Repositories map[string]string `json:"repositories"`
	FixedVersion string            `json:"fixed_version"`
	Urgency      string            `json:"urgency"`
	NoDSA        string            `json:"nodsa"`
	NoDSAReason  string            `json:"nodsa_reason"`
}

func (p *Parser) entry(pkg, id string, e *entry, sink feed.Sink) error {
	record := pkg + "/" + id
	if pkg == "" || id == "" {
		sink.Skip(record, fmt.Errorf("empty package or issue ID"))
		return nil
	}
	if p.SkipTemp && strings.HasPrefix(id, "TEMP-") {
		return nil
	}
	codenames := make([]string, 0, len(e.Releases))
	for c := range e.Releases {
		codenames = append(codenames, c)
	}
	slices.Sort(codenames) // deterministic output
	for _, codename := range codenames {
		rel := e.Releases[codename]
		var eco string
		switch {
		case Releases[codename] != "":
			eco = "Debian:" + Releases[codename]
		case codename == "sid" && p.Unstable:
			eco = "Debian:unstable"
		default:
			continue
		}
		a := &model.Advisory{
			Source:     SourceName,
			ID:         id,
			Ecosystem:  eco,
			Package:    pkg,
			Summary:    e.Description,
			Urgency:    rel.Urgency,
			Severity:   Severity(rel.Urgency),
			References: []string{"https://security-tracker.debian.org/tracker/" + id},
		}
		if bug := bugNumber(e.DebianBug); bug != "" {
			a.References = append(a.References, "https://bugs.debian.org/"+bug)
		}
		switch rel.Status {
		case "resolved":
			switch rel.FixedVersion {
			case "0":
				continue // never affected in this release
			case "":
				sink.Skip(record+"/"+codename, fmt.Errorf("resolved without fixed_version"))
				continue
			}
			a.Ranges = []model.Range{{Type: model.RangeEcosystem, Events: []model.Event{
				{Introduced: "0"}, {Fixed: rel.FixedVersion},
			}}}
		case "open", "undetermined":
			a.Unfixed = true
			a.Note = note(rel)
		default:
			sink.Skip(record+"/"+codename, fmt.Errorf("unknown status %q", rel.Status))
			continue
		}
		if err := sink.Advisory(a); err != nil {
			return err
		}
	}
	return nil
}

// note explains why an issue is unfixed in a release.
func note(rel release) string {
	base := strings.TrimRight(rel.Urgency, "*")
	switch {
	case rel.NoDSAReason != "":
		return joinNote(rel.NoDSAReason, rel.NoDSA)
	case rel.NoDSA != "":
		return joinNote("no-dsa", rel.NoDSA)
	case base == "end-of-life":
		return "end-of-life"
	default:
		return rel.Status
	}
}

func joinNote(kind, text string) string {
	if text = strings.TrimSpace(text); text == "" {
		return kind
	}
	return kind + ": " + text
}

// Severity maps a tracker urgency to Vigil's severity scale.
func Severity(urgency string) string {
	switch strings.TrimRight(strings.TrimSpace(urgency), "*") {
	case "unimportant", "low":
		return model.SeverityLow
	case "medium":
		return model.SeverityMedium
	case "high":
		return model.SeverityHigh
	default:
		return model.SeverityUntriaged
	}
}

// bugNumber returns the Debian bug number (given as a JSON number, sometimes as a string), or "".
func bugNumber(raw json.RawMessage) string {
	s := strings.Trim(string(raw), `"`)
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 {
		return strconv.FormatUint(n, 10)
	}
	return ""
}
