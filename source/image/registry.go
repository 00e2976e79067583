package image

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source"
)

// Registry pulls images from a registry ("registry:REF", e.g. registry:docker.io/library/debian:12).
// Layers are streamed from the registry and applied as they arrive; nothing is written to disk but
// the spool of wanted files.
type Registry struct {
	Limits Limits
	// Transport, when set, carries the requests (tests, proxies); nil is the default transport.
	Transport http.RoundTripper
	// UserAgent is sent with every request.
	UserAgent string
}

// Kind implements source.Opener.
func (Registry) Kind() string { return "registry" }

// Detect implements source.Opener: a registry reference is never a local path.
func (Registry) Detect(string) bool { return false }

// Open implements source.Opener.
func (o Registry) Open(ctx context.Context, ref string, opts source.Options) ([]*source.Target, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("image reference: %w", err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), authOption(opts.Auth)}
	if o.UserAgent != "" {
		ropts = append(ropts, remote.WithUserAgent(o.UserAgent))
	}
	switch {
	case o.Transport != nil:
		ropts = append(ropts, remote.WithTransport(o.Transport))
	case opts.Insecure:
		// As crane --insecure: plain HTTP and unverified TLS both allowed.
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by the user
		ropts = append(ropts, remote.WithTransport(t))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, fmt.Errorf("fetch manifest: %w", err)
	}
	info := model.SourceInfo{Kind: "registry", Name: ref}
	if t, ok := r.(name.Tag); ok {
		info.RepoTags = []string{t.Name()}
	}
	var picks []picked
	if desc.MediaType.IsIndex() {
		ii, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("image index: %w", err)
		}
		picks, err = pick(ii, opts.Platform, "")
		if err != nil {
			return nil, err
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		if err := checkPlatform(img, opts.Platform); err != nil {
			return nil, err
		}
		picks = []picked{{img: img}}
	}
	for i := range picks {
		picks[i].tags = nil // the reference names them all
	}
	return readPicks(ctx, picks, info, opts, o.Limits)
}

// checkPlatform refuses a single-platform image that does not match a platform the user asked for.
func checkPlatform(img v1.Image, platform string) error {
	if platform == "" || platform == "all" {
		return nil
	}
	spec, err := v1.ParsePlatform(platform)
	if err != nil {
		return fmt.Errorf("platform %q: %w", platform, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	if p := cfg.Platform(); p != nil && p.OS != "" && !platformMatch(*p, *spec) {
		return fmt.Errorf("the image is for %s, not %s", p, platform)
	}
	return nil
}

// authOption chooses credentials: a bearer token, then a user name and password, then a docker
// config.json (the given one or the default one), then anonymous.
func authOption(c source.Credentials) remote.Option {
	switch {
	case c.Token != "":
		return remote.WithAuth(&authn.Bearer{Token: c.Token})
	case c.Username != "" || c.Password != "":
		return remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password})
	case c.DockerConfig != "":
		return remote.WithAuthFromKeychain(configKeychain{path: c.DockerConfig})
	}
	return remote.WithAuthFromKeychain(authn.DefaultKeychain)
}

// configKeychain reads credentials from one docker config.json (a file, or a directory holding one).
type configKeychain struct{ path string }

func (k configKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	p := k.path
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		p = p + string(os.PathSeparator) + config.ConfigFileName
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", p, err)
	}
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		ac, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("docker config %s: %w", p, err)
		}
		if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
			return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
				IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
		}
	}
	return authn.Anonymous, nil
}
