package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// A bundle goes in as chunks and comes out whole; only a newer version of the published lineage
// replaces it; a damaged chunk is an error, never a silently different bundle.
func TestPublishVulnDB(t *testing.T) {
	old := vulnDBChunk
	vulnDBChunk = 1000 // several chunks, the last one short
	t.Cleanup(func() { vulnDBChunk = old })
	each(t, func(t *testing.T, e env, s *Store) {
		if _, ok, err := s.PublishedVulnDB(ctx); ok || err != nil {
			t.Fatalf("nothing published yet: %v %v", ok, err)
		}
		if _, err := s.FetchVulnDB(ctx, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("fetching with nothing published: %v", err)
		}
		v3 := make([]byte, 3500)
		rand.Read(v3)
		ok, err := s.PublishVulnDB(ctx, VulnDBBundle{Lineage: "aaaa", Version: 3, Publisher: "host-a"}, bytes.NewReader(v3))
		if err != nil || !ok {
			t.Fatalf("first publication: %v %v", ok, err)
		}
		var got bytes.Buffer
		b, err := s.FetchVulnDB(ctx, &got)
		if err != nil || !bytes.Equal(got.Bytes(), v3) || b.Version != 3 || b.Lineage != "aaaa" || b.Size != 3500 || len(b.SHA256) != 64 || b.Publisher != "host-a" {
			t.Fatalf("fetched %d bytes, %+v, %v", got.Len(), b, err)
		}
		if p, ok, _ := s.PublishedVulnDB(ctx); !ok || p != b {
			t.Errorf("described as %+v, fetched as %+v", p, b)
		}

		// Refused: the same version again, an older one, another lineage.
		for _, r := range []VulnDBBundle{{Lineage: "aaaa", Version: 3}, {Lineage: "aaaa", Version: 2}, {Lineage: "bbbb", Version: 9}} {
			if ok, err := s.PublishVulnDB(ctx, r, strings.NewReader("other")); ok || err != nil {
				t.Errorf("publishing %+v over version 3 of aaaa: %v %v", r, ok, err)
			}
		}
		v4 := []byte("version four")
		if ok, err := s.PublishVulnDB(ctx, VulnDBBundle{Lineage: "aaaa", Version: 4, Publisher: "host-b"}, bytes.NewReader(v4)); !ok || err != nil {
			t.Fatalf("a newer version: %v %v", ok, err)
		}
		got.Reset()
		if b, err := s.FetchVulnDB(ctx, &got); err != nil || got.String() != string(v4) || b.Version != 4 {
			t.Fatalf("after the newer version: %q %+v %v", got.String(), b, err)
		}
		if _, err := s.PublishVulnDB(ctx, VulnDBBundle{Lineage: "aaaa", Version: 5}, strings.NewReader("")); !errors.Is(err, ErrInvalid) {
			t.Errorf("an empty bundle: %v", err)
		}

		if _, err := s.DB().ExecContext(ctx, s.rebind(`UPDATE vulndb_chunks SET data = ? WHERE seq = 0`), []byte("version fivr")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FetchVulnDB(ctx, &got); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("a damaged chunk: %v", err)
		}
	})
}
