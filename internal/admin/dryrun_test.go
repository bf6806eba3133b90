package admin_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/sts"
)

// TestCredentialDryRunOverHTTP: the dry-run endpoints, for an identity and
// for an application, as an admin client calls them — who may, what the
// verdict says, what a browser cannot make it do.
func TestCredentialDryRunOverHTTP(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	a, b := e.TenantA, e.TenantB
	ro := e.token(t, a, e.principal(t, a, "auditor", admin.RoleReadAll))
	none := e.token(t, a, e.principal(t, a, "nobody"))
	localB := e.token(t, b, e.principal(t, b, "local-admin", admin.RoleReadWriteAll))

	app, err := e.Store.CreateApplication(ctx, directory.Application{TenantID: a, AppID: directory.NewID(), ObjectID: directory.NewID(),
		ServicePrincipalID: directory.NewID(), DisplayName: "deployer"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: a, ParentKind: directory.ParentApplication,
		ParentClientID: app.AppID, ID: directory.NewID(), Name: "gha-main", Issuer: e.Issuer.URL, Subject: "repo:org/app:ref:refs/heads/main",
		Audiences: []string{directory.DefaultAudience}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	appTest := admin.TenantPath(a) + "/applications/" + app.AppID + "/testFederatedCredentials"
	good := e.Issuer.Mint(t, "repo:org/app:ref:refs/heads/main", directory.DefaultAudience, time.Hour)
	slash := e.Issuer.Mint(t, "repo:org/app:ref:refs/heads/main", directory.DefaultAudience+"/", time.Hour)

	decode := func(t *testing.T, r reply) sts.TestResult {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var res sts.TestResult
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(r.body), "access_token") {
			t.Fatalf("a dry run answered a token: %s", r.body)
		}
		return res
	}
	t.Run("reader passes", func(t *testing.T) {
		res := decode(t, e.do(t, ro, "POST", appTest, nil, map[string]string{"assertion": good}))
		if res.Result != "pass" || res.Credential != "gha-main" || res.Code != 0 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("audience trailing slash", func(t *testing.T) {
		res := decode(t, e.do(t, ro, "POST", appTest, nil, map[string]string{"assertion": slash}))
		if res.Result != "fail" || res.Code != 700212 || res.Error != "invalid_client" {
			t.Fatalf("%+v", res)
		}
		if len(res.Diagnosis.Credentials) != 1 || res.Diagnosis.Credentials[0].IssuerResult != "match" ||
			!strings.Contains(res.Diagnosis.Credentials[0].AudienceResult, "trailing '/'") {
			t.Fatalf("diagnosis: %+v", res.Diagnosis.Credentials)
		}
	})
	for _, tc := range []struct {
		name, token string
		hdr         map[string]string
		body        any
		status      int
		code        string
	}{
		{"no role", none, nil, map[string]string{"assertion": good}, 403, admin.CodeAuthorization},
		{"another tenant's admin", localB, nil, map[string]string{"assertion": good}, 403, admin.CodeAuthorization},
		{"no assertion", ro, nil, map[string]string{}, 400, admin.CodeValidation},
		{"a web page's text/plain post", ro, map[string]string{"Content-Type": "text/plain"}, `{"assertion":"x"}`, 415, admin.CodeUnsupportedMedia},
		{"cross-site", ro, map[string]string{"Sec-Fetch-Site": "cross-site"}, map[string]string{"assertion": good}, 403, admin.CodeAuthorization},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.token, "POST", appTest, tc.hdr, tc.body)
			if r.status != tc.status || r.err.Code != tc.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.err.Code, tc.status, tc.code, r.body)
			}
		})
	}
	t.Run("unknown application", func(t *testing.T) {
		r := e.do(t, ro, "POST", admin.TenantPath(a)+"/applications/"+directory.NewID()+"/testFederatedCredentials", nil, map[string]string{"assertion": good})
		if r.status != 404 {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
}
