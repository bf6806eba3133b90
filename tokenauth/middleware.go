package tokenauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// BearerToken extracts the token from an "Authorization: Bearer <token>"
// header (the scheme is case-insensitive). It returns "" when there is none.
func BearerToken(r *http.Request) string {
	return TokenFromHeader(r.Header.Get("Authorization"), "Bearer")
}

// TokenFromHeader returns the token in an Authorization-style header value
// that uses scheme, or "" if the value does not use it. With scheme "" the
// whole trimmed value is the token.
func TokenFromHeader(value, scheme string) string {
	value = strings.TrimSpace(value)
	if scheme == "" {
		return value
	}
	if len(value) <= len(scheme) || !strings.EqualFold(value[:len(scheme)], scheme) || value[len(scheme)] != ' ' {
		return ""
	}
	return strings.TrimSpace(value[len(scheme)+1:])
}

// Middleware validates the bearer token of every request with v. A request
// that passes reaches next with its claims in the context (FromContext).
// Refusals follow RFC 6750 and seed 001:
//
//   - 401, WWW-Authenticate: Bearer error="invalid_token", error_description="...",
//     body {"error":"token_expired"|"invalid_token","error_description":"..."};
//
//   - 403 insufficient_scope when the token is authentic but a required
//     claim is not satisfied;
//
//   - 503 temporarily_unavailable, Retry-After: 5, when keys cannot be had.
//
//     mux.Handle("/data", tokenauth.Middleware(v)(dataHandler))
func Middleware(v *Validator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims, err := v.Validate(r.Context(), BearerToken(r))
			if err != nil {
				WriteError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), claims)))
		})
	}
}

// RequireRoles refuses with 403 insufficient_scope a request whose verified
// claims (from Middleware) lack any of roles. Use it after Middleware:
//
//	h := tokenauth.Middleware(v)(tokenauth.RequireRoles("Data.Read")(dataHandler))
func RequireRoles(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := FromContext(r.Context())
			if !ok {
				WriteError(w, newErr(KindMissing, "no verified token"))
				return
			}
			for _, role := range roles {
				if !c.HasRole(role) {
					WriteError(w, newErr(KindClaim, "the token lacks the role %q", role))
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Response is how a refusal is rendered on the wire.
type Response struct {
	Status int
	// Code is the OAuth error code: token_expired, invalid_token,
	// insufficient_scope or temporarily_unavailable.
	Code        string
	Description string
	// Challenge is the WWW-Authenticate value ("" for none).
	Challenge string
}

// ResponseFor maps a Validate error to its wire form.
func ResponseFor(err error) Response {
	var e *Error
	if !errors.As(err, &e) {
		return Response{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "The token is not valid.",
			Challenge: challenge("invalid_token", "The token is not valid.")}
	}
	desc := e.Message
	if desc != "" {
		desc = strings.ToUpper(desc[:1]) + desc[1:] + "."
	}
	switch e.Kind {
	case KindMissing:
		// RFC 6750 §3.1: no error code when the request has no credentials.
		return Response{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "The request has no bearer token.", Challenge: "Bearer"}
	case KindExpired:
		return Response{Status: http.StatusUnauthorized, Code: "token_expired", Description: desc, Challenge: challenge("invalid_token", desc)}
	case KindClaim:
		return Response{Status: http.StatusForbidden, Code: "insufficient_scope", Description: desc, Challenge: challenge("insufficient_scope", desc)}
	case KindKeysUnavailable:
		return Response{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "The token cannot be checked now: the signing keys are unavailable."}
	default:
		return Response{Status: http.StatusUnauthorized, Code: "invalid_token", Description: desc, Challenge: challenge("invalid_token", desc)}
	}
}

func challenge(code, desc string) string {
	desc = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(desc)
	return `Bearer error="` + code + `", error_description="` + desc + `"`
}

// WriteError renders err (from Validate) as ResponseFor describes, with a
// JSON body {"error":...,"error_description":...}.
func WriteError(w http.ResponseWriter, err error) {
	resp := ResponseFor(err)
	h := w.Header()
	if resp.Challenge != "" {
		h.Set("WWW-Authenticate", resp.Challenge)
	}
	if resp.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(resp.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": resp.Code, "error_description": resp.Description})
}
