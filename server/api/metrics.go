package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// Labels use the route pattern, never the raw path, so cardinality is bounded by the number of
// endpoints.
func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vigil", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by method, route pattern and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route", "code"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(method, route string, code int, d time.Duration) {
	if !knownMethod(method) {
		method = "OTHER" // methods are client-chosen strings: bound the label
	}
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(method, route, c).Inc()
	m.duration.WithLabelValues(method, route, c).Observe(d.Seconds())
}

func knownMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}

// HandleOps registers the operational endpoints, all public: GET /healthz (liveness: the process
// serves HTTP), GET /readyz (readiness: every check in rt.Ready passes) and, when cfg.Gatherer is
// set, GET /metrics (Prometheus text format; aggregate counters only, no tenant data — firewall
// it if even that is too much).
func (rt *Router) HandleOps() {
	rt.Handle("GET /healthz", rt.healthz, Public(), Doc("getHealth", "Liveness probe", "operations"),
		Schemas(nil, statusSchema))
	rt.Handle("GET /readyz", rt.readyz, Public(), Doc("getReadiness", "Readiness probe", "operations"),
		Schemas(nil, statusSchema))
	if rt.cfg.Gatherer != nil {
		rt.HandleHTTP("GET /metrics", promhttp.HandlerFor(rt.cfg.Gatherer, promhttp.HandlerOpts{}),
			Public(), Doc("getMetrics", "Prometheus metrics", "operations"), Success(200, "text/plain"))
	}
}
