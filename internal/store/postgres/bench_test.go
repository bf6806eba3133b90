package postgres

import (
	"testing"

	"github.com/wif-project/wif/internal/store/storetest"
)

// BenchmarkSnapshot: 1000 identities × 2 credentials (+ 1000 assignments,
// 50 applications).
func BenchmarkSnapshot(b *testing.B) {
	dsn := serverDSN(b)
	storetest.BenchSnapshot(b, openIn(b, dsn, freshSchema(b, dsn), Options{}), 1000)
}

// BenchmarkAppendAudit writes batches of 100 records.
func BenchmarkAppendAudit(b *testing.B) {
	dsn := serverDSN(b)
	storetest.BenchAppendAudit(b, openIn(b, dsn, freshSchema(b, dsn), Options{}), 100)
}

// BenchmarkListIdentitiesPage: one page of 100 at 200,000 identities
// (WIF_BENCH_IDENTITIES overrides: 1000000 for the README's figure).
func BenchmarkListIdentitiesPage(b *testing.B) {
	dsn := serverDSN(b)
	storetest.BenchListIdentitiesPage(b, openIn(b, dsn, freshSchema(b, dsn), Options{}), storetest.BenchIdentities(200_000))
}
