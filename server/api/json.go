package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Validator is implemented by request bodies that check their own semantics; a non-empty result
// becomes a 422 with the field errors.
type Validator interface {
	Validate() []FieldError
}

// DecodeJSON strictly decodes the request body into v:
//   - Content-Type must be application/json or application/<something>+json (415 otherwise);
//   - the body must fit the router's limit (413 otherwise);
//   - unknown fields, type mismatches and syntax errors are 400 naming the field or offset;
//   - exactly one JSON value: trailing data is 400;
//   - then, if v implements Validator, its errors are 422.
//
// The returned error is always a *Problem.
func DecodeJSON(r *http.Request, v any) error {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	if r.Body == nil || r.Body == http.NoBody {
		return BadRequest("request body is empty; a JSON object is required")
	}
	return decodeJSON(r.Body, v)
}

func checkJSONContentType(ct string) error {
	if ct == "" {
		return NewProblem(http.StatusUnsupportedMediaType, "Content-Type is missing; send application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return NewProblem(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q does not parse", ct))
	}
	if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return NewProblem(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %s is not supported; send application/json", mt))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return NewProblem(http.StatusUnsupportedMediaType, fmt.Sprintf("charset %s is not supported; JSON is UTF-8", cs))
	}
	return nil
}

func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	// One value only: anything but whitespace after it is an error.
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return BadRequest("request body has data after the JSON value")
	}
	if val, ok := v.(Validator); ok {
		if fe := val.Validate(); len(fe) > 0 {
			return Validation(fe...)
		}
	}
	return nil
}

func tooLarge(limit int64) *Problem {
	return NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", limit))
}

func jsonProblem(err error) *Problem {
	var (
		mbe *http.MaxBytesError
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		inv *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.Is(err, io.EOF):
		return BadRequest("request body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("request body is truncated JSON")
	case errors.As(err, &syn):
		return BadRequest(fmt.Sprintf("malformed JSON at byte %d", syn.Offset))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return BadRequest(fmt.Sprintf("field %s: expected %s, got JSON %s", field, typ.Type, typ.Value),
			FieldError{Field: field, Message: fmt.Sprintf("expected %s, got %s", typ.Type, typ.Value)})
	case errors.As(err, &inv):
		p := NewProblem(http.StatusInternalServerError, "")
		p.cause = err
		return p
	}
	// encoding/json reports unknown fields only as text: `json: unknown field "x"`.
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		name := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return BadRequest(fmt.Sprintf("unknown field %q", name), FieldError{Field: name, Message: "unknown field"})
	}
	return BadRequest("request body is not valid JSON: " + err.Error())
}

// DecodeJSONBytes is DecodeJSON over a byte slice (for tests and fuzzing).
func DecodeJSONBytes(b []byte, v any) error { return decodeJSON(bytes.NewReader(b), v) }

// JSONHandler adapts a handler taking a decoded body: the body is decoded and validated before
// fn runs, so malformed, oversized, unknown-field or invalid requests never reach it.
func JSONHandler[T any](fn func(w http.ResponseWriter, r *http.Request, body *T) error) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var body T
		if err := DecodeJSON(r, &body); err != nil {
			return err
		}
		return fn(w, r, &body)
	}
}
