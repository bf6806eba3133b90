package imds

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wif-project/wif/internal/stsclient"
	"github.com/wif-project/wif/internal/wiftest"
)

// countingTransport counts the requests that reach the token service.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// realFixture is wif imds in front of wif's real token service
// (internal/wiftest): a managed identity "demo" whose credential trusts the
// test issuer for system:serviceaccount:default:demo, with the role
// Data.Read on api://provider-api (v1 tokens) and on api://provider-v2
// (v2 tokens).
type realFixture struct {
	env       *wiftest.Env
	clientID  string
	principal string
	v2AppID   string
	imds      *Server
	url       string
	exchanges *countingTransport
}

func newRealFixture(t *testing.T, subject string) *realFixture {
	t.Helper()
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "demo")
	v1 := env.CreateResourceApp(t, "api://provider-api", 1, "Data.Read")
	v2 := env.CreateResourceApp(t, "api://provider-v2", 2, "Data.Read")
	env.Assign(t, mi.PrincipalID, v1.AppID, "Data.Read")
	env.Assign(t, mi.PrincipalID, v2.AppID, "Data.Read")
	f := &realFixture{env: env, clientID: mi.ClientID, principal: mi.PrincipalID, v2AppID: v2.AppID,
		exchanges: &countingTransport{next: env.HTTPClient.Transport}}
	hc := stsclient.NewHTTPClient(env.CAPool)
	f.exchanges.next = hc.Transport
	hc.Transport = f.exchanges
	sts, err := stsclient.New(stsclient.Config{
		AuthorityHost: env.URL + "/", TenantID: env.TenantID,
		TokenFile:  env.Issuer.WriteTokenFile(t, subject),
		HTTPClient: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.imds, err = New(Config{ClientID: mi.ClientID, Exchanger: sts, IdentityHeader: testHeader})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.imds)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { f.imds.Close() })
	f.url = srv.URL
	return f
}

func (f *realFixture) get(t *testing.T, pathAndQuery string, headers map[string]string) answer {
	t.Helper()
	fx := &fixture{url: f.url}
	return fx.get(t, pathAndQuery, headers)
}

// jwtClaims decodes a JWT's payload (the signature is the token service's
// business and is tested there).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func num(t *testing.T, m map[string]any, k string) int64 {
	t.Helper()
	s, ok := m[k].(string)
	if !ok {
		t.Fatalf("%s = %v (%T), want a string", k, m[k], m[k])
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s = %q, want an integer", k, s)
	}
	return n
}

func TestRealTokenServiceIMDSAndAppService(t *testing.T) {
	f := newRealFixture(t, wiftest.Subject("demo"))
	for _, tc := range []struct {
		name, resource string
		wantClaims     map[string]any
	}{
		{"v1 resource", "api://provider-api", map[string]any{"aud": "api://provider-api", "appid": "", "ver": "1.0"}},
		{"v2 resource", "api://provider-v2", map[string]any{"aud": "", "azp": "", "ver": "2.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[string]any{}
			for k, v := range tc.wantClaims {
				want[k] = v
			}
			for k := range want {
				switch k {
				case "appid", "azp":
					want[k] = f.clientID
				case "aud":
					if want[k] == "" {
						want[k] = f.v2AppID
					}
				}
			}
			want["tid"], want["oid"], want["roles"] = f.env.TenantID, f.principal, []any{"Data.Read"}

			before := time.Now().Unix()
			a := f.get(t, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="+url.QueryEscape(tc.resource), metadata)
			if a.status != 200 {
				t.Fatalf("imds: %d %s", a.status, a.body)
			}
			m := a.json(t)
			if got := keys(m); !reflect.DeepEqual(got, []string{"access_token", "expires_in", "expires_on", "not_before", "refresh_token", "resource", "token_type"}) {
				t.Errorf("imds fields = %v", got)
			}
			if m["resource"] != tc.resource || m["token_type"] != "Bearer" || m["refresh_token"] != "" {
				t.Errorf("imds answer = %v", m)
			}
			c := jwtClaims(t, m["access_token"].(string))
			for k, v := range want {
				if !reflect.DeepEqual(c[k], v) {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			exp := int64(c["exp"].(float64))
			expOn, expIn, nbf := num(t, m, "expires_on"), num(t, m, "expires_in"), num(t, m, "not_before")
			// expires_on is when the request was sent plus expires_in: at or
			// just before the token's exp.
			if expOn > exp || expOn < exp-5 {
				t.Errorf("expires_on %d, token exp %d", expOn, exp)
			}
			if expIn < 3590 || expIn > 3600 || nbf < before-1 || nbf > time.Now().Unix() {
				t.Errorf("expires_in %d, not_before %d (sent at %d)", expIn, nbf, before)
			}

			// The App Service answer for the same resource comes from the cache.
			a = f.get(t, "/msi/token?api-version=2019-08-01&resource="+url.QueryEscape(tc.resource), identity)
			if a.status != 200 {
				t.Fatalf("appservice: %d %s", a.status, a.body)
			}
			as := a.json(t)
			if got := keys(as); !reflect.DeepEqual(got, []string{"access_token", "client_id", "expires_on", "resource", "token_type"}) {
				t.Errorf("appservice fields = %v", got)
			}
			if as["access_token"] != m["access_token"] || as["expires_on"] != m["expires_on"] || as["client_id"] != f.clientID || as["resource"] != tc.resource {
				t.Errorf("appservice answer = %v", as)
			}
		})
	}
	if n := f.exchanges.n.Load(); n != 2 {
		t.Errorf("exchanges at the token service = %d, want 2", n)
	}
}

func TestRealTokenServiceRefusalsPassThrough(t *testing.T) {
	t.Run("unknown resource", func(t *testing.T) {
		f := newRealFixture(t, wiftest.Subject("demo"))
		a := f.get(t, "/metadata/identity/oauth2/token?resource=api%3A%2F%2Fno-such-api", metadata)
		m := a.json(t)
		if a.status != 400 || m["error"] != "invalid_resource" || !reflect.DeepEqual(m["error_codes"], []any{500011.0}) ||
			!strings.HasPrefix(m["error_description"].(string), "AADSTS500011") || m["trace_id"] == nil || m["correlation_id"] == nil {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	t.Run("no credential for the pod's subject", func(t *testing.T) {
		// The token file is some other service account's.
		f := newRealFixture(t, wiftest.Subject("someone-else"))
		a := f.get(t, "/msi/token?resource=api%3A%2F%2Fprovider-api", identity)
		m := a.json(t)
		if a.status != 401 || m["error"] != "invalid_client" || !reflect.DeepEqual(m["error_codes"], []any{700213.0}) ||
			!strings.HasPrefix(m["error_description"].(string), "AADSTS700213") {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
}

func TestRealTokenServiceHundredConcurrentFirstRequests(t *testing.T) {
	f := newRealFixture(t, wiftest.Subject("demo"))
	const n = 100
	var wg sync.WaitGroup
	tokens := make([]string, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var a answer
			if i%2 == 0 {
				a = f.get(t, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api%3A%2F%2Fprovider-api", metadata)
			} else {
				a = f.get(t, "/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fprovider-api", identity)
			}
			if a.status != 200 {
				t.Errorf("request %d: %d %s", i, a.status, a.body)
				return
			}
			tokens[i] = a.json(t)["access_token"].(string)
		}()
	}
	close(start)
	wg.Wait()
	for i := range tokens {
		if tokens[i] != tokens[0] {
			t.Fatalf("request %d got another token", i)
		}
	}
	if got := f.exchanges.n.Load(); got != 1 {
		t.Fatalf("the token service saw %d exchanges for 100 concurrent first requests, want exactly 1", got)
	}
	// (The stub-backed twin of this test holds the exchange until all 100
	// wait; here the count shows how many overlapped with it.)
	t.Logf("%v of %d requests started or joined the exchange, %v were cache hits",
		testutil.ToFloat64(f.imds.metrics.cacheMisses), n, testutil.ToFloat64(f.imds.metrics.cacheHits))
	if got := testutil.ToFloat64(f.imds.metrics.exchanges.WithLabelValues("success")); got != 1 {
		t.Errorf("exchanges metric = %v", got)
	}
}

// TestRealAzidentityManagedIdentityCredential: the unmodified Go SDK's
// ManagedIdentityCredential, App Service source from the environment, gets
// a token from wif's token service through wif imds.
func TestRealAzidentityManagedIdentityCredential(t *testing.T) {
	f := newRealFixture(t, wiftest.Subject("demo"))
	setAppServiceEnv(t, f.url, testHeader)
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	// MSAL Go caches managed-identity tokens process-wide by resource: a
	// resource no other test in this package asks for.
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"api://provider-v2/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	c := jwtClaims(t, tok.Token)
	if c["aud"] != f.v2AppID || c["azp"] != f.clientID || c["tid"] != f.env.TenantID || !reflect.DeepEqual(c["roles"], []any{"Data.Read"}) {
		t.Errorf("claims = %v", c)
	}
	if exp := int64(c["exp"].(float64)); tok.ExpiresOn.Unix() > exp || tok.ExpiresOn.Unix() < exp-5 {
		t.Errorf("ExpiresOn %v, token exp %d", tok.ExpiresOn, exp)
	}
	if n := f.exchanges.n.Load(); n != 1 {
		t.Errorf("exchanges = %d", n)
	}
}
