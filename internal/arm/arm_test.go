package arm_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/wiftest"
)

type reply struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, env *wiftest.Env, path, token string) reply {
	t.Helper()
	req, _ := http.NewRequest("GET", env.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("x-ms-correlation-request-id", "6e1b8d2c-0000-4000-8000-000000000009")
	resp, err := env.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func TestMetadataEndpoints(t *testing.T) {
	env := wiftest.Start(t)
	// The 2015-01-01 object az cloud register reads.
	r := get(t, env, "/metadata/endpoints?api-version=2015-01-01", "")
	var old struct {
		GraphEndpoint  string `json:"graphEndpoint"`
		Authentication struct {
			LoginEndpoint string   `json:"loginEndpoint"`
			Audiences     []string `json:"audiences"`
		} `json:"authentication"`
	}
	if r.status != 200 || json.Unmarshal([]byte(r.body), &old) != nil || old.Authentication.LoginEndpoint != env.URL+"/" ||
		len(old.Authentication.Audiences) != 1 || old.Authentication.Audiences[0] != admin.AdminResource || old.GraphEndpoint != env.URL+"/" {
		t.Fatalf("2015-01-01: %d %s", r.status, r.body)
	}
	// The list az reads (2019-05-01), and from 2022-09-01 the one cloud
	// go-azure-sdk's loader (Terraform's metadata_host) reads.
	type cloud struct {
		Name            string `json:"name"`
		ResourceManager string `json:"resourceManager"`
		Authentication  struct {
			LoginEndpoint    string   `json:"loginEndpoint"`
			Audiences        []string `json:"audiences"`
			IdentityProvider string   `json:"identityProvider"`
		} `json:"authentication"`
		MicrosoftGraphResourceID string `json:"microsoftGraphResourceId"`
	}
	ok := func(c cloud) bool {
		return c.Name == "wif" && c.ResourceManager == env.URL+"/" && c.Authentication.Audiences[0] == admin.AdminResource &&
			c.Authentication.IdentityProvider == "AAD" && c.MicrosoftGraphResourceID == env.URL+"/"
	}
	r = get(t, env, "/metadata/endpoints?api-version=2019-05-01", "")
	var clouds []cloud
	if r.status != 200 || json.Unmarshal([]byte(r.body), &clouds) != nil || len(clouds) != 1 || !ok(clouds[0]) {
		t.Fatalf("2019-05-01: %d %s", r.status, r.body)
	}
	r = get(t, env, "/metadata/endpoints?api-version=2022-09-01", "")
	var one cloud
	if r.status != 200 || json.Unmarshal([]byte(r.body), &one) != nil || !ok(one) {
		t.Fatalf("2022-09-01: %d %s", r.status, r.body)
	}
	r = get(t, env, "/metadata/endpoints", "")
	if r.status != 400 || r.body != `{"error":{"code":"MissingApiVersionParameter","message":"The api-version query parameter (?api-version=) is required for all requests."}}`+"\n" {
		t.Fatalf("no api-version: %d %s", r.status, r.body)
	}
	if r.header.Get("x-ms-correlation-request-id") != "6e1b8d2c-0000-4000-8000-000000000009" || r.header.Get("x-ms-request-id") == "" {
		t.Errorf("request id headers %v", r.header)
	}
}

func TestSubscriptionsAndTenantsFollowTheToken(t *testing.T) {
	env := wiftest.Start(t)
	ctx := context.Background()
	app, err := admin.EnsureAdminApp(ctx, env.Store, env.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
	reader := env.CreateManagedIdentity(t, "reader")
	env.Assign(t, reader.PrincipalID, app.AppID, admin.RoleReadAll)
	workload := env.CreateManagedIdentity(t, "workload")
	readerTok := env.Token(t, reader.ClientID, admin.AdminResource+"/.default")
	workloadTok := env.Token(t, workload.ClientID, admin.AdminResource+"/.default")

	var subs struct {
		Value []struct {
			ID, SubscriptionID, TenantID, State string
		} `json:"value"`
		Count struct{ Value int } `json:"count"`
	}
	r := get(t, env, "/subscriptions?api-version=2022-12-01", readerTok)
	if r.status != 200 || json.Unmarshal([]byte(r.body), &subs) != nil || len(subs.Value) != 1 || subs.Count.Value != 1 ||
		subs.Value[0].ID != "/subscriptions/"+reader.SubscriptionID || subs.Value[0].TenantID != env.TenantID || subs.Value[0].State != "Enabled" {
		t.Fatalf("reader: %d %s", r.status, r.body)
	}
	// A workload token holds no admin role: it sees no subscription.
	r = get(t, env, "/subscriptions?api-version=2022-12-01", workloadTok)
	if r.status != 200 || !strings.Contains(r.body, `"value":[]`) {
		t.Fatalf("workload: %d %s", r.status, r.body)
	}
	r = get(t, env, "/tenants?api-version=2022-12-01", workloadTok)
	if r.status != 200 || !strings.Contains(r.body, `"tenantId":"`+env.TenantID+`"`) || !strings.Contains(r.body, `"value":1`) {
		t.Fatalf("tenants: %d %s", r.status, r.body)
	}
	for _, tok := range []string{"", "not.a.token"} {
		r = get(t, env, "/subscriptions?api-version=2022-12-01", tok)
		if r.status != 401 || !strings.HasPrefix(r.body, `{"error":{"code":"AuthenticationFailed","message":"`) ||
			!strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer authorization_uri="`+env.URL+`/common/oauth2/authorize"`) {
			t.Fatalf("token %q: %d %s %v", tok, r.status, r.body, r.header)
		}
	}
}
