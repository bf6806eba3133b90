package sts_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// jwksOf is the public JWKS document of keys, as an issuer serves it.
func jwksOf(t *testing.T, keys ...*rsa.PrivateKey) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: wiftest.KeyID(&k.PublicKey), Algorithm: "RS256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func trustIssuer(t *testing.T, env *wiftest.Env, tid string, ti directory.TrustedIssuer) {
	t.Helper()
	ti.TenantID = tid
	if _, err := env.Store.CreateTrustedIssuer(context.Background(), ti); err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
}

func exchange(t *testing.T, env *wiftest.Env, clientID, assertion string) wiftest.TokenResponse {
	t.Helper()
	return env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(clientID, assertion, "api://ledger/.default"))
}

func wantCode(t *testing.T, r wiftest.TokenResponse, status int, code float64, contains string) {
	t.Helper()
	codes, _ := r.Body["error_codes"].([]any)
	desc, _ := r.Body["error_description"].(string)
	if r.Status != status || len(codes) == 0 || codes[0] != code || !strings.Contains(desc, contains) {
		t.Fatalf("got %d %s\nwant %d, error code %v, description containing %q", r.Status, r.Raw, status, code, contains)
	}
}

// An air-gapped cluster: the token service cannot reach its issuer, so an
// admin uploads the issuer's JWKS to a trusted issuer of the tenant.
func TestUploadedJWKSForUnreachableIssuer(t *testing.T) {
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	sub := wiftest.Subject("payments")
	env.Changed(t)
	env.Issuer.SetDown(true) // discovery and JWKS answer 503: nobody can fetch them
	token := env.Issuer.Mint(t, sub, directory.DefaultAudience, time.Hour)

	wantCode(t, exchange(t, env, mi.ClientID, token), 400, 90061, "AADSTS90061")
	trustIssuer(t, env, env.TenantID, directory.TrustedIssuer{Name: "air-gapped", Issuer: env.Issuer.URL,
		KeySource: directory.KeySourceJWKS, JWKS: jwksOf(t, env.Issuer.Key()), KeysUpdatedAt: time.Now()})
	before := env.Issuer.DiscoveryRequests.Load()
	if r := exchange(t, env, mi.ClientID, token); r.Status != 200 {
		t.Fatalf("with the uploaded JWKS: %d %s", r.Status, r.Raw)
	}
	if n := env.Issuer.DiscoveryRequests.Load(); n != before {
		t.Errorf("the issuer's discovery document was fetched %d times with an uploaded JWKS", n-before)
	}
	// An admin's dry run names the trusted issuer whose keys verified it.
	res, err := env.Server.STS.TestAssertion(context.Background(), env.TenantID, mi.ClientID, token)
	if err != nil || res.Result != "pass" || res.Diagnosis.Key == nil || res.Diagnosis.Key.TrustedIssuer != "air-gapped (jwks)" || res.Diagnosis.Key.Result != "signature verified" {
		t.Errorf("dry run: %v %+v %+v", err, res, res.Diagnosis.Key)
	}

	// A token signed by a key that is not in the uploaded set is refused
	// as an unknown kid, as a fetched set would be.
	env.Issuer.Rotate(t, true)
	wantCode(t, exchange(t, env, mi.ClientID, env.Issuer.Mint(t, sub, directory.DefaultAudience, time.Hour)), 401, 7000272, "AADSTS7000272")
}

// Keys uploaded in one tenant never verify assertions presented in
// another: a tenant admin cannot forge tokens of an issuer that other
// tenants trust by uploading keys of their own for it.
func TestUploadedKeysStayInTheirTenant(t *testing.T) {
	env := wiftest.Start(t)
	ctx := context.Background()
	env.CreateResourceApp(t, "api://ledger", 2)
	victim := env.CreateManagedIdentity(t, "victim")
	sub := wiftest.Subject("victim")

	// Another tenant uploads the attacker's key for the same issuer.
	other := directory.Tenant{ID: directory.NewID(), DisplayName: "attacker"}
	if _, err := env.Store.CreateTenant(ctx, other); err != nil {
		t.Fatal(err)
	}
	attacker := wiftest.NewIssuer(t) // only its key is used
	trustIssuer(t, env, other.ID, directory.TrustedIssuer{Name: "forged", Issuer: env.Issuer.URL,
		KeySource: directory.KeySourceJWKS, JWKS: jwksOf(t, attacker.Key())})

	forged := wiftest.SignRS256(t, attacker.Key(), map[string]any{"iss": env.Issuer.URL, "sub": sub, "aud": directory.DefaultAudience,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}, nil)
	r := exchange(t, env, victim.ClientID, forged)
	if r.Status == 200 {
		t.Fatalf("a key uploaded in another tenant verified an assertion in this one: %s", r.Raw)
	}
	wantCode(t, r, 401, 7000272, "AADSTS7000272")
	if r := exchange(t, env, victim.ClientID, env.Issuer.Mint(t, sub, directory.DefaultAudience, time.Hour)); r.Status != 200 {
		t.Fatalf("the real issuer's token: %d %s", r.Status, r.Raw)
	}
}

// Keys a push removed keep verifying until their time, then stop.
func TestRetiredPushedKeys(t *testing.T) {
	now := time.Now()
	clock := &testClock{t: now}
	env := wiftest.Start(t, wiftest.WithClock(clock.Now))
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	sub := wiftest.Subject("payments")
	old := env.Issuer.Key()
	env.Issuer.Rotate(t, true)
	oldKey, _ := json.Marshal(jose.JSONWebKey{Key: &old.PublicKey, KeyID: wiftest.KeyID(&old.PublicKey), Algorithm: "RS256", Use: "sig"})
	trustIssuer(t, env, env.TenantID, directory.TrustedIssuer{Name: "pushed", Issuer: env.Issuer.URL, KeySource: directory.KeySourcePushed,
		JWKS: jwksOf(t, env.Issuer.Key()), RetiredKeys: []directory.RetiredKey{{Key: oldKey, Until: now.Add(time.Hour)}}})
	oldToken := wiftest.SignRS256(t, old, map[string]any{"iss": env.Issuer.URL, "sub": sub, "aud": directory.DefaultAudience,
		"iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix()}, map[jose.HeaderKey]any{"kid": wiftest.KeyID(&old.PublicKey)})
	if r := exchange(t, env, mi.ClientID, oldToken); r.Status != 200 {
		t.Fatalf("a retired key within its overlap: %d %s", r.Status, r.Raw)
	}
	clock.set(now.Add(61 * time.Minute))
	wantCode(t, exchange(t, env, mi.ClientID, oldToken), 401, 7000272, "AADSTS7000272")
}

// SPIRE's ES256 JWT-SVIDs, accepted once the tenant's trusted issuer
// allows ES256 (no operator flag).
func TestTrustedIssuerAlgorithms(t *testing.T) {
	spire := startSPIRE(t)
	const spiffeID = "spiffe://example.org/ns/payments/sa/api"
	env := wiftest.Start(t, wiftest.WithIssuerHTTPClient(spire.Client()))
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "spire", spire.URL, spiffeID, directory.DefaultAudience)
	env.Changed(t)
	r := exchange(t, env, mi.ClientID, spire.svid(t, spiffeID))
	wantCode(t, r, 400, 50027, `The assertion's alg is "ES256"; it is not accepted from this issuer.`)
	if desc := r.Body["error_description"].(string); !strings.Contains(desc, "wif issuer-trust create --issuer ISSUER --algorithms RS256,ES256") {
		t.Errorf("the refusal does not name the per-issuer switch: %s", desc)
	}
	trustIssuer(t, env, env.TenantID, directory.TrustedIssuer{Name: "spire", Issuer: spire.URL, KeySource: directory.KeySourceDiscovery, Algorithms: []string{"ES256"}})
	if r := exchange(t, env, mi.ClientID, spire.svid(t, spiffeID)); r.Status != 200 {
		t.Fatalf("with ES256 allowed: %d %s", r.Status, r.Raw)
	}
}

// A trusted issuer's own lifetime bound refuses longer-lived assertions.
func TestTrustedIssuerMaxLifetime(t *testing.T) {
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	sub := wiftest.Subject("payments")
	trustIssuer(t, env, env.TenantID, directory.TrustedIssuer{Name: "short", Issuer: env.Issuer.URL, KeySource: directory.KeySourceDiscovery, MaxTokenLifetimeSeconds: 600})
	wantCode(t, exchange(t, env, mi.ClientID, env.Issuer.Mint(t, sub, directory.DefaultAudience, time.Hour)), 400, 70023, "this issuer's tokens may live at most 10m0s")
	if r := exchange(t, env, mi.ClientID, env.Issuer.Mint(t, sub, directory.DefaultAudience, 10*time.Minute)); r.Status != 200 {
		t.Fatalf("a 10-minute token: %d %s", r.Status, r.Raw)
	}
}

// An issuer whose certificate a private CA signed: its trusted issuer's
// caBundle lets the token service fetch it, for this tenant only.
func TestTrustedIssuerCABundle(t *testing.T) {
	// The issuer client trusts only the system roots, not the test CA.
	env := wiftest.Start(t, wiftest.WithIssuerHTTPClient(&http.Client{}))
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	sub := wiftest.Subject("payments")
	env.Changed(t)
	token := env.Issuer.Mint(t, sub, directory.DefaultAudience, time.Hour)
	wantCode(t, exchange(t, env, mi.ClientID, token), 400, 90061, "AADSTS90061")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: env.Issuer.Server.Certificate().Raw})
	trustIssuer(t, env, env.TenantID, directory.TrustedIssuer{Name: "private-ca", Issuer: env.Issuer.URL, KeySource: directory.KeySourceDiscovery, CABundle: string(ca)})
	if r := exchange(t, env, mi.ClientID, token); r.Status != 200 {
		t.Fatalf("with the CA bundle: %d %s", r.Status, r.Raw)
	}
}

// One credential naming an issuer set covers the same subject on every
// cluster of the set; a cluster joins by joining the set.
func TestIssuerSetCredential(t *testing.T) {
	env := wiftest.Start(t)
	ctx := context.Background()
	mi := env.CreateManagedIdentity(t, "payments")
	env.CreateResourceApp(t, "api://ledger", 2)
	sub := wiftest.Subject("payments")
	east, west := wiftest.NewIssuer(t), wiftest.NewIssuer(t)
	if _, err := env.Store.CreateIssuerSet(ctx, directory.IssuerSet{TenantID: env.TenantID, Name: "prod", Issuers: []string{env.Issuer.URL, east.URL}}); err != nil {
		t.Fatal(err)
	}
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "all-clusters", directory.IssuerSetPrefix+"prod", sub, directory.DefaultAudience)
	// The test issuers share one TLS CA with env.Issuer? Each has its own
	// server certificate: trust all three by uploading their keys.
	for i, iss := range []*wiftest.Issuer{east, west} {
		trustIssuer(t, env, env.TenantID, directory.TrustedIssuer{Name: []string{"east", "west"}[i], Issuer: iss.URL, KeySource: directory.KeySourceJWKS, JWKS: jwksOf(t, iss.Key())})
	}
	for _, iss := range []*wiftest.Issuer{env.Issuer, east} {
		if r := exchange(t, env, mi.ClientID, iss.Mint(t, sub, directory.DefaultAudience, time.Hour)); r.Status != 200 {
			t.Fatalf("issuer %s of the set: %d %s", iss.URL, r.Status, r.Raw)
		}
	}
	wantCode(t, exchange(t, env, mi.ClientID, west.Mint(t, sub, directory.DefaultAudience, time.Hour)), 401, 700211, "AADSTS700211")
	if _, err := env.Store.UpdateIssuerSet(ctx, env.TenantID, "prod", func(s *directory.IssuerSet) error {
		s.Issuers = append(s.Issuers, west.URL)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
	if r := exchange(t, env, mi.ClientID, west.Mint(t, sub, directory.DefaultAudience, time.Hour)); r.Status != 200 {
		t.Fatalf("after west joined the set: %d %s", r.Status, r.Raw)
	}
	// The subject still has to match.
	wantCode(t, exchange(t, env, mi.ClientID, east.Mint(t, wiftest.Subject("other"), directory.DefaultAudience, time.Hour)), 401, 700213, "AADSTS700213")
}

// testClock is a clock a test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// claimsMatchingExpression works for a Kubernetes issuer too (Entra allows
// it for three SaaS issuers only): one credential for every service
// account of a namespace.
func TestKubernetesClaimsExpression(t *testing.T) {
	env := wiftest.Start(t)
	ctx := context.Background()
	mi := env.CreateManagedIdentity(t, "team-a")
	env.CreateResourceApp(t, "api://ledger", 2)
	if _, err := env.Store.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: env.TenantID, ParentKind: directory.ParentManagedIdentity,
		ParentClientID: mi.ClientID, ID: directory.NewID(), Name: "namespace", Issuer: env.Issuer.URL, Audiences: []string{directory.DefaultAudience},
		ClaimsMatchingExpression: &directory.ClaimsMatchingExpression{Value: "claims['sub'] matches 'system:serviceaccount:team-a:*'", LanguageVersion: 1}}); err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
	for _, sa := range []string{"api", "worker"} {
		if r := exchange(t, env, mi.ClientID, env.Issuer.Mint(t, "system:serviceaccount:team-a:"+sa, directory.DefaultAudience, time.Hour)); r.Status != 200 {
			t.Fatalf("team-a:%s: %d %s", sa, r.Status, r.Raw)
		}
	}
	wantCode(t, exchange(t, env, mi.ClientID, env.Issuer.Mint(t, "system:serviceaccount:team-b:api", directory.DefaultAudience, time.Hour)), 401, 700213, "AADSTS700213")
}
