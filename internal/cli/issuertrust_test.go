package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/admin"
)

// The issuer-trust and issuer-set commands as an admin types them, against
// a real token service: an air-gapped cluster's JWKS piped in, SPIRE's
// ES256 allowed, an issuer set for two clusters.
func TestIssuerTrustCommands(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	jwks, err := os.ReadFile("testdata/cluster-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, env, string(jwks), "issuer-trust", "create", "-n", "air-gapped", "--issuer", "https://kubernetes.default.svc.cluster.local", "--jwks-file", "-", "--max-token-lifetime", "1h", "-o", "json")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	var got admin.TrustedIssuerResource
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.KeySource != "jwks" || len(got.Keys) != 1 || got.Keys[0].KID != "cluster-key-1" || got.KeysUpdatedAt == nil || got.MaxTokenLifetimeSeconds != 3600 {
		t.Fatalf("created: %s", out)
	}
	// Creating it again does not overwrite it.
	if _, errOut, err := run(t, env, string(jwks), "issuer-trust", "create", "-n", "air-gapped", "--issuer", "https://other.example", "--jwks-file", "-"); err == nil || !strings.Contains(err.Error()+errOut, "already exists") {
		t.Fatalf("second create: %v %s", err, errOut)
	}
	mustRun(t, env, "issuer-trust", "create", "-n", "spire", "--issuer", "https://oidc.spire.example.org", "--algorithms", "ES256")
	out, _ = mustRun(t, env, "issuer-trust", "update", "-n", "spire", "--algorithms", "RS256,ES256", "--require-key-use")
	if !strings.Contains(out, "RS256,ES256") {
		t.Errorf("update output:\n%s", out)
	}
	out, _ = mustRun(t, env, "issuer-trust", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "Name") || !strings.Contains(lines[2], "air-gapped") || !strings.Contains(lines[2], "jwks") ||
		!strings.Contains(lines[2], "1h0m0s") || !strings.Contains(lines[3], "spire") || !strings.Contains(lines[3], "fetched") {
		t.Errorf("list:\n%s", out)
	}
	// A key set with a private key is refused with the reason, before
	// anything is stored.
	_, errOut, err := run(t, env, `{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB","d":"AQAB"}]}`, "issuer-trust", "update", "-n", "air-gapped", "--jwks-file", "-")
	if err == nil || !strings.Contains(err.Error()+errOut, "private or symmetric key parameter") {
		t.Fatalf("private key upload: %v %s", err, errOut)
	}

	out, _ = mustRun(t, env, "issuer-set", "create", "-n", "prod", "--issuer", "https://oidc.east.example", "--issuer", "https://oidc.west.example")
	if !strings.Contains(out, "urn:wif:issuer-set:prod") {
		t.Errorf("issuer-set create:\n%s", out)
	}
	out, _ = mustRun(t, env, "issuer-set", "update", "-n", "prod", "--add-issuer", "https://oidc.north.example", "--remove-issuer", "https://oidc.west.example", "-o", "json", "--query", "issuers")
	if strings.Join(strings.Fields(out), "") != `["https://oidc.east.example","https://oidc.north.example"]` {
		t.Errorf("issuer-set update: %s", out)
	}
	// A credential names the set as its issuer.
	mustRun(t, env, "identity", "create", "--name", "payments", "--resource-group", "rg")
	mustRun(t, env, "identity", "federated-credential", "create", "--name", "all-clusters", "--identity-name", "payments", "--resource-group", "rg",
		"--issuer", "urn:wif:issuer-set:prod", "--subject", "system:serviceaccount:payments:api")
	mustRun(t, env, "issuer-trust", "delete", "-n", "spire")
	mustRun(t, env, "issuer-set", "delete", "-n", "prod")
	if _, errOut, err := run(t, env, "", "issuer-set", "show", "-n", "prod"); err == nil || !strings.Contains(err.Error()+errOut, `issuer set "prod" does not exist`) {
		t.Errorf("show after delete: %v %s", err, errOut)
	}
}
