package tokenauth

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Claims is a verified token's payload. The typed fields are read from the
// registered claims and from the claims Entra and wif put in access tokens
// (spec/sts.md §5); Raw holds every claim as decoded JSON (numbers as
// json.Number). A Claims may be shared between requests through the
// verified-token cache: treat it as read-only.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time // zero if the token has no exp
	NotBefore time.Time // zero if absent
	IssuedAt  time.Time // zero if absent
	// Version is the "ver" claim ("1.0" or "2.0" for Entra/wif tokens).
	Version string
	// TenantID is "tid"; ObjectID is "oid".
	TenantID string
	ObjectID string
	// ClientID is the caller's application id: "appid" (v1) or "azp" (v2).
	ClientID string
	// Roles is the "roles" claim.
	Roles []string
	// Raw is every claim of the payload.
	Raw map[string]any
}

// NewClaims builds Claims from a decoded payload, filling the typed fields.
// It is what Validate uses, exported so tests can construct identities.
func NewClaims(raw map[string]any) *Claims {
	c := &Claims{Raw: raw}
	c.Issuer = str(raw["iss"])
	c.Subject = str(raw["sub"])
	c.Audience = claimValues(raw["aud"], "")
	c.Expiry, _ = numericDate(raw["exp"])
	c.NotBefore, _ = numericDate(raw["nbf"])
	c.IssuedAt, _ = numericDate(raw["iat"])
	c.Version = str(raw["ver"])
	c.TenantID = str(raw["tid"])
	c.ObjectID = str(raw["oid"])
	c.ClientID = str(raw["appid"])
	if c.ClientID == "" {
		c.ClientID = str(raw["azp"])
	}
	c.Roles = claimValues(raw["roles"], "")
	return c
}

// Values returns claim name as a list of strings: a string claim is split
// on sep (when sep is not empty), an array gives its elements, numbers and
// booleans their JSON text. An absent or null claim gives nil.
func (c *Claims) Values(name, sep string) []string {
	return claimValues(c.Raw[name], sep)
}

// HasRole reports whether the roles claim holds role.
func (c *Claims) HasRole(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// claimValues turns one decoded JSON claim value into strings as Values does.
func claimValues(v any, sep string) []string {
	switch t := v.(type) {
	case nil:
		return nil
	case string:
		if sep == "" {
			return []string{t}
		}
		var out []string
		for _, p := range strings.Split(t, sep) {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := scalar(e); ok {
				out = append(out, s)
			}
		}
		return out
	default:
		if s, ok := scalar(t); ok {
			return []string{s}
		}
		return nil
	}
}

func scalar(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		return t.String(), true
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// numericDate reads a NumericDate claim; ok is false when it is absent or
// not a number in range.
func numericDate(v any) (time.Time, bool) {
	var f float64
	switch t := v.(type) {
	case nil:
		return time.Time{}, false
	case json.Number:
		x, err := t.Float64()
		if err != nil {
			return time.Time{}, false
		}
		f = x
	case float64:
		f = t
	default:
		return time.Time{}, false
	}
	if f < 0 || f > 1e11 { // beyond year 5000: refuse rather than overflow
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

type ctxKey struct{}

// NewContext returns a context carrying the caller's verified claims.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the claims that Middleware verified for this request.
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		claims, ok := tokenauth.FromContext(r.Context())
//		if !ok { ... } // not behind tokenauth.Middleware
//		fmt.Fprintf(w, "hello %s", claims.ClientID)
//	}
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok && c != nil
}
