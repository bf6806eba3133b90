package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// BenchSnapshot measures Snapshot on a directory of identities managed
// identities with two federated credentials and one app role assignment
// each, and 50 applications: what the token service loads on every
// revision change. s must be empty.
func BenchSnapshot(b *testing.B, s store.Store, identities int) {
	ctx := context.Background()
	ten, err := s.CreateTenant(ctx, directory.Tenant{ID: newID(), DisplayName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	var apps []directory.Application
	for i := range 50 {
		a, err := s.CreateApplication(ctx, appFixture(ten.ID, fmt.Sprint("api-", i), fmt.Sprintf("api://api-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		apps = append(apps, a)
	}
	for i := range identities {
		m, err := s.CreateManagedIdentity(ctx, miFixture(ten.ID, fmt.Sprintf("mi-%05d", i)))
		if err != nil {
			b.Fatal(err)
		}
		for j := range 2 {
			f := credFixture(ten.ID, directory.ParentManagedIdentity, m.ClientID, fmt.Sprint("cred-", j), "system:serviceaccount:ns:"+m.Name)
			f.Issuer = fmt.Sprintf("https://issuer-%d.example", j)
			if _, err := s.CreateFederatedCredential(ctx, f); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, m.PrincipalID, apps[i%len(apps)], 0)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		snap, err := s.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.Credentials) != 2*identities {
			b.Fatalf("%d credentials, want %d", len(snap.Credentials), 2*identities)
		}
	}
}

// BenchAppendAudit measures AppendAudit with batches of batchSize
// records, as the token service's audit writer sends them off the request
// path.
func BenchAppendAudit(b *testing.B, s store.Store, batchSize int) {
	ctx := context.Background()
	batch := make([]store.AuditRecord, batchSize)
	tenant, client := newID(), newID()
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		for i := range batch {
			batch[i] = store.AuditRecord{
				Time: now, TenantID: tenant, ClientID: client, CredentialName: "cred", GrantType: "client_credentials",
				Resource: "api://resource", Issuer: testIssuer, Subject: "system:serviceaccount:default:demo",
				JTIHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Result: store.AuditSuccess,
				CorrelationID: "3f1d0c1e-0000-4000-8000-000000000000", RemoteAddr: "127.0.0.1:50000",
			}
		}
		if err := s.AppendAudit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/record")
}
