package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

// FindingDetails is a finding with the explanation of its score and what the vulnerability
// database knows of its vulnerability now (the finding holds what was known when it was last
// evaluated).
type FindingDetails struct {
	Finding model.Finding `json:"finding"`
	// ScoreBreakdown is the risk score: the CVSS base it started from and every adjustment.
	ScoreBreakdown model.RiskScore `json:"scoreBreakdown"`
	// Vulnerability is the vulnerability intelligence; nil when the database names nothing.
	Vulnerability *VulnerabilityIntel `json:"vulnerability,omitempty"`
}

// VulnerabilityIntel is what the vulnerability database says of one vulnerability.
type VulnerabilityIntel struct {
	ID          string       `json:"id"`
	Aliases     []string     `json:"aliases,omitempty"`
	Description string       `json:"description,omitempty"`
	CVSS        []model.CVSS `json:"cvss,omitempty"`
	CWEs        []string     `json:"cwes,omitempty"`
	References  []string     `json:"references,omitempty"`
	Published   time.Time    `json:"published,omitzero"`
	Modified    time.Time    `json:"modified,omitzero"`
	// EPSS is FIRST's exploit prediction (score and percentile, 0–1, and its date).
	EPSS *model.EPSS `json:"epss,omitempty"`
	// KEV is the CISA Known Exploited Vulnerabilities entry: dateAdded, dueDate, requiredAction,
	// knownRansomwareCampaignUse.
	KEV *model.KEV `json:"kev,omitempty"`
	// Advisories name the vendor and ecosystem records about it.
	Advisories []AdvisorySummary `json:"advisories,omitempty"`
	// Sources lists the enrichment sources that contributed (nvd, kev, epss).
	Sources []string `json:"sources,omitempty"`
}

// AdvisorySummary names one advisory without its version ranges.
type AdvisorySummary struct {
	Source    string    `json:"source"`
	ID        string    `json:"id"`
	Ecosystem string    `json:"ecosystem,omitempty"`
	Package   string    `json:"package,omitempty"`
	Severity  string    `json:"severity,omitempty"`
	Published time.Time `json:"published,omitzero"`
}

func (s *Server) getFindingDetails(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadFindings)
	if err != nil {
		return err
	}
	d, err := s.findingDetails(r.Context(), accts, r.PathValue("findingId"))
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no such finding")
	}
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, d)
}

func (s *Server) findingDetails(ctx context.Context, accts []string, id string) (*FindingDetails, error) {
	s.beforeRead(ctx)
	f, err := s.Store.GetFinding(ctx, accts, id)
	if err != nil {
		return nil, err
	}
	d := &FindingDetails{Finding: f, ScoreBreakdown: f.RiskScore}
	if f.VulnerabilityID == "" {
		return d, nil
	}
	v, err := s.VulnDB.Vulnerability(ctx, f.VulnerabilityID)
	if err != nil {
		return nil, err
	}
	if v == nil {
		// The database no longer names it (withdrawn, or a finding from another database): say
		// what the finding recorded.
		d.Vulnerability = &VulnerabilityIntel{ID: f.VulnerabilityID, Aliases: f.RelatedVulnerabilities, Description: f.Description,
			CVSS: f.CVSS, CWEs: f.CWEs, References: f.References, EPSS: f.EPSS, KEV: f.KEV}
		return d, nil
	}
	vi := &VulnerabilityIntel{ID: v.ID, Aliases: v.Aliases, Description: v.Description, CVSS: v.CVSS, CWEs: v.CWEs,
		References: v.References, Published: v.Published, Modified: v.Modified, EPSS: v.EPSS, KEV: v.KEV}
	for _, a := range v.Advisories {
		vi.Advisories = append(vi.Advisories, AdvisorySummary{Source: a.Source, ID: a.ID, Ecosystem: a.Ecosystem,
			Package: a.Package, Severity: a.Severity, Published: a.Published})
	}
	seen := map[string]bool{}
	for _, e := range v.Enrichments {
		if !seen[e.Source] {
			seen[e.Source] = true
			vi.Sources = append(vi.Sources, e.Source)
		}
	}
	d.Vulnerability = vi
	return d, nil
}

// BatchDetailsRequest asks for the details of up to 10 findings.
type BatchDetailsRequest struct {
	FindingIDs []string `json:"findingIds"`
}

// Validate implements api.Validator.
func (b *BatchDetailsRequest) Validate() []api.FieldError {
	if len(b.FindingIDs) == 0 || len(b.FindingIDs) > 10 {
		return []api.FieldError{{Field: "findingIds", Message: "must name 1 to 10 findings"}}
	}
	for _, id := range b.FindingIDs {
		if strings.TrimSpace(id) == "" {
			return []api.FieldError{{Field: "findingIds", Message: "must not hold empty IDs"}}
		}
	}
	return nil
}

// DetailError says why one finding of a batch has no details.
type DetailError struct {
	FindingID string `json:"findingId"`
	Code      string `json:"errorCode"` // FINDING_DETAILS_NOT_FOUND
	Message   string `json:"errorMessage"`
}

// BatchDetails is the answer of BatchGetFindingDetails, in request order.
type BatchDetails struct {
	Details []*FindingDetails `json:"findingDetails"`
	Errors  []DetailError     `json:"errors"`
}

func (s *Server) batchGetFindingDetails(w http.ResponseWriter, r *http.Request, body *BatchDetailsRequest) error {
	accts, err := s.scope(r, auth.ReadFindings)
	if err != nil {
		return err
	}
	out := BatchDetails{Details: []*FindingDetails{}, Errors: []DetailError{}}
	for _, id := range body.FindingIDs {
		d, err := s.findingDetails(r.Context(), accts, id)
		if errors.Is(err, store.ErrNotFound) {
			// A finding of an account the caller may not read is indistinguishable from none.
			out.Errors = append(out.Errors, DetailError{FindingID: id, Code: "FINDING_DETAILS_NOT_FOUND", Message: "no such finding"})
			continue
		}
		if err != nil {
			return err
		}
		out.Details = append(out.Details, d)
	}
	return api.WriteJSON(w, http.StatusOK, out)
}
