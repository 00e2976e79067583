package events

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Known answer computed independently with
//
//	printf '%s' '1700000000.{"specversion":"1.0","id":"e1"}' | openssl dgst -sha256 -hmac whsec_test
const (
	kaBody   = `{"specversion":"1.0","id":"e1"}`
	kaMAC    = "306d132c368063740915f9e91dc8fbb6ae65c04021fa28723e3a147572939c41"
	kaOldMAC = "bd56ce48d047671325c305a56b35aea1fdcaad0e17cdacb3450558e1f4cac314" // secret whsec_old
)

var kaTime = time.Unix(1700000000, 0)

func TestSignKnownAnswer(t *testing.T) {
	if got, want := Sign([]byte(kaBody), kaTime, "whsec_test"), "t=1700000000,v1="+kaMAC; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	got := Sign([]byte(kaBody), kaTime, "whsec_test", "", "whsec_old")
	if want := "t=1700000000,v1=" + kaMAC + ",v1=" + kaOldMAC; got != want {
		t.Fatalf("Sign with rotation = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(kaBody)
	both := "t=1700000000,v1=" + kaMAC + ",v1=" + kaOldMAC
	tests := []struct {
		name    string
		header  string
		body    []byte
		now     time.Time
		secrets []string
		want    error
	}{
		{"valid", "t=1700000000,v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, nil},
		{"valid with spaces", " t=1700000000, v1=" + kaMAC + " ", body, kaTime, []string{"whsec_test"}, nil},
		{"valid, clock 4m ahead", "t=1700000000,v1=" + kaMAC, body, kaTime.Add(4 * time.Minute), []string{"whsec_test"}, nil},
		{"valid, clock 4m behind", "t=1700000000,v1=" + kaMAC, body, kaTime.Add(-4 * time.Minute), []string{"whsec_test"}, nil},
		{"unknown scheme ignored", "t=1700000000,v0=zz,v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, nil},
		{"rotation: receiver still on old secret", both, body, kaTime, []string{"whsec_old"}, nil},
		{"rotation: receiver already on new secret", both, body, kaTime, []string{"whsec_test"}, nil},
		{"rotation: receiver holds both", "t=1700000000,v1=" + kaOldMAC, body, kaTime, []string{"whsec_test", "whsec_old"}, nil},
		{"tampered body", "t=1700000000,v1=" + kaMAC, []byte(strings.Replace(kaBody, "e1", "e2", 1)), kaTime, []string{"whsec_test"}, ErrSignatureMismatch},
		{"body with trailing newline", "t=1700000000,v1=" + kaMAC, append([]byte(kaBody), '\n'), kaTime, []string{"whsec_test"}, ErrSignatureMismatch},
		{"wrong secret", "t=1700000000,v1=" + kaMAC, body, kaTime, []string{"whsec_other"}, ErrSignatureMismatch},
		{"no secret", "t=1700000000,v1=" + kaMAC, body, kaTime, nil, ErrSignatureMismatch},
		{"empty secret never matches", "t=1700000000,v1=" + kaMAC, body, kaTime, []string{""}, ErrSignatureMismatch},
		{"timestamp moved", "t=1700000001,v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, ErrSignatureMismatch},
		{"expired", "t=1700000000,v1=" + kaMAC, body, kaTime.Add(5*time.Minute + time.Second), []string{"whsec_test"}, ErrExpiredSignature},
		{"from the future", "t=1700000000,v1=" + kaMAC, body, kaTime.Add(-6 * time.Minute), []string{"whsec_test"}, ErrExpiredSignature},
		{"missing", "", body, kaTime, []string{"whsec_test"}, ErrNoSignature},
		{"no v1", "t=1700000000", body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"no t", "v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"two t", "t=1700000000,t=1700000000,v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"t not a number", "t=17e8,v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"t negative", "t=-1,v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"t huge", "t=99999999999999,v1=" + kaMAC, body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"v1 not hex", "t=1700000000,v1=" + strings.Repeat("g", 64), body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"v1 truncated", "t=1700000000,v1=" + kaMAC[:62], body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"element without =", "t=1700000000,v1", body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"too many v1", "t=1700000000" + strings.Repeat(",v1="+kaOldMAC, 9), body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
		{"too long", "t=1700000000,v1=" + kaMAC + ",x=" + strings.Repeat("a", 5000), body, kaTime, []string{"whsec_test"}, ErrMalformedSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.header, tc.body, tc.now, 0, tc.secrets...)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	h := Sign([]byte(kaBody), kaTime, "s")
	if err := Verify(h, []byte(kaBody), kaTime.Add(30*time.Second), 10*time.Second, "s"); !errors.Is(err, ErrExpiredSignature) {
		t.Fatalf("10s tolerance, 30s late: %v", err)
	}
	if err := Verify(h, []byte(kaBody), kaTime.Add(30*time.Second), time.Minute, "s"); err != nil {
		t.Fatalf("1m tolerance, 30s late: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("t=1700000000,v1="+kaMAC, []byte(kaBody))
	f.Add("t=1700000000,v1="+kaMAC+",v1="+kaOldMAC, []byte(kaBody))
	f.Add("t=1700000000,v0=abc,v1="+kaMAC, []byte("{}"))
	f.Add("t=,v1=", []byte(""))
	f.Add(",,,=,t=1", []byte("x"))
	f.Add("t=1700000000,v1="+strings.Repeat("0", 64), []byte(kaBody))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify(header, body, kaTime, 0, "whsec_test")
		sig, perr := ParseSignature(header)
		if err == nil {
			if perr != nil {
				t.Fatalf("Verify accepted a header ParseSignature rejects: %v", perr)
			}
			if len(sig.V1) == 0 || len(sig.V1) > maxSignatures {
				t.Fatalf("accepted %d signatures", len(sig.V1))
			}
		}
		// Whatever the body, a fresh signature over it verifies and a different secret does not.
		fresh := Sign(body, kaTime, "whsec_test")
		if err := Verify(fresh, body, kaTime, 0, "whsec_test"); err != nil {
			t.Fatalf("fresh signature rejected: %v", err)
		}
		if err := Verify(fresh, body, kaTime, 0, "whsec_other"); err == nil {
			t.Fatal("fresh signature accepted with the wrong secret")
		}
	})
}

func TestVerifyRequest(t *testing.T) {
	env, _ := NewEnvelope("urn:vigil:srv-1", xzEvent)
	body, _ := env.Encode()
	req := func(sig, id string, b string) *http.Request {
		r := httptest.NewRequest("POST", "/hook", strings.NewReader(b))
		r.Header.Set(HeaderSignature, sig)
		r.Header.Set(HeaderEventID, id)
		return r
	}
	sig := Sign(body, kaTime, "whsec_test")
	got, err := VerifyRequest(req(sig, xzEvent.ID, string(body)), kaTime, 0, "whsec_test")
	if err != nil || got.ID != xzEvent.ID || got.Account != xzEvent.Account {
		t.Fatalf("VerifyRequest = %+v, %v", got, err)
	}
	if _, err := VerifyRequest(req(sig, "other", string(body)), kaTime, 0, "whsec_test"); err == nil {
		t.Error("mismatched event id header accepted")
	}
	if _, err := VerifyRequest(req(sig, xzEvent.ID, string(body)+" "), kaTime, 0, "whsec_test"); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("tampered: %v", err)
	}
	notCE := []byte(`{"hello":"world"}`)
	if _, err := VerifyRequest(req(Sign(notCE, kaTime, "whsec_test"), "", string(notCE)), kaTime, 0, "whsec_test"); err == nil {
		t.Error("signed non-CloudEvent accepted")
	}
	big := strings.Repeat("a", MaxEnvelopeSize+1)
	if _, err := VerifyRequest(req(Sign([]byte(big), kaTime, "whsec_test"), "", big), kaTime, 0, "whsec_test"); err == nil {
		t.Error("oversized body accepted")
	}
}
