// Package auth holds API keys (generation, parsing, hashing, verification), the authenticated
// Principal and the authorization policy (roles × actions × organization relationship).
//
// Keys look like vgl_<keyid>_<secret>: the key id (10 random bytes, 16 base32 characters) is a
// public handle used to look the key up; the secret (32 random bytes from crypto/rand, 52 base32
// characters) is never stored. Both parts use lowercase RFC 4648 base32 without padding, so a key
// has no characters that need quoting in shells, URLs or headers and is selected whole by a
// double click.
//
// Only a hash of the secret is persisted. Secrets carry 256 bits of entropy, so a slow password
// KDF (bcrypt, argon2) adds latency to every request without adding protection: nobody can
// enumerate a 2^256 space. The hash is HMAC-SHA-256 keyed with an optional server pepper (a
// database leak alone then does not even allow offline verification of a stolen key); without a
// pepper it is HMAC keyed with a fixed domain-separation string, i.e. a plain salted SHA-256. The
// key id is bound into the MAC so a hash row cannot be moved to another key id. Several server
// processes sharing one database must use the same pepper.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

const (
	// KeyPrefix starts every API key; secret scanners can match on it.
	KeyPrefix = "vgl_"
	// KeyIDLen and SecretLen are the encoded lengths of the two parts.
	KeyIDLen  = 16 // 10 bytes
	SecretLen = 52 // 32 bytes
	// KeyLen is the length of a whole key.
	KeyLen = len(KeyPrefix) + KeyIDLen + 1 + SecretLen

	keyIDBytes  = 10
	secretBytes = 32
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Errors returned by authentication. Callers answer every one of them with the same 401 so a
// client learns nothing about which part was wrong; the distinction is for logs.
var (
	ErrMalformedKey = errors.New("malformed API key")
	ErrUnknownKey   = errors.New("unknown API key")
	ErrWrongSecret  = errors.New("API key secret does not match")
	ErrExpiredKey   = errors.New("API key expired")
	ErrRevokedKey   = errors.New("API key revoked")
)

// ParsedKey is a syntactically valid key split into its parts.
type ParsedKey struct {
	ID     string
	Secret string
}

// ParseKey checks the syntax of a presented key without any lookup. It is strict (exact lengths,
// lowercase base32 alphabet) so garbage is rejected before it reaches the store.
func ParseKey(s string) (ParsedKey, error) {
	if len(s) != KeyLen || !strings.HasPrefix(s, KeyPrefix) {
		return ParsedKey{}, ErrMalformedKey
	}
	rest := s[len(KeyPrefix):]
	if rest[KeyIDLen] != '_' {
		return ParsedKey{}, ErrMalformedKey
	}
	id, secret := rest[:KeyIDLen], rest[KeyIDLen+1:]
	if !isB32(id) || !isB32(secret) {
		return ParsedKey{}, ErrMalformedKey
	}
	// Both lengths leave trailing bits; the canonical encoding has them zero. Rejecting
	// non-canonical forms keeps one key = one string.
	if _, err := decodeCanonical(id, keyIDBytes); err != nil {
		return ParsedKey{}, ErrMalformedKey
	}
	if _, err := decodeCanonical(secret, secretBytes); err != nil {
		return ParsedKey{}, ErrMalformedKey
	}
	return ParsedKey{ID: id, Secret: secret}, nil
}

func isB32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func decodeCanonical(s string, n int) ([]byte, error) {
	b, err := b32.DecodeString(s)
	if err != nil || len(b) != n || b32.EncodeToString(b) != s {
		return nil, ErrMalformedKey
	}
	return b, nil
}

// String reassembles the key. Use only to hand a new key to its owner once.
func (k ParsedKey) String() string { return KeyPrefix + k.ID + "_" + k.Secret }

// NewKey draws a fresh key from crypto/rand.
func NewKey() (ParsedKey, error) {
	id := make([]byte, keyIDBytes)
	sec := make([]byte, secretBytes)
	if _, err := rand.Read(id); err != nil {
		return ParsedKey{}, fmt.Errorf("generate key id: %w", err)
	}
	if _, err := rand.Read(sec); err != nil {
		return ParsedKey{}, fmt.Errorf("generate key secret: %w", err)
	}
	return ParsedKey{ID: b32.EncodeToString(id), Secret: b32.EncodeToString(sec)}, nil
}

// Hasher turns secrets into stored hashes. The zero value (no pepper) is valid.
type Hasher struct {
	// Pepper is an optional server-wide secret (>= 32 random bytes recommended), kept outside
	// the database. Changing it invalidates every stored key.
	Pepper []byte
}

const hashDomain = "vigil api key v1"

// Hash returns the 32-byte hash stored for a key.
func (h Hasher) Hash(k ParsedKey) []byte {
	key := h.Pepper
	if len(key) == 0 {
		key = []byte(hashDomain)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(hashDomain))
	m.Write([]byte{0})
	m.Write([]byte(k.ID))
	m.Write([]byte{0})
	m.Write([]byte(k.Secret))
	return m.Sum(nil)
}

// StoredKey is what the server persists for one API key: never the secret.
type StoredKey struct {
	ID        string
	Hash      []byte
	Account   string
	Role      Role
	Name      string // a label chosen by the owner ("ci", "grafana")
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
}

// Active reports whether the key may be used at now.
func (s *StoredKey) Active(now time.Time) error {
	if !s.RevokedAt.IsZero() && !now.Before(s.RevokedAt) {
		return ErrRevokedKey
	}
	if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
		return ErrExpiredKey
	}
	return nil
}

// KeyStore finds stored keys by id. server/store implements it over SQL; MemKeyStore is for
// tests. Lookup returns ErrUnknownKey (possibly wrapped) when there is no such key.
type KeyStore interface {
	Lookup(ctx context.Context, keyID string) (StoredKey, error)
}

// Principal is who made an authenticated request.
type Principal struct {
	Account string
	Role    Role
	KeyID   string
}

// Authenticator verifies presented keys against a KeyStore.
type Authenticator struct {
	Store  KeyStore
	Hasher Hasher
	Now    func() time.Time // nil: time.Now
}

// Authenticate verifies a raw presented key. Every failure wraps one of the Err*Key errors.
func (a *Authenticator) Authenticate(ctx context.Context, raw string) (Principal, error) {
	k, err := ParseKey(raw)
	if err != nil {
		return Principal{}, err
	}
	sk, err := a.Store.Lookup(ctx, k.ID)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return Principal{}, ErrUnknownKey
		}
		return Principal{}, fmt.Errorf("look up API key %s: %w", k.ID, err)
	}
	// Constant time: the comparison must not reveal how many leading bytes matched.
	if subtle.ConstantTimeCompare(a.Hasher.Hash(k), sk.Hash) != 1 {
		return Principal{}, ErrWrongSecret
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	if err := sk.Active(now); err != nil {
		return Principal{}, err
	}
	if !sk.Role.Valid() {
		return Principal{}, fmt.Errorf("API key %s has unknown role %q: %w", sk.ID, sk.Role, ErrUnknownKey)
	}
	return Principal{Account: sk.Account, Role: sk.Role, KeyID: sk.ID}, nil
}

// IsAuthError reports whether err is a credential failure (answer 401) rather than an
// infrastructure failure (answer 500).
func IsAuthError(err error) bool {
	for _, e := range []error{ErrMalformedKey, ErrUnknownKey, ErrWrongSecret, ErrExpiredKey, ErrRevokedKey} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Issue creates a new key for account with role, returning the key to show once and the row to
// persist.
func Issue(h Hasher, account string, role Role, name string, now, expires time.Time) (string, StoredKey, error) {
	if !role.Valid() {
		return "", StoredKey{}, fmt.Errorf("issue API key: unknown role %q", role)
	}
	k, err := NewKey()
	if err != nil {
		return "", StoredKey{}, err
	}
	return k.String(), StoredKey{
		ID: k.ID, Hash: h.Hash(k), Account: account, Role: role, Name: name,
		CreatedAt: now, ExpiresAt: expires,
	}, nil
}

// MemKeyStore is an in-memory KeyStore for tests and single-process tools.
type MemKeyStore struct {
	mu   sync.RWMutex
	keys map[string]StoredKey
}

// Put adds or replaces a key.
func (m *MemKeyStore) Put(k StoredKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]StoredKey{}
	}
	k.Hash = append([]byte(nil), k.Hash...)
	m.keys[k.ID] = k
}

// Revoke marks a key revoked at t.
func (m *MemKeyStore) Revoke(id string, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return ErrUnknownKey
	}
	k.RevokedAt = t
	m.keys[id] = k
	return nil
}

// Lookup implements KeyStore.
func (m *MemKeyStore) Lookup(_ context.Context, id string) (StoredKey, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.keys[id]
	if !ok {
		return StoredKey{}, ErrUnknownKey
	}
	k.Hash = append([]byte(nil), k.Hash...)
	return k, nil
}

// Len reports how many keys are stored.
func (m *MemKeyStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.keys)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
