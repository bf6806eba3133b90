package directory

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const (
	tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	g1  = "11111111-1111-1111-1111-111111111111"
	g2  = "22222222-2222-2222-2222-222222222222"
	g3  = "33333333-3333-3333-3333-333333333333"
)

func goodFIC() FederatedCredential {
	return FederatedCredential{TenantID: tid, ParentKind: ParentManagedIdentity, ParentClientID: g1, ID: g2,
		Name: "kubernetes-federated-credential", Issuer: "https://oidc.prod-aks.azure.com/0eb05a4c/",
		Subject: "system:serviceaccount:platform:managed-identity-test", Audiences: []string{DefaultAudience}}
}

// wantRule asserts err is a validation failure naming field with a rule
// that mentions rule.
func wantRule(t *testing.T, err error, field, rule string) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a validation error", err)
	}
	var ve *ValidationError
	var es ValidationErrors
	if errors.As(err, &es) {
		for _, e := range es {
			if e.Field == field && strings.Contains(e.Rule, rule) {
				return
			}
		}
	} else if errors.As(err, &ve) && ve.Field == field && strings.Contains(ve.Rule, rule) {
		return
	}
	t.Fatalf("err = %v, want field %q with rule mentioning %q", err, field, rule)
}

func TestFederatedCredentialRules(t *testing.T) {
	if err := goodFIC().Validate(); err != nil {
		t.Fatalf("good credential refused: %v", err)
	}
	tests := []struct {
		name  string
		mod   func(*FederatedCredential)
		field string
		rule  string
	}{
		{"name too short", func(f *FederatedCredential) { f.Name = "ab" }, "name", "3 to 120"},
		{"name too long", func(f *FederatedCredential) { f.Name = strings.Repeat("a", 121) }, "name", "3 to 120"},
		{"name first char", func(f *FederatedCredential) { f.Name = "-abc" }, "name", "start with a letter or digit"},
		{"name chars", func(f *FederatedCredential) { f.Name = "a.b.c" }, "name", "only letters, digits"},
		{"issuer http", func(f *FederatedCredential) { f.Issuer = "http://oidc.example.com" }, "issuer", "https URL"},
		{"issuer whitespace", func(f *FederatedCredential) { f.Issuer = " https://oidc.example.com" }, "issuer", "whitespace"},
		{"issuer too long", func(f *FederatedCredential) { f.Issuer = "https://x.example/" + strings.Repeat("a", 600) }, "issuer", "at most 600"},
		{"issuer missing", func(f *FederatedCredential) { f.Issuer = "" }, "issuer", "required"},
		{"subject missing", func(f *FederatedCredential) { f.Subject = "" }, "subject", "required"},
		{"subject too long", func(f *FederatedCredential) { f.Subject = strings.Repeat("s", 601) }, "subject", "at most 600"},
		{"two audiences", func(f *FederatedCredential) { f.Audiences = []string{"a", "b"} }, "audiences", "exactly one"},
		{"no audience", func(f *FederatedCredential) { f.Audiences = nil }, "audiences", "exactly one"},
		{"description too long", func(f *FederatedCredential) { f.Description = strings.Repeat("d", 601) }, "description", "at most 600"},
		{"subject and expression", func(f *FederatedCredential) {
			f.ClaimsMatchingExpression = &ClaimsMatchingExpression{Value: "claims['sub'] eq 'x'", LanguageVersion: 1}
		}, "subject", "must be empty"},
		{"bad expression", func(f *FederatedCredential) {
			f.Subject = ""
			f.ClaimsMatchingExpression = &ClaimsMatchingExpression{Value: "sub == x", LanguageVersion: 1}
		}, "claimsMatchingExpression.value", "expected claims"},
		{"bad parent id", func(f *FederatedCredential) { f.ParentClientID = "nope" }, "parentClientId", "GUID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFIC()
			tc.mod(&f)
			wantRule(t, f.Validate(), tc.field, tc.rule)
		})
	}
}

func TestFederatedCredentialSetRules(t *testing.T) {
	f := goodFIC()
	var siblings []FederatedCredential
	for i := 0; i < MaxCredentialsPerParent-1; i++ {
		s := goodFIC()
		s.Name = fmt.Sprintf("cred-%d", i)
		s.Subject = fmt.Sprintf("system:serviceaccount:ns:sa%d", i)
		siblings = append(siblings, s)
	}
	if err := f.ValidateSet(siblings); err != nil {
		t.Fatalf("20th credential refused: %v", err)
	}
	more := append(siblings, func() FederatedCredential { s := goodFIC(); s.Name = "x20"; s.Subject = "other"; return s }())
	wantRule(t, f.ValidateSet(more), "name", "already has 20")
	dupSub := goodFIC()
	dupSub.Name = "other-name"
	wantRule(t, f.ValidateSet([]FederatedCredential{dupSub}), "subject", "unique per parent")
	dupName := goodFIC()
	dupName.Subject = "something else"
	dupName.Name = strings.ToUpper(f.Name)
	wantRule(t, f.ValidateSet([]FederatedCredential{dupName}), "name", "already used")
}

func TestApplicationRules(t *testing.T) {
	good := Application{TenantID: tid, AppID: g1, ObjectID: g2, ServicePrincipalID: g3, DisplayName: "provider-api",
		IdentifierURIs: []string{"api://provider-api"}, RequestedAccessTokenVersion: 2,
		AppRoles: []AppRole{{ID: g1, Value: "Data.Read", AllowedMemberTypes: []string{MemberTypeApplication}, IsEnabled: true}}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good app refused: %v", err)
	}
	tests := []struct {
		name  string
		mod   func(*Application)
		field string
		rule  string
	}{
		{"bad app id", func(a *Application) { a.AppID = "x" }, "appId", "GUID"},
		{"no name", func(a *Application) { a.DisplayName = " " }, "displayName", "required"},
		{"uri scheme", func(a *Application) { a.IdentifierURIs = []string{"ftp://x"} }, "identifierUris[0]", "scheme"},
		{"uri relative", func(a *Application) { a.IdentifierURIs = []string{"provider-api"} }, "identifierUris[0]", "absolute URI"},
		{"uri wildcard", func(a *Application) { a.IdentifierURIs = []string{"api://*"} }, "identifierUris[0]", "wildcards"},
		{"uri default", func(a *Application) { a.IdentifierURIs = []string{"api://x/.default"} }, "identifierUris[0]", "/.default"},
		{"uri twice", func(a *Application) { a.IdentifierURIs = []string{"api://x", "API://X"} }, "identifierUris[1]", "twice"},
		{"version 3", func(a *Application) { a.RequestedAccessTokenVersion = 3 }, "requestedAccessTokenVersion", "1 or 2"},
		{"role value space", func(a *Application) { a.AppRoles[0].Value = "Data Read" }, "appRoles[0].value", "no spaces"},
		{"role member type", func(a *Application) { a.AppRoles[0].AllowedMemberTypes = []string{"Robot"} }, "appRoles[0].allowedMemberTypes[0]", "Application"},
		{"role no member type", func(a *Application) { a.AppRoles[0].AllowedMemberTypes = nil }, "appRoles[0].allowedMemberTypes", "at least one"},
		{"duplicate role value", func(a *Application) {
			a.AppRoles = append(a.AppRoles, AppRole{ID: g2, Value: "Data.Read", AllowedMemberTypes: []string{MemberTypeApplication}})
		}, "appRoles[1].value", "another app role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := good
			a.AppRoles = append([]AppRole(nil), good.AppRoles...)
			tc.mod(&a)
			wantRule(t, a.Validate(), tc.field, tc.rule)
		})
	}
}

func TestManagedIdentityRules(t *testing.T) {
	good := ManagedIdentity{TenantID: tid, SubscriptionID: g1, ResourceGroup: "mi-test-group", Name: "mi-test-identity", ClientID: g2, PrincipalID: g3}
	if err := good.Validate(); err != nil {
		t.Fatalf("good identity refused: %v", err)
	}
	if got, want := good.ResourceID(), "/subscriptions/"+g1+"/resourceGroups/mi-test-group/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi-test-identity"; got != want {
		t.Errorf("ResourceID = %s, want %s", got, want)
	}
	if got := good.MIRID(); !strings.Contains(got, "/resourcegroups/") {
		t.Errorf("MIRID = %s, want the lower-case resourcegroups segment", got)
	}
	for _, tc := range []struct {
		name  string
		mod   func(*ManagedIdentity)
		field string
		rule  string
	}{
		{"short name", func(m *ManagedIdentity) { m.Name = "ab" }, "name", "3 to 128"},
		{"name chars", func(m *ManagedIdentity) { m.Name = "a b c" }, "name", "only letters"},
		{"rg dot", func(m *ManagedIdentity) { m.ResourceGroup = "rg." }, "resourceGroup", "not end with '.'"},
		{"rg empty", func(m *ManagedIdentity) { m.ResourceGroup = "" }, "resourceGroup", "1 to 90"},
		{"sub", func(m *ManagedIdentity) { m.SubscriptionID = "sub" }, "subscriptionId", "GUID"},
		{"location", func(m *ManagedIdentity) { m.Location = strings.Repeat("x", 65) }, "location", "at most 64"},
		{"tags", func(m *ManagedIdentity) {
			m.Tags = map[string]string{}
			for i := range 51 {
				m.Tags[fmt.Sprint("t", i)] = "v"
			}
		}, "tags", "at most 50 tags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good
			tc.mod(&m)
			wantRule(t, m.Validate(), tc.field, tc.rule)
		})
	}
}

func TestAssignmentRules(t *testing.T) {
	app := Application{DisplayName: "api", AppID: g1, AppRoles: []AppRole{
		{ID: g1, Value: "App.Role", AllowedMemberTypes: []string{MemberTypeApplication}, IsEnabled: true},
		{ID: g2, Value: "User.Role", AllowedMemberTypes: []string{MemberTypeUser}, IsEnabled: true},
		{ID: g3, Value: "Off", AllowedMemberTypes: []string{MemberTypeApplication}, IsEnabled: false},
	}}
	a := AppRoleAssignment{TenantID: tid, ID: g1, PrincipalID: g2, ResourceAppID: g1, AppRoleID: g1}
	if err := a.Validate(app); err != nil {
		t.Fatalf("good assignment refused: %v", err)
	}
	a.AppRoleID = g2
	wantRule(t, a.Validate(app), "appRoleId", "cannot be assigned to applications")
	a.AppRoleID = g3
	wantRule(t, a.Validate(app), "appRoleId", "disabled")
	a.AppRoleID = "44444444-4444-4444-4444-444444444444"
	wantRule(t, a.Validate(app), "appRoleId", "is not an app role")
}
