package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/wiftest"
	"github.com/wif-project/wif/wifclient"
)

// TestPolicySampleAgainstWif runs seed 000's policy, unedited, in front of a
// backend, with keys and tokens from a real wif token service started with
// Entra's issuer names and the policy's tenant and identity ids.
func TestPolicySampleAgainstWif(t *testing.T) {
	env := wiftest.Start(t, wiftest.WithTenantID(tid), wiftest.WithEntraIssuerNames())
	ctx := context.Background()
	newIdentity := func(name, clientID string) {
		mi, err := env.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{
			TenantID: env.TenantID, SubscriptionID: "00000000-0000-0000-0000-000000000001", ResourceGroup: "rg",
			Name: name, ClientID: clientID, PrincipalID: directory.NewID(),
		})
		if err != nil {
			t.Fatal(err)
		}
		env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "k8s-"+name, env.Issuer.URL, wiftest.Subject(name), directory.DefaultAudience)
	}
	newIdentity("approved", appID)
	const otherID = "5f3c0b0e-1111-4222-8333-944444444444"
	newIdentity("other", otherID)
	env.CreateResourceApp(t, aud, 1)

	be := startBackend(t)
	cfg := &Config{
		TokenService: TokenService{URL: env.URL, CAFile: env.CAFile, EntraPublicHosts: true},
		Routes:       []Route{{Name: "api", PathPrefix: "/", Backend: be.URL, Policy: "policysample.xml"}},
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	pol, err := apim.ParseFile("apim/testdata/policysample.xml")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, []*apim.Policy{pol}, Options{}) // keys fetched over tokenService.caFile, as in production
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if err := gw.Warm(ctx); err != nil {
		t.Fatalf("warm: %v", err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	e := &gwEnv{backend: be, gw: gw, srv: srv, now: time.Now()}

	tok := env.Token(t, appID, aud+"/.default")
	r := e.do(t, "GET", "/hello", map[string]string{"Authorization": "Bearer " + tok})
	if r.status != 200 || r.body != "backend:/hello" {
		t.Fatalf("approved identity: status %d body %s", r.status, r.body)
	}
	got, _ := be.lastRequest()
	if got.Header.Get("clientid") != appID || got.Header.Get(HeaderClientID) != appID || got.Header.Get(HeaderTenantID) != tid {
		t.Errorf("backend headers: %v", got.Header)
	}

	r = e.do(t, "GET", "/hello", map[string]string{"Authorization": "Bearer " + env.Token(t, otherID, aud+"/.default")})
	if r.status != 401 || r.json["message"] != "Call from non-approved managed identity is not allowed" {
		t.Errorf("other identity: status %d body %s", r.status, r.body)
	}
}

// TestSeed001ThroughGateway is seed 001's consumer → provider call through
// wif gateway: the real azidentity credential exchanging with a real wif
// token service, wifclient attaching the token and honouring Retry-After,
// and the gateway validating with validate-azure-ad-token and limiting
// calls per client with rate-limit-by-key.
func TestSeed001ThroughGateway(t *testing.T) {
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "consumer")
	app := env.CreateResourceApp(t, "api://provider-api", 2, "Data.Read")
	env.Assign(t, mi.PrincipalID, app.AppID, "Data.Read")

	policy := wrap(`<validate-azure-ad-token tenant-id="` + env.TenantID + `">
<client-application-ids><application-id>` + mi.ClientID + `</application-id></client-application-ids>
<backend-application-ids><application-id>` + app.AppID + `</application-id></backend-application-ids>
<required-claims><claim name="roles" match="any"><value>Data.Read</value></claim></required-claims>
</validate-azure-ad-token>
<rate-limit-by-key calls="2" renewal-period="1" counter-key="client-id"/>`)
	pol, err := apim.Parse("provider.xml", []byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	be := startBackend(t)
	cfg := &Config{TokenService: TokenService{URL: env.URL, CAFile: env.CAFile},
		Routes: []Route{{Name: "provider", PathPrefix: "/", Backend: be.URL, Policy: "provider.xml"}}}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	// The gateway's clock stands still for the first three requests (so
	// the third meets the limit however slow this machine is) and then
	// moves past the window (so wifclient's retry after Retry-After passes).
	var arrivals atomic.Int64
	t0 := time.Now().Add(2 * time.Second) // ahead, so every token's whole-second nbf has passed
	clock := func() time.Time {
		if arrivals.Load() > 3 {
			return t0.Add(2 * time.Second)
		}
		return t0
	}
	gw, err := New(cfg, []*apim.Policy{pol}, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			arrivals.Add(1)
		}
		gw.ServeHTTP(w, r)
	}))
	defer srv.Close()

	cred, err := azidentity.NewClientAssertionCredential(env.TenantID, mi.ClientID,
		func(context.Context) (string, error) {
			return env.Issuer.Mint(t, wiftest.Subject("consumer"), directory.DefaultAudience, time.Hour), nil
		},
		&azidentity.ClientAssertionCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: env.URL + "/"}, Transport: env.HTTPClient},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: wifclient.New(cred, "api://provider-api/.default", wifclient.WithBase(srv.Client().Transport))}
	for i := 1; i <= 3; i++ {
		req, _ := http.NewRequest("GET", srv.URL+"/orders", nil)
		req.Header.Set("X-Correlation-Id", fmt.Sprintf("call-%d", i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Correlation-Id") != fmt.Sprintf("call-%d", i) {
			t.Fatalf("call %d: status %d, headers %v", i, resp.StatusCode, resp.Header)
		}
	}
	got, n := be.lastRequest()
	if arrivals.Load() != 4 {
		t.Errorf("gateway saw %d requests, want 4 (one retry after 429)", arrivals.Load())
	}
	if n != 3 || got.Header.Get(HeaderClientID) != mi.ClientID || got.Header.Get(HeaderRoles) != "Data.Read" || got.Header.Get(HeaderTenantID) != env.TenantID {
		t.Errorf("backend: %d calls, headers %v", n, got.Header)
	}
	// The third call met a 429 (two calls per second) and was retried after
	// Retry-After by wifclient; the metrics show it.
	r := (&gwEnv{srv: srv}).do(t, "GET", "/metrics", nil)
	for _, want := range []string{`wif_gateway_refusals_total{reason="rate_limited",route="provider"} 1`, `wif_gateway_requests_total{code="429",route="provider"} 1`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
