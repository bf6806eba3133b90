package sts_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/sts"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestRefusalsTellStrangersNothing: for each refusal class, a caller
// without a valid signature of a trusted issuer — a stranger who knows a
// tenant id and a client id, neither of them secret — gets Entra's body
// naming only what it sent, while the audit record of its correlation id
// names the exact difference for admins.
func TestRefusalsTellStrangersNothing(t *testing.T) {
	env := wiftest.Start(t)
	ctx := context.Background()
	const (
		name     = "payments-prod"
		credName = "k8s-payments"
		subject  = "system:serviceaccount:prod:payments"
		audience = "api://payments-exchange"
	)
	mi, err := env.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: env.TenantID, SubscriptionID: "00000000-0000-0000-0000-000000000001",
		ResourceGroup: "rg-secret", Name: name, ClientID: directory.NewID(), PrincipalID: directory.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, credName, env.Issuer.URL, subject, audience)
	env.CreateResourceApp(t, "api://provider-api", 1)
	// A client id that exists, but in another tenant.
	otherTenant := directory.NewID()
	if _, err := env.Store.CreateTenant(ctx, directory.Tenant{ID: otherTenant, DisplayName: "other"}); err != nil {
		t.Fatal(err)
	}
	elsewhere, err := env.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: otherTenant, SubscriptionID: "00000000-0000-0000-0000-000000000001",
		ResourceGroup: "rg", Name: "elsewhere", ClientID: directory.NewID(), PrincipalID: directory.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
	configured := []string{name, credName, env.Issuer.URL, subject, audience, "rg-secret", "elsewhere", otherTenant}

	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	issuerKid := wiftest.KeyID(&env.Issuer.Key().PublicKey)
	now := time.Now()
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": env.Issuer.URL, "sub": subject, "aud": audience, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "j"}
		if mod != nil {
			mod(c)
		}
		return c
	}
	// forged: signed by the attacker under the real issuer's kid.
	forged := func(mod func(map[string]any)) string {
		return wiftest.SignRS256(t, attacker, claims(mod), map[jose.HeaderKey]any{"kid": issuerKid})
	}
	tests := []struct {
		class    string
		clientID string
		token    string
		code     int
		// explain must appear in the audit record's reason or diagnosis.
		explain []string
	}{
		{"wrong issuer", mi.ClientID, forged(func(c map[string]any) { c["iss"] = "https://attacker.example/" }), 700211,
			[]string{"no credential of managed identity 'payments-prod' trusts issuer 'https://attacker.example/'", "not checked"}},
		{"trailing slash", mi.ClientID, forged(func(c map[string]any) { c["iss"] = env.Issuer.URL + "/" }), 700211,
			[]string{"issuer differs only by a trailing '/': credential 'k8s-payments' expects '" + env.Issuer.URL + "'", "signature does not verify"}},
		{"subject case", mi.ClientID, forged(func(c map[string]any) { c["sub"] = "system:serviceaccount:Prod:payments" }), 700213,
			[]string{"subject differs only in letter case: credential 'k8s-payments' expects '" + subject + "'"}},
		{"other namespace", mi.ClientID, forged(func(c map[string]any) { c["sub"] = "system:serviceaccount:dev:payments" }), 700213,
			[]string{"another namespace: the subject's namespace is 'dev', credential 'k8s-payments' expects 'prod'", `another namespace: the token's is \"dev\", the credential expects \"prod\"`}},
		{"audience", mi.ClientID, forged(func(c map[string]any) { c["aud"] = "api://AzureADTokenExchange" }), 700212,
			[]string{"credential 'k8s-payments' expects '" + audience + "'"}},
		{"unknown kid", mi.ClientID, wiftest.SignRS256(t, attacker, claims(nil), nil), 7000272, []string{"kid not among the issuer's keys"}},
		{"bad signature", mi.ClientID, forged(nil), 50027, []string{"signature does not verify"}},
		{"expired", mi.ClientID, forged(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-3*time.Hour).Unix(), now.Add(-3*time.Hour).Unix(), now.Add(-2*time.Hour).Unix()
		}), 700024, []string{"expired 2h0m"}},
		{"not yet valid", mi.ClientID, forged(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), 700024, []string{"valid only from"}},
		{"unknown client", "00000000-0000-4000-8000-00000000dead", forged(nil), 700016,
			[]string{`client id \"00000000-0000-4000-8000-00000000dead\" (as sent) names no managed identity or application in tenant ` + env.TenantID}},
		{"client of another tenant", elsewhere.ClientID, forged(nil), 700016, []string{"names no managed identity or application in tenant " + env.TenantID}},
	}
	bodies := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.class, func(t *testing.T) {
			corr := directory.NewID()
			status, body := post(t, env, corr, wiftest.ExchangeForm(tc.clientID, tc.token, "api://provider-api/.default"))
			var eb struct {
				Desc  string `json:"error_description"`
				Codes []int  `json:"error_codes"`
			}
			if err := json.Unmarshal([]byte(body), &eb); err != nil || len(eb.Codes) != 1 || eb.Codes[0] != tc.code {
				t.Fatalf("status %d body %s; want AADSTS%d", status, body, tc.code)
			}
			// What the caller sent may come back; nothing else configured.
			public := body
			var sent map[string]any
			_ = json.Unmarshal(decodePayload(t, tc.token), &sent)
			for _, v := range []any{sent["iss"], sent["sub"], sent["aud"], tc.clientID} {
				if s, ok := v.(string); ok && s != "" {
					public = strings.ReplaceAll(public, s, "<sent>")
				}
			}
			for _, c := range configured {
				if strings.Contains(public, c) {
					t.Errorf("the public refusal names the configured %q: %s", c, body)
				}
			}
			if !strings.Contains(eb.Desc, "wif hint: ") {
				t.Errorf("the public refusal has no hint: %s", eb.Desc)
			}
			bodies[tc.class] = regexp.MustCompile(`[0-9a-f-]{36}|\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`).ReplaceAllString(strings.ReplaceAll(body, tc.clientID, "<client>"), "<id>")
			rec := auditRecord(t, env, corr)
			explained := rec.Reason + "\n" + rec.Diagnosis
			for _, want := range tc.explain {
				if !strings.Contains(explained, want) {
					t.Errorf("audit explain lacks %q:\n%s", want, explained)
				}
			}
			if rec.Result != store.AuditFailure || rec.ErrorCode != tc.code {
				t.Errorf("audit record %+v", rec)
			}
		})
	}
	// An id of another tenant answers exactly as one that exists nowhere.
	if bodies["unknown client"] != bodies["client of another tenant"] {
		t.Errorf("a client id of another tenant answers differently:\n%s\n%s", bodies["unknown client"], bodies["client of another tenant"])
	}

	// The workload itself (a valid signature of the trusted issuer) is
	// told the exact difference.
	t.Run("verified caller gets the difference", func(t *testing.T) {
		tok := env.Issuer.MintClaims(t, claims(func(c map[string]any) { c["sub"] = "system:serviceaccount:Prod:payments" }))
		_, body := post(t, env, directory.NewID(), wiftest.ExchangeForm(mi.ClientID, tok, "api://provider-api/.default"))
		if !strings.Contains(body, "AADSTS7002138") || !strings.Contains(body, "subject differs only in letter case: credential 'k8s-payments' expects '"+subject+"'") {
			t.Fatalf("verified caller: %s", body)
		}
	})
}

// TestFetchFailureSaysNothingOfTheNetwork: a credential naming an issuer
// the service cannot reach (a contributor may set any issuer URL) must not
// turn the token endpoint into a port scanner: the caller gets a fixed
// description, the admin the fetch error.
func TestFetchFailureSaysNothingOfTheNetwork(t *testing.T) {
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 1)
	const dead = "https://127.0.0.1:1"
	env.AddCredential(t, mi.ClientID, directory.ParentManagedIdentity, "dead", dead, "s", directory.DefaultAudience)
	now := time.Now()
	tok := wiftest.SignRS256(t, env.Issuer.Key(), map[string]any{"iss": dead, "sub": "s", "aud": directory.DefaultAudience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}, nil)
	corr := directory.NewID()
	_, body := post(t, env, corr, wiftest.ExchangeForm(mi.ClientID, tok, "api://provider-api/.default"))
	for _, leak := range []string{"connection refused", "dial", ".well-known", "127.0.0.1:1/", "tls", "x509"} {
		if strings.Contains(strings.ToLower(body), leak) {
			t.Errorf("the public refusal tells %q: %s", leak, body)
		}
	}
	if !strings.Contains(body, "AADSTS90061: Request to External OIDC endpoint failed.") {
		t.Errorf("body %s", body)
	}
	rec := auditRecord(t, env, corr)
	if !strings.Contains(rec.Diagnosis, "connection refused") || !strings.Contains(rec.Diagnosis, ".well-known/openid-configuration") {
		t.Errorf("the admin's diagnosis lacks the fetch error: %s", rec.Diagnosis)
	}
}

// TestUnknownRequestsAreCountedNotStored: requests for tenants or client
// ids that do not exist do not grow the audit log at the rate a stranger
// sends them, and caller-supplied fields are stored clipped.
func TestUnknownRequestsAreCountedNotStored(t *testing.T) {
	env := wiftest.Start(t)
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 1)
	huge := strings.Repeat("x", 60<<10)
	valid := env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour)
	for i := 0; i < 300; i++ {
		post(t, env, "", wiftest.ExchangeForm(huge[:1000+i], valid, "api://provider-api/.default"))
	}
	for i := 0; i < 50; i++ {
		env.Post(t, "/"+directory.NewID()+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, "a.b.c", "api://provider-api/.default"))
	}
	// A refusal for a real client with huge claims is stored clipped.
	now := time.Now()
	tok := env.Issuer.MintClaims(t, map[string]any{"iss": env.Issuer.URL, "sub": strings.Repeat("s", 8000), "aud": directory.DefaultAudience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	post(t, env, "clip-me", wiftest.ExchangeForm(mi.ClientID, tok, "api://provider-api/.default"))
	if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := env.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	unknown, largest := 0, 0
	for _, r := range page.Records {
		size := 0
		for _, f := range []string{r.ID, r.TenantID, r.ClientID, r.CredentialName, r.GrantType, r.Resource, r.Issuer, r.Subject, r.JTIHash,
			r.Result, r.Error, r.CorrelationID, r.RemoteAddr, r.Reason, r.Diagnosis} {
			size += len(f)
		}
		largest = max(largest, size)
		if r.ErrorCode == sts.CodeClientNotFound {
			unknown++
		}
		if r.ErrorCode == sts.CodeTenantNotFound {
			t.Fatalf("a request for an unknown tenant was stored: %+v", r)
		}
		for _, f := range []string{r.ClientID, r.Issuer, r.Subject, r.Resource, r.Reason} {
			if len(f) > 256 {
				t.Fatalf("a stored field is %d bytes: %.80q…", len(f), f)
			}
		}
		if len(r.Diagnosis) > 4<<10 {
			t.Fatalf("a diagnosis is %d bytes", len(r.Diagnosis))
		}
	}
	// The README's bound: a stored refusal is at most 6 KiB, whatever the
	// caller sent (64 KiB bodies here).
	if largest > 6<<10 {
		t.Errorf("the largest stored refusal is %d bytes, over the 6 KiB bound", largest)
	}
	t.Logf("largest stored refusal: %d bytes", largest)
	// At most the sampler's burst (60) of 300 unknown-client refusals.
	if unknown == 0 || unknown > 61 {
		t.Errorf("%d unknown-client refusals stored of 300", unknown)
	}
	if rec := auditRecord(t, env, "clip-me"); !strings.HasSuffix(rec.Subject, "…(truncated)") {
		t.Errorf("subject stored as %q", rec.Subject)
	}
}

func post(t *testing.T, env *wiftest.Env, correlationID string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", env.URL+"/"+env.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if correlationID != "" {
		req.Header.Set("client-request-id", correlationID)
	}
	resp, err := env.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func auditRecord(t *testing.T, env *wiftest.Env, correlationID string) store.AuditRecord {
	t.Helper()
	if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := env.Store.ListAudit(context.Background(), store.AuditFilter{CorrelationID: correlationID})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("audit record of %s: %+v %v", correlationID, page.Records, err)
	}
	return page.Records[0]
}

func decodePayload(t *testing.T, tok string) []byte {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.UnsafePayloadWithoutVerification()
}
