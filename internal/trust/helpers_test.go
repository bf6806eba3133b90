package trust

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// fakeClock is the cache's clock in tests: time moves only when told, so
// expiry, cooldown and staleness are tested without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testIssuer is a real OIDC issuer on loopback TLS serving a discovery
// document at /.well-known/openid-configuration and keys at /keys; it
// counts the requests it serves.
type testIssuer struct {
	srv *httptest.Server

	mu           sync.Mutex
	issuer       string // the discovery document's "issuer"
	jwksURI      string
	jwks         []byte
	status       int    // answer to every request when not 0
	cacheControl string // on the key set
	gate         chan struct{}

	discoveryHits atomic.Int32
	jwksHits      atomic.Int32
	// routes, by path, serve instead of the defaults.
	routes map[string]http.HandlerFunc
}

func newTestIssuer(t testing.TB, keys ...jose.JSONWebKey) *testIssuer {
	t.Helper()
	ti := &testIssuer{}
	ti.srv = httptest.NewTLSServer(http.HandlerFunc(ti.serve))
	t.Cleanup(ti.srv.Close)
	ti.issuer = ti.srv.URL
	ti.jwksURI = ti.srv.URL + "/keys"
	ti.setKeys(t, keys...)
	return ti
}

func (ti *testIssuer) serve(w http.ResponseWriter, r *http.Request) {
	ti.mu.Lock()
	h, status, issuer, jwksURI, jwks, cc, gate := ti.routes[r.URL.Path], ti.status, ti.issuer, ti.jwksURI, ti.jwks, ti.cacheControl, ti.gate
	ti.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		ti.discoveryHits.Add(1)
		if status != 0 {
			http.Error(w, "down", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": jwksURI})
	case "/keys":
		ti.jwksHits.Add(1)
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			http.Error(w, "down", status)
			return
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	default:
		http.NotFound(w, r)
	}
}

// route serves path with h instead of the default.
func (ti *testIssuer) route(path string, h http.HandlerFunc) {
	ti.set(func(ti *testIssuer) {
		if ti.routes == nil {
			ti.routes = map[string]http.HandlerFunc{}
		}
		ti.routes[path] = h
	})
}

func (ti *testIssuer) set(f func(ti *testIssuer)) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	f(ti)
}

func (ti *testIssuer) setKeys(t testing.TB, keys ...jose.JSONWebKey) {
	t.Helper()
	data, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	ti.set(func(ti *testIssuer) { ti.jwks = data })
}

func (ti *testIssuer) counts() (discovery, jwks int) {
	return int(ti.discoveryHits.Load()), int(ti.jwksHits.Load())
}

func (ti *testIssuer) source() Source { return IssuerSource(ti.srv.URL) }

// rsaKeys holds a few RSA keys generated once: 2048-bit generation is slow.
var rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// rsaJWK is the public JWK of test RSA key i with the given kid.
func rsaJWK(i int, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: &rsaKeys()[i].PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}
}

// ecJWK is a fresh P-256 public JWK.
func ecJWK(t testing.TB, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

// fetchEvents collects OnFetch calls so a test can wait for a background
// fetch to finish.
type fetchEvents chan error

func (ch fetchEvents) hook(_ Source, err error) { ch <- err }

func (ch fetchEvents) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("no fetch finished within 20 s")
		return nil
	}
}

// newTestCache returns a cache trusting ti's certificate, on clk, with
// fetch events reported to the returned channel.
func newTestCache(t testing.TB, ti *testIssuer, clk *fakeClock, mod func(*Options)) (*Cache, fetchEvents) {
	t.Helper()
	events := make(fetchEvents, 1000)
	opts := Options{HTTPClient: ti.srv.Client(), Now: clk.Now}
	opts.Hooks.OnFetch = events.hook
	if mod != nil {
		mod(&opts)
	}
	c := New(opts)
	t.Cleanup(c.Close)
	return c, events
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
