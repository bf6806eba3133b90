package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The audit log is partitioned by UTC day (migration 0008): partitions
// audit_log_pYYYYMMDD hold [midnight, next midnight) in time_us, and
// audit_log_default what no day holds.
const (
	partitionPrefix = "audit_log_p"
	// partitionsAhead are the days after today whose partitions exist in
	// advance (a replica that does not prune for a while still writes
	// into days, not the default partition).
	partitionsAhead = 3
	// partitionLockKey serialises partition changes between replicas.
	partitionLockKey = migrationLockKey + 2
)

func partitionName(day time.Time) string { return partitionPrefix + day.UTC().Format("20060102") }

// partitionDay parses a partition's day from its name.
func partitionDay(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, partitionPrefix)
	if !ok {
		return time.Time{}, false
	}
	d, err := time.Parse("20060102", s)
	return d, err == nil
}

// ensurePartitions creates the partitions of yesterday, today and the
// next partitionsAhead days that do not exist. A day whose rows already
// sit in the default partition (written with a clock far ahead) is left
// to it.
func (s *Store) ensurePartitions(ctx context.Context, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit partitions: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", partitionLockKey)); err != nil {
		return fmt.Errorf("audit partitions: %w", err)
	}
	today := now.UTC().Truncate(24 * time.Hour)
	for i := -1; i <= partitionsAhead; i++ {
		day := today.AddDate(0, 0, i)
		if _, err := tx.ExecContext(ctx, "SAVEPOINT p"); err != nil {
			return fmt.Errorf("audit partitions: %w", err)
		}
		_, err := tx.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF audit_log FOR VALUES FROM (%d) TO (%d)`,
			partitionName(day), day.UnixMicro(), day.AddDate(0, 0, 1).UnixMicro()))
		var pe *pgconn.PgError
		switch {
		case err == nil:
		case errors.As(err, &pe) && pe.Code == "23514": // the default partition holds rows of that day
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT p"); err != nil {
				return fmt.Errorf("audit partitions: %w", err)
			}
			continue
		default:
			return fmt.Errorf("audit partitions: create %s: %w", partitionName(day), err)
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT p"); err != nil {
			return fmt.Errorf("audit partitions: %w", err)
		}
	}
	return tx.Commit()
}

// dropPartitionsBefore drops the day partitions that end at or before
// cutoff, and says how many records went with them.
func (s *Store) dropPartitionsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audit_log'::regclass`)
	if err != nil {
		return 0, fmt.Errorf("audit partitions: %w", err)
	}
	var old []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return 0, fmt.Errorf("audit partitions: %w", err)
		}
		if day, ok := partitionDay(name); ok && !day.AddDate(0, 0, 1).After(cutoff) {
			old = append(old, name)
		}
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("audit partitions: %w", err)
	}
	var total int64
	for _, name := range old {
		n, err := s.dropPartition(ctx, name)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Store) dropPartition(ctx context.Context, name string) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("audit partitions: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", partitionLockKey)); err != nil {
		return 0, fmt.Errorf("audit partitions: %w", err)
	}
	var n int64
	// The name comes from pg_class and matched partitionDay: a quoted
	// identifier of digits and the prefix.
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(name)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // another replica dropped it
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("audit partitions: count %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE `+quoteIdent(name)); err != nil {
		return 0, fmt.Errorf("audit partitions: drop %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("audit partitions: drop %s: %w", name, err)
	}
	return n, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// PruneAudit implements store.AuditStore: whole days before the cutoff go
// by dropping their partitions; what is left before it (the cutoff's own
// day, the default partition) is deleted in chunks. It also creates the
// coming days' partitions (the token service prunes hourly).
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	if err := s.ensurePartitions(ctx, s.now()); err != nil {
		s.log.Warn("creating the audit log's coming partitions failed; records go to audit_log_default until the next prune", "error", err)
	}
	if before.IsZero() {
		return 0, ctx.Err()
	}
	dropped, err := s.dropPartitionsBefore(ctx, before)
	if err != nil {
		return dropped, err
	}
	n, err := s.Store.PruneAudit(ctx, before)
	return dropped + n, err
}
