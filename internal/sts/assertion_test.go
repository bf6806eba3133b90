package sts

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// signRS256 signs claims with key (kid "k" plus extra header fields).
func signRS256(t *testing.T, key *rsa.PrivateKey, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k")
	for k, v := range extra {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestParseAssertion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	good := signRS256(t, key, map[string]any{"iss": "https://i", "sub": "s", "aud": "a", "iat": now, "exp": now + 60, "jti": "j"}, nil)
	payload := b64(`{"iss":"https://i","sub":"s","aud":["a"],"iat":1,"exp":2}`)
	tests := []struct {
		name    string
		raw     string
		wantErr string // substring of the description; empty = accepted
	}{
		{"good", good, ""},
		{"alg none", b64(`{"alg":"none","kid":"k"}`) + "." + payload + ".", `alg is "none"`},
		{"HS256", b64(`{"alg":"HS256","kid":"k"}`) + "." + payload + ".c2ln", `alg is "HS256"`},
		{"no kid", b64(`{"alg":"RS256"}`) + "." + payload + ".c2ln", "no kid"},
		{"crit", b64(`{"alg":"RS256","kid":"k","crit":["exp"],"exp":1}`) + "." + payload + ".c2ln", "critical"},
		{"two parts", "a.b", "three base64url parts"},
		{"garbage", "not a jwt at all", "three base64url parts"},
		{"bad header b64", "!!!." + payload + ".c2ln", "not base64url"},
		{"header not json", b64("[]") + "." + payload + ".c2ln", "not a JSON object"},
		{"payload not object", b64(`{"alg":"RS256","kid":"k"}`) + "." + b64(`"x"`) + ".c2ln", "not a JSON object"},
		{"aud number", b64(`{"alg":"RS256","kid":"k"}`) + "." + b64(`{"aud":5}`) + ".c2ln", "aud claim"},
		{"exp string", b64(`{"alg":"RS256","kid":"k"}`) + "." + b64(`{"exp":"soon"}`) + ".c2ln", "exp claim"},
		{"huge", strings.Repeat("a", maxAssertionSize+1), "limit is"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, e := parseAssertion(tc.raw)
			if tc.wantErr == "" {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
				if a.claims.Issuer != "https://i" || a.claims.Subject != "s" || len(a.claims.Audience) != 1 || a.claims.Audience[0] != "a" || a.claims.JTI != "j" {
					t.Fatalf("claims = %+v", a.claims)
				}
				if a.claims.IssuedAt == nil || a.claims.IssuedAt.Unix() != now {
					t.Fatalf("iat = %v, want %d", a.claims.IssuedAt, now)
				}
				return
			}
			if e == nil {
				t.Fatal("accepted")
			}
			if e.Code != CodeMalformedJWT || e.Err != "invalid_request" {
				t.Fatalf("got %s AADSTS%d, want invalid_request AADSTS50027", e.Err, e.Code)
			}
			if !strings.Contains(e.Description, tc.wantErr) {
				t.Fatalf("description %q lacks %q", e.Description, tc.wantErr)
			}
		})
	}
}

func TestParseAssertionIgnoresKeyHeaders(t *testing.T) {
	// jku, x5u and jwk headers name keys; they are ignored, never fetched
	// or used: parsing succeeds and the embedded key plays no part.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: &attacker.PublicKey})
	var jwkMap map[string]any
	_ = json.Unmarshal(jwk, &jwkMap)
	tok := signRS256(t, attacker, map[string]any{"iss": "https://i", "sub": "s", "aud": "a", "iat": 1, "exp": 2},
		map[jose.HeaderKey]any{"jku": "https://attacker.example/keys", "x5u": "https://attacker.example/cert"})
	a, e := parseAssertion(tok)
	if e != nil {
		t.Fatalf("parse: %v", e)
	}
	if _, err := a.jws.Verify(&key.PublicKey); err == nil {
		t.Fatal("a token signed by another key verified")
	}
}

func FuzzParseAssertion(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOiJodHRwczovL2kiLCJzdWIiOiJzIiwiYXVkIjpbImEiXSwiaWF0IjoxLCJleHAiOjJ9.c2ln")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		a, e := parseAssertion(raw)
		if e != nil {
			if e.Code != CodeMalformedJWT || e.Status != 400 {
				t.Fatalf("unexpected refusal %+v", e)
			}
			return
		}
		if a.kid == "" || a.jws == nil {
			t.Fatal("accepted an assertion without kid")
		}
	})
}
