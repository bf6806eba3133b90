package gateway

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/gateway/testissuer"
	"github.com/wif-project/wif/tokenauth"
)

// FuzzGatewayRequest sends arbitrary Authorization headers, paths and
// correlation ids through policysample.xml: the gateway must answer 200
// only for the genuine token, never 5xx, and always a correlation id.
func FuzzGatewayRequest(f *testing.F) {
	e := &gwEnv{iss: testissuer.Start(f), now: time.Now()}
	cfg := &Config{
		TokenService: TokenService{URL: e.iss.URL, EntraPublicHosts: true},
		Routes:       []Route{{Name: "api", PathPrefix: "/api/", Backend: "http://backend.invalid/", Policy: "p.xml"}},
	}
	pol, err := apim.Parse("p.xml", []byte(policySample(f)))
	if err != nil {
		f.Fatal(err)
	}
	gw, err := New(cfg, []*apim.Policy{pol}, Options{KeyClient: e.iss.Client, BackendTransport: cannedBackend{}})
	if err != nil {
		f.Fatal(err)
	}
	defer gw.Close()
	good := "Bearer " + e.v1(f, nil)
	f.Add(good, "/api/x", "")
	f.Add("Bearer a.b.c", "/api/%2e%2e/x", "id-1")
	f.Add("bearer ", "/other", "\x00")
	f.Add("Basic Zm9vOmJhcg==", "/api/", "")
	f.Add("", "/readyz", "")
	f.Add("", "/metrics", "")
	f.Add("", "/healthz?x=1", "")
	f.Fuzz(func(t *testing.T, auth, path, corr string) {
		u, err := url.ParseRequestURI(path)
		// Only origin-form targets an HTTP server would pass on: "a: 0"
		// parses as a scheme and an opaque part, and "/? " keeps its space
		// in the raw query; httptest.NewRequest panics on both.
		if err != nil || u.Host != "" || !strings.HasPrefix(u.RequestURI(), "/") || strings.ContainsFunc(u.RequestURI(), func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return
		}
		req := httptest.NewRequest("GET", "http://gw"+u.RequestURI(), nil)
		req.Header["Authorization"] = []string{auth}
		req.Header["X-Correlation-Id"] = []string{corr}
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q %q", w.Code, auth, path)
		}
		if w.Code == 200 && tokenauth.TokenFromHeader(auth, "Bearer") != good[len("Bearer "):] {
			if _, ok := map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}[u.Path]; !ok {
				t.Fatalf("200 for %q %q", auth, path)
			}
		}
		probe := u.Path == "/healthz" || u.Path == "/readyz" || u.Path == "/metrics"
		redirect := w.Code >= 300 && w.Code < 400 // ServeMux cleaning the path
		if w.Header().Get("X-Correlation-Id") == "" && !probe && !redirect {
			t.Fatalf("no correlation id: %d %q", w.Code, path)
		}
	})
}
