package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// TestFederatedCredentialDryRun: wif identity federated-credential test
// with a real token of the workload, one that matches and one whose
// subject differs in case, as the admin sees it (golden files).
func TestFederatedCredentialDryRun(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	ctx := context.Background()
	mi, err := e.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: e.Tenant, SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup: "prod", Name: "payments", ClientID: "11111111-1111-4111-8111-111111111111", PrincipalID: directory.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: e.Tenant, ParentKind: directory.ParentManagedIdentity,
		ParentClientID: mi.ClientID, ID: directory.NewID(), Name: "k8s-prod", Issuer: e.Issuer.URL, Subject: "system:serviceaccount:prod:payments", Audiences: []string{directory.DefaultAudience}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	norm := func(s string) string {
		s = strings.ReplaceAll(s, e.Issuer.URL, "https://issuer.test")
		s = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "<time>")
		return regexp.MustCompile(`kid "[^"]+"`).ReplaceAllString(s, `kid "<kid>"`)
	}
	for _, tc := range []struct {
		name, subject string
		fail          bool
	}{
		{"fic-test-pass", "system:serviceaccount:prod:payments", false},
		{"fic-test-subject-case", "system:serviceaccount:Prod:payments", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, tc.name+".jwt")
			if err := os.WriteFile(file, []byte(e.Issuer.Mint(t, tc.subject, directory.DefaultAudience, time.Hour)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, _, err := run(t, env, "", "identity", "federated-credential", "test", "--identity-name", "payments", "-g", "prod", "--assertion-file", file)
			if (err != nil) != tc.fail {
				t.Fatalf("err = %v\n%s", err, out)
			}
			golden(t, tc.name, norm(out))
		})
	}
	// A stranger's forged token fails at the signature, with every
	// credential verdict still shown.
	out, _, err := run(t, env, "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJpc3MiOiJ4In0.c2ln", "identity", "federated-credential", "test", "--identity-name", "payments", "-g", "prod", "--assertion-file", "-", "-o", "json")
	if err == nil || !strings.Contains(out, `"result": "fail"`) || !strings.Contains(out, `"code": 50027`) {
		t.Fatalf("a malformed token: %v\n%s", err, out)
	}
	// A dry run is not an exchange: nothing reaches the exchange audit log
	// (where a success would mean a token was issued).
	if err := e.Server.STS.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := e.Store.ListAudit(ctx, store.AuditFilter{TenantID: e.Tenant})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 0 {
		t.Fatalf("dry runs left %d exchange audit records: %+v", len(page.Records), page.Records)
	}
}
