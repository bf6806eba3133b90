package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	pathpkg "path"
	"strings"
	"testing"
)

// FuzzConsoleRequest sends arbitrary methods, paths, hosts, origins and
// tokens to the console: it answers with a page, a precise 4xx, or what
// the admin API said (proxied only with the session token, for its own
// host and origin); never a panic, never a 5xx of its own.
func FuzzConsoleRequest(f *testing.F) {
	for _, s := range []struct{ method, path, host, origin, token string }{
		{"GET", "/", "127.0.0.1:8099", "", ""},
		{"GET", "/api/tenants", "127.0.0.1:8099", "", "tok"},
		{"DELETE", "/api/tenants/x", "127.0.0.1:8099", "http://127.0.0.1:8099", "tok"},
		{"GET", "/api/../admin/tenants", "evil.example:8099", "", "tok"},
		{"GET", "/api/../oauth2/token", "127.0.0.1:8099", "", "tok"},
		{"GET", "/api/%2e%2e/x", "127.0.0.1:8099", "", "tok"},
		{"POST", "/session", "127.0.0.1:8099", "https://evil.example", "nope"},
		{"GET", "/app.js", "127.0.0.1:8099", "", ""},
		{"GET", "/status", "127.0.0.1:8099", "", "tok"},
	} {
		f.Add(s.method, s.path, s.host, s.origin, s.token)
	}
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/admin/") && r.URL.Path != "/readyz" {
			t := r.URL.Path
			http.Error(w, "the proxy sent "+t, http.StatusTeapot)
			return
		}
		if r.Header.Get("Cookie") != "" || r.Header.Get(TokenHeader) != "" {
			http.Error(w, "browser headers leaked", http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer admin.Close()
	u, _ := url.Parse(admin.URL)
	c, err := New(Config{AdminURL: u, SessionToken: "tok", Session: Session{CanWrite: false}})
	if err != nil {
		f.Fatal(err)
	}
	c.SetAddr("127.0.0.1:8099")
	f.Fuzz(func(t *testing.T, method, path, host, origin, token string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || !validMethod(method) {
			return
		}
		r, err := http.NewRequest(method, "http://127.0.0.1:8099"+path, nil)
		if err != nil {
			return
		}
		r.Host = host
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if token != "" {
			r.Header.Set(TokenHeader, token)
		}
		r.Header.Set("Cookie", "session=abc")
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code == http.StatusTeapot {
			t.Fatalf("%s %s reached the admin API wrongly: %s", method, path, w.Body)
		}
		if w.Code >= 500 && w.Code != http.StatusBadGateway {
			t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
		proxied := strings.HasPrefix(r.URL.Path, "/api/")
		if proxied && w.Code == 200 && pathpkg.Clean(r.URL.Path) != r.URL.Path {
			t.Fatalf("%s %s: an unclean path was proxied", method, path)
		}
		if proxied && w.Code == 200 && (token != "tok" || !strings.EqualFold(host, "127.0.0.1:8099") || origin != "" && origin != "http://127.0.0.1:8099") {
			t.Fatalf("%s %s with host %q origin %q token %q was proxied", method, path, host, origin, token)
		}
		if proxied && w.Code == 200 && method != "GET" && !strings.HasSuffix(r.URL.Path, "/testFederatedCredentials") {
			t.Fatalf("a read-only console proxied %s %s", method, path)
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
