package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
)

// BenchmarkMiddleware measures the whole in-process chain (request id, access log, metrics,
// audit, authentication with an HMAC check, rate limit, strict JSON decode, authorization) for
// one small POST.
func BenchmarkMiddleware(b *testing.B) {
	store := &auth.MemKeyStore{}
	raw, sk, _ := auth.Issue(auth.Hasher{}, acctA, auth.RoleAdmin, "", time.Now(), time.Time{})
	store.Put(sk)
	reg := prometheus.NewRegistry()
	rt := api.New(api.Config{
		Auth: &auth.Authenticator{Store: store}, Org: org, Rate: 1e9, Burst: 1e9, Metrics: reg, Gatherer: reg,
		Auditor: api.AuditorFunc(func(context.Context, api.AuditRecord) error { return nil }),
	})
	rt.Handle("POST /v1/suppression-rules", api.JSONHandler(func(w http.ResponseWriter, r *http.Request, body *ruleBody) error {
		if err := rt.Authorize(r, auth.WriteSuppressionRules, acctA); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	const body = `{"name":"ignore test fixtures","reason":"false positive","severities":["LOW","MEDIUM"]}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/suppression-rules", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+raw)
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	store := &auth.MemKeyStore{}
	raw, sk, _ := auth.Issue(auth.Hasher{Pepper: make([]byte, 32)}, acctA, auth.RoleAdmin, "", time.Now(), time.Time{})
	store.Put(sk)
	a := &auth.Authenticator{Store: store, Hasher: auth.Hasher{Pepper: make([]byte, 32)}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
