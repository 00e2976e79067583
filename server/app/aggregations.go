package app

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

var aggregationTypes = []store.GroupBy{store.ByResource, store.ByPackage, store.ByVulnerability, store.ByImageRepository,
	store.ByImageLayer, store.ByAccount, store.ByResourceType}

var aggregationSorts = []store.AggregateSort{store.AggSortCritical, store.AggSortHigh, store.AggSortMedium, store.AggSortLow,
	store.AggSortAll, store.AggSortResources, store.AggSortKey}

var aggregationParams = []api.Param{
	{Name: "aggregationType", Required: true, Description: "resource, package, vulnerability, imageRepository, imageLayer, account or resourceType"},
	{Name: "sortBy", Description: "critical (default), high, medium, low, all, affectedResources or key"},
	{Name: "sortOrder", Description: "DESC (default for counts) or ASC (default for key)"},
}

// findingFilterParams document the finding filters of filterFromQuery.
var findingFilterParams = []api.Param{
	{Name: "account", Description: "Narrow to one account the caller may read."},
	{Name: "severity", Description: "CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED (repeat or comma-separate)."},
	{Name: "status", Description: "ACTIVE, SUPPRESSED, CLOSED."},
	{Name: "type", Description: "Finding type."},
	{Name: "vulnerabilityId"}, {Name: "packageName"}, {Name: "packageVersion"}, {Name: "resourceId"},
	{Name: "resourceType", Description: "host, image, function."},
	{Name: "tag", Description: "KEY=VALUE: the resource carries the tag."},
	{Name: "imageRepository"},
	{Name: "fixAvailable", Description: "YES, NO, PARTIAL."},
	{Name: "exploitAvailable", Description: "YES, NO."},
	{Name: "epssMin"}, {Name: "epssMax"}, {Name: "riskScoreMin"}, {Name: "riskScoreMax"},
}

// AggregationList is the answer of ListFindingAggregations.
type AggregationList struct {
	AggregationType store.GroupBy        `json:"aggregationType"`
	SortBy          store.AggregateSort  `json:"sortBy"`
	SortOrder       string               `json:"sortOrder"`
	Groups          []store.AggregateRow `json:"groups"`
	NextToken       string               `json:"nextToken,omitempty"`
}

func (s *Server) listAggregations(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadFindings)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var errs []api.FieldError
	by := store.GroupBy(q.Get("aggregationType"))
	if !slices.Contains(aggregationTypes, by) {
		errs = append(errs, api.FieldError{Field: "aggregationType", Message: fmt.Sprintf("must be one of %v", aggregationTypes)})
	}
	sortBy := store.AggregateSort(q.Get("sortBy"))
	if sortBy == "" {
		sortBy = store.AggSortCritical
	}
	if !slices.Contains(aggregationSorts, sortBy) {
		errs = append(errs, api.FieldError{Field: "sortBy", Message: fmt.Sprintf("must be one of %v", aggregationSorts)})
	}
	order := q.Get("sortOrder")
	if order == "" {
		order = "DESC"
		if sortBy == store.AggSortKey {
			order = "ASC"
		}
	}
	if order != "ASC" && order != "DESC" {
		errs = append(errs, api.FieldError{Field: "sortOrder", Message: "must be ASC or DESC"})
	}
	f, ferr := filterFromQuery(r)
	var p *api.Problem
	if ferr != nil && asProblem(ferr, &p) {
		errs = append(errs, p.Errors...)
	}
	if len(errs) > 0 {
		return api.Validation(errs...)
	}
	size, token, err := api.PageParams(r)
	if err != nil {
		return err
	}
	aq := store.AggregateQuery{GroupBy: by, Filter: f, Sort: sortBy, Limit: size, PageToken: token}
	if sortBy == store.AggSortKey {
		aq.Descending = order == "DESC"
	} else {
		aq.Ascending = order == "ASC"
	}
	page, err := s.Store.AggregatePage(r.Context(), accts, aq)
	if err != nil {
		return storeProblem(err)
	}
	if page.Rows == nil {
		page.Rows = []store.AggregateRow{}
	}
	return api.WriteJSON(w, http.StatusOK, AggregationList{AggregationType: by, SortBy: sortBy, SortOrder: order,
		Groups: page.Rows, NextToken: page.NextToken})
}
