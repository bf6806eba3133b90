package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

// TestExportApply: wif export | wif apply -f - is a no-op on the same
// server and recreates the directory on an empty one.
func TestExportApply(t *testing.T) {
	src := startAdminEnv(t, true)
	if _, _, err := run(t, src.env(), fixture, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// Objects made by imperative commands, with generated ids, too.
	mustRun(t, src.env(), "identity", "create", "-n", "made-by-cli", "-g", "other-rg")
	mustRun(t, src.env(), "role", "assign", "--assignee", "made-by-cli", "--resource", "api://provider-api", "--role", "Data.Read")
	exported, _ := mustRun(t, src.env(), "export")
	if !strings.Contains(exported, "made-by-cli") || !strings.Contains(exported, "kubernetes-demo") {
		t.Fatalf("export lacks objects:\n%s", exported)
	}
	// export -o table: one row per object, not an empty table.
	tbl, _ := mustRun(t, src.env(), "export", "-o", "table")
	for _, want := range []string{"tenant ", "application ", "managed identity ", "federated credential ", "app role assignment ", "other-rg/made-by-cli", "made-by-cli → api://provider-api"} {
		if !strings.Contains(tbl, want) {
			t.Errorf("export -o table lacks %q:\n%s", want, tbl)
		}
	}
	out, _, err := run(t, src.env(), exported, "apply", "-f", "-", "--prune")
	if err != nil {
		t.Fatal(err)
	}
	if out != "No changes: the directory already matches the document.\n" {
		t.Fatalf("export | apply on the same server:\n%s", out)
	}
	// An empty server (no tenant at all) gets the same directory.
	dst := startAdminEnv(t, true)
	if err := dst.Store.DeleteTenant(context.Background(), dst.Tenant); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, dst.env(), exported, "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, "Plan: 10 to create, 0 to update, 0 to delete.\n") {
		t.Fatalf("apply on the empty server:\n%s", out)
	}
	again, _ := mustRun(t, dst.env(), "export")
	if again != exported {
		t.Fatalf("the recreated directory exports differently:\n--- source\n%s\n--- copy\n%s", exported, again)
	}
	// A file works as well as stdin, and a bad document fails with every fault.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("tenants:\n- id: nope\n  displayName: \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, dst.env(), "", "apply", "-f", bad)
	if err == nil || !strings.Contains(err.Error(), "tenants[0].id: must be a GUID") || !strings.Contains(err.Error(), "tenants[0].displayName: is required") {
		t.Fatalf("bad document: %v", err)
	}
}

// TestWorkloadIdentityAuth: outside dev mode the CLI authenticates with a
// workload identity of its own (a federated token file, no secret), through
// the real Azure SDK against the same token service.
func TestWorkloadIdentityAuth(t *testing.T) {
	e := startAdminEnv(t, false)
	ctx := context.Background()
	mi, err := admin.Bootstrap(ctx, e.Store, e.Tenant, e.Issuer.URL, "system:serviceaccount:ci:deployer")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	// No credentials: 401 even from loopback.
	_, _, err = run(t, e.env(), "", "identity", "list")
	if err == nil || !strings.Contains(err.Error(), "AuthenticationFailed (HTTP 401)") {
		t.Fatalf("without a token: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(e.Issuer.Mint(t, "system:serviceaccount:ci:deployer", directory.DefaultAudience, time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := e.env("WIF_CLIENT_ID", mi.ClientID, "WIF_FEDERATED_TOKEN_FILE", tokenFile)
	mustRun(t, env, "identity", "create", "-n", "from-ci", "-g", "apps")
	out, _ := mustRun(t, env, "identity", "list", "-g", "apps", "--query", "[].name", "-o", "tsv")
	if out != "from-ci\n" {
		t.Fatalf("identity list: %q", out)
	}
	// A token for a subject the credential does not trust is refused by the
	// token service itself.
	if err := os.WriteFile(tokenFile, []byte(e.Issuer.Mint(t, "system:serviceaccount:ci:intruder", directory.DefaultAudience, time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, env, "", "identity", "list")
	if err == nil || !strings.Contains(err.Error(), "AADSTS700213") {
		t.Fatalf("untrusted subject: %v", err)
	}
	if err := os.WriteFile(tokenFile, []byte(e.Issuer.Mint(t, "system:serviceaccount:ci:deployer", directory.DefaultAudience, time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	// A pod's (or a port-forwarding admin's) injected identity, on a
	// loopback URL: used, with its tenant, no flag needed.
	pod := map[string]string{"WIF_SERVER": e.URL, "WIF_CA_FILE": e.CAFile, "AZURE_CLIENT_ID": mi.ClientID,
		"AZURE_FEDERATED_TOKEN_FILE": tokenFile, "AZURE_TENANT_ID": e.Tenant}
	out, _ = mustRun(t, pod, "identity", "list", "-g", "apps", "--query", "[].name", "-o", "tsv")
	if out != "from-ci\n" {
		t.Fatalf("identity list with the pod's environment: %q", out)
	}
	// WIF_LOGIN=none (wif dev's env file) sends no token: the 401 says how
	// a new server gets its first admin.
	pod["WIF_LOGIN"] = "none"
	_, _, err = run(t, pod, "", "identity", "list")
	if err == nil || !strings.Contains(err.Error(), "started with --bootstrap-admin-issuer and --bootstrap-admin-subject") {
		t.Fatalf("none: %v", err)
	}
	// Without the CA: how to trust the server.
	delete(pod, "WIF_CA_FILE")
	delete(pod, "WIF_LOGIN")
	_, _, err = run(t, pod, "", "identity", "list")
	if err == nil || !strings.Contains(err.Error(), "x509:") || !strings.Contains(err.Error(), "the server's certificate is not trusted: for wif dev, load its environment (. .wif/env sets WIF_CA_FILE); otherwise pass --ca-file") {
		t.Fatalf("untrusted server: %v", err)
	}
}

// TestApplyFirstHourCuts: a typo names the file, line, path and the field
// meant; a dry run shows "(clientId: new)" rather than an id the real
// apply will not use; -o json of a plan with nothing to do has "changes":
// [], not null.
func TestApplyFirstHourCuts(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	dir := t.TempDir()
	typo := filepath.Join(dir, "directory.yaml")
	doc := "tenants:\n- id: " + e.Tenant + "\n  displayName: Contoso\n  managedIdentities:\n  - name: payments\n    resourceGroup: rg\n    federatedCredential:\n    - {name: k8s, issuer: https://i.example, subject: s}\n"
	if err := os.WriteFile(typo, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, env, "", "apply", "-f", typo)
	want := typo + `:7:5: unknown field "federatedCredential" in tenants[0].managedIdentities[0]; did you mean "federatedCredentials"?`
	if err == nil || err.Error() != want {
		t.Fatalf("typo:\n got %v\nwant %s", err, want)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(strings.Replace(doc, "federatedCredential:", "federatedCredentials:", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := mustRun(t, env, "apply", "-f", good, "--dry-run")
	if !strings.Contains(out, "+ managed identity rg/payments (clientId: new)\n") {
		t.Fatalf("dry run:\n%s", out)
	}
	mustRun(t, env, "apply", "-f", good)
	out, _ = mustRun(t, env, "apply", "-f", good, "-o", "json", "--query", "changes")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("nothing to do: changes = %s", out)
	}
}
