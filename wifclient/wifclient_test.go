package wifclient_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wif-project/wif/internal/wiftest"
	"github.com/wif-project/wif/tokenauth"
	"github.com/wif-project/wif/wifclient"
)

// countingTransport counts token requests the credential makes.
type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/oauth2/") {
		c.n.Add(1)
	}
	return c.base.RoundTrip(r)
}

type world struct {
	env      *wiftest.Env
	offset   atomic.Int64 // the token service's clock offset, ns
	apiSkew  atomic.Int64 // the provider API's clock offset, ns
	tokenReq *countingTransport
	cred     azcore.TokenCredential
	api      *httptest.Server
	mu       sync.Mutex
	seen     []string // correlation ids the API saw
	statuses []int
}

// setup starts a real wif token service, an identity allowed to call
// api://provider-api, the real azidentity ClientAssertionCredential for it,
// and a provider API behind tokenauth.Middleware with keys from the token
// service.
func setup(t *testing.T, api func(w *world, next http.Handler) http.Handler) *world {
	w := &world{}
	w.env = wiftest.Start(t, wiftest.WithClock(func() time.Time { return time.Now().Add(time.Duration(w.offset.Load())) }))
	mi := w.env.CreateManagedIdentity(t, "consumer")
	app := w.env.CreateResourceApp(t, "api://provider-api", 2, "Data.Read")
	w.env.Assign(t, mi.PrincipalID, app.AppID, "Data.Read")

	w.tokenReq = &countingTransport{base: w.env.HTTPClient.Transport}
	assertion := func(context.Context) (string, error) {
		now := time.Now().Add(time.Duration(w.offset.Load()))
		return w.env.Issuer.MintClaims(t, map[string]any{
			"iss": w.env.Issuer.URL, "sub": wiftest.Subject("consumer"), "aud": []string{"api://AzureADTokenExchange"},
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": fmt.Sprint(now.UnixNano()),
		}), nil
	}
	cred, err := azidentity.NewClientAssertionCredential(w.env.TenantID, mi.ClientID, assertion, &azidentity.ClientAssertionCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: w.env.URL + "/"},
			Transport: &http.Client{Transport: w.tokenReq},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.cred = cred

	disc := tokenauth.NewDiscovery(tokenauth.DiscoveryOptions{HTTPClient: w.env.HTTPClient})
	t.Cleanup(disc.Close)
	v, err := tokenauth.New(tokenauth.Config{
		KeySets:   []tokenauth.KeySet{disc.KeySet(w.env.URL + "/" + w.env.TenantID + "/v2.0/.well-known/openid-configuration")},
		Issuers:   []string{w.env.URL + "/" + w.env.TenantID + "/v2.0"},
		Audiences: []string{app.AppID},
		Now:       func() time.Time { return time.Now().Add(time.Duration(w.apiSkew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(rw, "ok:"+string(body))
	})
	var h http.Handler = tokenauth.Middleware(v)(tokenauth.RequireRoles("Data.Read")(ok))
	if api != nil {
		h = api(w, h)
	}
	w.api = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: rw, status: 200}
		h.ServeHTTP(rec, r)
		w.mu.Lock()
		w.seen = append(w.seen, r.Header.Get("X-Correlation-Id"))
		w.statuses = append(w.statuses, rec.status)
		w.mu.Unlock()
	}))
	t.Cleanup(w.api.Close)
	return w
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

func (w *world) calls() ([]int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, seen := w.statuses, w.seen
	w.statuses, w.seen = nil, nil
	return st, seen
}

func (w *world) client(opts ...wifclient.Option) *http.Client {
	return &http.Client{Transport: wifclient.New(w.cred, "api://provider-api/.default", append([]wifclient.Option{wifclient.WithBase(w.api.Client().Transport)}, opts...)...)}
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader("payload"))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestExpiredTokenReplacedOnce(t *testing.T) {
	w := setup(t, nil)
	c := w.client()

	// The API's clock runs two hours ahead: every token the service
	// issues is already expired when the API sees it, while the credential
	// caches it as good for an hour.
	w.apiSkew.Store(int64(2 * time.Hour))
	resp, body := get(t, c, w.api.URL, map[string]string{"X-Correlation-Id": "trace-1"})
	if resp.StatusCode != 401 || !strings.Contains(body, `"error":"token_expired"`) {
		t.Fatalf("second 401 not returned: %d %s", resp.StatusCode, body)
	}
	st, seen := w.calls()
	if fmt.Sprint(st) != "[401 401]" || fmt.Sprint(seen) != "[trace-1 trace-1]" {
		t.Errorf("API saw %v with ids %v, want two 401s (one retry, no loop) with the caller's id", st, seen)
	}
	if n := w.tokenReq.n.Load(); n != 2 {
		t.Errorf("token requests = %d, want 2 (the refresh bypassed the credential's cache)", n)
	}

	// The token service's clock now agrees with the API's, so it issues
	// tokens the API accepts, but the credential still caches an expired
	// one: the first call gets 401 token_expired, the transport gets a
	// fresh token (bypassing that cache) and the retry succeeds.
	w.offset.Store(int64(2 * time.Hour))
	resp, body = get(t, c, w.api.URL, nil)
	if resp.StatusCode != 200 || body != "ok:payload" {
		t.Fatalf("after refresh: %d %s", resp.StatusCode, body)
	}
	st, seen = w.calls()
	if fmt.Sprint(st) != "[401 200]" || seen[0] == "" || seen[0] != seen[1] {
		t.Errorf("API saw %v with ids %v, want 401 then 200 under one generated id", st, seen)
	}
	if n := w.tokenReq.n.Load(); n != 3 {
		t.Errorf("token requests = %d, want 3", n)
	}
	// The fresh token is now the cached one.
	if resp, _ := get(t, c, w.api.URL, nil); resp.StatusCode != 200 {
		t.Errorf("third call: %d", resp.StatusCode)
	}
	if st, _ := w.calls(); fmt.Sprint(st) != "[200]" || w.tokenReq.n.Load() != 3 {
		t.Errorf("third call: API saw %v, token requests %d", st, w.tokenReq.n.Load())
	}
}

func TestNoRetryWithoutReplayableBodyOrForOtherErrors(t *testing.T) {
	w := setup(t, func(w *world, next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/forbidden" {
				rw.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
				rw.WriteHeader(401)
				return
			}
			next.ServeHTTP(rw, r)
		})
	})
	c := w.client()
	w.apiSkew.Store(int64(2 * time.Hour))
	req, _ := http.NewRequest("POST", w.api.URL, io.NopCloser(strings.NewReader("x"))) // no GetBody
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st, _ := w.calls(); resp.StatusCode != 401 || fmt.Sprint(st) != "[401]" {
		t.Errorf("unreplayable body: status %d, API saw %v", resp.StatusCode, st)
	}
	resp, _ = get(t, c, w.api.URL+"/forbidden", nil)
	if st, _ := w.calls(); resp.StatusCode != 401 || fmt.Sprint(st) != "[401]" {
		t.Errorf("401 without invalid_token: status %d, API saw %v", resp.StatusCode, st)
	}
}

func TestRetryAfter(t *testing.T) {
	var limited atomic.Int64
	w := setup(t, func(w *world, next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if limited.Add(-1) >= 0 {
				rw.Header().Set("Retry-After", r.URL.Query().Get("wait"))
				rw.WriteHeader(429)
				return
			}
			next.ServeHTTP(rw, r)
		})
	})
	var waits []time.Duration
	c := w.client(wifclient.WithMaxRetryAfter(10 * time.Second))
	wifclient.SetSleep(c.Transport.(*wifclient.Transport), func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil })

	limited.Store(2)
	resp, body := get(t, c, w.api.URL+"?wait=3", nil)
	if resp.StatusCode != 200 || body != "ok:payload" || fmt.Sprint(waits) != "[3s 3s]" {
		t.Errorf("two 429s then 200: status %d body %q waits %v", resp.StatusCode, body, waits)
	}
	st, _ := w.calls()
	if fmt.Sprint(st) != "[429 429 200]" {
		t.Errorf("API saw %v", st)
	}

	waits = nil
	limited.Store(5)
	resp, _ = get(t, c, w.api.URL+"?wait=1", nil)
	if st, _ := w.calls(); resp.StatusCode != 429 || fmt.Sprint(st) != "[429 429 429]" || len(waits) != 2 {
		t.Errorf("retries beyond the bound: status %d, API saw %v, waits %v", resp.StatusCode, st, waits)
	}

	waits = nil
	limited.Store(1)
	resp, _ = get(t, c, w.api.URL+"?wait=60", nil)
	if st, _ := w.calls(); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" || fmt.Sprint(st) != "[429]" || len(waits) != 0 {
		t.Errorf("wait beyond the bound: status %d, API saw %v, waits %v", resp.StatusCode, st, waits)
	}
	limited.Store(0)
}

func TestRefusesPlainHTTP(t *testing.T) {
	c := &http.Client{Transport: wifclient.New(staticCred("t"), "api://x/.default")}
	_, err := c.Get("http://127.0.0.1:1/")
	if err == nil || !strings.Contains(err.Error(), "wifclient: refusing to send a bearer token over http to 127.0.0.1:1") {
		t.Errorf("err = %v", err)
	}
}

type staticCred string

func (s staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestRefreshOnJSONBodyWithoutChallenge(t *testing.T) {
	w := setup(t, func(w *world, next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				if k != "Www-Authenticate" { // an API that answers with the JSON body only
					rw.Header()[k] = v
				}
			}
			rw.WriteHeader(rec.Code)
			rw.Write(rec.Body.Bytes())
		})
	})
	c := w.client()
	w.apiSkew.Store(int64(2 * time.Hour))
	resp, body := get(t, c, w.api.URL, nil)
	if resp.StatusCode != 401 || !strings.Contains(body, `"error":"token_expired"`) {
		t.Fatalf("status %d body %q (the body must stay readable)", resp.StatusCode, body)
	}
	if st, _ := w.calls(); fmt.Sprint(st) != "[401 401]" {
		t.Errorf("API saw %v, want a refresh and one retry", st)
	}
}
