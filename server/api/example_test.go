package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
)

// An endpoint: decode strictly, authorize against the target account, name the audit target,
// answer JSON. Errors returned become RFC 9457 problems.
func Example() {
	keys := &auth.MemKeyStore{} // server/store in production
	hasher := auth.Hasher{}
	key, stored, _ := auth.Issue(hasher, "123456789012", auth.RoleAdmin, "ci", time.Now(), time.Time{})
	keys.Put(stored)

	rt := api.New(api.Config{
		Auth: &auth.Authenticator{Store: keys, Hasher: hasher},
		Org:  auth.StaticOrg{}, // server/store in production
	})
	type createRule struct {
		Account string `json:"account"`
		Name    string `json:"name"`
	}
	rt.Handle("POST /v1/suppression-rules", api.JSONHandler(func(w http.ResponseWriter, r *http.Request, b *createRule) error {
		if err := rt.Authorize(r, auth.WriteSuppressionRules, b.Account); err != nil {
			return err // 403 or 404
		}
		api.SetAuditTarget(r, "account/"+b.Account+"/suppression-rule/"+b.Name)
		return api.WriteJSON(w, http.StatusCreated, b)
	}), api.Doc("createSuppressionRule", "Create a suppression rule", "suppression"), api.Success(201, ""))
	rt.HandleOps()
	_ = rt.HandleOpenAPI(api.Info{Title: "Vigil", Version: "1"})

	send := func(body string) {
		req := httptest.NewRequest("POST", "/v1/suppression-rules", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req.WithContext(context.Background()))
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	}
	send(`{"account":"123456789012","name":"ignore-dev"}`)
	send(`{"account":"123456789012","nmae":"typo"}`)
	send(`{"account":"999999999999","name":"elsewhere"}`)
	// Output:
	// 201 application/json
	// 400 application/problem+json
	// 404 application/problem+json
}
