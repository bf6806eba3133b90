package imds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func keys(m map[string]any) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func TestIMDSResponseShape(t *testing.T) {
	f := newFixture(t, nil)
	a := f.get(t, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="+url.QueryEscape("https://vault.azure.net"), metadata)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	exp := t0.Unix() + 3599
	want := fmt.Sprintf(`{"access_token":"tok-1|%s|https://vault.azure.net/.default","refresh_token":"","expires_in":"3599","expires_on":"%d","not_before":"%d","resource":"https://vault.azure.net","token_type":"Bearer"}`+"\n",
		testClientID, exp, t0.Unix())
	if a.body != want {
		t.Errorf("body\n got %s\nwant %s", a.body, want)
	}
	// Field by field, as the clients read them: every number is a string.
	m := a.json(t)
	if got := keys(m); !reflect.DeepEqual(got, []string{"access_token", "expires_in", "expires_on", "not_before", "refresh_token", "resource", "token_type"}) {
		t.Errorf("fields = %v", got)
	}
	for k, v := range m {
		if _, ok := v.(string); !ok {
			t.Errorf("%s = %v (%T), want a string", k, v, v)
		}
	}
	if a.header.Get("Content-Type") != "application/json; charset=utf-8" || a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers = %v", a.header)
	}
	// Later, from the cache: expires_in counts down, the rest is unchanged.
	f.clock.Advance(100 * time.Second)
	m2 := f.get(t, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="+url.QueryEscape("https://vault.azure.net"), metadata).json(t)
	if m2["expires_in"] != "3499" || m2["expires_on"] != m["expires_on"] || m2["access_token"] != m["access_token"] || m2["not_before"] != m["not_before"] {
		t.Errorf("cached answer = %v, first = %v", m2, m)
	}
	if n := f.sts.exchanges.Load(); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
	checkNoProblems(t, f.sts)
}

func TestAppServiceResponseShape(t *testing.T) {
	f := newFixture(t, nil)
	// The resource is echoed exactly, even with characters JSON encoders like to escape.
	resource := "https://management.azure.com/?x=<a&b>"
	a := f.get(t, "/msi/token?api-version=2019-08-01&resource="+url.QueryEscape(resource), identity)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	want := fmt.Sprintf(`{"access_token":"tok-1|%s|%s/.default","expires_on":"%d","resource":"%s","token_type":"Bearer","client_id":"%s"}`+"\n",
		testClientID, resource, t0.Unix()+3599, resource, testClientID)
	if a.body != want {
		t.Errorf("body\n got %s\nwant %s", a.body, want)
	}
	m := a.json(t)
	if got := keys(m); !reflect.DeepEqual(got, []string{"access_token", "client_id", "expires_on", "resource", "token_type"}) {
		t.Errorf("fields = %v", got)
	}
	checkNoProblems(t, f.sts)
}

func TestScopeFromResource(t *testing.T) {
	tests := []struct{ resource, scope string }{
		{"https://vault.azure.net", "https://vault.azure.net/.default"},
		// Entra takes everything before the last '/' as the resource, so the
		// trailing slash survives into the token's audience (upstream does the same).
		{"https://management.azure.com/", "https://management.azure.com//.default"},
		{"api://provider-api", "api://provider-api/.default"},
		{"api://provider-api/.default", "api://provider-api/.default"},
		{"11111111-1111-1111-1111-111111111111", "11111111-1111-1111-1111-111111111111/.default"},
	}
	f := newFixture(t, nil)
	seen := map[string]int{} // scope -> exchange number: the cache is keyed by scope
	for _, tc := range tests {
		if seen[tc.scope] == 0 {
			seen[tc.scope] = len(seen) + 1
		}
		m := f.get(t, "/metadata/identity/oauth2/token?resource="+url.QueryEscape(tc.resource), metadata).json(t)
		want := fmt.Sprintf("tok-%d|%s|%s", seen[tc.scope], testClientID, tc.scope)
		if m["access_token"] != want || m["resource"] != tc.resource {
			t.Errorf("resource %q: token %v, resource %v; want %q", tc.resource, m["access_token"], m["resource"], want)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	type row struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		code    string
		desc    string // substring of error_description
	}
	vault := "resource=https%3A%2F%2Fvault.azure.net"
	tests := []row{
		{"imds: no Metadata header", "GET", "/metadata/identity/oauth2/token?" + vault, nil, 400, "invalid_request", "Required metadata header not specified"},
		{"imds: Metadata false", "GET", "/metadata/identity/oauth2/token?" + vault, map[string]string{"Metadata": "false"}, 400, "invalid_request", "'Metadata: true'"},
		{"imds: forwarded", "GET", "/metadata/identity/oauth2/token?" + vault, map[string]string{"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}, 400, "invalid_request", "X-Forwarded-For"},
		{"imds: no resource", "GET", "/metadata/identity/oauth2/token?api-version=2018-02-01", metadata, 400, "invalid_request", "Required audience parameter not specified"},
		{"imds: empty resource", "GET", "/metadata/identity/oauth2/token?resource=", metadata, 400, "invalid_request", "add resource="},
		{"imds: resource twice", "GET", "/metadata/identity/oauth2/token?resource=a&resource=b", metadata, 400, "invalid_request", "resource parameter is given 2 times"},
		{"imds: resource with space", "GET", "/metadata/identity/oauth2/token?resource=a+b", metadata, 400, "invalid_request", "white space"},
		{"imds: resource too long", "GET", "/metadata/identity/oauth2/token?resource=" + strings.Repeat("a", 1025), metadata, 400, "invalid_request", "at most 1024"},
		{"imds: malformed query", "GET", "/metadata/identity/oauth2/token?resource=%zz", metadata, 400, "invalid_request", "query string is malformed"},
		{"imds: other client id", "GET", "/metadata/identity/oauth2/token?client_id=99999999-0000-0000-0000-000000000000&" + vault, metadata, 400, "invalid_request",
			"holds the federated token of one workload (client id " + testClientID + ")"},
		{"imds: object_id", "GET", "/metadata/identity/oauth2/token?object_id=x&" + vault, metadata, 400, "invalid_request", "selecting the identity by object_id is not supported"},
		{"imds: msi_res_id", "GET", "/metadata/identity/oauth2/token?msi_res_id=/subscriptions/x&" + vault, metadata, 400, "invalid_request", "by msi_res_id is not supported"},
		{"imds: POST", "POST", "/metadata/identity/oauth2/token?" + vault, metadata, 405, "invalid_request", "use GET"},
		{"appservice: no header", "GET", "/msi/token?" + vault, nil, 401, "unauthorized", "X-IDENTITY-HEADER header is missing"},
		{"appservice: wrong header", "GET", "/msi/token?" + vault, map[string]string{IdentityHeaderName: testHeader + "x"}, 401, "unauthorized", "does not match"},
		{"appservice: empty header", "GET", "/msi/token?" + vault, map[string]string{IdentityHeaderName: ""}, 401, "unauthorized", "does not match"},
		{"appservice: Metadata is no substitute", "GET", "/msi/token?" + vault, metadata, 401, "unauthorized", "missing"},
		{"appservice: no resource", "GET", "/msi/token?api-version=2019-08-01", identity, 400, "invalid_request", "Required audience parameter not specified"},
		{"appservice: mi_res_id", "GET", "/msi/token?mi_res_id=/subscriptions/x&" + vault, identity, 400, "invalid_request", "by mi_res_id is not supported"},
		{"appservice: other client id", "GET", "/msi/token?client_id=nope&" + vault, identity, 400, "invalid_request", "is not this workload's identity"},
		{"instance metadata", "GET", "/metadata/instance?api-version=2021-02-01", metadata, 404, "not_found", "/metadata/instance is not served"},
		{"scheduled events", "GET", "/Metadata/scheduledevents", metadata, 404, "not_found", "instance metadata does not exist off Azure"},
		{"elsewhere", "GET", "/foo", nil, 404, "not_found", "/foo is not served"},
	}
	f := newFixture(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, context.Background(), tc.method, tc.path, tc.headers)
			if a.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", a.status, tc.status, a.body)
			}
			m := a.json(t)
			if m["error"] != tc.code || !strings.Contains(fmt.Sprint(m["error_description"]), tc.desc) {
				t.Errorf("body = %s\nwant error %q and a description containing %q", a.body, tc.code, tc.desc)
			}
			if got := keys(m); !reflect.DeepEqual(got, []string{"error", "error_description"}) {
				t.Errorf("fields = %v", got)
			}
		})
	}
	if n := f.sts.exchanges.Load(); n != 0 {
		t.Errorf("%d exchanges for refused requests", n)
	}
}

func TestAppServiceDisabledWithoutIdentityHeader(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.IdentityHeader = "" })
	a := f.get(t, "/msi/token?resource=api%3A%2F%2Fx", map[string]string{IdentityHeaderName: "anything-at-all-here"})
	m := a.json(t)
	if a.status != 401 || m["error"] != "unauthorized" || !strings.Contains(m["error_description"].(string), "started without an identity header (--identity-header or IDENTITY_HEADER)") {
		t.Fatalf("%d %s", a.status, a.body)
	}
	// IMDS still works.
	if a := f.get(t, "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fx", metadata); a.status != 200 {
		t.Fatalf("imds: %d %s", a.status, a.body)
	}
}

func TestClientIDSelection(t *testing.T) {
	t.Run("configured", func(t *testing.T) {
		f := newFixture(t, nil)
		// The configured id, in any case, and no id share one cache entry.
		for _, q := range []string{"", "&client_id=" + testClientID, "&client_id=" + strings.ToUpper(testClientID)} {
			m := f.get(t, "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fa"+q, metadata).json(t)
			if m["access_token"] != "tok-1|"+testClientID+"|api://a/.default" {
				t.Errorf("client_id %q: %v", q, m)
			}
		}
		if n := f.sts.exchanges.Load(); n != 1 {
			t.Errorf("exchanges = %d, want 1", n)
		}
	})
	t.Run("from the request", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.ClientID = "" })
		a := f.get(t, "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fa", metadata)
		if a.status != 400 || !strings.Contains(a.body, "no identity to act as: add client_id=") {
			t.Fatalf("%d %s", a.status, a.body)
		}
		other := "aaaaaaaa-0000-0000-0000-000000000000"
		a = f.get(t, "/msi/token?resource=api%3A%2F%2Fa&client_id="+other, identity)
		m := a.json(t)
		if a.status != 200 || m["client_id"] != other || m["access_token"] != "tok-1|"+other+"|api://a/.default" {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
}

func TestTokenServiceRefusalsPassThrough(t *testing.T) {
	tests := []struct {
		resource   string
		status     int
		wantFields map[string]any
		descSub    string
		retryAfter string
	}{
		{"api://refuse", 400, map[string]any{"error": "invalid_resource",
			"error_description": "AADSTS500011: The resource principal named api://refuse was not found in the tenant.",
			"error_codes":       []any{500011.0}, "timestamp": "2026-11-23 10:00:00Z", "trace_id": "trace-1", "correlation_id": "corr-1"}, "", ""},
		{"api://nofic", 401, map[string]any{"error": "invalid_client",
			"error_description": "AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:default:demo'.",
			"error_codes":       []any{700213.0}}, "", ""},
		{"api://throttle", 429, map[string]any{"error": "temporarily_unavailable", "error_description": "slow down"}, "", "9"},
		{"api://boom", 502, map[string]any{"error": "server_error"}, "failed with status 500: \"internal error\"", ""},
		{"api://busy", 503, map[string]any{"error": "temporarily_unavailable"}, "is unavailable (503): AADSTS90033: the store is unavailable", "3"},
		{"api://garbage", 502, map[string]any{"error": "server_error"}, "not a token response", ""},
	}
	f := newFixture(t, nil)
	for _, tc := range tests {
		for _, p := range []struct {
			path string
			hdr  map[string]string
		}{{"/metadata/identity/oauth2/token", metadata}, {"/msi/token", identity}} {
			t.Run(tc.resource+p.path, func(t *testing.T) {
				a := f.get(t, p.path+"?resource="+url.QueryEscape(tc.resource), p.hdr)
				if a.status != tc.status {
					t.Fatalf("status = %d, want %d: %s", a.status, tc.status, a.body)
				}
				m := a.json(t)
				for k, v := range tc.wantFields {
					if !reflect.DeepEqual(m[k], v) {
						t.Errorf("%s = %#v, want %#v", k, m[k], v)
					}
				}
				if tc.descSub != "" && !strings.Contains(fmt.Sprint(m["error_description"]), tc.descSub) {
					t.Errorf("error_description = %q, want it to contain %q", m["error_description"], tc.descSub)
				}
				if got := a.header.Get("Retry-After"); got != tc.retryAfter {
					t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
				}
			})
		}
	}
}

func TestTokenServiceUnreachableOrTokenFileMissing(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		f := newFixture(t, nil)
		f.sts.srv.Close()
		a := f.get(t, "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fa", metadata)
		m := a.json(t)
		if a.status != 503 || m["error"] != "temporarily_unavailable" ||
			!strings.Contains(m["error_description"].(string), "could not be reached") ||
			!strings.Contains(m["error_description"].(string), f.sts.srv.URL+"/"+testTenant+"/oauth2/v2.0/token") {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	t.Run("token file", func(t *testing.T) {
		f := newFixture(t, nil)
		if err := os.Remove(f.tokenFile); err != nil {
			t.Fatal(err)
		}
		a := f.get(t, "/msi/token?resource=api%3A%2F%2Fa", identity)
		m := a.json(t)
		if a.status != 503 || !strings.Contains(m["error_description"].(string), "federated token could not be read") {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if f.sts.exchanges.Load() != 0 {
			t.Error("the token service was called without an assertion")
		}
		r := f.get(t, "/readyz", nil)
		if r.status != 503 || !strings.Contains(r.body, "federated token file") {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
	})
}

func TestCacheUntilFiveMinutesBeforeExpiry(t *testing.T) {
	f := newFixture(t, nil)
	q := "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fa"
	tok := func() string { return f.get(t, q, metadata).json(t)["access_token"].(string) }
	first := tok()
	// 3599 s lifetime: served from the cache until 300 s before expiry.
	f.clock.Advance(3599*time.Second - 301*time.Second)
	if got := tok(); got != first {
		t.Fatalf("token changed before the refresh margin: %s", got)
	}
	f.clock.Advance(time.Second)
	if got := tok(); got == first || !strings.HasPrefix(got, "tok-2|") {
		t.Fatalf("token at 300 s before expiry = %s, want a new one", got)
	}
	// Another resource is another key; the App Service path shares the cache.
	if got := f.get(t, "/msi/token?resource=api%3A%2F%2Fb", identity).json(t)["access_token"]; got != "tok-3|"+testClientID+"|api://b/.default" {
		t.Fatalf("b = %v", got)
	}
	if got := f.get(t, "/msi/token?resource=api%3A%2F%2Fa", identity).json(t)["access_token"]; !strings.HasPrefix(got.(string), "tok-2|") {
		t.Fatalf("a via App Service = %v", got)
	}
	if n := f.sts.exchanges.Load(); n != 3 {
		t.Errorf("exchanges = %d, want 3", n)
	}
	// Refusals are not cached.
	for range 2 {
		f.get(t, "/metadata/identity/oauth2/token?resource=api%3A%2F%2Frefuse", metadata)
	}
	if n := f.sts.exchanges.Load(); n != 5 {
		t.Errorf("exchanges = %d, want 5", n)
	}
	if got := testutil.ToFloat64(f.imds.metrics.cacheHits); got != 2 {
		t.Errorf("cache hits = %v, want 2", got)
	}
}

func TestHundredConcurrentFirstRequestsMakeOneExchange(t *testing.T) {
	f := newFixture(t, nil)
	f.sts.gate = make(chan struct{})
	const n = 100
	var wg sync.WaitGroup
	answers := make([]answer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				answers[i] = f.get(t, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2Fprovider-api", metadata)
			} else {
				answers[i] = f.get(t, "/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fprovider-api", identity)
			}
		}()
	}
	<-f.sts.arrived // the first exchange is held at the token service...
	// ...until every request has reached the server and is waiting.
	for testutil.ToFloat64(f.imds.metrics.cacheMisses)+testutil.ToFloat64(f.imds.metrics.cacheHits) < n {
		time.Sleep(time.Millisecond)
	}
	close(f.sts.gate)
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || a.json(t)["access_token"] != "tok-1|"+testClientID+"|api://provider-api/.default" {
			t.Fatalf("request %d: %d %s", i, a.status, a.body)
		}
	}
	if got := f.sts.exchanges.Load(); got != 1 {
		t.Fatalf("the token service saw %d exchanges, want exactly 1", got)
	}
	if got := testutil.ToFloat64(f.imds.metrics.exchanges.WithLabelValues("success")); got != 1 {
		t.Errorf("exchanges metric = %v", got)
	}
}

func TestEachWaiterHonoursItsOwnContext(t *testing.T) {
	f := newFixture(t, nil)
	f.sts.gate = make(chan struct{})
	q := "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fslow"
	patient := make(chan answer, 1)
	go func() { patient <- f.get(t, q, metadata) }()
	<-f.sts.arrived

	// An impatient caller gives up; the exchange goes on for the others.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+q, nil)
	req.Header.Set("Metadata", "true")
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: err = %v, want its deadline", err)
	}
	close(f.sts.gate)
	a := <-patient
	if a.status != 200 {
		t.Fatalf("patient caller: %d %s", a.status, a.body)
	}
	if n := f.sts.exchanges.Load(); n != 1 {
		t.Errorf("exchanges = %d, want 1", n)
	}
}

func TestProbesMetricsAndPaths(t *testing.T) {
	f := newFixture(t, nil)
	if a := f.get(t, "/healthz", nil); a.status != 200 || a.body != "ok\n" {
		t.Errorf("healthz: %d %q", a.status, a.body)
	}
	if a := f.get(t, "/readyz", nil); a.status != 200 {
		t.Errorf("readyz: %d %q", a.status, a.body)
	}
	// A doubled slash (AZURE_POD_IDENTITY_AUTHORITY_HOST with a trailing '/')
	// and IMDS's case-insensitive "metadata" are the token endpoint too.
	for _, p := range []string{"//metadata/identity/oauth2/token", "/METADATA/identity/oauth2/token"} {
		if a := f.get(t, p+"?resource=api%3A%2F%2Fa", metadata); a.status != 200 {
			t.Errorf("%s: %d %s", p, a.status, a.body)
		}
	}
	f.get(t, "/msi/token?resource=api%3A%2F%2Fa", nil)
	f.get(t, "/metadata/instance", metadata)
	a := f.get(t, "/metrics", nil)
	for _, want := range []string{
		`wif_imds_requests_total{code="200",protocol="imds"} 2`,
		`wif_imds_requests_total{code="401",protocol="appservice"} 1`,
		`wif_imds_requests_total{code="404",protocol="other"} 1`,
		`wif_imds_exchanges_total{result="success"} 1`,
		`wif_imds_token_cache_hits_total 1`,
		`wif_imds_token_cache_misses_total 1`,
		`wif_imds_exchange_duration_seconds_count 1`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestRunAndClose(t *testing.T) {
	f := newFixture(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.imds.Run(context.Background(), ln) }()
	f.url = "http://" + ln.Addr().String()
	if a := f.get(t, "/msi/token?resource=api%3A%2F%2Fa", identity); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if err := f.imds.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	// After Close, new exchanges are refused with 503 rather than hanging.
	rec := f.imds
	_, err = rec.getToken(context.Background(), testClientID, "api://new/.default")
	if e := exchangeError(err, "x"); e.status != 503 {
		t.Errorf("after Close: %v -> %d", err, e.status)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	ex := &staticExchanger{}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no exchanger", Config{}, "no Exchanger"},
		{"short header", Config{Exchanger: ex, IdentityHeader: "secret"}, "the identity header is 6 characters; use at least 16"},
		{"header newline", Config{Exchanger: ex, IdentityHeader: "0123456789abcdef\n"}, "line break"},
		{"bad client id", Config{Exchanger: ex, ClientID: "a b"}, `the client id "a b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if h := NewIdentityHeader(); len(h) != 32 || h == NewIdentityHeader() {
		t.Errorf("NewIdentityHeader() = %q", h)
	}
}

func TestCacheEviction(t *testing.T) {
	c := newTokenCache(2)
	tok := func(exp time.Duration) *stsToken { return &stsToken{AccessToken: "x", ExpiresOn: t0.Add(exp)} }
	c.put(cacheKey{scope: "a"}, tok(time.Hour), t0)
	c.put(cacheKey{scope: "b"}, tok(2*time.Hour), t0)
	c.put(cacheKey{scope: "c"}, tok(3*time.Hour), t0) // evicts a, the soonest to expire
	if c.len() != 2 || c.get(cacheKey{scope: "a"}, t0) != nil || c.get(cacheKey{scope: "c"}, t0) == nil {
		t.Fatalf("after eviction: len %d", c.len())
	}
	c.put(cacheKey{scope: "c"}, tok(4*time.Hour), t0) // replacing evicts nothing
	if c.get(cacheKey{scope: "b"}, t0) == nil {
		t.Fatal("b evicted by a replacement")
	}
}

// TestSDKProbesSeeAnAnswer: DefaultAzureCredential's IMDS probes (Go
// azidentity and @azure/identity send GET to the token path with no
// Metadata header, and JS also with no query) count any answer as "IMDS is
// here", except JS treats a 403 mentioning "unreachable" as absent. Our 400
// must be that answer, quickly, with no exchange.
func TestSDKProbesSeeAnAnswer(t *testing.T) {
	f := newFixture(t, nil)
	for _, q := range []string{"", "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com"} {
		a := f.get(t, "/metadata/identity/oauth2/token"+q, map[string]string{"Accept": "application/json"})
		if a.status != 400 || strings.Contains(a.body, "unreachable") {
			t.Errorf("probe %q: %d %s", q, a.status, a.body)
		}
	}
	if n := f.sts.exchanges.Load(); n != 0 {
		t.Errorf("probes caused %d exchanges", n)
	}
}
