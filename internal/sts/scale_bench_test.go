package sts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/postgres"
	"github.com/wif-project/wif/internal/store/sqlite"
)

// BenchmarkDirectoryScale builds a directory of N managed identities with
// one federated credential each (N from WIF_BENCH_IDENTITIES, default
// 100,000) with wif apply's planner and batched writes, on SQLite and on
// PostgreSQL, and reports what a replica pays for it: apply objects/s,
// the time from an open store to a ready token endpoint (Snapshot, then
// building the endpoint's index — what every store revision costs today),
// and the index's heap per identity + credential.
//
//	go test -run '^$' -bench DirectoryScale -benchtime 1x ./internal/sts/
//	WIF_BENCH_IDENTITIES=1000000 go test -run '^$' -bench DirectoryScale -benchtime 1x -timeout 2h ./internal/sts/
func BenchmarkDirectoryScale(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("WIF_BENCH_IDENTITIES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	stores := ScaleStores()
	doc := scaleDocument(n)
	for _, sc := range stores {
		b.Run(fmt.Sprintf("%s/%d", sc.Name, n), func(b *testing.B) {
			for b.Loop() {
				st := sc.Open(b)
				t0 := time.Now()
				res, err := apply.Apply(ctx, st, doc, apply.Options{})
				if err != nil {
					b.Fatal(err)
				}
				applied := time.Since(t0)
				objects := res.Applied
				if objects < 2*n {
					b.Fatalf("applied %d changes, want at least %d", objects, 2*n)
				}
				// A replica starting on this store: read it, build the index.
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				t1 := time.Now()
				snap, err := st.Snapshot(ctx)
				if err != nil {
					b.Fatal(err)
				}
				read := time.Since(t1)
				t2 := time.Now()
				idx, err := buildIndex(snap)
				if err != nil {
					b.Fatal(err)
				}
				built := time.Since(t2)
				snap = store.Snapshot{} // the index is what stays
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				if got := len(idx.tenants[scaleTenant].clients); got != n {
					b.Fatalf("index holds %d clients, want %d", got, n)
				}
				b.ReportMetric(float64(objects)/applied.Seconds(), "apply-objects/s")
				b.ReportMetric(read.Seconds(), "snapshot-s")
				b.ReportMetric(built.Seconds(), "index-build-s")
				b.ReportMetric((read + built).Seconds(), "ready-s")
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "index-B/identity+credential")
				runtime.KeepAlive(idx)
			}
		})
	}
}

const scaleTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// scaleDocument is a tenant with n identities in 100 resource groups, each
// with one Kubernetes credential of one of 50 clusters.
func scaleDocument(n int) *apply.Document {
	t := apply.Tenant{ID: scaleTenant, DisplayName: "scale"}
	t.ManagedIdentities = make([]apply.ManagedIdentity, n)
	for i := range n {
		t.ManagedIdentities[i] = apply.ManagedIdentity{
			Name: fmt.Sprintf("workload-%07d", i), ResourceGroup: fmt.Sprintf("rg-%02d", i%100),
			FederatedCredentials: []apply.FederatedCredential{{
				Name: "kubernetes", Issuer: fmt.Sprintf("https://oidc.cluster-%02d.example.com/", i%50),
				Subject: fmt.Sprintf("system:serviceaccount:ns-%d:sa-%d", i%1000, i), Audiences: []string{directory.DefaultAudience},
			}},
		}
	}
	return &apply.Document{Tenants: []apply.Tenant{t}}
}

// ScaleDocument is scaleDocument for the external benchmarks: n
// identities in tenant tid whose credentials trust issuer for
// system:serviceaccount:ns:workload-NNNNNNN.
func ScaleDocument(n int, tid, issuer string) *apply.Document {
	doc := scaleDocument(n)
	t := &doc.Tenants[0]
	t.ID = tid
	for i := range t.ManagedIdentities {
		m := &t.ManagedIdentities[i]
		m.FederatedCredentials[0].Issuer = issuer
		m.FederatedCredentials[0].Subject = "system:serviceaccount:ns:" + m.Name
	}
	return doc
}

// ScaleStore is a store the scale benchmarks run on: a fresh SQLite
// file, or a fresh schema of the PostgreSQL test server (skipped when
// there is none; WIF_TEST_POSTGRES_URL overrides it).
type ScaleStore struct {
	Name string
	Open func(b *testing.B) store.Store
}

// ScaleStores are SQLite and PostgreSQL, for both scale benchmarks.
func ScaleStores() []ScaleStore {
	ctx := context.Background()
	return []ScaleStore{
		{"sqlite", func(b *testing.B) store.Store {
			st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "wif.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
		{"postgres", func(b *testing.B) store.Store {
			dsn := os.Getenv("WIF_TEST_POSTGRES_URL")
			if dsn == "" {
				dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
			}
			schema := fmt.Sprintf("scale_bench_%d", time.Now().UnixNano())
			st, err := postgres.Open(ctx, dsn, postgres.Options{Schema: schema})
			if err != nil {
				b.Skipf("no PostgreSQL: %v", err)
			}
			b.Cleanup(func() {
				_, _ = st.Pool().Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
				st.Close()
			})
			return st
		}},
	}
}
