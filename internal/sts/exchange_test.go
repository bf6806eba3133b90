package sts_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/wiftest"
)

// clientOptions points an Azure SDK credential at env, trusting its CA:
// the only changes a user makes besides DisableInstanceDiscovery.
func clientOptions(env *wiftest.Env) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: env.URL + "/"},
		Transport: env.HTTPClient,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

// verify checks tok's signature against the service's published JWKS and
// returns its header and claims.
func verify(t *testing.T, env *wiftest.Env, tok string) (jose.Header, map[string]any) {
	t.Helper()
	resp, err := env.HTTPClient.Get(env.URL + "/" + env.TenantID + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("access token does not verify against the JWKS: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return h, claims
}

type scenario struct {
	env *wiftest.Env
	mi  directory.ManagedIdentity
	v1  directory.Application
	v2  directory.Application
}

func setup(t *testing.T, opts ...wiftest.Option) scenario {
	env := wiftest.Start(t, opts...)
	mi := env.CreateManagedIdentity(t, "demo")
	v1 := env.CreateResourceApp(t, "api://provider-api", 1, "Data.Read", "Data.Write")
	v2 := env.CreateResourceApp(t, "api://provider-api-v2", 2, "Data.Read")
	env.Assign(t, mi.PrincipalID, v1.AppID, "Data.Read")
	env.Assign(t, mi.PrincipalID, v1.AppID, "Data.Write")
	env.Assign(t, mi.PrincipalID, v2.AppID, "Data.Read")
	return scenario{env: env, mi: mi, v1: v1, v2: v2}
}

func checkCommonClaims(t *testing.T, s scenario, claims map[string]any) {
	t.Helper()
	for k, want := range map[string]any{
		"tid": s.env.TenantID, "oid": s.mi.PrincipalID, "sub": s.mi.PrincipalID, "idtyp": "app",
		"xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo",
	} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	for _, k := range []string{"uti", "rh", "aio"} {
		if s, _ := claims[k].(string); s == "" {
			t.Errorf("claim %s missing", k)
		}
	}
	iat, nbf, exp := claims["iat"].(float64), claims["nbf"].(float64), claims["exp"].(float64)
	if now := float64(time.Now().Unix()); iat < now-60 || iat > now+5 || nbf != iat || exp-iat != 3600 {
		t.Errorf("times iat=%v nbf=%v exp=%v, want iat≈now, nbf=iat, exp=iat+3600", iat, nbf, exp)
	}
}

func TestWorkloadIdentityCredential(t *testing.T) {
	s := setup(t)
	env := s.env
	tokenFile := env.Issuer.WriteTokenFile(t, wiftest.Subject("demo"))
	// azidentity does not trim the file: a trailing newline must be accepted.
	raw, _ := os.ReadFile(tokenFile)
	if err := os.WriteFile(tokenFile, append(raw, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: clientOptions(env), ClientID: s.mi.ClientID, TenantID: env.TenantID,
		TokenFilePath: tokenFile, DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("v1 resource", func(t *testing.T) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://provider-api/.default"}})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		if d := time.Until(tok.ExpiresOn); d < 59*time.Minute || d > time.Hour {
			t.Errorf("ExpiresOn in %s, want about 1h", d)
		}
		h, claims := verify(t, env, tok.Token)
		if h.ExtraHeaders["typ"] != "JWT" || h.ExtraHeaders["x5t"] == nil || h.Algorithm != "RS256" {
			t.Errorf("header = %+v, want RS256, typ JWT and x5t (v1)", h)
		}
		checkCommonClaims(t, s, claims)
		for k, want := range map[string]any{
			"aud": "api://provider-api", "iss": env.URL + "/" + env.TenantID + "/", "idp": env.URL + "/" + env.TenantID + "/",
			"appid": s.mi.ClientID, "appidacr": "2", "ver": "1.0",
		} {
			if claims[k] != want {
				t.Errorf("claim %s = %v, want %v", k, claims[k], want)
			}
		}
		if roles, _ := json.Marshal(claims["roles"]); string(roles) != `["Data.Read","Data.Write"]` {
			t.Errorf("roles = %s", roles)
		}
		if _, ok := claims["azp"]; ok {
			t.Error("v1 token has azp")
		}
	})
	t.Run("v2 resource", func(t *testing.T) {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://provider-api-v2/.default"}})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		h, claims := verify(t, env, tok.Token)
		if h.ExtraHeaders["x5t"] != nil {
			t.Error("v2 token carries x5t")
		}
		checkCommonClaims(t, s, claims)
		for k, want := range map[string]any{
			"aud": s.v2.AppID, "iss": env.URL + "/" + env.TenantID + "/v2.0",
			"azp": s.mi.ClientID, "azpacr": "2", "ver": "2.0",
		} {
			if claims[k] != want {
				t.Errorf("claim %s = %v, want %v", k, claims[k], want)
			}
		}
		if roles, _ := json.Marshal(claims["roles"]); string(roles) != `["Data.Read"]` {
			t.Errorf("roles = %s", roles)
		}
		if _, ok := claims["appid"]; ok {
			t.Error("v2 token has appid")
		}
	})
	t.Run("refusal surfaces Entra's error", func(t *testing.T) {
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://nope/.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS500011") {
			t.Fatalf("err = %v, want AADSTS500011", err)
		}
	})
}

func TestClientAssertionCredential(t *testing.T) {
	s := setup(t)
	env := s.env
	cred, err := azidentity.NewClientAssertionCredential(env.TenantID, s.mi.ClientID,
		func(context.Context) (string, error) {
			return env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), nil
		},
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: clientOptions(env), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"api://provider-api-v2/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	_, claims := verify(t, env, tok.Token)
	if claims["aud"] != s.v2.AppID || claims["azp"] != s.mi.ClientID {
		t.Fatalf("claims = %v", claims)
	}
}

func TestRawFormPost(t *testing.T) {
	s := setup(t)
	env := s.env
	assertion := env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour)

	t.Run("v2", func(t *testing.T) {
		form := wiftest.ExchangeForm(s.mi.ClientID, assertion, "api://provider-api/.default openid profile offline_access")
		resp, err := env.HTTPClient.PostForm(env.URL+"/"+env.TenantID+"/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
		var body map[string]json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if string(body["token_type"]) != `"Bearer"` || string(body["expires_in"]) != "3599" || string(body["ext_expires_in"]) != "3599" {
			t.Errorf("body = %s", fmtBody(body))
		}
		if _, ok := body["refresh_in"]; ok {
			t.Error("refresh_in sent for a 1h token")
		}
		if _, ok := body["scope"]; ok {
			t.Error("scope sent: it must be omitted or echoed exactly")
		}
		if len(body) != 4 {
			t.Errorf("body has fields %s, want token_type, expires_in, ext_expires_in, access_token", fmtBody(body))
		}
	})
	t.Run("v1 endpoint", func(t *testing.T) {
		form := wiftest.ExchangeForm(s.mi.ClientID, assertion, "")
		form.Del("scope")
		form.Set("resource", "api://provider-api")
		r := env.Post(t, "/"+env.TenantID+"/oauth2/token", form)
		if r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
		if r.Body["expires_in"] != "3599" || r.Body["resource"] != "api://provider-api" || r.Body["token_type"] != "Bearer" {
			t.Errorf("v1 body = %s", r.Raw)
		}
		on, _ := r.Body["expires_on"].(string)
		if on == "" || r.Body["not_before"] == nil {
			t.Errorf("v1 body lacks expires_on/not_before: %s", r.Raw)
		}
	})
	t.Run("token exchange RFC 8693", func(t *testing.T) {
		form := url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "client_id": {s.mi.ClientID},
			"subject_token": {assertion}, "subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
			"scope": {"api://provider-api-v2/.default"},
		}
		r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", form)
		if r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
		if r.Body["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || r.Body["token_type"] != "Bearer" ||
			r.Body["expires_in"] != float64(3599) || r.Body["scope"] != "api://provider-api-v2/.default" {
			t.Errorf("body = %s", r.Raw)
		}
		_, claims := verify(t, env, r.Body["access_token"].(string))
		if claims["aud"] != s.v2.AppID {
			t.Errorf("aud = %v", claims["aud"])
		}
		// A subject token the federation refuses is invalid_request (RFC 8693 §2.2.2).
		form.Set("subject_token", env.Issuer.Mint(t, "system:serviceaccount:default:other", directory.DefaultAudience, time.Hour))
		r = env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", form)
		if r.Status != 400 || r.Body["error"] != "invalid_request" || codes(r) != 700213 {
			t.Errorf("refusal: status %d %s", r.Status, r.Raw)
		}
		form.Set("subject_token", assertion)
		form.Set("scope", "api://unknown/.default")
		r = env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", form)
		if r.Status != 400 || r.Body["error"] != "invalid_target" || codes(r) != 500011 {
			t.Errorf("unknown target: status %d %s", r.Status, r.Raw)
		}
	})
	t.Run("correlation id echoed", func(t *testing.T) {
		req, _ := http.NewRequest("POST", env.URL+"/"+env.TenantID+"/oauth2/v2.0/token",
			strings.NewReader(wiftest.ExchangeForm("00000000-0000-0000-0000-00000000dead", assertion, "api://provider-api/.default").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("client-request-id", "6e1b8d2c-0000-4000-8000-000000000001")
		resp, err := env.HTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if body["correlation_id"] != "6e1b8d2c-0000-4000-8000-000000000001" || resp.Header.Get("client-request-id") != "6e1b8d2c-0000-4000-8000-000000000001" {
			t.Errorf("correlation id not echoed: %v", body)
		}
	})
}

func fmtBody(b map[string]json.RawMessage) string {
	out, _ := json.Marshal(b)
	return string(out)
}

func codes(r wiftest.TokenResponse) int {
	c, _ := r.Body["error_codes"].([]any)
	if len(c) != 1 {
		return -1
	}
	n, _ := c[0].(float64)
	return int(n)
}

// TestRefusals has one row per row of spec/sts.md §6 that a client can
// cause, and the attacks of the issue.
func TestRefusals(t *testing.T) {
	s := setup(t)
	env := s.env
	mi := s.mi
	sub := wiftest.Subject("demo")
	aud := directory.DefaultAudience
	good := func() string { return env.Issuer.Mint(t, sub, aud, time.Hour) }
	now := time.Now()
	claims := func(mod func(map[string]any)) string {
		c := map[string]any{"iss": env.Issuer.URL, "sub": sub, "aud": []string{aud}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "x"}
		mod(c)
		return env.Issuer.MintClaims(t, c)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&env.Issuer.Key().PublicKey)
	b64 := base64.RawURLEncoding.EncodeToString
	hsWithPublicKey := func() string {
		// The key-confusion attack: HS256 keyed with the issuer's public key.
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pubDER}, (&jose.SignerOptions{}).WithHeader("kid", wiftest.KeyID(&env.Issuer.Key().PublicKey)))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := json.Marshal(map[string]any{"iss": env.Issuer.URL, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		jws, _ := signer.Sign(p)
		out, _ := jws.CompactSerialize()
		return out
	}
	attacker := mustKey(t)
	attackerJWK, _ := json.Marshal(jose.JSONWebKey{Key: &attacker.PublicKey})
	var attackerJWKMap map[string]any
	_ = json.Unmarshal(attackerJWK, &attackerJWKMap)
	signedByAttacker := func(extra map[jose.HeaderKey]any) string {
		c := map[string]any{"iss": env.Issuer.URL, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		// Same kid as the issuer's real key, so only the signature can tell.
		opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", wiftest.KeyID(&env.Issuer.Key().PublicKey))
		for k, v := range extra {
			opts = opts.WithHeader(k, v)
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: attacker}, opts)
		p, _ := json.Marshal(c)
		jws, _ := signer.Sign(p)
		out, _ := jws.CompactSerialize()
		return out
	}
	ownToken := env.Token(t, mi.ClientID, "api://provider-api/.default")
	// An issuer nobody answers for (90061) and one whose discovery document
	// names another issuer (50166): credentials name them, so they are
	// fetched.
	const deadIssuer = "https://127.0.0.1:1"
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "dead-issuer", deadIssuer, sub, aud)
	other := wiftest.NewIssuer(t)
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "mismatched-issuer", other.URL+"/", sub, aud)
	fromIssuer := func(iss string, key *rsa.PrivateKey) string {
		return wiftest.SignRS256(t, key, map[string]any{"iss": iss, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}, nil)
	}

	v2 := "/" + env.TenantID + "/oauth2/v2.0/token"
	tests := []struct {
		name       string
		path       string
		form       url.Values
		status     int
		err        string
		code       int
		hintSubstr string
	}{
		{"invalid scope", v2, wiftest.ExchangeForm(mi.ClientID, good(), "api://provider-api"), 400, "invalid_scope", 70011, "use api://provider-api/.default"},
		{"two resources", v2, wiftest.ExchangeForm(mi.ClientID, good(), "api://a/.default api://b/.default"), 400, "invalid_scope", 70011, "one token per resource"},
		{"resource not found", v2, wiftest.ExchangeForm(mi.ClientID, good(), "api://nope/.default"), 400, "invalid_resource", 500011, ""},
		{"client not found", v2, wiftest.ExchangeForm("00000000-0000-0000-0000-00000000dead", good(), "api://provider-api/.default"), 400, "unauthorized_client", 700016, ""},
		{"tenant not found", "/00000000-0000-0000-0000-000000000bad/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, good(), "api://provider-api/.default"), 400, "invalid_request", 90002, ""},
		{"grant type", v2, func() url.Values {
			f := wiftest.ExchangeForm(mi.ClientID, good(), "api://provider-api/.default")
			f.Set("grant_type", "password")
			return f
		}(), 400, "unsupported_grant_type", 70003, "client_credentials"},
		{"issuer trailing slash", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) { c["iss"] = env.Issuer.URL + "/" }), "api://provider-api/.default"), 401, "invalid_client", 700211, "trailing '/'"},
		{"other audience", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) { c["aud"] = "api://other" }), "api://provider-api/.default"), 401, "invalid_client", 700212, "expects 'api://AzureADTokenExchange'"},
		{"other namespace", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) { c["sub"] = "system:serviceaccount:prod:demo" }), "api://provider-api/.default"), 401, "invalid_client", 700213, "namespace is 'prod', credential 'k8s-demo' expects 'default'"},
		{"subject case", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) { c["sub"] = "system:serviceaccount:default:Demo" }), "api://provider-api/.default"), 401, "invalid_client", 7002138, "letter case"},
		{"expired", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-3*time.Hour).Unix(), now.Add(-3*time.Hour).Unix(), now.Add(-2*time.Hour).Unix()
		}), "api://provider-api/.default"), 401, "invalid_client", 700024, "expired 2h0m"},
		{"not yet valid", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), "api://provider-api/.default"), 401, "invalid_client", 700024, "valid only from"},
		{"no iat", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) { delete(c, "iat") }), "api://provider-api/.default"), 400, "invalid_request", 70023, ""},
		{"26 hour lifetime", v2, wiftest.ExchangeForm(mi.ClientID, claims(func(c map[string]any) { c["exp"] = now.Add(26 * time.Hour).Unix() }), "api://provider-api/.default"), 400, "invalid_request", 70023, "shorter-lived"},
		{"unknown kid", v2, wiftest.ExchangeForm(mi.ClientID, wiftest.SignRS256(t, attacker, map[string]any{"iss": env.Issuer.URL, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}, nil), "api://provider-api/.default"), 401, "invalid_client", 7000272, "does not list this kid"},
		{"issuer unreachable", v2, wiftest.ExchangeForm(mi.ClientID, fromIssuer(deadIssuer, env.Issuer.Key()), "api://provider-api/.default"), 400, "invalid_request", 90061, "wif audit explain"},
		{"issuer metadata names another issuer", v2, wiftest.ExchangeForm(mi.ClientID, fromIssuer(other.URL+"/", other.Key()), "api://provider-api/.default"), 400, "invalid_request", 50166, "wif audit explain"},
		{"own token as assertion", v2, wiftest.ExchangeForm(mi.ClientID, ownToken, "api://provider-api/.default"), 401, "invalid_client", 700222, "not an access token"},
		{"alg none", v2, wiftest.ExchangeForm(mi.ClientID, b64([]byte(`{"alg":"none","kid":"k"}`))+"."+b64([]byte(`{"iss":"`+env.Issuer.URL+`","sub":"`+sub+`"}`))+".", "api://provider-api/.default"), 400, "invalid_request", 50027, ""},
		{"HS256 with the public key", v2, wiftest.ExchangeForm(mi.ClientID, hsWithPublicKey(), "api://provider-api/.default"), 400, "invalid_request", 50027, ""},
		{"bad signature", v2, wiftest.ExchangeForm(mi.ClientID, signedByAttacker(nil), "api://provider-api/.default"), 400, "invalid_request", 50027, ""},
		{"jku header", v2, wiftest.ExchangeForm(mi.ClientID, signedByAttacker(map[jose.HeaderKey]any{"jku": "https://attacker.example/jwks"}), "api://provider-api/.default"), 400, "invalid_request", 50027, ""},
		{"x5u header", v2, wiftest.ExchangeForm(mi.ClientID, signedByAttacker(map[jose.HeaderKey]any{"x5u": "https://attacker.example/cert.pem"}), "api://provider-api/.default"), 400, "invalid_request", 50027, ""},
		{"jwk header", v2, wiftest.ExchangeForm(mi.ClientID, signedByAttacker(map[jose.HeaderKey]any{"jwk": attackerJWKMap}), "api://provider-api/.default"), 400, "invalid_request", 50027, ""},
		{"1 MiB assertion", v2, wiftest.ExchangeForm(mi.ClientID, strings.Repeat("a", 1<<20), "api://provider-api/.default"), 400, "invalid_request", 9002313, ""},
		{"17 KiB assertion", v2, wiftest.ExchangeForm(mi.ClientID, good()+strings.Repeat("a", 17<<10), "api://provider-api/.default"), 400, "invalid_request", 50027, ""},
		{"garbage", v2, wiftest.ExchangeForm(mi.ClientID, "this is not a JWT", "api://provider-api/.default"), 400, "invalid_request", 50027, "not a path or an access token"},
		{"client secret", v2, url.Values{"grant_type": {"client_credentials"}, "client_id": {mi.ClientID}, "client_secret": {"hunter2"}, "scope": {"api://provider-api/.default"}}, 401, "invalid_client", 7000215, "never accepts client secrets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Post(t, tc.path, tc.form)
			if r.Status != tc.status || r.Body["error"] != tc.err || codes(r) != tc.code {
				t.Fatalf("got %d %v %d, want %d %s %d: %s", r.Status, r.Body["error"], codes(r), tc.status, tc.err, tc.code, r.Raw)
			}
			desc, _ := r.Body["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, "Trace ID: ") || !strings.Contains(desc, "Correlation ID: ") {
				t.Errorf("error_description not in Entra's form: %q", desc)
			}
			if tc.hintSubstr != "" && (!strings.Contains(desc, "wif hint: ") || !strings.Contains(desc, tc.hintSubstr)) {
				t.Errorf("error_description %q lacks hint %q", desc, tc.hintSubstr)
			}
			for _, f := range []string{"timestamp", "trace_id", "correlation_id", "error_uri"} {
				if v, _ := r.Body[f].(string); v == "" {
					t.Errorf("field %s missing: %s", f, r.Raw)
				}
			}
			if tc.status == 401 && r.Header.Get("Retry-After") != "" {
				t.Error("permanent error carries Retry-After")
			}
		})
	}
}

func mustKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyCache(t *testing.T) {
	// The service's clock can be moved forward past the refetch cooldown.
	var offset atomic.Int64
	s := setup(t, wiftest.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	env := s.env
	form := func() url.Values {
		return wiftest.ExchangeForm(s.mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), "api://provider-api/.default")
	}
	path := "/" + env.TenantID + "/oauth2/v2.0/token"
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := env.Post(t, path, form()); r.Status != 200 {
				t.Errorf("exchange: %d %s", r.Status, r.Raw)
			}
		}()
	}
	wg.Wait()
	if d, j := env.Issuer.DiscoveryRequests.Load(), env.Issuer.JWKSRequests.Load(); d != 1 || j != 1 {
		t.Fatalf("20 exchanges caused %d discovery and %d JWKS fetches, want 1 and 1", d, j)
	}

	// An unknown kid causes one refetch, not one per request: after the
	// refetch cooldown (1 min) since the last fetch, ten requests with a kid
	// the issuer does not publish cause exactly one more fetch.
	offset.Store(int64(2 * time.Minute))
	env.Issuer.Rotate(t, false)
	for i := 0; i < 10; i++ {
		if r := env.Post(t, path, form()); r.Status != 401 || codes(r) != 7000272 {
			t.Fatalf("unknown kid: %d %s", r.Status, r.Raw)
		}
	}
	if j := env.Issuer.JWKSRequests.Load(); j != 2 {
		t.Fatalf("10 requests with an unknown kid caused %d JWKS fetches in all, want 2 (one refetch)", j)
	}

	// The issuer goes down: keys already fetched still validate.
	env.Issuer.Publish()
	env.Issuer.SetDown(true)
	t.Cleanup(func() { env.Issuer.SetDown(false) })
	// Sign with the first (cached) key again.
	c := map[string]any{"iss": env.Issuer.URL, "sub": wiftest.Subject("demo"), "aud": directory.DefaultAudience,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	tok := wiftest.SignRS256(t, env.Issuer.FirstKey(), c, nil)
	if r := env.Post(t, path, wiftest.ExchangeForm(s.mi.ClientID, tok, "api://provider-api/.default")); r.Status != 200 {
		t.Fatalf("issuer down: %d %s", r.Status, r.Raw)
	}
}

func TestAudit(t *testing.T) {
	s := setup(t)
	env := s.env
	path := "/" + env.TenantID + "/oauth2/v2.0/token"
	ok := env.Post(t, path, wiftest.ExchangeForm(s.mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), "api://provider-api/.default"))
	bad := env.Post(t, path, wiftest.ExchangeForm(s.mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("other"), directory.DefaultAudience, time.Hour), "api://provider-api/.default"))
	if ok.Status != 200 || bad.Status != 401 {
		t.Fatalf("statuses %d %d", ok.Status, bad.Status)
	}
	if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := env.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: env.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 2 {
		t.Fatalf("%d audit records, want 2: %+v", len(page.Records), page.Records)
	}
	byResult := map[string]store.AuditRecord{}
	for _, r := range page.Records {
		byResult[r.Result] = r
	}
	succ, fail := byResult[store.AuditSuccess], byResult[store.AuditFailure]
	if succ.ClientID != s.mi.ClientID || succ.CredentialName != "k8s-demo" || succ.Issuer != env.Issuer.URL ||
		succ.Subject != wiftest.Subject("demo") || len(succ.JTIHash) != 64 || succ.Resource != s.v1.AppID {
		t.Errorf("success record = %+v", succ)
	}
	if fail.ErrorCode != 700213 || fail.Error != "invalid_client" || fail.Subject != wiftest.Subject("other") {
		t.Errorf("failure record = %+v", fail)
	}
	raw, _ := json.Marshal(page.Records)
	if strings.Contains(string(raw), "eyJ") {
		t.Error("an audit record holds what looks like a JWT")
	}
}

func TestDiscovery(t *testing.T) {
	s := setup(t)
	env := s.env
	get := func(path string) (int, map[string]any) {
		resp, err := env.HTTPClient.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	// MSAL Go appends a bare '?'.
	st, m := get("/" + env.TenantID + "/v2.0/.well-known/openid-configuration?")
	if st != 200 {
		t.Fatalf("v2 metadata: %d", st)
	}
	base := env.URL + "/" + env.TenantID
	for k, want := range map[string]string{
		"issuer": base + "/v2.0", "token_endpoint": base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize", "jwks_uri": base + "/discovery/v2.0/keys",
	} {
		if m[k] != want {
			t.Errorf("v2 %s = %v, want %s", k, m[k], want)
		}
	}
	st, m = get("/" + strings.ToUpper(env.TenantID) + "/.well-known/openid-configuration")
	if st != 200 || m["issuer"] != base+"/" || m["token_endpoint"] != base+"/oauth2/token" {
		t.Errorf("v1 metadata: %d %v", st, m)
	}
	// The multi-tenant documents, as Entra serves them: {tenantid} in the
	// issuer, the segment itself in the endpoints.
	for _, seg := range []string{"common", "organizations", "consumers"} {
		st, m = get("/" + seg + "/v2.0/.well-known/openid-configuration")
		if st != 200 || m["issuer"] != env.URL+"/{tenantid}/v2.0" || m["token_endpoint"] != env.URL+"/"+seg+"/oauth2/v2.0/token" ||
			m["jwks_uri"] != env.URL+"/"+seg+"/discovery/v2.0/keys" || m["authorization_endpoint"] != env.URL+"/"+seg+"/oauth2/v2.0/authorize" {
			t.Errorf("%s v2 metadata: %d %v", seg, st, m)
		}
		st, m = get("/" + seg + "/.well-known/openid-configuration")
		if st != 200 || m["issuer"] != env.URL+"/{tenantid}/" || m["token_endpoint"] != env.URL+"/"+seg+"/oauth2/token" {
			t.Errorf("%s v1 metadata: %d %v", seg, st, m)
		}
		if st, m = get("/" + seg + "/discovery/v2.0/keys"); st != 200 || m["keys"] == nil {
			t.Errorf("%s keys: %d %v", seg, st, m)
		}
	}
	st, m = get("/common/discovery/instance?api-version=1.1&authorization_endpoint=" + url.QueryEscape(base+"/oauth2/v2.0/authorize"))
	if st != 200 || m["tenant_discovery_endpoint"] != base+"/v2.0/.well-known/openid-configuration" || m["api-version"] != "1.1" {
		t.Errorf("instance discovery: %d %v", st, m)
	}
	st, m = get("/" + env.TenantID + "/discovery/v2.0/keys")
	keys, _ := m["keys"].([]any)
	if st != 200 || len(keys) == 0 {
		t.Fatalf("keys: %d %v", st, m)
	}
	k := keys[0].(map[string]any)
	for _, f := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c"} {
		if k[f] == nil {
			t.Errorf("JWK lacks %s: %v", f, k)
		}
	}
	resp, err := env.HTTPClient.Get(env.URL + "/" + env.TenantID + "/discovery/keys")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest("GET", env.URL+"/"+env.TenantID+"/discovery/v2.0/keys", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = env.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if etag == "" || resp.StatusCode != http.StatusNotModified {
		t.Errorf("JWKS ETag %q, conditional GET status %d, want 304", etag, resp.StatusCode)
	}
	st, m = get("/00000000-0000-0000-0000-000000000bad/v2.0/.well-known/openid-configuration")
	if st != 400 || m["error"] != "invalid_tenant" {
		t.Errorf("unknown tenant metadata: %d %v", st, m)
	}
}

func TestEntraIssuerNames(t *testing.T) {
	s := setup(t, wiftest.WithEntraIssuerNames())
	tok := s.env.Token(t, s.mi.ClientID, "api://provider-api/.default")
	_, claims := verify(t, s.env, tok)
	if claims["iss"] != "https://sts.windows.net/"+s.env.TenantID+"/" {
		t.Fatalf("iss = %v, want Entra's v1 form", claims["iss"])
	}
	tok = s.env.Token(t, s.mi.ClientID, "api://provider-api-v2/.default")
	if _, claims := verify(t, s.env, tok); claims["iss"] != s.env.URL+"/"+s.env.TenantID+"/v2.0" {
		t.Fatalf("v2 iss = %v", claims["iss"])
	}
}

func TestTokenFileRead(t *testing.T) {
	// The credential re-reads the token file: writing a new one is picked up.
	s := setup(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions: clientOptions(s.env), ClientID: s.mi.ClientID, TenantID: s.env.TenantID, TokenFilePath: p, DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"api://provider-api/.default"}}); err == nil || !strings.Contains(err.Error(), "AADSTS50027") {
		t.Fatalf("garbage token file: err = %v, want AADSTS50027", err)
	}
}
