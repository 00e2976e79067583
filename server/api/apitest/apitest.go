// Package apitest holds reusable test helpers for Vigil's API: the OpenAPI consistency check and
// the foreign-account walk that every endpoint must pass.
package apitest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/server/api"
)

// CheckOpenAPI fails t when doc (an OpenAPI 3.1 document) and routes disagree: an operation in
// the document without a route, or a route missing from the document.
func CheckOpenAPI(t testing.TB, doc []byte, routes []api.Route) {
	t.Helper()
	ops, err := api.OpenAPIOperations(doc)
	if err != nil {
		t.Fatal(err)
	}
	var reg []string
	for _, r := range routes {
		reg = append(reg, r.Method+" "+api.OpenAPIPath(r.Path))
	}
	slices.Sort(reg)
	for _, r := range reg {
		if _, found := slices.BinarySearch(ops, r); !found {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for _, o := range ops {
		if _, found := slices.BinarySearch(reg, o); !found {
			t.Errorf("OpenAPI operation %s has no route", o)
		}
	}
}

// Walk configures ForeignAccountWalk.
type Walk struct {
	// ForeignKey is an API key (ADMIN, to prove scoping rather than role) of an account that
	// must see none of the victim's data.
	ForeignKey string
	// OwnerKey, if set, is a key of the victim account: every GET is repeated with it and must not
	// be 401/403/404, which proves the walk addressed objects that exist.
	OwnerKey string
	// PathValue returns the victim's value for a path wildcard of route ("resourceId" → an id the
	// victim owns).
	PathValue func(route api.Route, param string) string
	// Query returns the query string for route (without "?"), e.g. "account=<victim>" for
	// listings that take an account parameter. Nil: none.
	Query func(route api.Route) string
	// Body returns a valid request body for route (nil: "{}"). It must be valid so that a 400
	// or 422 cannot mask a missing authorization check.
	Body func(route api.Route) []byte
	// Skip excludes routes that have no victim data (e.g. "create in my own account").
	Skip func(route api.Route) bool
}

// ForeignAccountWalk sends every non-public route to h with the foreign key, aimed at the
// victim's objects, and fails t unless the answer is 403 or 404. It returns how many routes it
// checked so a test can assert that the walk was not vacuous.
func ForeignAccountWalk(t testing.TB, h http.Handler, routes []api.Route, w Walk) int {
	t.Helper()
	n := 0
	var gets []*http.Request
	for _, r := range routes {
		if r.Public || (w.Skip != nil && w.Skip(r)) {
			continue
		}
		req := build(t, r, w)
		gets = appendIfGet(gets, r, w)
		req.Header.Set("Authorization", "Bearer "+w.ForeignKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		n++
		if rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
			t.Errorf("%s as a foreign account: status %d, want 403 or 404; body %s",
				r.Pattern, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
	if w.OwnerKey != "" {
		for _, req := range gets {
			req.Header.Set("Authorization", "Bearer "+w.OwnerKey)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
				t.Errorf("%s %s as the owner: status %d; the walk is not addressing real objects",
					req.Method, req.URL, rec.Code)
			}
		}
	}
	return n
}

func appendIfGet(list []*http.Request, r api.Route, w Walk) []*http.Request {
	if r.Method != http.MethodGet {
		return list
	}
	return append(list, build(nil, r, w))
}

func build(t testing.TB, r api.Route, w Walk) *http.Request {
	path := r.Path
	for _, p := range r.PathParams {
		v := "x"
		if w.PathValue != nil {
			v = w.PathValue(r, p)
		}
		for _, form := range []string{"{" + p + "}", "{" + p + "...}"} {
			path = strings.Replace(path, form, v, 1)
		}
	}
	path = strings.ReplaceAll(path, "{$}", "")
	if w.Query != nil {
		if q := w.Query(r); q != "" {
			path += "?" + q
		}
	}
	var body io.Reader
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodDelete {
		b := []byte("{}")
		if w.Body != nil {
			if bb := w.Body(r); bb != nil {
				b = bb
			}
		}
		body = bytes.NewReader(b)
	}
	req := httptest.NewRequest(r.Method, "http://vigil.test"+path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = "192.0.2.10:40000"
	if t != nil {
		t.Logf("walk %s → %s", r.Pattern, fmt.Sprint(req.URL))
	}
	return req
}
