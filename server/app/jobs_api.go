package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
	"github.com/vigil-sec/vigil/server/store"
)

// routesJobs registers the vulnerability database and job endpoints. They concern the server, not
// a tenant: only keys of the server's own account (DefaultAccount) may use them, ADMIN keys to act
// and to list jobs, any of its keys to read the database status.
func (s *Server) routesJobs() {
	rt := s.router
	rt.Handle("POST /v1/vulndb/update", s.postFeedUpdate, api.Success(http.StatusAccepted, ""),
		api.Doc("UpdateVulnerabilityDatabase", "Queue a vulnerability feed update job (server administrators)", "vulndb"))
	rt.Handle("GET /v1/vulndb/status", s.getFeedStatus,
		api.Doc("GetVulnerabilityDatabaseStatus", "Each feed source's age and counts, the last update job, staleness", "vulndb"))
	rt.Handle("GET /v1/jobs", s.listJobs, api.Query(
		api.Param{Name: "kind", Description: "Only jobs of this kind (vulndb.update, reeval.feed, housekeeping)."},
		api.Param{Name: "state", Description: "Only jobs in this state (pending, running, done, dead)."},
		api.Param{Name: "maxResults", Type: "integer", Description: "At most this many, newest first (default 100, at most 1000)."}),
		api.Doc("ListJobs", "The server's background jobs, newest first (server administrators)", "jobs"))
	rt.Handle("GET /v1/jobs/{jobId}", s.getJob, api.Doc("GetJob", "One background job (server administrators)", "jobs"))
}

// serverAdmin allows keys of the server's own account: ADMIN ones, or any when readOnly.
func (s *Server) serverAdmin(r *http.Request, readOnly bool) error {
	p := principal(r)
	if p.Account != DefaultAccount {
		return api.Forbidden("only keys of the server's administrator account may use this endpoint")
	}
	if !readOnly && p.Role != auth.RoleAdmin {
		return api.Forbidden("an ADMIN key is required")
	}
	return nil
}

// JobView is a job as the API shows it.
type JobView struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	State       string          `json:"state"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"maxAttempts"`
	RunAt       time.Time       `json:"runAt"`
	Worker      string          `json:"worker,omitempty"`
	LeaseUntil  *time.Time      `json:"leaseUntil,omitempty"`
	LastError   string          `json:"lastError,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
}

func jobView(j *store.Job) JobView {
	v := JobView{ID: j.ID, Kind: j.Kind, State: j.State, Attempts: j.Attempts, MaxAttempts: j.MaxAttempts,
		RunAt: j.RunAt, Worker: j.Worker, LastError: j.LastError, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	if json.Valid(j.Payload) {
		v.Payload = j.Payload
	}
	if !j.LeaseUntil.IsZero() {
		t := j.LeaseUntil
		v.LeaseUntil = &t
	}
	return v
}

// FeedUpdateQueued answers POST /v1/vulndb/update.
type FeedUpdateQueued struct {
	JobID int64 `json:"jobId"`
	// Created is false when an update was already waiting or running: its ID is returned.
	Created bool `json:"created"`
}

func (s *Server) postFeedUpdate(w http.ResponseWriter, r *http.Request) error {
	if err := s.serverAdmin(r, false); err != nil {
		return err
	}
	var req FeedUpdateRequest
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		if err := api.DecodeJSON(r, &req); err != nil {
			return err
		}
	}
	id, created, err := s.EnqueueFeedUpdate(r.Context(), req)
	if err != nil {
		return err
	}
	api.SetAuditTarget(r, "job/"+strconv.FormatInt(id, 10))
	return api.WriteJSON(w, http.StatusAccepted, FeedUpdateQueued{JobID: id, Created: created})
}

// SourceView is one feed source in GET /v1/vulndb/status.
type SourceView struct {
	Name        string     `json:"name"`
	URL         string     `json:"url,omitempty"`
	Advisories  int        `json:"advisories"`
	Enrichments int        `json:"enrichments"`
	Skipped     int        `json:"skipped"`
	LastAttempt *time.Time `json:"lastAttempt,omitempty"`
	LastSuccess *time.Time `json:"lastSuccess,omitempty"`
	LastChange  *time.Time `json:"lastChange,omitempty"`
	// AgeSeconds is the time since the last success (absent when never successful).
	AgeSeconds *int64 `json:"ageSeconds,omitempty"`
	LastError  string `json:"lastError,omitempty"`
	Stale      bool   `json:"stale"`
}

// FeedStatus answers GET /v1/vulndb/status.
type FeedStatus struct {
	// Version is the vulnerability database's version; FindingsVersion the version whose changes
	// the stored findings reflect (behind while a re-evaluation is due or running).
	Version         int64        `json:"version"`
	FindingsVersion int64        `json:"findingsVersion"`
	MaxAgeSeconds   int64        `json:"maxAgeSeconds"`
	Sources         []SourceView `json:"sources"`
	// Stale: a source has no successful update within the maximum age (or never had one).
	Stale    bool     `json:"stale"`
	Warnings []string `json:"warnings,omitempty"`
	// LastUpdateJob is the newest feed update job; LastReevaluationJob the newest re-evaluation.
	LastUpdateJob       *JobView   `json:"lastUpdateJob,omitempty"`
	LastReevaluationJob *JobView   `json:"lastReevaluationJob,omitempty"`
	UpdateEverySeconds  int64      `json:"updateEverySeconds"`
	NextScheduledUpdate *time.Time `json:"nextScheduledUpdate,omitempty"`
	// Lineage names this process's vulnerability database (vulndb.DB.Lineage); Published is the
	// one the server processes share on PostgreSQL, which processes on other hosts adopt.
	Lineage   string              `json:"lineage"`
	Published *store.VulnDBBundle `json:"published,omitempty"`
}

// FeedStatus reports the vulnerability database's sources and the feed jobs.
func (s *Server) FeedStatus(r *http.Request) (*FeedStatus, error) {
	ctx := r.Context()
	maxAge := orDefault(s.cfg.FeedMaxAge, defaultFeedMaxAge)
	configured := s.cfg.FeedSources
	if s.cfg.FeedMirror != "" {
		configured = nil // updates import the mirror: the sources are whatever it holds
	}
	st, err := s.VulnDB.Status(ctx, configured, maxAge)
	if err != nil {
		return nil, err
	}
	lineage, v, err := s.VulnDB.Lineage(ctx)
	if err != nil {
		return nil, err
	}
	applied, _, err := s.Store.State(ctx, stateFindingsVersion)
	if err != nil {
		return nil, err
	}
	out := &FeedStatus{Version: int64(v), FindingsVersion: applied, MaxAgeSeconds: int64(maxAge / time.Second),
		Sources: []SourceView{}, UpdateEverySeconds: int64(s.cfg.UpdateEvery / time.Second), Lineage: lineage}
	if s.Store.Dialect() == store.Postgres {
		pub, ok, err := s.Store.PublishedVulnDB(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			out.Published = &pub
			switch {
			case pub.Lineage == lineage && pub.Version < int64(v):
				out.Warnings = append(out.Warnings, fmt.Sprintf("this server's vulnerability database (version %d) is newer than the one "+
					"the server processes share (version %d); it publishes it at its next check", v, pub.Version))
			case pub.Lineage != lineage || pub.Version != int64(v):
				out.Warnings = append(out.Warnings, fmt.Sprintf("this server's vulnerability database (version %d) is not yet the one the "+
					"server processes share (version %d, published by %s at %s); it adopts it at its next check", v, pub.Version,
					pub.Publisher, pub.PublishedAt.UTC().Format(time.RFC3339)))
			}
		}
	}
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	for _, src := range st {
		sv := SourceView{Name: src.Name, URL: src.URL, Advisories: src.Advisories, Enrichments: src.Enrichments, Skipped: src.Skipped,
			LastAttempt: opt(src.LastAttempt), LastSuccess: opt(src.LastSuccess), LastChange: opt(src.LastChange),
			LastError: src.LastError, Stale: src.Stale}
		if !src.LastSuccess.IsZero() {
			age := int64(src.Age / time.Second)
			sv.AgeSeconds = &age
		}
		out.Sources = append(out.Sources, sv)
		if src.Stale {
			out.Stale = true
			if src.LastSuccess.IsZero() {
				out.Warnings = append(out.Warnings, fmt.Sprintf("%s has never been updated", src.Name))
			} else {
				out.Warnings = append(out.Warnings, fmt.Sprintf("%s was last updated %s ago (more than %s)", src.Name,
					src.Age.Round(time.Minute), maxAge))
			}
		}
	}
	if len(st) == 0 {
		out.Stale = true
		out.Warnings = append(out.Warnings, "the vulnerability database is empty: no source was ever imported")
	}
	for kind, dst := range map[string]**JobView{JobFeedUpdate: &out.LastUpdateJob, JobReevaluate: &out.LastReevaluationJob} {
		jobs, err := s.Store.RecentJobs(ctx, store.JobFilter{Kind: kind, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(jobs) > 0 {
			jv := jobView(jobs[0])
			*dst = &jv
		}
	}
	if out.Version < out.FindingsVersion {
		out.Warnings = append(out.Warnings, fmt.Sprintf("this server's vulnerability database (version %d) is behind the stored findings "+
			"(version %d): it has not adopted the published database yet, or its file is not shared with the processes of its host", out.Version, out.FindingsVersion))
	}
	if j := out.LastUpdateJob; j != nil && j.LastError != "" && j.State != store.JobDone {
		out.Warnings = append(out.Warnings, fmt.Sprintf("the last feed update (job %d, %s) failed: %s", j.ID, j.State, j.LastError))
	}
	if s.cfg.UpdateEvery > 0 {
		next, err := s.Store.NextDue(ctx, JobFeedUpdate)
		if err != nil {
			return nil, err
		}
		out.NextScheduledUpdate = opt(next)
	}
	return out, nil
}

func (s *Server) getFeedStatus(w http.ResponseWriter, r *http.Request) error {
	if err := s.serverAdmin(r, true); err != nil {
		return err
	}
	st, err := s.FeedStatus(r)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	if err := s.serverAdmin(r, false); err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.JobFilter{Kind: q.Get("kind"), State: q.Get("state")}
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return api.Validation(api.FieldError{Field: "maxResults", Message: "must be 1 to 1000"})
		}
		f.Limit = n
	}
	switch f.State {
	case "", store.JobPending, store.JobRunning, store.JobDone, store.JobDead:
	default:
		return api.Validation(api.FieldError{Field: "state", Message: "must be pending, running, done or dead"})
	}
	jobs, err := s.Store.RecentJobs(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, jobView(j))
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	if err := s.serverAdmin(r, false); err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("jobId"), 10, 64)
	if err != nil {
		return api.NotFound("no such job")
	}
	j, err := s.Store.GetJob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("no such job")
	}
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, jobView(j))
}
