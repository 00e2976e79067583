package image

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vigil-sec/vigil/source"
)

const (
	regUser  = "vigil-scanner"
	regPass  = "correct horse battery staple"
	regToken = "tok-7c1e1f"
)

// authRegistry is go-containerregistry's in-memory registry behind basic auth or a static bearer
// token, as a private registry is.
func authRegistry(t *testing.T) *httptest.Server {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == regUser && p == regPass {
			h.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") == "Bearer "+regToken {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="vigil-test"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// pushIndex pushes a two-platform index (linux/amd64, linux/arm64/v8) and a single image.
func pushIndex(t *testing.T, host string) (idxRef, imgRef string, digests map[string]string) {
	amd, _ := debianImage(t, "amd64")
	arm, _ := debianImage(t, "arm64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	auth := remote.WithAuth(&authn.Basic{Username: regUser, Password: regPass})
	idxRef = host + "/library/debian:12"
	ir, _ := name.ParseReference(idxRef)
	if err := remote.WriteIndex(ir, idx, auth); err != nil {
		t.Fatal(err)
	}
	imgRef = host + "/library/debian:12-amd64"
	mr, _ := name.ParseReference(imgRef)
	if err := remote.Write(mr, amd, auth); err != nil {
		t.Fatal(err)
	}
	da, _ := amd.Digest()
	dr, _ := arm.Digest()
	return idxRef, imgRef, map[string]string{"linux/amd64": da.String(), "linux/arm64/v8": dr.String()}
}

func TestRegistry(t *testing.T) {
	srv := authRegistry(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	idxRef, imgRef, digests := pushIndex(t, host)
	basic := source.Credentials{Username: regUser, Password: regPass}
	ctx := context.Background()

	arch := func(t *testing.T, tg *source.Target) string {
		b, err := fs.ReadFile(tg.FS, "etc/arch")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Run("anonymous refused", func(t *testing.T) {
		dir := t.TempDir() // an empty docker config: anonymous
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o600)
		_, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: source.Credentials{DockerConfig: dir}})
		if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: source.Credentials{Username: regUser, Password: "nope"}})
		if err == nil {
			t.Error("no error")
		}
	})
	t.Run("default platform", func(t *testing.T) {
		ts, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: basic, Insecure: true})
		if err != nil || len(ts) != 1 {
			t.Fatalf("%d targets, %v", len(ts), err)
		}
		defer ts[0].Close()
		if got := arch(t, ts[0]); got != "amd64" {
			t.Errorf("arch = %s", got)
		}
		in := ts[0].Info
		if in.Kind != "registry" || in.Digest != digests["linux/amd64"] || in.Platform != "linux/amd64" ||
			len(in.Layers) != 2 || len(in.RepoTags) != 1 || in.RepoTags[0] != idxRef {
			t.Errorf("info = %+v", in)
		}
	})
	t.Run("arm64", func(t *testing.T) {
		ts, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: basic, Platform: "linux/arm64"})
		if err != nil {
			t.Fatal(err)
		}
		defer ts[0].Close()
		if got := arch(t, ts[0]); got != "arm64" || ts[0].Info.Platform != "linux/arm64/v8" || ts[0].Info.Digest != digests["linux/arm64/v8"] {
			t.Errorf("arch = %s, info %+v", got, ts[0].Info)
		}
	})
	t.Run("all", func(t *testing.T) {
		ts, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: basic, Platform: "all"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tg := range ts {
			got = append(got, tg.Info.Platform+"="+arch(t, tg))
			if tg.Info.Digest != digests[tg.Info.Platform] {
				t.Errorf("%s digest %s", tg.Info.Platform, tg.Info.Digest)
			}
			tg.Close()
		}
		sort.Strings(got)
		if fmt.Sprint(got) != "[linux/amd64=amd64 linux/arm64/v8=arm64]" {
			t.Errorf("targets = %v", got)
		}
	})
	t.Run("missing platform", func(t *testing.T) {
		_, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: basic, Platform: "linux/ppc64le"})
		if err == nil || !strings.Contains(err.Error(), "linux/arm64/v8") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("single image, platform mismatch", func(t *testing.T) {
		if _, err := (Registry{}).Open(ctx, imgRef, source.Options{Auth: basic, Platform: "linux/arm64"}); err == nil {
			t.Error("no error")
		}
		ts, err := Registry{}.Open(ctx, imgRef, source.Options{Auth: basic})
		if err != nil {
			t.Fatal(err)
		}
		ts[0].Close()
	})
	t.Run("docker config", func(t *testing.T) {
		dir := t.TempDir()
		cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(regUser+":"+regPass)))
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600)
		for _, p := range []string{dir, filepath.Join(dir, "config.json")} {
			ts, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: source.Credentials{DockerConfig: p}})
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			ts[0].Close()
		}
	})
	t.Run("bearer token", func(t *testing.T) {
		ts, err := Registry{}.Open(ctx, idxRef, source.Options{Auth: source.Credentials{Token: regToken}})
		if err != nil {
			t.Fatal(err)
		}
		ts[0].Close()
	})
	t.Run("cancelled", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := (Registry{}).Open(c, idxRef, source.Options{Auth: basic}); err == nil {
			t.Error("no error")
		}
	})
}
