package sts

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store/memory"
)

// brokenSigner stands in for a key manager whose signing fails: the real
// one (internal/jose) cannot be made to fail on demand once it has a key.
type brokenSigner struct{}

func (brokenSigner) Sign([]byte, bool) (string, error) {
	return "", errors.New("signing key unavailable")
}
func (brokenSigner) JWKSWithETag() ([]byte, string) { return []byte(`{"keys":[]}`), `"0"` }
func (brokenSigner) IsOwnKey(string) bool           { return false }

// staticKey is the issuer's public key, given directly (the trust cache is
// tested on its own and through the HTTPS tests).
type staticKey struct{ pub *rsa.PublicKey }

func (k staticKey) Key(context.Context, KeyRequest) (crypto.PublicKey, error) { return k.pub, nil }

// TestServiceFailureIs503: a failure of the service itself (here, signing)
// is 503 temporarily_unavailable with Retry-After — never a permanent 4xx
// that clients would cache, nor a bare 500.
func TestServiceFailureIs503(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	defer st.Close()
	tid, client := directory.NewID(), directory.NewID()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateTenant(ctx, directory.Tenant{ID: tid, DisplayName: "t"}))
	must(st.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: tid, SubscriptionID: directory.NewID(), ResourceGroup: "rg", Name: "demo", ClientID: client, PrincipalID: directory.NewID()}))
	must(st.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: tid, ParentKind: directory.ParentManagedIdentity, ParentClientID: client, ID: directory.NewID(),
		Name: "k8s", Issuer: "https://issuer.example", Subject: "system:serviceaccount:default:demo", Audiences: []string{directory.DefaultAudience}}))
	must(st.CreateApplication(ctx, directory.Application{TenantID: tid, AppID: directory.NewID(), ObjectID: directory.NewID(), ServicePrincipalID: directory.NewID(),
		DisplayName: "api", IdentifierURIs: []string{"api://provider-api"}}))
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, Config{Store: st, Signer: brokenSigner{}, Keys: staticKey{&key.PublicKey}, PublicURL: "https://wif.example"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	assertion := signRS256(t, key, map[string]any{"iss": "https://issuer.example", "sub": "system:serviceaccount:default:demo",
		"aud": directory.DefaultAudience, "iat": now, "exp": now + 3600}, nil)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_assertion_type": {AssertionTypeJWTBearer},
		"client_assertion": {assertion}, "scope": {"api://provider-api/.default"}}
	req := httptest.NewRequest("POST", "/"+tid+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, req)
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" ||
		body.Error != "temporarily_unavailable" || len(body.ErrorCodes) != 1 || body.ErrorCodes[0] != CodeServiceUnavailable {
		t.Fatalf("got %d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if strings.Contains(body.ErrorDescription, "signing key unavailable") {
		t.Error("the internal cause reached the client")
	}
}
