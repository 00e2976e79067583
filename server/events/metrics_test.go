package events

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigil-sec/vigil/model"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OnAttempt(Attempt{SinkID: "s1", EventType: model.EventFindingCreated, Outcome: Delivered, Duration: 30 * time.Millisecond})
	m.OnAttempt(Attempt{SinkID: "s1", EventType: model.EventFindingCreated, Outcome: Delivered, Duration: 40 * time.Millisecond})
	m.OnAttempt(Attempt{SinkID: "s1", EventType: model.EventFindingClosed, Outcome: Retry, Status: 503})
	m.OnAttempt(Attempt{SinkID: "s2", EventType: model.EventFindingClosed, Outcome: Deferred})
	m.OnError(errors.New("database is locked"))

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var v float64
			switch {
			case mt.GetCounter() != nil:
				v = mt.GetCounter().GetValue()
			case mt.GetHistogram() != nil:
				v = float64(mt.GetHistogram().GetSampleCount())
			}
			got = append(got, mf.GetName()+"{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	want := []string{
		"vigil_webhook_attempt_duration_seconds{sink=s1} 3", // deferred attempts made no request
		"vigil_webhook_attempts_total{outcome=deferred,sink=s2,type=vigil.finding.closed} 1",
		"vigil_webhook_attempts_total{outcome=delivered,sink=s1,type=vigil.finding.created} 2",
		"vigil_webhook_attempts_total{outcome=retry,sink=s1,type=vigil.finding.closed} 1",
		"vigil_webhook_dispatcher_errors_total{} 1",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("metrics\n got %q\nwant %q", got, want)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
}
