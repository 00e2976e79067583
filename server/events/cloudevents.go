package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// CloudEvents structured-mode JSON (CloudEvents 1.0, JSON event format and HTTP binding).
const (
	SpecVersion = "1.0"
	// ContentType is the HTTP Content-Type of a structured-mode CloudEvent in JSON.
	ContentType = "application/cloudevents+json; charset=utf-8"
	// DataContentType describes the "data" member: Vigil's event payloads are JSON.
	DataContentType = "application/json"
	// AccountAttribute is the extension attribute naming the account the event belongs to.
	// CloudEvents attribute names are lower-case ASCII letters and digits, at most 20 characters.
	AccountAttribute = "vigilaccount"
	// MaxEnvelopeSize bounds what ParseEnvelope reads; also the size above which Encode refuses.
	MaxEnvelopeSize = 1 << 20
)

// Envelope is one CloudEvent in structured mode. Field names are the CloudEvents context attribute
// names: specversion, id, source and type are required; subject, time and datacontenttype optional.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Account         string          `json:"vigilaccount,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// ValidateSource checks a CloudEvents source: a non-empty URI-reference such as "urn:vigil:srv-1"
// or "https://vigil.example.com".
func ValidateSource(source string) error {
	if source == "" {
		return errors.New("events: empty CloudEvents source")
	}
	if len(source) > 1024 {
		return errors.New("events: CloudEvents source longer than 1024 bytes")
	}
	if _, err := url.Parse(source); err != nil {
		return fmt.Errorf("events: CloudEvents source %q is not a URI-reference: %w", source, err)
	}
	return nil
}

// NewEnvelope wraps an outbox event. The time is rendered in UTC (RFC 3339).
func NewEnvelope(source string, ev model.OutboxEvent) (Envelope, error) {
	if err := ValidateSource(source); err != nil {
		return Envelope{}, err
	}
	if ev.ID == "" || ev.Type == "" {
		return Envelope{}, fmt.Errorf("events: outbox event %q has no id or type", ev.ID)
	}
	env := Envelope{
		SpecVersion: SpecVersion,
		ID:          ev.ID,
		Source:      source,
		Type:        ev.Type,
		Subject:     ev.Subject,
		Account:     ev.Account,
	}
	if !ev.Time.IsZero() {
		env.Time = ev.Time.UTC()
	}
	if data := bytes.TrimSpace(ev.Data); len(data) > 0 {
		if !json.Valid(data) {
			return Envelope{}, fmt.Errorf("events: outbox event %s: data is not valid JSON", ev.ID)
		}
		env.DataContentType = DataContentType
		env.Data = data
	}
	return env, nil
}

// Encode renders the envelope as the HTTP body of a structured-mode request.
func (e Envelope) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("events: encode event %s: %w", e.ID, err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("events: event %s is %d bytes, above the %d byte limit", e.ID, len(b), MaxEnvelopeSize)
	}
	return b, nil
}

// ParseEnvelope decodes a structured-mode CloudEvent as a receiver would, checking the required
// attributes. It does not verify the signature: call Verify on the same bytes first.
func ParseEnvelope(body []byte) (Envelope, error) {
	var e Envelope
	if len(body) > MaxEnvelopeSize {
		return e, fmt.Errorf("events: envelope is %d bytes, above the %d byte limit", len(body), MaxEnvelopeSize)
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("events: decode envelope: %w", err)
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return e, fmt.Errorf("events: unsupported specversion %q", e.SpecVersion)
	case e.ID == "" || e.Source == "" || e.Type == "":
		return e, errors.New("events: envelope lacks id, source or type")
	}
	return e, nil
}
