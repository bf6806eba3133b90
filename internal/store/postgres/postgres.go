// Package postgres is the PostgreSQL store.Store, for several wif replicas
// sharing one database. It uses pgx/v5 (a pgxpool.Pool, driven through
// database/sql so that it shares its queries with the SQLite backend).
//
// Concurrency: directory writes run at READ COMMITTED and begin by
// incrementing the single directory_revision row, whose row lock the next
// directory writer — in this process or another replica — waits for. The
// reads that follow therefore see every earlier write, so compare-and-swap
// updates (which also lock their row with SELECT ... FOR UPDATE), the 20
// credentials per parent rule and the other cross-row checks hold across
// replicas. Snapshot is one REPEATABLE READ, read-only transaction.
//
// Migrations (migrations/NNNN_*.sql, embedded) run at Open in one
// transaction under an advisory lock, so replicas starting together
// migrate once.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/internal/sqlbase"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Options configures Open. The zero value is fine.
type Options struct {
	// Logger receives migration notices; nil discards them.
	Logger *slog.Logger
	// Now stamps CreatedAt and UpdatedAt; nil means time.Now.
	Now func() time.Time
	// Schema, when set, is the search_path of every connection: wif's tables
	// live in (and are created in) that schema, which Open creates if it
	// can and must.
	Schema string
	// MaxConns bounds the pool (default: pgxpool's, or pool_max_conns in
	// the URL).
	MaxConns int32
	// ConnectTimeout bounds each connection attempt (default 10s, or
	// connect_timeout in the URL).
	ConnectTimeout time.Duration
	// MaxCredentialsPerParent bounds the federated credentials of one
	// identity or application (default 20, Entra's).
	MaxCredentialsPerParent int

	// migrateTo stops migrations at a version (tests of upgrades).
	migrateTo int
}

// Store is a store.Store in PostgreSQL.
type Store struct {
	*sqlbase.Store
	pool *pgxpool.Pool
	db   *sql.DB
	now  func() time.Time
	log  *slog.Logger
}

var _ store.Store = (*Store)(nil)

// migrationLockKey is the advisory lock taken while migrating ("wif" in
// ASCII, as a number).
const migrationLockKey = 0x776966

var dialect = &sqlbase.Dialect{
	Name:     "postgres",
	Numbered: true,
	BeginWrite: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		return db.BeginTx(ctx, nil)
	},
	BeginRead: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		return db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	},
	UniqueViolation: uniqueViolation,
	ForUpdate:       " FOR UPDATE",
	MigrationLock:   fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
	KeyLock:         fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", keyLockKey),
}

// keyLockKey is the advisory lock held while signing keys are written.
const keyLockKey = migrationLockKey + 1

// uniqueViolation recognises SQLSTATE 23505 and names the clash the way
// SQLite does ("table.col1, table.col2"), from the error's detail
// ("Key (col1, col2)=(...) already exists.").
func uniqueViolation(err error) (string, bool) {
	var e *pgconn.PgError
	if !errors.As(err, &e) || e.Code != "23505" {
		return "", false
	}
	cols, ok := strings.CutPrefix(e.Detail, "Key (")
	if !ok {
		return e.ConstraintName, true
	}
	cols, _, ok = strings.Cut(cols, ")=")
	if !ok {
		return e.ConstraintName, true
	}
	parts := strings.Split(cols, ", ")
	table := e.TableName
	if strings.HasPrefix(table, "audit_log_") { // a partition of audit_log
		table = "audit_log"
	}
	for i, c := range parts {
		parts[i] = table + "." + c
	}
	return strings.Join(parts, ", "), true
}

// Open connects to the database named by url (postgres://...), migrates
// its schema and returns the store.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	} else if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store %s: %w", where, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	closeAll := func() error {
		err := db.Close()
		pool.Close()
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = closeAll()
		return nil, fmt.Errorf("postgres store %s: %w", where, err)
	}
	if opts.Schema != "" {
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{opts.Schema}.Sanitize()); err != nil {
			_ = closeAll()
			return nil, fmt.Errorf("postgres store %s: create schema %q: %w", where, opts.Schema, err)
		}
	}
	ms, err := sqlbase.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		_ = closeAll()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if err := sqlbase.Migrate(ctx, dialect, db, ms, opts.migrateTo, opts.Logger); err != nil {
		_ = closeAll()
		return nil, fmt.Errorf("postgres store %s: %w", where, err)
	}
	s := &Store{pool: pool, db: db, now: opts.Now, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.Store = sqlbase.New(sqlbase.Config{Dialect: dialect, Write: db, Read: db, Now: opts.Now, Close: closeAll, MaxCredentialsPerParent: opts.MaxCredentialsPerParent,
		NoChangeLog: opts.migrateTo > 0 && opts.migrateTo < 9})
	if opts.migrateTo == 0 || opts.migrateTo >= 8 {
		if err := s.ensurePartitions(ctx, s.now()); err != nil {
			_ = closeAll()
			return nil, fmt.Errorf("postgres store %s: %w", where, err)
		}
	}
	return s, nil
}

// Pool is the connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
