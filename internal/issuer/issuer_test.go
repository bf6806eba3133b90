package issuer

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testKID is the kid of testdata/state/issuer-key.pem, computed outside Go:
//
//	openssl pkey -in testdata/state/issuer-key.pem -pubout -outform DER |
//	  openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='
const testKID = "cy5YcrzFj53lvnWRkdtAs-IjkZdIGXkAY8HjScHFR4E"

var fixedNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n got: %s\nwant: %s", name, got, want)
	}
}

func fixedIssuer(t *testing.T, url string) *Issuer {
	t.Helper()
	iss, err := New(Options{URL: url, StateDir: "testdata/state", Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func TestKeyIDMatchesKubeAPIServer(t *testing.T) {
	iss := fixedIssuer(t, "https://127.0.0.1:6443")
	if iss.KeyID() != testKID {
		t.Fatalf("kid = %q, want %q (base64url SHA-256 of the DER PKIX public key)", iss.KeyID(), testKID)
	}
}

func TestDiscoveryAndJWKSGolden(t *testing.T) {
	for _, tc := range []struct{ name, url, prefix string }{
		{"root", "https://127.0.0.1:6443", ""},
		{"path", "https://issuer.example/tenant-a/", "/tenant-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fixedIssuer(t, tc.url).Handler()
			for _, ep := range []struct{ path, ctype, golden string }{
				{DiscoveryPath, "application/json", "discovery-" + tc.name + ".golden.json"},
				{JWKSPath, "application/jwk-set+json", "jwks.golden.json"},
			} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", tc.prefix+ep.path, nil))
				if rec.Code != 200 {
					t.Fatalf("GET %s: %d", ep.path, rec.Code)
				}
				if ct := rec.Header().Get("Content-Type"); ct != ep.ctype {
					t.Errorf("GET %s: Content-Type %q, want %q", ep.path, ct, ep.ctype)
				}
				golden(t, ep.golden, rec.Body.Bytes())
			}
			for _, bad := range []struct {
				method, path string
				code         int
			}{
				{"GET", tc.prefix + "/openid/v1/jwks/x", 404},
				{"POST", tc.prefix + JWKSPath, 405},
				{"GET", "/nothing", 404},
			} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(bad.method, bad.path, nil))
				if rec.Code != bad.code {
					t.Errorf("%s %s: %d, want %d", bad.method, bad.path, rec.Code, bad.code)
				}
			}
		})
	}
}

func TestMintedTokenShape(t *testing.T) {
	iss := fixedIssuer(t, "https://127.0.0.1:6443")
	tok, err := iss.Mint(TokenRequest{Namespace: "default", ServiceAccount: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok.Raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if want := `{"alg":"RS256","kid":"` + testKID + `"}`; string(hdr) != want {
		t.Errorf("header = %s, want %s", hdr, want)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	jti, _ := claims["jti"].(string)
	if len(jti) != 36 {
		t.Errorf("jti = %q, want a UUID", jti)
	}
	claims["jti"] = "RANDOM-UUID"
	out, _ := json.MarshalIndent(claims, "", "  ")
	golden(t, "token-claims.golden.json", append(out, '\n'))
}

func TestUIDsStableAndDistinct(t *testing.T) {
	a := fixedIssuer(t, "https://127.0.0.1:6443")
	b := fixedIssuer(t, "https://other.example")
	if a.UID("serviceaccount", "default", "demo") != b.UID("serviceaccount", "default", "demo") {
		t.Error("same key, different uid")
	}
	seen := map[string]bool{}
	for _, k := range [][3]string{{"serviceaccount", "default", "demo"}, {"pod", "default", "demo"}, {"serviceaccount", "default", "demo2"}, {"serviceaccount", "other", "demo"}} {
		u := a.UID(k[0], k[1], k[2])
		if seen[u] {
			t.Errorf("uid %s repeats for %v", u, k)
		}
		seen[u] = true
	}
	c, err := New(Options{URL: "https://127.0.0.1:6443"}) // another key
	if err != nil {
		t.Fatal(err)
	}
	if c.UID("serviceaccount", "default", "demo") == a.UID("serviceaccount", "default", "demo") {
		t.Error("different keys give the same uid")
	}
}

// TestTokenVerifiesAgainstServedJWKS mints a token and verifies it the way a
// relying party does: discovery over real HTTPS, then jwks_uri, then go-jose.
func TestTokenVerifiesAgainstServedJWKS(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	iss, err := New(Options{URL: srv.URL, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = iss.Handler()
	tok, err := iss.Mint(TokenRequest{Namespace: "ns1", ServiceAccount: "sa1", Audiences: []string{"a1", "a2"}, Lifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	var disc Discovery
	getJSON(t, client, srv.URL+DiscoveryPath, &disc)
	if disc.Issuer != srv.URL || disc.JWKSURI != srv.URL+JWKSPath {
		t.Fatalf("discovery = %+v", disc)
	}
	var set jose.JSONWebKeySet
	getJSON(t, client, disc.JWKSURI, &set)
	verifyWith(t, tok.Raw, set, iss.KeyID(), map[string]any{
		"iss": srv.URL, "sub": "system:serviceaccount:ns1:sa1", "aud": []any{"a1", "a2"},
	})
}

func getJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func verifyWith(t *testing.T, raw string, set jose.JSONWebKeySet, kid string, want map[string]any) {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 || keys[0].KeyID != kid {
		t.Fatalf("JWKS has %d keys for kid %q", len(keys), jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if !reflect.DeepEqual(claims[k], v) {
			t.Errorf("claim %s = %#v, want %#v", k, claims[k], v)
		}
	}
}

func TestRestartKeepsKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := New(Options{URL: "https://127.0.0.1:6443", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := first.Mint(TokenRequest{Namespace: "default", ServiceAccount: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	second, err := New(Options{URL: "https://127.0.0.1:6443", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if second.KeyID() != first.KeyID() {
		t.Fatalf("kid changed across restart: %s → %s", first.KeyID(), second.KeyID())
	}
	verifyWith(t, tok.Raw, second.JWKS(), first.KeyID(), map[string]any{"sub": "system:serviceaccount:default:demo"})
	tok2, _ := second.Mint(TokenRequest{Namespace: "default", ServiceAccount: "demo"})
	if !reflect.DeepEqual(tok2.Claims.Kubernetes, tok.Claims.Kubernetes) {
		t.Errorf("kubernetes.io claim changed across restart: %+v → %+v", tok.Claims.Kubernetes, tok2.Claims.Kubernetes)
	}
}

func TestBadKeyFiles(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not PEM", []byte("hello"), "no PEM block"},
		{"wrong type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `PEM block "CERTIFICATE"`},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), "issuer key"},
		{"small key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER}), "1024-bit RSA key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, KeyFile), tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Options{URL: "https://x.example", StateDir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	iss := fixedIssuer(t, "https://127.0.0.1:6443")
	for _, tc := range []struct {
		name string
		req  TokenRequest
		want string
	}{
		{"no namespace", TokenRequest{ServiceAccount: "demo"}, "namespace is required"},
		{"no sa", TokenRequest{Namespace: "default"}, "service account is required"},
		{"upper case", TokenRequest{Namespace: "Default", ServiceAccount: "demo"}, `namespace "Default" is not a valid Kubernetes name`},
		{"colon", TokenRequest{Namespace: "default", ServiceAccount: "a:b"}, `service account "a:b"`},
		{"short", TokenRequest{Namespace: "default", ServiceAccount: "demo", Lifetime: time.Millisecond}, "lifetime 1ms"},
		{"long", TokenRequest{Namespace: "default", ServiceAccount: "demo", Lifetime: 25 * time.Hour}, "lifetime 25h0m0s"},
		{"empty aud", TokenRequest{Namespace: "default", ServiceAccount: "demo", Audiences: []string{""}}, "an audience is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iss.Mint(tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	for _, u := range []string{"", "http://127.0.0.1", "https://", "https://x.example/?a=b", "https://x.example/#f", "https://u@x.example"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}

func FuzzParseKeyPEM(f *testing.F) {
	seed, _ := os.ReadFile("testdata/state/issuer-key.pem")
	f.Add(seed)
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseKeyPEM("fuzz", data)
		if err == nil && k.N.BitLen() < 2048 {
			t.Fatalf("accepted a %d-bit key", k.N.BitLen())
		}
	})
}

func BenchmarkMint(b *testing.B) {
	iss, err := New(Options{URL: "https://127.0.0.1:6443", StateDir: "testdata/state"})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := iss.Mint(TokenRequest{Namespace: "default", ServiceAccount: "demo"}); err != nil {
			b.Fatal(err)
		}
	}
}

func jsonDecodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
