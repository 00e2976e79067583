package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Info is the OpenAPI document's info object.
type Info struct {
	Title       string
	Version     string
	Description string
}

// OpenAPI builds the OpenAPI 3.1 document from the registered routes, so the document cannot
// list an endpoint that does not exist or miss one that does. Every operation documents its
// success response and the problem responses the middleware can produce.
func (rt *Router) OpenAPI(info Info) ([]byte, error) {
	return BuildOpenAPI(info, rt.Routes())
}

// BuildOpenAPI is OpenAPI over an explicit route list.
func BuildOpenAPI(info Info, routes []Route) ([]byte, error) {
	paths := map[string]map[string]any{}
	seenOps := map[string]string{}
	for _, r := range routes {
		path := OpenAPIPath(r.Path)
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		op := map[string]any{"responses": responsesFor(r)}
		if r.OperationID != "" {
			if prev, dup := seenOps[r.OperationID]; dup {
				return nil, fmt.Errorf("operationId %s used by %s and %s", r.OperationID, prev, r.Pattern)
			}
			seenOps[r.OperationID] = r.Pattern
			op["operationId"] = r.OperationID
		}
		if r.Summary != "" {
			op["summary"] = r.Summary
		}
		if len(r.Tags) > 0 {
			op["tags"] = r.Tags
		}
		if r.Public {
			op["security"] = []any{} // explicitly none
		}
		var params []any
		for _, p := range r.PathParams {
			params = append(params, map[string]any{
				"name": p, "in": "path", "required": true, "schema": map[string]any{"type": "string"},
			})
		}
		for _, q := range r.QueryParams {
			typ := q.Type
			if typ == "" {
				typ = "string"
			}
			pm := map[string]any{"name": q.Name, "in": "query", "required": q.Required, "schema": map[string]any{"type": typ}}
			if q.Description != "" {
				pm["description"] = q.Description
			}
			params = append(params, pm)
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.RequestSchema != nil {
			op["requestBody"] = map[string]any{
				"required": true,
				"content":  map[string]any{"application/json": map[string]any{"schema": r.RequestSchema}},
			}
		}
		paths[path][strings.ToLower(r.Method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title": info.Title, "version": info.Version, "description": info.Description,
		},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}, map[string]any{"apiKey": []any{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "An API key: vgl_<keyid>_<secret>"},
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-Api-Key"},
			},
			"schemas": map[string]any{"Problem": problemSchema},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// OpenAPIPath turns a ServeMux path into an OpenAPI path template: "{name...}" → "{name}",
// "{$}" removed.
func OpenAPIPath(p string) string {
	p = strings.ReplaceAll(p, "{$}", "")
	return strings.ReplaceAll(p, "...}", "}")
}

var problemSchema = map[string]any{
	"type":        "object",
	"description": "RFC 9457 problem details",
	"properties": map[string]any{
		"type":     map[string]any{"type": "string", "format": "uri"},
		"title":    map[string]any{"type": "string"},
		"status":   map[string]any{"type": "integer"},
		"detail":   map[string]any{"type": "string"},
		"instance": map[string]any{"type": "string"},
		"errors": map[string]any{"type": "array", "items": map[string]any{
			"type": "object", "required": []string{"field", "message"},
			"properties": map[string]any{"field": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}},
		}},
	},
	"required": []string{"type", "title", "status"},
}

func responsesFor(r Route) map[string]any {
	ok := r.SuccessStatus
	if ok == 0 {
		ok = http.StatusOK
	}
	ct := r.ResponseType
	if ct == "" {
		ct = "application/json"
	}
	success := map[string]any{"description": http.StatusText(ok)}
	if ok != http.StatusNoContent {
		schema := r.ResponseSchema
		if schema == nil {
			schema = map[string]any{}
		}
		success["content"] = map[string]any{ct: map[string]any{"schema": schema}}
	}
	out := map[string]any{strconv.Itoa(ok): success}
	codes := []int{http.StatusTooManyRequests, http.StatusInternalServerError}
	if !r.Public {
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound)
	}
	if r.RequestSchema != nil {
		codes = append(codes, http.StatusBadRequest, http.StatusRequestEntityTooLarge,
			http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity)
	}
	sort.Ints(codes)
	for _, c := range codes {
		out[strconv.Itoa(c)] = map[string]any{
			"description": http.StatusText(c),
			"content": map[string]any{"application/problem+json": map[string]any{
				"schema": map[string]any{"$ref": "#/components/schemas/Problem"},
			}},
		}
	}
	return out
}

// HandleOpenAPI serves the document built from every route registered so far — call it last —
// at GET /v1/openapi.json (public: clients read it before they have a key).
func (rt *Router) HandleOpenAPI(info Info) error {
	// Register first so the document lists itself.
	var doc []byte
	rt.Handle("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(doc)
		return err
	}, Public(), Doc("getOpenAPI", "This OpenAPI document", "operations"))
	var err error
	doc, err = rt.OpenAPI(info)
	return err
}

// OpenAPIOperations lists "METHOD /path" for every operation in an OpenAPI document, sorted; tests
// compare it with the router (see apitest.CheckOpenAPI).
func OpenAPIOperations(doc []byte) ([]string, error) {
	var d struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse OpenAPI document: %w", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.1") {
		return nil, fmt.Errorf("OpenAPI version %q, want 3.1.x", d.OpenAPI)
	}
	var ops []string
	for p, item := range d.Paths {
		for m := range item {
			switch m {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				ops = append(ops, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(ops)
	return ops, nil
}
