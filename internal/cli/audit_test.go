package cli

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestAuditExplain: a refused exchange, as the admin sees it with
// `wif audit list --result failure` and `wif audit explain ID` (golden
// files; times, ports and generated ids replaced).
func TestAuditExplain(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	ctx := context.Background()
	mi, err := e.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: e.Tenant, SubscriptionID: "00000000-0000-0000-0000-000000000001",
		ResourceGroup: "rg", Name: "payments", ClientID: "11111111-1111-4111-8111-111111111111", PrincipalID: directory.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, sub string }{{"k8s-prod", "system:serviceaccount:prod:payments"}, {"github-main", "repo:contoso/payments:ref:refs/heads/main"}} {
		if _, err := e.Store.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: e.Tenant, ParentKind: directory.ParentManagedIdentity,
			ParentClientID: mi.ClientID, ID: directory.NewID(), Name: c.name, Issuer: e.Issuer.URL, Subject: c.sub, Audiences: []string{directory.DefaultAudience}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Store.CreateApplication(ctx, directory.Application{TenantID: e.Tenant, AppID: directory.NewID(), ObjectID: directory.NewID(),
		ServicePrincipalID: directory.NewID(), DisplayName: "api", IdentifierURIs: []string{"api://provider-api"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	// A stranger's forged assertion: the right issuer and kid, another
	// namespace, the attacker's signature.
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	forged := wiftest.SignRS256(t, attacker, map[string]any{"iss": e.Issuer.URL, "sub": "system:serviceaccount:dev:payments",
		"aud": directory.DefaultAudience, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()},
		map[jose.HeaderKey]any{"kid": wiftest.KeyID(&e.Issuer.Key().PublicKey)})
	const corr = "6e1b8d2c-0000-4000-8000-000000000001"
	req, _ := http.NewRequest("POST", e.URL+"/"+e.Tenant+"/oauth2/v2.0/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {mi.ClientID}, "scope": {"api://provider-api/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {forged}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", corr)
	resp, err := httpClientFor(t, e).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("exchange: %d", resp.StatusCode)
	}
	if err := e.Server.STS.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	norm := func(s string) string {
		s = strings.ReplaceAll(s, e.Issuer.URL, "https://issuer.test")
		s = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "<time>")
		s = regexp.MustCompile(`kid "[^"]+"`).ReplaceAllString(s, `kid "<kid>"`)
		return s
	}
	out, _ := mustRun(t, env, "audit", "explain", corr)
	golden(t, "audit-explain", norm(out))
	out, _ = mustRun(t, env, "audit", "list", "--result", "failure", "-o", "tsv", "--query", "[].[result,errorCode,reason,correlationId]")
	golden(t, "audit-list-failure", norm(out))
	// The README's command: --client-id filters on audit list.
	out, _ = mustRun(t, env, "audit", "list", "--client-id", mi.ClientID, "--result", "failure", "-o", "tsv", "--query", "[].correlationId")
	if out != corr+"\n" {
		t.Fatalf("audit list --client-id %s: %q", mi.ClientID, out)
	}
	out, _ = mustRun(t, env, "audit", "list", "--client-id", "22222222-2222-4222-8222-222222222222", "-o", "json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("audit list --client-id of another client: %q", out)
	}
	if _, _, err := run(t, env, "", "audit", "explain", "no-such-id"); err == nil || !strings.Contains(err.Error(), `has correlation id "no-such-id"`) {
		t.Fatalf("explain of an unknown id: %v", err)
	}
}

func httpClientFor(t *testing.T, e *adminEnv) *http.Client {
	t.Helper()
	f := &adminFlags{caFile: e.CAFile}
	c, err := f.httpClient(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
