package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

func TestAuthorizationWithRealTokens(t *testing.T) {
	e := startEnv(t)
	a, b := e.TenantA, e.TenantB
	rw := e.token(t, a, e.principal(t, a, "root", admin.RoleReadWriteAll))
	ro := e.token(t, a, e.principal(t, a, "auditor", admin.RoleReadAll))
	mic := e.token(t, a, e.principal(t, a, "pipeline", admin.RoleManagedIdentityContributor))
	none := e.token(t, a, e.principal(t, a, "nobody"))
	// A directory admin of tenant B, which is not the operator tenant.
	localB := e.token(t, b, e.principal(t, b, "local-admin", admin.RoleReadWriteAll))
	// A token for another resource: valid, but not for the admin API.
	other, err := e.Store.CreateApplication(context.Background(), directory.Application{TenantID: a, AppID: directory.NewID(), ObjectID: directory.NewID(),
		ServicePrincipalID: directory.NewID(), DisplayName: "other", IdentifierURIs: []string{"api://other"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Server.STS.DirectoryChanged(context.Background())
	_ = other

	identityBody := map[string]any{"location": "westeurope"}
	tests := []struct {
		name       string
		token      string
		method     string
		path       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"no token", "", "GET", "/admin/tenants", nil, 401, admin.CodeAuthentication},
		{"malformed header", "", "GET", "/admin/tenants", nil, 401, admin.CodeAuthentication},
		{"garbage token", "not.a.token", "GET", "/admin/tenants", nil, 401, admin.CodeAuthentication},
		{"no role", none, "GET", "/admin/tenants", nil, 403, admin.CodeAuthorization},
		{"reader reads", ro, "GET", "/admin/tenants", nil, 200, ""},
		{"reader cannot write", ro, "PUT", identityURL(a, "rg", "id-x1"), identityBody, 403, admin.CodeAuthorization},
		{"writer writes", rw, "PUT", identityURL(a, "rg", "id-x2"), identityBody, 201, ""},
		{"writer writes other tenant", rw, "PUT", identityURL(b, "rg", "id-x3"), identityBody, 201, ""},
		{"contributor creates identity in own tenant", mic, "PUT", identityURL(a, "rg", "id-x4"), identityBody, 201, ""},
		{"contributor creates credential in own tenant", mic, "PUT", identityURL(a, "rg", "id-x4") + "/federatedIdentityCredentials/github",
			map[string]any{"properties": map[string]any{"issuer": "https://token.actions.githubusercontent.com", "subject": "repo:o/r:ref:refs/heads/main"}}, 201, ""},
		{"contributor cannot touch another tenant", mic, "PUT", identityURL(b, "rg", "id-x5"), identityBody, 403, admin.CodeAuthorization},
		{"contributor cannot read another tenant", mic, "GET", identityURL(b, "rg", "id-x3"), nil, 403, admin.CodeAuthorization},
		{"contributor cannot create applications", mic, "POST", "/admin/tenants/" + a + "/applications", map[string]any{"displayName": "x"}, 403, admin.CodeAuthorization},
		{"contributor cannot apply documents", mic, "POST", "/admin/directory", "tenants: []", 403, admin.CodeAuthorization},
		{"tenant admin writes own tenant", localB, "PUT", identityURL(b, "rg", "id-x6"), identityBody, 201, ""},
		{"tenant admin renames own tenant", localB, "PUT", "/admin/tenants/" + b, map[string]any{"displayName": "B"}, 200, ""},
		{"tenant admin cannot touch the operator tenant", localB, "GET", identityURL(a, "rg", "id-x2"), nil, 403, admin.CodeAuthorization},
		{"tenant admin cannot create tenants", localB, "PUT", "/admin/tenants/" + directory.NewID(), map[string]any{"displayName": "new"}, 403, admin.CodeAuthorization},
		{"tenant admin cannot list tenants", localB, "GET", "/admin/tenants", nil, 403, admin.CodeAuthorization},
		{"tenant admin cannot export the directory", localB, "GET", "/admin/directory", nil, 403, admin.CodeAuthorization},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.name == "malformed header" {
				hdr["Authorization"] = "Basic dXNlcjpwYXNz"
			}
			r := e.do(t, tt.token, tt.method, tt.path, hdr, tt.body)
			if r.status != tt.wantStatus || r.err.Code != tt.wantCode {
				t.Fatalf("%s %s: got %d %q, want %d %q: %s", tt.method, tt.path, r.status, r.err.Code, tt.wantStatus, tt.wantCode, r.body)
			}
			if r.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer resource="api://wif-admin"`) {
				t.Errorf("401 without WWW-Authenticate challenge: %q", r.header.Get("WWW-Authenticate"))
			}
			if r.status == 401 && strings.Contains(string(r.body), tt.token) && tt.token != "" {
				t.Errorf("error echoes the token")
			}
		})
	}

	// A token for another resource is refused even with a valid signature.
	t.Run("wrong audience", func(t *testing.T) {
		mi := e.principal(t, a, "wrongaud")
		assertion := e.Issuer.Mint(t, "system:serviceaccount:default:wrongaud", directory.DefaultAudience, time.Hour)
		resp, err := e.Client.PostForm(e.URL+"/"+a+"/oauth2/v2.0/token", map[string][]string{
			"grant_type": {"client_credentials"}, "client_id": {mi.ClientID}, "scope": {"api://other/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tr)
		resp.Body.Close()
		if tr.AccessToken == "" {
			t.Fatalf("no token for api://other (status %d)", resp.StatusCode)
		}
		r := e.do(t, tr.AccessToken, "GET", "/admin/tenants", nil, nil)
		if r.status != 401 || !strings.Contains(r.err.Message, "audience") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

func TestStaleETagIs412(t *testing.T) {
	e := startEnv(t)
	a := e.TenantA
	rw := e.token(t, a, e.principal(t, a, "root", admin.RoleReadWriteAll))
	path := identityURL(a, "rg", "shared")
	if r := e.do(t, rw, "PUT", path, nil, map[string]any{"location": "one"}); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r := e.do(t, rw, "GET", path, nil, nil)
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	// Many writers race with the same ETag: exactly one wins.
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	codes := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do(t, rw, "PUT", path, map[string]string{"If-Match": etag}, map[string]any{"location": fmt.Sprint("loc", i)})
			statuses[i], codes[i] = r.status, r.err.Code
		}()
	}
	wg.Wait()
	ok, stale := 0, 0
	for i := range n {
		switch {
		case statuses[i] == 200:
			ok++
		case statuses[i] == 412 && codes[i] == admin.CodePreconditionFailed:
			stale++
		default:
			t.Errorf("writer %d: %d %s", i, statuses[i], codes[i])
		}
	}
	if ok != 1 || stale != n-1 {
		t.Fatalf("%d succeeded and %d got 412; want 1 and %d", ok, stale, n-1)
	}
	// The stale ETag also fails a delete; the fresh one succeeds.
	if r := e.do(t, rw, "DELETE", path, map[string]string{"If-Match": etag}, nil); r.status != 412 {
		t.Fatalf("delete with stale ETag: %d %s", r.status, r.body)
	}
	fresh := e.do(t, rw, "GET", path, nil, nil).header.Get("ETag")
	if r := e.do(t, rw, "DELETE", path, map[string]string{"If-Match": fresh}, nil); r.status != 204 {
		t.Fatalf("delete with fresh ETag: %d %s", r.status, r.body)
	}
	// If-None-Match: * refuses to overwrite.
	e.do(t, rw, "PUT", path, nil, map[string]any{})
	if r := e.do(t, rw, "PUT", path, map[string]string{"If-None-Match": "*"}, map[string]any{}); r.status != 412 {
		t.Fatalf("If-None-Match *: %d %s", r.status, r.body)
	}
}

// TestDirectoryRules breaks every rule of spec/sts.md §7 once through the
// API and checks the 400 names the field and the rule.
func TestDirectoryRules(t *testing.T) {
	e := startEnv(t)
	a := e.TenantA
	rw := e.token(t, a, e.principal(t, a, "root", admin.RoleReadWriteAll))
	// Fixtures: an identity with 20 credentials and a resource app.
	mi := identityURL(a, "rg", "full")
	if r := e.do(t, rw, "PUT", mi, nil, map[string]any{}); r.status != 201 {
		t.Fatal(string(r.body))
	}
	for i := range 20 {
		r := e.do(t, rw, "PUT", fmt.Sprintf("%s/federatedIdentityCredentials/cred-%02d", mi, i), nil,
			map[string]any{"properties": map[string]any{"issuer": "https://issuer.example", "subject": fmt.Sprint("sub-", i)}})
		if r.status != 201 {
			t.Fatal(string(r.body))
		}
	}
	other := identityURL(a, "rg", "other")
	e.do(t, rw, "PUT", other, nil, map[string]any{})
	e.do(t, rw, "PUT", other+"/federatedIdentityCredentials/first", nil,
		map[string]any{"properties": map[string]any{"issuer": "https://issuer.example", "subject": "dup"}})
	appID := "22222222-2222-4222-8222-222222222222"
	if r := e.do(t, rw, "PUT", "/admin/tenants/"+a+"/applications/"+appID, nil,
		map[string]any{"displayName": "api", "identifierUris": []string{"api://api"}, "appRoles": []any{map[string]any{"value": "Data.Read"}}}); r.status != 201 {
		t.Fatal(string(r.body))
	}
	cred := func(issuer, subject string, aud []string, desc string) map[string]any {
		p := map[string]any{"issuer": issuer, "subject": subject, "description": desc}
		if aud != nil {
			p["audiences"] = aud
		}
		return map[string]any{"properties": p}
	}
	long := strings.Repeat("x", 601)
	otherCred := other + "/federatedIdentityCredentials/"
	tests := []struct {
		rule       string
		method     string
		path       string
		body       any
		wantTarget string
		wantRule   string
	}{
		{"tenant id is a GUID", "PUT", "/admin/tenants/contoso", map[string]any{"displayName": "x"}, "tenantId", "must be a GUID"},
		{"tenant has a display name", "PUT", "/admin/tenants/" + directory.NewID(), map[string]any{"displayName": ""}, "displayName", "is required"},
		{"appId is a GUID", "PUT", "/admin/tenants/" + a + "/applications/not-a-guid", map[string]any{"displayName": "x"}, "appId", "must be a GUID"},
		{"identifier URI is absolute", "POST", "/admin/tenants/" + a + "/applications", map[string]any{"displayName": "x", "identifierUris": []string{"provider-api"}}, "identifierUris[0]", "must be an absolute URI"},
		{"app role value has no spaces", "POST", "/admin/tenants/" + a + "/applications", map[string]any{"displayName": "x", "appRoles": []any{map[string]any{"value": "Data Read"}}}, "appRoles[0].value", "printable ASCII with no spaces"},
		{"app role member types", "POST", "/admin/tenants/" + a + "/applications", map[string]any{"displayName": "x", "appRoles": []any{map[string]any{"value": "R", "allowedMemberTypes": []string{"Robot"}}}}, "appRoles[0].allowedMemberTypes[0]", `must be "Application" or "User"`},
		{"token version is 1 or 2", "POST", "/admin/tenants/" + a + "/applications", map[string]any{"displayName": "x", "requestedAccessTokenVersion": 3}, "requestedAccessTokenVersion", "must be 1 or 2"},
		{"identity name", "PUT", identityURL(a, "rg", "-bad"), map[string]any{}, "name", "must start with a letter or digit"},
		{"resource group", "PUT", identityURL(a, "rg.", "good"), map[string]any{}, "resourceGroup", "must not end with '.'"},
		{"subscription is a GUID", "PUT", admin.IdentityPath(a, "sub", "rg", "good"), map[string]any{}, "subscriptionId", "must be a GUID"},
		{"credential name at least 3 characters", "PUT", otherCred + "ab", cred("https://i.example", "s", nil, ""), "name", "must be 3 to 120 characters"},
		{"credential name at most 120 characters", "PUT", otherCred + strings.Repeat("a", 121), cred("https://i.example", "s", nil, ""), "name", "must be 3 to 120 characters"},
		{"credential name characters", "PUT", otherCred + "a.b.c", cred("https://i.example", "s", nil, ""), "name", "may hold only letters, digits, '-' and '_'"},
		{"credential name starts alphanumeric", "PUT", otherCred + "_abc", cred("https://i.example", "s", nil, ""), "name", "must start with a letter or digit"},
		{"credential name is immutable", "PUT", otherCred + "first", map[string]any{"name": "renamed", "properties": map[string]any{"issuer": "https://i.example", "subject": "s"}}, "name", "names are immutable"},
		{"issuer is https", "PUT", otherCred + "c-http", cred("http://issuer.example", "s", nil, ""), "issuer", "must be an https URL"},
		{"issuer has no surrounding whitespace", "PUT", otherCred + "c-space", cred("https://issuer.example ", "s", nil, ""), "issuer", "must not begin or end with whitespace"},
		{"issuer at most 600 characters", "PUT", otherCred + "c-long-iss", cred("https://i.example/"+long, "s", nil, ""), "issuer", "at most 600 characters"},
		{"subject at most 600 characters", "PUT", otherCred + "c-long-sub", cred("https://i.example", long, nil, ""), "subject", "at most 600 characters"},
		{"subject is required", "PUT", otherCred + "c-no-sub", cred("https://i.example", "", nil, ""), "subject", "is required"},
		{"description at most 600 characters", "PUT", otherCred + "c-long-desc", cred("https://i.example", "s", nil, long), "description", "at most 600 characters"},
		{"exactly one audience", "PUT", otherCred + "c-two-aud", cred("https://i.example", "s", []string{"a", "b"}, ""), "audiences", "exactly one audience"},
		{"issuer+subject unique per parent", "PUT", otherCred + "c-dup", cred("https://issuer.example", "dup", nil, ""), "subject", "issuer and subject must be unique per parent"},
		{"at most 20 per parent", "PUT", mi + "/federatedIdentityCredentials/cred-20", cred("https://issuer.example", "sub-20", nil, ""), "name", "already has 20 federated credentials"},
		{"assignment names an app role", "POST", "/admin/tenants/" + a + "/appRoleAssignments", map[string]any{"principal": "other", "resource": "api://api", "role": "Data.Write"}, "role", "is not an app role"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r := e.do(t, rw, tt.method, tt.path, nil, tt.body)
			wantStatus, wantCode := 400, admin.CodeValidation
			if tt.rule == "at most 20 per parent" { // the parent's state, not the request: ARM's 409
				wantStatus, wantCode = 409, admin.CodeQuotaExceeded
			}
			if r.status != wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, wantStatus, r.body)
			}
			if r.err.Code != wantCode || r.err.Target != tt.wantTarget || !strings.Contains(r.err.Message, tt.wantRule) {
				t.Fatalf("got code %q target %q message %q; want %q, %q, containing %q", r.err.Code, r.err.Target, r.err.Message, wantCode, tt.wantTarget, tt.wantRule)
			}
			if len(r.err.Details) == 0 || r.err.Details[0].Target != tt.wantTarget {
				t.Fatalf("details do not name the field: %s", r.body)
			}
		})
	}
}

func TestErrorsAndPaging(t *testing.T) {
	e := startEnv(t)
	a := e.TenantA
	rw := e.token(t, a, e.principal(t, a, "root", admin.RoleReadWriteAll))
	for i := range 5 {
		if r := e.do(t, rw, "PUT", identityURL(a, "paged", fmt.Sprintf("id-%d", i)), nil, map[string]any{}); r.status != 201 {
			t.Fatal(string(r.body))
		}
	}
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        map[string]string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"unknown identity", "GET", identityURL(a, "paged", "missing"), nil, nil, 404, admin.CodeNotFound},
		{"unknown tenant", "GET", "/admin/tenants/" + directory.NewID(), nil, nil, 404, admin.CodeNotFound},
		{"malformed JSON", "PUT", identityURL(a, "paged", "id-0"), nil, "{", 400, admin.CodeInvalidRequest},
		{"unknown field", "PUT", identityURL(a, "paged", "id-0"), nil, `{"locaton":"x"}`, 400, admin.CodeInvalidRequest},
		{"two JSON values", "PUT", identityURL(a, "paged", "id-0"), nil, `{} {}`, 400, admin.CodeInvalidRequest},
		{"empty body", "PUT", identityURL(a, "paged", "id-0"), nil, "", 400, admin.CodeInvalidRequest},
		{"wrong content type", "PUT", identityURL(a, "paged", "id-0"), map[string]string{"Content-Type": "text/plain"}, `{}`, 415, admin.CodeUnsupportedMedia},
		{"body too large", "PUT", identityURL(a, "paged", "id-0"), nil, `{"location":"` + strings.Repeat("x", 2<<20) + `"}`, 413, admin.CodeTooLarge},
		{"bad $top", "GET", identityURL(a, "paged", "") + "?$top=0", nil, nil, 400, admin.CodeInvalidQueryOptions},
		{"bad $skipToken", "GET", identityURL(a, "paged", "") + "?$skipToken=zz!", nil, nil, 400, admin.CodeInvalidQueryOptions},
		{"bad audit time", "GET", "/admin/tenants/" + a + "/auditLogs?since=yesterday", nil, nil, 400, admin.CodeInvalidQueryOptions},
		{"duplicate application", "POST", "/admin/tenants/" + a + "/applications", nil, map[string]any{"displayName": "x", "appId": e.adminApp[a].AppID}, 409, admin.CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, rw, tt.method, strings.TrimSuffix(tt.path, "/"), tt.hdr, tt.body)
			if r.status != tt.wantStatus || r.err.Code != tt.wantCode {
				t.Fatalf("got %d %q, want %d %q: %.300s", r.status, r.err.Code, tt.wantStatus, tt.wantCode, r.body)
			}
		})
	}
	t.Run("paging with nextLink", func(t *testing.T) {
		next := identityURL(a, "paged", "") + "?$top=2"
		var names []string
		pages := 0
		for next != "" {
			r := e.do(t, rw, "GET", strings.TrimPrefix(next, e.URL), nil, nil)
			if r.status != 200 {
				t.Fatal(string(r.body))
			}
			var pg admin.List[admin.IdentityResource]
			if err := json.Unmarshal(r.body, &pg); err != nil {
				t.Fatal(err)
			}
			for _, m := range pg.Value {
				names = append(names, m.Name)
			}
			next = pg.NextLink
			pages++
		}
		if pages != 3 || strings.Join(names, ",") != "id-0,id-1,id-2,id-3,id-4" {
			t.Fatalf("%d pages: %v", pages, names)
		}
	})
	t.Run("identity is ARM-shaped", func(t *testing.T) {
		r := e.do(t, rw, "GET", identityURL(a, "paged", "id-0"), nil, nil)
		var m map[string]any
		_ = json.Unmarshal(r.body, &m)
		props, _ := m["properties"].(map[string]any)
		wantID := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/paged/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-0"
		if m["id"] != wantID || m["name"] != "id-0" || m["type"] != admin.IdentityType || props["tenantId"] != a ||
			!directory.IsGUID(fmt.Sprint(props["clientId"])) || !directory.IsGUID(fmt.Sprint(props["principalId"])) {
			t.Fatalf("identity: %s", r.body)
		}
		if r.header.Get("ETag") != m["etag"] {
			t.Fatalf("ETag header %q, body %v", r.header.Get("ETag"), m["etag"])
		}
	})
}

func TestAuditLog(t *testing.T) {
	e := startEnv(t)
	a := e.TenantA
	root := e.principal(t, a, "root", admin.RoleReadWriteAll)
	rw := e.token(t, a, root)
	// The exchange above is audited by the real token service; add more.
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var recs []store.AuditRecord
	for i := range 5 {
		res := store.AuditSuccess
		if i%2 == 1 {
			res = store.AuditFailure
		}
		recs = append(recs, store.AuditRecord{Time: base.Add(time.Duration(i) * time.Minute), TenantID: a, ClientID: "11111111-1111-4111-8111-111111111111",
			Result: res, GrantType: "client_credentials", Subject: fmt.Sprint("s", i)})
	}
	if err := e.Store.AppendAudit(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	list := func(q string) []admin.AuditResource {
		r := e.do(t, rw, "GET", "/admin/tenants/"+a+"/auditLogs"+q, nil, nil)
		if r.status != 200 {
			t.Fatalf("%s: %s", q, r.body)
		}
		var pg admin.List[admin.AuditResource]
		_ = json.Unmarshal(r.body, &pg)
		return pg.Value
	}
	if got := list("?clientId=11111111-1111-4111-8111-111111111111&result=failure"); len(got) != 2 || got[0].Subject != "s3" {
		t.Fatalf("failures: %+v", got)
	}
	if got := list("?clientId=11111111-1111-4111-8111-111111111111&since=2026-01-02T03:06:00Z&until=2026-01-02T03:07:30Z"); len(got) != 2 {
		t.Fatalf("time window: %+v", got)
	}
	if got := list("?result=success"); len(got) < 3 {
		t.Fatalf("successes: %+v", got)
	}
	// The real exchange appears once the service's audit writer flushes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := list("?clientId=" + root.ClientID)
		if len(got) == 1 && got[0].Result == store.AuditSuccess && got[0].Subject == "system:serviceaccount:default:root" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the real exchange was not audited: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	e := startEnv(t)
	r := e.do(t, "", "GET", "/admin/openapi.json", nil, nil)
	if r.status != 200 {
		t.Fatal(string(r.body))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	h, err := admin.NewHandler(admin.Config{Store: e.Store, Authorizer: &admin.TokenAuthorizer{}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || len(h.Patterns()) < 30 {
		t.Fatalf("openapi %q, %d routes", doc.OpenAPI, len(h.Patterns()))
	}
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				OperationID string `json:"operationId"`
			}
			_ = json.Unmarshal(raw, &op)
			if prev, dup := ids[op.OperationID]; dup || op.OperationID == "" {
				t.Errorf("operationId %q of %s %s is empty or also used by %s", op.OperationID, method, path, prev)
			}
			ids[op.OperationID] = method + " " + path
		}
	}
	// Every schema reference resolves.
	var whole struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	_ = json.Unmarshal(r.body, &whole)
	for _, m := range regexp.MustCompile(`"#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(string(r.body), -1) {
		if _, ok := whole.Components.Schemas[m[1]]; !ok {
			t.Errorf("the OpenAPI document refers to schema %s, which it does not define", m[1])
		}
	}
	for _, p := range h.Patterns() {
		method, path, _ := strings.Cut(p, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("route %s is not in /admin/openapi.json", p)
		}
		// And every documented route is really served (not the 404 catch-all).
		rr := e.do(t, "", method, strings.NewReplacer("{tenantId}", e.TenantA, "{subscriptionId}", "00000000-0000-0000-0000-000000000000").Replace(path), nil, nil)
		if rr.status == 404 && strings.Contains(rr.err.Message, "no admin API resource") {
			t.Errorf("route %s is documented but not served", p)
		}
	}
}

func TestBootstrapIsIdempotent(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	tid := directory.NewID()
	mi, err := admin.Bootstrap(ctx, e.Store, tid, e.Issuer.URL, "system:serviceaccount:default:wif-admin")
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := e.Store.Revision(ctx)
	mi2, err := admin.Bootstrap(ctx, e.Store, tid, e.Issuer.URL, "system:serviceaccount:default:wif-admin")
	if err != nil {
		t.Fatal(err)
	}
	if rev2, _ := e.Store.Revision(ctx); mi2.ClientID != mi.ClientID || rev2 != rev {
		t.Fatalf("second bootstrap changed things: %s→%s, revision %d→%d", mi.ClientID, mi2.ClientID, rev, rev2)
	}
	// The bootstrapped identity gets a real admin token and can write.
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, tid, mi)
	if r := e.do(t, tok, "PUT", identityURL(tid, "rg", "made-by-bootstrap-admin"), nil, map[string]any{}); r.status != http.StatusCreated {
		t.Fatalf("bootstrap admin cannot write: %d %s", r.status, r.body)
	}
}

// TestApplyPruneKeepsAdminAccess: a document that omits the admin app and
// the admin identity, applied with prune, cannot lock the caller out.
func TestApplyPruneKeepsAdminAccess(t *testing.T) {
	e := startEnv(t)
	a := e.TenantA
	root := e.principal(t, a, "root", admin.RoleReadWriteAll)
	rw := e.token(t, a, root)
	doc := "tenants:\n- id: " + a + "\n  displayName: only this\n  managedIdentities:\n  - {name: app-mi, resourceGroup: rg}\n"
	r := e.do(t, rw, "POST", "/admin/directory?prune=true", nil, doc)
	if r.status != 200 {
		t.Fatalf("apply: %d %s", r.status, r.body)
	}
	var res admin.ApplyResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	// Tenant B is gone; the admin app, root's assignment, identity and
	// credential in tenant A are kept and reported.
	if len(res.Kept) != 3 {
		t.Fatalf("kept %v\n%s", res.Kept, res.Summary)
	}
	for _, k := range []string{"application \"wif-admin\"", "managed identity admins/root", "app role assignment root → api://wif-admin Directory.ReadWrite.All"} {
		if !strings.Contains(strings.Join(res.Kept, "\n"), k) {
			t.Errorf("kept lacks %q: %v", k, res.Kept)
		}
	}
	if _, err := e.Store.GetTenant(context.Background(), e.TenantB); err == nil {
		t.Error("tenant B (nobody holds its admin roles) was not pruned")
	}
	if _, err := e.Store.GetFederatedCredential(context.Background(), a, root.ClientID, "ci-cred"); err != nil {
		t.Errorf("the admin identity's credential was pruned: %v", err)
	}
	// Still an administrator: the same token (and a new one) still works.
	if r := e.do(t, e.token(t, a, root), "GET", "/admin/tenants", nil, nil); r.status != 200 {
		t.Fatalf("locked out: %d %s", r.status, r.body)
	}
}

// TestChangesTakeEffectAtOnce: an identity and credential created through
// the API can exchange tokens immediately (OnChange reloads the service).
func TestChangesTakeEffectAtOnce(t *testing.T) {
	e := startEnv(t)
	a := e.TenantA
	rw := e.token(t, a, e.principal(t, a, "root", admin.RoleReadWriteAll))
	before := e.changes.Load()
	r := e.do(t, rw, "PUT", identityURL(a, "rg", "fresh"), nil, map[string]any{})
	if r.status != 201 {
		t.Fatal(string(r.body))
	}
	var mi admin.IdentityResource
	_ = json.Unmarshal(r.body, &mi)
	r = e.do(t, rw, "PUT", identityURL(a, "rg", "fresh")+"/federatedIdentityCredentials/k8s-fresh", nil,
		map[string]any{"properties": map[string]any{"issuer": e.Issuer.URL, "subject": "system:serviceaccount:default:fresh"}})
	if r.status != 201 {
		t.Fatal(string(r.body))
	}
	if got := e.changes.Load() - before; got != 2 {
		t.Errorf("OnChange called %d times for 2 writes", got)
	}
	tok := e.token(t, a, directory.ManagedIdentity{Name: "fresh", ClientID: mi.Properties.ClientID})
	// No admin role: the token is real but the API refuses it with 403.
	if r := e.do(t, tok, "GET", "/admin/tenants", nil, nil); r.status != 403 {
		t.Fatalf("fresh identity: %d %s", r.status, r.body)
	}
}
