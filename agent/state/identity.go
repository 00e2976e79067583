package state

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

const nextSuffix = ".next"

// SaveIdentity stores a key and its certificate. The pair is written to key.pem.next and
// cert.pem.next first, then renamed key first; LoadIdentity finishes an interrupted rename, so a
// crash never leaves a key with another key's certificate.
func (d *Dir) SaveIdentity(key *ecdsa.PrivateKey, certPEM []byte) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("the certificate does not match the key: %w", err)
	}
	if err := d.Write(KeyFile+nextSuffix, keyPEM, 0o600); err != nil {
		return err
	}
	if err := d.Write(CertFile+nextSuffix, certPEM, 0o644); err != nil {
		return err
	}
	return d.finishIdentity()
}

// finishIdentity completes the renames of a saved identity.
func (d *Dir) finishIdentity() error {
	for _, name := range []string{KeyFile, CertFile} {
		err := os.Rename(d.File(name+nextSuffix), d.File(name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// LoadIdentity returns the client certificate with its key, and the CA.
func (d *Dir) LoadIdentity() (*tls.Certificate, *x509.Certificate, error) {
	pair, err := d.LoadPair()
	if err != nil {
		return nil, nil, err
	}
	ca, err := d.LoadCA()
	if err != nil {
		return nil, nil, err
	}
	return pair, ca, nil
}

// LoadPair returns the client certificate with its key, finishing an interrupted SaveIdentity.
func (d *Dir) LoadPair() (*tls.Certificate, error) {
	if d.Exists(CertFile + nextSuffix) {
		if err := d.finishIdentity(); err != nil {
			return nil, err
		}
	}
	certPEM, err := d.Read(CertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	keyPEM, err := d.Read(KeyFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Path, err)
	}
	return &pair, nil
}

// LoadCA returns the stored CA.
func (d *Dir) LoadCA() (*x509.Certificate, error) {
	caPEM, err := d.Read(CAFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(caPEM)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM certificate", d.File(CAFile))
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.File(CAFile), err)
	}
	return ca, nil
}
