package agents

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tokenPrefix marks a join token, so secret scanners and people recognise one.
const tokenPrefix = "vjt_"

// TokenSpec describes a join token to create.
type TokenSpec struct {
	Account string
	Name    string
	// Validity from now (default 24h, at most a year); MaxUses default 1, at most 100000.
	Validity time.Duration
	MaxUses  int
}

// CreateToken makes a join token and returns it with its secret, which is shown once and stored
// only as a hash. The secret has 256 random bits, so a plain SHA-256 is a sufficient hash.
func (s *Service) CreateToken(ctx context.Context, spec TokenSpec) (JoinToken, string, error) {
	if spec.Account == "" {
		return JoinToken{}, "", errors.New("agents: a join token needs an account")
	}
	if len(spec.Name) > 200 {
		return JoinToken{}, "", errors.New("agents: join token name longer than 200 characters")
	}
	if spec.Validity <= 0 {
		spec.Validity = DefaultTokenValidity
	}
	if spec.Validity > MaxTokenValidity {
		return JoinToken{}, "", fmt.Errorf("agents: join token validity above %s", MaxTokenValidity)
	}
	if spec.MaxUses <= 0 {
		spec.MaxUses = 1
	}
	if spec.MaxUses > 100000 {
		return JoinToken{}, "", errors.New("agents: join token use limit above 100000")
	}
	id, secret := randHex(8), randB64(32)
	now := s.nowUTC()
	t := JoinToken{ID: id, Account: spec.Account, Name: spec.Name, Hash: hashSecret(secret), CreatedAt: now,
		ExpiresAt: now.Add(spec.Validity), MaxUses: spec.MaxUses}
	if err := s.st.CreateToken(ctx, t); err != nil {
		return JoinToken{}, "", err
	}
	return t, tokenPrefix + id + "_" + secret, nil
}

// redeemToken checks a presented token and takes one use of it. Every refusal is the same
// error, so a caller learns nothing about which tokens exist.
func (s *Service) redeemToken(ctx context.Context, presented string) (JoinToken, error) {
	rest, ok := strings.CutPrefix(presented, tokenPrefix)
	if !ok {
		return JoinToken{}, ErrTokenUnusable
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" || len(secret) > 128 {
		return JoinToken{}, ErrTokenUnusable
	}
	t, err := s.st.GetToken(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return JoinToken{}, ErrTokenUnusable
	} else if err != nil {
		return JoinToken{}, err
	}
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hashSecret(secret))) != 1 {
		return JoinToken{}, ErrTokenUnusable
	}
	// The conditional update is the check that counts: two enrollments racing for the last use
	// cannot both win.
	if err := s.st.ConsumeToken(ctx, id, s.nowUTC()); err != nil {
		if errors.Is(err, ErrNotFound) {
			return JoinToken{}, ErrTokenUnusable
		}
		return JoinToken{}, err
	}
	return t, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func randB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
