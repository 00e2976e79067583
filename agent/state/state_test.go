package state

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func selfSigned(t *testing.T, key *ecdsa.PrivateKey, cn string) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestDirModesAndConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(p, 0o755)
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o700 {
		t.Errorf("mode %v", fi.Mode())
	}
	if _, err := d.LoadConfig(); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("empty dir: %v", err)
	}
	c := &Config{Server: "https://vigil.example.com:8443", AgentID: "agent-0001", Sensors: []string{"os-packages"}}
	if err := d.SaveConfig(c); err != nil {
		t.Fatal(err)
	}
	got, err := d.LoadConfig()
	if err != nil || got.AgentID != "agent-0001" || got.Sensors[0] != "os-packages" {
		t.Errorf("%+v %v", got, err)
	}
	if fi, _ := os.Stat(d.File(ConfigFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v", fi.Mode())
	}
	os.WriteFile(d.File(AckedFile), []byte("{"), 0o600)
	if _, err := d.LoadAcked(); err == nil {
		t.Error("corrupt acked.json accepted")
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(p)
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" {
			t.Errorf("left %s", e.Name())
		}
	}
}

func TestIdentityInterruptedRenewal(t *testing.T) {
	d, _ := Open(filepath.Join(t.TempDir(), "s"))
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := d.SaveIdentity(k1, selfSigned(t, k1, "one")); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveIdentity(k1, selfSigned(t, k2, "mismatch")); err == nil {
		t.Error("a certificate for another key was saved")
	}
	// A renewal interrupted after the key's rename: key.pem is new, cert.pem old.
	c2 := selfSigned(t, k2, "two")
	der, _ := x509.MarshalPKCS8PrivateKey(k2)
	d.Write(KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	d.Write(CertFile+nextSuffix, c2, 0o644)
	pair, err := d.LoadPair()
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if leaf.Subject.CommonName != "two" {
		t.Errorf("loaded %s", leaf.Subject.CommonName)
	}
	if d.Exists(CertFile + nextSuffix) {
		t.Error("rename not finished")
	}
}
