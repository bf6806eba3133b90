package arm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store/memory"
)

// allowAll lets every request through: the fuzz target exercises paths,
// query strings and bodies, not authorization (resources_test.go tests
// that with real tokens).
type allowAll struct{}

const fuzzTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func (allowAll) Authorize(*http.Request, admin.Operation) (admin.Caller, error) {
	return admin.Caller{Unrestricted: true, TenantID: fuzzTenant}, nil
}

func (allowAll) Identify(*http.Request) (admin.Caller, error) {
	return admin.Caller{Unrestricted: true, TenantID: fuzzTenant}, nil
}

func fuzzHandler(t testing.TB) *Handler {
	st := memory.New()
	ctx := context.Background()
	if _, err := st.CreateTenant(ctx, directory.Tenant{ID: fuzzTenant, DisplayName: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: fuzzTenant, SubscriptionID: "00000000-0000-0000-0000-000000000001",
		ResourceGroup: "rg", Name: "mi1", ClientID: directory.NewID(), PrincipalID: directory.NewID()}); err != nil {
		t.Fatal(err)
	}
	ah, err := admin.NewHandler(admin.Config{Store: st, Authorizer: allowAll{}, MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Store: st, Identify: allowAll{}, Admin: ah, PublicURL: "https://wif.example"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzResourceManagerRequest sends arbitrary methods, paths, queries and
// bodies below /subscriptions/: never a panic or a 500, and every refusal
// is ARM's error document with its request headers.
func FuzzResourceManagerRequest(f *testing.F) {
	const mi = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi1"
	f.Add("PUT", mi, "api-version=2023-01-31", `{"location":"westeurope","tags":{"a":"b"}}`)
	f.Add("PUT", mi+"/federatedIdentityCredentials/c1", "api-version=2024-11-30", `{"properties":{"issuer":"https://i.example","subject":"s","audiences":["api://AzureADTokenExchange"]}}`)
	f.Add("PATCH", mi, "api-version=2022-01-31-preview", `{"tags":null}`)
	f.Add("PUT", "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/g%2F1", "api-version=2021-04-01", `{"location":"x"}`)
	f.Add("DELETE", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg", "api-version=2021-04-01", ``)
	f.Add("GET", "/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.ManagedIdentity/userAssignedIdentities", "api-version=2023-01-31&$top=1&$skipToken=MQ", ``)
	f.Add("GET", "/subscriptions/x/../../admin", "api-version=2023-01-31", ``)
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if !strings.HasPrefix(path, "/subscriptions/") || strings.ContainsAny(path, "?# \t\r\n") || !validMethod(method) {
			return
		}
		r := httptest.NewRequest("GET", "https://wif.example/", strings.NewReader(body))
		r.Method = method
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = "", "", query
		if err := setEscapedPath(r, path); err != nil {
			return
		}
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.Resources(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s %q: %d %s", method, path, query, body, w.Code, w.Body)
		}
		if w.Header().Get("x-ms-request-id") == "" {
			t.Fatalf("%s %s: no x-ms-request-id", method, path)
		}
		if w.Code >= 400 && method != "HEAD" {
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s: %d refusal is not ARM's error document: %s", method, path, w.Code, w.Body)
			}
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "PUT", "PATCH", "DELETE", "POST":
		return true
	}
	return false
}

func setEscapedPath(r *http.Request, escaped string) error {
	u, err := r.URL.Parse(escaped)
	if err != nil {
		return err
	}
	r.URL.Path, r.URL.RawPath = u.Path, u.RawPath
	return nil
}
