package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers set on every delivery.
const (
	HeaderSignature = "Vigil-Signature"
	HeaderEventID   = "Vigil-Event-Id"
	HeaderAttempt   = "Vigil-Delivery-Attempt"
)

// DefaultTolerance is how far a signature's timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Limits on a signature header, so that a hostile header costs bounded work.
const (
	maxSignatureHeader = 4096
	maxSignatures      = 8
)

// Errors returned by Verify and ParseSignature; test with errors.Is.
var (
	ErrNoSignature        = errors.New("events: no signature header")
	ErrMalformedSignature = errors.New("events: malformed signature header")
	ErrExpiredSignature   = errors.New("events: signature timestamp outside the tolerance window")
	ErrSignatureMismatch  = errors.New("events: no signature matches")
)

// Signature is a parsed Vigil-Signature header: t=<unix seconds>,v1=<hex>[,v1=<hex>...].
// Several v1 values appear while a sink's secret is being rotated (one per secret).
type Signature struct {
	Timestamp time.Time
	V1        [][]byte
}

// mac computes HMAC-SHA256(secret, "<unix>.<body>").
func mac(secret string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(strconv.FormatInt(unix, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Sign returns the Vigil-Signature header value for body sent at t, with one v1 value per
// non-empty secret.
func Sign(body []byte, t time.Time, secrets ...string) string {
	unix := t.Unix()
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(unix, 10))
	for _, s := range secrets {
		if s == "" {
			continue
		}
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s, unix, body)))
	}
	return b.String()
}

// ParseSignature parses a Vigil-Signature header. Unknown schemes (say a future "v2=") are
// ignored so that senders can add them without breaking receivers; a header without any v1 value
// is malformed.
func ParseSignature(header string) (Signature, error) {
	var sig Signature
	header = strings.TrimSpace(header)
	if header == "" {
		return sig, ErrNoSignature
	}
	if len(header) > maxSignatureHeader {
		return sig, fmt.Errorf("%w: longer than %d bytes", ErrMalformedSignature, maxSignatureHeader)
	}
	haveT := false
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return sig, fmt.Errorf("%w: element %q is not key=value", ErrMalformedSignature, part)
		}
		switch k {
		case "t":
			if haveT {
				return sig, fmt.Errorf("%w: two timestamps", ErrMalformedSignature)
			}
			unix, err := strconv.ParseInt(v, 10, 64)
			// Bounds keep time arithmetic from overflowing (years 1970 to 9999).
			if err != nil || unix < 0 || unix > 253402300799 {
				return sig, fmt.Errorf("%w: bad timestamp %q", ErrMalformedSignature, v)
			}
			sig.Timestamp, haveT = time.Unix(unix, 0), true
		case "v1":
			if len(sig.V1) == maxSignatures {
				return sig, fmt.Errorf("%w: more than %d v1 values", ErrMalformedSignature, maxSignatures)
			}
			d, err := hex.DecodeString(v)
			if err != nil || len(d) != sha256.Size {
				return sig, fmt.Errorf("%w: v1 is not a hex SHA-256 HMAC", ErrMalformedSignature)
			}
			sig.V1 = append(sig.V1, d)
		}
	}
	if !haveT {
		return sig, fmt.Errorf("%w: no timestamp", ErrMalformedSignature)
	}
	if len(sig.V1) == 0 {
		return sig, fmt.Errorf("%w: no v1 signature", ErrMalformedSignature)
	}
	return sig, nil
}

// Verify checks a Vigil-Signature header against the exact request body as received. It accepts
// the request when any v1 value matches any of the receiver's secrets (so either side can rotate)
// and the timestamp is within tolerance of now, in either direction; tolerance <= 0 means
// DefaultTolerance. Comparisons are constant-time. Receivers should still drop repeated event ids:
// the tolerance window narrows replays, deduplication removes them.
func Verify(header string, body []byte, now time.Time, tolerance time.Duration, secrets ...string) error {
	sig, err := ParseSignature(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(sig.Timestamp); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, now %s", ErrExpiredSignature,
			sig.Timestamp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	unix := sig.Timestamp.Unix()
	match := false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		want := mac(s, unix, body)
		for _, got := range sig.V1 {
			// No early exit: timing then depends only on the counts, never on the bytes.
			if hmac.Equal(want, got) {
				match = true
			}
		}
	}
	if !match {
		return ErrSignatureMismatch
	}
	return nil
}

// VerifyRequest is the receiver's side in one call: it reads at most MaxEnvelopeSize bytes of the
// request body, verifies the Vigil-Signature header against now (tolerance <= 0 means
// DefaultTolerance) and the secrets, and parses the envelope. The caller still deduplicates by
// the envelope's ID.
func VerifyRequest(r *http.Request, now time.Time, tolerance time.Duration, secrets ...string) (Envelope, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxEnvelopeSize+1))
	if err != nil {
		return Envelope{}, fmt.Errorf("events: read request body: %w", err)
	}
	if len(body) > MaxEnvelopeSize {
		return Envelope{}, fmt.Errorf("events: request body above %d bytes", MaxEnvelopeSize)
	}
	if err := Verify(r.Header.Get(HeaderSignature), body, now, tolerance, secrets...); err != nil {
		return Envelope{}, err
	}
	env, err := ParseEnvelope(body)
	if err != nil {
		return Envelope{}, err
	}
	if id := r.Header.Get(HeaderEventID); id != "" && id != env.ID {
		return Envelope{}, fmt.Errorf("events: %s %q differs from the envelope id %q", HeaderEventID, id, env.ID)
	}
	return env, nil
}
