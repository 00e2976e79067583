package bootstrap

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Client certificate limits.
const (
	DefaultClientValidity = 7 * 24 * time.Hour
	MaxClientValidity     = 90 * 24 * time.Hour
	maxCSRBytes           = 16 << 10
)

// AgentURIPrefix forms the URI SAN of an agent certificate: "urn:vigil:agent:<id>".
const AgentURIPrefix = "urn:vigil:agent:"

// ClientCertRequest is an agent's enrollment (or rotation) request.
type ClientCertRequest struct {
	CSR      []byte        // PEM ("CERTIFICATE REQUEST") or DER
	AgentID  string        // chosen by the server, never by the agent
	Validity time.Duration // 0: DefaultClientValidity; capped at MaxClientValidity
	Now      time.Time     // zero: time.Now()
}

// IssueClientCert signs an agent's CSR with the CA. Only the CSR's public key is used, after its
// self-signature proves the agent holds the private key; the subject, SANs and extensions the
// agent asked for are ignored. The certificate names the agent in the CN and a URI SAN, is valid
// for client authentication only, and cannot sign anything. It returns the certificate in PEM.
func IssueClientCert(ca *x509.Certificate, caKey crypto.Signer, req ClientCertRequest) ([]byte, error) {
	if err := validAgentID(req.AgentID); err != nil {
		return nil, err
	}
	der := req.CSR
	if len(der) > maxCSRBytes {
		return nil, fmt.Errorf("issue client certificate: CSR of %d bytes exceeds %d", len(der), maxCSRBytes)
	}
	if blk, _ := pem.Decode(der); blk != nil {
		if blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("issue client certificate: PEM block %q is not a certificate request", blk.Type)
		}
		der = blk.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("issue client certificate: parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("issue client certificate: CSR signature: %w", err)
	}
	if err := acceptableKey(csr.PublicKey); err != nil {
		return nil, err
	}
	validity := req.Validity
	if validity <= 0 {
		validity = DefaultClientValidity
	}
	validity = min(validity, MaxClientValidity)
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter // a leaf never outlives its issuer
	}
	u, err := url.Parse(AgentURIPrefix + req.AgentID)
	if err != nil {
		return nil, fmt.Errorf("issue client certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: req.AgentID, Organization: []string{"Vigil agents"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("issue client certificate: %w", err)
	}
	return pemBlock("CERTIFICATE", cert), nil
}

// AgentID returns the agent id of a verified client certificate, or "" if it is not one.
func AgentID(c *x509.Certificate) string {
	for _, u := range c.URIs {
		if s := u.String(); len(s) > len(AgentURIPrefix) && s[:len(AgentURIPrefix)] == AgentURIPrefix {
			return s[len(AgentURIPrefix):]
		}
	}
	return ""
}

// validAgentID admits 1–128 characters of [A-Za-z0-9._-]: safe in a CN, a URN and a log line.
func validAgentID(id string) error {
	if id == "" || len(id) > 128 {
		return errors.New("issue client certificate: agent id must be 1 to 128 characters")
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("issue client certificate: agent id %q has character %q", id, c)
		}
	}
	return nil
}

func acceptableKey(k any) error {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("issue client certificate: ECDSA curve %s not accepted (P-256 or P-384)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("issue client certificate: RSA key of %d bits is too small (2048 minimum)", k.N.BitLen())
		}
	default:
		return fmt.Errorf("issue client certificate: key type %T not accepted", k)
	}
	return nil
}
