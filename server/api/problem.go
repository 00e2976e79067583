package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/vigil-sec/vigil/server/auth"
)

// Problem is an RFC 9457 problem details object, the body of every error response
// (Content-Type: application/problem+json).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Instance is the request id, so a user can quote it and an operator can find the log line.
	Instance string `json:"instance,omitempty"`
	// Errors lists field-level validation failures (400 for syntax, 422 for semantics).
	Errors []FieldError `json:"errors,omitempty"`

	retryAfter int // seconds, for 429/503
	cause      error
}

// FieldError names one invalid field with a JSON Pointer-like path ("filter.severities[2]").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// Unwrap gives the underlying error, if any (only for logs; never shown).
func (p *Problem) Unwrap() error { return p.cause }

// ProblemTypeBase prefixes problem type URIs. They are URNs: stable identifiers that need no web
// site; the title says what they mean.
const ProblemTypeBase = "urn:vigil:problem:"

// Problem types, one per status the API uses.
var problemTypes = map[int]struct{ slug, title string }{
	http.StatusBadRequest:            {"bad-request", "Bad request"},
	http.StatusUnauthorized:          {"unauthenticated", "Missing or invalid API key"},
	http.StatusForbidden:             {"forbidden", "Not allowed"},
	http.StatusNotFound:              {"not-found", "Not found"},
	http.StatusMethodNotAllowed:      {"method-not-allowed", "Method not allowed"},
	http.StatusConflict:              {"conflict", "Conflict"},
	http.StatusRequestEntityTooLarge: {"body-too-large", "Request body too large"},
	http.StatusUnsupportedMediaType:  {"unsupported-media-type", "Unsupported media type"},
	http.StatusUnprocessableEntity:   {"validation-failed", "Validation failed"},
	http.StatusTooManyRequests:       {"rate-limited", "Too many requests"},
	http.StatusInternalServerError:   {"internal", "Internal server error"},
	http.StatusServiceUnavailable:    {"unavailable", "Service unavailable"},
}

// NewProblem builds a problem for status with an optional detail.
func NewProblem(status int, detail string) *Problem {
	t, ok := problemTypes[status]
	if !ok {
		return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
	}
	return &Problem{Type: ProblemTypeBase + t.slug, Title: t.title, Status: status, Detail: detail}
}

// Convenience constructors.
func BadRequest(detail string, fields ...FieldError) *Problem {
	p := NewProblem(http.StatusBadRequest, detail)
	p.Errors = fields
	return p
}
func Validation(fields ...FieldError) *Problem {
	p := NewProblem(http.StatusUnprocessableEntity, "the request is well-formed but some fields are invalid")
	p.Errors = fields
	return p
}
func NotFound(detail string) *Problem  { return NewProblem(http.StatusNotFound, detail) }
func Forbidden(detail string) *Problem { return NewProblem(http.StatusForbidden, detail) }
func Conflict(detail string) *Problem  { return NewProblem(http.StatusConflict, detail) }

// Sentinel errors handlers may return (wrapped); ProblemFor maps them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// ProblemFor maps any error a handler returns to the problem to send. Unknown errors become a
// 500 whose detail does not leak the error text (it is logged instead).
func ProblemFor(err error) *Problem {
	var p *Problem
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, auth.ErrNotVisible), errors.Is(err, ErrNotFound):
		return &Problem{Type: ProblemTypeBase + "not-found", Title: "Not found", Status: 404, cause: err}
	case errors.Is(err, auth.ErrForbidden):
		q := Forbidden("this API key may not perform this operation")
		q.cause = err
		return q
	case errors.Is(err, ErrConflict):
		q := Conflict(err.Error())
		q.cause = err
		return q
	case errors.Is(err, context.Canceled):
		// The client went away; the status is for logs and metrics only (nginx's 499 is not
		// standard, so 503).
		q := NewProblem(http.StatusServiceUnavailable, "request cancelled")
		q.cause = err
		return q
	}
	q := NewProblem(http.StatusInternalServerError, "")
	q.cause = err
	return q
}

// WriteProblem sends p (filling Instance with the request id).
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = RequestID(r.Context())
	}
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if r != nil && p.cause != nil {
		noteError(r.Context(), p.cause)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteError maps err with ProblemFor and sends it.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	WriteProblem(w, r, ProblemFor(err))
}

// WriteJSON sends v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}
