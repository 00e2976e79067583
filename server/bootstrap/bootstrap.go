// Package bootstrap prepares a server's data directory on start: its certificate authority, its
// TLS server certificate and the first administrator's API key. It is idempotent: a restart finds
// everything in place and changes nothing, except renewing a server certificate that is close to
// expiry or no longer covers the configured names.
//
// Layout (directory 0700, private keys 0600, everything written atomically):
//
//	<dir>/tls/ca.pem           CA certificate (ECDSA P-256, 10 years)
//	<dir>/tls/ca-key.pem       CA private key (PKCS#8)
//	<dir>/tls/server.pem       server certificate (1 year) followed by the CA
//	<dir>/tls/server-key.pem   server private key (PKCS#8)
package bootstrap

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-sec/vigil/server/auth"
)

// Lifetimes.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	RenewBefore    = 30 * 24 * time.Hour
	// clockSkew backdates NotBefore so freshly issued certificates work on slightly slow clocks.
	clockSkew = 5 * time.Minute
)

// AdminKeys persists the first administrator key. server/store implements it; Bootstrap never
// sees a database.
type AdminKeys interface {
	// HasAdminKey reports whether a bootstrap admin key was ever created (even if since revoked:
	// revoking it must not make a restart mint a new one).
	HasAdminKey(ctx context.Context) (bool, error)
	// PutAdminKey stores the key's hash row. It must be insert-if-absent: when several servers
	// start at once on one database, all but one get ErrAdminKeyExists and print nothing.
	PutAdminKey(ctx context.Context, key auth.StoredKey) error
}

// ErrAdminKeyExists is returned by AdminKeys.PutAdminKey when another process won the race.
var ErrAdminKeyExists = errors.New("bootstrap admin key already exists")

// Options configures Bootstrap.
type Options struct {
	Dir string // data directory (required)
	// Hostname goes into the server certificate (default os.Hostname()).
	Hostname string
	// ExtraNames are more DNS names or IP addresses for the server certificate.
	ExtraNames []string
	// CertFile and KeyFile, when both set, are the server certificate chain and key to use
	// instead of a self-issued one; they are loaded, never rewritten or renewed. The CA is still
	// created: it signs agents' client certificates.
	CertFile, KeyFile string
	// AdminAccount owns the first admin key; with Keys nil no key is made.
	AdminAccount string
	Keys         AdminKeys
	Hasher       auth.Hasher
	Now          func() time.Time
}

// Result is what the server needs after bootstrap.
type Result struct {
	CA     *x509.Certificate
	CAKey  crypto.Signer
	CAPool *x509.CertPool
	// CAFingerprint is "sha256:<hex>" of the CA certificate's DER; agents pin it at enrollment.
	CAFingerprint string
	Server        tls.Certificate
	// ServerNotAfter is when the server certificate expires.
	ServerNotAfter time.Time
	// Issued reports that a new server certificate was written this time (first start, renewal or
	// changed names); External that the given CertFile/KeyFile are in use.
	Issued, External bool
	// AdminKey is the new administrator key, set only on the start that created it. Print it
	// once; it is not stored anywhere in clear.
	AdminKey string
	// Warnings are conditions an operator should hear about (an external certificate close to
	// expiry).
	Warnings []string

	current atomic.Pointer[tls.Certificate] // what TLSConfig serves; Renew swaps it
	dir     string
	names   []string
}

// Bootstrap makes or loads the data directory's CA, server certificate and admin key.
func Bootstrap(ctx context.Context, o Options) (*Result, error) {
	if o.Dir == "" {
		return nil, errors.New("bootstrap: no data directory")
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	dir := filepath.Join(o.Dir, "tls")
	for _, d := range []string{o.Dir, dir} {
		if err := ensureDir(d); err != nil {
			return nil, err
		}
	}
	res := &Result{}
	ca, caKey, err := loadOrCreateCA(dir, now())
	if err != nil {
		return nil, err
	}
	res.CA, res.CAKey = ca, caKey
	res.CAPool = x509.NewCertPool()
	res.CAPool.AddCert(ca)
	res.CAFingerprint = Fingerprint(ca)

	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("bootstrap: give both a certificate and a key file, or neither")
	}
	if o.CertFile != "" {
		if err := loadExternal(res, o, now()); err != nil {
			return nil, err
		}
	} else if err := ensureServerCert(res, dir, serverNames(o), now()); err != nil {
		return nil, err
	}
	res.dir, res.names = dir, serverNames(o)
	cert := res.Server
	res.current.Store(&cert)

	if o.Keys != nil {
		if err := ensureAdminKey(ctx, res, o, now()); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// Fingerprint is "sha256:" and the hex SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TLSConfig is the server's TLS configuration: TLS 1.3 only, the server certificate, and client
// certificates requested (not required: API clients use keys) and verified against the CA for
// agents' mTLS. Handlers read r.TLS.VerifiedChains to tell an agent.
// The certificate is read per handshake (GetConfigForClient, which also covers clients that
// send no SNI, such as those dialing an IP address), so Renew takes effect without a restart.
func (r *Result) TLSConfig() *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  r.CAPool,
	}
	outer := base.Clone()
	if c := r.current.Load(); c != nil {
		outer.Certificates = []tls.Certificate{*c}
	}
	outer.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cfg := base.Clone()
		if c := r.current.Load(); c != nil {
			cfg.Certificates = []tls.Certificate{*c}
		}
		return cfg, nil
	}
	return outer
}

// Renew reissues the self-issued server certificate when it has less than 30 days left (call it
// daily from a long-running server); new handshakes use the new certificate. It reports whether
// it renewed. With an external certificate it only checks expiry and never rewrites the files.
func (r *Result) Renew(now time.Time) (bool, error) {
	if r.External {
		if left := r.ServerNotAfter.Sub(now); left < RenewBefore {
			return false, fmt.Errorf("bootstrap: the external server certificate expires on %s; replace it",
				r.ServerNotAfter.Format(time.DateOnly))
		}
		return false, nil
	}
	if r.dir == "" {
		return false, errors.New("bootstrap: Renew on a Result not made by Bootstrap")
	}
	cur := r.current.Load()
	if cur != nil && cur.Leaf != nil && needsRenewal(cur.Leaf, r.CA, r.names, now) == "" {
		return false, nil
	}
	next := &Result{CA: r.CA, CAKey: r.CAKey}
	if err := ensureServerCert(next, r.dir, r.names, now); err != nil {
		return false, err
	}
	cert := next.Server
	r.current.Store(&cert)
	return next.Issued, nil
}

// Current is the server certificate being served now.
func (r *Result) Current() *tls.Certificate { return r.current.Load() }

func ensureDir(d string) error {
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("bootstrap: create %s: %w", d, err)
	}
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// The directory holds private keys: tighten it rather than refuse, it is ours.
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("bootstrap: restrict %s to 0700: %w", d, err)
		}
	}
	return nil
}

func loadOrCreateCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	_, errC := os.Stat(certPath)
	_, errK := os.Stat(keyPath)
	switch {
	case errC == nil && errK == nil:
		cert, err := readCert(certPath)
		if err != nil {
			return nil, nil, err
		}
		key, err := readKey(keyPath)
		if err != nil {
			return nil, nil, err
		}
		if !samePublicKey(cert.PublicKey, key.Public()) {
			return nil, nil, fmt.Errorf("bootstrap: %s does not match %s", keyPath, certPath)
		}
		if !cert.IsCA {
			return nil, nil, fmt.Errorf("bootstrap: %s is not a CA certificate", certPath)
		}
		return cert, key, nil
	case errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist):
	default:
		// Half a CA: never overwrite what might be the only copy of a key agents trust.
		return nil, nil, fmt.Errorf("bootstrap: only one of %s and %s exists; restore the other or remove both", certPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "Vigil CA", Organization: []string{"Vigil"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap: CA certificate: %w", err)
	}
	// Key first: a crash between the two writes leaves "key without certificate", which the
	// check above reports instead of silently making a second CA.
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, 0o644, pemBlock("CERTIFICATE", der)); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap: %w", err)
	}
	return cert, key, nil
}

// serverNames are the SANs: localhost, loopback addresses, the hostname and extra names, deduped.
func serverNames(o Options) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if o.Hostname != "" {
		names = append(names, strings.ToLower(o.Hostname))
	}
	for _, n := range o.ExtraNames {
		if n = strings.TrimSpace(n); n != "" {
			if ip := net.ParseIP(n); ip != nil {
				n = ip.String()
			} else {
				n = strings.ToLower(n)
			}
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func ensureServerCert(res *Result, dir string, names []string, now time.Time) error {
	certPath, keyPath := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if tc, leaf, err := loadPair(certPath, keyPath); err == nil {
		if reason := needsRenewal(leaf, res.CA, names, now); reason == "" {
			res.Server, res.ServerNotAfter = tc, leaf.NotAfter
			return nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("bootstrap: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Vigil"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, res.CA, key.Public(), res.CAKey)
	if err != nil {
		return fmt.Errorf("bootstrap: server certificate: %w", err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	if err := writePEM(certPath, 0o644, pemBlock("CERTIFICATE", der), pemBlock("CERTIFICATE", res.CA.Raw)); err != nil {
		return err
	}
	tc, leaf, err := loadPair(certPath, keyPath)
	if err != nil {
		return err
	}
	res.Server, res.ServerNotAfter, res.Issued = tc, leaf.NotAfter, true
	return nil
}

// needsRenewal says why the server certificate must be reissued, or "".
func needsRenewal(leaf, ca *x509.Certificate, names []string, now time.Time) string {
	if leaf.NotAfter.Sub(now) < RenewBefore {
		return "expires within 30 days"
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return "not signed by the current CA"
	}
	var have []string
	have = append(have, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		have = append(have, ip.String())
	}
	slices.Sort(have)
	if !slices.Equal(have, names) {
		return "names changed"
	}
	return ""
}

func loadExternal(res *Result, o Options, now time.Time) error {
	tc, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return fmt.Errorf("bootstrap: load %s and %s: %w", o.CertFile, o.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil {
		return fmt.Errorf("bootstrap: %s: %w", o.CertFile, err)
	}
	tc.Leaf = leaf
	if err := privateFile(o.KeyFile); err != nil {
		return err
	}
	res.Server, res.ServerNotAfter, res.External = tc, leaf.NotAfter, true
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		return fmt.Errorf("bootstrap: certificate %s expired on %s", o.CertFile, leaf.NotAfter.Format(time.DateOnly))
	case left < RenewBefore:
		res.Warnings = append(res.Warnings, fmt.Sprintf("certificate %s expires on %s; replace it", o.CertFile, leaf.NotAfter.Format(time.DateOnly)))
	}
	return nil
}

func ensureAdminKey(ctx context.Context, res *Result, o Options, now time.Time) error {
	if o.AdminAccount == "" {
		return errors.New("bootstrap: an admin key needs an AdminAccount")
	}
	has, err := o.Keys.HasAdminKey(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: admin key: %w", err)
	}
	if has {
		return nil
	}
	raw, sk, err := auth.Issue(o.Hasher, o.AdminAccount, auth.RoleAdmin, "bootstrap admin", now, time.Time{})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := o.Keys.PutAdminKey(ctx, sk); errors.Is(err, ErrAdminKeyExists) {
		return nil
	} else if err != nil {
		return fmt.Errorf("bootstrap: store admin key: %w", err)
	}
	res.AdminKey = raw
	return nil
}

func loadPair(certPath, keyPath string) (tls.Certificate, *x509.Certificate, error) {
	if _, err := os.Stat(certPath); err != nil {
		return tls.Certificate{}, nil, err
	}
	if err := privateFile(keyPath); err != nil {
		return tls.Certificate{}, nil, err
	}
	tc, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("bootstrap: load %s: %w", certPath, err)
	}
	leaf, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("bootstrap: %s: %w", certPath, err)
	}
	tc.Leaf = leaf
	return tc, leaf, nil
}

// privateFile refuses a private key readable by group or others, like OpenSSH: someone may
// already have copied it.
func privateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("bootstrap: private key %s has mode %04o; it must be 0600", path, fi.Mode().Perm())
	}
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("bootstrap: %s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %s: %w", path, err)
	}
	return c, nil
}

func readKey(path string) (crypto.Signer, error) {
	if err := privateFile(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("bootstrap: %s holds no PKCS#8 PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("bootstrap: %s: unsupported key type %T", path, k)
	}
	return s, nil
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return writePEM(path, 0o600, pemBlock("PRIVATE KEY", der))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writePEM writes atomically: a temporary file created with the final mode, synced, renamed.
func writePEM(path string, mode os.FileMode, blocks ...[]byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("bootstrap: %w", err)
	}
	for _, b := range blocks {
		if _, err := f.Write(b); err != nil {
			f.Close()
			return fmt.Errorf("bootstrap: write %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("bootstrap: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func randSerial() *big.Int {
	// 128 random bits, positive (RFC 5280 allows up to 20 octets).
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	ae, ok := a.(eq)
	return ok && ae.Equal(b)
}
