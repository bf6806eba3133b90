package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
)

// TestAuditStale: credentials made two months ago that nothing used are
// listed by `wif audit stale`, the one a real exchange just matched is not
// (and `federated-credential list` prints when it was used), a credential
// made today is counted as too new, and of the failing issuers only the
// one this tenant trusts and that has failed for a day is shown.
func TestAuditStale(t *testing.T) {
	var offset atomic.Int64 // how far the store's clock is behind now
	st := memory.New(memory.WithClock(func() time.Time { return time.Now().Add(-time.Duration(offset.Load())) }))
	e := startAdminEnvOn(t, true, st)
	env := e.env()
	ctx := context.Background()

	offset.Store(int64(60 * 24 * time.Hour))
	const client = "11111111-1111-4111-8111-111111111111"
	if _, err := st.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: e.Tenant, SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup: "rg", Name: "payments", ClientID: client, PrincipalID: directory.NewID()}); err != nil {
		t.Fatal(err)
	}
	const gone = "https://gone.example.test/issuer"
	cred := func(parent directory.ParentKind, clientID, name, issuer, subject string) {
		t.Helper()
		if _, err := st.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: e.Tenant, ParentKind: parent, ParentClientID: clientID,
			ID: directory.NewID(), Name: name, Issuer: issuer, Subject: subject, Audiences: []string{directory.DefaultAudience}}); err != nil {
			t.Fatal(err)
		}
	}
	cred(directory.ParentManagedIdentity, client, "k8s-prod", e.Issuer.URL, "system:serviceaccount:prod:payments")
	cred(directory.ParentManagedIdentity, client, "old-ci", gone, "repo:contoso/payments:environment:prod")
	if _, err := st.CreateApplication(ctx, directory.Application{TenantID: e.Tenant, AppID: "33333333-3333-4333-8333-333333333333", ObjectID: directory.NewID(),
		ServicePrincipalID: directory.NewID(), DisplayName: "ledger", IdentifierURIs: []string{"api://ledger"}}); err != nil {
		t.Fatal(err)
	}
	cred(directory.ParentApplication, "33333333-3333-4333-8333-333333333333", "gha-main", e.Issuer.URL, "repo:contoso/ledger:ref:refs/heads/main")
	// Another tenant's credential and failing issuer: not this admin's.
	other := "44444444-4444-4444-8444-444444444444"
	if _, err := st.CreateTenant(ctx, directory.Tenant{ID: other, DisplayName: "Fabrikam"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: other, SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup: "rg", Name: "secret-project", ClientID: "55555555-5555-4555-8555-555555555555", PrincipalID: directory.NewID()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: other, ParentKind: directory.ParentManagedIdentity,
		ParentClientID: "55555555-5555-4555-8555-555555555555", ID: directory.NewID(), Name: "fabrikam-cred", Issuer: "https://fabrikam-only.example.test",
		Subject: "s", Audiences: []string{directory.DefaultAudience}}); err != nil {
		t.Fatal(err)
	}
	offset.Store(0)
	cred(directory.ParentManagedIdentity, client, "made-today", e.Issuer.URL, "system:serviceaccount:staging:payments")
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}

	// A real exchange matches k8s-prod; the token service records it.
	req, _ := http.NewRequest("POST", e.URL+"/"+e.Tenant+"/oauth2/v2.0/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {client}, "scope": {"api://ledger/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {e.Issuer.Mint(t, "system:serviceaccount:prod:payments", directory.DefaultAudience, time.Hour)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := httpClientFor(t, e).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("exchange: %d", resp.StatusCode)
	}
	if err := e.Server.STS.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	// Issuer history cannot be waited for (a day): it is written as the
	// token service's flusher writes it. gone.example.test has failed for
	// three days; the test issuer failed a minute ago only; Fabrikam's
	// issuer is failing too but belongs to another tenant.
	now := time.Now().UTC().Truncate(time.Second)
	if err := st.RecordUsage(ctx, nil, []store.IssuerStatus{
		{Issuer: gone, LastSuccess: now.Add(-73 * time.Hour), LastFailure: now.Add(-time.Minute), FailingSince: now.Add(-72 * time.Hour),
			LastError: "fetch discovery document: dial tcp: lookup gone.example.test: no such host"},
		{Issuer: e.Issuer.URL, LastSuccess: now.Add(-2 * time.Minute), LastFailure: now.Add(-time.Minute), FailingSince: now.Add(-time.Minute), LastError: "timeout"},
		{Issuer: "https://fabrikam-only.example.test", LastFailure: now, FailingSince: now.Add(-96 * time.Hour), LastError: "refused"},
	}); err != nil {
		t.Fatal(err)
	}

	norm := func(s string) string {
		s = strings.ReplaceAll(s, e.Issuer.URL, "https://issuer.test")
		return regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "YYYY-MM-DDThh:mm:ssZ")
	}
	out, _ := mustRun(t, env, "audit", "stale")
	golden(t, "audit-stale", norm(out))
	if strings.Contains(out, "fabrikam") || strings.Contains(out, "secret-project") {
		t.Fatalf("another tenant's issuer or identity leaked:\n%s", out)
	}
	js, _ := mustRun(t, env, "audit", "stale", "--days", "30", "-o", "json")
	var rep admin.StaleReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range rep.Credentials {
		names = append(names, c.Name)
		if c.LastUsed != nil {
			t.Errorf("%s: last used %v", c.Name, c.LastUsed)
		}
	}
	if strings.Join(names, ",") != "gha-main,old-ci" || rep.Young != 1 || rep.Days != 30 ||
		len(rep.Issuers) != 1 || rep.Issuers[0].Issuer != gone || rep.Issuers[0].Credentials != 1 || !rep.Issuers[0].FailingSince.Equal(now.Add(-72*time.Hour)) {
		t.Fatalf("report: %s", js)
	}
	// A window of a day: made-today is still young, the rest unused.
	js, _ = mustRun(t, env, "audit", "stale", "--days", "1", "-o", "json", "--query", "credentials[].name")
	if strings.Join(strings.Fields(js), "") != `["gha-main","old-ci"]` {
		t.Fatalf("--days 1: %s", js)
	}

	out, _ = mustRun(t, env, "identity", "federated-credential", "list", "--identity-name", "payments", "-g", "rg")
	golden(t, "fic-list-last-used", norm(out))
	js, _ = mustRun(t, env, "identity", "federated-credential", "show", "-n", "k8s-prod", "--identity-name", "payments", "-g", "rg", "--query", "lastUsedDateTime", "-o", "tsv")
	if used, err := time.Parse(time.RFC3339, strings.TrimSpace(js)); err != nil || time.Since(used) > time.Minute {
		t.Fatalf("show lastUsedDateTime %q: %v", js, err)
	}
	for _, bad := range []string{"0", "367"} {
		if _, _, err := run(t, env, "", "audit", "stale", "--days", bad); err == nil || !strings.Contains(err.Error(), "--days must be from 1 to 366") {
			t.Errorf("--days %s: %v", bad, err)
		}
	}
	// The API refuses a bad window itself too.
	r, _ := http.NewRequest("GET", e.URL+admin.TenantPath(e.Tenant)+"/staleCredentials?days=abc", nil)
	resp, err = httpClientFor(t, e).Do(r)
	if err != nil {
		t.Fatal(err)
	}
	var eb admin.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != 400 || eb.Error.Code != admin.CodeInvalidQueryOptions || eb.Error.Message != `days must be an integer from 1 to 366, not "abc"` {
		t.Fatalf("days=abc: %d %+v", resp.StatusCode, eb)
	}
}
