package graph

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
// queries and bodies, not authorization (graph_test.go tests that with
// real tokens).
type allowAll struct{}

const fuzzTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func (allowAll) Authorize(*http.Request, admin.Operation) (admin.Caller, error) {
	return admin.Caller{Unrestricted: true, TenantID: fuzzTenant}, nil
}

func (allowAll) Identify(*http.Request) (admin.Caller, error) {
	return admin.Caller{Unrestricted: true, TenantID: fuzzTenant}, nil
}

const (
	fuzzApp   = "0ea4d539-3998-43a6-b30d-317889dc34cd"
	fuzzAppOb = "1ea4d539-3998-43a6-b30d-317889dc34cd"
	fuzzAppSP = "2ea4d539-3998-43a6-b30d-317889dc34cd"
)

func fuzzHandler(t testing.TB) *Handler {
	st := memory.New()
	ctx := context.Background()
	if _, err := st.CreateTenant(ctx, directory.Tenant{ID: fuzzTenant, DisplayName: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateApplication(ctx, directory.Application{TenantID: fuzzTenant, AppID: fuzzApp, ObjectID: fuzzAppOb, ServicePrincipalID: fuzzAppSP,
		DisplayName: "api", IdentifierURIs: []string{"api://api"}, AppRoles: []directory.AppRole{{ID: directory.NewID(), Value: "Data.Read", AllowedMemberTypes: []string{"Application"}, IsEnabled: true}}}); err != nil {
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

// FuzzGraphRequest sends arbitrary methods, paths, queries and bodies
// below /v1.0/: never a panic or a 500, and every refusal is Graph's
// error envelope.
func FuzzGraphRequest(f *testing.F) {
	f.Add("GET", "/v1.0/applications", "$filter=startswith(displayName,'a')&$top=1", ``)
	f.Add("POST", "/v1.0/applications", "", `{"displayName":"x","identifierUris":["api://x"],"api":{"requestedAccessTokenVersion":2}}`)
	f.Add("PATCH", "/v1.0/applications/"+fuzzAppOb, "", `{"appRoles":[{"value":"R"}]}`)
	f.Add("POST", "/v1.0/applications/"+fuzzAppOb+"/federatedIdentityCredentials", "", `{"name":"c","issuer":"https://i.example","subject":"s"}`)
	f.Add("PATCH", "/v1.0/applications(appId='"+fuzzApp+"')/federatedIdentityCredentials/c", "", `{"subject":"t"}`)
	f.Add("GET", "/v1.0/servicePrincipals", "$filter=appId eq '"+fuzzApp+"'&$skiptoken=MQ", ``)
	f.Add("POST", "/v1.0/servicePrincipals/"+fuzzAppSP+"/appRoleAssignedTo", "", `{"principalId":"`+fuzzAppSP+`","resourceId":"`+fuzzAppSP+`","appRoleId":"x"}`)
	f.Add("DELETE", "/v1.0/servicePrincipals/"+fuzzAppSP+"/appRoleAssignments/x", "", ``)
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if !strings.HasPrefix(path, Prefix) || strings.ContainsAny(path, "?# \t\r\n") {
			return
		}
		switch method {
		case "GET", "POST", "PATCH", "DELETE", "PUT":
		default:
			return
		}
		r := httptest.NewRequest("GET", "https://wif.example/", strings.NewReader(body))
		u, err := r.URL.Parse(path)
		if err != nil {
			return
		}
		r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery = method, u.Path, u.RawPath, query
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s %q: %d %s", method, path, query, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e struct {
				Error struct {
					Code, Message string
					InnerError    map[string]string
				}
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" || e.Error.InnerError["request-id"] == "" {
				t.Fatalf("%s %s: %d refusal is not Graph's envelope: %s", method, path, w.Code, w.Body)
			}
		}
	})
}
