package agents

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

func deb(name, version, src, srcVersion string) model.Package {
	return model.Package{Name: name, Version: version, Ecosystem: "Debian:12", SourceName: src, SourceVersion: srcVersion,
		PURL: "pkg:deb/debian/" + name + "@" + version + "?arch=amd64&distro=debian-12", Arch: "amd64",
		Locations: []string{"/var/lib/dpkg/status"}, Extractor: "dpkg"}
}

func baseInventory() *model.Inventory {
	return &model.Inventory{
		Source: model.SourceInfo{Kind: "dir", Name: "/"},
		OS:     debianOS,
		Packages: []model.Package{
			deb("openssl", "3.0.15-1~deb12u1", "openssl", "3.0.15-1~deb12u1"),
			deb("libssl3", "3.0.15-1~deb12u1", "openssl", "3.0.15-1~deb12u1"),
			deb("curl", "7.88.1-10+deb12u8", "curl", "7.88.1-10+deb12u8"),
			deb("libcurl4", "7.88.1-10+deb12u8", "curl", "7.88.1-10+deb12u8"),
			deb("bash", "5.2.15-2+b7", "bash", "5.2.15-2"),
		},
		Extractors: []model.ExtractorStatus{{Name: "dpkg", Version: 1, Status: model.StatusOK, Files: 1, Packages: 5}},
	}
}

func packageIDs(inv *model.Inventory) []string {
	var ids []string
	for _, p := range inv.Packages {
		ids = append(ids, protocol.PackageIdentity(p))
	}
	slices.Sort(ids)
	return ids
}

func TestUploadFullThenDelta(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		e := h.enroll("web-2")
		full := baseInventory()
		h1 := protocol.InventoryHash(full)
		facts := &protocol.Facts{Hostname: "web-2", Listening: []protocol.Socket{{Protocol: "tcp", Address: "0.0.0.0", Port: 22, PID: 612, Process: "sshd"}}}
		code, out := h.upload(e, protocol.Upload{Hash: h1, Full: full, Facts: facts, CollectedAt: h.clock.Now()})
		if code != 200 || out.Hash != h1 || out.NeedFull {
			t.Fatalf("full upload: %d %+v", code, out)
		}
		subs := h.sink.all()
		if len(subs) != 1 || subs[0].res.ID != e.id || subs[0].res.Type != model.ResourceHost || subs[0].res.Account != testAccount ||
			subs[0].res.ScanMode != ScanModeAgent || protocol.InventoryHash(subs[0].inv) != h1 {
			t.Fatalf("sink after full upload: %+v", subs)
		}
		a, err := h.st.GetAgent(context.Background(), e.id)
		if err != nil {
			t.Fatal(err)
		}
		if a.InventoryHash != h1 || a.Facts == nil || a.Facts.Listening[0].Process != "sshd" || a.LastInventoryAt.IsZero() {
			t.Fatalf("agent after upload %+v", a)
		}
		if c := h.coverage(e.id); c.Reason != model.ReasonSuccessful {
			t.Fatalf("coverage after upload %+v", c)
		}

		// Debian's DSA-5766 era update: curl to 7.88.1-10+deb12u12, bash removed, a new package.
		next := baseInventory()
		next.Packages = slices.DeleteFunc(next.Packages, func(p model.Package) bool { return p.Name == "bash" || p.Name == "curl" || p.Name == "libcurl4" })
		added := []model.Package{deb("curl", "7.88.1-10+deb12u12", "curl", "7.88.1-10+deb12u12"), deb("libcurl4", "7.88.1-10+deb12u12", "curl", "7.88.1-10+deb12u12"),
			deb("sudo", "1.9.13p3-1+deb12u1", "sudo", "1.9.13p3-1+deb12u1")}
		next.Packages = append(next.Packages, added...)
		removed := []model.Package{deb("curl", "7.88.1-10+deb12u8", "curl", "7.88.1-10+deb12u8"), deb("libcurl4", "7.88.1-10+deb12u8", "curl", "7.88.1-10+deb12u8"),
			deb("bash", "5.2.15-2+b7", "bash", "5.2.15-2")}
		h2 := protocol.InventoryHash(next)
		h.clock.Add(time.Minute)
		code, out = h.upload(e, protocol.Upload{Hash: h2, BaseHash: h1, Added: added, Removed: removed, CollectedAt: h.clock.Now()})
		if code != 200 || out.NeedFull || out.Hash != h2 {
			t.Fatalf("delta upload: %d %+v", code, out)
		}
		subs = h.sink.all()
		if len(subs) != 2 || !slices.Equal(packageIDs(subs[1].inv), packageIDs(next)) || subs[1].inv.OS.Ecosystem != "Debian:12" {
			t.Fatalf("sink after delta: %d submissions, packages %v", len(subs), packageIDs(subs[len(subs)-1].inv))
		}

		// The same hash again is a no-op for the sink.
		if code, out = h.upload(e, protocol.Upload{Hash: h2, BaseHash: h1, Added: added, Removed: removed}); code != 200 || out.NeedFull {
			t.Fatalf("repeated upload: %d %+v", code, out)
		}
		if n := len(h.sink.all()); n != 2 {
			t.Fatalf("repeated hash submitted again: %d submissions", n)
		}

		// A base the server never received asks for a full upload.
		unknown := "sha256:" + strings.Repeat("ab", 32)
		if code, out = h.upload(e, protocol.Upload{Hash: unknown, BaseHash: unknown, Added: added}); code != 200 || !out.NeedFull {
			t.Fatalf("unknown base: %d %+v", code, out)
		}
		// A delta whose result does not hash to Hash also asks for a full upload.
		if code, out = h.upload(e, protocol.Upload{Hash: unknown, BaseHash: h2, Added: added[:1]}); code != 200 || !out.NeedFull {
			t.Fatalf("delta with a wrong hash: %d %+v", code, out)
		}
		// A full upload with a wrong hash is refused.
		if code, _ = h.upload(e, protocol.Upload{Hash: unknown, Full: baseInventory()}); code != http.StatusUnprocessableEntity {
			t.Fatalf("full upload with a wrong hash: %d", code)
		}
		// A failing sink fails the upload and stores nothing: the agent retries the same hash.
		h.sink.fail = errors.New("database unavailable")
		third := baseInventory()
		third.Packages = third.Packages[:2]
		h3 := protocol.InventoryHash(third)
		if code, _ = h.upload(e, protocol.Upload{Hash: h3, Full: third}); code != http.StatusInternalServerError {
			t.Fatalf("sink failure: %d", code)
		}
		h.sink.fail = nil
		if code, out = h.upload(e, protocol.Upload{Hash: h3, Full: third}); code != 200 || len(h.sink.all()) != 3 {
			t.Fatalf("retry after sink failure: %d, %d submissions", code, len(h.sink.all()))
		}
		if n := len(h.sink.all()); n != 3 {
			t.Fatalf("submissions %d", n)
		}
	})
}

func TestUploadLimits(t *testing.T) {
	h := newHarness(t, "memory", func(c *Config) { c.MaxUploadBytes, c.MaxInventoryBytes = 64<<10, 1<<20 })
	e := h.enroll("bomb")
	// 8 MiB of one letter inside a JSON string compress to a few KiB: a gzip bomb against a
	// 1 MiB JSON cap.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zw.Write([]byte(`{"hash":"`))
	zeros := bytes.Repeat([]byte("a"), 1<<20)
	for range 8 {
		zw.Write(zeros)
	}
	zw.Close()
	t.Logf("bomb: %d bytes compressed, 8 MiB decompressed", bomb.Len())
	if code := h.do(e.client, "PUT", protocol.PathInventory, bomb.Bytes(), nil, "Content-Encoding", "gzip"); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("gzip bomb: %d", code)
	}
	// A JSON string of random base64: ~120 KiB on the wire against a 64 KiB cap.
	noise := make([]byte, 120<<10)
	rand.Read(noise)
	var bigBuf bytes.Buffer
	zw2 := gzip.NewWriter(&bigBuf)
	zw2.Write([]byte(`{"hash":"`))
	zw2.Write([]byte(base64.StdEncoding.EncodeToString(noise)))
	zw2.Close()
	big := bigBuf.Bytes()
	if code := h.do(e.client, "PUT", protocol.PathInventory, big, nil, "Content-Encoding", "gzip"); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", code)
	}
	if code := h.do(e.client, "PUT", protocol.PathInventory, []byte("not gzip"), nil, "Content-Encoding", "gzip"); code != http.StatusBadRequest {
		t.Fatalf("not gzip: %d", code)
	}
	if code := h.do(e.client, "PUT", protocol.PathInventory, []byte("{}"), nil, "Content-Encoding", "br"); code != http.StatusBadRequest {
		t.Fatalf("brotli: %d", code)
	}
	if len(h.sink.all()) != 0 {
		t.Fatal("sink called")
	}
}

func TestDecodeUpload(t *testing.T) {
	inv := baseInventory()
	good := protocol.Upload{Hash: protocol.InventoryHash(inv), Full: inv}
	body := gz(t, good)
	u, err := DecodeUpload(bytes.NewReader(body), "gzip", 1<<20, 1<<20)
	if err != nil || u.Hash != good.Hash || len(u.Full.Packages) != 5 {
		t.Fatalf("decode: %v %+v", err, u)
	}
	for _, tc := range []struct {
		name string
		body []byte
		enc  string
		want error
	}{
		{"trailing data", append([]byte(`{"hash":"`+good.Hash+`","baseHash":"`+good.Hash+`"}`), []byte(` {}`)...), "", nil},
		{"bad hash", []byte(`{"hash":"md5:abc","full":{"packages":[]}}`), "", nil},
		{"full and delta", []byte(`{"hash":"` + good.Hash + `","baseHash":"` + good.Hash + `","full":{"packages":[]}}`), "", nil},
		{"neither", []byte(`{"hash":"` + good.Hash + `"}`), "", nil},
		{"truncated gzip", body[:len(body)-6], "gzip", nil},
		{"over the wire cap", body, "gzip", ErrTooLarge},
	} {
		limit := int64(1 << 20)
		if tc.want == ErrTooLarge {
			limit = 100
		}
		_, err := DecodeUpload(bytes.NewReader(tc.body), tc.enc, limit, 1<<20)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}

func FuzzDecodeUpload(f *testing.F) {
	inv := baseInventory()
	h := protocol.InventoryHash(inv)
	f.Add(gz(f, protocol.Upload{Hash: h, Full: inv}), true)
	f.Add(gz(f, protocol.Upload{Hash: h, BaseHash: h, Added: inv.Packages[:1], Removed: inv.Packages[1:2]}), true)
	f.Add([]byte(`{"hash":"`+h+`","baseHash":"`+h+`","facts":{"listening":[{"port":22}]}}`), false)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, true)
	f.Add([]byte(`{"hash":`), false)
	f.Fuzz(func(t *testing.T, data []byte, gzipped bool) {
		enc := ""
		if gzipped {
			enc = "gzip"
		}
		u, err := DecodeUpload(bytes.NewReader(data), enc, 1<<20, 4<<20)
		if err != nil {
			return
		}
		if checkUpload(u) != nil {
			t.Fatal("accepted an upload that fails its own checks")
		}
		// Applying a decoded delta to any base never panics.
		if u.Full == nil {
			_, _ = protocol.ApplyDelta(inv, u)
		}
	})
}

// Beyond MaxUploads in progress, an upload waits UploadWait and is then refused with 503 and
// Retry-After, before its body is read; it is accepted once a slot is free.
func TestUploadAdmission(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := newHarness(t, "sqlite", func(c *Config) {
		c.MaxUploads, c.UploadWait = 1, 100*time.Millisecond
		c.Sink = SinkFunc(func(ctx context.Context, r model.Resource, inv *model.Inventory) error {
			entered <- struct{}{}
			<-release
			return nil
		})
	})
	e1, e2 := h.enroll("web-1"), h.enroll("web-2")
	full := baseInventory()
	up := protocol.Upload{Hash: protocol.InventoryHash(full), Full: full, CollectedAt: h.clock.Now()}
	done := make(chan int)
	go func() {
		var out protocol.UploadResponse
		req, _ := http.NewRequest("PUT", h.srv.URL+protocol.PathInventory, bytes.NewReader(gz(t, up)))
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := e1.client.Do(req)
		if err != nil {
			done <- 0
			return
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered // the first upload holds the only slot
	req, _ := http.NewRequest("PUT", h.srv.URL+protocol.PathInventory, bytes.NewReader(gz(t, up)))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := e2.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a second upload while the slot is taken: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("the first upload: %d", code)
	}
	go func() {
		for range entered {
		}
	}()
	if code, out := h.upload(e2, up); code != 200 || out.Hash != up.Hash {
		t.Fatalf("the second upload once the slot is free: %d %+v", code, out)
	}
	close(entered)
}
