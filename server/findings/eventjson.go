package findings

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// marshalFinding returns exactly the bytes json.Marshal(f) returns. A feed delta writes an event
// per changed finding (a million for a large delta), and encoding/json's reflection was the
// largest cost of building them; this encoder writes the known fields directly. Strings with
// anything encoding/json escapes, and the rare nested records (EPSS, KEV, suppression), go through
// encoding/json itself, so escaping and formatting are its own. If model.Finding or a type it
// holds ever differs from the layout written here (a field added, renamed, retagged), every
// finding goes through json.Marshal: the fast path can be stale, never wrong.
func marshalFinding(f *model.Finding) ([]byte, error) {
	if !layoutOK() {
		return json.Marshal(f)
	}
	buf := scratch.Get().(*[]byte)
	b, ok := appendFinding((*buf)[:0], f)
	if !ok {
		scratch.Put(buf)
		return json.Marshal(f)
	}
	out := make([]byte, len(b)) // exactly sized: events wait in memory until they are written
	copy(out, b)
	if cap(b) <= 1<<20 {
		*buf = b
		scratch.Put(buf)
	}
	return out, nil
}

var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// plain marks the bytes encoding/json copies into a string unescaped (printable ASCII but for
// the quote, the backslash and the HTML-sensitive <, > and &).
var plain = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

func appendFinding(b []byte, f *model.Finding) ([]byte, bool) {
	ok := true
	b = append(b, `{"findingId":`...)
	b = appendStr(b, f.ID)
	b = append(b, `,"type":`...)
	b = appendStr(b, f.Type)
	if f.Account != "" {
		b = append(b, `,"account":`...)
		b = appendStr(b, f.Account)
	}
	if f.ResourceID != "" {
		b = append(b, `,"resourceId":`...)
		b = appendStr(b, f.ResourceID)
	}
	if f.ResourceType != "" {
		b = append(b, `,"resourceType":`...)
		b = appendStr(b, f.ResourceType)
	}
	b = append(b, `,"vulnerabilityId":`...)
	b = appendStr(b, f.VulnerabilityID)
	if len(f.RelatedVulnerabilities) > 0 {
		b = append(b, `,"relatedVulnerabilities":`...)
		b = appendStrs(b, f.RelatedVulnerabilities)
	}
	if f.Title != "" {
		b = append(b, `,"title":`...)
		b = appendStr(b, f.Title)
	}
	if f.Description != "" {
		b = append(b, `,"description":`...)
		b = appendStr(b, f.Description)
	}
	b = append(b, `,"severity":`...)
	b = appendStr(b, f.Severity)
	if f.SeveritySource != "" {
		b = append(b, `,"severitySource":`...)
		b = appendStr(b, f.SeveritySource)
	}
	b = append(b, `,"status":`...)
	b = appendStr(b, f.Status)
	b = append(b, `,"fixAvailable":`...)
	b = appendStr(b, f.FixAvailable)
	b = append(b, `,"exploitAvailable":`...)
	b = appendStr(b, f.ExploitAvailable)

	rs := &f.RiskScore
	b = append(b, `,"riskScore":{"score":`...)
	b, ok = appendFloat(b, rs.Score, ok)
	b = append(b, `,"base":`...)
	b, ok = appendFloat(b, rs.Base, ok)
	if rs.BaseSource != "" {
		b = append(b, `,"baseSource":`...)
		b = appendStr(b, rs.BaseSource)
	}
	if rs.BaseVector != "" {
		b = append(b, `,"baseVector":`...)
		b = appendStr(b, rs.BaseVector)
	}
	if len(rs.Adjustments) > 0 {
		b = append(b, `,"adjustments":[`...)
		for i := range rs.Adjustments {
			a := &rs.Adjustments[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"factor":`...)
			b = appendStr(b, a.Factor)
			b = append(b, `,"delta":`...)
			b, ok = appendFloat(b, a.Delta, ok)
			b = append(b, `,"reason":`...)
			b = appendStr(b, a.Reason)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, '}')

	if len(f.CVSS) > 0 {
		b = append(b, `,"cvss":[`...)
		for i := range f.CVSS {
			c := &f.CVSS[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"source":`...)
			b = appendStr(b, c.Source)
			b = append(b, `,"version":`...)
			b = appendStr(b, c.Version)
			b = append(b, `,"vector":`...)
			b = appendStr(b, c.Vector)
			b = append(b, `,"score":`...)
			b, ok = appendFloat(b, c.Score, ok)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if f.EPSS != nil {
		b = append(b, `,"epss":`...)
		b, ok = appendJSON(b, f.EPSS, ok)
	}
	if f.KEV != nil {
		b = append(b, `,"kev":`...)
		b, ok = appendJSON(b, f.KEV, ok)
	}
	if len(f.CWEs) > 0 {
		b = append(b, `,"cwes":`...)
		b = appendStrs(b, f.CWEs)
	}
	if len(f.References) > 0 {
		b = append(b, `,"references":`...)
		b = appendStrs(b, f.References)
	}
	b = append(b, `,"vulnerablePackages":`...)
	if f.Packages == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range f.Packages {
			p := &f.Packages[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendStr(b, p.Name)
			b = append(b, `,"version":`...)
			b = appendStr(b, p.Version)
			b = append(b, `,"ecosystem":`...)
			b = appendStr(b, p.Ecosystem)
			for _, o := range [...]struct {
				key, v string
			}{{`,"purl":`, p.PURL}, {`,"sourceName":`, p.SourceName}, {`,"sourceVersion":`, p.SourceVersion}, {`,"arch":`, p.Arch},
				{`,"fixedInVersion":`, p.FixedInVersion}, {`,"filePath":`, p.FilePath}, {`,"layerDigest":`, p.LayerDigest}} {
				if o.v != "" {
					b = append(b, o.key...)
					b = appendStr(b, o.v)
				}
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(f.Advisories) > 0 {
		b = append(b, `,"advisories":[`...)
		for i := range f.Advisories {
			a := &f.Advisories[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"source":`...)
			b = appendStr(b, a.Source)
			b = append(b, `,"id":`...)
			b = appendStr(b, a.ID)
			if a.Note != "" {
				b = append(b, `,"note":`...)
				b = appendStr(b, a.Note)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if f.Suppression != nil {
		b = append(b, `,"suppression":`...)
		b, ok = appendJSON(b, f.Suppression, ok)
	}
	for _, t := range [...]struct {
		key string
		t   *time.Time
	}{{`,"firstObservedAt":`, &f.FirstObservedAt}, {`,"lastObservedAt":`, &f.LastObservedAt}, {`,"updatedAt":`, &f.UpdatedAt}} {
		if !t.t.IsZero() {
			b = append(b, t.key...)
			tb, err := t.t.MarshalJSON()
			if err != nil {
				ok = false
			}
			b = append(b, tb...)
		}
	}
	b = append(b, '}')
	return b, ok
}

// appendStr appends a JSON string as encoding/json writes it (HTML-safe escaping): printable ASCII
// without quotes, backslashes or <, >, & is copied; anything else is left to encoding/json.
func appendStr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStrs(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStr(b, s)
	}
	return append(b, ']')
}

// appendFloat writes a float64 as encoding/json does (its floatEncoder, 64 bits); NaN and
// infinities, which encoding/json refuses, clear ok.
func appendFloat(b []byte, f float64, ok bool) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, ok
}

func appendJSON(b []byte, v any, ok bool) ([]byte, bool) {
	j, err := json.Marshal(v)
	if err != nil {
		return b, false
	}
	return append(b, j...), ok
}

// layoutOK reports whether the model types still have the fields, types and JSON tags the
// encoder above writes.
var layoutOK = sync.OnceValue(func() bool {
	type field struct {
		name string
		typ  reflect.Type
		tag  string
	}
	str, strs, f64, tm := reflect.TypeFor[string](), reflect.TypeFor[[]string](), reflect.TypeFor[float64](), reflect.TypeFor[time.Time]()
	want := map[reflect.Type][]field{
		reflect.TypeFor[model.Finding](): {
			{"ID", str, "findingId"}, {"Type", str, "type"}, {"Account", str, "account,omitempty"},
			{"ResourceID", str, "resourceId,omitempty"}, {"ResourceType", str, "resourceType,omitempty"},
			{"VulnerabilityID", str, "vulnerabilityId"}, {"RelatedVulnerabilities", strs, "relatedVulnerabilities,omitempty"},
			{"Title", str, "title,omitempty"}, {"Description", str, "description,omitempty"}, {"Severity", str, "severity"},
			{"SeveritySource", str, "severitySource,omitempty"}, {"Status", str, "status"}, {"FixAvailable", str, "fixAvailable"},
			{"ExploitAvailable", str, "exploitAvailable"}, {"RiskScore", reflect.TypeFor[model.RiskScore](), "riskScore"},
			{"CVSS", reflect.TypeFor[[]model.CVSS](), "cvss,omitempty"}, {"EPSS", reflect.TypeFor[*model.EPSS](), "epss,omitempty"},
			{"KEV", reflect.TypeFor[*model.KEV](), "kev,omitempty"}, {"CWEs", strs, "cwes,omitempty"},
			{"References", strs, "references,omitempty"}, {"Packages", reflect.TypeFor[[]model.VulnerablePackage](), "vulnerablePackages"},
			{"Advisories", reflect.TypeFor[[]model.AdvisoryRef](), "advisories,omitempty"},
			{"Suppression", reflect.TypeFor[*model.SuppressionEvidence](), "suppression,omitempty"},
			{"FirstObservedAt", tm, "firstObservedAt,omitzero"}, {"LastObservedAt", tm, "lastObservedAt,omitzero"},
			{"UpdatedAt", tm, "updatedAt,omitzero"},
		},
		reflect.TypeFor[model.RiskScore](): {
			{"Score", f64, "score"}, {"Base", f64, "base"}, {"BaseSource", str, "baseSource,omitempty"},
			{"BaseVector", str, "baseVector,omitempty"}, {"Adjustments", reflect.TypeFor[[]model.Adjustment](), "adjustments,omitempty"},
		},
		reflect.TypeFor[model.Adjustment](): {{"Factor", str, "factor"}, {"Delta", f64, "delta"}, {"Reason", str, "reason"}},
		reflect.TypeFor[model.CVSS]():       {{"Source", str, "source"}, {"Version", str, "version"}, {"Vector", str, "vector"}, {"Score", f64, "score"}},
		reflect.TypeFor[model.VulnerablePackage](): {
			{"Name", str, "name"}, {"Version", str, "version"}, {"Ecosystem", str, "ecosystem"}, {"PURL", str, "purl,omitempty"},
			{"SourceName", str, "sourceName,omitempty"}, {"SourceVersion", str, "sourceVersion,omitempty"}, {"Arch", str, "arch,omitempty"},
			{"FixedInVersion", str, "fixedInVersion,omitempty"}, {"FilePath", str, "filePath,omitempty"}, {"LayerDigest", str, "layerDigest,omitempty"},
		},
		reflect.TypeFor[model.AdvisoryRef](): {{"Source", str, "source"}, {"ID", str, "id"}, {"Note", str, "note,omitempty"}},
	}
	for t, fields := range want {
		if t.NumField() != len(fields) {
			return false
		}
		for i, w := range fields {
			sf := t.Field(i)
			if sf.Name != w.name || sf.Type != w.typ || sf.Tag.Get("json") != w.tag || sf.Anonymous {
				return false
			}
		}
		// Types whose own JSON methods would take over from the fields.
		for _, m := range []reflect.Type{t, reflect.PointerTo(t)} {
			if m.Implements(reflect.TypeFor[json.Marshaler]()) || m.Implements(reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()) {
				return false
			}
		}
	}
	return true
})
