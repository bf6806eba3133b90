package wifclient

import (
	"net/http"
	"testing"
	"time"
)

func TestChallenge(t *testing.T) {
	tests := []struct {
		header     []string
		code, clms string
	}{
		{[]string{`Bearer error="invalid_token", error_description="The token has expired."`}, "invalid_token", ""},
		{[]string{`Basic realm="x"`, `Bearer realm="api", error=invalid_token`}, "invalid_token", ""},
		{[]string{`Bearer error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZX19fQ=="`}, "insufficient_claims", `{"access_token":{"nbf":{"essential":true}}}`},
		{[]string{`Bearer error_description="a \"quoted\", comma", error="invalid_token"`}, "invalid_token", ""},
		{[]string{`Bearer`}, "", ""},
		{nil, "", ""},
	}
	for _, tt := range tests {
		h := http.Header{"Www-Authenticate": tt.header}
		code, claims := challenge(h)
		if code != tt.code || claims != tt.clms {
			t.Errorf("challenge(%q) = %q, %q; want %q, %q", tt.header, code, claims, tt.code, tt.clms)
		}
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"5": 5 * time.Second, "0": 0, "Mon, 23 Nov 2026 10:00:07 GMT": 7 * time.Second, "Mon, 23 Nov 2026 09:00:00 GMT": 0,
	} {
		got, ok := retryAfter(http.Header{"Retry-After": {v}}, now)
		if !ok || got != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "soon"} {
		if _, ok := retryAfter(http.Header{"Retry-After": {v}}, now); ok {
			t.Errorf("retryAfter(%q) accepted", v)
		}
	}
}

func FuzzChallenge(f *testing.F) {
	f.Add(`Bearer error="invalid_token", error_description="The token has expired."`)
	f.Add(`Bearer error="insufficient_claims", claims="e30="`)
	f.Add(`Bearer a="\`)
	f.Fuzz(func(t *testing.T, v string) {
		_, _ = challenge(http.Header{"Www-Authenticate": {v}})
	})
}
