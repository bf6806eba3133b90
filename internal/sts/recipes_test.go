package sts_test

import (
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestSourceRecipes backs the README's "Federating other platforms": for
// each platform, a token with exactly that platform's claim shape (signed
// by a test issuer serving a discovery document and JWKS as the platform
// does), exchanged against the credential the README gives; a near miss
// of the same platform is refused with the code the README names.
func TestSourceRecipes(t *testing.T) {
	env := wiftest.Start(t)
	env.CreateResourceApp(t, "api://deploy-api", 2)
	now := time.Now()
	base := func(sub string, extra map[string]any) map[string]any {
		c := map[string]any{"iss": env.Issuer.URL, "sub": sub, "aud": directory.DefaultAudience,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": directory.NewID()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	github := func(sub string, extra map[string]any) map[string]any {
		c := map[string]any{"repository": "contoso/app", "repository_owner": "contoso", "repository_id": "789012", "repository_owner_id": "123456",
			"ref": "refs/heads/main", "ref_type": "branch", "sha": "e5d3f0c1", "workflow": "deploy", "job_workflow_ref": "contoso/app/.github/workflows/deploy.yml@refs/heads/main",
			"event_name": "push", "actor": "octocat", "run_id": "4242", "runner_environment": "github-hosted"}
		for k, v := range extra {
			c[k] = v
		}
		return base(sub, c)
	}
	gitlab := base("project_path:contoso/app:ref_type:branch:ref:main", map[string]any{"namespace_path": "contoso", "project_path": "contoso/app",
		"project_id": "42", "ref": "main", "ref_type": "branch", "ref_protected": "true", "pipeline_source": "push", "user_login": "dev", "ci_config_ref_uri": "gitlab.com/contoso/app//.gitlab-ci.yml@refs/heads/main"})
	tfc := base("organization:contoso:project:Default Project:workspace:prod-infra:run_phase:apply", map[string]any{"terraform_organization_name": "contoso",
		"terraform_project_name": "Default Project", "terraform_workspace_name": "prod-infra", "terraform_run_phase": "apply", "terraform_run_id": "run-abc"})
	for _, tc := range []struct {
		name     string
		subject  string // the credential's subject, or
		expr     string // its claims expression
		ok, miss map[string]any
		missCode int
	}{
		{name: "github-branch", subject: "repo:contoso/app:ref:refs/heads/main",
			ok: github("repo:contoso/app:ref:refs/heads/main", nil), miss: github("repo:contoso/app:ref:refs/heads/dev", map[string]any{"ref": "refs/heads/dev"}), missCode: 700213},
		{name: "github-environment", subject: "repo:contoso/app:environment:prod",
			ok: github("repo:contoso/app:environment:prod", map[string]any{"environment": "prod"}), miss: github("repo:contoso/app:environment:staging", map[string]any{"environment": "staging"}), missCode: 700213},
		{name: "github-pull-request", subject: "repo:contoso/app:pull_request",
			ok: github("repo:contoso/app:pull_request", map[string]any{"event_name": "pull_request"}), miss: github("repo:contoso/other:pull_request", nil), missCode: 700213},
		{name: "github-numeric-ids", subject: "repository_owner_id:123456:repository_id:789012:ref:refs/heads/main",
			ok: github("repository_owner_id:123456:repository_id:789012:ref:refs/heads/main", nil), miss: github("repository_owner_id:123456:repository_id:999999:ref:refs/heads/main", nil), missCode: 700213},
		{name: "github-any-branch", expr: "claims['sub'] matches 'repo:contoso/app:ref:refs/heads/*'",
			ok: github("repo:contoso/app:ref:refs/heads/feature-x", nil), miss: github("repo:contoso/app:ref:refs/tags/v1", nil), missCode: 700213},
		{name: "gitlab", subject: "project_path:contoso/app:ref_type:branch:ref:main",
			ok: gitlab, miss: base("project_path:contoso/app:ref_type:branch:ref:feature", nil), missCode: 700213},
		{name: "terraform-cloud", subject: "organization:contoso:project:Default Project:workspace:prod-infra:run_phase:apply",
			ok: tfc, miss: base("organization:contoso:project:Default Project:workspace:prod-infra:run_phase:plan", nil), missCode: 700213},
		{name: "vm-wif-issuer", subject: "system:serviceaccount:vm:backup-agent",
			ok:   base("system:serviceaccount:vm:backup-agent", map[string]any{"kubernetes.io": map[string]any{"namespace": "vm", "serviceaccount": map[string]any{"name": "backup-agent"}}}),
			miss: base("system:serviceaccount:vm:other", nil), missCode: 700213},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mi := env.CreateManagedIdentity(t, "id-"+tc.name)
			f := directory.FederatedCredential{TenantID: env.TenantID, ParentKind: directory.ParentManagedIdentity, ParentClientID: mi.ClientID,
				ID: directory.NewID(), Name: "recipe", Issuer: env.Issuer.URL, Subject: tc.subject, Audiences: []string{directory.DefaultAudience}}
			if tc.expr != "" {
				f.Subject, f.ClaimsMatchingExpression = "", &directory.ClaimsMatchingExpression{Value: tc.expr, LanguageVersion: 1}
			}
			if _, err := env.Store.CreateFederatedCredential(t.Context(), f); err != nil {
				t.Fatal(err)
			}
			env.Changed(t)
			r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, env.Issuer.MintClaims(t, tc.ok), "api://deploy-api/.default"))
			if r.Status != 200 {
				t.Fatalf("the recipe's token: %d %s", r.Status, r.Raw)
			}
			r = env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, env.Issuer.MintClaims(t, tc.miss), "api://deploy-api/.default"))
			codes, _ := r.Body["error_codes"].([]any)
			if r.Status != 401 || len(codes) != 1 || codes[0] != float64(tc.missCode) {
				t.Fatalf("the near miss: %d %s", r.Status, r.Raw)
			}
		})
	}
}
