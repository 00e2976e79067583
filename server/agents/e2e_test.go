package agents_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/agents"
	"github.com/vigil-sec/vigil/server/app"
	"github.com/vigil-sec/vigil/server/bootstrap"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// The real lodash advisory (GHSA-35jh-r3h4-6jhm, CVE-2021-23337), in OSV form.
const lodashGHSA = `{"id": "GHSA-35jh-r3h4-6jhm", "modified": "2024-02-20T00:00:00Z", "aliases": ["CVE-2021-23337"],
 "summary": "Command Injection in lodash", "database_specific": {"severity": "HIGH"},
 "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
   "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}`

// TestAgentToFindings runs an agent's enrollment and inventory upload into the real server
// (server/app) as the sink: the host gets its finding and its coverage.
func TestAgentToFindings(t *testing.T) {
	ctx := context.Background()
	data, mirror := t.TempDir(), t.TempDir()
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.Create("GHSA-35jh-r3h4-6jhm.json")
	w.Write([]byte(lodashGHSA))
	zw.Close()
	os.MkdirAll(filepath.Join(mirror, "osv", "npm"), 0o755)
	if err := os.WriteFile(filepath.Join(mirror, "osv", "npm", "all.zip"), zbuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	vdb, err := vulndb.Open(ctx, filepath.Join(data, "vulndb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vdb.ImportMirror(ctx, mirror, vulndb.MirrorOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	vdb.Close()
	srv, err := app.New(ctx, app.Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	boot, err := bootstrap.Bootstrap(ctx, bootstrap.Options{Dir: data}) // loads the server's CA
	if err != nil {
		t.Fatal(err)
	}
	st, err := agents.NewSQL(ctx, srv.Store.DB(), srv.Store.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := agents.New(agents.Config{Storage: st, Fleet: srv.Store, CA: boot.CA, CAKey: boot.CAKey,
		Sink: agents.SinkFunc(func(ctx context.Context, r model.Resource, inv *model.Inventory) error {
			_, err := srv.Submit(ctx, r, inv)
			return err
		})})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(svc.Handler())
	hs.TLS = srv.TLSConfig()
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	defer hs.Close()

	_, secret, err := svc.CreateToken(ctx, agents.TokenSpec{Account: app.DefaultAccount, Name: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	post := func(c *http.Client, method, path string, body []byte, out any, gz bool) int {
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && out != nil {
			json.Unmarshal(b, out)
		}
		return resp.StatusCode
	}
	pool := x509.NewCertPool()
	pool.AddCert(boot.CA)
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body, _ := json.Marshal(protocol.EnrollRequest{Token: secret, Hostname: "app-7", Version: "0.3.0",
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	var er protocol.EnrollResponse
	if code := post(plain, "POST", protocol.PathEnroll, body, &er, false); code != 200 {
		t.Fatalf("enroll %d", code)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(er.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	if err != nil {
		t.Fatal(err)
	}
	agent := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}

	inv := &model.Inventory{Source: model.SourceInfo{Kind: "dir", Name: "/"},
		OS: &model.OS{Family: "debian", VersionID: "12", Ecosystem: "Debian:12"},
		Packages: []model.Package{{Name: "lodash", Version: "4.17.20", Ecosystem: model.EcoNPM, PURL: "pkg:npm/lodash@4.17.20",
			Locations: []string{"/srv/app/node_modules/lodash/package.json"}, Extractor: "npm"}}}
	var gzb bytes.Buffer
	gw := gzip.NewWriter(&gzb)
	json.NewEncoder(gw).Encode(protocol.Upload{Hash: protocol.InventoryHash(inv), Full: inv})
	gw.Close()
	var ur protocol.UploadResponse
	if code := post(agent, "PUT", protocol.PathInventory, gzb.Bytes(), &ur, true); code != 200 || ur.NeedFull {
		t.Fatalf("upload %d %+v", code, ur)
	}
	page, err := srv.Store.ListFindings(ctx, []string{app.DefaultAccount}, store.FindingQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Findings) != 1 || page.Findings[0].ResourceID != er.AgentID || page.Findings[0].VulnerabilityID != "CVE-2021-23337" {
		t.Fatalf("findings %+v", page.Findings)
	}
	cov, err := srv.Store.ListCoverage(ctx, []string{app.DefaultAccount}, store.CoverageQuery{ResourceIDs: []string{er.AgentID}})
	if err != nil || len(cov.Coverage) != 1 || cov.Coverage[0].Reason != model.ReasonSuccessful || cov.Coverage[0].ScanMode != agents.ScanModeAgent {
		t.Fatalf("coverage %+v %v", cov.Coverage, err)
	}
}
