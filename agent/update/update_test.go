package update

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The release key of the tests: a fixed seed, so that failures are reproducible.
var (
	testPriv  = ed25519.NewKeyFromSeed([]byte("vigil-agent-test-release-key-32b"))
	testPub   = testPriv.Public().(ed25519.PublicKey)
	otherPriv = ed25519.NewKeyFromSeed([]byte("some-other-key-that-is-not-ours!"))
)

func TestVerify(t *testing.T) {
	body := []byte("\x7fELF vigil-agent 1.4.0")
	sha, sig := Sign(body, testPriv)
	_, otherSig := Sign(body, otherPriv)
	tampered := append([]byte{}, body...)
	tampered[5] ^= 1
	tests := []struct {
		name      string
		body      []byte
		sha, sig  string
		key       ed25519.PublicKey
		wantErr   error
		wantNoErr bool
	}{
		{"good", body, sha, sig, testPub, nil, true},
		{"tampered body", tampered, sha, sig, testPub, ErrDigest, false},
		{"signed by another key", body, sha, otherSig, testPub, ErrSignature, false},
		{"unsigned", body, sha, "", testPub, ErrUnsigned, false},
		{"no headers", body, "", "", testPub, ErrUnsigned, false},
		{"signature of another digest", tampered, Sha(tampered), sig, testPub, ErrSignature, false},
		{"garbage signature", body, sha, "!!notbase64", testPub, ErrSignature, false},
		{"garbage digest", body, "abc", sig, testPub, ErrDigest, false},
		{"no pinned key", body, sha, sig, nil, ErrNoReleaseKey, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.body, tc.sha, tc.sig, tc.key)
			if tc.wantNoErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// Sha is the hex digest header of body.
func Sha(body []byte) string { s, _ := Sign(body, testPriv); return s }

func TestParseKey(t *testing.T) {
	std := base64.StdEncoding.EncodeToString(testPub)
	raw := base64.RawURLEncoding.EncodeToString(testPub)
	for _, s := range []string{std, raw, " " + std + "\n"} {
		k, err := ParseKey(s)
		if err != nil || !k.Equal(testPub) {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseKey(""); !errors.Is(err, ErrNoReleaseKey) {
		t.Error(err)
	}
	if _, err := ParseKey(base64.StdEncoding.EncodeToString([]byte("short"))); err == nil {
		t.Error("short key accepted")
	}
}

func setup(t *testing.T) (exe, marker string) {
	d := t.TempDir()
	exe = filepath.Join(d, "vigil-agent")
	if err := os.WriteFile(exe, []byte("old binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe, filepath.Join(d, "healthy")
}

func read(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestInstallAndGate(t *testing.T) {
	healthy := func(version string) HealthCheck {
		return func(_ context.Context, exe string) error {
			if read(t, exe) != "new binary" {
				t.Errorf("health check ran %q", read(t, exe))
			}
			return os.WriteFile(filepath.Join(filepath.Dir(exe), "healthy"), []byte(version+"\n"), 0o600)
		}
	}
	tests := []struct {
		name    string
		check   HealthCheck
		wantExe string
		wantErr bool
	}{
		{"healthy", healthy("1.4.0"), "new binary", false},
		{"check fails", func(context.Context, string) error { return errors.New("exit status 1") }, "old binary", true},
		{"no marker", func(context.Context, string) error { return nil }, "old binary", true},
		{"marker of another version", healthy("1.3.9"), "old binary", true},
		{"hangs past the timeout", func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() }, "old binary", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exe, marker := setup(t)
			if err := os.WriteFile(marker, []byte("1.4.0\n"), 0o600); err != nil { // stale marker
				t.Fatal(err)
			}
			if err := Install(exe, []byte("new binary")); err != nil {
				t.Fatal(err)
			}
			if read(t, exe) != "new binary" || read(t, Previous(exe)) != "old binary" {
				t.Fatalf("after install: exe %q previous %q", read(t, exe), read(t, Previous(exe)))
			}
			if fi, _ := os.Stat(exe); fi.Mode().Perm() != 0o755 {
				t.Errorf("mode %v", fi.Mode())
			}
			err := Gate(context.Background(), exe, "1.4.0", marker, 200*time.Millisecond, tc.check)
			if (err != nil) != tc.wantErr {
				t.Errorf("gate err = %v", err)
			}
			if got := read(t, exe); got != tc.wantExe {
				t.Errorf("exe holds %q, want %q", got, tc.wantExe)
			}
			if _, err := os.Stat(exe + ".new"); err == nil {
				t.Error(".new left behind")
			}
		})
	}
}

func TestInstallTwiceKeepsLastPrevious(t *testing.T) {
	exe, _ := setup(t)
	if err := Install(exe, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := Install(exe, []byte("v3")); err != nil {
		t.Fatal(err)
	}
	if read(t, exe) != "v3" || read(t, Previous(exe)) != "v2" {
		t.Errorf("exe %q previous %q", read(t, exe), read(t, Previous(exe)))
	}
	if err := Rollback(exe); err != nil || read(t, exe) != "v2" {
		t.Errorf("rollback: %v, exe %q", err, read(t, exe))
	}
	if err := Rollback(exe); err == nil {
		t.Error("second rollback without a previous binary succeeded")
	}
}

func TestCheckPending(t *testing.T) {
	exe, _ := setup(t)
	if err := Install(exe, []byte("new binary")); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(filepath.Dir(exe), "update.json")
	if err := os.WriteFile(marker, []byte(`{"from":"1.3.0","to":"1.4.0","starts":0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= MaxStarts; i++ {
		rb, err := CheckPending(marker, exe, "1.4.0")
		if err != nil || rb {
			t.Fatalf("start %d: rolled back %v, %v", i, rb, err)
		}
	}
	rb, err := CheckPending(marker, exe, "1.4.0")
	if err != nil || !rb {
		t.Fatalf("start %d: rolled back %v, %v", MaxStarts+1, rb, err)
	}
	if read(t, exe) != "old binary" {
		t.Errorf("exe %q after rollback", read(t, exe))
	}
	// The restored binary finds no marker and runs normally.
	if rb, err := CheckPending(marker, exe, "1.3.0"); rb || err != nil {
		t.Errorf("after rollback: %v %v", rb, err)
	}
}
