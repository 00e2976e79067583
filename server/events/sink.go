package events

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// MaxURLLength caps a sink URL.
const MaxURLLength = 2048

// Sink is one webhook endpoint. A sink belongs to an account and receives the events of that
// account, plus those of the accounts its owner may see (Config.Visible decides, e.g. a delegated
// administrator's members).
type Sink struct {
	ID      string `json:"sinkId"`
	Account string `json:"account"`
	URL     string `json:"url"`
	// Secret signs every delivery. PreviousSecret, when set, signs it too (a second v1 value), so
	// receivers can move to a new secret at their own pace; clear it when the rotation is over.
	Secret         string `json:"-"`
	PreviousSecret string `json:"-"`
	// Types lists the event types to deliver (model.Event*); empty means all. An entry ending in
	// ".*" matches a prefix: "vigil.finding.*".
	Types   []string `json:"eventTypes,omitempty"`
	Enabled bool     `json:"enabled"`
	// DisabledReason says why the dispatcher disabled the sink (a 410 Gone reply).
	DisabledReason string `json:"disabledReason,omitempty"`
	// CreatedAt, when set, keeps events older than the sink from being sent to it on a retry.
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// Wants reports whether the sink's type filter selects eventType.
func (s *Sink) Wants(eventType string) bool {
	if len(s.Types) == 0 {
		return true
	}
	for _, t := range s.Types {
		if t == eventType {
			return true
		}
		if p, ok := strings.CutSuffix(t, "*"); ok && strings.HasSuffix(p, ".") && strings.HasPrefix(eventType, p) {
			return true
		}
	}
	return false
}

// SinkStore lists sinks and records that one was disabled. The server keeps sinks in its
// database; MemSinks serves tests.
type SinkStore interface {
	// ListSinks returns every sink, enabled or not.
	ListSinks(ctx context.Context) ([]Sink, error)
	// DisableSink turns a sink off with a reason, e.g. after the receiver answered 410 Gone.
	DisableSink(ctx context.Context, id, reason string) error
}

// AddressGuard refuses delivery to certain destination addresses. It is checked when a sink URL
// is validated (for IP literals) and again on every connection, after DNS resolution, so a name
// that resolves to a refused address (DNS rebinding included) cannot be reached.
//
// All fields are off by default: a self-hosted Vigil usually delivers to receivers on its own host
// or network (a chat bridge on localhost, a SIEM on 10.x), and the people who configure sinks are
// the operators themselves. Turn them on where tenants you do not trust create sinks: then a sink
// could otherwise probe the server's own loopback services or a cloud metadata endpoint
// (169.254.169.254 is link-local).
type AddressGuard struct {
	DenyLoopback  bool // 127.0.0.0/8, ::1
	DenyLinkLocal bool // 169.254.0.0/16, fe80::/10 (and link-local multicast)
	DenyPrivate   bool // 10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10
}

// Allowed reports whether the guard permits a connection to ip. Unspecified (0.0.0.0, ::) and
// multicast addresses are refused whenever any rule is on.
func (g AddressGuard) Allowed(ip netip.Addr) bool {
	if !g.DenyLoopback && !g.DenyLinkLocal && !g.DenyPrivate {
		return true
	}
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified() || ip.IsMulticast():
		return false
	case g.DenyLoopback && ip.IsLoopback():
		return false
	case g.DenyLinkLocal && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()):
		return false
	case g.DenyPrivate && (ip.IsPrivate() || cgnat.Contains(ip)):
		return false
	}
	return true
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// ErrAddressRefused is returned when the guard refuses a sink's destination.
var ErrAddressRefused = errors.New("events: destination address refused by the address guard")

// control is a net.Dialer Control function enforcing the guard on the resolved address.
func (g AddressGuard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("events: dial %s: %w", address, err)
	}
	if !g.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrAddressRefused, ap.Addr())
	}
	return nil
}

// ValidateURL checks a sink URL: absolute http or https, a host, no user information (secrets
// belong in the signing secret, not in URLs that get logged), no fragment, at most MaxURLLength
// bytes. With a guard, an IP-literal host it refuses is rejected here; names are checked when
// connecting.
func ValidateURL(raw string, guard AddressGuard) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("events: sink URL longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("events: sink URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("events: sink URL scheme %q: want http or https", u.Scheme)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return errors.New("events: sink URL has no host")
	case u.User != nil:
		return errors.New("events: sink URL must not carry user information")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("events: sink URL must not carry a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := net.LookupPort("tcp", p); err != nil || n == 0 {
			return fmt.Errorf("events: sink URL port %q is invalid", p)
		}
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !guard.Allowed(ip) {
		return fmt.Errorf("%w: %s", ErrAddressRefused, ip)
	}
	return nil
}

// MinSecretLength is the shortest signing secret ValidateSink accepts.
const MinSecretLength = 16

// NewSecret returns a fresh signing secret: "whsec_" and 32 random bytes, base64url.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return a short read)
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

// KnownTypes are the event types a sink may subscribe to.
var KnownTypes = []string{
	"vigil.finding.created", "vigil.finding.updated", "vigil.finding.closed",
	"vigil.scan.completed", "vigil.coverage.changed",
}

// ValidateSink checks a sink before it is saved: id and account present, a valid URL under the
// guard, a secret of at least MinSecretLength bytes (and a previous one, if set), and type
// filters that name known types or families of them ("vigil.finding.*").
func ValidateSink(s Sink, guard AddressGuard) error {
	switch {
	case s.ID == "" || s.Account == "":
		return errors.New("events: sink needs an id and an account")
	case len(s.Secret) < MinSecretLength:
		return fmt.Errorf("events: sink %s: secret shorter than %d bytes", s.ID, MinSecretLength)
	case s.PreviousSecret != "" && len(s.PreviousSecret) < MinSecretLength:
		return fmt.Errorf("events: sink %s: previous secret shorter than %d bytes", s.ID, MinSecretLength)
	case len(s.Types) > len(KnownTypes)+8:
		return fmt.Errorf("events: sink %s: too many event types", s.ID)
	}
	for _, t := range s.Types {
		probe := Sink{Types: []string{t}}
		known := false
		for _, k := range KnownTypes {
			if probe.Wants(k) {
				known = true
				break
			}
		}
		if !known {
			return fmt.Errorf("events: sink %s: event type %q matches no Vigil event", s.ID, t)
		}
	}
	if err := ValidateURL(s.URL, guard); err != nil {
		return fmt.Errorf("events: sink %s: %w", s.ID, err)
	}
	return nil
}
