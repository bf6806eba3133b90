package trust

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// fetchErr runs one lookup of kid "k1" against src and returns its
// FetchError, failing the test if the error is of another kind.
func fetchErr(t *testing.T, c *Cache, src Source) *FetchError {
	t.Helper()
	_, err := c.Key(ctxT(t), src, "k1")
	var fe *FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v, want *FetchError", err)
	}
	return fe
}

func TestRedirects(t *testing.T) {
	other := newTestIssuer(t, rsaJWK(0, "k1"))
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	var hops atomic.Int32 // redirects to make before the document
	ti.route("/elsewhere/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL+"/.well-known/openid-configuration", http.StatusFound)
	})
	ti.route("/hop/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		// hops redirects in a chain on this host, then one to the document.
		if n := len(r.URL.Query()["n"]); n < int(hops.Load()) {
			http.Redirect(w, r, r.URL.Path+"?"+r.URL.RawQuery+"&n=1", http.StatusFound)
			return
		}
		http.Redirect(w, r, "/.well-known/openid-configuration", http.StatusMovedPermanently)
	})
	ti.route("/http/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(ti.srv.URL, "https:", "http:", 1)+"/.well-known/openid-configuration", http.StatusFound)
	})
	c, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) { o.Allow = nil })
	src := func(prefix string) Source {
		return Source{DiscoveryURL: ti.srv.URL + prefix + "/.well-known/openid-configuration", Issuer: ti.srv.URL}
	}

	fe := fetchErr(t, c, src("/elsewhere"))
	if !errors.Is(fe, ErrRedirectRefused) || !strings.Contains(fe.Error(), "redirected to "+other.srv.URL+"/.well-known/openid-configuration; only redirects within "+ti.srv.URL+" are followed") {
		t.Fatalf("cross-host redirect: %v", fe)
	}
	if d, j := other.counts(); d != 0 || j != 0 {
		t.Fatalf("the other host got %d+%d requests", d, j)
	}
	fe = fetchErr(t, c, src("/http"))
	if !errors.Is(fe, ErrRedirectRefused) {
		t.Fatalf("https→http redirect: %v", fe)
	}

	hops.Store(2) // 3 redirects in all: followed
	if _, err := c.Key(ctxT(t), src("/hop"), "k1"); err != nil {
		t.Fatalf("3 same-host redirects: %v", err)
	}
	hops.Store(3) // 4 redirects: refused
	fe = fetchErr(t, c, Source{DiscoveryURL: ti.srv.URL + "/hop/.well-known/openid-configuration?again", Issuer: ti.srv.URL})
	if !errors.Is(fe, ErrRedirectRefused) || !strings.Contains(fe.Error(), "more than 3 redirects") {
		t.Fatalf("4 redirects: %v", fe)
	}
}

func TestResponseTooLarge(t *testing.T) {
	big := `{"keys":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, tc := range []struct {
		name  string
		flush bool // no Content-Length: the limit is found while reading
		want  string
	}{
		{"content-length", false, "Content-Length 2097172 exceeds the limit of 1048576 bytes"},
		{"chunked", true, "the body exceeds the limit of 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t)
			ti.route("/keys", func(w http.ResponseWriter, r *http.Request) {
				if tc.flush {
					w.(http.Flusher).Flush()
				} else {
					w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				}
				_, _ = w.Write([]byte(big))
			})
			c, _ := newTestCache(t, ti, newFakeClock(), nil)
			fe := fetchErr(t, c, ti.source())
			if !errors.Is(fe, ErrResponseTooLarge) || fe.URL != ti.srv.URL+"/keys" || !strings.Contains(fe.Error(), tc.want) {
				t.Fatalf("err = %v; want ErrResponseTooLarge at /keys saying %q", fe, tc.want)
			}
		})
	}
}

func TestBadKeySets(t *testing.T) {
	priv := jose.JSONWebKey{Key: rsaKeys()[1], KeyID: "leak", Algorithm: "RS256", Use: "sig"}
	privJSON, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaJWK(0, "k1"), priv}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, jwks, want string
		is               error
	}{
		{"private d", string(privJSON), `private key material in a key set: key 1 has the private or symmetric key parameter "`, ErrPrivateKeyMaterial},
		{"symmetric", `{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0"}]}`, `key 0 has the private or symmetric key parameter "k"`, ErrPrivateKeyMaterial},
		{"not json", `<html>`, "key set is not a JSON object: expected a JSON object", nil},
		{"no keys member", `{"kid":"k1"}`, `key set has no "keys" array`, nil},
		{"only unusable", `{"keys":[{"kty":"RSA","kid":"e","use":"enc","n":"AQAB","e":"AQAB"},{"kty":"OKP","kid":"x","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
			`the key set has no usable RSA, EC or Ed25519 signing key: key 0 (kid "e"): use "enc", not "sig"; key 1 (kid "x"): `, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t)
			ti.set(func(x *testIssuer) { x.jwks = []byte(tc.jwks) })
			c, _ := newTestCache(t, ti, newFakeClock(), nil)
			fe := fetchErr(t, c, ti.source())
			if fe.URL != ti.srv.URL+"/keys" || !strings.Contains(fe.Error(), tc.want) {
				t.Fatalf("err = %v\nwant at %s/keys: %s", fe, ti.srv.URL, tc.want)
			}
			if tc.is != nil && !errors.Is(fe, tc.is) {
				t.Fatalf("err = %v, want it to wrap %v", fe, tc.is)
			}
		})
	}
}

func TestMaxKeysKept(t *testing.T) {
	keys := make([]jose.JSONWebKey, 150)
	for i := range keys {
		keys[i] = ecJWK(t, fmt.Sprintf("k%03d", i))
	}
	ti := newTestIssuer(t, keys...)
	c, _ := newTestCache(t, ti, newFakeClock(), nil)
	got, err := c.Keys(ctxT(t), ti.source())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 || got[0].KeyID != "k000" || got[99].KeyID != "k099" {
		t.Fatalf("kept %d keys (%s..%s), want k000..k099", len(got), got[0].KeyID, got[len(got)-1].KeyID)
	}
	if _, err := c.Key(ctxT(t), ti.source(), "k099"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Key(ctxT(t), ti.source(), "k100")
	if !errors.Is(err, ErrUnknownKID) || !strings.Contains(err.Error(), `not among the 100 keys`) || !strings.Contains(err.Error(), `"k009" and 90 more`) {
		t.Fatalf("k100: %v", err)
	}
	// Keys returns a copy: changing it does not change the cache.
	got[0].KeyID = "changed"
	k, err := c.Key(ctxT(t), ti.source(), "k000")
	if err != nil || k.KeyID != "k000" {
		t.Fatalf("after changing the copy: %v, %v", k, err)
	}
}

func TestInsecureURLsRefused(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	ti.set(func(x *testIssuer) { x.jwksURI = strings.Replace(x.srv.URL, "https:", "http:", 1) + "/keys" })
	c, _ := newTestCache(t, ti, newFakeClock(), nil)
	fe := fetchErr(t, c, ti.source())
	if !errors.Is(fe, ErrInsecureURL) || !strings.Contains(fe.Error(), `"jwks_uri" "http://`) || !strings.Contains(fe.Error(), `scheme "http", only https is fetched`) {
		t.Fatalf("http jwks_uri: %v", fe)
	}
	if _, j := ti.counts(); j != 0 {
		t.Fatalf("jwks fetched %d times", j)
	}
	for _, u := range []string{"http://127.0.0.1/x", "", "https://", "https://user:pw@host/x", "ftp://host/x"} {
		fe := fetchErr(t, c, Source{DiscoveryURL: u})
		if !errors.Is(fe, ErrInsecureURL) {
			t.Errorf("DiscoveryURL %q: %v", u, fe)
		}
	}
	if d, _ := ti.counts(); d != 1 {
		t.Fatalf("discovery fetched %d times, want 1", d)
	}
	if n := len(*c.entries.Load()); n != 1 {
		t.Fatalf("%d cache entries, want 1 (none for refused URLs)", n)
	}
}

func TestFetchTimeout(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	ti.set(func(x *testIssuer) { x.gate = gate })
	c, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) { o.FetchTimeout = 200 * time.Millisecond })
	fe := fetchErr(t, c, ti.source())
	if !errors.Is(fe, context.DeadlineExceeded) || fe.URL != ti.srv.URL+"/keys" || !strings.Contains(fe.Error(), "no complete response within 200ms") {
		t.Fatalf("err = %v", fe)
	}
}

func TestRefreshAndClose(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	clk := newFakeClock()
	c, _ := newTestCache(t, ti, clk, nil)
	src := ti.source()
	for range 3 { // Refresh ignores the cooldown
		if err := c.Refresh(ctxT(t), src); err != nil {
			t.Fatal(err)
		}
	}
	if d, j := ti.counts(); d != 3 || j != 3 {
		t.Fatalf("discovery %d, jwks %d; want 3 and 3", d, j)
	}
	md, err := c.Metadata(ctxT(t), src)
	if err != nil || md.Issuer != ti.srv.URL || md.JWKSURI != ti.srv.URL+"/keys" || !md.FetchedAt.Equal(clk.Now()) {
		t.Fatalf("Metadata = %+v, %v", md, err)
	}
	ti.set(func(x *testIssuer) { x.status = 503 })
	err = c.Refresh(ctxT(t), src)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.StatusCode != 503 {
		t.Fatalf("Refresh with the issuer down: %v", err)
	}
	c.Close()
	// Cached keys are still served after Close; fetches fail.
	if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * DefaultMinRefetchInterval)
	if _, err := c.Key(ctxT(t), src, "k2"); !errors.Is(err, ErrUnknownKID) || !strings.Contains(err.Error(), "the cache was closed") {
		t.Fatalf("after Close: %v", err)
	}
}

// The key handed out is the issuer's public key, whatever the JSON held.
func TestKeyIsPublic(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(2, "k1"))
	c, _ := newTestCache(t, ti, newFakeClock(), nil)
	k, err := c.Key(ctxT(t), ti.source(), "k1")
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.Key.(*rsa.PublicKey)
	if !ok || !pub.Equal(&rsaKeys()[2].PublicKey) || !k.IsPublic() {
		t.Fatalf("key %T %v", k.Key, k)
	}
}

// TestKubeAPIServerContentNegotiation: kube-apiserver serves its JWKS as
// application/jwk-set+json and answers 406 to a request that accepts only
// application/json, so the cache must accept both.
func TestKubeAPIServerContentNegotiation(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	data, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaJWK(0, "k1")}})
	ti.route("/keys", func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "application/jwk-set+json") {
			http.Error(w, "406: Not Acceptable", http.StatusNotAcceptable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(data)
	})
	c, _ := newTestCache(t, ti, newFakeClock(), nil)
	if _, err := c.Key(context.Background(), ti.source(), "k1"); err != nil {
		t.Fatalf("Key: %v", err)
	}
}
