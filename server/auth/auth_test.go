package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewKeyRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		s := k.String()
		if len(s) != KeyLen || !strings.HasPrefix(s, "vgl_") {
			t.Fatalf("bad key %q", s)
		}
		p, err := ParseKey(s)
		if err != nil {
			t.Fatalf("ParseKey(%q): %v", s, err)
		}
		if p != k {
			t.Fatalf("round trip %v != %v", p, k)
		}
		if seen[k.ID] || seen[k.Secret] {
			t.Fatal("repeated random value")
		}
		seen[k.ID], seen[k.Secret] = true, true
	}
}

func TestParseKeyRejects(t *testing.T) {
	good := "vgl_" + strings.Repeat("a", 16) + "_" + strings.Repeat("b", 51) + "a"
	if _, err := ParseKey(good); err != nil {
		t.Fatalf("good key rejected: %v", err)
	}
	cases := map[string]string{
		"empty":           "",
		"prefix":          "vgx_" + good[4:],
		"upper":           strings.ToUpper(good),
		"bad separator":   good[:20] + "-" + good[21:],
		"short":           good[:len(good)-1],
		"long":            good + "a",
		"alphabet 0":      good[:30] + "0" + good[31:],
		"alphabet 8":      good[:30] + "8" + good[31:],
		"noncanonical":    good[:len(good)-1] + "b", // trailing bits set
		"bearer included": "Bearer " + good,
		"spaces":          " " + good[1:],
	}
	for name, in := range cases {
		if _, err := ParseKey(in); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("%s: ParseKey(%q) = %v, want ErrMalformedKey", name, in, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h := Hasher{Pepper: []byte("0123456789abcdef0123456789abcdef")}
	store := &MemKeyStore{}
	mk := func(role Role, expires time.Time) (string, StoredKey) {
		raw, sk, err := Issue(h, "111111111111", role, "test", now.Add(-time.Hour), expires)
		if err != nil {
			t.Fatal(err)
		}
		store.Put(sk)
		return raw, sk
	}
	admin, _ := mk(RoleAdmin, time.Time{})
	ro, _ := mk(RoleReadOnly, now.Add(time.Hour))
	expired, _ := mk(RoleAdmin, now.Add(-time.Second))
	expiresNow, _ := mk(RoleAdmin, now)
	revoked, rsk := mk(RoleAdmin, time.Time{})
	if err := store.Revoke(rsk.ID, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	futureRevoked, frsk := mk(RoleAdmin, time.Time{})
	_ = store.Revoke(frsk.ID, now.Add(time.Minute))
	forged := admin[:len(admin)-2] + "aa"
	if forged == admin {
		forged = admin[:len(admin)-2] + "ba"
	}
	unknown, _ := NewKey()
	otherPepper, osk, _ := Issue(Hasher{}, "111111111111", RoleAdmin, "", now, time.Time{})
	store.Put(osk)

	a := &Authenticator{Store: store, Hasher: h, Now: func() time.Time { return now }}
	cases := []struct {
		name, key string
		want      error
		role      Role
	}{
		{"admin", admin, nil, RoleAdmin},
		{"read only", ro, nil, RoleReadOnly},
		{"expired", expired, ErrExpiredKey, ""},
		{"expires exactly now", expiresNow, ErrExpiredKey, ""},
		{"revoked", revoked, ErrRevokedKey, ""},
		{"revocation scheduled later", futureRevoked, nil, RoleAdmin},
		{"forged secret", forged, ErrWrongSecret, ""},
		{"unknown id", unknown.String(), ErrUnknownKey, ""},
		{"hashed with another pepper", otherPepper, ErrWrongSecret, ""},
		{"garbage", "hello", ErrMalformedKey, ""},
	}
	for _, c := range cases {
		p, err := a.Authenticate(context.Background(), c.key)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if p.Role != c.role || p.Account != "111111111111" || p.KeyID == "" {
				t.Errorf("%s: principal %+v", c.name, p)
			}
			continue
		}
		if !errors.Is(err, c.want) || !IsAuthError(err) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

type failingStore struct{}

func (failingStore) Lookup(context.Context, string) (StoredKey, error) {
	return StoredKey{}, errors.New("database is down")
}

func TestAuthenticateStoreFailureIsNotAuthError(t *testing.T) {
	k, _ := NewKey()
	_, err := (&Authenticator{Store: failingStore{}}).Authenticate(context.Background(), k.String())
	if err == nil || IsAuthError(err) {
		t.Fatalf("want infrastructure error, got %v", err)
	}
}

func TestHashBindsKeyID(t *testing.T) {
	k, _ := NewKey()
	k2 := k
	k2.ID = strings.Repeat("a", KeyIDLen)
	if string(Hasher{}.Hash(k)) == string(Hasher{}.Hash(k2)) {
		t.Fatal("hash ignores key id")
	}
	if string(Hasher{}.Hash(k)) == string(Hasher{Pepper: []byte("p")}.Hash(k)) {
		t.Fatal("hash ignores pepper")
	}
	if len(Hasher{}.Hash(k)) != 32 {
		t.Fatal("hash length")
	}
}

func FuzzParseKey(f *testing.F) {
	k, _ := NewKey()
	f.Add(k.String())
	f.Add("vgl_aaaaaaaaaaaaaaaa_" + strings.Repeat("b", 52))
	f.Add("vgl__")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseKey(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("accepted key does not round trip: %q -> %q", s, p.String())
		}
		if len(p.ID) != KeyIDLen || len(p.Secret) != SecretLen {
			t.Fatalf("bad part lengths %q", s)
		}
	})
}
