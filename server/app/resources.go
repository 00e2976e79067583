package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/server/reeval"
	"github.com/vigil-sec/vigil/server/store"
)

var coverageGroups = []store.CoverageGroup{store.CoverageByStatus, store.CoverageByReason, store.CoverageByAccount,
	store.CoverageByResourceType, store.CoverageByScanType}

var coverageStatParams = []api.Param{
	{Name: "groupBy", Required: true, Description: "status, reason, account, resourceType or scanType"},
	{Name: "account", Description: "Narrow to one account the caller may read."},
	{Name: "resourceId"}, {Name: "resourceType"}, {Name: "scanType"},
	{Name: "status", Description: "ACTIVE or INACTIVE."}, {Name: "reason", Description: "A coverage reason code."},
}

// CoverageStatistics is the answer of ListCoverageStatistics.
type CoverageStatistics struct {
	GroupBy store.CoverageGroup `json:"groupBy"`
	Counts  []store.CountRow    `json:"countsByGroup"`
	Total   int                 `json:"totalCounts"`
}

func (s *Server) coverageStatistics(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadCoverage)
	if err != nil {
		return err
	}
	by := store.CoverageGroup(r.URL.Query().Get("groupBy"))
	if !slices.Contains(coverageGroups, by) {
		return api.Validation(api.FieldError{Field: "groupBy", Message: fmt.Sprintf("must be one of %v", coverageGroups)})
	}
	q := store.CoverageQuery{ResourceIDs: queryList(r, "resourceId"), ResourceTypes: queryList(r, "resourceType"),
		ScanTypes: queryList(r, "scanType"), Statuses: queryList(r, "status"), Reasons: queryList(r, "reason")}
	rows, err := s.Store.CoverageStatistics(r.Context(), accts, by, q)
	if err != nil {
		return storeProblem(err)
	}
	out := CoverageStatistics{GroupBy: by, Counts: rows}
	if out.Counts == nil {
		out.Counts = []store.CountRow{}
	}
	for _, c := range rows {
		out.Total += c.Count
	}
	return api.WriteJSON(w, http.StatusOK, out)
}

var resourceParams = []api.Param{
	{Name: "account", Description: "Narrow to one account the caller may read."},
	{Name: "resourceType", Description: "host, image, function (repeat or comma-separate)."},
	{Name: "resourceId", Description: "Resource IDs."},
	{Name: "tag", Description: "KEY=VALUE, or KEY for any value: the resource carries the tag (all given must hold)."},
	{Name: "includeRemoved", Type: "boolean", Description: "Also list removed resources whose findings are awaiting deletion."},
}

// ResourceView is a resource as the API shows it.
type ResourceView struct {
	model.Resource
	// Excluded is set when the resource carries the VigilExclusion tag.
	Excluded bool `json:"excluded"`
}

func viewOf(r model.Resource) ResourceView { return ResourceView{Resource: r, Excluded: r.Excluded()} }

func (s *Server) listResources(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadResources)
	if err != nil {
		return err
	}
	var errs []api.FieldError
	q := store.ResourceQuery{Types: queryList(r, "resourceType"), IDs: queryList(r, "resourceId")}
	for _, t := range q.Types {
		if !resourceTypes[t] {
			errs = append(errs, api.FieldError{Field: "resourceType", Message: fmt.Sprintf("unknown type %q; host, image or function", t)})
		}
	}
	for _, t := range queryList(r, "tag") {
		k, v, _ := strings.Cut(t, "=")
		if k == "" {
			errs = append(errs, api.FieldError{Field: "tag", Message: "must be KEY=VALUE or KEY"})
			continue
		}
		if q.Tags == nil {
			q.Tags = map[string]string{}
		}
		q.Tags[k] = v
	}
	switch r.URL.Query().Get("includeRemoved") {
	case "", "false":
	case "true":
		q.IncludeRemoved = true
	default:
		errs = append(errs, api.FieldError{Field: "includeRemoved", Message: "must be true or false"})
	}
	if len(errs) > 0 {
		return api.Validation(errs...)
	}
	if q.PageSize, q.PageToken, err = api.PageParams(r); err != nil {
		return err
	}
	page, err := s.Store.ListResources(r.Context(), accts, q)
	if err != nil {
		return storeProblem(err)
	}
	out := make([]ResourceView, 0, len(page.Resources))
	for _, res := range page.Resources {
		out = append(out, viewOf(res))
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"resources": out, "nextToken": page.NextToken})
}

// findResource returns the resource of the type and ID from the first of the accounts that holds
// one (removed resources included).
func (s *Server) findResource(ctx context.Context, accts []string, typ, id string) (model.Resource, error) {
	for _, a := range accts {
		res, err := s.Store.GetResource(ctx, a, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && res.Type != typ) {
			continue
		}
		return res, err
	}
	return model.Resource{}, api.NotFound("no such resource")
}

// ResourceDetail is a resource with its coverage and the severity counts of its active findings.
type ResourceDetail struct {
	ResourceView
	Coverage       []model.Coverage     `json:"coverage"`
	ActiveFindings store.SeverityCounts `json:"activeFindings"`
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request) error {
	s.beforeRead(r.Context())
	accts, err := s.scope(r, auth.ReadResources)
	if err != nil {
		return err
	}
	res, err := s.findResource(r.Context(), accts, r.PathValue("resourceType"), r.PathValue("resourceId"))
	if err != nil {
		return err
	}
	out := ResourceDetail{ResourceView: viewOf(res), Coverage: []model.Coverage{}}
	// Coverage and findings are read under their own permissions: a key may read resources and
	// not findings.
	if s.router.Authorize(r, auth.ReadCoverage, res.Account) == nil {
		cov, err := s.Store.ListCoverage(r.Context(), []string{res.Account}, store.CoverageQuery{ResourceIDs: []string{res.ID}})
		if err != nil {
			return err
		}
		out.Coverage = append(out.Coverage, cov.Coverage...)
	}
	if s.router.Authorize(r, auth.ReadFindings, res.Account) == nil {
		agg, err := s.Store.Aggregate(r.Context(), []string{res.Account}, store.AggregateQuery{GroupBy: store.ByResource,
			Filter: model.FindingFilter{ResourceIDs: []string{res.ID}, Statuses: []string{model.FindingActive}}})
		if err != nil {
			return err
		}
		if len(agg) == 1 {
			out.ActiveFindings = agg[0].Counts
		}
	}
	return api.WriteJSON(w, http.StatusOK, out)
}

// deleteResource removes a resource as Inspector treats a terminated one: its open findings close
// at once (with events), its coverage becomes INACTIVE RESOURCE_TERMINATED, re-evaluation forgets
// it, and housekeeping deletes its findings once the removed-resource retention has passed. A new
// inventory for the same resource brings it back.
func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadResources)
	if err != nil {
		return err
	}
	typ, id := r.PathValue("resourceType"), r.PathValue("resourceId")
	api.SetAuditTarget(r, typ+"/"+id)
	res, err := s.findResource(r.Context(), accts, typ, id)
	if err != nil {
		return err
	}
	if err := s.router.Authorize(r, auth.WriteResources, res.Account); err != nil {
		return err
	}
	if err := s.RemoveResource(r.Context(), res); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// RemoveResource marks res removed now and closes what it had open; removing a removed resource
// changes nothing.
func (s *Server) RemoveResource(ctx context.Context, res model.Resource) error {
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
	if res.RemovedAt != nil {
		return nil
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	fs, err := s.Store.ResourceFindings(ctx, res.Account, res.ID)
	if err != nil {
		return err
	}
	closed := findings.CloseRemoved(fs, now)
	// The mark and the closes are one transaction: marked removed with findings left open, a
	// retried removal would find the resource removed already and close nothing.
	changes := store.Changes{Account: res.Account, Upsert: closed.Upserts, Events: closed.Events,
		RemoveResources: []string{res.ID}, RemovedAt: now}
	cov, err := s.Store.ListCoverage(ctx, []string{res.Account}, store.CoverageQuery{ResourceIDs: []string{res.ID}, PageSize: 1000})
	if err != nil {
		return err
	}
	for _, prev := range cov.Coverage {
		next := prev
		next.Status, next.Reason = model.CoverageInactive, model.ReasonResourceTerminated
		c, ev := findings.Changed(&prev, next, now)
		changes.Coverage = append(changes.Coverage, c)
		if ev != nil {
			changes.Events = append(changes.Events, *ev)
		}
	}
	if err := s.Store.ApplyChanges(ctx, changes); err != nil {
		return err
	}
	s.engine.Remove(reeval.Ref{Account: res.Account, ResourceID: res.ID})
	return nil
}

// purgeRemoved deletes a resource removed longer ago than the removed-resource retention, with its
// inventory, findings and coverage (the store cascades), and reports whether it did.
func (s *Server) purgeRemoved(ctx context.Context, res model.Resource, now time.Time) (bool, error) {
	keep := s.cfg.Lifecycle.RemovedRetention
	if keep <= 0 {
		keep = findings.DefaultConfig().RemovedRetention
	}
	if res.RemovedAt == nil || now.Sub(*res.RemovedAt) <= keep {
		return false, nil
	}
	if err := s.Store.DeleteResource(ctx, res.Account, res.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return true, nil
}
