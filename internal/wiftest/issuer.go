package wiftest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Issuer is an external OIDC issuer on loopback TLS, shaped like a
// Kubernetes API server's service-account issuer: discovery at
// {URL}/.well-known/openid-configuration, keys at {URL}/openid/v1/jwks,
// RS256 tokens.
type Issuer struct {
	// URL is the issuer (no trailing '/').
	URL    string
	Server *httptest.Server

	mu   sync.Mutex
	keys []*rsa.PrivateKey
	// published is the number of keys (oldest first) in the JWKS.
	published int
	// Requests counts discovery and JWKS requests served.
	DiscoveryRequests atomic.Int64
	JWKSRequests      atomic.Int64
	// down makes every request fail with 503.
	down atomic.Bool
}

// NewIssuer starts an issuer with one key.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{}
	iss.keys = []*rsa.PrivateKey{newRSAKey(t)}
	iss.published = 1
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss.DiscoveryRequests.Add(1)
		if iss.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/openid/v1/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /openid/v1/jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.JWKSRequests.Add(1)
		if iss.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		iss.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range iss.keys[:iss.published] {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: KeyID(&k.PublicKey), Algorithm: "RS256", Use: "sig"})
		}
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	iss.Server = httptest.NewTLSServer(mux)
	iss.URL = iss.Server.URL
	t.Cleanup(iss.Server.Close)
	return iss
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	return k
}

// KeyID computes a kid as kube-apiserver does: base64url of the SHA-256 of
// the DER public key.
func KeyID(pub *rsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SetDown makes the issuer answer every request with 503 (or serve again).
func (iss *Issuer) SetDown(down bool) { iss.down.Store(down) }

// Rotate adds a new signing key; if publish is false the new key signs but
// is not yet in the JWKS (an unknown kid to relying parties).
func (iss *Issuer) Rotate(t testing.TB, publish bool) {
	t.Helper()
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, newRSAKey(t))
	if publish {
		iss.published = len(iss.keys)
	}
}

// Publish puts every key in the JWKS.
func (iss *Issuer) Publish() {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.published = len(iss.keys)
}

// Key returns the current signing key.
func (iss *Issuer) Key() *rsa.PrivateKey {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.keys[len(iss.keys)-1]
}

// FirstKey returns the issuer's first signing key.
func (iss *Issuer) FirstKey() *rsa.PrivateKey {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.keys[0]
}

// Mint signs a token for sub with audience aud, valid from now for
// lifetime, with kube-apiserver's claims shape.
func (iss *Issuer) Mint(t testing.TB, sub, aud string, lifetime time.Duration) string {
	t.Helper()
	now := time.Now()
	return iss.MintClaims(t, map[string]any{
		"iss": iss.URL, "sub": sub, "aud": []string{aud},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(lifetime).Unix(),
		"jti": randomID(),
	})
}

// MintClaims signs an arbitrary claim set with the current key (RS256,
// kid set).
func (iss *Issuer) MintClaims(t testing.TB, claims map[string]any) string {
	t.Helper()
	return SignRS256(t, iss.Key(), claims, nil)
}

// SignRS256 signs claims with key, with kid derived from the key and any
// extra header fields.
func SignRS256(t testing.TB, key *rsa.PrivateKey, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", KeyID(&key.PublicKey))
	for k, v := range extra {
		opts = opts.WithHeader(k, v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatalf("new signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("encode claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return s
}

// WriteTokenFile writes a fresh one-hour token for sub (audience
// api://AzureADTokenExchange) to a file and returns its path.
func (iss *Issuer) WriteTokenFile(t testing.TB, sub string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(p, []byte(iss.Mint(t, sub, "api://AzureADTokenExchange", time.Hour)), 0o600); err != nil {
		t.Fatalf("write token file: %v", err)
	}
	return p
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
