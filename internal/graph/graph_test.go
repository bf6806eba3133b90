package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

const clientRequestID = "0f4c2c55-1111-4000-8000-00000000abcd"

type reply struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request shaped as msgraph-sdk-go and az send it: a bearer
// token, client-request-id, JSON bodies.
func call(t *testing.T, env *wiftest.Env, method, path, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = env.URL + path
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", clientRequestID)
	req.Header.Set("SdkVersion", "graph-go/1.0.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := env.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func want[T any](t *testing.T, what string, r reply, status int) T {
	t.Helper()
	var v T
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	if r.header.Get("client-request-id") != clientRequestID || !directory.IsGUID(r.header.Get("request-id")) {
		t.Fatalf("%s: Graph's request headers missing: %v", what, r.header)
	}
	if len(r.body) > 0 {
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatalf("%s: %v: %s", what, err, r.body)
		}
	}
	return v
}

func wantError(t *testing.T, what string, r reply, status int, code string) string {
	t.Helper()
	var e struct {
		Error struct {
			Code, Message string
			InnerError    map[string]string
		}
	}
	if r.status != status || json.Unmarshal(r.body, &e) != nil || e.Error.Code != code || e.Error.InnerError["client-request-id"] != clientRequestID ||
		!directory.IsGUID(e.Error.InnerError["request-id"]) || e.Error.InnerError["date"] == "" {
		t.Fatalf("%s: got %d %s; want %d %s in Graph's envelope", what, r.status, r.body, status, code)
	}
	return e.Error.Message
}

type list struct {
	Context  string           `json:"@odata.context"`
	Value    []map[string]any `json:"value"`
	NextLink string           `json:"@odata.nextLink"`
}

func filter(expr string) string { return "?$filter=" + url.QueryEscape(expr) }

func TestGraphApplicationsCredentialsAndPrincipals(t *testing.T) {
	env := wiftest.Start(t)
	adminApp, err := admin.EnsureAdminApp(context.Background(), env.Store, env.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
	platform := env.CreateManagedIdentity(t, "platform-admin")
	env.Assign(t, platform.PrincipalID, adminApp.AppID, admin.RoleReadWriteAll)
	contributor := env.CreateManagedIdentity(t, "contributor")
	env.Assign(t, contributor.PrincipalID, adminApp.AppID, admin.RoleManagedIdentityContributor)
	workload := env.CreateManagedIdentity(t, "managed-identity-test")
	// az asks Graph's token for the cloud's microsoftGraphResourceId, the
	// server's URL with a trailing '/': scope URL//.default.
	tok := env.Token(t, platform.ClientID, env.URL+"//.default")
	contribTok := env.Token(t, contributor.ClientID, env.URL+"/.default")
	workloadTok := env.Token(t, workload.ClientID, admin.AdminResource+"/.default")

	// Applications: created with properties wif ignores, found by
	// $filter as az and Terraform look them up.
	app := want[map[string]any](t, "create application", call(t, env, "POST", "/v1.0/applications", tok, map[string]any{
		"displayName": "provider-api", "identifierUris": []string{"api://provider-api"}, "signInAudience": "AzureADMyOrg",
		"web": map[string]any{"redirectUris": []string{}}, "api": map[string]any{"requestedAccessTokenVersion": 2},
	}), 201)
	id, appID := app["id"].(string), app["appId"].(string)
	if !directory.IsGUID(id) || !directory.IsGUID(appID) || app["@odata.context"] != env.URL+"/v1.0/$metadata#applications/$entity" ||
		app["api"].(map[string]any)["requestedAccessTokenVersion"] != 2.0 {
		t.Fatalf("created application = %v", app)
	}
	for _, f := range []string{"displayName eq 'provider-api'", "startswith(displayName,'PROVIDER')", "appId eq '" + appID + "'",
		"identifierUris/any(s:s eq 'api://provider-api')", "(displayName eq 'nope' or id eq '" + id + "') and not (displayName eq 'x')",
		"displayName in ('a', 'provider-api')"} {
		l := want[list](t, f, call(t, env, "GET", "/v1.0/applications"+filter(f), tok, nil), 200)
		if len(l.Value) != 1 || l.Value[0]["id"] != id || l.Context != env.URL+"/v1.0/$metadata#applications" {
			t.Fatalf("%s: %+v", f, l)
		}
	}
	if l := want[list](t, "no match", call(t, env, "GET", "/v1.0/applications"+filter("startswith(displayName,'zzz')"), tok, nil), 200); len(l.Value) != 0 {
		t.Fatalf("no match: %+v", l)
	}
	for _, f := range []string{"displayName eq provider-api", "secret eq 'x'", "startswith(displayName,'x'", "displayName gt 'a'"} {
		wantError(t, f, call(t, env, "GET", "/v1.0/applications"+filter(f), tok, nil), 400, "Request_UnsupportedQuery")
	}
	want[map[string]any](t, "get by id", call(t, env, "GET", "/v1.0/applications/"+id, tok, nil), 200)
	byAppID := want[map[string]any](t, "get by appId", call(t, env, "GET", "/v1.0/applications(appId='"+appID+"')", tok, nil), 200)
	if byAppID["id"] != id {
		t.Fatalf("by appId: %v", byAppID)
	}
	msg := wantError(t, "missing application", call(t, env, "GET", "/v1.0/applications/"+directory.NewID(), tok, nil), 404, "Request_ResourceNotFound")
	if !strings.HasSuffix(msg, "does not exist or one of its queried reference-property objects are not present.") {
		t.Fatalf("message %q", msg)
	}
	want[struct{}](t, "patch", call(t, env, "PATCH", "/v1.0/applications/"+id, tok, map[string]any{
		"appRoles": []map[string]any{{"value": "Data.Read", "displayName": "Read", "allowedMemberTypes": []string{"Application"}, "isEnabled": true}}}), 204)
	patched := want[map[string]any](t, "patched", call(t, env, "GET", "/v1.0/applications/"+id, tok, nil), 200)
	roles := patched["appRoles"].([]any)
	if len(roles) != 1 || roles[0].(map[string]any)["value"] != "Data.Read" || patched["displayName"] != "provider-api" {
		t.Fatalf("patched = %v", patched)
	}
	roleID := roles[0].(map[string]any)["id"].(string)

	// Its federated credentials, by name or id.
	fic := "/v1.0/applications/" + id + "/federatedIdentityCredentials"
	c := want[map[string]any](t, "create credential", call(t, env, "POST", fic, tok, map[string]any{
		"name": "github-main", "issuer": "https://token.actions.githubusercontent.com", "subject": "repo:org/repo:ref:refs/heads/main",
		"audiences": []string{"api://AzureADTokenExchange"}, "description": "CI"}), 201)
	if c["name"] != "github-main" || !directory.IsGUID(c["id"].(string)) || c["@odata.context"] != env.URL+"/v1.0/$metadata#applications('"+id+"')/federatedIdentityCredentials/$entity" {
		t.Fatalf("credential = %v", c)
	}
	wantError(t, "credential without name", call(t, env, "POST", fic, tok, map[string]any{"issuer": "https://i.example", "subject": "s"}), 400, "Request_BadRequest")
	wantError(t, "credential with a bad issuer", call(t, env, "POST", fic, tok, map[string]any{"name": "bad", "issuer": "http://i.example", "subject": "s"}), 400, "Request_BadRequest")
	want[map[string]any](t, "get credential by id", call(t, env, "GET", fic+"/"+c["id"].(string), tok, nil), 200)
	want[struct{}](t, "patch credential", call(t, env, "PATCH", fic+"/github-main", tok, map[string]any{"subject": "repo:org/repo:environment:prod"}), 204)
	got := want[map[string]any](t, "get credential", call(t, env, "GET", fic+"/github-main", tok, nil), 200)
	if got["subject"] != "repo:org/repo:environment:prod" || got["issuer"] != "https://token.actions.githubusercontent.com" || got["description"] != "CI" {
		t.Fatalf("patched credential = %v", got)
	}
	if l := want[list](t, "list credentials", call(t, env, "GET", fic+filter("subject eq 'repo:org/repo:environment:prod'"), tok, nil), 200); len(l.Value) != 1 {
		t.Fatalf("credentials = %+v", l)
	}

	// Service principals: the application's, and each managed identity's
	// (appId = its client id), as `az ad sp list --display-name` reads.
	sps := want[list](t, "sp by display name", call(t, env, "GET", "/v1.0/servicePrincipals"+filter("startswith(displayName,'managed-identity-test')"), tok, nil), 200)
	if len(sps.Value) != 1 || sps.Value[0]["appId"] != workload.ClientID || sps.Value[0]["id"] != workload.PrincipalID || sps.Value[0]["servicePrincipalType"] != "ManagedIdentity" {
		t.Fatalf("sp list = %+v", sps)
	}
	appSP := want[list](t, "sp by appId", call(t, env, "GET", "/v1.0/servicePrincipals"+filter("appId eq '"+appID+"'"), tok, nil), 200)
	if len(appSP.Value) != 1 || appSP.Value[0]["servicePrincipalType"] != "Application" {
		t.Fatalf("app sp = %+v", appSP)
	}
	spID := appSP.Value[0]["id"].(string)
	created := want[map[string]any](t, "create sp", call(t, env, "POST", "/v1.0/servicePrincipals", tok, map[string]any{"appId": appID}), 201)
	if created["id"] != spID {
		t.Fatalf("created sp = %v", created)
	}
	wantError(t, "sp of no application", call(t, env, "POST", "/v1.0/servicePrincipals", tok, map[string]any{"appId": directory.NewID()}), 400, "Request_BadRequest")
	// Pages follow @odata.nextLink to the same set.
	all := want[list](t, "all sps", call(t, env, "GET", "/v1.0/servicePrincipals", tok, nil), 200)
	var paged []string
	next := "/v1.0/servicePrincipals?$top=2"
	for pages := 0; next != ""; pages++ {
		if pages > len(all.Value) {
			t.Fatal("paging does not end")
		}
		p := want[list](t, "page", call(t, env, "GET", next, tok, nil), 200)
		for _, v := range p.Value {
			paged = append(paged, v["id"].(string))
		}
		next = p.NextLink
	}
	if len(all.Value) != 5 || len(paged) != len(all.Value) { // two applications, three identities
		t.Fatalf("all %d, paged %v", len(all.Value), paged)
	}
	wantError(t, "page size", call(t, env, "GET", "/v1.0/servicePrincipals?$top=1000", tok, nil), 400, "Request_BadRequest")

	// App role assignments, from either side.
	assigned := want[map[string]any](t, "assign", call(t, env, "POST", "/v1.0/servicePrincipals/"+spID+"/appRoleAssignedTo", tok, map[string]any{
		"principalId": workload.PrincipalID, "resourceId": spID, "appRoleId": roleID}), 201)
	if assigned["principalDisplayName"] != "managed-identity-test" || assigned["resourceDisplayName"] != "provider-api" || assigned["resourceId"] != spID {
		t.Fatalf("assignment = %v", assigned)
	}
	held := want[list](t, "held", call(t, env, "GET", "/v1.0/servicePrincipals/"+workload.PrincipalID+"/appRoleAssignments", tok, nil), 200)
	if len(held.Value) != 1 || held.Value[0]["appRoleId"] != roleID {
		t.Fatalf("held = %+v", held)
	}
	// The token now carries the role: the assignment is real.
	claims := wiftest.Claims(t, env.Token(t, workload.ClientID, "api://provider-api/.default"))
	if rs, _ := claims["roles"].([]any); len(rs) != 1 || rs[0] != "Data.Read" {
		t.Fatalf("roles in the token: %v", claims["roles"])
	}
	want[struct{}](t, "unassign", call(t, env, "DELETE", "/v1.0/servicePrincipals/"+spID+"/appRoleAssignedTo/"+assigned["id"].(string), tok, nil), 204)
	if l := want[list](t, "after unassign", call(t, env, "GET", "/v1.0/servicePrincipals/"+spID+"/appRoleAssignedTo", tok, nil), 200); len(l.Value) != 0 {
		t.Fatalf("after unassign = %+v", l)
	}

	// Refusals: no token, no role, and the escalation rule.
	wantError(t, "no token", call(t, env, "GET", "/v1.0/applications", "", nil), 401, "InvalidAuthenticationToken")
	wantError(t, "no role", call(t, env, "GET", "/v1.0/applications", workloadTok, nil), 403, "Authorization_RequestDenied")
	adminSP := adminApp.ServicePrincipalID
	// A contributor may not read applications: the admin application's
	// service principal does not exist for it, so it cannot grant itself
	// the directory through it.
	wantError(t, "contributor grants itself the directory", call(t, env, "POST", "/v1.0/servicePrincipals/"+adminSP+"/appRoleAssignedTo", contribTok, map[string]any{
		"principalId": contributor.PrincipalID, "resourceId": adminSP, "appRoleId": admin.RoleIDReadWriteAll}), 404, "Request_ResourceNotFound")
	wantError(t, "contributor adds a credential to an application", call(t, env, "POST", "/v1.0/applications/"+id+"/federatedIdentityCredentials", contribTok, map[string]any{
		"name": "mine", "issuer": "https://attacker.example", "subject": "me"}), 403, "Authorization_RequestDenied")
	// Nor through its own principal's assignments.
	wantError(t, "contributor grants itself through appRoleAssignments", call(t, env, "POST", "/v1.0/servicePrincipals/"+contributor.PrincipalID+"/appRoleAssignments", contribTok, map[string]any{
		"principalId": contributor.PrincipalID, "resourceId": adminSP, "appRoleId": admin.RoleIDReadWriteAll}), 400, "Request_BadRequest")
	// A contributor reads identities, not applications: it lists the
	// identities' service principals.
	csp := want[list](t, "contributor's sp list", call(t, env, "GET", "/v1.0/servicePrincipals", contribTok, nil), 200)
	for _, v := range csp.Value {
		if v["servicePrincipalType"] != "ManagedIdentity" {
			t.Fatalf("contributor sees %v", v)
		}
	}
	wantError(t, "unknown path", call(t, env, "GET", "/v1.0/users", tok, nil), 404, "Request_ResourceNotFound")

	want[struct{}](t, "delete credential", call(t, env, "DELETE", fic+"/github-main", tok, nil), 204)
	want[struct{}](t, "delete application", call(t, env, "DELETE", "/v1.0/applications/"+id, tok, nil), 204)
	wantError(t, "deleted", call(t, env, "GET", "/v1.0/applications/"+id, tok, nil), 404, "Request_ResourceNotFound")
}
