// Package sqlite is the SQLite store.Store: wif's default, one file, no
// server. It uses modernc.org/sqlite (pure Go, no cgo).
//
// How it is set up, and why:
//   - WAL journal: readers never block the writer or each other, and a
//     Snapshot is one read transaction that sees one committed state.
//   - One writer connection, and every write transaction begins with BEGIN
//     IMMEDIATE: writers queue in Go (database/sql) instead of failing with
//     SQLITE_BUSY, and a transaction never has to upgrade a read lock.
//     busy_timeout covers other processes (a `wif` CLI) writing the same
//     file. Reads go through a separate pool of query-only connections.
//   - synchronous=FULL: each commit is fsynced before it is reported. With
//     NORMAL a power cut can undo the last commits, and a deleted federated
//     credential (a revocation) must not come back. Writes are rare
//     (directory changes) or batched off the request path (audit), so the
//     fsync costs little; see BenchmarkAppendAudit.
//   - foreign_keys on: deletes cascade (tenant → everything in it; principal →
//     its credentials and assignments) inside the database.
//   - A new file is created with mode 0600: it holds the signing keys.
//   - Versioned migrations (migrations/NNNN_*.sql, embedded) run at Open in
//     one transaction and are recorded in schema_migrations.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

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
	// BusyTimeout is how long a statement waits for another process's
	// lock (default 10s).
	BusyTimeout time.Duration
	// MaxReaders bounds the read pool (default max(4, GOMAXPROCS)).
	MaxReaders int
	// MaxCredentialsPerParent bounds the federated credentials of one
	// identity or application (default 20, Entra's).
	MaxCredentialsPerParent int

	// migrateTo stops migrations at a version (tests of upgrades).
	migrateTo int
	// pruneChunk overrides the prune chunk size (tests).
	pruneChunk int
}

// Store is a store.Store in a SQLite file.
type Store struct {
	*sqlbase.Store
	path string
}

var _ store.Store = (*Store)(nil)

var dialect = &sqlbase.Dialect{
	Name: "sqlite",
	BeginWrite: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		// The write pool's DSN sets _txlock=immediate: BEGIN IMMEDIATE.
		return db.BeginTx(ctx, nil)
	},
	BeginRead: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		// A deferred transaction on a WAL database reads one snapshot from
		// its first SELECT to its end.
		return db.BeginTx(ctx, nil)
	},
	UniqueViolation: uniqueViolation,
}

func uniqueViolation(err error) (string, bool) {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return "", false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
	default:
		return "", false
	}
	msg := e.Error()
	const marker = "constraint failed: "
	if i := strings.LastIndex(msg, marker); i >= 0 {
		msg = msg[i+len(marker):]
	}
	if i := strings.LastIndex(msg, " ("); i >= 0 {
		msg = msg[:i]
	}
	return msg, true
}

// Open opens (creating if needed) the database file at path and migrates
// its schema.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	switch {
	case path == "":
		return nil, errors.New("sqlite store: no file named: use sqlite:PATH, e.g. sqlite:wif.db")
	case path == ":memory:" || strings.HasPrefix(path, "file::memory:"):
		return nil, errors.New("sqlite store: an in-memory SQLite database is not supported: use the memory: store")
	case strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite store: give a plain file path, not a URI (%q)", path)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("sqlite store: file name %q holds '?' or '#': rename the file", path)
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	readers := opts.MaxReaders
	if readers <= 0 {
		readers = max(4, runtime.GOMAXPROCS(0))
	}
	// The file holds signing keys: create it readable by its owner only
	// (SQLite gives the -wal and -shm files the same mode).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		_ = f.Close()
	case !errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("sqlite store: create %s: %w", path, err)
	}
	common := "_busy_timeout=" + strconv.FormatInt(busy.Milliseconds(), 10) + "&_foreign_keys=1"

	w, err := sql.Open("sqlite", path+"?"+common+"&_txlock=immediate&_journal_mode=WAL&_synchronous=FULL")
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	ms, err := sqlbase.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite store: %w", err)
	}
	if err := sqlbase.Migrate(ctx, dialect, w, ms, opts.migrateTo, opts.Logger); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := r.PingContext(ctx); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	s := &Store{path: path}
	s.Store = sqlbase.New(sqlbase.Config{
		Dialect: dialect, Write: w, Read: r, Now: opts.Now, PruneChunk: opts.pruneChunk, MaxCredentialsPerParent: opts.MaxCredentialsPerParent,
		NoChangeLog: opts.migrateTo > 0 && opts.migrateTo < 8,
		Close:       func() error { return errors.Join(r.Close(), w.Close()) },
	})
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }
