package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// PageTokens makes opaque, signed pagination tokens. A token carries the cursor (e.g. the last
// row's sort key) as JSON, the scope it was issued for and an expiry, MAC'd with a server key:
// clients cannot forge a cursor, replay one into another account's listing or another filter,
// or keep one forever. Tokens are not encrypted: the cursor must not hold secrets.
//
// Servers sharing a database must share Key; rotating it invalidates outstanding tokens (a
// client then restarts its listing).
type PageTokens struct {
	Key []byte        // >= 32 random bytes
	TTL time.Duration // default 24h
	Now func() time.Time
}

type pageEnvelope struct {
	C json.RawMessage `json:"c"`
	E int64           `json:"e"`
}

const maxPageToken = 4096

// Encode returns a token for cursor, valid only for scope. The scope should name everything the
// cursor depends on: the account, the endpoint and a canonical form of the filter and sort.
func (pt *PageTokens) Encode(scope string, cursor any) (string, error) {
	c, err := json.Marshal(cursor)
	if err != nil {
		return "", fmt.Errorf("encode page cursor: %w", err)
	}
	ttl := pt.TTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	body, err := json.Marshal(pageEnvelope{C: c, E: pt.now().Add(ttl).Unix()})
	if err != nil {
		return "", fmt.Errorf("encode page token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(pt.mac(scope, body))
	if len(tok) > maxPageToken {
		return "", fmt.Errorf("page token of %d bytes is too long", len(tok))
	}
	return tok, nil
}

// Decode verifies token for scope and unmarshals its cursor. Any failure is a 400 problem
// naming the nextToken parameter.
func (pt *PageTokens) Decode(scope, token string, cursor any) error {
	bad := func(why string) error {
		return BadRequest("invalid page token: "+why, FieldError{Field: "nextToken", Message: why})
	}
	if len(token) > maxPageToken {
		return bad("too long")
	}
	b64body, b64mac, ok := cut(token)
	if !ok {
		return bad("malformed")
	}
	// Strict: one token has exactly one spelling.
	body, err1 := base64.RawURLEncoding.Strict().DecodeString(b64body)
	mac, err2 := base64.RawURLEncoding.Strict().DecodeString(b64mac)
	if err1 != nil || err2 != nil {
		return bad("malformed")
	}
	if !hmac.Equal(mac, pt.mac(scope, body)) {
		return bad("not issued for this listing")
	}
	var env pageEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return bad("malformed")
	}
	if pt.now().Unix() >= env.E {
		return bad("expired; start the listing again")
	}
	if err := json.Unmarshal(env.C, cursor); err != nil {
		return bad("malformed cursor")
	}
	return nil
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func (pt *PageTokens) mac(scope string, body []byte) []byte {
	m := hmac.New(sha256.New, pt.Key)
	m.Write([]byte("vigil page token v1\x00"))
	m.Write([]byte(strconv.Itoa(len(scope))))
	m.Write([]byte{0})
	m.Write([]byte(scope))
	m.Write(body)
	return m.Sum(nil)
}

func (pt *PageTokens) now() time.Time {
	if pt.Now != nil {
		return pt.Now()
	}
	return time.Now()
}

// Page limits.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// PageParams reads maxResults (1..MaxPageSize, default DefaultPageSize) and nextToken from the
// query string.
func PageParams(r *http.Request) (size int, token string, err error) {
	q := r.URL.Query()
	size = DefaultPageSize
	if s := q.Get("maxResults"); s != "" {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 1 || n > MaxPageSize {
			return 0, "", BadRequest(fmt.Sprintf("maxResults must be an integer from 1 to %d", MaxPageSize),
				FieldError{Field: "maxResults", Message: fmt.Sprintf("must be 1..%d", MaxPageSize)})
		}
		size = n
	}
	return size, q.Get("nextToken"), nil
}

// Page is the envelope of a listing response.
type Page[T any] struct {
	Items     []T    `json:"items"`
	NextToken string `json:"nextToken,omitempty"`
}
