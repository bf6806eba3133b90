package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/gateway/testissuer"
)

// routedGateway has three routes in front of one backend that echoes the
// request target exactly as it arrived and the X-Policy header: each
// route's policy sets X-Policy to its own name, so the reply tells which
// policy ran on the request the backend got.
type routedGateway struct {
	gw      *Gateway
	srv     *httptest.Server
	prefix  map[string]string // route name → path prefix
	backend *httptest.Server
}

func startRouted(t testing.TB) *routedGateway {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"target": r.RequestURI, "policy": r.Header.Get("X-Policy")})
	}))
	t.Cleanup(backend.Close)
	rg := &routedGateway{prefix: map[string]string{"admin": "/admin", "v2": "/api/v2", "open": "/"}, backend: backend}
	cfg := &Config{TokenService: TokenService{URL: "https://127.0.0.1:1"}}
	var pols []*apim.Policy
	for _, name := range []string{"admin", "v2", "open"} {
		cfg.Routes = append(cfg.Routes, Route{Name: name, PathPrefix: rg.prefix[name], Backend: backend.URL, Policy: name + ".xml"})
		p, err := apim.Parse(name+".xml", []byte(wrap(`<set-header name="X-Policy" exists-action="override"><value>`+name+`</value></set-header>`)))
		if err != nil {
			t.Fatal(err)
		}
		pols = append(pols, p)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, pols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	rg.gw = gw
	rg.srv = httptest.NewServer(gw)
	t.Cleanup(rg.srv.Close)
	return rg
}

// serve parses target as a server would from a request line and serves it;
// ok is false when no HTTP server would deliver it.
func (rg *routedGateway) serve(target string) (status int, policy, received string, ok bool) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: gw.example\r\n\r\n")))
	if err != nil {
		return 0, "", "", false
	}
	req.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	rg.gw.ServeHTTP(w, req)
	var echo map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &echo)
	return w.Code, echo["policy"], echo["target"], true
}

// readings are the paths a backend might take a request target for:
// as sent, percent-decoded once or twice; then as is, with dot segments
// resolved and slashes merged, with '\' as '/', or with ';' parameters
// stripped; compared in any letter case.
func readings(target string) []string {
	p, _, _ := strings.Cut(target, "?")
	forms := []string{p}
	if d, err := url.PathUnescape(p); err == nil {
		forms = append(forms, d)
		if d2, err := url.PathUnescape(d); err == nil {
			forms = append(forms, d2)
		}
	}
	stripParams := func(s string) string {
		segs := strings.Split(s, "/")
		for i, seg := range segs {
			segs[i], _, _ = strings.Cut(seg, ";")
		}
		return strings.Join(segs, "/")
	}
	var out []string
	for _, f := range forms {
		for _, g := range []string{f, path.Clean(f), path.Clean(strings.ReplaceAll(f, `\`, "/")), path.Clean(stripParams(f)), path.Clean(stripParams(strings.ReplaceAll(f, `\`, "/")))} {
			out = append(out, strings.ToLower(g))
		}
	}
	return out
}

// bestRoute is the route a reading of the full path falls under: the
// longest prefix on a segment boundary.
func (rg *routedGateway) bestRoute(full string) string {
	best, n := "", -1
	for name, p := range rg.prefix {
		p = strings.ToLower(p)
		if (full == p || strings.HasPrefix(full, strings.TrimSuffix(p, "/")+"/")) && len(p) > n {
			best, n = name, len(p)
		}
	}
	return best
}

// check is the property: for any request path, the path the backend
// receives falls under a route's prefix — read any way a backend might —
// only if that route's policy ran. A refusal (400) passes.
func (rg *routedGateway) check(t *testing.T, target string) {
	t.Helper()
	status, policy, received, ok := rg.serve(target)
	if !ok || status == http.StatusBadRequest {
		return
	}
	if status != http.StatusOK || policy == "" {
		t.Fatalf("%q: status %d policy %q", target, status, policy)
	}
	// The full path as the route's mount point plus what its backend got.
	full := strings.TrimSuffix(rg.prefix[policy], "/") + received
	for _, reading := range readings(full) {
		if want := rg.bestRoute(reading); want != policy {
			t.Fatalf("request %q: policy %q ran, but its backend received %q, which reads as %q, under route %q", target, policy, received, reading, want)
		}
	}
}

// TestRouteSelectionMatchesForwardedPath is the property test over random
// paths made of the pieces path-confusion attacks are built from.
func TestRouteSelectionMatchesForwardedPath(t *testing.T) {
	rg := startRouted(t)
	pieces := []string{"admin", "ADMIN", "Admin", "%61dmin", "%41DMIN", "api", "v2", "V2", "x", "", ".", "..", "%2e", "%2E%2E", ".%2e",
		"%2F", "%2f", "%5C", `\`, "%252F", "%2525", ";", ";x=1", "..;", ".;", "admin;p", "%3B", "%00", "%20", "a%2Fb", "%", "%zz", "%C0%AE", "é", "%E2%80%AE",
		"\u212Adm", "ſ"}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		n := 1 + rnd.IntN(5)
		var b strings.Builder
		if rnd.IntN(4) == 0 {
			b.WriteString("/")
		}
		for j := 0; j < n; j++ {
			b.WriteString("/")
			b.WriteString(pieces[rnd.IntN(len(pieces))])
			if rnd.IntN(5) == 0 {
				b.WriteString(pieces[rnd.IntN(len(pieces))])
			}
		}
		if rnd.IntN(6) == 0 {
			b.WriteString("/")
		}
		rg.check(t, b.String())
	}
}

// FuzzRouteSelection runs the same property on arbitrary request targets.
func FuzzRouteSelection(f *testing.F) {
	for _, s := range []string{"/admin/x", "/ADMIN/x", "//admin/x", "/x/../admin", "/%61dmin", "/admin%2Fx", "/x/..;/admin", "/api/v2;x/y", "/a/b/", "http://h/admin"} {
		f.Add(s)
	}
	rg := startRouted(f)
	f.Fuzz(func(t *testing.T, target string) {
		rg.check(t, target)
	})
}

// TestPathConfusionOnTheWire sends the review's attacks as raw request
// lines over TCP (no client normalizes them) to a gateway whose /admin
// route requires a token and whose catch-all is open.
func TestPathConfusionOnTheWire(t *testing.T) {
	e := startGateway(t, jwtPolicy(`header-name="Authorization"`, stdChildren), func(c *Config) {
		c.Routes[0].PathPrefix = "/admin"
		c.Routes = append(c.Routes, Route{Name: "open", PathPrefix: "/", Backend: c.Routes[0].Backend, Policy: "open.xml"})
	})
	// The catch-all must run an empty policy: rebuild with two policies.
	cfg := e.gw.cfg
	protected, _ := apim.Parse("admin.xml", []byte(jwtPolicy(`header-name="Authorization"`, stdChildren)))
	open, _ := apim.Parse("open.xml", []byte(wrap("")))
	gw, err := New(cfg, []*apim.Policy{protected, open}, Options{KeyClient: e.iss.Client, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	raw := func(target string) (int, string) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for target, want := range map[string]int{
		"/admin/users":          401, // the protected route, no token
		"/ADMIN/users":          401, // case variant: still the protected route
		"/Admin;jsessionid=1/x": 401,
		"//admin/users":         401, // duplicate slash merged
		"/x/../admin/users":     401,
		"/./admin/users":        401,
		"/%61dmin/users":        401, // encoded letter decoded once
		"/admin%2Fusers":        400, // encoded slash refused
		"/x%2F..%2Fadmin":       400,
		"/%2e%2e/admin":         400, // encoded dot segment refused
		"/x/..;/admin/users":    400, // Tomcat's '..;' refused
		"/x\\..\\admin":         400,
		"/%252e%252e/admin":     400, // double encoding refused
		"/public/page":          200,
	} {
		status, body := raw(target)
		if status != want {
			t.Errorf("%s: %d %s, want %d", target, status, body, want)
		}
		if status == 200 && strings.Contains(strings.ToLower(body), "admin") {
			t.Errorf("%s: the open route's backend received %s", target, body)
		}
	}
}

// rawBackend is a backend that records each request's header block
// exactly as it arrived on the wire (no canonicalization by a server).
type rawBackend struct {
	ln   net.Listener
	mu   sync.Mutex
	last string
}

func startRawBackend(t *testing.T) *rawBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					b.mu.Lock()
					b.last = head.String()
					b.mu.Unlock()
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}(c)
		}
	}()
	return b
}

func (b *rawBackend) headers() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.last), "\r\n")[1:]
}

// TestIdentityHeadersCannotBeForgedOrDropped: the backend sees exactly the
// gateway's identity headers, whatever the caller sends: forged copies in
// any case and with '_' for '-', and a Connection header naming them.
func TestIdentityHeadersCannotBeForgedOrDropped(t *testing.T) {
	iss := testissuer.Start(t)
	b := startRawBackend(t)
	for _, pol := range []struct{ name, xml string }{
		{"shared headers", jwtPolicy(`header-name="Authorization"`, stdChildren)},
		{"own copy", wrap(`<set-header name="X-Tag" exists-action="override"><value>1</value></set-header>` + jwtInner(`header-name="Authorization"`, stdChildren))},
	} {
		t.Run(pol.name, func(t *testing.T) {
			e := startGatewayWith(t, &gwEnv{iss: iss, backend: startBackend(t), now: time.Now()}, pol.xml, func(c *Config) {
				c.Routes[0].Backend = "http://" + b.ln.Addr().String()
			})
			forged := []string{
				"X-Wif-Client-Id: forged", "x-wif-roles: Admin", "X_Wif_Tenant_Id: forged", "x_wif_object_id: forged",
				"X-WIF_ROLES: Admin", "X-Wif-Extra: forged",
				"Connection: X-Wif-Client-Id, X-Wif-Roles, X-Wif-Tenant-Id, X-Wif-Object-Id, X-Correlation-Id",
			}
			c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nX-Correlation-Id: corr-7\r\n%s\r\n\r\n",
				e.v1(t, map[string]any{"roles": []string{"Data.Read"}}), strings.Join(forged, "\r\n"))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			var identity []string
			for _, h := range b.headers() {
				name, _, _ := strings.Cut(h, ":")
				if isIdentityHeader(name) || strings.EqualFold(name, HeaderCorrelationID) {
					identity = append(identity, h)
				}
			}
			want := []string{
				"X-Correlation-Id: corr-7",
				"X-Wif-Client-Id: " + appID,
				"X-Wif-Object-Id: 9a2f6b7c-0000-4000-8000-00000000b0b0",
				"X-Wif-Roles: Data.Read",
				"X-Wif-Tenant-Id: " + tid,
			}
			slices.Sort(identity)
			if strings.Join(identity, "\n") != strings.Join(want, "\n") {
				t.Fatalf("backend received identity headers:\n%s\nwant:\n%s", strings.Join(identity, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
