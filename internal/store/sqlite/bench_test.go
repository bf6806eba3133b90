package sqlite

import (
	"context"
	"testing"

	"github.com/wif-project/wif/internal/store/storetest"
)

// BenchmarkSnapshot: 1000 identities × 2 credentials (+ 1000 assignments,
// 50 applications).
func BenchmarkSnapshot(b *testing.B) {
	storetest.BenchSnapshot(b, openTemp(b, Options{}), 1000)
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

// BenchmarkAppendAudit writes batches of 100 records (each commit fsynced).
func BenchmarkAppendAudit(b *testing.B) {
	storetest.BenchAppendAudit(b, openTemp(b, Options{}), 100)
}

// BenchmarkListIdentitiesPage: one page of 100 at 200,000 identities
// (WIF_BENCH_IDENTITIES overrides: 1000000 for the README's figure).
func BenchmarkListIdentitiesPage(b *testing.B) {
	storetest.BenchListIdentitiesPage(b, openTemp(b, Options{}), storetest.BenchIdentities(200_000))
}
