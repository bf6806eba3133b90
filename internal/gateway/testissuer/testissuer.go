// Package testissuer is an OIDC provider for tests: an httptest TLS server
// that publishes discovery documents and a JWKS per tenant the way wif's
// token service does (spec/sts.md §2), and mints access tokens shaped like
// spec/sts.md §5's v1 and v2 tokens, signed with its own test RSA key. It
// stands in for the token service until internal/wiftest can be used, and
// also mints the deliberately broken tokens (alg none, HS256 with the public
// key, crit headers) that a real token service never would.
package testissuer

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
)

// Issuer is a running test OIDC provider.
type Issuer struct {
	Server *httptest.Server
	// URL is the server's base URL, "https://127.0.0.1:PORT".
	URL string
	// Key signs tokens; KID is its key id in the JWKS.
	Key *rsa.PrivateKey
	KID string
	// Client trusts the server's certificate.
	Client *http.Client
	// KeyRequests counts JWKS fetches.
	KeyRequests atomic.Int64
	// DiscoveryRequests counts discovery-document fetches.
	DiscoveryRequests atomic.Int64
	// Down makes every request fail with 503 while set.
	Down atomic.Bool
}

var keyCache atomic.Pointer[rsa.PrivateKey]

// TestKey returns a 2048-bit RSA key, generated once per test binary.
func TestKey(t testing.TB) *rsa.PrivateKey {
	if k := keyCache.Load(); k != nil {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyCache.CompareAndSwap(nil, k)
	return keyCache.Load()
}

// Start runs an Issuer until the test ends.
func Start(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{Key: TestKey(t), KID: "test-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss.DiscoveryRequests.Add(1)
		if iss.Down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		tid := r.PathValue("tenant")
		writeJSON(w, map[string]any{
			"issuer":                                iss.URL + "/" + tid + "/v2.0",
			"authorization_endpoint":                iss.URL + "/" + tid + "/oauth2/v2.0/authorize",
			"token_endpoint":                        iss.URL + "/" + tid + "/oauth2/v2.0/token",
			"jwks_uri":                              iss.URL + "/" + tid + "/discovery/v2.0/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		iss.KeyRequests.Add(1)
		if iss.Down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{iss.PublicJWK()}})
	})
	iss.Server = httptest.NewTLSServer(mux)
	t.Cleanup(iss.Server.Close)
	iss.URL = iss.Server.URL
	iss.Client = iss.Server.Client()
	return iss
}

// PublicJWK is the signing key as published (like Entra's keys, without
// an "alg", so any RSA algorithm the validator allows may use it).
func (iss *Issuer) PublicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &iss.Key.PublicKey, KeyID: iss.KID, Use: "sig"}
}

// DiscoveryURL is the v2 openid-configuration URL of tenant tid.
func (iss *Issuer) DiscoveryURL(tid string) string {
	return iss.URL + "/" + tid + "/v2.0/.well-known/openid-configuration"
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Token describes an access token to mint.
type Token struct {
	Version  int    // 1 or 2 (default 1)
	Issuer   string // default: Entra's form for v1 (https://sts.windows.net/{tid}/), {URL}/{tid}/v2.0 for v2
	TenantID string
	Audience string
	ClientID string // appid (v1) or azp (v2)
	ObjectID string // oid and sub
	Roles    []string
	// IssuedAt defaults to 30 seconds ago, so a validator whose clock was
	// read a moment before minting still finds nbf passed; Lifetime
	// defaults to one hour.
	IssuedAt time.Time
	Lifetime time.Duration
	// Extra claims are added last (nil values delete a claim).
	Extra map[string]any
}

// Claims builds the payload of tok as spec/sts.md §5 describes.
func (iss *Issuer) Claims(tok Token) map[string]any {
	if tok.IssuedAt.IsZero() {
		tok.IssuedAt = time.Now().Add(-30 * time.Second)
	}
	if tok.Lifetime == 0 {
		tok.Lifetime = time.Hour
	}
	if tok.ObjectID == "" {
		tok.ObjectID = "9a2f6b7c-0000-4000-8000-00000000b0b0"
	}
	c := map[string]any{
		"aud":   tok.Audience,
		"iat":   tok.IssuedAt.Unix(),
		"nbf":   tok.IssuedAt.Unix(),
		"exp":   tok.IssuedAt.Add(tok.Lifetime).Unix(),
		"tid":   tok.TenantID,
		"oid":   tok.ObjectID,
		"sub":   tok.ObjectID,
		"idtyp": "app",
		"uti":   strings.ReplaceAll(uuid.NewString(), "-", "")[:22],
		"rh":    "0.AAAA-test.",
		"aio":   "E2test",
		"xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/" +
			"Microsoft.ManagedIdentity/userAssignedIdentities/demo",
	}
	if tok.Version == 2 {
		c["iss"] = iss.URL + "/" + tok.TenantID + "/v2.0"
		c["azp"], c["azpacr"], c["ver"] = tok.ClientID, "2", "2.0"
	} else {
		c["iss"] = "https://sts.windows.net/" + tok.TenantID + "/"
		c["appid"], c["appidacr"], c["ver"] = tok.ClientID, "2", "1.0"
	}
	if tok.Issuer != "" {
		c["iss"] = tok.Issuer
	}
	if len(tok.Roles) > 0 {
		c["roles"] = tok.Roles
	}
	for k, v := range tok.Extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// Mint signs tok with the issuer's key (RS256, typ JWT, kid, x5t).
func (iss *Issuer) Mint(t testing.TB, tok Token) string {
	t.Helper()
	x5t := sha1.Sum(iss.Key.PublicKey.N.Bytes()) // stands in for the certificate thumbprint
	return Sign(t, "RS256", iss.Key, map[string]any{"kid": iss.KID, "x5t": base64.RawURLEncoding.EncodeToString(x5t[:])}, iss.Claims(tok))
}

// Sign makes a compact JWS of claims with alg and key: RS*/PS* take an
// *rsa.PrivateKey, HS* a []byte, "none" nothing. header adds fields.
func Sign(t testing.TB, alg string, key any, header, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT"}
	for k, v := range header {
		h[k] = v
	}
	hb, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	if alg == "none" {
		return input + "."
	}
	var hash crypto.Hash
	switch alg[2:] {
	case "256":
		hash = crypto.SHA256
	case "384":
		hash = crypto.SHA384
	default:
		hash = crypto.SHA512
	}
	var sig []byte
	switch alg[:2] {
	case "HS":
		var newHash = sha256.New
		if hash == crypto.SHA512 {
			newHash = sha512.New
		} else if hash == crypto.SHA384 {
			newHash = sha512.New384
		}
		m := hmac.New(newHash, key.([]byte))
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "RS", "PS":
		d := hash.New()
		d.Write([]byte(input))
		if alg[0] == 'R' {
			sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), hash, d.Sum(nil))
		} else {
			sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), hash, d.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("testissuer: unknown alg %q", alg)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
