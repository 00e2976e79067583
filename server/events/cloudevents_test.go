package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// A finding event as the server writes it: CVE-2024-3094 (the xz-utils backdoor) on a Debian
// host, fixed in Debian by 5.6.1+really5.4.5-1.
var xzEvent = model.OutboxEvent{
	ID:      "01JDA7Q4M3X9ZT0W6B5R8N2K1C",
	Type:    model.EventFindingCreated,
	Account: "acct-1001",
	Subject: "f-3094-host-7",
	Time:    time.Date(2024, 3, 29, 16, 1, 2, 500_000_000, time.FixedZone("CET", 3600)),
	Data: json.RawMessage(`{"findingId":"f-3094-host-7","vulnerabilityId":"CVE-2024-3094","severity":"CRITICAL",` +
		`"packages":[{"name":"xz-utils","version":"5.6.1-1","fixedInVersion":"5.6.1+really5.4.5-1"}]}`),
}

func TestEnvelopeEncode(t *testing.T) {
	env, err := NewEnvelope("urn:vigil:srv-1", xzEvent)
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Attribute names as in CloudEvents 1.0 §3 (context attributes) and the JSON format §3.
	want := `{"specversion":"1.0","id":"01JDA7Q4M3X9ZT0W6B5R8N2K1C","source":"urn:vigil:srv-1",` +
		`"type":"vigil.finding.created","subject":"f-3094-host-7","time":"2024-03-29T15:01:02.5Z",` +
		`"datacontenttype":"application/json","vigilaccount":"acct-1001","data":` + string(xzEvent.Data) + `}`
	if string(got) != want {
		t.Fatalf("envelope\n got %s\nwant %s", got, want)
	}
	back, err := ParseEnvelope(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != xzEvent.ID || back.Account != "acct-1001" || !back.Time.Equal(xzEvent.Time) ||
		back.Type != model.EventFindingCreated || string(back.Data) != string(xzEvent.Data) {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestEnvelopeOmitsEmpty(t *testing.T) {
	env, err := NewEnvelope("https://vigil.example.com", model.OutboxEvent{ID: "e1", Type: model.EventScanCompleted})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := env.Encode()
	if want := `{"specversion":"1.0","id":"e1","source":"https://vigil.example.com","type":"vigil.scan.completed"}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}

func TestEnvelopeErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source string
		ev     model.OutboxEvent
	}{
		{"no source", "", xzEvent},
		{"bad source", "http://[::1", xzEvent},
		{"no id", "urn:vigil:x", model.OutboxEvent{Type: model.EventFindingClosed}},
		{"no type", "urn:vigil:x", model.OutboxEvent{ID: "e"}},
		{"bad data", "urn:vigil:x", model.OutboxEvent{ID: "e", Type: model.EventFindingClosed, Data: json.RawMessage(`{"a":`)}},
	} {
		if _, err := NewEnvelope(tc.source, tc.ev); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	big := model.OutboxEvent{ID: "e", Type: model.EventFindingUpdated, Data: json.RawMessage(`"` + strings.Repeat("a", MaxEnvelopeSize) + `"`)}
	env, err := NewEnvelope("urn:vigil:x", big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Encode(); err == nil {
		t.Error("oversized envelope encoded")
	}
}

func TestParseEnvelopeErrors(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{"specversion":"0.3","id":"a","source":"s","type":"t"}`,
		`{"specversion":"1.0","source":"s","type":"t"}`, `{"specversion":"1.0","id":"a","type":"t"}`,
		`{"specversion":"1.0","id":"a","source":"s","type":"t","time":"yesterday"}`,
	} {
		if _, err := ParseEnvelope([]byte(body)); err == nil {
			t.Errorf("ParseEnvelope(%s): no error", body)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	env, _ := NewEnvelope("urn:vigil:srv-1", xzEvent)
	b, _ := env.Encode()
	f.Add(b)
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"t","data":null}`))
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"t","time":"2024-03-29T15:01:02Z","vigilaccount":7}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := ParseEnvelope(body)
		if err != nil {
			return
		}
		// Whatever parsed must encode and parse again to the same attributes.
		out, err := e.Encode()
		if err != nil {
			return
		}
		e2, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if e2.ID != e.ID || e2.Source != e.Source || e2.Type != e.Type || !e2.Time.Equal(e.Time) {
			t.Fatalf("round trip changed attributes: %+v vs %+v", e, e2)
		}
	})
}
