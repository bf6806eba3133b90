package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// BenchmarkSnapshot loads a directory of 1000 managed identities with two
// federated credentials each (plus 50 applications and 1000 assignments),
// as the token service does on every revision change.
func BenchmarkSnapshot(b *testing.B) {
	s := openTemp(b, Options{})
	ctx := context.Background()
	ten, err := s.CreateTenant(ctx, directory.Tenant{ID: directory.NewID(), DisplayName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	var apps []directory.Application
	for i := range 50 {
		a, err := s.CreateApplication(ctx, directory.Application{
			TenantID: ten.ID, AppID: directory.NewID(), ObjectID: directory.NewID(), ServicePrincipalID: directory.NewID(),
			DisplayName: fmt.Sprint("api-", i), IdentifierURIs: []string{fmt.Sprintf("api://api-%d", i)},
			AppRoles: []directory.AppRole{{ID: directory.NewID(), Value: "Data.Read", AllowedMemberTypes: []string{"Application"}, IsEnabled: true}},
		})
		if err != nil {
			b.Fatal(err)
		}
		apps = append(apps, a)
	}
	for i := range 1000 {
		m, err := s.CreateManagedIdentity(ctx, directory.ManagedIdentity{
			TenantID: ten.ID, SubscriptionID: directory.NewID(), ResourceGroup: "rg", Name: fmt.Sprintf("mi-%04d", i),
			ClientID: directory.NewID(), PrincipalID: directory.NewID(), Tags: map[string]string{"n": fmt.Sprint(i)},
		})
		if err != nil {
			b.Fatal(err)
		}
		for j := range 2 {
			if _, err := s.CreateFederatedCredential(ctx, directory.FederatedCredential{
				TenantID: ten.ID, ParentKind: directory.ParentManagedIdentity, ParentClientID: m.ClientID, ID: directory.NewID(),
				Name: fmt.Sprint("cred-", j), Issuer: "https://issuer.example/" + fmt.Sprint(j), Subject: "system:serviceaccount:ns:" + m.Name,
				Audiences: []string{directory.DefaultAudience},
			}); err != nil {
				b.Fatal(err)
			}
		}
		app := apps[i%len(apps)]
		if _, err := s.CreateAppRoleAssignment(ctx, directory.AppRoleAssignment{
			TenantID: ten.ID, ID: directory.NewID(), PrincipalID: m.PrincipalID, ResourceAppID: app.AppID, AppRoleID: app.AppRoles[0].ID,
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		snap, err := s.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.Credentials) != 2000 {
			b.Fatalf("%d credentials", len(snap.Credentials))
		}
	}
}

// BenchmarkRevision is the token service's cheap check for changes.
func BenchmarkRevision(b *testing.B) {
	s := openTemp(b, Options{})
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Revision(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendAudit writes batches of 100 records, as the token
// service's audit writer does off the request path.
func BenchmarkAppendAudit(b *testing.B) {
	s := openTemp(b, Options{})
	benchAppendAudit(b, s)
}

func benchAppendAudit(b *testing.B, s store.Store) {
	ctx := context.Background()
	batch := make([]store.AuditRecord, 100)
	tenant, client := directory.NewID(), directory.NewID()
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		for i := range batch {
			batch[i] = store.AuditRecord{
				Time: now, TenantID: tenant, ClientID: client, CredentialName: "cred", GrantType: "client_credentials",
				Resource: "api://resource", Issuer: "https://issuer.example", Subject: "system:serviceaccount:default:demo",
				JTIHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Result: store.AuditSuccess,
				CorrelationID: "3f1d0c1e-0000-4000-8000-000000000000", RemoteAddr: "127.0.0.1:50000",
			}
		}
		if err := s.AppendAudit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/record")
}
