package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/gateway/testissuer"
)

func TestValidateAzureADToken(t *testing.T) {
	const other = "11111111-2222-3333-4444-555555555555"
	const backendApp = "99999999-0000-0000-0000-000000000001"
	policy := wrap(`<validate-azure-ad-token tenant-id="` + tid + `">
<client-application-ids><application-id>` + appID + `</application-id></client-application-ids>
<backend-application-ids><application-id>` + backendApp + `</application-id></backend-application-ids>
<audiences><audience>` + aud + `</audience></audiences>
</validate-azure-ad-token>`)
	e := startGateway(t, policy, nil)
	tests := []struct {
		name   string
		tok    func() string
		status int
		code   string
	}{
		{"v1 token, Entra-form issuer", func() string { return e.v1(t, nil) }, 200, ""},
		{"v1 token, wif-form issuer", func() string { return e.v1(t, map[string]any{"iss": e.iss.URL + "/" + tid + "/"}) }, 200, ""},
		{"v2 token with the backend app id as audience", func() string {
			return e.iss.Mint(t, testissuer.Token{Version: 2, TenantID: tid, Audience: backendApp, ClientID: appID})
		}, 200, ""},
		{"client application not listed", func() string { return e.v1(t, map[string]any{"appid": other}) }, 401, "insufficient_scope"},
		{"v2 client application not listed", func() string {
			return e.iss.Mint(t, testissuer.Token{Version: 2, TenantID: tid, Audience: backendApp, ClientID: other})
		}, 401, "insufficient_scope"},
		{"audience not listed", func() string { return e.v1(t, map[string]any{"aud": "api://other"}) }, 401, "invalid_token"},
		{"another tenant", func() string { return e.v1(t, map[string]any{"iss": "https://sts.windows.net/" + other + "/"}) }, 401, "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "GET", "/", map[string]string{"Authorization": "Bearer " + tt.tok()})
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 && (r.json["error"] != tt.code || r.json["message"] != "JWT not valid.") {
				t.Errorf("body = %s", r.body)
			}
		})
	}
}

func TestValidateAzureADTokenNeedsTokenService(t *testing.T) {
	pol, err := apim.Parse("p.xml", []byte(wrap(`<validate-azure-ad-token tenant-id="t"><client-application-ids><application-id>a</application-id></client-application-ids></validate-azure-ad-token>`)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Routes: []Route{{Name: "r", PathPrefix: "/", Backend: "http://127.0.0.1:1", Policy: "p.xml"}}}
	_, err = New(cfg, []*apim.Policy{pol}, Options{})
	want := "route r: p.xml:4: <validate-azure-ad-token> needs tokenService.url in the gateway config: the token service whose tenant t issues the tokens"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestSetHeaderModes(t *testing.T) {
	tests := []struct {
		action   string
		incoming []string // X-H values the caller sends
		want     string   // what the backend sees, joined by |
	}{
		{"override", nil, "new"},
		{"override", []string{"old"}, "new"},
		{"skip", nil, "new"},
		{"skip", []string{"old"}, "old"},
		{"append", nil, "new"},
		{"append", []string{"old"}, "old|new"},
		{"delete", []string{"old"}, ""},
		{"delete", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.action+"/"+strconv.Itoa(len(tt.incoming)), func(t *testing.T) {
			val := "<value>new</value>"
			if tt.action == "delete" {
				val = ""
			}
			e := startGateway(t, wrap(`<set-header name="X-H" exists-action="`+tt.action+`">`+val+`</set-header>`), nil)
			req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
			for _, v := range tt.incoming {
				req.Header.Add("X-H", v)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got, _ := e.backend.lastRequest()
			if v := strings.Join(got.Header.Values("X-H"), "|"); v != tt.want {
				t.Errorf("backend X-H = %q, want %q", v, tt.want)
			}
		})
	}
	t.Run("multiple values override", func(t *testing.T) {
		e := startGateway(t, wrap(`<set-header name="X-H"><value>a</value><value>b</value></set-header>`), nil)
		e.do(t, "GET", "/", map[string]string{"X-H": "old"})
		got, _ := e.backend.lastRequest()
		if v := strings.Join(got.Header.Values("X-H"), "|"); v != "a|b" {
			t.Errorf("X-H = %q", v)
		}
	})
	t.Run("outbound on the response", func(t *testing.T) {
		e := startGateway(t, `<policies><inbound/><outbound>
<set-header name="X-Backend" exists-action="override"><value>rewritten</value></set-header>
<set-header name="X-Remove-Me" exists-action="delete"/>
<set-header name="X-Added" exists-action="skip"><value>1</value></set-header>
</outbound></policies>`, nil)
		r := e.do(t, "GET", "/", nil)
		if r.header.Get("X-Backend") != "rewritten" || r.header.Get("X-Remove-Me") != "" || r.header.Get("X-Added") != "1" {
			t.Errorf("response headers: %v", r.header)
		}
	})
	t.Run("x-wif-* may not be set by a policy", func(t *testing.T) {
		pol, err := apim.Parse("p.xml", []byte(wrap(`<set-header name="X-WIF-Client-Id"><value>a</value></set-header>`)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(&Config{Routes: []Route{{Name: "r", PathPrefix: "/", Backend: "http://127.0.0.1:1"}}}, []*apim.Policy{pol}, Options{})
		if err == nil || !strings.Contains(err.Error(), `p.xml:4: <set-header name="X-WIF-Client-Id">: x-wif-* headers carry the verified identity`) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestCheckHeader(t *testing.T) {
	tests := []struct {
		name       string
		ignoreCase string
		values     string
		hdr        []string
		status     int
	}{
		{"present, any value", "false", "", []string{"x"}, 200},
		{"absent", "false", "", nil, 400},
		{"allowed value", "false", "<value>json</value><value>xml</value>", []string{"xml"}, 200},
		{"value not allowed", "false", "<value>json</value>", []string{"yaml"}, 400},
		{"case differs, case-sensitive", "false", "<value>json</value>", []string{"JSON"}, 400},
		{"case differs, ignore-case", "true", "<value>json</value>", []string{"JSON"}, 200},
		{"list header with one allowed", "false", "<value>json</value>", []string{"yaml, json"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startGateway(t, wrap(`<check-header name="X-Format" failed-check-httpcode="400" failed-check-error-message="Bad format" ignore-case="`+tt.ignoreCase+`">`+tt.values+`</check-header>`), nil)
			hdr := map[string]string{}
			for _, v := range tt.hdr {
				hdr["X-Format"] = v
			}
			r := e.do(t, "GET", "/", hdr)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d", r.status, tt.status)
			}
			if tt.status == 400 && r.body != `{"statusCode":400,"message":"Bad format"}`+"\n" {
				t.Errorf("body = %q", r.body)
			}
		})
	}
}

func TestRateLimitByKey(t *testing.T) {
	policy := wrap(`<validate-jwt header-name="Authorization"><openid-config url="https://login.microsoftonline.com/` + tid + `/v2.0/.well-known/openid-configuration"/>` + stdChildren + `</validate-jwt>
<rate-limit-by-key calls="3" renewal-period="60" counter-key="client-id" remaining-calls-header-name="x-remaining"/>`)
	e := startGateway(t, policy, nil)
	start := e.clock()
	resetAt := strconv.FormatInt(start.Add(60*time.Second).Unix()+1, 10) // rounded up to the next whole second
	if start.Add(60*time.Second).Nanosecond() == 0 {
		resetAt = strconv.FormatInt(start.Add(60*time.Second).Unix(), 10)
	}
	alice := map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}
	bob := map[string]string{"Authorization": "Bearer " + e.v1(t, map[string]any{"appid": "b0b00000-0000-0000-0000-000000000000"})}
	for i := 1; i <= 3; i++ {
		r := e.do(t, "GET", "/", alice)
		if r.status != 200 {
			t.Fatalf("call %d: status %d", i, r.status)
		}
		if got, want := r.header.Get("X-RateLimit-Remaining"), strconv.Itoa(3-i); got != want {
			t.Errorf("call %d: X-RateLimit-Remaining = %s, want %s", i, got, want)
		}
		if r.header.Get("X-RateLimit-Limit") != "3" || r.header.Get("X-RateLimit-Reset") != resetAt || r.header.Get("x-remaining") != strconv.Itoa(3-i) {
			t.Errorf("call %d: headers %v (reset want %s)", i, r.header, resetAt)
		}
	}
	_, before := e.backend.lastRequest()
	e.advance(15 * time.Second)
	r := e.do(t, "GET", "/", alice)
	if r.status != 429 || r.header.Get("Retry-After") != "45" || r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Reset") != resetAt {
		t.Fatalf("4th call: status %d headers %v", r.status, r.header)
	}
	if r.body != `{"statusCode":429,"message":"Rate limit is exceeded. Try again in 45 seconds."}`+"\n" {
		t.Errorf("429 body = %q", r.body)
	}
	if _, after := e.backend.lastRequest(); after != before {
		t.Error("a rate-limited call reached the backend")
	}
	// Another caller has its own window.
	if r := e.do(t, "GET", "/", bob); r.status != 200 || r.header.Get("X-RateLimit-Remaining") != "2" {
		t.Errorf("bob: status %d remaining %s", r.status, r.header.Get("X-RateLimit-Remaining"))
	}
	// A refusal before the limiter runs still carries X-RateLimit-Limit.
	if r := e.do(t, "GET", "/", nil); r.status != 401 || r.header.Get("X-RateLimit-Limit") != "3" {
		t.Errorf("unauthenticated: status %d headers %v", r.status, r.header)
	}
	// The window renews after renewal-period.
	e.advance(45 * time.Second)
	if r := e.do(t, "GET", "/", alice); r.status != 200 || r.header.Get("X-RateLimit-Remaining") != "2" {
		t.Errorf("after renewal: status %d remaining %s", r.status, r.header.Get("X-RateLimit-Remaining"))
	}
}

func TestRateLimitByClientIPAndBounds(t *testing.T) {
	e := startGateway(t, wrap(`<rate-limit-by-key calls="1" renewal-period="10" counter-key="client-ip" retry-after-header-name="X-Retry"/>`), nil)
	if r := e.do(t, "GET", "/", nil); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	r := e.do(t, "GET", "/", nil)
	if r.status != 429 || r.header.Get("X-Retry") != "10" || r.header.Get("Retry-After") != "" {
		t.Fatalf("second: %d %v", r.status, r.header)
	}
	// The key table is bounded: idle keys are evicted when their windows
	// end (see TestRateLimiterFullTable for a table full of live ones).
	now := time.Unix(1000, 0)
	l := newLimiter(1, 10*time.Second, 2, func() time.Time { return now })
	if !l.take("a", 1).allowed || !l.take("b", 1).allowed {
		t.Fatal("first calls refused")
	}
	now = now.Add(11 * time.Second)
	if d := l.take("c", 1); !d.allowed || d.evicted || l.size() != 1 {
		t.Errorf("after the windows ended: %+v, size %d", d, l.size())
	}
}

// TestRateLimiterFullTable: a table full of live windows (a flood of
// distinct keys) neither refuses a new key nor frees a heavy caller from
// its limit: the evicted windows are those with the fewest calls.
func TestRateLimiterFullTable(t *testing.T) {
	now := time.Unix(1000, 0)
	const max = 1000
	l := newLimiter(100, time.Minute, max, func() time.Time { return now })
	for range 100 {
		if !l.take("heavy", 1).allowed {
			t.Fatal("heavy refused within its limit")
		}
	}
	for i := range 50 * max {
		if d := l.take(fmt.Sprintf("flood-%d", i), 1); !d.allowed {
			t.Fatalf("flood key %d refused: %+v", i, d)
		}
		if l.size() > max {
			t.Fatalf("table grew to %d > %d", l.size(), max)
		}
	}
	if d := l.take("heavy", 1); d.allowed || d.remaining != 0 {
		t.Fatalf("the heavy caller escaped its limit after the flood: %+v", d)
	}
	if d := l.take("newcomer", 1); !d.allowed || !d.evicted {
		t.Fatalf("a new caller in a full table: %+v", d)
	}
	if l.evicted() < 49*max {
		t.Fatalf("evictions %d", l.evicted())
	}
}

func TestRateLimitByClaimNeedsValidation(t *testing.T) {
	pol, err := apim.Parse("p.xml", []byte(wrap(`<rate-limit-by-key calls="1" renewal-period="10" counter-key="oid"/>`)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(&Config{Routes: []Route{{Name: "r", PathPrefix: "/", Backend: "http://127.0.0.1:1"}}}, []*apim.Policy{pol}, Options{})
	if err == nil || err.Error() != `route r: p.xml:4: <rate-limit-by-key counter-key="oid"> counts by a token claim, so it must follow a <validate-jwt> or <validate-azure-ad-token>` {
		t.Errorf("err = %v", err)
	}
}

func TestReturnResponseAndOnError(t *testing.T) {
	e := startGateway(t, `<policies>
<inbound><check-header name="X-Key" failed-check-httpcode="401" failed-check-error-message="no key" ignore-case="false"/>
<return-response><set-status code="418" reason="teapot"/><set-header name="X-Fixed" exists-action="override"><value>1</value></set-header><set-body>short and stout</set-body></return-response></inbound>
<on-error><set-header name="X-Error" exists-action="override"><value>yes</value></set-header></on-error>
</policies>`, nil)
	r := e.do(t, "GET", "/", map[string]string{"X-Key": "k"})
	if r.status != 418 || r.body != "short and stout" || r.header.Get("X-Fixed") != "1" || r.header.Get("X-Error") != "" {
		t.Errorf("return-response: %d %q %v", r.status, r.body, r.header)
	}
	if _, n := e.backend.lastRequest(); n != 0 {
		t.Error("return-response reached the backend")
	}
	r = e.do(t, "GET", "/", nil)
	if r.status != 401 || r.header.Get("X-Error") != "yes" {
		t.Errorf("on-error set-header: %d %v", r.status, r.header)
	}

	e = startGateway(t, `<policies><inbound><check-header name="X-Key" failed-check-httpcode="401" failed-check-error-message="no key" ignore-case="false"/></inbound>
<on-error><return-response><set-status code="403"/><set-body>custom</set-body></return-response></on-error></policies>`, nil)
	if r := e.do(t, "GET", "/", nil); r.status != 403 || r.body != "custom" {
		t.Errorf("on-error return-response: %d %q", r.status, r.body)
	}
}

func TestCorrelationAndBackendErrors(t *testing.T) {
	e := startGateway(t, wrap(""), nil)
	r := e.do(t, "GET", "/", map[string]string{"X-Correlation-Id": "bad id with spaces"})
	if id := r.header.Get("X-Correlation-Id"); len(id) != 36 || strings.Contains(id, " ") {
		t.Errorf("generated correlation id = %q", id)
	}
	got, _ := e.backend.lastRequest()
	if got.Header.Get("X-Correlation-Id") != r.header.Get("X-Correlation-Id") {
		t.Error("backend got another correlation id")
	}
	if _, err := strconv.ParseFloat(r.header.Get("X-Request-Duration"), 64); err != nil {
		t.Errorf("x-request-duration = %q", r.header.Get("X-Request-Duration"))
	}
	e.backend.Close()
	r = e.do(t, "GET", "/", map[string]string{"X-Correlation-Id": "abc-1"})
	if r.status != 502 || r.body != `{"statusCode":502,"message":"The backend did not answer."}`+"\n" || r.header.Get("X-Correlation-Id") != "abc-1" {
		t.Errorf("backend down: %d %q %v", r.status, r.body, r.header)
	}
}

func TestRoutingProbesMetrics(t *testing.T) {
	e := startGateway(t, jwtPolicy(`header-name="Authorization"`, stdChildren), func(c *Config) {
		c.Routes[0].PathPrefix = "/api/"
	})
	if r := e.do(t, "GET", "/other", nil); r.status != 404 || r.body != `{"statusCode":404,"message":"Resource not found"}`+"\n" {
		t.Errorf("no route: %d %q", r.status, r.body)
	}
	if r := e.do(t, "GET", "/healthz", nil); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := e.do(t, "GET", "/readyz", nil); r.status != 200 {
		t.Errorf("readyz %d %s", r.status, r.body)
	}
	tok := map[string]string{"Authorization": "Bearer " + e.v1(t, nil)}
	for i := 0; i < 3; i++ {
		if r := e.do(t, "GET", "/api/x", tok); r.status != 200 || r.body != "backend:/svc/x" {
			t.Fatalf("routed: %d %q", r.status, r.body)
		}
	}
	e.do(t, "GET", "/api/x", nil)
	r := e.do(t, "GET", "/metrics", nil)
	for _, want := range []string{
		`wif_gateway_requests_total{code="200",route="api"} 3`,
		`wif_gateway_requests_total{code="401",route="api"} 1`,
		`wif_gateway_refusals_total{reason="jwt_missing",route="api"} 1`,
		`wif_gateway_refusals_total{reason="no_route",route=""} 1`,
		`wif_gateway_token_cache_lookups_total{result="hit"} 2`,
		`wif_gateway_token_cache_lookups_total{result="miss"} 1`,
		`wif_gateway_request_duration_seconds_count{route="api"} 4`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestReadinessWaitsForKeys(t *testing.T) {
	e := startGateway(t, jwtPolicy(`header-name="Authorization"`, stdChildren), nil)
	e.iss.Down.Store(true)
	resp, err := http.Get(e.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.HasPrefix(string(body), "not ready: signing keys: keys of "+e.iss.URL+"/"+tid+"/v2.0/.well-known/openid-configuration unavailable") {
		t.Errorf("readyz with the issuer down: %d %s", resp.StatusCode, body)
	}
	// A token arriving meanwhile gets 503, not a misleading 401.
	r := e.do(t, "GET", "/", map[string]string{"Authorization": "Bearer " + e.v1(t, nil)})
	if r.status != 503 || r.header.Get("Retry-After") != "5" || r.json["error"] != "temporarily_unavailable" {
		t.Errorf("token while keys unavailable: %d %v %s", r.status, r.header, r.body)
	}
}

func TestRouteMatching(t *testing.T) {
	e := startGateway(t, wrap(""), func(c *Config) {
		c.Routes[0].PathPrefix = "/api"
		c.Routes = append(c.Routes, Route{Name: "v2", PathPrefix: "/api/v2/", Backend: c.Routes[0].Backend + "/two", Policy: "policy.xml"})
	})
	for path, want := range map[string]string{
		"/api":         "backend:/svc/",
		"/api/x":       "backend:/svc/x",
		"/api/v2/y":    "backend:/svc/two/y",
		"/api/v2":      "backend:/svc/v2",
		"/apix":        "",
		"/api%2Fx":     "400",            // an encoded '/' is refused, not guessed
		"/API/x":       "backend:/svc/x", // prefixes match case-insensitively, as APIM
		"/api/v2/../x": "backend:/svc/x",
		"/api;v=1/x":   "backend:/svc/;v=1/x",
		"/other/api/":  "",
	} {
		r := e.do(t, "GET", path, nil)
		if want == "400" {
			if r.status != 400 || !strings.Contains(r.body, "encoded '/'") {
				t.Errorf("%s: %d %q, want 400", path, r.status, r.body)
			}
			continue
		}
		if want == "" {
			if r.status != 404 {
				t.Errorf("%s: status %d body %q, want 404", path, r.status, r.body)
			}
			continue
		}
		if r.status != 200 || r.body != want {
			t.Errorf("%s: %d %q, want %q", path, r.status, r.body, want)
		}
	}
}

func TestBackendErrorLogHasNoToken(t *testing.T) {
	var logs strings.Builder
	e := startGateway(t, jwtPolicy(`query-parameter-name="access_token"`, stdChildren), nil)
	e.gw.logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	tok := e.v1(t, nil)
	e.backend.Close()
	if r := e.do(t, "GET", "/?access_token="+tok, nil); r.status != 502 {
		t.Fatalf("status %d", r.status)
	}
	if out := logs.String(); strings.Contains(out, tok[:20]) || !strings.Contains(out, "backend request failed") {
		t.Errorf("log: %s", out)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
