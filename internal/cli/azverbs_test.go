package cli

import (
	"strings"
	"testing"
)

// TestAzVerbs: what az users type beyond create/show/list/delete — update
// verbs, flexible credentials, az role assignment's shape, a tenant group
// — against a real token service, and a group without a verb fails.
func TestAzVerbs(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	q := func(want string, args ...string) {
		t.Helper()
		out, _ := mustRun(t, env, args...)
		if got := strings.TrimSpace(out); got != want {
			t.Fatalf("wif %s:\n got %q\nwant %q", strings.Join(args, " "), got, want)
		}
	}
	fails := func(want string, args ...string) {
		t.Helper()
		_, _, err := run(t, env, "", args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("wif %s: %v, want %q", strings.Join(args, " "), err, want)
		}
	}
	mustRun(t, env, "identity", "create", "-n", "payments", "-g", "rg", "--tags", "team=a")
	mustRun(t, env, "identity", "update", "-n", "payments", "-g", "rg", "--tags", "team=b,tier=1")
	q("b\n1", "identity", "show", "-n", "payments", "-g", "rg", "--query", "[tags.team, tags.tier]", "-o", "tsv")
	clientID, _ := mustRun(t, env, "identity", "show", "-n", "payments", "-g", "rg", "--query", "clientId", "-o", "tsv")
	clientID = strings.TrimSpace(clientID)

	// A flexible credential; then an update to a plain subject.
	const expr = "claims['sub'] matches 'repo:contoso/*:environment:prod'"
	mustRun(t, env, "identity", "federated-credential", "create", "--name", "gha", "--identity-name", "payments", "-g", "rg",
		"--issuer", "https://token.actions.githubusercontent.com", "--claims-matching-expression", expr, "--skip-issuer-check")
	q(expr, "identity", "federated-credential", "show", "--name", "gha", "--identity-name", "payments", "-g", "rg", "--query", "claimsMatchingExpression.value", "-o", "tsv")
	fails("give --subject or --claims-matching-expression, not both", "identity", "federated-credential", "create", "--name", "x1x", "--identity-name", "payments", "-g", "rg",
		"--issuer", "https://i.example", "--subject", "s", "--claims-matching-expression", expr, "--skip-issuer-check")
	fails("give --subject (e.g. system:serviceaccount:<namespace>:<name>) or --claims-matching-expression", "identity", "federated-credential", "create", "--name", "x1x",
		"--identity-name", "payments", "-g", "rg", "--issuer", "https://i.example", "--skip-issuer-check")
	mustRun(t, env, "identity", "federated-credential", "update", "--name", "gha", "--identity-name", "payments", "--resource-group", "rg",
		"--subject", "repo:contoso/payments:environment:prod")
	q("repo:contoso/payments:environment:prod\nhttps://token.actions.githubusercontent.com", "identity", "federated-credential", "show", "--name", "gha",
		"--identity-name", "payments", "-g", "rg", "--query", "[subject, issuer]", "-o", "tsv")
	q("", "identity", "federated-credential", "show", "--name", "gha", "--identity-name", "payments", "-g", "rg", "--query", "claimsMatchingExpression", "-o", "tsv")

	// Applications.
	appID, _ := mustRun(t, env, "app", "create", "--display-name", "ledger", "--identifier-uris", "api://ledger", "--app-role", "Data.Read", "--query", "appId", "-o", "tsv")
	appID = strings.TrimSpace(appID)
	mustRun(t, env, "app", "update", "--id", appID, "--display-name", "ledger-api")
	q("ledger-api", "app", "show", "--id", appID, "--query", "displayName", "-o", "tsv")
	fails("nothing to update", "app", "update", "--id", appID)
	mustRun(t, env, "app", "federated-credential", "create", "--id", appID, "--name", "deploy", "--issuer", "https://i.example", "--subject", "a", "--skip-issuer-check")
	mustRun(t, env, "app", "federated-credential", "update", "--id", appID, "-n", "deploy", "--subject", "b", "--description", "CD")
	q("b\nCD", "app", "federated-credential", "show", "--id", appID, "--federated-credential-id", "deploy", "--query", "[subject, description]", "-o", "tsv")

	// az role assignment's shape; --assignee by name or client id.
	mustRun(t, env, "role", "assignment", "create", "--assignee", "payments", "--role", "Data.Read", "--scope", "api://ledger")
	q("payments\tapi://ledger\tData.Read", "role", "assignment", "list", "--assignee", clientID, "--query", "[].[principal, resource, role]", "-o", "tsv")
	q("[]", "role", "assignment", "list", "--scope", "api://other", "-o", "json")
	mustRun(t, env, "role", "assignment", "delete", "--assignee", clientID, "--role", "Data.Read", "--scope", "api://ledger")
	q("[]", "role", "assignment", "list", "--assignee", "payments", "-o", "json")
	fails("give --ids, or all of --assignee, --role and --scope", "role", "assignment", "delete", "--assignee", "payments")
	mustRun(t, env, "role", "assign", "--assignee", "payments", "--role", "Data.Read", "--resource", "api://ledger")
	mustRun(t, env, "role", "unassign", "--assignee", "payments", "--role", "Data.Read", "--resource", "api://ledger")
	q("[]", "role", "list", "-o", "json")
	fails(`no assignment of role "Data.Read" of "api://ledger" to "payments"`, "role", "unassign", "--assignee", "payments", "--role", "Data.Read", "--resource", "api://ledger")

	// Tenants.
	const fabrikam = "44444444-4444-4444-8444-444444444444"
	mustRun(t, env, "tenant", "create", "--display-name", "Fabrikam", "--tenant-id", fabrikam)
	q("Contoso\nFabrikam", "tenant", "list", "--query", "sort_by(@, &displayName)[].displayName", "-o", "tsv")
	q("Fabrikam", "tenant", "show", "--tenant-id", fabrikam, "--query", "displayName", "-o", "tsv")
	fails("add --yes", "tenant", "delete", "--tenant-id", fabrikam)
	mustRun(t, env, "tenant", "delete", "--tenant-id", fabrikam, "--yes")
	fails("404", "tenant", "show", "--tenant-id", fabrikam)

	// az ad sp list finds a managed identity's appId (its client id), as
	// in Entra, and applications' too.
	q(clientID, "ad", "sp", "list", "--display-name", "payments", "--query", "[0].appId", "-o", "tsv")
	q("ManagedIdentity", "ad", "sp", "show", "--id", clientID, "--query", "servicePrincipalType", "-o", "tsv")
	q("Application\n"+appID, "ad", "sp", "list", "--display-name", "ledger-api", "--query", "[0].[servicePrincipalType, appId]", "-o", "tsv")
	fails("404", "ad", "sp", "show", "--id", "99999999-9999-4999-8999-999999999999")

	// One name per concept: token get's --tenant-id works on the admin
	// commands too.
	q("payments", "identity", "list", "--tenant-id", e.Tenant, "--query", "[].name", "-o", "tsv")

	// A group without a verb fails, naming its verbs.
	fails(`"wif identity federated-credential" needs a command: create, delete, list, show, test, update`, "identity", "federated-credential")
	fails(`"frobnicate" is not a command of "wif app"`, "app", "frobnicate")
}
