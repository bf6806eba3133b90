package sts_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store/sqlite"
	"github.com/wif-project/wif/internal/wiftest"
)

// BenchmarkAuditBytesPerExchange measures what the audit log grows by, in
// a real SQLite file, per repeated successful exchange of one workload:
// with --audit-every-exchange, and with the default per-minute
// aggregation at 10 exchanges per minute (a clock moved 6 s per exchange:
// every minute costs one counted row, every hour one full record).
//
//	go test -run '^$' -bench AuditBytesPerExchange -benchtime 3000x ./internal/sts/
func BenchmarkAuditBytesPerExchange(b *testing.B) {
	for _, tc := range []struct {
		name  string
		every bool
		step  time.Duration
	}{{"every-exchange", true, 6 * time.Second}, {"aggregated-10-per-minute", false, 6 * time.Second}, {"aggregated-60-per-minute", false, time.Second}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			clock := &testClock{t: time.Now()}
			opts := []wiftest.Option{wiftest.WithClock(clock.Now)}
			if tc.every {
				opts = append(opts, wiftest.WithAuditEveryExchange())
			}
			st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "wif.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			env := wiftest.Start(b, append([]wiftest.Option{wiftest.WithStore(st)}, opts...)...)
			mi := env.CreateManagedIdentity(b, "payments")
			env.CreateResourceApp(b, "api://ledger", 2)
			tok := env.Issuer.Mint(b, wiftest.Subject("payments"), directory.DefaultAudience, 24*time.Hour)
			form := wiftest.ExchangeForm(mi.ClientID, tok, "api://ledger/.default")
			path := "/" + env.TenantID + "/oauth2/v2.0/token"
			size := func() int64 {
				if err := env.Server.STS.FlushAudit(ctx); err != nil {
					b.Fatal(err)
				}
				w, _ := st.DB()
				if _, err := w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
					b.Fatal(err)
				}
				var pages, pageSize int64
				if err := w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
					b.Fatal(err)
				}
				if err := w.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
					b.Fatal(err)
				}
				return pages * pageSize
			}
			if r := env.Post(b, path, form); r.Status != 200 { // the first success: a full record
				b.Fatalf("%d %s", r.Status, r.Raw)
			}
			before := size()
			b.ResetTimer()
			for range b.N {
				clock.set(clock.Now().Add(tc.step))
				if r := env.Post(b, path, form); r.Status != 200 {
					b.Fatalf("%d %s", r.Status, r.Raw)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(size()-before)/float64(b.N), "audit-bytes/exchange")
		})
	}
}
