package events

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

func BenchmarkSign(b *testing.B) {
	env, _ := NewEnvelope("urn:vigil:srv-1", xzEvent)
	body, _ := env.Encode()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		Sign(body, kaTime, "whsec_test")
	}
}

func BenchmarkVerify(b *testing.B) {
	env, _ := NewEnvelope("urn:vigil:srv-1", xzEvent)
	body, _ := env.Encode()
	h := Sign(body, kaTime, "whsec_test", "whsec_old")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := Verify(h, body, kaTime, 0, "whsec_test"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatch measures whole rounds against a local receiver: claim, encode, sign, POST,
// settle. One op is one delivered event.
func BenchmarkDispatch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	outbox := NewMemOutbox(nil)
	d, err := NewDispatcher(outbox, NewMemSinks(sink("s", "acct", srv.URL, "x")), Config{Source: "urn:vigil:bench", Batch: 64})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range b.N {
		outbox.Enqueue(event(fmt.Sprintf("e%07d", i), "acct", model.EventFindingUpdated, now))
	}
	b.ResetTimer()
	for done := 0; done < b.N; {
		n, err := d.RunOnce(context.Background())
		if err != nil || n == 0 {
			b.Fatalf("round: %d %v", n, err)
		}
		done += n
	}
}
