package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store/memory"
)

// allowAll lets every request through: the fuzz target exercises request
// bodies, not authorization (which has its own tests with real tokens).
type allowAll struct{}

func (allowAll) Authorize(*http.Request, Operation) (Caller, error) {
	return Caller{Unrestricted: true}, nil
}

const fuzzTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func fuzzHandler(t testing.TB) *Handler {
	st := memory.New()
	ctx := context.Background()
	if _, err := st.CreateTenant(ctx, directory.Tenant{ID: fuzzTenant, DisplayName: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: fuzzTenant, SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup: "rg", Name: "mi1", ClientID: directory.NewID(), PrincipalID: directory.NewID()}); err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Store: st, Authorizer: allowAll{}, MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzAdminJSON sends arbitrary bodies to every endpoint that reads one:
// never a panic or a 500, and every failure is a JSON error document.
func FuzzAdminJSON(f *testing.F) {
	f.Add(uint8(0), []byte(`{"location":"westeurope","tags":{"a":"b"}}`))
	f.Add(uint8(1), []byte(`{"properties":{"issuer":"https://i.example","subject":"s","audiences":["api://AzureADTokenExchange"]}}`))
	f.Add(uint8(2), []byte(`{"displayName":"api","identifierUris":["api://api"],"appRoles":[{"value":"Data.Read"}],"requestedAccessTokenVersion":2}`))
	f.Add(uint8(3), []byte(`{"principal":"mi1","resource":"api://api","role":"Data.Read"}`))
	f.Add(uint8(4), []byte("tenants:\n- id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n  displayName: x\n"))
	f.Add(uint8(5), []byte(`{"displayName":"renamed"}`))
	f.Add(uint8(6), []byte(`{"issuer":"https://i.example","subject":"s","name":"cred1"}`))
	f.Add(uint8(10), []byte(`{"issuer":"https://i.example","keySource":"jwks","jwks":{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"AQAB","y":"AQAB"}]},"algorithms":["ES256"]}`))
	f.Add(uint8(11), []byte(`{"jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}`))
	f.Add(uint8(12), []byte(`{"issuers":["https://a.example","https://b.example"]}`))
	h := fuzzHandler(f)
	idPath := "/admin/tenants/" + fuzzTenant + "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi1"
	targets := []struct{ method, path string }{
		{"PUT", idPath},
		{"PUT", idPath + "/federatedIdentityCredentials/cred-1"},
		{"POST", "/admin/tenants/" + fuzzTenant + "/applications"},
		{"POST", "/admin/tenants/" + fuzzTenant + "/appRoleAssignments"},
		{"POST", "/admin/directory?dryRun=true"},
		{"POST", "/admin/directory?dryRun=true&replay=24h"},
		{"PUT", "/admin/tenants/" + fuzzTenant},
		{"PATCH", idPath},
		{"PUT", "/admin/tenants/" + fuzzTenant + "/trustedIssuers/cluster"},
		{"POST", "/admin/tenants/" + fuzzTenant + "/trustedIssuers/cluster/keys"},
		{"PUT", "/admin/tenants/" + fuzzTenant + "/issuerSets/prod"},
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		tg := targets[int(which)%len(targets)]
		r := httptest.NewRequest(tg.method, tg.path, strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s: %d %s", tg.method, tg.path, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var eb ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%d reply is not an error document: %s", w.Code, w.Body)
			}
		}
	})
}

// FuzzAdminQuery sends arbitrary query strings to the endpoints whose
// behaviour rests on them: a 2xx or a precise 4xx error document, never a
// panic or a 500.
func FuzzAdminQuery(f *testing.F) {
	for _, q := range []string{"days=30", "days=0", "days=abc", "replay=7d&dryRun=true", "replay=90m&dryRun=true", "replay=-1d&dryRun=true",
		"since=2026-01-02T15:04:05Z&result=failure", "$top=1000000", "$skipToken=%ff", "replay=24h"} {
		f.Add(uint8(0), q)
	}
	h := fuzzHandler(f)
	tp := "/admin/tenants/" + fuzzTenant
	paths := []struct{ method, path string }{{"GET", tp + "/staleCredentials"}, {"POST", "/admin/directory"}, {"GET", tp + "/auditLogs"}}
	f.Fuzz(func(t *testing.T, which uint8, query string) {
		tg := paths[int(which)%len(paths)]
		r := httptest.NewRequest(tg.method, tg.path, nil)
		r.URL.RawQuery = query
		if tg.method == "POST" {
			r.Body = io.NopCloser(strings.NewReader("tenants: []\n"))
			r.Header.Set("Content-Type", "application/yaml")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s: %d %s", tg.method, tg.path, query, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var eb ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%d reply is not an error document: %s", w.Code, w.Body)
			}
		}
	})
}

func TestUnknownAdminPathIsJSON404(t *testing.T) {
	h := fuzzHandler(t)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/nothing-here", nil))
	var eb ErrorBody
	if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Error.Code != CodeNotFound {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestWrongMethodIsJSON405(t *testing.T) {
	h := fuzzHandler(t)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/admin/tenants/"+fuzzTenant, nil))
	var eb ErrorBody
	if w.Code != 405 || json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Error.Code != CodeMethodNotAllowed || w.Header().Get("Allow") != "GET, PUT, DELETE" {
		t.Fatalf("%d %s %q", w.Code, w.Body, w.Header().Get("Allow"))
	}
}

// TestRemovingWhatIsInUse: an app role, application or identity in use is
// removed with what uses it, or refused with refuseIfInUse.
func TestRemovingWhatIsInUse(t *testing.T) {
	h := fuzzHandler(t)
	do := func(method, path, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, r)
		return w
	}
	app := "/admin/tenants/" + fuzzTenant + "/applications/44444444-4444-4444-8444-444444444444"
	if w := do("PUT", app, `{"displayName":"api","identifierUris":["api://api"],"appRoles":[{"value":"Data.Read"},{"value":"Data.Write"}]}`); w.Code != 201 {
		t.Fatal(w.Body)
	}
	if w := do("POST", "/admin/tenants/"+fuzzTenant+"/appRoleAssignments", `{"principal":"mi1","resource":"api://api","role":"Data.Read"}`); w.Code != 201 {
		t.Fatal(w.Body)
	}
	// Dropping the unassigned role is fine; dropping the assigned one is 409.
	if w := do("PATCH", app, `{"appRoles":[{"value":"Data.Read"}]}`); w.Code != 200 {
		t.Fatalf("drop unassigned: %d %s", w.Code, w.Body)
	}
	w := do("PUT", app+"?refuseIfInUse=true", `{"displayName":"api","identifierUris":["api://api"],"appRoles":[]}`)
	var eb ErrorBody
	_ = json.Unmarshal(w.Body.Bytes(), &eb)
	if w.Code != 409 || eb.Error.Code != CodeConflict || !strings.Contains(eb.Error.Message, `app role "Data.Read"`) {
		t.Fatalf("drop assigned with refuseIfInUse: %d %s", w.Code, w.Body)
	}
	// Without the flag the role goes, and its assignment with it.
	if w := do("PUT", app, `{"displayName":"api","identifierUris":["api://api"],"appRoles":[]}`); w.Code != 200 {
		t.Fatalf("drop assigned: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/admin/tenants/"+fuzzTenant+"/appRoleAssignments", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"value": []`) {
		t.Fatalf("assignments after dropping the role: %d %s", w.Code, w.Body)
	}
	// Deleting an identity that has an assignment: refused with the flag,
	// done (with its assignments) without.
	if w := do("PUT", app, `{"displayName":"api","identifierUris":["api://api"],"appRoles":[{"value":"Data.Read"}]}`); w.Code != 200 {
		t.Fatal(w.Body)
	}
	if w := do("POST", "/admin/tenants/"+fuzzTenant+"/appRoleAssignments", `{"principal":"mi1","resource":"api://api","role":"Data.Read"}`); w.Code != 201 {
		t.Fatal(w.Body)
	}
	mi := IdentityPath(fuzzTenant, "00000000-0000-0000-0000-000000000000", "rg", "mi1")
	if w := do("DELETE", mi+"?refuseIfInUse=true", ""); w.Code != 409 || !strings.Contains(w.Body.String(), "0 federated credential(s) and 1 role assignment(s)") {
		t.Fatalf("delete an assigned identity with refuseIfInUse: %d %s", w.Code, w.Body)
	}
	if w := do("DELETE", app+"?refuseIfInUse=true", ""); w.Code != 409 || !strings.Contains(w.Body.String(), "1 role assignment(s)") {
		t.Fatalf("delete an assigned resource with refuseIfInUse: %d %s", w.Code, w.Body)
	}
	if w := do("DELETE", mi, ""); w.Code != 204 {
		t.Fatalf("delete the identity: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/admin/tenants/"+fuzzTenant+"/appRoleAssignments", ""); !strings.Contains(w.Body.String(), `"value": []`) {
		t.Fatalf("assignments after deleting the identity: %s", w.Body)
	}
}

func TestRequestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := NewHandler(Config{Store: memory.New(), Authorizer: allowAll{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/admin/tenants", "/admin/tenants/nope"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	want := `
# HELP wif_admin_requests_total Admin API requests by operation and HTTP status code.
# TYPE wif_admin_requests_total counter
wif_admin_requests_total{code="200",operation="getTenants"} 1
wif_admin_requests_total{code="400",operation="getTenantsItem"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "wif_admin_requests_total"); err != nil {
		t.Fatal(err)
	}
}
