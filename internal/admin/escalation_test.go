package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

// TestNoEscalation runs every built-in admin role, with real bearer tokens
// through the production authorizer, against identities holding each admin
// role, for every write that changes what an identity can do: a caller
// must hold every admin permission of the identity it changes.
func TestNoEscalation(t *testing.T) {
	e := startEnv(t)
	a, b := e.TenantA, e.TenantB // a is the operator tenant
	ctx := context.Background()

	callers := map[string]string{
		"operator admin":   e.token(t, a, e.principal(t, a, "c-root", admin.RoleReadWriteAll)),
		"operator reader":  e.token(t, a, e.principal(t, a, "c-auditor", admin.RoleReadAll)),
		"contributor":      e.token(t, a, e.principal(t, a, "c-pipeline", admin.RoleManagedIdentityContributor)),
		"no role":          e.token(t, a, e.principal(t, a, "c-nobody")),
		"tenant-b admin":   e.token(t, b, e.principal(t, b, "c-local", admin.RoleReadWriteAll)),
		"tenant-b contrib": e.token(t, b, e.principal(t, b, "c-local-pipeline", admin.RoleManagedIdentityContributor)),
	}
	// A data application whose role is not an admin permission.
	data, err := e.Store.CreateApplication(ctx, directory.Application{TenantID: a, AppID: directory.NewID(), ObjectID: directory.NewID(),
		ServicePrincipalID: directory.NewID(), DisplayName: "data", IdentifierURIs: []string{"api://data"},
		AppRoles: []directory.AppRole{{ID: directory.NewID(), Value: "Data.Read", AllowedMemberTypes: []string{"Application"}, IsEnabled: true}}})
	if err != nil {
		t.Fatal(err)
	}

	type target struct {
		tid  string
		mi   directory.ManagedIdentity
		role string // the admin role it holds ("" none)
	}
	mk := func(tid, name, role string) target {
		var roles []string
		if role != "" {
			roles = append(roles, role)
		}
		return target{tid, e.principal(t, tid, name, roles...), role}
	}
	// The status each caller must get on a write to each target: 2xx,
	// 403 by scope (the role never allows the write), or 403 because the
	// target holds more than the caller ("escalation").
	const ok, scope, esc = "ok", "scope", "escalation"
	targets := []struct {
		t    target
		want map[string]string
	}{
		{mk(a, "t-admin", admin.RoleReadWriteAll), map[string]string{"operator admin": ok, "operator reader": scope, "contributor": esc, "no role": scope, "tenant-b admin": scope, "tenant-b contrib": scope}},
		{mk(a, "t-reader", admin.RoleReadAll), map[string]string{"operator admin": ok, "operator reader": scope, "contributor": esc, "no role": scope, "tenant-b admin": scope, "tenant-b contrib": scope}},
		{mk(a, "t-contrib", admin.RoleManagedIdentityContributor), map[string]string{"operator admin": ok, "operator reader": scope, "contributor": ok, "no role": scope, "tenant-b admin": scope, "tenant-b contrib": scope}},
		{mk(a, "t-workload", ""), map[string]string{"operator admin": ok, "operator reader": scope, "contributor": ok, "no role": scope, "tenant-b admin": scope, "tenant-b contrib": scope}},
		{mk(b, "t-b-admin", admin.RoleReadWriteAll), map[string]string{"operator admin": ok, "operator reader": scope, "contributor": scope, "no role": scope, "tenant-b admin": ok, "tenant-b contrib": esc}},
		{mk(b, "t-b-workload", ""), map[string]string{"operator admin": ok, "operator reader": scope, "contributor": scope, "no role": scope, "tenant-b admin": ok, "tenant-b contrib": ok}},
	}
	check := func(t *testing.T, r reply, want string) {
		t.Helper()
		switch want {
		case ok:
			if r.status >= 300 {
				t.Fatalf("got %d, want success: %s", r.status, r.body)
			}
		case scope, esc:
			if r.status != http.StatusForbidden || r.err.Code != admin.CodeAuthorization {
				t.Fatalf("got %d %q, want 403 %s: %s", r.status, r.err.Code, admin.CodeAuthorization, r.body)
			}
			if got := strings.Contains(r.err.Message, "missing permission"); got != (want == esc) {
				t.Fatalf("refusal %q: want it to be for %s", r.err.Message, want)
			}
		}
	}
	n := 0
	for _, tg := range targets {
		for caller, token := range callers {
			want := tg.want[caller]
			base := identityURL(tg.t.tid, "admins", tg.t.mi.Name)
			t.Run(fmt.Sprintf("%s on %s", caller, tg.t.mi.Name), func(t *testing.T) {
				n++
				cred := fmt.Sprintf("x-%d", n)
				// Create a credential: the caller's own platform identity
				// would then sign in as the target.
				check(t, e.do(t, token, "PUT", base+"/federatedIdentityCredentials/"+cred, nil, map[string]any{"properties": map[string]any{
					"issuer": e.Issuer.URL, "subject": "system:serviceaccount:attacker:" + cred}}), want)
				// Update the existing credential to another subject.
				check(t, e.do(t, token, "PUT", base+"/federatedIdentityCredentials/ci-cred", nil, map[string]any{"properties": map[string]any{
					"issuer": e.Issuer.URL, "subject": "system:serviceaccount:default:" + tg.t.mi.Name}}), want)
				// Change the identity object itself.
				check(t, e.do(t, token, "PATCH", base, nil, map[string]any{"tags": map[string]string{"touched": cred}}), want)
			})
		}
	}

	// Role assignments and app role edits: only directory admins may make
	// them at all; what they grant is checked against what they hold.
	workload := targets[3].t.mi
	adminApp := e.adminAppOf(t, a)
	assign := func(role string) map[string]any {
		return map[string]any{"principalId": workload.PrincipalID, "resourceAppId": adminApp.AppID, "appRoleId": roleID(adminApp, role)}
	}
	for _, tt := range []struct {
		caller, role, want string
	}{
		{"contributor", admin.RoleReadWriteAll, scope},
		{"contributor", admin.RoleManagedIdentityContributor, scope},
		{"operator reader", admin.RoleReadAll, scope},
		{"tenant-b admin", admin.RoleReadWriteAll, scope},
		{"operator admin", admin.RoleManagedIdentityContributor, ok},
	} {
		t.Run("assign "+tt.role+" as "+tt.caller, func(t *testing.T) {
			check(t, e.do(t, callers[tt.caller], "POST", "/admin/tenants/"+a+"/appRoleAssignments", nil, assign(tt.role)), tt.want)
		})
	}
	// Renaming the reader role to the writer's value would hand every
	// reader write access: an app role edit of the admin application.
	renamed := map[string]any{"appRoles": []map[string]any{{"id": admin.RoleIDReadAll, "value": admin.RoleReadWriteAll + ".2"}}}
	for caller, want := range map[string]string{"contributor": scope, "operator reader": scope, "tenant-b admin": scope} {
		t.Run("edit admin app roles as "+caller, func(t *testing.T) {
			check(t, e.do(t, callers[caller], "PATCH", "/admin/tenants/"+a+"/applications/"+adminApp.AppID, nil, renamed), want)
		})
	}
	_ = data
}

// TestContributorCannotBecomeAdmin is the attack of the security review,
// end to end: a ManagedIdentityContributor adds a credential trusting its
// own platform token to the bootstrap admin identity, then exchanges that
// token as the admin. The first step is refused, so the second fails.
func TestContributorCannotBecomeAdmin(t *testing.T) {
	e := startEnv(t)
	a := e.TenantA
	adminMI := e.principal(t, a, "wif-admin", admin.RoleReadWriteAll)
	pipeline := e.principal(t, a, "pipeline", admin.RoleManagedIdentityContributor)
	token := e.token(t, a, pipeline)

	r := e.do(t, token, "PUT", identityURL(a, "admins", "wif-admin")+"/federatedIdentityCredentials/takeover", nil, map[string]any{
		"properties": map[string]any{"issuer": e.Issuer.URL, "subject": "system:serviceaccount:default:pipeline"}})
	if r.status != http.StatusForbidden {
		t.Fatalf("contributor added a credential to the admin identity: %d %s", r.status, r.body)
	}
	for _, want := range []string{`managed identity "wif-admin"`, admin.RoleReadWriteAll, "missing permission", "operator tenant"} {
		if !strings.Contains(r.err.Message, want) {
			t.Errorf("refusal %q does not say %q", r.err.Message, want)
		}
	}
	// The pipeline's own platform token, presented as the admin identity.
	assertion := e.Issuer.Mint(t, "system:serviceaccount:default:pipeline", directory.DefaultAudience, time.Hour)
	resp, err := e.Client.PostForm(e.URL+"/"+a+"/oauth2/v2.0/token", map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {adminMI.ClientID}, "scope": {admin.AdminResource + "/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("exchange as the admin identity: %d, want 401", resp.StatusCode)
	}
	// The contributor still manages workload identities.
	if r := e.do(t, token, "PUT", identityURL(a, "apps", "web"), nil, map[string]any{"location": "westeurope"}); r.status != http.StatusCreated {
		t.Fatalf("create a workload identity: %d %s", r.status, r.body)
	}
	if r := e.do(t, token, "PUT", identityURL(a, "apps", "web")+"/federatedIdentityCredentials/k8s", nil, map[string]any{
		"properties": map[string]any{"issuer": e.Issuer.URL, "subject": "system:serviceaccount:web:web"}}); r.status != http.StatusCreated {
		t.Fatalf("credential on a workload identity: %d %s", r.status, r.body)
	}
	// Nor may it delete the admin identity or its credential.
	if r := e.do(t, token, "DELETE", identityURL(a, "admins", "wif-admin")+"/federatedIdentityCredentials/ci-cred", nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("delete the admin's credential: %d %s", r.status, r.body)
	}
	if r := e.do(t, token, "DELETE", identityURL(a, "admins", "wif-admin"), nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("delete the admin identity: %d %s", r.status, r.body)
	}
}

func (e *env) adminAppOf(t *testing.T, tid string) directory.Application {
	t.Helper()
	app, err := e.Store.GetApplication(context.Background(), tid, e.adminApp[tid].AppID)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func roleID(a directory.Application, value string) string {
	for _, r := range a.AppRoles {
		if r.Value == value {
			return r.ID
		}
	}
	return ""
}
