package findings

import (
	"encoding/json"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/version"
)

// ScanState is what the server knows of a resource's latest inventory for one scan type.
type ScanState struct {
	// LastInventoryAt is when the latest inventory was received; zero when none ever was.
	LastInventoryAt time.Time
	// OS is the inventory's operating system; nil when none was detected.
	OS *model.OS
	// Ecosystems are the package ecosystems the inventory holds ("npm", "Debian:12", ...).
	Ecosystems []string
	// InProgress is set while a scan of the resource is running.
	InProgress bool
	// Failed is set when the latest scan attempt failed on the server's side.
	Failed bool
}

// DeriveCoverage computes a resource's coverage for one scan type, the first rule that applies
// winning:
//
//  1. removed resource → INACTIVE RESOURCE_TERMINATED
//  2. tag VigilExclusion → INACTIVE EXCLUDED_BY_TAG
//  3. a scan failed on the server's side → INACTIVE INTERNAL_ERROR
//  4. no inventory yet → ACTIVE SCAN_IN_PROGRESS while one runs, else ACTIVE PENDING_INITIAL_SCAN
//  5. latest inventory older than StaleAfter (7 days) → INACTIVE STALE_INVENTORY
//  6. nothing Vigil can match: no OS ecosystem (unknown or unsupported distribution) and, for
//     images and functions, no package of an ecosystem with a version scheme → INACTIVE UNSUPPORTED_OS.
//     A host is judged on its OS alone, as Inspector does; an image or function may be
//     distroless and still covered through its language packages.
//  7. otherwise ACTIVE SUCCESSFUL.
//
// UpdatedAt is left zero; Changed sets it.
func DeriveCoverage(r *model.Resource, scanType string, s ScanState, now time.Time, cfg Config) model.Coverage {
	cfg = cfg.withDefaults()
	c := model.Coverage{Account: r.Account, ResourceID: r.ID, ResourceType: r.Type, ScanType: scanType,
		ScanMode: r.ScanMode, LastScannedAt: s.LastInventoryAt}
	set := func(status, reason string) model.Coverage {
		c.Status, c.Reason = status, reason
		return c
	}
	switch {
	case r.RemovedAt != nil && !r.RemovedAt.After(now):
		return set(model.CoverageInactive, model.ReasonResourceTerminated)
	case r.Excluded():
		return set(model.CoverageInactive, model.ReasonExcludedByTag)
	case s.Failed:
		return set(model.CoverageInactive, model.ReasonInternalError)
	case s.LastInventoryAt.IsZero() && s.InProgress:
		return set(model.CoverageActive, model.ReasonScanInProgress)
	case s.LastInventoryAt.IsZero():
		return set(model.CoverageActive, model.ReasonPendingInitialScan)
	case now.Sub(s.LastInventoryAt) > cfg.StaleAfter:
		return set(model.CoverageInactive, model.ReasonStaleInventory)
	case !supported(r, s):
		return set(model.CoverageInactive, model.ReasonUnsupportedOS)
	}
	return set(model.CoverageActive, model.ReasonSuccessful)
}

func supported(r *model.Resource, s ScanState) bool {
	if s.OS != nil && s.OS.Ecosystem != "" {
		if _, ok := version.Lookup(s.OS.Ecosystem); ok {
			return true
		}
	}
	if r.Type == model.ResourceHost {
		return false
	}
	for _, e := range s.Ecosystems {
		if _, ok := version.Lookup(e); ok {
			return true
		}
	}
	return false
}

// Changed compares a newly derived coverage with the stored one (nil when there is none). When
// status or reason changed it returns the coverage with UpdatedAt = now and a
// vigil.coverage.changed event (subject: the resource ID; data: the new coverage). Otherwise it
// returns the new coverage with the stored UpdatedAt and no event: a new lastScannedAt alone is
// written but not announced.
func Changed(prev *model.Coverage, next model.Coverage, now time.Time) (model.Coverage, *model.OutboxEvent) {
	if prev != nil && prev.Status == next.Status && prev.Reason == next.Reason {
		next.UpdatedAt = prev.UpdatedAt
		return next, nil
	}
	next.UpdatedAt = now
	data, err := json.Marshal(next)
	if err != nil {
		data = []byte("null")
	}
	return next, &model.OutboxEvent{
		ID:      EventID(model.EventCoverageChanged, next.Account+"\x00"+next.ResourceID+"\x00"+next.ScanType+"\x00"+string(data), now),
		Type:    model.EventCoverageChanged,
		Account: next.Account,
		Subject: next.ResourceID,
		Time:    now.UTC(),
		Data:    data,
	}
}
