package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/directory"
)

// TestBackupRestore: a backup opens as the same store; one whose schema is
// newer than this wif is refused.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "wif.db")
	s := mustOpen(t, src, Options{})
	if _, err := s.CreateTenant(ctx, directory.Tenant{ID: "72f988bf-86f1-41af-91ab-2d7cd011db47", DisplayName: "Contoso"}); err != nil {
		t.Fatal(err)
	}
	bak := filepath.Join(dir, "bak.db")
	if err := Backup(ctx, src, bak); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "restored.db")
	if err := Restore(ctx, bak, dst, false); err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, dst, Options{})
	if ten, err := r.GetTenant(ctx, "72f988bf-86f1-41af-91ab-2d7cd011db47"); err != nil || ten.DisplayName != "Contoso" {
		t.Fatalf("restored tenant: %+v %v", ten, err)
	}
	// A backup from a newer wif.
	db, err := sql.Open("sqlite", bak)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_us) VALUES (99, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = Restore(ctx, bak, filepath.Join(dir, "other.db"), false)
	if err == nil || !strings.Contains(err.Error(), "has schema version 99 but this wif knows only versions up to") {
		t.Fatalf("newer backup: %v", err)
	}
}

// TestCredentialLimitOption: MaxCredentialsPerParent bounds a parent's
// credentials in the SQLite store.
func TestCredentialLimitOption(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, filepath.Join(t.TempDir(), "wif.db"), Options{MaxCredentialsPerParent: 2})
	const tid, client = "72f988bf-86f1-41af-91ab-2d7cd011db47", "11111111-1111-4111-8111-111111111111"
	if _, err := s.CreateTenant(ctx, directory.Tenant{ID: tid, DisplayName: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: tid, SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup: "rg", Name: "mi-1", ClientID: client, PrincipalID: directory.NewID()}); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := range 3 {
		_, err = s.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: tid, ParentKind: directory.ParentManagedIdentity, ParentClientID: client,
			ID: directory.NewID(), Name: "cred-" + string(rune('a'+i)), Issuer: "https://i.example", Subject: "s" + string(rune('a'+i)), Audiences: []string{directory.DefaultAudience}})
		if i < 2 && err != nil {
			t.Fatal(err)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "already has 2 federated credentials, the most allowed") {
		t.Fatalf("third credential: %v", err)
	}
}
