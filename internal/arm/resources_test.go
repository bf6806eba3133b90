package arm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/wiftest"
)

const corrID = "6e1b8d2c-0000-4000-8000-000000000009"

// do sends one Resource Manager request as a tool would.
func do(t *testing.T, env *wiftest.Env, method, path, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	url := path
	if !strings.HasPrefix(path, "https://") {
		url = env.URL + path
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("x-ms-correlation-request-id", corrID)
	resp, err := env.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// armError is ARM's error document.
type armError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func wantError(t *testing.T, what string, r reply, status int, code, message string) {
	t.Helper()
	var e armError
	if r.status != status || json.Unmarshal([]byte(r.body), &e) != nil || e.Error.Code != code || (message != "" && e.Error.Message != message) {
		t.Fatalf("%s: got %d %s; want %d %s %q", what, r.status, r.body, status, code, message)
	}
	if !directory.IsGUID(r.header.Get("x-ms-request-id")) || r.header.Get("x-ms-correlation-request-id") != corrID {
		t.Fatalf("%s: ARM's request headers missing: %v", what, r.header)
	}
}

func decode[T any](t *testing.T, what string, r reply, status int) T {
	t.Helper()
	var v T
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, r.body)
	}
	if !directory.IsGUID(r.header.Get("x-ms-request-id")) || r.header.Get("x-ms-correlation-request-id") != corrID {
		t.Fatalf("%s: ARM's request headers missing: %v", what, r.header)
	}
	return v
}

type identity struct {
	ID, Name, Type, Location string
	Tags                     map[string]string
	Properties               struct{ TenantID, PrincipalID, ClientID string }
}

type credential struct {
	ID, Name, Type string
	Properties     struct {
		Issuer, Subject string
		Audiences       []string
	}
}

// armEnv is a token service with an admin identity holding
// Directory.ReadWrite.All, a contributor and a workload without a role.
type armEnv struct {
	*wiftest.Env
	adminApp                              directory.Application
	adminID                               directory.ManagedIdentity
	adminTok, contributorTok, workloadTok string
	contributorID                         string
}

func startARM(t *testing.T) armEnv {
	env := wiftest.Start(t)
	app, err := admin.EnsureAdminApp(context.Background(), env.Store, env.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
	a := armEnv{Env: env, adminApp: app}
	a.adminID = env.CreateManagedIdentity(t, "platform-admin")
	env.Assign(t, a.adminID.PrincipalID, app.AppID, admin.RoleReadWriteAll)
	contributor := env.CreateManagedIdentity(t, "contributor")
	env.Assign(t, contributor.PrincipalID, app.AppID, admin.RoleManagedIdentityContributor)
	workload := env.CreateManagedIdentity(t, "workload")
	a.adminTok = env.Token(t, a.adminID.ClientID, admin.AdminResource+"/.default")
	// The contributor's token is asked for as az asks Graph's: the
	// server's own URL, which names the admin API.
	a.contributorTok = env.Token(t, contributor.ClientID, env.URL+"//.default")
	a.contributorID = contributor.ClientID
	a.workloadTok = env.Token(t, workload.ClientID, admin.AdminResource+"/.default")
	return a
}

const sub = "00000000-0000-0000-0000-000000000001"

func TestResourceManagerIdentitiesAndCredentials(t *testing.T) {
	e := startARM(t)
	env, tok := e.Env, e.adminTok
	grp := "/subscriptions/" + sub + "/resourceGroups/mi-test-group"
	mi := grp + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/managed-identity-test"
	const rgv, miv = "?api-version=2021-04-01", "?api-version=2022-01-31-preview"

	// Resource groups: created, read (any case of the path, as ARM), and
	// checked for existence.
	g := decode[map[string]any](t, "create group", do(t, env, "PUT", grp+rgv, tok, map[string]any{"location": "westeurope", "tags": map[string]string{"team": "platform"}}), 201)
	if g["id"] != grp || g["name"] != "mi-test-group" || g["type"] != "Microsoft.Resources/resourceGroups" || g["location"] != "westeurope" ||
		g["properties"].(map[string]any)["provisioningState"] != "Succeeded" || g["tags"].(map[string]any)["team"] != "platform" {
		t.Fatalf("created group = %v", g)
	}
	if _, ok := g["etag"]; ok {
		t.Fatalf("ARM's envelope has no etag: %v", g)
	}
	r := do(t, env, "PUT", grp+rgv, tok, map[string]any{"location": "westeurope"})
	decode[map[string]any](t, "update group", r, 200)
	if r.header.Get("ETag") != `"2"` {
		t.Fatalf("ETag header %q", r.header.Get("ETag"))
	}
	decode[map[string]any](t, "get group", do(t, env, "GET", strings.ToLower(grp)+rgv, tok, nil), 200)
	if r := do(t, env, "HEAD", grp+rgv, tok, nil); r.status != 204 {
		t.Fatalf("HEAD group: %d", r.status)
	}
	if r := do(t, env, "HEAD", "/subscriptions/"+sub+"/resourcegroups/nope"+rgv, tok, nil); r.status != 404 {
		t.Fatalf("HEAD missing group: %d", r.status)
	}
	wantError(t, "group without location", do(t, env, "PUT", "/subscriptions/"+sub+"/resourcegroups/g2"+rgv, tok, map[string]any{}), 400, "LocationRequired", "The location property is required for this definition.")
	wantError(t, "group moved", do(t, env, "PUT", grp+rgv, tok, map[string]any{"location": "eastus"}), 409, "Conflict", "")
	groups := decode[struct{ Value []map[string]any }](t, "list groups", do(t, env, "GET", "/subscriptions/"+sub+"/resourcegroups"+rgv, tok, nil), 200)
	// "rg" holds the test identities without being stored: it exists.
	if len(groups.Value) != 2 || groups.Value[0]["name"] != "mi-test-group" || groups.Value[1]["name"] != "rg" {
		t.Fatalf("groups = %v", groups.Value)
	}

	// Identities: a missing group is ResourceGroupNotFound, a missing
	// location LocationRequired; properties ARM makes read-only (and
	// newer ones wif has no use for) are ignored.
	wantError(t, "identity in a missing group", do(t, env, "PUT", "/subscriptions/"+sub+"/resourceGroups/nope/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"+miv, tok, map[string]any{"location": "westeurope"}),
		404, "ResourceGroupNotFound", "Resource group 'nope' could not be found.")
	wantError(t, "identity without location", do(t, env, "PUT", mi+miv, tok, map[string]any{"tags": map[string]string{}}), 400, "LocationRequired", "The location property is required for this definition.")
	created := decode[identity](t, "create identity", do(t, env, "PUT", mi+miv, tok, map[string]any{
		"location": "westeurope", "tags": map[string]string{"app": "demo"},
		"properties": map[string]any{"clientId": "11111111-1111-1111-1111-111111111111", "isolationScope": "None"},
	}), 201)
	if created.ID != mi || created.Name != "managed-identity-test" || created.Type != "Microsoft.ManagedIdentity/userAssignedIdentities" || created.Location != "westeurope" ||
		created.Tags["app"] != "demo" || created.Properties.TenantID != env.TenantID || !directory.IsGUID(created.Properties.ClientID) ||
		created.Properties.ClientID == "11111111-1111-1111-1111-111111111111" || !directory.IsGUID(created.Properties.PrincipalID) {
		t.Fatalf("created identity = %+v", created)
	}
	again := decode[identity](t, "put identity again", do(t, env, "PUT", mi+miv, tok, map[string]any{"location": "westeurope"}), 200)
	if again.Properties.ClientID != created.Properties.ClientID || len(again.Tags) != 0 {
		t.Fatalf("PUT again = %+v", again)
	}
	patched := decode[identity](t, "patch tags", do(t, env, "PATCH", mi+"?api-version=2024-11-30", tok, map[string]any{"tags": map[string]string{"env": "prod"}}), 200)
	if patched.Tags["env"] != "prod" || patched.Location != "westeurope" {
		t.Fatalf("patched = %+v", patched)
	}
	got := decode[identity](t, "get identity", do(t, env, "GET", strings.Replace(mi, "userAssignedIdentities", "userassignedidentities", 1)+"?api-version=2023-01-31", tok, nil), 200)
	if got.Properties.ClientID != created.Properties.ClientID {
		t.Fatalf("got = %+v", got)
	}
	wantError(t, "missing identity", do(t, env, "GET", grp+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope"+miv, tok, nil),
		404, "ResourceNotFound", "The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/nope' under resource group 'mi-test-group' was not found.")

	// API versions: required, and only those the tools send.
	wantError(t, "no api-version", do(t, env, "GET", mi, tok, nil), 400, "MissingApiVersionParameter", "")
	wantError(t, "unknown api-version", do(t, env, "GET", mi+"?api-version=2020-01-01", tok, nil), 400, "InvalidApiVersionParameter",
		"The api-version '2020-01-01' is invalid. The supported versions are '2025-01-31-preview,2024-11-30,2023-07-31-preview,2023-01-31,2022-01-31-preview,2021-09-30-preview,2018-11-30,2015-08-31-preview'.")
	wantError(t, "credentials before 2022", do(t, env, "GET", mi+"/federatedIdentityCredentials?api-version=2018-11-30", tok, nil), 400, "InvalidApiVersionParameter", "")

	// Federated credentials, as seed 002 creates one.
	cred := mi + "/federatedIdentityCredentials/managed-identity-test-fed-cred"
	fc := decode[credential](t, "create credential", do(t, env, "PUT", cred+miv, tok, map[string]any{"properties": map[string]any{
		"issuer": "https://oidc.prod-aks.azure.com/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/", "subject": "system:serviceaccount:platform:managed-identity-test",
		"audiences": []string{"api://AzureADTokenExchange"}}}), 201)
	if fc.ID != cred || fc.Name != "managed-identity-test-fed-cred" || fc.Type != "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials" ||
		fc.Properties.Subject != "system:serviceaccount:platform:managed-identity-test" || len(fc.Properties.Audiences) != 1 {
		t.Fatalf("created credential = %+v", fc)
	}
	// A flexible credential, where wif allows claimsMatchingExpression.
	flex := decode[map[string]any](t, "flexible credential", do(t, env, "PUT", mi+"/federatedIdentityCredentials/github-envs?api-version=2024-11-30", tok, map[string]any{"properties": map[string]any{
		"issuer": "https://token.actions.githubusercontent.com", "audiences": []string{"api://AzureADTokenExchange"},
		"claimsMatchingExpression": map[string]any{"value": "claims['sub'] matches 'repo:contoso/*:environment:prod'", "languageVersion": 1}}}), 201)
	if ce, _ := flex["properties"].(map[string]any)["claimsMatchingExpression"].(map[string]any); ce["value"] != "claims['sub'] matches 'repo:contoso/*:environment:prod'" || ce["languageVersion"] != 1.0 {
		t.Fatalf("flexible credential = %v", flex)
	}
	if r := do(t, env, "DELETE", mi+"/federatedIdentityCredentials/github-envs?api-version=2024-11-30", tok, nil); r.status != 200 {
		t.Fatalf("delete flexible credential: %d", r.status)
	}
	wantError(t, "credential without properties", do(t, env, "PUT", mi+"/federatedIdentityCredentials/c2"+miv, tok, map[string]any{}), 400, "InvalidRequestContent", "")
	wantError(t, "invalid issuer", do(t, env, "PUT", mi+"/federatedIdentityCredentials/c2"+miv, tok, map[string]any{"properties": map[string]any{"issuer": "http://plain", "subject": "s"}}), 400, "BadRequest", "")
	wantError(t, "missing credential", do(t, env, "GET", mi+"/federatedIdentityCredentials/nope"+miv, tok, nil), 404, "ResourceNotFound",
		"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/managed-identity-test/federatedIdentityCredentials/nope' under resource group 'mi-test-group' was not found.")
	wantError(t, "credential of a missing identity", do(t, env, "GET", grp+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope/federatedIdentityCredentials/x"+miv, tok, nil), 404, "ResourceNotFound",
		"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/nope' under resource group 'mi-test-group' was not found.")
	for i := 2; i <= 20; i++ {
		decode[credential](t, "credential", do(t, env, "PUT", fmt.Sprintf("%s/federatedIdentityCredentials/c-%02d%s", mi, i, miv), tok, map[string]any{"properties": map[string]any{
			"issuer": "https://issuer.example", "subject": fmt.Sprint("s-", i), "audiences": []string{"api://AzureADTokenExchange"}}}), 201)
	}
	wantError(t, "the 21st credential", do(t, env, "PUT", mi+"/federatedIdentityCredentials/c-21"+miv, tok, map[string]any{"properties": map[string]any{
		"issuer": "https://issuer.example", "subject": "s-21"}}), 409, "QuotaExceeded",
		"A maximum of 20 federated identity credentials can be added to a user-assigned managed identity; 'managed-identity-test' already has that many.")

	// Lists page with nextLink on this surface, api-version kept.
	var names []string
	next := mi + "/federatedIdentityCredentials" + miv + "&$top=8"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("too many pages")
		}
		page := decode[struct {
			Value    []credential
			NextLink string
		}](t, "list credentials", do(t, env, "GET", next, tok, nil), 200)
		for _, c := range page.Value {
			names = append(names, c.Name)
		}
		if page.NextLink != "" && !strings.HasPrefix(page.NextLink, env.URL+mi+"/federatedIdentityCredentials?") {
			t.Fatalf("nextLink %q", page.NextLink)
		}
		next = page.NextLink
	}
	if len(names) != 20 || names[0] != "c-02" || names[19] != "managed-identity-test-fed-cred" {
		t.Fatalf("listed %v", names)
	}
	bySub := decode[struct{ Value []identity }](t, "list by subscription", do(t, env, "GET", "/subscriptions/"+sub+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities"+miv, tok, nil), 200)
	if len(bySub.Value) != 4 { // the three of startARM and this one
		t.Fatalf("by subscription: %+v", bySub.Value)
	}
	// Identity lists page by keyset: the same four, one a page.
	var paged []string
	for next, pages := "/subscriptions/"+sub+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities"+miv+"&$top=1", 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("identity pages do not end")
		}
		p := decode[struct {
			Value    []identity
			NextLink string
		}](t, "identity page", do(t, env, "GET", next, tok, nil), 200)
		for _, v := range p.Value {
			paged = append(paged, v.ID)
		}
		next = p.NextLink
	}
	if len(paged) != 4 || paged[0] != bySub.Value[0].ID || paged[3] != bySub.Value[3].ID {
		t.Fatalf("paged %v", paged)
	}
	wantError(t, "a forged skip token", do(t, env, "GET", "/subscriptions/"+sub+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities"+miv+"&$skipToken=MTA", tok, nil), 400, "InvalidQueryParameterValue", "")
	res := decode[struct{ Value []identity }](t, "the group's resources", do(t, env, "GET", grp+"/resources"+rgv, tok, nil), 200)
	if len(res.Value) != 1 || res.Value[0].ID != mi || res.Value[0].Type != "Microsoft.ManagedIdentity/userAssignedIdentities" || res.Value[0].Location != "westeurope" {
		t.Fatalf("group resources: %+v", res.Value)
	}
	byGroup := decode[struct{ Value []identity }](t, "list by group", do(t, env, "GET", grp+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities"+miv, tok, nil), 200)
	if len(byGroup.Value) != 1 || byGroup.Value[0].ID != mi {
		t.Fatalf("by group: %+v", byGroup.Value)
	}

	// Deletes: 200 when deleted, 204 when there was nothing.
	if r := do(t, env, "DELETE", cred+miv, tok, nil); r.status != 200 {
		t.Fatalf("delete credential: %d %s", r.status, r.body)
	}
	if r := do(t, env, "DELETE", cred+miv, tok, nil); r.status != 204 {
		t.Fatalf("delete credential again: %d %s", r.status, r.body)
	}
	if r := do(t, env, "DELETE", mi+miv, tok, nil); r.status != 200 {
		t.Fatalf("delete identity: %d %s", r.status, r.body)
	}
	if r := do(t, env, "DELETE", mi+miv, tok, nil); r.status != 204 {
		t.Fatalf("delete identity again: %d %s", r.status, r.body)
	}
	// Deleting a group deletes what it holds.
	decode[identity](t, "identity to go with its group", do(t, env, "PUT", mi+miv, tok, map[string]any{"location": "westeurope"}), 201)
	if r := do(t, env, "DELETE", grp+rgv, tok, nil); r.status != 200 {
		t.Fatalf("delete group: %d %s", r.status, r.body)
	}
	wantError(t, "deleted group", do(t, env, "GET", grp+rgv, tok, nil), 404, "ResourceGroupNotFound", "Resource group 'mi-test-group' could not be found.")
	if _, err := env.Store.GetManagedIdentity(context.Background(), env.TenantID, storeRef(mi)); err == nil {
		t.Fatal("the group's identity outlived it")
	}
}

func TestResourceManagerRefusals(t *testing.T) {
	e := startARM(t)
	env := e.Env
	const miv = "?api-version=2023-01-31"
	adminMI := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/platform-admin"
	newMI := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/new-one"

	// No token, or a bad one: 401 with ARM's challenge.
	for _, tok := range []string{"", "not.a.token"} {
		r := do(t, env, "GET", adminMI+miv, tok, nil)
		wantError(t, "token "+tok, r, 401, "AuthenticationFailed", "")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer authorization_uri="`+env.URL+`/common/oauth2/authorize"`) {
			t.Fatalf("challenge: %v", r.header)
		}
	}
	// A workload without an admin role may do nothing.
	wantError(t, "workload", do(t, env, "PUT", newMI+miv, e.workloadTok, map[string]any{"location": "westeurope"}), 403, "AuthorizationFailed", "")
	// A contributor manages identities in its tenant ...
	decode[identity](t, "contributor creates", do(t, env, "PUT", newMI+miv, e.contributorTok, map[string]any{"location": "westeurope"}), 201)
	// ... but not one that holds more than it does: the admin API's
	// escalation rule, on this surface too.
	wantError(t, "contributor edits the admin identity", do(t, env, "PATCH", adminMI+miv, e.contributorTok, map[string]any{"tags": map[string]string{"x": "y"}}), 403, "AuthorizationFailed", "")
	wantError(t, "contributor adds a credential to the admin identity", do(t, env, "PUT", adminMI+"/federatedIdentityCredentials/mine"+miv, e.contributorTok,
		map[string]any{"properties": map[string]any{"issuer": "https://attacker.example", "subject": "me", "audiences": []string{"api://AzureADTokenExchange"}}}), 403, "AuthorizationFailed", "")
	wantError(t, "contributor deletes the admin identity", do(t, env, "DELETE", adminMI+miv, e.contributorTok, nil), 403, "AuthorizationFailed", "")

	// Every write of an authorized caller is in the tenant's audit log,
	// done or refused, with who made it.
	if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := env.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: env.TenantID, ClientID: e.contributorID})
	if err != nil {
		t.Fatal(err)
	}
	var done, refused int
	for _, rec := range page.Records {
		if rec.GrantType != store.AuditAdminChange || rec.CorrelationID != corrID {
			continue
		}
		switch {
		case rec.Result == store.AuditSuccess && rec.ErrorCode == 201 && strings.HasSuffix(rec.Resource, "/userAssignedIdentities/new-one"):
			done++
		case rec.Result == store.AuditFailure && rec.ErrorCode == 403 && strings.HasSuffix(rec.Resource, "/userAssignedIdentities/platform-admin"):
			refused++
		}
	}
	if done != 1 || refused != 2 { // the PATCH and the DELETE (the credential's PUT is refused under the identity's path)
		t.Fatalf("audited %d done, %d refused changes of the contributor: %+v", done, refused, page.Records)
	}

	// Malformed requests: precise 4xx.
	wantError(t, "bad subscription", do(t, env, "GET", "/subscriptions/not-a-guid/resourceGroups/rg"+"?api-version=2021-04-01", e.adminTok, nil), 400, "InvalidSubscriptionId", "")
	wantError(t, "unknown type", do(t, env, "GET", "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"+miv, e.adminTok, nil), 404, "InvalidResourceType", "")
	wantError(t, "bad JSON", doRaw(t, env, "PUT", newMI+miv, e.adminTok, "{"), 400, "InvalidRequestContent", "")
	// Tags that are not strings are refused, not dropped (a PUT would
	// otherwise clear the identity's tags).
	wantError(t, "tags of numbers", doRaw(t, env, "PATCH", newMI+miv, e.adminTok, `{"tags":{"team":1}}`), 400, "InvalidRequestContent", "")
	if m, err := env.Store.GetManagedIdentity(context.Background(), env.TenantID, storeRef(newMI)); err != nil || m.Name != "new-one" {
		t.Fatalf("after refused tags: %+v %v", m, err)
	}
	// A location is bounded where it is stored.
	wantError(t, "a long location", do(t, env, "PUT", "/subscriptions/"+sub+"/resourceGroups/rg?api-version=2021-04-01", e.adminTok,
		map[string]any{"location": strings.Repeat("x", 5000)}), 400, "BadRequest", "")
	wantError(t, "bad identity name", do(t, env, "PUT", "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a.b"+miv, e.adminTok, map[string]any{"location": "x"}), 400, "BadRequest", "")
	wantError(t, "POST", do(t, env, "POST", newMI+miv, e.adminTok, map[string]any{}), 405, "MethodNotAllowed", "")
	wantError(t, "a web page's write", doRaw(t, env, "PUT", newMI+miv, e.adminTok, `{"location":"x"}`, "Origin", "https://evil.example"), 403, "AuthorizationFailed", "")

	// Subscriptions: the caller's, by id.
	s := decode[map[string]any](t, "subscription", do(t, env, "GET", "/subscriptions/"+sub+"?api-version=2022-12-01", e.adminTok, nil), 200)
	if s["subscriptionId"] != sub || s["tenantId"] != env.TenantID || s["state"] != "Enabled" {
		t.Fatalf("subscription = %v", s)
	}
	wantError(t, "unknown subscription", do(t, env, "GET", "/subscriptions/00000000-0000-0000-0000-0000000000ff?api-version=2022-12-01", e.adminTok, nil), 404, "SubscriptionNotFound", "")
	p := decode[map[string]any](t, "provider", do(t, env, "GET", "/subscriptions/"+sub+"/providers/Microsoft.ManagedIdentity"+miv, e.adminTok, nil), 200)
	if p["registrationState"] != "Registered" {
		t.Fatalf("provider = %v", p)
	}
}

// doRaw sends a raw body with extra header pairs.
func doRaw(t *testing.T, env *wiftest.Env, method, path, token, body string, headers ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, env.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("x-ms-correlation-request-id", corrID)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := env.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func storeRef(path string) store.IdentityRef {
	p := strings.Split(path, "/")
	return store.IdentityRef{SubscriptionID: p[2], ResourceGroup: p[4], Name: p[8]}
}
