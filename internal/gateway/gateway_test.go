package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/gateway/testissuer"
)

const (
	tid   = "d12058fe-ecf4-454a-9a69-cef5686fc24f"
	appID = "ad0c8137-362f-451a-93b0-d08040425294"
	aud   = "api://mydummyapi"
)

// backend records what the gateway forwarded.
type backend struct {
	*httptest.Server
	mu   sync.Mutex
	last *http.Request
	n    int
}

func startBackend(t testing.TB) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.last, b.n = r.Clone(r.Context()), b.n+1
		b.mu.Unlock()
		w.Header().Set("X-Backend", "yes")
		w.Header().Set("X-Remove-Me", "1")
		io.WriteString(w, "backend:"+r.URL.Path)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) lastRequest() (*http.Request, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last, b.n
}

type gwEnv struct {
	iss     *testissuer.Issuer
	backend *backend
	gw      *Gateway
	srv     *httptest.Server
	now     time.Time
	mu      sync.Mutex
}

func (e *gwEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *gwEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// startGateway runs a gateway with one route "/" whose policy is policyXML,
// in front of a recording backend, with Entra's hosts standing for a test
// issuer (the stand-in for the wif token service).
func startGateway(t testing.TB, policyXML string, cfgMod func(*Config)) *gwEnv {
	t.Helper()
	return startGatewayWith(t, &gwEnv{iss: testissuer.Start(t), backend: startBackend(t), now: time.Now()}, policyXML, cfgMod)
}

func startGatewayWith(t testing.TB, e *gwEnv, policyXML string, cfgMod func(*Config)) *gwEnv {
	t.Helper()
	cfg := &Config{
		TokenService: TokenService{URL: e.iss.URL, EntraPublicHosts: true},
		Routes:       []Route{{Name: "api", PathPrefix: "/", Backend: e.backend.URL + "/svc", Policy: "policy.xml"}},
	}
	if cfgMod != nil {
		cfgMod(cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	pol, err := apim.Parse("policy.xml", []byte(policyXML))
	if err != nil {
		t.Fatal(err)
	}
	pols := make([]*apim.Policy, len(cfg.Routes)) // the same policy on every route
	for i := range pols {
		pols[i] = pol
	}
	gw, err := New(cfg, pols, Options{KeyClient: e.iss.Client, Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	e.gw = gw
	e.srv = httptest.NewServer(gw)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *gwEnv) v1(t testing.TB, mod map[string]any) string {
	return e.iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: e.clock().Add(-time.Minute), Extra: mod})
}

type result struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (e *gwEnv) do(t testing.TB, method, path string, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, body: string(b)}
	_ = json.Unmarshal(b, &r.json)
	return r
}

func policySample(t testing.TB) string {
	b, err := os.ReadFile("apim/testdata/policysample.xml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPolicySample runs seed 000's production policy unedited.
func TestPolicySample(t *testing.T) {
	e := startGateway(t, policySample(t), nil)
	const msg = "Call from non-approved managed identity is not allowed"
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	t.Run("approved identity passes and the backend sees clientid", func(t *testing.T) {
		r := e.do(t, "GET", "/orders/1", map[string]string{
			"Authorization":    "Bearer " + e.v1(t, nil),
			"X-Wif-Client-Id":  "forged",
			"x-wif-roles":      "Admin",
			"X-Correlation-Id": "trace-123",
		})
		if r.status != 200 || r.body != "backend:/svc/orders/1" {
			t.Fatalf("status %d body %q", r.status, r.body)
		}
		got, _ := e.backend.lastRequest()
		for k, want := range map[string]string{
			"Clientid":         appID,
			"X-Wif-Client-Id":  appID,
			"X-Wif-Tenant-Id":  tid,
			"X-Wif-Object-Id":  "9a2f6b7c-0000-4000-8000-00000000b0b0",
			"X-Wif-Roles":      "",
			"X-Correlation-Id": "trace-123",
		} {
			if v := strings.Join(got.Header.Values(k), "|"); v != want {
				t.Errorf("backend header %s = %q, want %q", k, v, want)
			}
		}
		if r.header.Get("X-Correlation-Id") != "trace-123" || r.header.Get("X-Request-Duration") == "" || r.header.Get("X-Backend") != "yes" {
			t.Errorf("response headers %v", r.header)
		}
	})
	refusals := []struct {
		name      string
		hdr       map[string]string
		code      string
		challenge string
	}{
		{"another identity", bearer(e.v1(t, map[string]any{"appid": "00000000-0000-0000-0000-00000000beef"})), "insufficient_scope",
			`Bearer error="insufficient_scope", error_description="Claim \"appid\" lacks a required value."`},
		{"expired", bearer(e.iss.Mint(t, testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID, IssuedAt: e.clock().Add(-2 * time.Hour)})), "token_expired",
			`Bearer error="invalid_token", error_description="The token has expired."`},
		{"unknown issuer", bearer(e.v1(t, map[string]any{"iss": "https://evil.example/" + tid + "/"})), "invalid_token",
			`Bearer error="invalid_token", error_description="Issuer \"https://evil.example/` + tid + `/\" is not accepted."`},
		{"v2 issuer of the same tenant (policy lists only v1)", bearer(e.iss.Mint(t, testissuer.Token{Version: 2, TenantID: tid, Audience: aud, ClientID: appID})), "invalid_token", ""},
		{"wrong audience", bearer(e.v1(t, map[string]any{"aud": "api://other"})), "invalid_token",
			`Bearer error="invalid_token", error_description="Audience \"api://other\" is not accepted (accepted: api://mydummyapi)."`},
		{"alg none", bearer(testissuer.Sign(t, "none", nil, nil, e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))), "invalid_token",
			`Bearer error="invalid_token", error_description="Unsigned tokens (alg \"none\") are refused."`},
		{"HS256 with the public key", bearer(testissuer.Sign(t, "HS256", e.iss.Key.PublicKey.N.Bytes(), map[string]any{"kid": e.iss.KID},
			e.iss.Claims(testissuer.Token{TenantID: tid, Audience: aud, ClientID: appID}))), "invalid_token",
			`Bearer error="invalid_token", error_description="Algorithm \"HS256\" is not allowed (allowed: RS256, RS512, PS256)."`},
		{"no token", nil, "invalid_token", "Bearer"},
		{"wrong scheme", map[string]string{"Authorization": "Basic " + e.v1(t, nil)}, "invalid_token",
			`Bearer error="invalid_token", error_description="The Authorization header does not use the Bearer scheme."`},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, before := e.backend.lastRequest()
			r := e.do(t, "GET", "/orders/1", tt.hdr)
			if r.status != 401 {
				t.Fatalf("status = %d, want 401; body %s", r.status, r.body)
			}
			if r.json["message"] != msg || r.json["statusCode"] != float64(401) || r.json["error"] != tt.code {
				t.Errorf("body = %s", r.body)
			}
			if tt.challenge != "" && r.header.Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("WWW-Authenticate = %s\n                  want %s", r.header.Get("WWW-Authenticate"), tt.challenge)
			}
			if r.header.Get("X-Correlation-Id") == "" {
				t.Error("no correlation id on a refusal")
			}
			if _, after := e.backend.lastRequest(); after != before {
				t.Error("a refused request reached the backend")
			}
		})
	}
	// Keys came from the mapped Entra URL, fetched once.
	if n := e.iss.DiscoveryRequests.Load(); n != 1 {
		t.Errorf("discovery fetches = %d, want 1", n)
	}
}
