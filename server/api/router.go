// Package api is the HTTP plumbing every Vigil endpoint uses: routing on net/http's ServeMux
// patterns, authentication, request ids, structured logs, panic recovery, body limits, strict
// JSON, per-key rate limits, RFC 9457 errors, audit records for mutations, health, metrics,
// signed page tokens and the OpenAPI document.
//
// An endpoint is a HandlerFunc registered with Router.Handle("METHOD /path/{id}", h, options).
// The router wraps it, in this order (outermost first):
//
//	request id → access log → panic recovery            (every request, matched or not)
//	metrics → audit (mutations) → recovery → authentication → rate limit → body limit → h
//
// so a request that fails authentication, the rate limit or the body limit never reaches h, and
// still appears in metrics, logs and (for mutations) the audit trail.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/server/auth"
)

// HandlerFunc is an endpoint. A returned error is sent as a problem (see ProblemFor) unless the
// handler already wrote a response, in which case it is only logged.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Authenticator verifies a presented API key; *auth.Authenticator implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, raw string) (auth.Principal, error)
}

// Config configures a Router. Only Auth is required.
type Config struct {
	Auth Authenticator
	// Org answers organization relations for Router.Authorize; nil means accounts only see
	// themselves.
	Org    auth.Org
	Logger *slog.Logger // nil: discard
	// MaxBodyBytes caps request bodies (default 8 MiB); a route may override with BodyLimit.
	MaxBodyBytes int64
	// Rate is the per-key token bucket: Rate requests per second sustained, Burst at once.
	// Zero values give 50/s and a burst of 100; a negative Rate disables limiting.
	Rate  float64
	Burst int
	// FailedAuthRate and FailedAuthBurst bound failed authentications per client address
	// (default 1/s, burst 20; negative disables). Beyond them the address gets 429 without a
	// key-store lookup.
	FailedAuthRate  float64
	FailedAuthBurst int
	// Auditor receives a record of every mutating request (nil: none).
	Auditor Auditor
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Metrics registers the HTTP metrics (nil: not collected). Gatherer serves /metrics.
	Metrics  prometheus.Registerer
	Gatherer prometheus.Gatherer
	Now      func() time.Time // nil: time.Now
}

// DefaultMaxBodyBytes is the default request body cap.
const DefaultMaxBodyBytes = 8 << 20

// Route describes one registered endpoint.
type Route struct {
	Method  string // GET, POST, …
	Path    string // the ServeMux path pattern: /v1/findings/{findingId}
	Pattern string // Method + " " + Path, as registered and as used in metrics and audit
	// Public routes need no API key (health, metrics, the OpenAPI document).
	Public      bool
	OperationID string
	Summary     string
	Tags        []string
	// RequestSchema and ResponseSchema are JSON Schema fragments for the OpenAPI document.
	RequestSchema  map[string]any
	ResponseSchema map[string]any
	// ResponseType overrides the success content type (default application/json).
	ResponseType string
	// SuccessStatus is the documented success status (default 200).
	SuccessStatus int
	// PathParams are the wildcard names in Path, in order.
	PathParams []string
	// QueryParams document the query string.
	QueryParams []Param
	// Reads marks a non-GET route that changes nothing (a batch read in a POST body): read-only
	// keys may call it.
	Reads     bool
	bodyLimit int64
}

// RouteOption customizes a route at registration.
type RouteOption func(*Route)

// Public marks a route as needing no authentication.
func Public() RouteOption { return func(r *Route) { r.Public = true } }

// Reads marks a POST route that only reads, so that read-only keys may call it.
func Reads() RouteOption { return func(r *Route) { r.Reads = true } }

// Doc sets the route's OpenAPI operation id, summary and tags.
func Doc(operationID, summary string, tags ...string) RouteOption {
	return func(r *Route) { r.OperationID, r.Summary, r.Tags = operationID, summary, tags }
}

// Schemas sets JSON Schema fragments for the request and response bodies (either may be nil).
func Schemas(request, response map[string]any) RouteOption {
	return func(r *Route) { r.RequestSchema, r.ResponseSchema = request, response }
}

// Success sets the documented success status and content type.
func Success(status int, contentType string) RouteOption {
	return func(r *Route) { r.SuccessStatus, r.ResponseType = status, contentType }
}

// Param documents one query parameter.
type Param struct {
	Name        string
	Description string
	Type        string // JSON Schema type: "string" (default), "integer", "boolean"
	Required    bool
}

// Query documents query parameters.
func Query(params ...Param) RouteOption {
	return func(r *Route) { r.QueryParams = append(r.QueryParams, params...) }
}

// Paginated documents maxResults and nextToken (see PageParams).
func Paginated() RouteOption {
	return Query(
		Param{Name: "maxResults", Type: "integer", Description: "Page size, 1 to 500 (default 50)."},
		Param{Name: "nextToken", Description: "The nextToken of the previous page."},
	)
}

// BodyLimit overrides the body cap for one route (e.g. inventory uploads).
func BodyLimit(n int64) RouteOption { return func(r *Route) { r.bodyLimit = n } }

// Router is an http.Handler holding the API's routes and cross-cutting behaviour.
type Router struct {
	cfg     Config
	mux     *http.ServeMux
	routes  []Route
	limiter *limiter
	// failures limits failed authentications per client address, so a flood of made-up keys
	// cannot turn into a flood of key-store lookups.
	failures *limiter
	metrics  *httpMetrics
	Ready    *Readiness
}

// New returns a Router. It panics if cfg.Metrics refuses the collectors (a programming error:
// registering twice).
func New(cfg Config) *Router {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Rate == 0 {
		cfg.Rate = 50
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rt := &Router{cfg: cfg, mux: http.NewServeMux(), Ready: &Readiness{}}
	if cfg.Rate > 0 {
		rt.limiter = newLimiter(cfg.Rate, cfg.Burst)
	}
	if cfg.FailedAuthRate == 0 {
		cfg.FailedAuthRate, cfg.FailedAuthBurst = 1, 20
	}
	if cfg.FailedAuthRate > 0 {
		rt.failures = newLimiter(cfg.FailedAuthRate, max(cfg.FailedAuthBurst, 1))
	}
	if cfg.Metrics != nil {
		rt.metrics = newHTTPMetrics(cfg.Metrics)
	}
	return rt
}

// Routes returns every registered route, in registration order.
func (rt *Router) Routes() []Route { return append([]Route(nil), rt.routes...) }

// Handle registers h for pattern, which must name a method: "GET /v1/findings/{findingId}".
// It panics on a malformed or conflicting pattern, like http.ServeMux.
func (rt *Router) Handle(pattern string, h HandlerFunc, opts ...RouteOption) {
	route := parsePattern(pattern)
	for _, o := range opts {
		o(&route)
	}
	if !route.Public && rt.cfg.Auth == nil {
		panic(fmt.Sprintf("api: route %s needs authentication but Config.Auth is nil", pattern))
	}
	if route.bodyLimit <= 0 {
		route.bodyLimit = rt.cfg.MaxBodyBytes
	}
	var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			sw := w.(*statusWriter)
			if sw.wrote {
				noteError(r.Context(), err)
				return
			}
			WriteError(w, r, err)
		}
	})
	next = rt.bodyLimit(route, next)
	next = rt.rateLimit(next)
	if !route.Public {
		if route.Method != http.MethodGet && route.Method != http.MethodHead && !route.Reads {
			next = refuseReadOnly(next)
		}
		next = rt.authenticate(next)
	}
	next = rt.recover(next)
	next = rt.audit(route, next)
	next = rt.observe(route, next)
	rt.mux.Handle(pattern, next)
	rt.routes = append(rt.routes, route)
}

// HandleHTTP registers a plain http.Handler (e.g. promhttp) with the same wrapping.
func (rt *Router) HandleHTTP(pattern string, h http.Handler, opts ...RouteOption) {
	rt.Handle(pattern, func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}, opts...)
}

func parsePattern(p string) Route {
	method, path, ok := strings.Cut(p, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		panic(fmt.Sprintf("api: pattern %q must be \"METHOD /path\"", p))
	}
	r := Route{Method: method, Path: path, Pattern: p}
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && seg != "{$}" {
			r.PathParams = append(r.PathParams, strings.TrimSuffix(strings.Trim(seg, "{}"), "..."))
		}
	}
	return r
}

// Authorize checks that the request's principal may perform action on targetAccount's data. It
// returns nil or an error that WriteError maps to 403/404.
func (rt *Router) Authorize(r *http.Request, action auth.Action, targetAccount string) error {
	p, ok := auth.PrincipalFrom(r.Context())
	if !ok {
		return fmt.Errorf("%w: unauthenticated", auth.ErrForbidden)
	}
	err := auth.Can(r.Context(), rt.cfg.Org, p, action, targetAccount)
	if err != nil {
		if st := state(r.Context()); st != nil {
			st.denied = err.Error()
		}
	}
	return err
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := rt.cfg.Now()
	remote := clientIP(r, rt.cfg.TrustedProxies)
	st := &reqState{id: requestID(r, remote, rt.cfg.TrustedProxies), remote: remote}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	w.Header().Set("X-Request-Id", st.id)
	sw := &statusWriter{ResponseWriter: w}
	defer rt.logRequest(sw, r, st, start)
	defer func() {
		if v := recover(); v != nil {
			rt.panicked(sw, r, v)
		}
	}()
	if _, pattern := rt.mux.Handler(r); pattern == "" {
		rt.unmatched(sw, r)
		return
	}
	rt.mux.ServeHTTP(sw, r)
	if !st.routed && rt.metrics != nil {
		rt.metrics.observe(r.Method, "unmatched", sw.code(), rt.cfg.Now().Sub(start))
	}
}

// unmatched answers 404 and 405 as problems instead of ServeMux's plain text.
func (rt *Router) unmatched(w *statusWriter, r *http.Request) {
	rec := &discardWriter{h: http.Header{}, code: http.StatusNotFound}
	rt.mux.ServeHTTP(rec, r)
	if allow := rec.h.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	status := rec.code
	detail := "no such endpoint: " + r.URL.Path
	if status == http.StatusMethodNotAllowed {
		detail = fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)
	}
	WriteProblem(w, r, NewProblem(status, detail))
	if rt.metrics != nil {
		rt.metrics.observe(r.Method, "unmatched", status, 0)
	}
}

// discardWriter keeps only the status and headers of ServeMux's own 404/405 answer.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func (rt *Router) panicked(w *statusWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	rt.cfg.Logger.ErrorContext(r.Context(), "panic serving request",
		"request_id", RequestID(r.Context()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if !w.wrote {
		WriteProblem(w, r, NewProblem(http.StatusInternalServerError, ""))
	}
}

func (rt *Router) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				rt.panicked(w.(*statusWriter), r, v)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (rt *Router) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, perr := presentedKey(r)
		if perr != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			WriteProblem(w, r, perr)
			return
		}
		ipKey := "ip:" + state(r.Context()).remote.String()
		if rt.failures != nil {
			if blocked, wait := rt.failures.exhausted(ipKey, rt.cfg.Now()); blocked {
				rt.tooMany(w, r, wait, "too many failed authentications from this address")
				return
			}
		}
		p, err := rt.cfg.Auth.Authenticate(r.Context(), raw)
		if err != nil {
			if !auth.IsAuthError(err) {
				WriteError(w, r, fmt.Errorf("authenticate: %w", err))
				return
			}
			if rt.failures != nil {
				rt.failures.allow(ipKey, rt.cfg.Now())
			}
			noteError(r.Context(), err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil", error="invalid_token"`)
			// One message for every failure: the client learns nothing about which part failed.
			WriteProblem(w, r, NewProblem(http.StatusUnauthorized, "the API key is invalid, expired or revoked"))
			return
		}
		state(r.Context()).principal = p
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// refuseReadOnly answers 403 to a read-only key before the handler runs: whatever a mutating route
// would do, and whether or not its object exists, a read-only key may not do it.
func refuseReadOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, _ := auth.PrincipalFrom(r.Context()); p.Role == auth.RoleReadOnly {
			WriteProblem(w, r, NewProblem(http.StatusForbidden, "a read-only key may not change anything"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// presentedKey reads the key from "Authorization: Bearer <key>" or "X-Api-Key: <key>".
func presentedKey(r *http.Request) (string, *Problem) {
	authz := r.Header.Values("Authorization")
	xkey := r.Header.Values("X-Api-Key")
	if len(authz)+len(xkey) == 0 {
		return "", NewProblem(http.StatusUnauthorized, "send the API key as \"Authorization: Bearer <key>\" or \"X-Api-Key: <key>\"")
	}
	if len(authz)+len(xkey) > 1 {
		return "", NewProblem(http.StatusUnauthorized, "send exactly one API key")
	}
	if len(xkey) == 1 {
		return strings.TrimSpace(xkey[0]), nil
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(authz[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", NewProblem(http.StatusUnauthorized, "the Authorization scheme must be Bearer")
	}
	return strings.TrimSpace(cred), nil
}

func (rt *Router) rateLimit(next http.Handler) http.Handler {
	if rt.limiter == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Keyed on the API key, else on a verified client certificate (an agent: many hosts share
		// one NAT address, and 5,000 agents' heartbeats from it exceed any per-address rate);
		// other public requests fall back to the client address.
		key := "ip:" + state(r.Context()).remote.String()
		if p, ok := auth.PrincipalFrom(r.Context()); ok {
			key = "key:" + p.KeyID
		} else if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			key = "cert:" + r.TLS.VerifiedChains[0][0].SerialNumber.Text(16)
		}
		if ok, wait := rt.limiter.allow(key, rt.cfg.Now()); !ok {
			rt.tooMany(w, r, wait, fmt.Sprintf("rate limit of %g requests per second exceeded", rt.cfg.Rate))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rt *Router) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, detail string) {
	p := NewProblem(http.StatusTooManyRequests, detail)
	p.retryAfter = max(1, int((wait+time.Second-1)/time.Second))
	WriteProblem(w, r, p)
}

func (rt *Router) bodyLimit(route Route, next http.Handler) http.Handler {
	limit := route.bodyLimit
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			WriteProblem(w, r, tooLarge(limit))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}

func (rt *Router) observe(route Route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := state(r.Context())
		st.routed = true
		st.route = route.Pattern
		start := rt.cfg.Now()
		next.ServeHTTP(w, r)
		if rt.metrics != nil {
			rt.metrics.observe(r.Method, route.Pattern, w.(*statusWriter).code(), rt.cfg.Now().Sub(start))
		}
	})
}

func (rt *Router) logRequest(w *statusWriter, r *http.Request, st *reqState, start time.Time) {
	status := w.code()
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("request_id", st.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", st.route),
		slog.Int("status", status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", rt.cfg.Now().Sub(start)),
		slog.String("remote", st.remote.String()),
	}
	if st.principal.KeyID != "" {
		attrs = append(attrs, slog.String("account", st.principal.Account), slog.String("key_id", st.principal.KeyID))
	}
	if st.err != nil {
		attrs = append(attrs, slog.String("error", st.err.Error()))
	}
	if st.denied != "" {
		attrs = append(attrs, slog.String("denied", st.denied))
	}
	rt.cfg.Logger.LogAttrs(r.Context(), level, "http request", attrs...)
}

// reqState is per-request, mutable state shared by the middleware layers.
type reqState struct {
	id          string
	remote      netip.Addr
	route       string
	routed      bool
	principal   auth.Principal
	err         error
	denied      string
	auditTarget string
}

type stateKey struct{}

func state(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	if st == nil {
		return &reqState{}
	}
	return st
}

func noteError(ctx context.Context, err error) {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok && st.err == nil {
		st.err = err
	}
}

// RequestID returns the request's id ("" outside a Router).
func RequestID(ctx context.Context) string {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return st.id
	}
	return ""
}

// requestID keeps an incoming X-Request-Id only from a trusted proxy (so a log line cannot be
// made to collide with another request's) and only if it is short and plain; otherwise it draws
// a fresh one.
func requestID(r *http.Request, remote netip.Addr, trusted []netip.Prefix) string {
	if in := r.Header.Get("X-Request-Id"); in != "" && len(in) <= 64 && peerTrusted(r, trusted) {
		ok := true
		for _, c := range in {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				ok = false
				break
			}
		}
		if ok {
			return in
		}
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for streaming handlers.
func (w *statusWriter) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
