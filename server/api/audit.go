package api

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// AuditRecord says who did what, when, from where, and how it ended.
type AuditRecord struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"requestId"`
	Account   string    `json:"account,omitempty"` // empty when authentication failed
	KeyID     string    `json:"keyId,omitempty"`
	Method    string    `json:"method"`
	Route     string    `json:"route"`  // the registered pattern: "DELETE /v1/resources/{resourceId}"
	Target    string    `json:"target"` // SetAuditTarget's value, else the request path
	Remote    string    `json:"remote"` // client address (X-Forwarded-For only via trusted proxies)
	Status    int       `json:"status"`
}

// Auditor stores audit records. It is called after the handler, with the outcome; an error is
// logged (the mutation already happened). server/store implements it; it should not block for
// long.
type Auditor interface {
	Audit(ctx context.Context, rec AuditRecord) error
}

// AuditorFunc adapts a function to Auditor.
type AuditorFunc func(ctx context.Context, rec AuditRecord) error

// Audit implements Auditor.
func (f AuditorFunc) Audit(ctx context.Context, rec AuditRecord) error { return f(ctx, rec) }

// SetAuditTarget names the object a mutation acts on ("account/123456789012/resource/i-0abc"),
// for the audit record.
func SetAuditTarget(r *http.Request, target string) {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		st.auditTarget = target
	}
}

func mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

func (rt *Router) audit(route Route, next http.Handler) http.Handler {
	if rt.cfg.Auditor == nil || !mutating(route.Method) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Audit also when the handler panics: the deferred call sees the 500 written by recovery.
		defer func() {
			st := state(r.Context())
			target := st.auditTarget
			if target == "" {
				target = r.URL.Path
			}
			rec := AuditRecord{
				Time: rt.cfg.Now().UTC(), RequestID: st.id,
				Account: st.principal.Account, KeyID: st.principal.KeyID,
				Method: r.Method, Route: route.Pattern, Target: target,
				Remote: st.remote.String(), Status: w.(*statusWriter).code(),
			}
			// The client may have gone; the record must still be written.
			ctx := context.WithoutCancel(r.Context())
			if err := rt.cfg.Auditor.Audit(ctx, rec); err != nil {
				rt.cfg.Logger.ErrorContext(ctx, "audit record lost", "request_id", st.id, "error", err.Error())
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// clientIP is the peer address, or — when the peer is a trusted proxy — the right-most address in
// X-Forwarded-For that is not itself a trusted proxy. Left-most entries are client-controlled and
// never believed.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r)
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	var list []string
	for _, h := range hops {
		list = append(list, strings.Split(h, ",")...)
	}
	addr := peer
	for i := len(list) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(list[i]))
		if err != nil {
			// A garbled hop: stop at the last address we could trust.
			return addr
		}
		addr = a.Unmap()
		if !isTrusted(addr, trusted) {
			return addr
		}
	}
	return addr
}

func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func peerTrusted(r *http.Request, trusted []netip.Prefix) bool {
	return isTrusted(peerAddr(r), trusted)
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
