package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/agent/agenttest"
	"github.com/vigil-sec/vigil/agent/client"
	"github.com/vigil-sec/vigil/agent/protocol"
)

func enroll(t *testing.T, srv *agenttest.Server, fp string) (*protocol.EnrollResponse, *tls.Certificate, error) {
	t.Helper()
	key, err := client.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := client.CSR(key, "web-01")
	if err != nil {
		t.Fatal(err)
	}
	resp, ca, err := client.Enroll(context.Background(), srv.URL, fp, &protocol.EnrollRequest{Token: agenttest.Token, CSR: csr, Hostname: "web-01", Version: "test"})
	if err != nil {
		return nil, nil, err
	}
	if client.Fingerprint(ca) != srv.Fingerprint {
		t.Errorf("CA %s", client.Fingerprint(ca))
	}
	cert := &tls.Certificate{Certificate: [][]byte{mustDER(t, resp.Certificate)}, PrivateKey: key}
	return resp, cert, nil
}

func mustDER(t *testing.T, pemCert string) []byte {
	c, err := client.ParseCert([]byte(pemCert))
	if err != nil {
		t.Fatal(err)
	}
	return c.Raw
}

func TestEnrollThenMutualTLS(t *testing.T) {
	srv := agenttest.New(t)
	// The fingerprint is accepted in any of the forms people paste.
	fp := strings.ToUpper(strings.TrimPrefix(srv.Fingerprint, "sha256:"))
	resp, cert, err := enroll(t, srv, fp)
	if err != nil {
		t.Fatal(err)
	}
	if resp.AgentID != "agent-0001" || resp.Account != "111122223333" {
		t.Errorf("enroll response %+v", resp)
	}
	ca, _ := client.ParseCert([]byte(resp.CA))
	c, err := client.New(srv.URL, ca, func() (*tls.Certificate, error) { return cert, nil })
	if err != nil {
		t.Fatal(err)
	}
	hr, err := c.Heartbeat(context.Background(), &protocol.Heartbeat{Version: "test", State: protocol.StateRunning})
	if err != nil {
		t.Fatal(err)
	}
	if hr.HeartbeatSeconds != 60 {
		t.Errorf("heartbeat answer %+v", hr)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Error(err)
	}

	// Without the client certificate the agent endpoints refuse.
	anon, _ := client.New(srv.URL, ca, func() (*tls.Certificate, error) { return &tls.Certificate{}, nil })
	_, err = anon.Heartbeat(context.Background(), &protocol.Heartbeat{})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 401 {
		t.Errorf("anonymous heartbeat: %v", err)
	}
}

func TestEnrollRefusals(t *testing.T) {
	srv := agenttest.New(t)
	other := agenttest.New(t)
	tests := []struct {
		name, fp string
		want     error
		wantText string
	}{
		{"another CA's fingerprint", other.Fingerprint, client.ErrFingerprint, ""},
		{"one digit off", srv.Fingerprint[:len(srv.Fingerprint)-1] + flip(srv.Fingerprint[len(srv.Fingerprint)-1]), client.ErrFingerprint, ""},
		{"not a fingerprint", "sha256:abcd", nil, "want sha256:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := enroll(t, srv, tc.fp)
			if err == nil {
				t.Fatal("enrolled")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err = %v", err)
			}
		})
	}
	// Nothing reached the server's enrollment handler: the token was never sent.
	srv.Lock(func(s *agenttest.Server) {
		if len(s.Enrollments) != 0 {
			t.Errorf("%d enrollments reached the server", len(s.Enrollments))
		}
	})
	// A bad token is the server's refusal, not retryable.
	key, _ := client.NewKey()
	csr, _ := client.CSR(key, "h")
	_, _, err := client.Enroll(context.Background(), srv.URL, srv.Fingerprint, &protocol.EnrollRequest{Token: "wrong", CSR: csr})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 401 || client.Retryable(err) {
		t.Errorf("bad token: %v", err)
	}
	if _, _, err := client.Enroll(context.Background(), "http://"+strings.TrimPrefix(srv.URL, "https://"), srv.Fingerprint, &protocol.EnrollRequest{}); err == nil {
		t.Error("plain http accepted")
	}
}

func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func TestNormalizeFingerprint(t *testing.T) {
	const hex = "5d41402abc4b2a76b9719d911017c592ae0b8f0a2c1e6e0f2b0a9d8c7e6f5a4b"
	for _, in := range []string{"sha256:" + hex, strings.ToUpper(hex), "SHA256:" + hex, insertColons(hex)} {
		got, err := client.NormalizeFingerprint(in)
		if err != nil || got != "sha256:"+hex {
			t.Errorf("%q → %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "sha1:" + hex, hex[:62], hex + "00", "zz" + hex[2:]} {
		if _, err := client.NormalizeFingerprint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func insertColons(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
