package sts_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestAuthorityHostWithPath: AZURE_AUTHORITY_HOST set to host + tenant, as
// users do, makes the SDK ask for /<tenant>/<tenant>/...: the answer is
// Entra-shaped and says the authority must be the host root — through
// the real azidentity and on the wire — and an unknown tenant's refusal
// says where the tenant comes from.
func TestAuthorityHostWithPath(t *testing.T) {
	s := setup(t)
	env := s.env
	opts := clientOptions(env)
	opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: env.URL + "/" + env.TenantID + "/"}
	cred, err := azidentity.NewClientAssertionCredential(env.TenantID, s.mi.ClientID,
		func(context.Context) (string, error) {
			return env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), nil
		},
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"api://provider-api/.default"}})
	if err == nil || !strings.Contains(err.Error(), "AZURE_AUTHORITY_HOST must be the token service's host root (https://host/), without a path or the tenant") {
		t.Fatalf("azidentity with a tenant in the authority host: %v", err)
	}

	post := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := env.HTTPClient.PostForm(env.URL+path, url.Values{"grant_type": {"client_credentials"}, "client_id": {s.mi.ClientID}, "scope": {"x/.default"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return resp.StatusCode, m
	}
	st, m := post("/" + env.TenantID + "/" + env.TenantID + "/oauth2/v2.0/token")
	if st != http.StatusNotFound || m["error"] != "invalid_request" || m["error_codes"].([]any)[0] != float64(9002313) ||
		!strings.Contains(m["error_description"].(string), "The path has '"+env.TenantID+"' before the tenant '"+env.TenantID+"'") {
		t.Fatalf("double tenant: %d %v", st, m)
	}
	resp, err := env.HTTPClient.Get(env.URL + "/00000000-0000-0000-0000-000000000bad/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	m = map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if st = resp.StatusCode; st != http.StatusBadRequest || m["error_codes"].([]any)[0] != float64(90002) ||
		!strings.Contains(m["error_description"].(string), "wif hint: the tenant is the path segment after AZURE_AUTHORITY_HOST: check AZURE_TENANT_ID") {
		t.Fatalf("unknown tenant: %d %v", st, m)
	}
}
