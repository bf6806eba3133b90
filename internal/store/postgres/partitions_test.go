package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

func partitions(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestAuditPartitions: the audit log is partitioned by UTC day; opening
// creates yesterday's to three days ahead; pruning drops whole days
// before the cutoff (their records counted) and deletes the rest before
// it row by row (the cutoff's own day, the default partition).
func TestAuditPartitions(t *testing.T) {
	dsn := serverDSN(t)
	// The migration makes the days of the database's own clock: the test's is the real one.
	now := time.Now().UTC()
	s := openIn(t, dsn, freshSchema(t, dsn), Options{Now: func() time.Time { return now }})
	ctx := ctxT(t)
	day := func(d int) string { return partitionName(now.AddDate(0, 0, d)) }
	if got, want := partitions(t, s), []string{"audit_log_default", day(-1), day(0), day(1), day(2), day(3)}; !slices.Equal(got, want) {
		t.Fatalf("partitions at open: %v, want %v", got, want)
	}
	// Days long gone, as a server running then would have made them.
	if err := s.ensurePartitions(ctx, now.AddDate(0, 0, -10)); err != nil {
		t.Fatal(err)
	}
	ten, err := s.CreateTenant(ctx, directory.Tenant{ID: directory.NewID(), DisplayName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(at time.Time) store.AuditRecord {
		return store.AuditRecord{TenantID: ten.ID, Time: at, Result: store.AuditSuccess, CorrelationID: at.Format(time.RFC3339)}
	}
	records := []store.AuditRecord{
		rec(now.AddDate(0, 0, -10)), rec(now.AddDate(0, 0, -9)), rec(now.AddDate(0, 0, -9).Add(time.Hour)), // in day partitions
		rec(now.AddDate(0, 0, -30)),                 // no partition: the default one
		rec(now.AddDate(0, 0, -3).Add(-time.Hour)),  // the cutoff's day, before it
		rec(now.AddDate(0, 0, -3).Add(time.Minute)), // the cutoff's day, after it
		rec(now.AddDate(0, 0, -1)), rec(now), rec(now.Add(time.Hour)),
	}
	if err := s.AppendAudit(ctx, records); err != nil {
		t.Fatal(err)
	}
	// A record again, as a replayed spool has it: refused.
	again := records[0]
	page, err := s.ListAudit(ctx, store.AuditFilter{TenantID: ten.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Records {
		if r.CorrelationID == again.CorrelationID {
			again.ID = r.ID
		}
	}
	if err := s.AppendAudit(ctx, []store.AuditRecord{again}); err == nil {
		t.Fatal("a record written again was accepted")
	}
	n, err := s.PruneAudit(ctx, now.AddDate(0, 0, -3))
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("pruned %d records, want 5 (three in dropped days, one in the default partition, one on the cutoff's day)", n)
	}
	got := partitions(t, s)
	for d := -11; d <= -4; d++ {
		if slices.Contains(got, day(d)) {
			t.Errorf("partition %s survived the prune: %v", day(d), got)
		}
	}
	if !slices.Contains(got, day(0)) || !slices.Contains(got, "audit_log_default") {
		t.Errorf("partitions after the prune: %v", got)
	}
	page, err = s.ListAudit(ctx, store.AuditFilter{TenantID: ten.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, r := range page.Records {
		left = append(left, r.CorrelationID)
	}
	want := []string{now.Add(time.Hour).Format(time.RFC3339), now.Format(time.RFC3339), now.AddDate(0, 0, -1).Format(time.RFC3339), now.AddDate(0, 0, -3).Add(time.Minute).Format(time.RFC3339)}
	if !slices.Equal(left, want) {
		t.Fatalf("left after the prune, newest first: %v, want %v", left, want)
	}
	// The clock moves on: pruning creates the coming days.
	now = now.AddDate(0, 0, 5)
	if _, err := s.PruneAudit(ctx, now.AddDate(0, 0, -30)); err != nil {
		t.Fatal(err)
	}
	if got := partitions(t, s); !slices.Contains(got, day(3)) {
		t.Fatalf("no partition for three days ahead after the clock moved: %v", got)
	}
}
