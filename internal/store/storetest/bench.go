package storetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
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

// BenchListIdentitiesPage measures one page of a tenant's identity list
// (100, what the admin API answers by default) at identities identities,
// first and far into the list: keyset paging reads the page, not what
// comes before it. s must be empty; it is filled in batches when it can
// batch.
func BenchListIdentitiesPage(b *testing.B, s store.Store, identities int) {
	ctx := context.Background()
	ten, err := s.CreateTenant(ctx, directory.Tenant{ID: newID(), DisplayName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	fill := func(ctx context.Context, from, to int) error {
		for i := from; i < to; i++ {
			m := miFixture(ten.ID, fmt.Sprintf("mi-%07d", i))
			m.Tags = nil
			if _, err := s.CreateManagedIdentity(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}
	const chunk = 5000
	for from := 0; from < identities; from += chunk {
		to := min(from+chunk, identities)
		var err error
		if bt, ok := s.(store.Batcher); ok {
			err = bt.Batch(ctx, func(ctx context.Context) error { return fill(ctx, from, to) })
		} else {
			err = fill(ctx, from, to)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		after store.IdentityRef
	}{
		{"first", store.IdentityRef{}},
		{"last", store.IdentityRef{SubscriptionID: testSub, ResourceGroup: "rg-One", Name: fmt.Sprintf("mi-%07d", identities-101)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				ms, err := s.ListManagedIdentities(ctx, ten.ID, store.IdentityFilter{After: tc.after, Limit: 101})
				if err != nil {
					b.Fatal(err)
				}
				if len(ms) < 100 {
					b.Fatalf("a page of %d", len(ms))
				}
			}
		})
	}
}

// BenchIdentities is WIF_BENCH_IDENTITIES, or def: how many identities a
// scale benchmark builds.
func BenchIdentities(def int) int {
	if n, err := strconv.Atoi(os.Getenv("WIF_BENCH_IDENTITIES")); err == nil && n > 200 {
		return n
	}
	return def
}
