package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/model"
)

// submitFlags send an inventory to a Vigil server instead of (or besides) printing it.
type submitFlags struct {
	server, apiKey, caFile, caFingerprint string
	resourceType, resourceID, account     string
	tags                                  []string
}

func (f *submitFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "submit", "", "send the inventory to this Vigil server URL (https://host:8443)")
	fl.StringVar(&f.apiKey, "api-key", os.Getenv("VIGIL_API_KEY"), "API key for --submit ($VIGIL_API_KEY)")
	fl.StringVar(&f.caFile, "ca-file", os.Getenv("VIGIL_CA_FILE"), "the server's CA certificate (PEM) for --submit")
	fl.StringVar(&f.caFingerprint, "ca-fingerprint", os.Getenv("VIGIL_CA_FINGERPRINT"), "pin the server's CA by its SHA-256 fingerprint instead")
	fl.StringVar(&f.resourceType, "resource-type", "host", "resource type for --submit: host, image or function")
	fl.StringVar(&f.resourceID, "resource-id", "", "resource ID for --submit (default: the target's name or image digest)")
	fl.StringVar(&f.account, "account", "", "account for --submit (default: the key's own)")
	fl.StringSliceVar(&f.tags, "tag", nil, "resource tag KEY=VALUE for --submit (repeatable)")
}

// httpClient trusts exactly the server's CA: from a file, or pinned by fingerprint.
func (f *submitFlags) httpClient() (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13}
	switch {
	case f.caFile != "":
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", f.caFile)
		}
		tc.RootCAs = pool
	case f.caFingerprint != "":
		want := strings.ToLower(strings.TrimPrefix(strings.ReplaceAll(f.caFingerprint, ":", ""), "sha256"))
		// The chain's root must be the pinned CA; the leaf must be signed by it.
		tc.InsecureSkipVerify = true
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			var ca *x509.Certificate
			for _, r := range raw[1:] {
				sum := sha256.Sum256(r)
				if hex.EncodeToString(sum[:]) == want {
					ca, _ = x509.ParseCertificate(r)
				}
			}
			if ca == nil {
				return errors.New("the server did not present the pinned CA")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			return leaf.CheckSignatureFrom(ca)
		}
	}
	return &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: tc}}, nil
}

// submit sends each inventory to the server.
func (f *submitFlags) submit(w io.Writer, invs []*model.Inventory) error {
	if f.apiKey == "" {
		return errors.New("--submit needs --api-key or $VIGIL_API_KEY")
	}
	hc, err := f.httpClient()
	if err != nil {
		return err
	}
	tags := map[string]string{}
	for _, t := range f.tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return fmt.Errorf("--tag %q: want KEY=VALUE", t)
		}
		tags[k] = v
	}
	for _, inv := range invs {
		id := f.resourceID
		if id == "" {
			id = firstNonEmpty(inv.Source.Digest, inv.Source.Name)
		}
		if len(invs) > 1 && inv.Source.Platform != "" {
			id += "@" + inv.Source.Platform
		}
		body, err := json.Marshal(model.InventorySubmission{Account: f.account, Name: inv.Source.Name, Tags: tags,
			ScanMode: "upload", Inventory: *inv})
		if err != nil {
			return err
		}
		url := strings.TrimRight(f.server, "/") + "/v1/resources/" + f.resourceType + "/" + pathEscape(id) + "/inventory"
		req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+f.apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("submitting to %s: %w", f.server, err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("submitting to %s: %s: %s", f.server, resp.Status, strings.TrimSpace(string(b)))
		}
		var res model.SubmissionResult
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("submitting to %s: %w", f.server, err)
		}
		state := "updated"
		if res.Unchanged {
			state = "unchanged"
		}
		fmt.Fprintf(w, "submitted %s/%s: inventory %s, %d active findings (%d new, %d closed)\n",
			f.resourceType, res.ResourceID, state, res.Findings, res.Created, res.Closed)
	}
	return nil
}

// pathEscape keeps resource IDs with slashes or colons (image digests, paths) in one path segment.
func pathEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "/", "%2F", "?", "%3F", "#", "%23", " ", "%20")
	return r.Replace(s)
}
