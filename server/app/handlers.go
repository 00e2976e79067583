package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/score"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/server/reeval"
	"github.com/vigil-sec/vigil/server/store"
)

func (s *Server) routes() {
	rt := s.router
	rt.Handle("PUT /v1/resources/{resourceType}/{resourceId}/inventory", api.HandlerFunc(s.putInventory),
		api.BodyLimit(64<<20), api.Doc("PutInventory", "Submit a resource's inventory; findings are updated at once", "resources"))
	rt.Handle("GET /v1/findings", s.listFindings, api.Doc("ListFindings", "List findings with filters, sorting and pagination", "findings"))
	rt.Handle("GET /v1/findings/{findingId}", s.getFinding, api.Doc("GetFinding", "A finding with its score breakdown", "findings"))
	rt.Handle("GET /v1/suppression-rules", s.listRules, api.Doc("ListSuppressionRules", "List suppression rules", "suppression"))
	rt.Handle("POST /v1/suppression-rules", api.JSONHandler(s.createRule), api.Success(http.StatusCreated, ""),
		api.Doc("CreateSuppressionRule", "Create a suppression rule; it applies at once", "suppression"))
	rt.Handle("DELETE /v1/suppression-rules/{ruleId}", s.deleteRule, api.Success(http.StatusNoContent, ""),
		api.Doc("DeleteSuppressionRule", "Delete a suppression rule; its findings become active again", "suppression"))
	rt.Handle("GET /v1/coverage", s.listCoverage, api.Doc("ListCoverage", "Coverage per resource and scan type", "coverage"))
	s.routesRead()
	s.routesManagement()
	s.routesJobs()
	for _, r := range s.Agents.AgentRoutes() {
		opts := []api.RouteOption{api.Public(), api.Doc(r.OperationID, r.Summary, "agent")}
		if r.BodyLimit > 0 {
			opts = append(opts, api.BodyLimit(r.BodyLimit))
		}
		rt.Handle(r.Pattern, r.Handler, opts...)
	}
	for _, r := range s.Agents.AdminRoutes() {
		rt.Handle(r.Pattern, r.Handler, api.Doc(r.OperationID, r.Summary, "agents"))
	}
	rt.HandleOps()
	if err := rt.HandleOpenAPI(api.Info{Title: "Vigil", Version: "v1",
		Description: "Continuous vulnerability management: resources, findings, coverage."}); err != nil {
		panic(err) // a route table that cannot be documented is a programming error
	}
}

// scope returns the accounts a listing may span for the caller: its own, and its organization's
// members when it is their delegated administrator. ?account= narrows it to one of them.
func (s *Server) scope(r *http.Request, action auth.Action) ([]string, error) {
	accts, err := auth.Scope(r.Context(), orgDirectory{s.Store}, principal(r), action)
	if err != nil {
		return nil, err
	}
	want := r.URL.Query().Get("account")
	if want == "" {
		return accts, nil
	}
	for _, a := range accts {
		if a == want {
			return []string{want}, nil
		}
	}
	return nil, api.NotFound("no such account")
}

func principal(r *http.Request) auth.Principal {
	p, _ := auth.PrincipalFrom(r.Context())
	return p
}

// InventorySubmission and SubmissionResult are the body and answer of PUT
// /v1/resources/{type}/{id}/inventory; they live in model so that clients need not link the server.
type (
	InventorySubmission = model.InventorySubmission
	SubmissionResult    = model.SubmissionResult
)

var resourceTypes = map[string]bool{model.ResourceHost: true, model.ResourceImage: true, model.ResourceFunction: true}

// lastBody is a resource's last inventory request: a body identical to it, with the same
// Content-Type, decodes to the same submission, so it is not decoded again.
type lastBody struct {
	sum         [sha256.Size]byte
	contentType string
	sub         InventorySubmission // without its packages
	facts       inventoryFacts
}

// errNeedInventory asks for a submission again with its decoded inventory.
var errNeedInventory = errors.New("the inventory is needed")

func (s *Server) putInventory(w http.ResponseWriter, r *http.Request) error {
	typ, id := r.PathValue("resourceType"), r.PathValue("resourceId")
	raw, rerr := io.ReadAll(r.Body)
	key := typ + "/" + id
	var (
		body  InventorySubmission
		known *lastBody
		sum   = sha256.Sum256(raw)
		ct    = r.Header.Get("Content-Type")
	)
	if v, ok := s.bodies.Load(key); ok && rerr == nil && v.(*lastBody).sum == sum && v.(*lastBody).contentType == ct {
		known = v.(*lastBody)
		body = known.sub
	} else {
		// Decoded as api.JSONHandler does; a read error (body too large) becomes its problem.
		var rd io.Reader = bytes.NewReader(raw)
		if rerr != nil {
			rd = io.MultiReader(rd, errReader{rerr})
		}
		r.Body = io.NopCloser(rd)
		if err := api.DecodeJSON(r, &body); err != nil {
			return err
		}
	}
	if !resourceTypes[typ] {
		return api.Validation(api.FieldError{Field: "resourceType", Message: "must be host, image or function"})
	}
	if id == "" || len(id) > 512 {
		return api.Validation(api.FieldError{Field: "resourceId", Message: "must be 1 to 512 characters"})
	}
	acct := body.Account
	if acct == "" {
		acct = principal(r).Account
	}
	if err := s.router.Authorize(r, auth.WriteResources, acct); err != nil {
		return err
	}
	if err := s.requireScanType(r.Context(), acct, typ); err != nil {
		return err
	}
	api.SetAuditTarget(r, typ+"/"+id)
	res := model.Resource{Account: acct, ID: id, Type: typ, Name: body.Name, Tags: body.Tags, Metadata: body.Metadata,
		ImageRepository: body.ImageRepository, ScanMode: firstNonEmpty(body.ScanMode, "upload")}
	var (
		out *SubmissionResult
		err error
	)
	if known != nil {
		out, err = s.submit(r.Context(), res, nil, known.facts)
		if errors.Is(err, errNeedInventory) {
			known = nil
			if err := api.DecodeJSONBytes(raw, &body); err != nil {
				return err
			}
		}
	}
	if known == nil {
		facts := factsOf(&body.Inventory)
		if out, err = s.submit(r.Context(), res, &body.Inventory, facts); err == nil {
			sub := body
			sub.Inventory.Packages = nil
			s.bodies.Store(key, &lastBody{sum: sum, contentType: ct, sub: sub, facts: facts})
		}
	}
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, out)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// inventoryFacts is what a submission needs of an inventory besides its packages.
type inventoryFacts struct {
	hash       string
	os         *model.OS
	ecosystems []string
}

func factsOf(inv *model.Inventory) inventoryFacts {
	return inventoryFacts{hash: InventoryHash(inv), os: inv.OS, ecosystems: ecosystems(inv)}
}

// Submit stores a resource's inventory and brings its findings, coverage and events up to date in
// one transaction. An unchanged inventory of an unchanged resource costs a hash comparison and a
// lastObservedAt update of its open findings; their documents are neither read nor rewritten.
func (s *Server) Submit(ctx context.Context, res model.Resource, inv *model.Inventory) (*SubmissionResult, error) {
	return s.submit(ctx, res, inv, factsOf(inv))
}

// submit is Submit with the inventory's facts computed. inv may be nil for an inventory known to
// be identical to the resource's last one (the same request body): unless the engine and the store
// both hold it (its hash), submit returns errNeedInventory before writing anything.
//
// Submissions share submitMu (fleet-wide passes take it exclusively) and serialise per resource.
func (s *Server) submit(ctx context.Context, res model.Resource, inv *model.Inventory, facts inventoryFacts) (*SubmissionResult, error) {
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	h := fnv.New32a()
	h.Write([]byte(res.Account + "\x00" + res.ID))
	mu := &s.resourceMu[h.Sum32()%uint32(len(s.resourceMu))]
	mu.Lock()
	defer mu.Unlock()
	stored, found, err := s.enterSubmit(ctx, reeval.Ref{Account: res.Account, ResourceID: res.ID})
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	// The engine skips a resource whose InventoryHash it already holds, so the hash must be this
	// inventory's, never one the caller read from the store (that names the previous inventory).
	res.InventoryHash = facts.hash
	sameInventory := found && stored.InventoryHash == facts.hash
	if inv == nil && (!sameInventory || !s.engine.Resubmitted(res, score.Context{})) {
		return nil, errNeedInventory
	}
	changed := !found || !sameResource(stored, res)
	if changed {
		if changed, err = s.Store.SaveResource(ctx, res); err != nil {
			return nil, err
		}
	}
	diff := store.InventoryDiff{NoOp: true}
	if inv != nil && !sameInventory {
		if diff, err = s.Store.PutInventory(ctx, res.Account, res.ID, res.InventoryHash, inv.Packages); err != nil {
			return nil, err
		}
	}
	rules, err := s.Store.ListSuppressionRules(ctx, []string{res.Account})
	if err != nil {
		return nil, err
	}
	res.LastScannedAt = now
	cov := findings.DeriveCoverage(&res, model.ScanPackage, findings.ScanState{LastInventoryAt: now, OS: facts.os,
		Ecosystems: facts.ecosystems}, now, s.cfg.Lifecycle)
	state, err := s.Store.ResourceState(ctx, res.Account, res.ID, model.ScanPackage)
	if err != nil {
		return nil, err
	}
	cov, covEvent := findings.Changed(state.Coverage, cov, now)
	if diff.NoOp && covEvent == nil && rulesSettled(rules, changed, now) && (inv == nil || s.engine.Resubmitted(res, score.Context{})) {
		// Observing changes nothing but observation times (the rules give what they gave last
		// time): they are written with other submissions' shortly (observations).
		s.observeResource(res, now, state)
		return &SubmissionResult{ResourceID: res.ID, Unchanged: true, Findings: state.ActiveFindings}, nil
	}
	if inv == nil {
		inv = &model.Inventory{} // the engine knows it by its hash (Resubmitted above)
	}
	// The engine recognises an unchanged inventory itself and only observes the findings again. A
	// changed inventory reads only the stored findings its changed packages touch (a resource has
	// hundreds); the others are observed below, as an unchanged resubmission's are.
	partial := false
	load := func(need *reeval.Need) ([]model.Finding, error) {
		if need == nil {
			return s.Store.ResourceFindings(ctx, res.Account, res.ID)
		}
		partial = true
		m, err := s.Store.FindingsByVulnerability(ctx, res.Account, map[string][]string{res.ID: need.Vulns})
		return m[res.ID], err
	}
	out, err := s.engine.Submit(ctx, reeval.Submission{Resource: res, Inventory: inv, Rules: rules, Load: load}, now)
	if err != nil {
		s.forgetResource(res)
		return nil, err
	}
	r := out.Result
	changes := store.Changes{Account: res.Account, Upsert: r.Upserts, KeptPackages: r.KeptPackages, Observed: r.Observed, ObservedAt: out.At,
		ObservedBefore: out.At.Add(-s.observeEvery()), Delete: r.Deletes, Events: r.Events, Coverage: []model.Coverage{cov}}
	if covEvent != nil {
		changes.Events = append(changes.Events, *covEvent)
	}
	if err := s.Store.ApplyChanges(ctx, changes); err != nil {
		s.forgetResource(res)
		return nil, err
	}
	if partial {
		s.observeResource(res, now, state)
	}
	after, err := s.Store.ResourceState(ctx, res.Account, res.ID, model.ScanPackage)
	if err != nil {
		return nil, err
	}
	sr := &SubmissionResult{ResourceID: res.ID, Unchanged: diff.NoOp, Findings: after.ActiveFindings}
	for _, e := range changes.Events {
		switch e.Type {
		case model.EventFindingCreated:
			sr.Created++
		case model.EventFindingClosed:
			sr.Closed++
		}
	}
	return sr, nil
}

// forgetResource makes the engine forget a resource whose submission failed after the engine took
// its inventory: the store has the new inventory rows but the findings as they were, and the
// engine would take the same inventory sent again for unchanged and write nothing. Unknown to the
// engine, the resource is evaluated afresh against its stored findings by its next submission, or
// by the next feed pass, which looks for stored inventories the engine does not hold once it is no
// longer sure to hold them all.
func (s *Server) forgetResource(res model.Resource) {
	s.engine.Remove(reeval.Ref{Account: res.Account, ResourceID: res.ID})
	s.engineSynced.Store(false)
}

// observeResource notes that a resource and its open findings were seen at now (findings only
// once lastObservedAt is due, observeEvery); the note is written with others' shortly.
func (s *Server) observeResource(res model.Resource, now time.Time, state store.ResourceState) {
	o := store.Observation{Account: res.Account, ResourceID: res.ID, ScanType: model.ScanPackage, At: now}
	if before := now.Add(-s.observeEvery()); !state.OldestObserved.IsZero() && !state.OldestObserved.After(before) {
		o.FindingsBefore = before
	}
	s.noteObserved(o)
}

// sameResource reports whether a submission leaves the stored resource's own fields as they are
// (SaveResource would not write it).
func sameResource(stored, res model.Resource) bool {
	return stored.Type == res.Type && stored.Name == res.Name && maps.Equal(stored.Tags, res.Tags) &&
		maps.Equal(stored.Metadata, res.Metadata) && stored.ImageRepository == res.ImageRepository &&
		stored.ScanMode == res.ScanMode && stored.RemovedAt == nil
}

// observeEvery is the granularity of lastObservedAt: seeing a finding again moves it only once it
// is at least this old, so that unchanged resubmissions rewrite no finding row.
func (s *Server) observeEvery() time.Duration {
	if s.cfg.ObserveEvery < 0 {
		return 0
	}
	if s.cfg.ObserveEvery == 0 {
		return DefaultObserveEvery
	}
	return s.cfg.ObserveEvery
}

// DefaultObserveEvery is the default granularity of findings' lastObservedAt.
const DefaultObserveEvery = time.Hour

// rulesSettled reports whether applying the rules to a resource's findings again would give what
// it gave before: no rule is past its expiry (housekeeping has not lifted it yet), none selects on
// lastObservedAt (which observing moves), and the resource's own fields, which rules may select
// on, did not change. Rules created or deleted are applied to every resource at once.
func rulesSettled(rules []model.SuppressionRule, resourceChanged bool, now time.Time) bool {
	if len(rules) == 0 {
		return true
	}
	if resourceChanged {
		return false
	}
	for _, r := range rules {
		if !findings.RuleActive(r, now) || r.Filter.LastObserved != nil {
			return false
		}
	}
	return true
}

func ecosystems(inv *model.Inventory) []string {
	set := map[string]bool{}
	for _, p := range inv.Packages {
		set[p.Ecosystem] = true
	}
	out := make([]string, 0, len(set))
	for e := range set {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// InventoryHash is a content hash of what matching depends on: an unchanged resubmission is a no-op.
func InventoryHash(inv *model.Inventory) string {
	keys := make([]string, 0, len(inv.Packages))
	for _, p := range inv.Packages {
		loc := ""
		if len(p.Locations) > 0 {
			loc = p.Locations[0]
		}
		keys = append(keys, strings.Join([]string{p.Ecosystem, p.Name, p.Version, p.SourceName, p.SourceVersion, p.PURL, loc, p.LayerDigest}, "\x00"))
	}
	sort.Strings(keys)
	h := sha256.New()
	if inv.OS != nil {
		fmt.Fprintf(h, "os\x00%s\x00%s\n", inv.OS.Family, inv.OS.Ecosystem)
	}
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// allAccounts lists every account: a system-wide read, used only at start-up to load the fleet.
func (s *Server) allAccounts(ctx context.Context) ([]string, error) {
	rows, err := s.Store.DB().QueryContext(ctx, `SELECT id FROM accounts ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// loadFleet gives the re-evaluation engine every stored inventory, so that feed updates after a
// restart reach every resource. The stored findings are the inventories' last evaluation, so
// nothing is reconciled: the engine only matches each distinct package version once.
func (s *Server) loadFleet(ctx context.Context) error {
	accounts, err := s.allAccounts(ctx)
	if err != nil {
		return err
	}
	for _, acct := range accounts {
		q := store.ResourceQuery{PageSize: 1000}
		for {
			page, err := s.Store.ListResources(ctx, []string{acct}, q)
			if err != nil {
				return err
			}
			for _, r := range page.Resources {
				pkgs, err := s.Store.Inventory(ctx, acct, r.ID)
				if err != nil {
					return err
				}
				if len(pkgs) == 0 {
					continue
				}
				if err := s.engine.Restore(ctx, r, &model.Inventory{Packages: pkgs}, score.Context{}); err != nil {
					return err
				}
			}
			if page.NextToken == "" {
				break
			}
			q.PageToken = page.NextToken
		}
	}
	return nil
}

func (s *Server) listFindings(w http.ResponseWriter, r *http.Request) error {
	s.beforeRead(r.Context())
	accts, err := s.scope(r, auth.ReadFindings)
	if err != nil {
		return err
	}
	f, err := filterFromQuery(r)
	if err != nil {
		return err
	}
	// Every resource is a host, an image or a function (submissions are refused otherwise): naming
	// them all lets a filter on the finding type alone seek through the (resource type, type)
	// index instead of reading every finding of the account when the type is rare.
	if len(f.Types) > 0 && len(f.ResourceTypes) == 0 {
		f.ResourceTypes = []string{model.ResourceHost, model.ResourceImage, model.ResourceFunction}
	}
	size, token, err := api.PageParams(r)
	if err != nil {
		return err
	}
	q := store.FindingQuery{Filter: f, PageSize: size, PageToken: token, Sort: store.SortField(r.URL.Query().Get("sortBy")),
		Ascending: r.URL.Query().Get("sortOrder") == "ASC"}
	page, err := s.Store.ListFindings(r.Context(), accts, q)
	if err != nil {
		return storeProblem(err) // a bad token or sort is the client's
	}
	if page.Findings == nil {
		page.Findings = []model.Finding{}
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"findings": page.Findings, "nextToken": page.NextToken})
}

// filterFromQuery reads a finding filter from query parameters: repeated or comma-separated values
// for lists, min/max pairs for ranges.
func filterFromQuery(r *http.Request) (model.FindingFilter, error) {
	q := r.URL.Query()
	list := func(name string) []string {
		var out []string
		for _, v := range q[name] {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
		}
		return out
	}
	f := model.FindingFilter{
		Severities: list("severity"), Statuses: list("status"), Types: list("type"), VulnerabilityIDs: list("vulnerabilityId"),
		PackageNames: list("packageName"), PackageVersions: list("packageVersion"), ResourceIDs: list("resourceId"),
		ResourceTypes: list("resourceType"), ImageRepositories: list("imageRepository"), FixAvailable: list("fixAvailable"),
		ExploitAvailable: list("exploitAvailable"),
	}
	var errs []api.FieldError
	num := func(name string) *float64 {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, api.FieldError{Field: name, Message: "must be a number"})
			return nil
		}
		return &x
	}
	if lo, hi := num("epssMin"), num("epssMax"); lo != nil || hi != nil {
		f.EPSS = &model.NumberRange{Min: lo, Max: hi}
	}
	if lo, hi := num("riskScoreMin"), num("riskScoreMax"); lo != nil || hi != nil {
		f.RiskScore = &model.NumberRange{Min: lo, Max: hi}
	}
	for _, t := range list("tag") {
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			errs = append(errs, api.FieldError{Field: "tag", Message: "must be KEY=VALUE"})
			continue
		}
		if f.ResourceTags == nil {
			f.ResourceTags = map[string]string{}
		}
		f.ResourceTags[k] = v
	}
	for _, sev := range f.Severities {
		switch sev {
		case model.SeverityInformational, model.SeverityLow, model.SeverityMedium, model.SeverityHigh, model.SeverityCritical, model.SeverityUntriaged:
		default:
			errs = append(errs, api.FieldError{Field: "severity", Message: fmt.Sprintf("unknown severity %q", sev)})
		}
	}
	for _, st := range f.Statuses {
		if st != model.FindingActive && st != model.FindingSuppressed && st != model.FindingClosed {
			errs = append(errs, api.FieldError{Field: "status", Message: fmt.Sprintf("unknown status %q", st)})
		}
	}
	if len(errs) > 0 {
		return f, api.Validation(errs...)
	}
	return f, nil
}

func (s *Server) getFinding(w http.ResponseWriter, r *http.Request) error {
	s.beforeRead(r.Context())
	accts, err := s.scope(r, auth.ReadFindings)
	if err != nil {
		return err
	}
	f, err := s.Store.GetFinding(r.Context(), accts, r.PathValue("findingId"))
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no such finding")
	}
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, f)
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadSuppressionRules)
	if err != nil {
		return err
	}
	rules, err := s.Store.ListSuppressionRules(r.Context(), accts)
	if err != nil {
		return err
	}
	if rules == nil {
		rules = []model.SuppressionRule{}
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"rules": rules})
}

// RuleRequest creates a suppression rule.
type RuleRequest struct {
	Name      string              `json:"name"`
	Reason    string              `json:"reason"`
	Filter    model.FindingFilter `json:"filter"`
	ExpiresAt *time.Time          `json:"expiresAt,omitempty"`
}

// Validate implements api.Validator.
func (r *RuleRequest) Validate() []api.FieldError {
	var errs []api.FieldError
	if strings.TrimSpace(r.Name) == "" {
		errs = append(errs, api.FieldError{Field: "name", Message: "is required"})
	}
	if strings.TrimSpace(r.Reason) == "" {
		errs = append(errs, api.FieldError{Field: "reason", Message: "is required: say why these findings are accepted"})
	}
	if b, _ := json.Marshal(r.Filter); string(b) == "{}" {
		errs = append(errs, api.FieldError{Field: "filter", Message: "must select something; an empty filter would suppress every finding"})
	}
	return errs
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request, body *RuleRequest) error {
	acct := principal(r).Account
	if err := s.router.Authorize(r, auth.WriteSuppressionRules, acct); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	rule := model.SuppressionRule{ID: "sr-" + randomID(), Account: acct, Name: body.Name, Reason: body.Reason,
		Filter: body.Filter, ExpiresAt: body.ExpiresAt, CreatedAt: now, UpdatedAt: now}
	if err := s.Store.PutSuppressionRule(r.Context(), rule); err != nil {
		return err
	}
	api.SetAuditTarget(r, rule.ID)
	if err := s.reapplyRules(r.Context(), acct); err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusCreated, rule)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) error {
	accts, err := s.scope(r, auth.ReadSuppressionRules)
	if err != nil {
		return err
	}
	id := r.PathValue("ruleId")
	api.SetAuditTarget(r, id)
	rule, err := s.findRule(r.Context(), accts, id) // a delegated admin's members' rules too
	if err != nil {
		return err
	}
	acct := rule.Account
	if err := s.router.Authorize(r, auth.WriteSuppressionRules, acct); err != nil {
		return err
	}
	if err := s.Store.DeleteSuppressionRule(r.Context(), acct, id); errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no such rule")
	} else if err != nil {
		return err
	}
	if err := s.reapplyRules(r.Context(), acct); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reapplyRules applies the account's current rules to every resource's findings at once.
func (s *Server) reapplyRules(ctx context.Context, acct string) error {
	s.submitMu.Lock()
	defer s.submitMu.Unlock()
	release, err := s.lockExclusive(ctx)
	if err != nil {
		return err
	}
	defer release()
	rules, err := s.Store.ListSuppressionRules(ctx, []string{acct})
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	q := store.ResourceQuery{PageSize: 1000}
	for {
		page, err := s.Store.ListResources(ctx, []string{acct}, q)
		if err != nil {
			return err
		}
		for _, res := range page.Resources {
			fs, err := s.Store.ResourceFindings(ctx, acct, res.ID)
			if err != nil {
				return err
			}
			result := findings.ApplyRules(fs, rules, &res, now)
			if len(result.Upserts) == 0 && len(result.Events) == 0 {
				continue
			}
			if err := s.Store.ApplyChanges(ctx, store.Changes{Account: acct, Upsert: result.Upserts, Events: result.Events}); err != nil {
				return err
			}
		}
		if page.NextToken == "" {
			return nil
		}
		q.PageToken = page.NextToken
	}
}

func (s *Server) listCoverage(w http.ResponseWriter, r *http.Request) error {
	s.beforeRead(r.Context())
	accts, err := s.scope(r, auth.ReadCoverage)
	if err != nil {
		return err
	}
	size, token, err := api.PageParams(r)
	if err != nil {
		return err
	}
	page, err := s.Store.ListCoverage(r.Context(), accts, store.CoverageQuery{PageSize: size, PageToken: token,
		ResourceIDs: queryList(r, "resourceId"), Statuses: queryList(r, "status"), ResourceTypes: queryList(r, "resourceType"),
		ScanTypes: queryList(r, "scanType"), Reasons: queryList(r, "reason")})
	if err != nil {
		return storeProblem(err)
	}
	if page.Coverage == nil {
		page.Coverage = []model.Coverage{}
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"coverage": page.Coverage, "nextToken": page.NextToken})
}

func randomID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
