package admin_test

import (
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/wiftest"
)

func keySet(t *testing.T, keys ...*rsa.PrivateKey) json.RawMessage {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: wiftest.KeyID(&k.PublicKey), Algorithm: "RS256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func issuersURL(tid, name string) string { return "/admin/tenants/" + tid + "/trustedIssuers/" + name }

// Who may set a tenant's trusted issuers, and who may push their keys.
func TestTrustedIssuerPermissions(t *testing.T) {
	e := startEnv(t)
	tenantAdmin := e.token(t, e.TenantB, e.principal(t, e.TenantB, "tenant-admin", admin.RoleReadWriteAll))
	contributor := e.token(t, e.TenantB, e.principal(t, e.TenantB, "contributor", admin.RoleManagedIdentityContributor))
	agentMI := e.principal(t, e.TenantB, "sync-agent")
	agent := e.token(t, e.TenantB, agentMI)
	other := e.token(t, e.TenantB, e.principal(t, e.TenantB, "other"))
	operator := e.token(t, e.TenantA, e.principal(t, e.TenantA, "operator", admin.RoleReadWriteAll))
	cluster := wiftest.NewIssuer(t)

	body := map[string]any{"issuer": cluster.URL, "keySource": "pushed", "jwks": keySet(t, cluster.Key()), "pushClientId": agentMI.ClientID}
	// A managed-identity contributor must not choose what verifies the
	// tenant's applications' credentials.
	if r := e.do(t, contributor, "PUT", issuersURL(e.TenantB, "cluster"), nil, body); r.status != 403 || r.err.Code != "AuthorizationFailed" {
		t.Fatalf("contributor PUT: %d %s", r.status, r.body)
	}
	r := e.do(t, tenantAdmin, "PUT", issuersURL(e.TenantB, "cluster"), nil, body)
	if r.status != 201 {
		t.Fatalf("tenant admin PUT: %d %s", r.status, r.body)
	}
	var got admin.TrustedIssuerResource
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.KeysUpdatedAt == nil || len(got.Keys) != 1 || got.Keys[0].KID != wiftest.KeyID(&cluster.Key().PublicKey) || got.Keys[0].KeyType != "RSA" {
		t.Fatalf("created: %s", r.body)
	}

	// The agent the object names pushes with no admin role; nobody else
	// without a role may.
	cluster.Rotate(t, true)
	push := map[string]any{"jwks": keySet(t, cluster.Key())}
	if r := e.do(t, other, "POST", issuersURL(e.TenantB, "cluster")+"/keys", nil, push); r.status != 403 || !strings.Contains(r.err.Message, "is not the pushClientId") {
		t.Fatalf("another identity's push: %d %s", r.status, r.body)
	}
	if r := e.do(t, "", "POST", issuersURL(e.TenantB, "cluster")+"/keys", nil, push); r.status != 401 {
		t.Fatalf("unauthenticated push: %d %s", r.status, r.body)
	}
	r = e.do(t, agent, "POST", issuersURL(e.TenantB, "cluster")+"/keys", nil, push)
	if r.status != 200 {
		t.Fatalf("agent push: %d %s", r.status, r.body)
	}
	var res admin.PushKeysResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	oldKID := wiftest.KeyID(&cluster.FirstKey().PublicKey)
	if !res.Changed || len(res.Retired) != 1 || res.Retired[0].KID != oldKID || len(res.Keys) != 1 {
		t.Fatalf("push result: %s", r.body)
	}
	// The same set again changes nothing (an agent re-pushes freely).
	r = e.do(t, agent, "POST", issuersURL(e.TenantB, "cluster")+"/keys", nil, push)
	if err := json.Unmarshal(r.body, &res); err != nil || r.status != 200 || res.Changed || res.Version != got.Version+1 {
		t.Fatalf("repeated push: %d %s", r.status, r.body)
	}
	// The agent's identity may push to its own object only, and do
	// nothing else.
	if r := e.do(t, agent, "GET", issuersURL(e.TenantB, "cluster"), nil, nil); r.status != 403 {
		t.Fatalf("agent GET: %d %s", r.status, r.body)
	}
	if r := e.do(t, agent, "GET", issuersURL(e.TenantB, "cluster")+"/keys", nil, nil); r.status != 200 || !strings.Contains(string(r.body), cluster.URL) {
		t.Fatalf("agent GET of its pushed issuer: %d %s", r.status, r.body)
	}
	// Another object, existing or not, answers the same 403.
	for _, n := range []string{"uploaded-later", "nope"} {
		if r := e.do(t, agent, "GET", issuersURL(e.TenantB, n)+"/keys", nil, nil); r.status != 403 {
			t.Fatalf("agent GET of %s: %d %s", n, r.status, r.body)
		}
	}
	// A key set with private material, or no usable key, is refused with
	// the reason.
	bad := map[string]any{"jwks": json.RawMessage(`{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB","d":"AQAB"}]}`)}
	if r := e.do(t, agent, "POST", issuersURL(e.TenantB, "cluster")+"/keys", nil, bad); r.status != 400 || !strings.Contains(r.err.Message, "private or symmetric key parameter") {
		t.Fatalf("private key push: %d %s", r.status, r.body)
	}
	weak := map[string]any{"jwks": json.RawMessage(`{"keys":[{"kty":"RSA","kid":"x","use":"enc","n":"AQAB","e":"AQAB"}]}`)}
	if r := e.do(t, agent, "POST", issuersURL(e.TenantB, "cluster")+"/keys", nil, weak); r.status != 400 || !strings.Contains(r.err.Message, "holds no usable public signing key") {
		t.Fatalf("unusable push: %d %s", r.status, r.body)
	}

	// Private addresses are the operator's call, never a tenant's.
	disc := map[string]any{"issuer": "https://10.0.0.7/cluster", "keySource": "discovery", "allowPrivateAddresses": true}
	if r := e.do(t, tenantAdmin, "PUT", issuersURL(e.TenantB, "internal"), nil, disc); r.status != 403 || !strings.Contains(r.err.Message, "only the operator tenant") {
		t.Fatalf("tenant admin allowPrivateAddresses: %d %s", r.status, r.body)
	}
	if r := e.do(t, operator, "PUT", issuersURL(e.TenantB, "internal"), nil, disc); r.status != 201 {
		t.Fatalf("operator allowPrivateAddresses: %d %s", r.status, r.body)
	}
	// The tenant admin may change what else it holds, but not point the
	// allowance at another address.
	disc["description"] = "cluster-1"
	if r := e.do(t, tenantAdmin, "PUT", issuersURL(e.TenantB, "internal"), nil, disc); r.status != 200 {
		t.Fatalf("tenant admin keeping the allowance: %d %s", r.status, r.body)
	}
	disc["issuer"] = "https://169.254.169.254/latest"
	if r := e.do(t, tenantAdmin, "PUT", issuersURL(e.TenantB, "internal"), nil, disc); r.status != 403 {
		t.Fatalf("tenant admin moving the allowance to another issuer: %d %s", r.status, r.body)
	}

	// A push to a jwks issuer is refused: its keys are the admin's.
	if r := e.do(t, tenantAdmin, "PUT", issuersURL(e.TenantB, "uploaded"), nil, map[string]any{"issuer": "https://uploaded.example", "jwks": keySet(t, cluster.Key())}); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	if r := e.do(t, tenantAdmin, "POST", issuersURL(e.TenantB, "uploaded")+"/keys", nil, push); r.status != http.StatusConflict {
		t.Fatalf("push to a jwks issuer: %d %s", r.status, r.body)
	}
	// A credential may name an issuer set; the set is a tenant admin's.
	set := map[string]any{"issuers": []string{cluster.URL, "https://east.example"}}
	if r := e.do(t, contributor, "PUT", "/admin/tenants/"+e.TenantB+"/issuerSets/prod", nil, set); r.status != 403 {
		t.Fatalf("contributor issuer set: %d %s", r.status, r.body)
	}
	r = e.do(t, tenantAdmin, "PUT", "/admin/tenants/"+e.TenantB+"/issuerSets/prod", nil, set)
	if r.status != 201 || !strings.Contains(string(r.body), `"credentialIssuer": "urn:wif:issuer-set:prod"`) {
		t.Fatalf("tenant admin issuer set: %d %s", r.status, r.body)
	}
}
