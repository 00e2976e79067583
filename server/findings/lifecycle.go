// Package findings moves the findings of one resource through their life: it reconciles a fresh
// match against the stored findings (created, updated, closed, reopened), applies suppression rules,
// decides what retention deletes and derives each resource's coverage. It is pure: it takes the
// stored state and a clock reading and returns what to write and which outbox events to emit, so
// the SQLite and PostgreSQL stores share one behaviour.
//
// Lifecycle rules (Amazon Inspector's, reference/inspector.md §2.1):
//
//   - A finding seen for the first time is ACTIVE with firstObservedAt = lastObservedAt =
//     updatedAt = now (event vigil.finding.created).
//   - A finding seen again keeps its ID, firstObservedAt, status (ACTIVE or SUPPRESSED) and
//     suppression evidence; lastObservedAt becomes now. updatedAt becomes now, with event
//     vigil.finding.updated, only when something material changed (see Material).
//   - A stored ACTIVE or SUPPRESSED finding absent from the fresh match is CLOSED with
//     updatedAt = now (event vigil.finding.closed). A CLOSED finding's updatedAt is its closing time.
//   - A CLOSED finding whose cause returns within ReopenWindow of its closing (inclusive) reopens:
//     same ID, ACTIVE, firstObservedAt kept, updatedAt = lastObservedAt = now (event updated).
//   - One that returns later starts over: its ID is derived from (account, resource, type,
//     vulnerability) so it is the same, but it is treated as new — firstObservedAt = now and the
//     event is vigil.finding.created. (Inspector deletes such findings after 30 days anyway; within
//     the retention period the old row is simply replaced.)
package findings

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Config holds the lifecycle periods. The zero value of a field means its default.
type Config struct {
	// ReopenWindow: a closed finding whose cause returns within it reopens (default 7 days).
	ReopenWindow time.Duration
	// ClosedRetention: closed findings are deleted after it (default 30 days).
	ClosedRetention time.Duration
	// RemovedRetention: findings of a removed resource are deleted after it (default 3 days).
	RemovedRetention time.Duration
	// StaleAfter: an inventory older than this makes coverage STALE_INVENTORY (default 7 days).
	StaleAfter time.Duration
}

// DefaultStaleAfter is Inspector's STALE_INVENTORY threshold.
const DefaultStaleAfter = 7 * 24 * time.Hour

// DefaultConfig returns Inspector's periods.
func DefaultConfig() Config {
	return Config{
		ReopenWindow:     model.DefaultReopenWindow,
		ClosedRetention:  model.DefaultClosedRetain,
		RemovedRetention: model.DefaultRemovedRetain,
		StaleAfter:       DefaultStaleAfter,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ReopenWindow <= 0 {
		c.ReopenWindow = d.ReopenWindow
	}
	if c.ClosedRetention <= 0 {
		c.ClosedRetention = d.ClosedRetention
	}
	if c.RemovedRetention <= 0 {
		c.RemovedRetention = d.RemovedRetention
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = d.StaleAfter
	}
	return c
}

// Result is what one pass decided.
type Result struct {
	// Findings is the complete state of the resource's findings after the pass (closed ones
	// included), in ID order: what to pass as prev next time.
	Findings []model.Finding
	// Upserts are the findings whose stored row changed beyond lastObservedAt (new, material or
	// immaterial content changes, status changes), in ID order.
	Upserts []model.Finding
	// Observed are IDs of findings seen again with no other change: the store only sets their
	// lastObservedAt to the pass's time (one UPDATE … WHERE id IN (…)).
	Observed []string
	// KeptPackages are IDs among Upserts whose vulnerable packages (name, version, ecosystem,
	// layer) are those of the stored finding: the store need not read or rewrite their package rows.
	KeptPackages []string
	// Deletes are IDs of findings to delete. Reconcile never deletes (closed findings stay for
	// ClosedRetention); Expired computes what retention deletes.
	Deletes []string
	// Events go to the outbox in the same transaction; at most one per finding per pass.
	Events []model.OutboxEvent
}

// Reconcile merges a fresh match (current: ACTIVE findings with stable IDs, as match produces them)
// into the stored findings of the same resource (prev, any status). See the package comment for
// the rules.
func Reconcile(prev, current []model.Finding, now time.Time, cfg Config) Result {
	b := newBuilderFor(now, len(prev)+len(current))
	reconcile(b, prev, current, now, cfg)
	return b.result()
}

func reconcile(b *builder, prev, current []model.Finding, now time.Time, cfg Config) {
	cfg = cfg.withDefaults()
	byID := make(map[string]*model.Finding, len(prev))
	for i := range prev {
		byID[prev[i].ID] = &prev[i]
	}
	seen := make(map[string]bool, len(current))
	for _, c := range current {
		if seen[c.ID] {
			continue // a duplicate would be a matcher bug; the first wins
		}
		seen[c.ID] = true
		p := byID[c.ID]
		n := c
		n.LastObservedAt = now
		switch {
		case p == nil || (p.Status == model.FindingClosed && now.Sub(p.UpdatedAt) > cfg.ReopenWindow):
			n.Status = model.FindingActive
			n.Suppression = nil
			n.FirstObservedAt, n.UpdatedAt = now, now
			b.change(n, model.EventFindingCreated)
		case p.Status == model.FindingClosed:
			n.Status = model.FindingActive
			n.Suppression = nil
			n.FirstObservedAt, n.UpdatedAt = p.FirstObservedAt, now
			b.change(n, model.EventFindingUpdated)
		default:
			n.Status, n.Suppression = p.Status, p.Suppression
			n.FirstObservedAt = p.FirstObservedAt
			if Material(*p, n) {
				n.UpdatedAt = now
				b.change(n, model.EventFindingUpdated)
			} else {
				n.UpdatedAt = p.UpdatedAt
				if sameContent(*p, n) {
					b.observe(n)
				} else {
					b.quiet(n)
				}
			}
		}
		if p != nil && samePackageRows(p.Packages, n.Packages) {
			b.keptPackages(n.ID)
		}
	}
	for _, p := range prev {
		if seen[p.ID] {
			continue
		}
		if p.Status == model.FindingClosed {
			b.keep(p)
			continue
		}
		p.Status = model.FindingClosed
		p.UpdatedAt = now
		b.change(p, model.EventFindingClosed)
		b.keptPackages(p.ID)
	}
}

// samePackageRows reports whether two findings have the same vulnerable packages as the store
// indexes them (name, version, ecosystem, layer), in any order.
func samePackageRows(a, b []model.VulnerablePackage) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(p model.VulnerablePackage) string {
		return p.Name + "\x00" + p.Version + "\x00" + p.Ecosystem + "\x00" + p.LayerDigest
	}
	inOrder := true
	for i := range a {
		if key(a[i]) != key(b[i]) {
			inOrder = false
			break
		}
	}
	if inOrder {
		return true
	}
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	sort.Strings(ka)
	sort.Strings(kb)
	return slices.Equal(ka, kb)
}

// Material reports whether a finding changed in a way its owner must hear about: severity, risk
// score (to 0.1), the set of vulnerable packages (name, version, ecosystem, file path, layer), any
// fixed version, fix availability, exploit availability, or the EPSS bucket. Descriptions,
// references, CVSS vectors and titles follow silently; EPSS moves inside a bucket are noise (the
// score changes daily).
func Material(a, b model.Finding) bool {
	if a.Severity != b.Severity || a.FixAvailable != b.FixAvailable || a.ExploitAvailable != b.ExploitAvailable {
		return true
	}
	if math.Round(a.RiskScore.Score*10) != math.Round(b.RiskScore.Score*10) {
		return true
	}
	if EPSSBucket(a.EPSS) != EPSSBucket(b.EPSS) {
		return true
	}
	if len(a.Packages) != len(b.Packages) {
		return true
	}
	same := true
	for i := range a.Packages {
		if !samePackage(a.Packages[i], b.Packages[i]) {
			same = false
			break
		}
	}
	return !same && !reflect.DeepEqual(packageSet(a.Packages), packageSet(b.Packages))
}

func samePackage(a, b model.VulnerablePackage) bool {
	return a.Ecosystem == b.Ecosystem && a.Name == b.Name && a.Version == b.Version && a.FilePath == b.FilePath &&
		a.LayerDigest == b.LayerDigest && a.FixedInVersion == b.FixedInVersion
}

// EPSSBucket places an EPSS probability in one of Vigil's bands: -1 unknown, 0 below 1%, 1 below
// 10%, 2 below 50%, 3 from 50%. The bands follow how people triage EPSS (1% and 10% are FIRST's
// usual cut-offs), so daily jitter does not produce updates.
func EPSSBucket(e *model.EPSS) int {
	switch {
	case e == nil:
		return -1
	case e.Score < 0.01:
		return 0
	case e.Score < 0.1:
		return 1
	case e.Score < 0.5:
		return 2
	}
	return 3
}

func packageSet(ps []model.VulnerablePackage) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Ecosystem + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.FilePath + "\x00" + p.LayerDigest + "\x00" + p.FixedInVersion
	}
	sort.Strings(out)
	return out
}

// sameContent compares everything but the lifecycle fields.
func sameContent(a, b model.Finding) bool {
	a.LastObservedAt, b.LastObservedAt = time.Time{}, time.Time{}
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// builder accumulates one pass's changes, keeping one event per finding. Findings live in one
// slice with their flags, found by ID through one map: a feed delta runs a pass per resource, and
// four maps per pass cost more than the pass's own work.
type builder struct {
	now time.Time
	idx map[string]int
	ent []bent
}

type bent struct {
	f                model.Finding
	upsert, observed bool
	kept             bool   // package rows as stored
	event            string // event type, "" for none
}

// newBuilderFor sizes a builder for about n findings.
func newBuilderFor(now time.Time, n int) *builder {
	return &builder{now: now, idx: make(map[string]int, n), ent: make([]bent, 0, n)}
}

// at returns the entry of a finding, creating it.
func (b *builder) at(f *model.Finding) *bent {
	i, ok := b.idx[f.ID]
	if !ok {
		i = len(b.ent)
		b.idx[f.ID] = i
		b.ent = append(b.ent, bent{})
	}
	e := &b.ent[i]
	e.f = *f
	return e
}

func (b *builder) keep(f model.Finding) { b.at(&f) }

func (b *builder) keptPackages(id string) { b.ent[b.idx[id]].kept = true }

func (b *builder) observe(f model.Finding) { b.at(&f).observed = true }

func (b *builder) quiet(f model.Finding) {
	e := b.at(&f)
	e.upsert, e.observed = true, false
}

// change records a visible change. A later change of the same finding in the same pass keeps the
// first event's type (created stays created; closed stays closed) and the final data.
func (b *builder) change(f model.Finding, typ string) {
	e := b.at(&f)
	e.upsert, e.observed = true, false
	if e.event == "" {
		e.event = typ
	}
}

func (b *builder) result() Result {
	order := make([]int, len(b.ent))
	upserts, events := 0, 0
	for i := range order {
		order[i] = i
		if b.ent[i].upsert {
			upserts++
		}
		if b.ent[i].event != "" {
			events++
		}
	}
	sort.Slice(order, func(i, j int) bool { return b.ent[order[i]].f.ID < b.ent[order[j]].f.ID })
	var r Result
	r.Findings = make([]model.Finding, 0, len(order))
	if upserts > 0 {
		r.Upserts = make([]model.Finding, 0, upserts)
	}
	if events > 0 {
		r.Events = make([]model.OutboxEvent, 0, events)
	}
	for _, i := range order {
		e := &b.ent[i]
		r.Findings = append(r.Findings, e.f)
		switch {
		case e.upsert:
			r.Upserts = append(r.Upserts, e.f)
			if e.kept {
				r.KeptPackages = append(r.KeptPackages, e.f.ID)
			}
		case e.observed:
			r.Observed = append(r.Observed, e.f.ID)
		}
		if e.event != "" {
			r.Events = append(r.Events, FindingEvent(e.event, e.f, b.now))
		}
	}
	return r
}

// FindingEvent builds an outbox event for a finding. Its ID is a hash of the event type, the
// finding's ID, the pass time and the event's data: recomputing the same pass (a retried
// transaction, a second server process doing the same work at the same clock reading) yields the
// same ID, so the outbox's unique key and webhook consumers deduplicate redeliveries, while two
// different changes of one finding never collide, even at the same clock reading.
func FindingEvent(typ string, f model.Finding, now time.Time) model.OutboxEvent {
	data, err := marshalFinding(&f)
	if err != nil {
		data = []byte("null") // a Finding holds only plain data; Marshal cannot fail on it
	}
	return model.OutboxEvent{
		ID:      eventID(typ, f.ID, data, now),
		Type:    typ,
		Account: f.Account,
		Subject: f.ID,
		Time:    now.UTC(),
		Data:    data,
	}
}

// EventID derives a deterministic event ID ("ev-" and 32 hex digits).
func EventID(typ, subject string, now time.Time) string {
	return eventID(typ, subject, nil, now)
}

// eventID is EventID(typ, subject+"\x00"+string(data), now) when data is not nil, hashed piece by
// piece: a finding event's data is kilobytes, and concatenating it twice cost more than the hash.
func eventID(typ, subject string, data []byte, now time.Time) string {
	h := sha256.New()
	var buf [24]byte
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(subject))
	if data != nil {
		h.Write([]byte{0})
		h.Write(data)
	}
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(buf[:0], now.UnixNano(), 10))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var out [3 + 32]byte
	copy(out[:], "ev-")
	hex.Encode(out[3:], sum[:16])
	return string(out[:])
}
