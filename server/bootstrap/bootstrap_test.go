package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/server/auth"
)

type memKeys struct {
	mu   sync.Mutex
	keys []auth.StoredKey
}

func (m *memKeys) HasAdminKey(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys) > 0, nil
}

func (m *memKeys) PutAdminKey(_ context.Context, k auth.StoredKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.keys) > 0 {
		return ErrAdminKeyExists
	}
	m.keys = append(m.keys, k)
	return nil
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func opts(dir string, keys AdminKeys, now time.Time) Options {
	return Options{
		Dir: dir, Hostname: "Vigil-1.example.org", ExtraNames: []string{"vigil.example.org", "10.0.0.7", " "},
		AdminAccount: "111111111111", Keys: keys, Now: func() time.Time { return now },
	}
}

func TestFirstStartAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	keys := &memKeys{}
	r1, err := Bootstrap(context.Background(), opts(dir, keys, t0))
	if err != nil {
		t.Fatal(err)
	}
	if !r1.Issued || r1.External {
		t.Fatalf("first start: issued=%v external=%v", r1.Issued, r1.External)
	}
	// The admin key is returned once, verifies against the stored hash, and is not on disk.
	if r1.AdminKey == "" || len(keys.keys) != 1 {
		t.Fatal("no admin key made")
	}
	store := &auth.MemKeyStore{}
	store.Put(keys.keys[0])
	p, err := (&auth.Authenticator{Store: store, Now: func() time.Time { return t0 }}).Authenticate(context.Background(), r1.AdminKey)
	if err != nil || p.Role != auth.RoleAdmin || p.Account != "111111111111" {
		t.Fatalf("admin key: %+v %v", p, err)
	}
	secret := r1.AdminKey[len(auth.KeyPrefix)+auth.KeyIDLen+1:]
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), secret) {
				t.Errorf("admin key secret written to %s", path)
			}
		}
		return nil
	})

	// CA: ECDSA P-256, 10 years, CA basic constraints, fingerprint of the DER.
	ca := r1.CA
	if pk, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pk.Curve != elliptic.P256() {
		t.Fatalf("CA key %T", ca.PublicKey)
	}
	if !ca.IsCA || ca.NotAfter.Sub(t0) != CAValidity {
		t.Fatalf("CA isCA=%v validity=%v", ca.IsCA, ca.NotAfter.Sub(t0))
	}
	if len(r1.CAFingerprint) != len("sha256:")+64 || !strings.HasPrefix(r1.CAFingerprint, "sha256:") {
		t.Fatalf("fingerprint %q", r1.CAFingerprint)
	}

	// Server certificate: names, validity, chain.
	leaf := r1.Server.Leaf
	wantDNS := []string{"localhost", "vigil-1.example.org", "vigil.example.org"}
	if strings.Join(leaf.DNSNames, ",") != strings.Join(wantDNS, ",") {
		t.Errorf("DNS SANs %v, want %v", leaf.DNSNames, wantDNS)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if strings.Join(ips, ",") != "10.0.0.7,127.0.0.1,::1" {
		t.Errorf("IP SANs %v", ips)
	}
	if leaf.NotAfter.Sub(t0) != ServerValidity {
		t.Errorf("server validity %v", leaf.NotAfter.Sub(t0))
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: r1.CAPool, DNSName: "vigil.example.org", CurrentTime: t0}); err != nil {
		t.Errorf("server certificate does not verify: %v", err)
	}

	// Permissions: directory 0700, keys 0600.
	for path, want := range map[string]os.FileMode{
		dir: 0o700, filepath.Join(dir, "tls"): 0o700,
		filepath.Join(dir, "tls", "ca-key.pem"): 0o600, filepath.Join(dir, "tls", "server-key.pem"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}

	// Restart a day later: nothing changes, no new admin key.
	r2, err := Bootstrap(context.Background(), opts(dir, keys, t0.Add(24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Issued || r2.AdminKey != "" || len(keys.keys) != 1 {
		t.Fatalf("restart changed things: issued=%v key=%q keys=%d", r2.Issued, r2.AdminKey, len(keys.keys))
	}
	if r2.CAFingerprint != r1.CAFingerprint || !r2.Server.Leaf.Equal(leaf) {
		t.Fatal("restart replaced the CA or the server certificate")
	}

	// 340 days later (< 30 days left): renewed, same CA.
	r3, err := Bootstrap(context.Background(), opts(dir, keys, t0.Add(340*24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if !r3.Issued || r3.CAFingerprint != r1.CAFingerprint || r3.Server.Leaf.Equal(leaf) {
		t.Fatalf("renewal: issued=%v", r3.Issued)
	}

	// A new extra name: reissued.
	o := opts(dir, keys, t0.Add(341*24*time.Hour))
	o.ExtraNames = append(o.ExtraNames, "scanner.internal")
	r4, err := Bootstrap(context.Background(), o)
	if err != nil || !r4.Issued || !strings.Contains(strings.Join(r4.Server.Leaf.DNSNames, ","), "scanner.internal") {
		t.Fatalf("name change: %v issued=%v", err, r4 != nil && r4.Issued)
	}
}

func TestRefusesLooseOrHalfKeys(t *testing.T) {
	dir := t.TempDir()
	if _, err := Bootstrap(context.Background(), opts(dir, nil, t0)); err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(dir, "tls", "ca-key.pem")
	os.Chmod(caKey, 0o644)
	if _, err := Bootstrap(context.Background(), opts(dir, nil, t0)); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable CA key accepted: %v", err)
	}
	os.Chmod(caKey, 0o600)
	os.Remove(filepath.Join(dir, "tls", "ca.pem"))
	if _, err := Bootstrap(context.Background(), opts(dir, nil, t0)); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("half a CA accepted: %v", err)
	}
	// A loose data directory is tightened.
	dir2 := t.TempDir()
	os.Chmod(dir2, 0o755)
	if _, err := Bootstrap(context.Background(), opts(dir2, nil, t0)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir2); fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %04o", fi.Mode().Perm())
	}
}

func TestAdminKeyRace(t *testing.T) {
	keys := &memKeys{}
	got := make(chan string, 4)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opts(t.TempDir(), keys, t0)
			r, err := Bootstrap(context.Background(), o)
			if err != nil {
				t.Error(err)
				return
			}
			got <- r.AdminKey
		}()
	}
	wg.Wait()
	close(got)
	n := 0
	for k := range got {
		if k != "" {
			n++
		}
	}
	if n != 1 || len(keys.keys) != 1 {
		t.Fatalf("%d processes printed a key, %d stored", n, len(keys.keys))
	}
}

func TestExternalCertificate(t *testing.T) {
	// An operator's certificate, made here by a throwaway CA.
	src := t.TempDir()
	ext, err := Bootstrap(context.Background(), Options{Dir: src, Hostname: "ext.example.org", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(src, "tls", "server.pem"), filepath.Join(src, "tls", "server-key.pem")
	dir := t.TempDir()
	o := Options{Dir: dir, CertFile: cert, KeyFile: key, Now: func() time.Time { return t0 }}
	r, err := Bootstrap(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !r.External || r.Issued || !r.Server.Leaf.Equal(ext.Server.Leaf) || len(r.Warnings) != 0 {
		t.Fatalf("external: %+v", r)
	}
	if r.CAFingerprint == ext.CAFingerprint {
		t.Fatal("own CA not created")
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "server.pem")); err == nil {
		t.Fatal("wrote a server certificate despite the external one")
	}
	o.Now = func() time.Time { return t0.Add(350 * 24 * time.Hour) }
	if r, err := Bootstrap(context.Background(), o); err != nil || len(r.Warnings) != 1 {
		t.Fatalf("near expiry: %v %v", err, r)
	}
	o.Now = func() time.Time { return t0.Add(400 * 24 * time.Hour) }
	if _, err := Bootstrap(context.Background(), o); err == nil {
		t.Fatal("expired external certificate accepted")
	}
	o.KeyFile = ""
	if _, err := Bootstrap(context.Background(), o); err == nil {
		t.Fatal("certificate without key accepted")
	}
}

// TestTLS13Handshake serves HTTPS with the bootstrap configuration and checks that a client
// pinning the CA connects with TLS 1.3, that TLS 1.2 is refused, and that an agent certificate
// issued from a CSR is verified.
func TestTLS13Handshake(t *testing.T) {
	r, err := Bootstrap(context.Background(), Options{Dir: t.TempDir(), Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := ""
		if len(req.TLS.VerifiedChains) > 0 {
			id = AgentID(req.TLS.VerifiedChains[0][0])
		}
		w.Write([]byte(id))
	}))
	srv.TLS = r.TLSConfig()
	srv.StartTLS()
	defer srv.Close()

	client := func(cfg *tls.Config) *http.Client {
		cfg.RootCAs = r.CAPool
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	resp, err := client(&tls.Config{}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("TLS version %x", resp.TLS.Version)
	}
	if _, err := client(&tls.Config{MaxVersion: tls.VersionTLS12}).Get(srv.URL); err == nil {
		t.Fatal("TLS 1.2 accepted")
	}

	agentKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "root"}}, agentKey)
	certPEM, err := IssueClientCert(r.CA, r.CAKey, ClientCertRequest{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), AgentID: "agent-42"})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	resp, err = client(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{blk.Bytes}, PrivateKey: agentKey}}}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := resp.Body.Read(b)
	resp.Body.Close()
	if string(b[:n]) != "agent-42" {
		t.Fatalf("agent id seen by server %q", b[:n])
	}
}

func TestIssueClientCert(t *testing.T) {
	r, err := Bootstrap(context.Background(), Options{Dir: t.TempDir(), Hostname: "h", Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaSmall, _ := rsa.GenerateKey(rand.Reader, 1024)
	mkCSR := func(key any, cn string, dns ...string) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		}, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good := mkCSR(ecKey, "admin", "vigil.example.org")
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature

	// A CSR whose signature is by another key than the one it carries.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parsed, _ := x509.ParseCertificateRequest(good)
	swapped := swapKey(t, parsed, other)

	cases := []struct {
		name    string
		req     ClientCertRequest
		wantErr string
	}{
		{"ecdsa DER", ClientCertRequest{CSR: good, AgentID: "ag-1", Now: t0}, ""},
		{"ed25519", ClientCertRequest{CSR: mkCSR(edKey, "x"), AgentID: "ag-2", Now: t0, Validity: time.Hour}, ""},
		{"tampered signature", ClientCertRequest{CSR: tampered, AgentID: "ag-1", Now: t0}, "signature"},
		{"key swapped", ClientCertRequest{CSR: swapped, AgentID: "ag-1", Now: t0}, "signature"},
		{"P-224", ClientCertRequest{CSR: mkCSR(p224, "x"), AgentID: "ag-1", Now: t0}, "curve"},
		{"RSA 1024", ClientCertRequest{CSR: mkCSR(rsaSmall, "x"), AgentID: "ag-1", Now: t0}, "too small"},
		{"bad agent id", ClientCertRequest{CSR: good, AgentID: "../etc", Now: t0}, "character"},
		{"empty agent id", ClientCertRequest{CSR: good, Now: t0}, "1 to 128"},
		{"garbage", ClientCertRequest{CSR: []byte("not a csr"), AgentID: "a", Now: t0}, "parse CSR"},
		{"wrong PEM type", ClientCertRequest{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good}), AgentID: "a", Now: t0}, "not a certificate request"},
		{"huge", ClientCertRequest{CSR: make([]byte, 1<<20), AgentID: "a", Now: t0}, "exceeds"},
	}
	for _, c := range cases {
		out, err := IssueClientCert(r.CA, r.CAKey, c.req)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		blk, _ := pem.Decode(out)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if cert.Subject.CommonName != c.req.AgentID || AgentID(cert) != c.req.AgentID {
			t.Errorf("%s: names CN=%q URI=%v", c.name, cert.Subject.CommonName, cert.URIs)
		}
		if len(cert.DNSNames) != 0 || cert.IsCA {
			t.Errorf("%s: copied CSR SANs or made a CA", c.name)
		}
		want := c.req.Validity
		if want == 0 {
			want = DefaultClientValidity
		}
		if cert.NotAfter.Sub(t0) != want {
			t.Errorf("%s: validity %v", c.name, cert.NotAfter.Sub(t0))
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: r.CAPool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: does not verify for client auth: %v", c.name, err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: r.CAPool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Errorf("%s: usable as a server certificate", c.name)
		}
	}
	// Validity is capped.
	out, err := IssueClientCert(r.CA, r.CAKey, ClientCertRequest{CSR: good, AgentID: "a", Now: t0, Validity: 10 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(out)
	cert, _ := x509.ParseCertificate(blk.Bytes)
	if cert.NotAfter.Sub(t0) != MaxClientValidity {
		t.Fatalf("uncapped validity %v", cert.NotAfter.Sub(t0))
	}
}

// swapKey re-encodes a CSR with another public key but the original signature.
func swapKey(t *testing.T, csr *x509.CertificateRequest, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	// Byte surgery: both keys are P-256, so the SubjectPublicKeyInfo keeps its length.
	origPub, _ := x509.MarshalPKIXPublicKey(csr.PublicKey)
	newPub, _ := x509.MarshalPKIXPublicKey(key.Public())
	out := []byte(strings.Replace(string(csr.Raw), string(origPub), string(newPub), 1))
	if string(out) == string(csr.Raw) || len(origPub) != len(newPub) {
		t.Fatal("key swap failed")
	}
	return out
}

// TestFingerprintMatchesOpenSSL compares the pinned fingerprint with OpenSSL's reading of ca.pem.
func TestFingerprintMatchesOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	r, err := Bootstrap(context.Background(), Options{Dir: dir, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "x509", "-in", filepath.Join(dir, "tls", "ca.pem"), "-noout", "-fingerprint", "-sha256").Output()
	if err != nil {
		t.Fatal(err)
	}
	// "sha256 Fingerprint=AB:CD:..."
	_, fp, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	want := "sha256:" + strings.ToLower(strings.ReplaceAll(fp, ":", ""))
	if r.CAFingerprint != want {
		t.Fatalf("fingerprint %s, openssl says %s", r.CAFingerprint, want)
	}
}

// TestRenewWhileServing renews the certificate of a running server: new connections get the new
// certificate without a restart.
func TestRenewWhileServing(t *testing.T) {
	r, err := Bootstrap(context.Background(), Options{Dir: t.TempDir(), Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = r.TLSConfig()
	srv.StartTLS()
	defer srv.Close()
	later := time.Now().Add(340 * 24 * time.Hour)
	serial := func() string {
		// The client's clock is 340 days ahead so both certificates verify.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.CAPool, Time: func() time.Time { return later.Add(time.Hour) }}, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	if renewed, err := r.Renew(time.Now().Add(24 * time.Hour)); err != nil || renewed {
		t.Fatalf("early renewal: %v %v", renewed, err)
	}
	if serial() != first {
		t.Fatal("certificate changed without renewal")
	}
	// 340 days on, the certificate has < 30 days left.
	renewed, err := r.Renew(later)
	if err != nil || !renewed {
		t.Fatalf("renewal: %v %v", renewed, err)
	}
	if got := serial(); got == first || got != r.Current().Leaf.SerialNumber.String() {
		t.Fatal("new connections do not get the renewed certificate")
	}
	if r.Current().Leaf.NotAfter.Before(time.Now().Add(ServerValidity)) {
		t.Fatal("renewed certificate not extended")
	}
}
