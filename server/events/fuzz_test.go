package events

import (
	"net/netip"
	"net/url"
	"testing"
	"time"
)

func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/vigil", "http://127.0.0.1:8080/x", "http://[::1]/",
		"http://[fe80::1%25eth0]/", "https://u:p@h/", "http://0x7f.1/", "http://2130706433/", "ftp://h/", "http://h:0/"} {
		f.Add(s)
	}
	strict := AddressGuard{DenyLoopback: true, DenyLinkLocal: true, DenyPrivate: true}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidateURL(raw, AddressGuard{}) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Hostname() == "" || len(raw) > MaxURLLength {
			t.Fatalf("accepted %q", raw)
		}
		if ValidateURL(raw, strict) == nil {
			if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !strict.Allowed(ip) {
				t.Fatalf("strict guard accepted %q", raw)
			}
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "-1", "Mon, 23 Nov 2026 12:02:00 GMT", "Monday, 23-Nov-26 12:02:00 GMT",
		"Mon Nov 23 12:02:00 2026", "99999999999999999999999", " 5 "} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now, time.Hour); d < 0 || d > time.Hour {
			t.Fatalf("parseRetryAfter(%q) = %s", v, d)
		}
	})
}
