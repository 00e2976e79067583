package events

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/model"
)

func TestValidateURL(t *testing.T) {
	strict := AddressGuard{DenyLoopback: true, DenyLinkLocal: true, DenyPrivate: true}
	tests := []struct {
		url   string
		guard AddressGuard
		ok    bool
	}{
		{"https://hooks.example.com/vigil", AddressGuard{}, true},
		{"http://127.0.0.1:8080/hook", AddressGuard{}, true}, // self-hosted default
		{"http://[::1]:8080/hook", AddressGuard{}, true},
		{"https://hooks.example.com:8443/a?b=c", strict, true},
		{"https://hooks.example.com/vigil", strict, true}, // names are checked when dialling
		{"http://127.0.0.1:8080/hook", strict, false},
		{"http://[::1]/hook", strict, false},
		{"http://169.254.169.254/latest/meta-data/", AddressGuard{DenyLinkLocal: true}, false},
		{"http://10.1.2.3/hook", AddressGuard{DenyLoopback: true}, true},
		{"http://10.1.2.3/hook", strict, false},
		{"http://0.0.0.0/hook", AddressGuard{DenyLoopback: true}, false},
		{"ftp://hooks.example.com/", AddressGuard{}, false},
		{"file:///etc/passwd", AddressGuard{}, false},
		{"javascript:alert(1)", AddressGuard{}, false},
		{"hooks.example.com/vigil", AddressGuard{}, false},
		{"/relative", AddressGuard{}, false},
		{"https://user:pass@hooks.example.com/", AddressGuard{}, false},
		{"https://token@hooks.example.com/", AddressGuard{}, false},
		{"https://hooks.example.com/#frag", AddressGuard{}, false},
		{"https://hooks.example.com:0/", AddressGuard{}, false},
		{"https://hooks.example.com:70000/", AddressGuard{}, false},
		{"https://:443/", AddressGuard{}, false},
		{"https://hooks.example.com/" + strings.Repeat("a", MaxURLLength), AddressGuard{}, false},
		{"http://[::1", AddressGuard{}, false},
	}
	for _, tc := range tests {
		err := ValidateURL(tc.url, tc.guard)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateURL(%.60q, %+v) = %v, want ok=%v", tc.url, tc.guard, err, tc.ok)
		}
	}
	if err := ValidateURL("http://127.0.0.1/", strict); !errors.Is(err, ErrAddressRefused) {
		t.Errorf("refused address error = %v", err)
	}
}

func TestAddressGuard(t *testing.T) {
	tests := []struct {
		ip                       string
		loopback, link, priv, ok bool
	}{
		{"127.0.0.1", true, false, false, false},
		{"127.53.1.1", true, false, false, false},
		{"::1", true, false, false, false},
		{"::ffff:127.0.0.1", true, false, false, false},
		{"127.0.0.1", false, true, false, true},
		{"169.254.169.254", false, true, false, false},
		{"fe80::1", false, true, false, false},
		{"169.254.169.254", true, false, false, true},
		{"10.0.0.1", false, false, true, false},
		{"192.168.1.10", false, false, true, false},
		{"172.16.0.1", false, false, true, false},
		{"100.64.0.1", false, false, true, false},
		{"fd00::1", false, false, true, false},
		{"10.0.0.1", true, true, false, true},
		{"93.184.215.14", true, true, true, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true, true, true, true},
		{"0.0.0.0", true, false, false, false},
		{"224.0.0.1", true, false, false, false},
		{"0.0.0.0", false, false, false, true}, // guard off: everything goes
	}
	for _, tc := range tests {
		g := AddressGuard{DenyLoopback: tc.loopback, DenyLinkLocal: tc.link, DenyPrivate: tc.priv}
		if got := g.Allowed(netip.MustParseAddr(tc.ip)); got != tc.ok {
			t.Errorf("%+v.Allowed(%s) = %v, want %v", g, tc.ip, got, tc.ok)
		}
	}
}

func TestSinkWants(t *testing.T) {
	tests := []struct {
		types []string
		typ   string
		want  bool
	}{
		{nil, "vigil.finding.created", true},
		{[]string{"vigil.finding.created"}, "vigil.finding.created", true},
		{[]string{"vigil.finding.created"}, "vigil.finding.closed", false},
		{[]string{"vigil.finding.*"}, "vigil.finding.closed", true},
		{[]string{"vigil.finding.*"}, "vigil.findings.closed", false},
		{[]string{"vigil.finding.*"}, "vigil.coverage.changed", false},
		{[]string{"vigil.*"}, "vigil.coverage.changed", true},
		{[]string{"vigil*"}, "vigilant.thing", false}, // only whole segments
		{[]string{"*"}, "vigil.scan.completed", false},
	}
	for _, tc := range tests {
		s := Sink{Types: tc.types}
		if got := s.Wants(tc.typ); got != tc.want {
			t.Errorf("Types %v Wants(%s) = %v, want %v", tc.types, tc.typ, got, tc.want)
		}
	}
}

func TestKnownTypesMatchModel(t *testing.T) {
	want := []string{model.EventFindingCreated, model.EventFindingUpdated, model.EventFindingClosed,
		model.EventScanCompleted, model.EventCoverageChanged}
	if !slices.Equal(KnownTypes, want) {
		t.Fatalf("KnownTypes %v, model %v", KnownTypes, want)
	}
}

func TestValidateSink(t *testing.T) {
	good := Sink{ID: "s1", Account: "acct", URL: "https://hooks.example.com/v", Secret: NewSecret(), Enabled: true}
	if err := ValidateSink(good, AddressGuard{}); err != nil {
		t.Fatal(err)
	}
	if a, b := NewSecret(), NewSecret(); a == b || len(a) != len("whsec_")+43 {
		t.Fatalf("secrets %q %q", a, b)
	}
	for name, mod := range map[string]func(*Sink){
		"no id":          func(s *Sink) { s.ID = "" },
		"no account":     func(s *Sink) { s.Account = "" },
		"short secret":   func(s *Sink) { s.Secret = "hunter2" },
		"short previous": func(s *Sink) { s.PreviousSecret = "x" },
		"unknown type":   func(s *Sink) { s.Types = []string{"vigil.finding.deleted"} },
		"unknown family": func(s *Sink) { s.Types = []string{"aws.*"} },
		"bad url":        func(s *Sink) { s.URL = "gopher://h/" },
		"guarded url":    func(s *Sink) { s.URL = "http://169.254.169.254/" },
	} {
		s := good
		mod(&s)
		if err := ValidateSink(s, AddressGuard{DenyLinkLocal: true}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s := good
	s.Types = []string{"vigil.finding.*", model.EventCoverageChanged}
	if err := ValidateSink(s, AddressGuard{}); err != nil {
		t.Errorf("families: %v", err)
	}
}
