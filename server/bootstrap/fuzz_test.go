package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// FuzzIssueClientCert feeds arbitrary CSR bytes (PEM or DER) to the enrollment path: it must
// return an error or a certificate, never panic, and never sign a CSR whose signature fails.
func FuzzIssueClientCert(f *testing.F) {
	r, err := Bootstrap(context.Background(), Options{Dir: f.TempDir(), Hostname: "h"})
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a"}}, key)
	f.Add(csr)
	f.Add(pemBlock("CERTIFICATE REQUEST", csr))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := IssueClientCert(r.CA, r.CAKey, ClientCertRequest{CSR: b, AgentID: "agent-1"})
		if err != nil {
			return
		}
		if len(out) == 0 {
			t.Fatal("no certificate and no error")
		}
	})
}
