package sts

import (
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/directory"
)

func testClient(creds ...directory.FederatedCredential) *client {
	c := &client{kind: directory.ParentManagedIdentity, name: "demo"}
	for _, f := range creds {
		cr := credential{FederatedCredential: f}
		if f.ClaimsMatchingExpression != nil {
			cr.expr, _ = directory.ParseClaimsExpression(f.ClaimsMatchingExpression.Value)
		}
		c.creds = append(c.creds, cr)
	}
	return c
}

func fic(name, iss, sub, aud string) directory.FederatedCredential {
	return directory.FederatedCredential{Name: name, Issuer: iss, Subject: sub, Audiences: []string{aud}}
}

func TestMatchCredential(t *testing.T) {
	const iss = "https://oidc.example.com/abc/"
	const aud = directory.DefaultAudience
	k8s := fic("k8s", iss, "system:serviceaccount:platform:managed-identity-test", aud)
	flex := directory.FederatedCredential{Name: "gh", Issuer: "https://token.actions.githubusercontent.com", Audiences: []string{aud},
		ClaimsMatchingExpression: &directory.ClaimsMatchingExpression{Value: "claims['sub'] matches 'repo:contoso/app:ref:refs/heads/*'", LanguageVersion: 1}}
	tests := []struct {
		name     string
		client   *client
		iss, sub string
		aud      []string
		wantCred string
		wantCode int
		wantHint string
	}{
		{"exact", testClient(k8s), iss, k8s.Subject, []string{aud}, "k8s", 0, ""},
		{"aud among several", testClient(k8s), iss, k8s.Subject, []string{"other", aud}, "k8s", 0, ""},
		{"trailing slash", testClient(k8s), strings.TrimSuffix(iss, "/"), k8s.Subject, []string{aud}, "", CodeNoMatchingIssuer, "issuer differs only by a trailing '/'"},
		{"issuer case", testClient(k8s), strings.ToUpper(iss[:8]) + iss[8:], k8s.Subject, []string{aud}, "", CodeNoMatchingIssuer, "differs only in letter case"},
		{"other issuer", testClient(k8s), "https://elsewhere.example/", k8s.Subject, []string{aud}, "", CodeNoMatchingIssuer, "the nearest, 'k8s'"},
		{"no credentials", testClient(), iss, k8s.Subject, []string{aud}, "", CodeNoMatchingIssuer, "has no federated identity credentials"},
		{"other audience", testClient(k8s), iss, k8s.Subject, []string{"api://other"}, "", CodeNoMatchingAudience, "credential 'k8s' expects 'api://AzureADTokenExchange'"},
		{"audience case", testClient(k8s), iss, k8s.Subject, []string{"API://AzureADTokenExchange"}, "", CodeNoMatchingAudience, "audience differs only in letter case"},
		{"other namespace", testClient(k8s), iss, "system:serviceaccount:prod:managed-identity-test", []string{aud}, "", CodeNoMatchingSubject, "namespace is 'prod', credential 'k8s' expects 'platform'"},
		{"other service account", testClient(k8s), iss, "system:serviceaccount:platform:other", []string{aud}, "", CodeNoMatchingSubject, "service account is 'other'"},
		{"subject case", testClient(k8s), iss, "system:serviceaccount:Platform:managed-identity-test", []string{aud}, "", CodeSubjectCaseOnly, "only in letter case"},
		{"flexible match", testClient(flex), flex.Issuer, "repo:contoso/app:ref:refs/heads/main", []string{aud}, "gh", 0, ""},
		{"flexible no match", testClient(flex), flex.Issuer, "repo:contoso/other:ref:refs/heads/main", []string{aud}, "", CodeNoMatchingSubject, "do not satisfy credential 'gh'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &assertion{claims: assertionClaims{Issuer: tc.iss, Subject: tc.sub, Audience: tc.aud}, all: map[string]any{"sub": tc.sub}}
			got, e, reason := matchCredential(tc.client, a)
			if tc.wantCode == 0 {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
				if got.Name != tc.wantCred {
					t.Fatalf("matched %q, want %q", got.Name, tc.wantCred)
				}
				return
			}
			if e == nil {
				t.Fatalf("matched %q; want AADSTS%d", got.Name, tc.wantCode)
			}
			if e.Code != tc.wantCode || e.Err != "invalid_client" || e.Status != 401 {
				t.Fatalf("got %s AADSTS%d (%d), want invalid_client AADSTS%d (401)", e.Err, e.Code, e.Status, tc.wantCode)
			}
			if !strings.Contains(reason, tc.wantHint) {
				t.Fatalf("reason %q lacks %q", reason, tc.wantHint)
			}
			if e.Hint != "" {
				t.Fatalf("the public error carries a hint before any verification: %q", e.Hint)
			}
		})
	}
}
