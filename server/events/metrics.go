package events

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Prometheus collectors for a dispatcher. Wire them with
//
//	m, err := events.NewMetrics(reg)
//	cfg.OnAttempt, cfg.OnError = m.OnAttempt, m.OnError
//
// Labels stay low-cardinality: the sink id (operators create a handful), the event type (five) and
// the outcome (five). Event ids never become labels.
type Metrics struct {
	Attempts *prometheus.CounterVec   // vigil_webhook_attempts_total{sink,type,outcome}
	Duration *prometheus.HistogramVec // vigil_webhook_attempt_duration_seconds{sink}
	Errors   prometheus.Counter       // vigil_webhook_dispatcher_errors_total
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_webhook_attempts_total",
			Help: "Webhook delivery attempts by sink, event type and outcome (delivered, retry, deferred, dead_letter, sink_disabled).",
		}, []string{"sink", "type", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_webhook_attempt_duration_seconds",
			Help:    "Time from sending a webhook request to reading its reply (or failing).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_dispatcher_errors_total",
			Help: "Outbox and sink-store errors the webhook dispatcher survived.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Attempts, m.Duration, m.Errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// OnAttempt counts an attempt; use it as Config.OnAttempt.
func (m *Metrics) OnAttempt(a Attempt) {
	m.Attempts.WithLabelValues(a.SinkID, a.EventType, string(a.Outcome)).Inc()
	if a.Outcome != Deferred {
		m.Duration.WithLabelValues(a.SinkID).Observe(a.Duration.Seconds())
	}
}

// OnError counts a dispatcher error; use it as Config.OnError (wrap it to also log).
func (m *Metrics) OnError(error) { m.Errors.Inc() }
