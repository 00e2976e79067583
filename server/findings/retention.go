package findings

import (
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Expired returns the IDs of a resource's findings that retention deletes at now: every finding of
// a resource removed more than RemovedRetention ago, and CLOSED findings closed (updatedAt) more
// than ClosedRetention ago. The boundaries are exclusive: a finding closed exactly 30 days ago stays.
func Expired(fs []model.Finding, r *model.Resource, now time.Time, cfg Config) []string {
	cfg = cfg.withDefaults()
	removed := r != nil && r.RemovedAt != nil && now.Sub(*r.RemovedAt) > cfg.RemovedRetention
	var out []string
	for _, f := range fs {
		if removed || (f.Status == model.FindingClosed && now.Sub(f.UpdatedAt) > cfg.ClosedRetention) {
			out = append(out, f.ID)
		}
	}
	return out
}

// CloseRemoved closes the open findings of a resource that was removed (deleted or terminated),
// as Inspector does before deleting them: the same as a reconcile against an empty match.
func CloseRemoved(fs []model.Finding, now time.Time) Result {
	return Reconcile(fs, nil, now, Config{})
}
