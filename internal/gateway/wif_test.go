package gateway

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/wiftest"
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
