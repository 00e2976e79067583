package vulndb

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// SourceState is what the database remembers about one source.
type SourceState struct {
	Name         string    `json:"name"`
	URL          string    `json:"url,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"lastModified,omitempty"`
	LastAttempt  time.Time `json:"lastAttempt,omitzero"`
	// LastSuccess is the last import or not-modified check that succeeded.
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	// LastChange is the last import that changed something.
	LastChange  time.Time `json:"lastChange,omitzero"`
	Advisories  int       `json:"advisories"`
	Enrichments int       `json:"enrichments"`
	Skipped     int       `json:"skipped"`
	LastError   string    `json:"lastError,omitempty"`
	// Version is the database version of the source's last change.
	Version Version `json:"version"`
}

// SourceStatus is a SourceState judged against a maximum age.
type SourceStatus struct {
	SourceState
	Age time.Duration `json:"age"` // since LastSuccess; 0 when never successful
	// Stale: never imported, or the last success is older than the maximum age.
	Stale bool `json:"stale"`
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func (d *DB) sourceStates(ctx context.Context) (map[string]SourceState, error) {
	list, err := d.SourceStates(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]SourceState, len(list))
	for _, s := range list {
		m[s.Name] = s
	}
	return m, nil
}

// SourceStates lists every source the database knows, by name.
func (d *DB) SourceStates(ctx context.Context) ([]SourceState, error) {
	db, release, err := d.handle()
	if err != nil {
		return nil, err
	}
	defer release()
	rows, err := db.QueryContext(ctx, `SELECT name, url, etag, last_modified, last_attempt, last_success, last_change,
		advisories, enrichments, skipped, last_error, version FROM vdb_sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("vulndb: sources: %w", err)
	}
	defer rows.Close()
	var out []SourceState
	for rows.Next() {
		var s SourceState
		var la, ls, lc int64
		if err := rows.Scan(&s.Name, &s.URL, &s.ETag, &s.LastModified, &la, &ls, &lc, &s.Advisories, &s.Enrichments,
			&s.Skipped, &s.LastError, &s.Version); err != nil {
			return nil, fmt.Errorf("vulndb: sources: %w", err)
		}
		s.LastAttempt, s.LastSuccess, s.LastChange = unixTime(la), unixTime(ls), unixTime(lc)
		out = append(out, s)
	}
	return out, rows.Err()
}

// Status reports every known source plus the configured ones not yet imported (sources may be
// nil), each with its age and a Stale flag (never imported, or last success older than maxAge;
// maxAge <= 0 means never stale once imported).
func (d *DB) Status(ctx context.Context, sources []Source, maxAge time.Duration) ([]SourceStatus, error) {
	states, err := d.sourceStates(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range sources {
		if _, ok := states[s.Name]; !ok {
			states[s.Name] = SourceState{Name: s.Name, URL: s.URL}
		}
	}
	now := d.Now()
	out := make([]SourceStatus, 0, len(states))
	for _, s := range states {
		st := SourceStatus{SourceState: s}
		if s.LastSuccess.IsZero() {
			st.Stale = true
		} else {
			st.Age = now.Sub(s.LastSuccess)
			st.Stale = maxAge > 0 && st.Age > maxAge
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
