package app

import (
	"errors"
	"net/http"
	"strings"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/store"
)

// routesRead registers the read-side API beyond listing: aggregations, finding details, single
// suppression rules and their updates, coverage statistics and resources.
func (s *Server) routesRead() {
	rt := s.router
	rt.Handle("GET /v1/findings/aggregations", s.listAggregations, api.Paginated(), api.Query(aggregationParams...), api.Query(findingFilterParams...),
		api.Doc("ListFindingAggregations", "Severity counts of findings grouped by resource, package, vulnerability, image repository, image layer, account or resource type", "findings"))
	rt.Handle("GET /v1/findings/{findingId}/details", s.getFindingDetails,
		api.Doc("GetFindingDetails", "A finding with its score breakdown and vulnerability intelligence (EPSS, KEV, CWE, references, CVSS)", "findings"))
	rt.Handle("POST /v1/findings/details/batch-get", api.JSONHandler(s.batchGetFindingDetails), api.Reads(),
		api.Doc("BatchGetFindingDetails", "Details of up to 10 findings; unknown ones are listed as errors", "findings"))
	rt.Handle("GET /v1/suppression-rules/{ruleId}", s.getRule, api.Doc("GetSuppressionRule", "One suppression rule", "suppression"))
	rt.Handle("PATCH /v1/suppression-rules/{ruleId}", api.JSONHandler(s.updateRule),
		api.Doc("UpdateSuppressionRule", "Change a suppression rule's name, reason, filter or expiry; it applies at once", "suppression"))
	rt.Handle("GET /v1/coverage/statistics", s.coverageStatistics, api.Query(coverageStatParams...),
		api.Doc("ListCoverageStatistics", "Coverage counts grouped by status, reason, account, resource type or scan type", "coverage"))
	rt.Handle("GET /v1/resources", s.listResources, api.Paginated(), api.Query(resourceParams...),
		api.Doc("ListResources", "List resources with their type, tags and metadata", "resources"))
	rt.Handle("GET /v1/resources/{resourceType}/{resourceId}", s.getResource,
		api.Doc("GetResource", "One resource with its coverage and active finding counts", "resources"))
	rt.Handle("DELETE /v1/resources/{resourceType}/{resourceId}", s.deleteResource, api.Success(http.StatusNoContent, ""),
		api.Doc("DeleteResource", "Remove a resource: its findings close now and are deleted after the retention period", "resources"))
}

// storeProblem maps the store's argument errors to 400s; other errors pass unchanged.
func storeProblem(err error) error {
	switch {
	case errors.Is(err, store.ErrBadToken):
		return api.BadRequest("nextToken is invalid or was made for another query", api.FieldError{Field: "nextToken", Message: "invalid"})
	case errors.Is(err, store.ErrInvalid):
		return api.BadRequest(strings.TrimPrefix(err.Error(), "store: "))
	case errors.Is(err, store.ErrNotFound):
		return api.NotFound(strings.TrimPrefix(err.Error(), "store: "))
	}
	return err
}

// queryList reads a repeated or comma-separated query parameter.
func queryList(r *http.Request, name string) []string {
	var out []string
	for _, v := range r.URL.Query()[name] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// asProblem reports whether err is an API problem, setting *p.
func asProblem(err error, p **api.Problem) bool { return errors.As(err, p) }
