package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// ResourceState is what a submission needs of a resource's stored findings and coverage to see that
// an unchanged inventory changes nothing but observation times.
type ResourceState struct {
	ActiveFindings int
	// OldestObserved is the earliest lastObservedAt of its open findings (zero: none is open).
	OldestObserved time.Time
	// Coverage is its coverage of the scan type asked for; nil when none is stored.
	Coverage *model.Coverage
}

// resourceStateQuery reads a resource's open-finding figures from findings_resource alone (it
// carries status and last_observed): every submission runs it.
const resourceStateQuery = `SELECT COALESCE(SUM(CASE WHEN status = ? THEN 1 ELSE 0 END), 0),
	MIN(CASE WHEN status <> ? THEN last_observed END) FROM findings WHERE account = ? AND resource_id = ?`

// ResourceState reads a resource's open-finding figures and its coverage of one scan type: two
// indexed reads, no transaction.
func (s *Store) ResourceState(ctx context.Context, account, resourceID, scanType string) (ResourceState, error) {
	var (
		st     ResourceState
		oldest sql.NullInt64
	)
	err := s.queryRow(ctx, s.db, resourceStateQuery, model.FindingActive, model.FindingClosed, account, resourceID).Scan(&st.ActiveFindings, &oldest)
	if err != nil {
		return st, fmt.Errorf("store: resource state %s: %w", resourceID, err)
	}
	st.OldestObserved = fromNull(oldest)
	var (
		c       model.Coverage
		scanned sql.NullInt64
		updated int64
	)
	err = s.queryRow(ctx, s.db, `SELECT account, resource_id, resource_type, scan_type, status, reason, scan_mode, last_scanned_at, updated_at
		FROM coverage WHERE account = ? AND resource_id = ? AND scan_type = ?`, account, resourceID, scanType).
		Scan(&c.Account, &c.ResourceID, &c.ResourceType, &c.ScanType, &c.Status, &c.Reason, &c.ScanMode, &scanned, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return st, fmt.Errorf("store: resource state %s: %w", resourceID, err)
	default:
		c.LastScannedAt, c.UpdatedAt = fromNull(scanned), fromMicros(updated)
		st.Coverage = &c
	}
	return st, nil
}

// Observation moves a resource's observation times forward, never back: its coverage's
// lastScannedAt for ScanType becomes At, and so does the lastObservedAt of its open findings last
// observed at or before FindingsBefore (zero: no finding is touched). Status and reason are left
// alone, so an observation written late never undoes a change written meanwhile.
type Observation struct {
	Account, ResourceID, ScanType string
	At, FindingsBefore            time.Time
}

// Observe writes observations in one transaction.
func (s *Store) Observe(ctx context.Context, obs []Observation) error {
	if len(obs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, o := range obs {
			at := micros(o.At)
			if _, err := s.exec(ctx, tx, `UPDATE coverage SET last_scanned_at = ? WHERE account = ? AND resource_id = ? AND scan_type = ?
				AND (last_scanned_at IS NULL OR last_scanned_at < ?)`, at, o.Account, o.ResourceID, o.ScanType, at); err != nil {
				return fmt.Errorf("store: observe %s: %w", o.ResourceID, err)
			}
			if o.FindingsBefore.IsZero() {
				continue
			}
			if _, err := s.exec(ctx, tx, `UPDATE findings SET last_observed = ? WHERE account = ? AND resource_id = ? AND status <> ?
				AND last_observed <= ?`, at, o.Account, o.ResourceID, model.FindingClosed, micros(o.FindingsBefore)); err != nil {
				return fmt.Errorf("store: observe findings of %s: %w", o.ResourceID, err)
			}
		}
		return nil
	})
}
