// Package sqlbase is the store.Store both SQL backends share: the SQLite and
// PostgreSQL packages open their databases, say how their dialects differ
// (placeholders, how a write transaction begins, which error is a
// uniqueness violation) and hand over; everything else — queries,
// transactions, validation, error translation — is here, so the two backends
// cannot behave differently.
//
// Concurrency: every directory write runs in one transaction that first
// increments the directory revision. In SQLite the write transaction holds
// the database's write lock from BEGIN IMMEDIATE; in PostgreSQL the update of
// the single revision row takes a row lock that the next directory writer
// waits on. Either way directory writes are serialised, so the checks that
// span rows (20 credentials per parent, unique issuer and subject, parents
// and principals that must exist, compare-and-swap updates) read current data
// and cannot be raced. Unique indexes back every uniqueness rule as well.
package sqlbase

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/internal/rules"
)

// Dialect is what differs between the SQL backends.
type Dialect struct {
	// Name names the backend in logs and errors ("sqlite", "postgres").
	Name string
	// Numbered placeholders ($1, $2, ...) instead of '?'.
	Numbered bool
	// BeginWrite starts a transaction that may write.
	BeginWrite func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
	// BeginRead starts a read-only transaction that sees one consistent
	// state of the database.
	BeginRead func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
	// UniqueViolation reports whether err is a unique or primary key
	// violation, and describes the clash for the error message.
	UniqueViolation func(err error) (string, bool)
	// ForUpdate is appended to the SELECT that reads the row an update
	// changes (" FOR UPDATE" where rows can be locked).
	ForUpdate string
	// MigrationLock is run first in the migration transaction, to keep
	// replicas that start together from migrating at once.
	MigrationLock string
	// KeyLock is run first in every transaction that writes signing keys,
	// to serialise key decisions across processes ("" where the write
	// transaction itself is exclusive, as SQLite's BEGIN IMMEDIATE).
	KeyLock string
}

// Rebind rewrites '?' placeholders for the dialect. The queries of this
// package never hold '?' in a literal.
func (d *Dialect) Rebind(q string) string {
	if !d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Config is what New needs.
type Config struct {
	Dialect *Dialect
	// Write is the pool writes go through; Read the pool reads go through
	// (the same pool is fine).
	Write, Read *sql.DB
	// Now stamps CreatedAt and UpdatedAt; nil means time.Now.
	Now func() time.Time
	// Close releases the pools.
	Close func() error
	// PruneChunk bounds the records one pruning transaction deletes
	// (default 5000).
	PruneChunk int
	// MaxCredentialsPerParent bounds the federated credentials of one
	// identity or application (default directory.MaxCredentialsPerParent).
	MaxCredentialsPerParent int
	// NoChangeLog: the schema predates directory_changes (tests of
	// upgrades open old schemas): writes log nothing, readers reload.
	NoChangeLog bool
}

// Store is a store.Store on a SQL database.
type Store struct {
	d     *Dialect
	w, r  *sql.DB
	now   func() time.Time
	close func() error
	// pruneChunk bounds the rows one pruning transaction deletes, so that
	// a large prune never holds the write lock for long: audit appends from
	// the token service get in between chunks.
	pruneChunk int
	// maxCreds bounds the credentials of one parent (0: Entra's 20).
	maxCreds int
	// noChangeLog: see Config.NoChangeLog.
	noChangeLog bool
}

var _ store.Store = (*Store)(nil)

// New returns a Store over databases whose schema is already migrated.
func New(c Config) *Store {
	s := &Store{d: c.Dialect, w: c.Write, r: c.Read, now: rules.Clock(c.Now), close: c.Close, pruneChunk: c.PruneChunk, maxCreds: c.MaxCredentialsPerParent, noChangeLog: c.NoChangeLog}
	if s.pruneChunk <= 0 {
		s.pruneChunk = 5000
	}
	return s
}

// Close implements store.Store.
func (s *Store) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// DB returns the pools, for backend tests and benchmarks.
func (s *Store) DB() (write, read *sql.DB) { return s.w, s.r }

func (s *Store) sql(q string) string { return s.d.Rebind(q) }

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// batchKey carries a Batch's transaction in a context.
type batchKey struct{ s *Store }

// Batch implements store.Batcher: fn's writes share one transaction.
func (s *Store) Batch(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, nested := ctx.Value(batchKey{s}).(*batchTx); nested {
		return fn(ctx)
	}
	tx, err := s.d.BeginWrite(ctx, s.w)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", s.d.Name, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(context.WithValue(ctx, batchKey{s}, &batchTx{tx: tx})); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", s.d.Name, err)
	}
	return nil
}

// batchTx is a Batch's transaction; advanced records that it has moved
// the revision already: one step per transaction is what readers can
// see, and the row lock it takes (PostgreSQL) holds to the commit.
type batchTx struct {
	tx       *sql.Tx
	advanced bool
	// other: the batch has logged a change the change log does not
	// describe (once is enough: the revision then means "reload").
	other bool
	// tenants are those the batch has found to exist.
	tenants map[string]bool
}

const advanceRevision = `UPDATE directory_revision SET revision = revision + 1 WHERE id = 1`

// logChange records in directory_changes that the transaction's revision
// changed an object of kind (store.Change*) named key in tenant.
func (s *Store) logChange(ctx context.Context, tx *sql.Tx, tenant, kind, key string) error {
	if s.noChangeLog {
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO directory_changes (revision, tenant_id, kind, change_key)
		SELECT revision, ?, ?, ? FROM directory_revision WHERE id = 1`), tenant, kind, key); err != nil {
		return fmt.Errorf("%s: log change: %w", s.d.Name, err)
	}
	return nil
}

// writeTx runs fn in a write transaction (a Batch's, when ctx carries
// one); directory writes (dir) first advance the revision — once per
// transaction — which in PostgreSQL also serialises them, and log it as a
// change of kind store.ChangeOther (readers reload the whole directory):
// writes that describe their change use writeChangeTx.
func (s *Store) writeTx(ctx context.Context, dir bool, fn func(tx *sql.Tx) error) error {
	if !dir {
		return s.tx(ctx, false, func(tx *sql.Tx, _ func(tenant, kind, key string) error) error { return fn(tx) })
	}
	return s.tx(ctx, true, func(tx *sql.Tx, log func(tenant, kind, key string) error) error {
		if err := fn(tx); err != nil {
			return err
		}
		return log("", store.ChangeOther, "")
	})
}

// writeChangeTx is writeTx for a directory write that logs what it changed
// (store.ChangeIdentity, store.ChangeCredential) with log.
func (s *Store) writeChangeTx(ctx context.Context, fn func(tx *sql.Tx, log func(tenant, kind, key string) error) error) error {
	return s.tx(ctx, true, fn)
}

func (s *Store) tx(ctx context.Context, dir bool, fn func(tx *sql.Tx, log func(tenant, kind, key string) error) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b, ok := ctx.Value(batchKey{s}).(*batchTx); ok {
		if dir && !b.advanced {
			if _, err := b.tx.ExecContext(ctx, advanceRevision); err != nil {
				return fmt.Errorf("%s: advance revision: %w", s.d.Name, err)
			}
			b.advanced = true
		}
		return fn(b.tx, func(tenant, kind, key string) error {
			if kind == store.ChangeOther {
				if b.other {
					return nil
				}
				b.other = true
			}
			return s.logChange(ctx, b.tx, tenant, kind, key)
		})
	}
	tx, err := s.d.BeginWrite(ctx, s.w)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", s.d.Name, err)
	}
	defer func() { _ = tx.Rollback() }()
	if dir {
		if _, err := tx.ExecContext(ctx, advanceRevision); err != nil {
			return fmt.Errorf("%s: advance revision: %w", s.d.Name, err)
		}
	}
	if err := fn(tx, func(tenant, kind, key string) error { return s.logChange(ctx, tx, tenant, kind, key) }); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", s.d.Name, err)
	}
	return nil
}

// maxChangesRead bounds a ChangesSince answer: further behind, a reload
// is cheaper than replaying.
const maxChangesRead = 10_000

// ChangesSince implements store.ChangeLog.
func (s *Store) ChangesSince(ctx context.Context, since int64) (int64, []store.Change, bool, error) {
	cur, err := s.Revision(ctx)
	if err != nil {
		return 0, nil, false, err
	}
	if cur <= since || s.noChangeLog {
		return cur, nil, cur == since, nil
	}
	if cur-since > maxChangesRead {
		return cur, nil, false, nil
	}
	// Every revision up to cur is committed (a writer holds its revision
	// until it commits), so these are all of their changes.
	rows, err := s.r.QueryContext(ctx, s.sql(`SELECT revision, tenant_id, kind, change_key FROM directory_changes
		WHERE revision > ? AND revision <= ? ORDER BY seq LIMIT ?`), since, cur, maxChangesRead+1)
	if err != nil {
		return cur, nil, false, fmt.Errorf("changes since %d: %s: %w", since, s.d.Name, err)
	}
	defer rows.Close()
	var out []store.Change
	seen := map[int64]bool{}
	for rows.Next() {
		var c store.Change
		if err := rows.Scan(&c.Revision, &c.TenantID, &c.Kind, &c.Key); err != nil {
			return cur, nil, false, fmt.Errorf("changes since %d: %s: %w", since, s.d.Name, err)
		}
		if c.Kind == store.ChangeOther {
			return cur, nil, false, rows.Close()
		}
		seen[c.Revision] = true
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return cur, nil, false, fmt.Errorf("changes since %d: %s: %w", since, s.d.Name, err)
	}
	// A revision without a change was trimmed from the log (or written
	// before it existed): reload.
	complete := len(out) <= maxChangesRead && int64(len(seen)) == cur-since
	return cur, out, complete, nil
}

// TrimChanges implements store.ChangeLog.
func (s *Store) TrimChanges(ctx context.Context, keep int64) error {
	_, err := s.w.ExecContext(ctx, s.sql(`DELETE FROM directory_changes WHERE seq <= (SELECT max(seq) FROM directory_changes) - ?`), keep)
	if err != nil {
		return fmt.Errorf("trim changes: %s: %w", s.d.Name, err)
	}
	return nil
}

// exists reports whether a query returns a row.
func (s *Store) exists(ctx context.Context, q queryer, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, s.sql(query), args...).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%s: %w", s.d.Name, err)
	}
	return true, nil
}

// clashes explains each unique index, named "table.column[, table.column]"
// as SQLite names them (the PostgreSQL dialect builds the same names).
var clashes = map[string]string{
	"tenants.id":                   "a tenant with this id exists",
	"principals.client_id":         "the client id is already used by an application (appId) or a managed identity (clientId)",
	"principals.principal_id":      "the principal id is already used by a service principal or a managed identity",
	"applications.object_id":       "the application object id is already used",
	"applications.app_id":          "the appId is already used",
	"managed_identities.client_id": "the clientId is already used",
	"federated_credentials.id":     "a federated credential with this id exists",
	"federated_credentials.parent_client_id, federated_credentials.name_key": "the parent already has a federated credential of this name",
	"app_role_assignments.id": "an app role assignment with this id exists",
	"app_role_assignments.principal_id, app_role_assignments.resource_app_id, app_role_assignments.app_role_id": "the principal already has this app role",
	"signing_keys.id": "a signing key with this id exists",
	"audit_log.id":    "an audit record with this id exists",
	// PostgreSQL's partitioned audit log: a record is its id and time.
	"audit_log.id, audit_log.time_us": "an audit record with this id exists",
}

// dbErr wraps a database error, turning uniqueness violations into
// store.ErrAlreadyExists.
func (s *Store) dbErr(op string, err error) error {
	if clash, ok := s.d.UniqueViolation(err); ok {
		if why, ok := clashes[clash]; ok {
			clash = why
		}
		return fmt.Errorf("%s: %s: %w", op, clash, store.ErrAlreadyExists)
	}
	return fmt.Errorf("%s: %s: %w", op, s.d.Name, err)
}

func notFound(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, store.ErrNotFound)...)
}

// ---- encoding of nested fields

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain structs, slices and maps of strings reach here.
		panic(fmt.Sprintf("sqlbase: marshal %T: %v", v, err))
	}
	return string(b)
}

func strList(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	return jsonText(v)
}

func decodeJSON(col, text string, v any) error {
	if err := json.Unmarshal([]byte(text), v); err != nil {
		return fmt.Errorf("decode %s: %w", col, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func meta(version, created, updated int64) directory.Meta {
	return directory.Meta{Version: version, CreatedAt: rules.FromMicros(created), UpdatedAt: rules.FromMicros(updated)}
}

// ---- tenants

const tenantCols = `id, display_name, version, created_us, updated_us`

func scanTenant(sc scanner) (directory.Tenant, error) {
	var t directory.Tenant
	var v, c, u int64
	if err := sc.Scan(&t.ID, &t.DisplayName, &v, &c, &u); err != nil {
		return t, err
	}
	t.Meta = meta(v, c, u)
	return t, nil
}

// CreateTenant implements store.DirectoryStore.
func (s *Store) CreateTenant(ctx context.Context, t directory.Tenant) (directory.Tenant, error) {
	t = rules.Tenant(t)
	if err := t.Validate(); err != nil {
		return directory.Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	t.Meta = rules.NewMeta(s.now())
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.sql(`INSERT INTO tenants (`+tenantCols+`) VALUES (?, ?, ?, ?, ?)`),
			t.ID, t.DisplayName, t.Version, rules.Micros(t.CreatedAt), rules.Micros(t.UpdatedAt))
		if err != nil {
			return s.dbErr("create tenant "+t.ID, err)
		}
		return nil
	})
	if err != nil {
		return directory.Tenant{}, err
	}
	return t, nil
}

func (s *Store) getTenant(ctx context.Context, q queryer, id string, lock bool) (directory.Tenant, error) {
	query := `SELECT ` + tenantCols + ` FROM tenants WHERE id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	t, err := scanTenant(q.QueryRowContext(ctx, s.sql(query), directory.CanonicalID(id)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return t, notFound("tenant %s", id)
	case err != nil:
		return t, fmt.Errorf("get tenant %s: %s: %w", id, s.d.Name, err)
	}
	return t, nil
}

// GetTenant implements store.DirectoryStore.
func (s *Store) GetTenant(ctx context.Context, id string) (directory.Tenant, error) {
	return s.getTenant(ctx, s.r, id, false)
}

func (s *Store) listTenants(ctx context.Context, q queryer) ([]directory.Tenant, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %s: %w", s.d.Name, err)
	}
	return collect(rows, scanTenant, "list tenants")
}

// ListTenants implements store.DirectoryStore.
func (s *Store) ListTenants(ctx context.Context) ([]directory.Tenant, error) {
	return s.listTenants(ctx, s.r)
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error), op string) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// UpdateTenant implements store.DirectoryStore.
func (s *Store) UpdateTenant(ctx context.Context, id string, update func(*directory.Tenant) error) (directory.Tenant, error) {
	var out directory.Tenant
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		old, err := s.getTenant(ctx, tx, id, true)
		if err != nil {
			return fmt.Errorf("update %w", err)
		}
		t, err := rules.Apply(old, rules.Tenant, update, rules.UpdatedTenant, s.now, "tenant "+id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.sql(`UPDATE tenants SET display_name = ?, version = ?, updated_us = ? WHERE id = ?`),
			t.DisplayName, t.Version, rules.Micros(t.UpdatedAt), t.ID); err != nil {
			return s.dbErr("update tenant "+id, err)
		}
		out = t
		return nil
	})
	return out, err
}

// DeleteTenant implements store.DirectoryStore.
func (s *Store) DeleteTenant(ctx context.Context, id string, pre ...store.Precondition) error {
	if b, _ := ctx.Value(batchKey{s}).(*batchTx); b != nil {
		delete(b.tenants, directory.CanonicalID(id))
	}
	return s.writeTx(ctx, true, func(tx *sql.Tx) error {
		if len(pre) > 0 {
			t, err := s.getTenant(ctx, tx, id, true)
			if err != nil {
				return fmt.Errorf("delete %w", err)
			}
			if err := store.CheckPreconditions(t.Version, pre); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.sql(`DELETE FROM tenants WHERE id = ?`), directory.CanonicalID(id))
		if err != nil {
			return s.dbErr("delete tenant "+id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound("delete tenant %s", id)
		}
		return nil
	})
}

func (s *Store) tenantExists(ctx context.Context, q queryer, id string) (bool, error) {
	// Inside a Batch a tenant found once stays (until the batch deletes
	// it): apply's thousand creates ask once.
	b, _ := ctx.Value(batchKey{s}).(*batchTx)
	if b != nil && b.tenants[id] {
		return true, nil
	}
	ok, err := s.exists(ctx, q, `SELECT 1 FROM tenants WHERE id = ?`, id)
	if ok && b != nil {
		if b.tenants == nil {
			b.tenants = map[string]bool{}
		}
		b.tenants[id] = true
	}
	return ok, err
}

// ---- applications

const appCols = `tenant_id, app_id, object_id, service_principal_id, display_name, identifier_uris, app_roles, requested_access_token_version, version, created_us, updated_us`

func scanApp(sc scanner) (directory.Application, error) {
	var a directory.Application
	var uris, roles string
	var v, c, u int64
	if err := sc.Scan(&a.TenantID, &a.AppID, &a.ObjectID, &a.ServicePrincipalID, &a.DisplayName, &uris, &roles, &a.RequestedAccessTokenVersion, &v, &c, &u); err != nil {
		return a, err
	}
	if err := decodeJSON("identifier_uris", uris, &a.IdentifierURIs); err != nil {
		return a, err
	}
	if err := decodeJSON("app_roles", roles, &a.AppRoles); err != nil {
		return a, err
	}
	a.Meta = meta(v, c, u)
	return rules.Application(a), nil
}

func (s *Store) insertURIs(ctx context.Context, tx *sql.Tx, a directory.Application) error {
	for _, u := range a.IdentifierURIs {
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO application_uris (tenant_id, uri_key, app_id) VALUES (?, ?, ?)`),
			a.TenantID, rules.URIKey(u), a.AppID); err != nil {
			if _, ok := s.d.UniqueViolation(err); ok {
				return fmt.Errorf("identifier URI %q is used by another application of tenant %s: %w", u, a.TenantID, store.ErrAlreadyExists)
			}
			return fmt.Errorf("%s: %w", s.d.Name, err)
		}
	}
	return nil
}

// CreateApplication implements store.DirectoryStore.
func (s *Store) CreateApplication(ctx context.Context, a directory.Application) (directory.Application, error) {
	a = rules.Application(a)
	if err := a.Validate(); err != nil {
		return directory.Application{}, fmt.Errorf("create application: %w", err)
	}
	a.Meta = rules.NewMeta(s.now())
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		if ok, err := s.tenantExists(ctx, tx, a.TenantID); err != nil {
			return err
		} else if !ok {
			return notFound("create application: tenant %s", a.TenantID)
		}
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO principals (client_id, principal_id, tenant_id, kind) VALUES (?, ?, ?, ?)`),
			a.AppID, a.ServicePrincipalID, a.TenantID, string(directory.ParentApplication)); err != nil {
			return s.dbErr("create application", err)
		}
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO applications (`+appCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			a.TenantID, a.AppID, a.ObjectID, a.ServicePrincipalID, a.DisplayName, strList(a.IdentifierURIs), appRoles(a.AppRoles),
			a.RequestedAccessTokenVersion, a.Version, rules.Micros(a.CreatedAt), rules.Micros(a.UpdatedAt)); err != nil {
			return s.dbErr("create application", err)
		}
		if err := s.insertURIs(ctx, tx, a); err != nil {
			return fmt.Errorf("create application: %w", err)
		}
		return nil
	})
	if err != nil {
		return directory.Application{}, err
	}
	return rules.Application(a), nil
}

func appRoles(rs []directory.AppRole) string {
	if len(rs) == 0 {
		return "[]"
	}
	return jsonText(rs)
}

func (s *Store) getApp(ctx context.Context, q queryer, tenantID, appID string, lock bool) (directory.Application, error) {
	query := `SELECT ` + appCols + ` FROM applications WHERE app_id = ? AND tenant_id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	a, err := scanApp(q.QueryRowContext(ctx, s.sql(query), directory.CanonicalID(appID), directory.CanonicalID(tenantID)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return a, notFound("application %s in tenant %s", appID, tenantID)
	case err != nil:
		return a, fmt.Errorf("get application %s: %s: %w", appID, s.d.Name, err)
	}
	return a, nil
}

// GetApplication implements store.DirectoryStore.
func (s *Store) GetApplication(ctx context.Context, tenantID, appID string) (directory.Application, error) {
	return s.getApp(ctx, s.r, tenantID, appID, false)
}

// ListApplications implements store.DirectoryStore.
func (s *Store) ListApplications(ctx context.Context, tenantID string) ([]directory.Application, error) {
	tenantID = directory.CanonicalID(tenantID)
	if ok, err := s.tenantExists(ctx, s.r, tenantID); err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	} else if !ok {
		return nil, notFound("list applications: tenant %s", tenantID)
	}
	rows, err := s.r.QueryContext(ctx, s.sql(`SELECT `+appCols+` FROM applications WHERE tenant_id = ? ORDER BY app_id`), tenantID)
	if err != nil {
		return nil, fmt.Errorf("list applications: %s: %w", s.d.Name, err)
	}
	return collect(rows, scanApp, "list applications")
}

// UpdateApplication implements store.DirectoryStore.
func (s *Store) UpdateApplication(ctx context.Context, tenantID, appID string, update func(*directory.Application) error) (directory.Application, error) {
	var out directory.Application
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		old, err := s.getApp(ctx, tx, tenantID, appID, true)
		if err != nil {
			return fmt.Errorf("update %w", err)
		}
		a, err := rules.Apply(old, rules.Application, update, rules.UpdatedApplication, s.now, "application "+appID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.sql(`UPDATE applications SET display_name = ?, identifier_uris = ?, app_roles = ?,
			requested_access_token_version = ?, version = ?, updated_us = ? WHERE app_id = ?`),
			a.DisplayName, strList(a.IdentifierURIs), appRoles(a.AppRoles), a.RequestedAccessTokenVersion,
			a.Version, rules.Micros(a.UpdatedAt), a.AppID); err != nil {
			return s.dbErr("update application "+appID, err)
		}
		if _, err := tx.ExecContext(ctx, s.sql(`DELETE FROM application_uris WHERE app_id = ?`), a.AppID); err != nil {
			return s.dbErr("update application "+appID, err)
		}
		if err := s.insertURIs(ctx, tx, a); err != nil {
			return fmt.Errorf("update application %s: %w", appID, err)
		}
		// Assignments of roles the application no longer has go with them.
		for _, id := range rules.DroppedRoles(old, a) {
			if _, err := tx.ExecContext(ctx, s.sql(`DELETE FROM app_role_assignments WHERE resource_app_id = ? AND app_role_id = ?`), a.AppID, id); err != nil {
				return s.dbErr("update application "+appID, err)
			}
		}
		out = a
		return nil
	})
	return out, err
}

// DeleteApplication implements store.DirectoryStore. Deleting the
// application's principal cascades (foreign keys) to the application, its
// identifier URIs, its credentials, the assignments it holds and those to
// it.
func (s *Store) DeleteApplication(ctx context.Context, tenantID, appID string, pre ...store.Precondition) error {
	return s.writeTx(ctx, true, func(tx *sql.Tx) error {
		a, err := s.getApp(ctx, tx, tenantID, appID, true)
		if err != nil {
			return fmt.Errorf("delete %w", err)
		}
		if err := store.CheckPreconditions(a.Version, pre); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.sql(`DELETE FROM principals WHERE client_id = ?`), a.AppID); err != nil {
			return s.dbErr("delete application "+appID, err)
		}
		return nil
	})
}

// ---- managed identities

const miCols = `tenant_id, subscription_id, resource_group, name, location, client_id, principal_id, tags, version, created_us, updated_us`

func scanMI(sc scanner) (directory.ManagedIdentity, error) {
	var m directory.ManagedIdentity
	var tags string
	var v, c, u int64
	if err := sc.Scan(&m.TenantID, &m.SubscriptionID, &m.ResourceGroup, &m.Name, &m.Location, &m.ClientID, &m.PrincipalID, &tags, &v, &c, &u); err != nil {
		return m, err
	}
	if err := decodeJSON("tags", tags, &m.Tags); err != nil {
		return m, err
	}
	m.Meta = meta(v, c, u)
	return rules.ManagedIdentity(m), nil
}

func tagsText(t map[string]string) string {
	if len(t) == 0 {
		return "{}"
	}
	return jsonText(t)
}

func refString(ref store.IdentityRef) string {
	return "/subscriptions/" + ref.SubscriptionID + "/resourceGroups/" + ref.ResourceGroup + "/" + ref.Name
}

// CreateManagedIdentity implements store.DirectoryStore.
func (s *Store) CreateManagedIdentity(ctx context.Context, m directory.ManagedIdentity) (directory.ManagedIdentity, error) {
	m = rules.ManagedIdentity(m)
	if err := m.Validate(); err != nil {
		return directory.ManagedIdentity{}, fmt.Errorf("create managed identity: %w", err)
	}
	m.Meta = rules.NewMeta(s.now())
	err := s.writeChangeTx(ctx, func(tx *sql.Tx, log func(tenant, kind, key string) error) error {
		if ok, err := s.tenantExists(ctx, tx, m.TenantID); err != nil {
			return err
		} else if !ok {
			return notFound("create managed identity: tenant %s", m.TenantID)
		}
		ref := store.IdentityRef{SubscriptionID: m.SubscriptionID, ResourceGroup: m.ResourceGroup, Name: m.Name}
		if _, err := s.getMI(ctx, tx, m.TenantID, ref, false); err == nil {
			return fmt.Errorf("create managed identity %s: %w", refString(ref), store.ErrAlreadyExists)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO principals (client_id, principal_id, tenant_id, kind) VALUES (?, ?, ?, ?)`),
			m.ClientID, m.PrincipalID, m.TenantID, string(directory.ParentManagedIdentity)); err != nil {
			return s.dbErr("create managed identity", err)
		}
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO managed_identities (`+miCols+`, resource_group_key, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			m.TenantID, m.SubscriptionID, m.ResourceGroup, m.Name, m.Location, m.ClientID, m.PrincipalID, tagsText(m.Tags),
			m.Version, rules.Micros(m.CreatedAt), rules.Micros(m.UpdatedAt), rules.Key(m.ResourceGroup), rules.Key(m.Name)); err != nil {
			return s.dbErr("create managed identity", err)
		}
		return log(m.TenantID, store.ChangeIdentity, m.ClientID)
	})
	if err != nil {
		return directory.ManagedIdentity{}, err
	}
	return rules.ManagedIdentity(m), nil
}

func (s *Store) getMI(ctx context.Context, q queryer, tenantID string, ref store.IdentityRef, lock bool) (directory.ManagedIdentity, error) {
	query := `SELECT ` + miCols + ` FROM managed_identities WHERE tenant_id = ? AND subscription_id = ? AND resource_group_key = ? AND name_key = ?`
	if lock {
		query += s.d.ForUpdate
	}
	m, err := scanMI(q.QueryRowContext(ctx, s.sql(query), directory.CanonicalID(tenantID), directory.CanonicalID(ref.SubscriptionID),
		rules.Key(ref.ResourceGroup), rules.Key(ref.Name)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return m, notFound("managed identity %s in tenant %s", refString(ref), tenantID)
	case err != nil:
		return m, fmt.Errorf("get managed identity %s: %s: %w", refString(ref), s.d.Name, err)
	}
	return m, nil
}

// GetManagedIdentity implements store.DirectoryStore.
func (s *Store) GetManagedIdentity(ctx context.Context, tenantID string, ref store.IdentityRef) (directory.ManagedIdentity, error) {
	return s.getMI(ctx, s.r, tenantID, ref, false)
}

// GetManagedIdentityByClientID implements store.DirectoryStore.
func (s *Store) GetManagedIdentityByClientID(ctx context.Context, tenantID, clientID string) (directory.ManagedIdentity, error) {
	m, err := scanMI(s.r.QueryRowContext(ctx, s.sql(`SELECT `+miCols+` FROM managed_identities WHERE client_id = ? AND tenant_id = ?`),
		directory.CanonicalID(clientID), directory.CanonicalID(tenantID)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return m, notFound("managed identity with client id %s in tenant %s", clientID, tenantID)
	case err != nil:
		return m, fmt.Errorf("get managed identity %s: %s: %w", clientID, s.d.Name, err)
	}
	return m, nil
}

const miOrder = ` ORDER BY tenant_id, subscription_id, resource_group_key, name_key`

// ListManagedIdentities implements store.DirectoryStore.
func (s *Store) ListManagedIdentities(ctx context.Context, tenantID string, filter store.IdentityFilter) ([]directory.ManagedIdentity, error) {
	tenantID = directory.CanonicalID(tenantID)
	if ok, err := s.tenantExists(ctx, s.r, tenantID); err != nil {
		return nil, fmt.Errorf("list managed identities: %w", err)
	} else if !ok {
		return nil, notFound("list managed identities: tenant %s", tenantID)
	}
	q := `SELECT ` + miCols + ` FROM managed_identities WHERE tenant_id = ?`
	args := []any{tenantID}
	if filter.SubscriptionID != "" {
		q += ` AND subscription_id = ?`
		args = append(args, directory.CanonicalID(filter.SubscriptionID))
	}
	if filter.ResourceGroup != "" {
		q += ` AND resource_group_key = ?`
		args = append(args, rules.Key(filter.ResourceGroup))
	}
	if p := rules.Key(filter.NamePrefix); p != "" {
		q += ` AND substr(name_key, 1, ?) = ?`
		args = append(args, utf8.RuneCountInString(p), p)
	}
	if a := filter.After; a.Name != "" {
		// The unique index (tenant, subscription, group key, name key)
		// serves this range without reading what comes before it.
		// A row-value comparison: both SQLite and PostgreSQL seek the
		// index to it (an OR of the same conditions scans).
		q += ` AND (subscription_id, resource_group_key, name_key) > (?, ?, ?)`
		args = append(args, directory.CanonicalID(a.SubscriptionID), rules.Key(a.ResourceGroup), rules.Key(a.Name))
	}
	q += miOrder
	if filter.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, filter.Limit)
	}
	rows, err := s.r.QueryContext(ctx, s.sql(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list managed identities: %s: %w", s.d.Name, err)
	}
	return collect(rows, scanMI, "list managed identities")
}

// UpdateManagedIdentity implements store.DirectoryStore.
func (s *Store) UpdateManagedIdentity(ctx context.Context, tenantID string, ref store.IdentityRef, update func(*directory.ManagedIdentity) error) (directory.ManagedIdentity, error) {
	var out directory.ManagedIdentity
	err := s.writeChangeTx(ctx, func(tx *sql.Tx, log func(tenant, kind, key string) error) error {
		old, err := s.getMI(ctx, tx, tenantID, ref, true)
		if err != nil {
			return fmt.Errorf("update %w", err)
		}
		m, err := rules.Apply(old, rules.ManagedIdentity, update, rules.UpdatedManagedIdentity, s.now, "managed identity "+refString(ref))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.sql(`UPDATE managed_identities SET location = ?, tags = ?, version = ?, updated_us = ? WHERE client_id = ?`),
			m.Location, tagsText(m.Tags), m.Version, rules.Micros(m.UpdatedAt), m.ClientID); err != nil {
			return s.dbErr("update managed identity "+refString(ref), err)
		}
		out = m
		return log(m.TenantID, store.ChangeIdentity, m.ClientID)
	})
	return out, err
}

// DeleteManagedIdentity implements store.DirectoryStore. Deleting the
// identity's principal cascades to the identity, its credentials and its
// assignments.
func (s *Store) DeleteManagedIdentity(ctx context.Context, tenantID string, ref store.IdentityRef, pre ...store.Precondition) error {
	return s.writeChangeTx(ctx, func(tx *sql.Tx, log func(tenant, kind, key string) error) error {
		m, err := s.getMI(ctx, tx, tenantID, ref, true)
		if err != nil {
			return fmt.Errorf("delete %w", err)
		}
		if err := store.CheckPreconditions(m.Version, pre); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.sql(`DELETE FROM principals WHERE client_id = ?`), m.ClientID); err != nil {
			return s.dbErr("delete managed identity "+refString(ref), err)
		}
		// The cascade takes its credentials and role assignments along.
		return log(m.TenantID, store.ChangeIdentityDeleted, m.ClientID)
	})
}

// ---- federated credentials

const credCols = `tenant_id, parent_kind, parent_client_id, id, name, issuer, subject, claims_expression, audiences, description, version, created_us, updated_us`

func scanCred(sc scanner) (directory.FederatedCredential, error) {
	var f directory.FederatedCredential
	var kind, auds string
	var expr sql.NullString
	var v, c, u int64
	if err := sc.Scan(&f.TenantID, &kind, &f.ParentClientID, &f.ID, &f.Name, &f.Issuer, &f.Subject, &expr, &auds, &f.Description, &v, &c, &u); err != nil {
		return f, err
	}
	f.ParentKind = directory.ParentKind(kind)
	if expr.Valid {
		f.ClaimsMatchingExpression = &directory.ClaimsMatchingExpression{}
		if err := decodeJSON("claims_expression", expr.String, f.ClaimsMatchingExpression); err != nil {
			return f, err
		}
	}
	if err := decodeJSON("audiences", auds, &f.Audiences); err != nil {
		return f, err
	}
	f.Meta = meta(v, c, u)
	return rules.Credential(f), nil
}

func exprText(e *directory.ClaimsMatchingExpression) sql.NullString {
	if e == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: jsonText(e), Valid: true}
}

func (s *Store) parentExists(ctx context.Context, q queryer, f directory.FederatedCredential) (bool, error) {
	switch f.ParentKind {
	case directory.ParentManagedIdentity:
		return s.exists(ctx, q, `SELECT 1 FROM managed_identities WHERE client_id = ? AND tenant_id = ?`, f.ParentClientID, f.TenantID)
	case directory.ParentApplication:
		return s.exists(ctx, q, `SELECT 1 FROM applications WHERE app_id = ? AND tenant_id = ?`, f.ParentClientID, f.TenantID)
	}
	return false, nil
}

func (s *Store) credsOf(ctx context.Context, q queryer, tenantID, parentClientID string) ([]directory.FederatedCredential, error) {
	rows, err := q.QueryContext(ctx, s.sql(`SELECT `+credCols+` FROM federated_credentials WHERE parent_client_id = ? AND tenant_id = ? ORDER BY name_key`),
		directory.CanonicalID(parentClientID), directory.CanonicalID(tenantID))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.d.Name, err)
	}
	return collect(rows, scanCred, "list federated credentials")
}

// CreateFederatedCredential implements store.DirectoryStore.
func (s *Store) CreateFederatedCredential(ctx context.Context, f directory.FederatedCredential) (directory.FederatedCredential, error) {
	f = rules.Credential(f)
	if err := f.Validate(); err != nil {
		return directory.FederatedCredential{}, fmt.Errorf("create federated credential: %w", err)
	}
	f.Meta = rules.NewMeta(s.now())
	err := s.writeChangeTx(ctx, func(tx *sql.Tx, log func(tenant, kind, key string) error) error {
		if ok, err := s.parentExists(ctx, tx, f); err != nil {
			return fmt.Errorf("create federated credential: %w", err)
		} else if !ok {
			return notFound("create federated credential %q: %s %s in tenant %s", f.Name, f.ParentKind, f.ParentClientID, f.TenantID)
		}
		all, err := s.credsOf(ctx, tx, f.TenantID, f.ParentClientID)
		if err != nil {
			return fmt.Errorf("create federated credential: %w", err)
		}
		siblings := rules.Siblings(f, all)
		if rules.SameName(f, siblings) {
			return fmt.Errorf("create federated credential: %s %s already has a credential named %q: %w", f.ParentKind, f.ParentClientID, f.Name, store.ErrAlreadyExists)
		}
		if err := f.ValidateSetLimit(siblings, s.maxCreds); err != nil {
			return fmt.Errorf("create federated credential %q: %w", f.Name, err)
		}
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO federated_credentials (`+credCols+`, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			f.TenantID, string(f.ParentKind), f.ParentClientID, f.ID, f.Name, f.Issuer, f.Subject, exprText(f.ClaimsMatchingExpression),
			strList(f.Audiences), f.Description, f.Version, rules.Micros(f.CreatedAt), rules.Micros(f.UpdatedAt), rules.Key(f.Name)); err != nil {
			return s.dbErr("create federated credential "+f.Name, err)
		}
		return log(f.TenantID, store.ChangeCredential, f.ParentClientID)
	})
	if err != nil {
		return directory.FederatedCredential{}, err
	}
	return rules.Credential(f), nil
}

func (s *Store) getCred(ctx context.Context, q queryer, tenantID, parentClientID, name string, lock bool) (directory.FederatedCredential, error) {
	query := `SELECT ` + credCols + ` FROM federated_credentials WHERE parent_client_id = ? AND name_key = ? AND tenant_id = ?`
	if lock {
		query += s.d.ForUpdate
	}
	f, err := scanCred(q.QueryRowContext(ctx, s.sql(query), directory.CanonicalID(parentClientID), rules.Key(name), directory.CanonicalID(tenantID)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return f, notFound("federated credential %q of %s in tenant %s", name, parentClientID, tenantID)
	case err != nil:
		return f, fmt.Errorf("get federated credential %q: %s: %w", name, s.d.Name, err)
	}
	return f, nil
}

// GetFederatedCredential implements store.DirectoryStore.
func (s *Store) GetFederatedCredential(ctx context.Context, tenantID, parentClientID, name string) (directory.FederatedCredential, error) {
	return s.getCred(ctx, s.r, tenantID, parentClientID, name, false)
}

// ListFederatedCredentials implements store.DirectoryStore.
func (s *Store) ListFederatedCredentials(ctx context.Context, tenantID, parentClientID string) ([]directory.FederatedCredential, error) {
	ok, err := s.exists(ctx, s.r, `SELECT 1 FROM principals WHERE client_id = ? AND tenant_id = ?`,
		directory.CanonicalID(parentClientID), directory.CanonicalID(tenantID))
	if err != nil {
		return nil, fmt.Errorf("list federated credentials: %w", err)
	}
	if !ok {
		return nil, notFound("list federated credentials: no managed identity or application %s in tenant %s", parentClientID, tenantID)
	}
	out, err := s.credsOf(ctx, s.r, tenantID, parentClientID)
	if err != nil {
		return nil, fmt.Errorf("list federated credentials: %w", err)
	}
	return out, nil
}

// UpdateFederatedCredential implements store.DirectoryStore.
func (s *Store) UpdateFederatedCredential(ctx context.Context, tenantID, parentClientID, name string, update func(*directory.FederatedCredential) error) (directory.FederatedCredential, error) {
	var out directory.FederatedCredential
	err := s.writeChangeTx(ctx, func(tx *sql.Tx, log func(tenant, kind, key string) error) error {
		old, err := s.getCred(ctx, tx, tenantID, parentClientID, name, true)
		if err != nil {
			return fmt.Errorf("update %w", err)
		}
		f, err := rules.Apply(old, rules.Credential, update, rules.UpdatedCredential, s.now, fmt.Sprintf("federated credential %q", name))
		if err != nil {
			return err
		}
		all, err := s.credsOf(ctx, tx, f.TenantID, f.ParentClientID)
		if err != nil {
			return fmt.Errorf("update federated credential %q: %w", name, err)
		}
		if err := f.ValidateSetLimit(rules.Siblings(f, all), s.maxCreds); err != nil {
			return fmt.Errorf("update federated credential %q: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, s.sql(`UPDATE federated_credentials SET issuer = ?, subject = ?, claims_expression = ?, audiences = ?,
			description = ?, version = ?, updated_us = ? WHERE id = ?`),
			f.Issuer, f.Subject, exprText(f.ClaimsMatchingExpression), strList(f.Audiences), f.Description,
			f.Version, rules.Micros(f.UpdatedAt), f.ID); err != nil {
			return s.dbErr("update federated credential "+name, err)
		}
		out = f
		return log(f.TenantID, store.ChangeCredential, f.ParentClientID)
	})
	return out, err
}

// DeleteFederatedCredential implements store.DirectoryStore.
func (s *Store) DeleteFederatedCredential(ctx context.Context, tenantID, parentClientID, name string, pre ...store.Precondition) error {
	return s.writeChangeTx(ctx, func(tx *sql.Tx, log func(tenant, kind, key string) error) error {
		if len(pre) > 0 {
			f, err := s.getCred(ctx, tx, tenantID, parentClientID, name, true)
			if err != nil {
				return fmt.Errorf("delete %w", err)
			}
			if err := store.CheckPreconditions(f.Version, pre); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.sql(`DELETE FROM federated_credentials WHERE parent_client_id = ? AND name_key = ? AND tenant_id = ?`),
			directory.CanonicalID(parentClientID), rules.Key(name), directory.CanonicalID(tenantID))
		if err != nil {
			return s.dbErr("delete federated credential "+name, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound("delete federated credential %q of %s in tenant %s", name, parentClientID, tenantID)
		}
		return log(directory.CanonicalID(tenantID), store.ChangeCredential, directory.CanonicalID(parentClientID))
	})
}

// ---- app role assignments

const assignCols = `tenant_id, id, principal_id, resource_app_id, app_role_id, version, created_us, updated_us`

func scanAssign(sc scanner) (directory.AppRoleAssignment, error) {
	var a directory.AppRoleAssignment
	var v, c, u int64
	if err := sc.Scan(&a.TenantID, &a.ID, &a.PrincipalID, &a.ResourceAppID, &a.AppRoleID, &v, &c, &u); err != nil {
		return a, err
	}
	a.Meta = meta(v, c, u)
	return a, nil
}

// CreateAppRoleAssignment implements store.DirectoryStore.
func (s *Store) CreateAppRoleAssignment(ctx context.Context, a directory.AppRoleAssignment) (directory.AppRoleAssignment, error) {
	a = rules.Assignment(a)
	if err := rules.AssignmentPrecheck(a); err != nil {
		return directory.AppRoleAssignment{}, fmt.Errorf("create app role assignment: %w", err)
	}
	a.Meta = rules.NewMeta(s.now())
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		res, err := s.getApp(ctx, tx, a.TenantID, a.ResourceAppID, false)
		if err != nil {
			return fmt.Errorf("create app role assignment: resource %w", err)
		}
		if ok, err := s.exists(ctx, tx, `SELECT 1 FROM principals WHERE principal_id = ? AND tenant_id = ?`, a.PrincipalID, a.TenantID); err != nil {
			return fmt.Errorf("create app role assignment: %w", err)
		} else if !ok {
			return notFound("create app role assignment: no managed identity or service principal with principal id %s in tenant %s", a.PrincipalID, a.TenantID)
		}
		if err := a.Validate(res); err != nil {
			return fmt.Errorf("create app role assignment: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO app_role_assignments (`+assignCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			a.TenantID, a.ID, a.PrincipalID, a.ResourceAppID, a.AppRoleID, a.Version, rules.Micros(a.CreatedAt), rules.Micros(a.UpdatedAt)); err != nil {
			return s.dbErr("create app role assignment", err)
		}
		return nil
	})
	if err != nil {
		return directory.AppRoleAssignment{}, err
	}
	return a, nil
}

// ListAppRoleAssignments implements store.DirectoryStore.
func (s *Store) ListAppRoleAssignments(ctx context.Context, tenantID string, filter store.AssignmentFilter) ([]directory.AppRoleAssignment, error) {
	tenantID = directory.CanonicalID(tenantID)
	if ok, err := s.tenantExists(ctx, s.r, tenantID); err != nil {
		return nil, fmt.Errorf("list app role assignments: %w", err)
	} else if !ok {
		return nil, notFound("list app role assignments: tenant %s", tenantID)
	}
	q := `SELECT ` + assignCols + ` FROM app_role_assignments WHERE tenant_id = ?`
	args := []any{tenantID}
	if filter.PrincipalID != "" {
		q += ` AND principal_id = ?`
		args = append(args, directory.CanonicalID(filter.PrincipalID))
	}
	if filter.ResourceAppID != "" {
		q += ` AND resource_app_id = ?`
		args = append(args, directory.CanonicalID(filter.ResourceAppID))
	}
	rows, err := s.r.QueryContext(ctx, s.sql(q+` ORDER BY id`), args...)
	if err != nil {
		return nil, fmt.Errorf("list app role assignments: %s: %w", s.d.Name, err)
	}
	return collect(rows, scanAssign, "list app role assignments")
}

// DeleteAppRoleAssignment implements store.DirectoryStore.
func (s *Store) DeleteAppRoleAssignment(ctx context.Context, tenantID, id string) error {
	return s.writeTx(ctx, true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.sql(`DELETE FROM app_role_assignments WHERE id = ? AND tenant_id = ?`),
			directory.CanonicalID(id), directory.CanonicalID(tenantID))
		if err != nil {
			return s.dbErr("delete app role assignment "+id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound("delete app role assignment %s in tenant %s", id, tenantID)
		}
		return nil
	})
}

// ---- snapshot and revision

// Snapshot implements store.DirectoryStore: one read transaction, six
// queries, whatever the size of the directory.
func (s *Store) Snapshot(ctx context.Context) (store.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return store.Snapshot{}, err
	}
	tx, err := s.d.BeginRead(ctx, s.r)
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: begin: %s: %w", s.d.Name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var snap store.Snapshot
	if err := tx.QueryRowContext(ctx, `SELECT revision FROM directory_revision WHERE id = 1`).Scan(&snap.Revision); err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: revision: %s: %w", s.d.Name, err)
	}
	if snap.Tenants, err = s.listTenants(ctx, tx); err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+appCols+` FROM applications ORDER BY tenant_id, app_id`)
	if err == nil {
		snap.Applications, err = collect(rows, scanApp, "applications")
	}
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+miCols+` FROM managed_identities`+miOrder)
	if err == nil {
		snap.ManagedIdentities, err = collect(rows, scanMI, "managed identities")
	}
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+credCols+` FROM federated_credentials ORDER BY tenant_id, parent_client_id, name_key`)
	if err == nil {
		snap.Credentials, err = collect(rows, scanCred, "federated credentials")
	}
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+assignCols+` FROM app_role_assignments ORDER BY tenant_id, id`)
	if err == nil {
		snap.AppRoleAssignments, err = collect(rows, scanAssign, "app role assignments")
	}
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := s.snapshotTrust(ctx, tx, &snap); err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshot: end: %s: %w", s.d.Name, err)
	}
	return snap, nil
}

// Revision implements store.DirectoryStore.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var r int64
	if err := s.r.QueryRowContext(ctx, `SELECT revision FROM directory_revision WHERE id = 1`).Scan(&r); err != nil {
		return 0, fmt.Errorf("revision: %s: %w", s.d.Name, err)
	}
	return r, nil
}

// ---- signing keys

const keyCols = `id, algorithm, private_key, kek_id, certificate, created_us, publish_us, activate_us, retire_us, expire_us, revoked_us`

// CreateSigningKey implements store.KeyStore.
func (s *Store) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	return s.createSigningKey(ctx, k, nil)
}

func (s *Store) createSigningKey(ctx context.Context, k store.SigningKey, check func([]store.SigningKey) error) error {
	if k.ID == "" {
		return fmt.Errorf("create signing key: %w", &directory.ValidationError{Field: "id", Rule: "is required"})
	}
	k = rules.SigningKey(k)
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	k = normalizeKey(k)
	return s.keyTx(ctx, func(tx *sql.Tx) error {
		if check != nil {
			existing, err := s.listKeys(ctx, tx, "")
			if err != nil {
				return err
			}
			if err := check(existing); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO signing_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			k.ID, k.Algorithm, k.PrivateKey, k.KEKID, k.Certificate, rules.Micros(k.CreatedAt), rules.Micros(k.PublishAt),
			rules.Micros(k.ActivateAt), rules.Micros(k.RetireAt), rules.Micros(k.ExpireAt), rules.Micros(k.RevokedAt)); err != nil {
			return s.dbErr("create signing key "+k.ID, err)
		}
		return nil
	})
}

// keyTx runs fn in a write transaction that holds the key lock, so key
// writers in every process sharing the database run one after the other.
func (s *Store) keyTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeTx(ctx, false, func(tx *sql.Tx) error {
		if s.d.KeyLock != "" {
			if _, err := tx.ExecContext(ctx, s.d.KeyLock); err != nil {
				return fmt.Errorf("%s: lock signing keys: %w", s.d.Name, err)
			}
		}
		return fn(tx)
	})
}

// CreateSigningKeyIf implements store.KeyStore.
func (s *Store) CreateSigningKeyIf(ctx context.Context, k store.SigningKey, check func([]store.SigningKey) error) error {
	return s.createSigningKey(ctx, k, check)
}

// UpdateSigningKey implements store.KeyStore.
func (s *Store) UpdateSigningKey(ctx context.Context, id string, update func(*store.SigningKey) error) (store.SigningKey, error) {
	var out store.SigningKey
	err := s.keyTx(ctx, func(tx *sql.Tx) error {
		keys, err := s.listKeys(ctx, tx, `WHERE id = ?`+s.d.ForUpdate, id)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return notFound("update signing key %s", id)
		}
		k := keys[0]
		if err := update(&k); err != nil {
			return err
		}
		if k.ID != id {
			return fmt.Errorf("update signing key %s: %w", id, &directory.ValidationError{Field: "id", Rule: "cannot change", Value: k.ID})
		}
		k = normalizeKey(rules.SigningKey(k))
		if _, err := tx.ExecContext(ctx, s.sql(`UPDATE signing_keys SET algorithm = ?, private_key = ?, kek_id = ?, certificate = ?, publish_us = ?, activate_us = ?, retire_us = ?, expire_us = ?, revoked_us = ? WHERE id = ?`),
			k.Algorithm, k.PrivateKey, k.KEKID, k.Certificate, rules.Micros(k.PublishAt), rules.Micros(k.ActivateAt), rules.Micros(k.RetireAt), rules.Micros(k.ExpireAt), rules.Micros(k.RevokedAt), id); err != nil {
			return s.dbErr("update signing key "+id, err)
		}
		out = k
		return nil
	})
	if err != nil {
		return store.SigningKey{}, err
	}
	return denormalizeKey(out), nil
}

// normalizeKey stores empty byte fields as empty, not NULL.
func normalizeKey(k store.SigningKey) store.SigningKey {
	if k.Certificate == nil {
		k.Certificate = []byte{}
	}
	if k.PrivateKey == nil {
		k.PrivateKey = []byte{}
	}
	return k
}

func denormalizeKey(k store.SigningKey) store.SigningKey {
	if len(k.Certificate) == 0 {
		k.Certificate = nil
	}
	if len(k.PrivateKey) == 0 {
		k.PrivateKey = nil
	}
	return k
}

// ListSigningKeys implements store.KeyStore.
func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	return s.listKeys(ctx, s.r, "")
}

// listKeys reads the keys matching where (with args), oldest first.
func (s *Store) listKeys(ctx context.Context, q queryer, where string, args ...any) ([]store.SigningKey, error) {
	order := ` ORDER BY created_us, id`
	if strings.Contains(where, "FOR UPDATE") {
		order = "" // FOR UPDATE comes last; one row by id needs no order
	}
	rows, err := q.QueryContext(ctx, s.sql(`SELECT `+keyCols+` FROM signing_keys `+where+order), args...)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %s: %w", s.d.Name, err)
	}
	return collect(rows, func(sc scanner) (store.SigningKey, error) {
		var k store.SigningKey
		var c, p, a, r, e, v int64
		if err := sc.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &k.KEKID, &k.Certificate, &c, &p, &a, &r, &e, &v); err != nil {
			return k, err
		}
		k.CreatedAt, k.PublishAt, k.ActivateAt, k.RetireAt, k.ExpireAt = rules.FromMicros(c), rules.FromMicros(p), rules.FromMicros(a), rules.FromMicros(r), rules.FromMicros(e)
		k.RevokedAt = rules.FromMicros(v)
		return denormalizeKey(k), nil
	}, "list signing keys")
}

// DeleteSigningKey implements store.KeyStore.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	return s.keyTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.sql(`DELETE FROM signing_keys WHERE id = ?`), id)
		if err != nil {
			return s.dbErr("delete signing key "+id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound("delete signing key %s", id)
		}
		return nil
	})
}

// ---- audit

const auditCols = `id, time_us, tenant_id, client_id, credential_name, grant_type, resource, issuer, subject, jti_hash, result, error_code, error, correlation_id, remote_addr, reason, diagnosis, audience, exchange_count`

// auditChunk bounds the rows of one INSERT (18 parameters each).
const auditChunk = 64

// AppendAudit implements store.AuditStore: one transaction, multi-row
// INSERTs.
func (s *Store) AppendAudit(ctx context.Context, records []store.AuditRecord) error {
	if len(records) == 0 {
		return ctx.Err()
	}
	now := s.now()
	return s.writeTx(ctx, false, func(tx *sql.Tx) error {
		for start := 0; start < len(records); start += auditChunk {
			batch := records[start:min(start+auditChunk, len(records))]
			var b strings.Builder
			b.WriteString(`INSERT INTO audit_log (` + auditCols + `) VALUES `)
			args := make([]any, 0, len(batch)*19)
			for i, r := range batch {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				r = rules.Audit(r, now)
				args = append(args, r.ID, rules.Micros(r.Time), r.TenantID, r.ClientID, r.CredentialName, r.GrantType, r.Resource,
					r.Issuer, r.Subject, r.JTIHash, r.Result, r.ErrorCode, r.Error, r.CorrelationID, r.RemoteAddr, r.Reason, r.Diagnosis, encodeAudience(r.Audience), r.Count)
			}
			if _, err := tx.ExecContext(ctx, s.sql(b.String()), args...); err != nil {
				return s.dbErr("append audit", err)
			}
		}
		return nil
	})
}

// encodeAudience stores audiences as a JSON array ("" for none).
func encodeAudience(aud []string) string {
	if len(aud) == 0 {
		return ""
	}
	b, _ := json.Marshal(aud)
	return string(b)
}

func decodeAudience(s string) []string {
	if s == "" {
		return nil
	}
	var aud []string
	if json.Unmarshal([]byte(s), &aud) != nil {
		return nil
	}
	return aud
}

// ListAudit implements store.AuditStore. Pages are keyset-paginated on
// (time, sequence number), so records appended meanwhile never shift a page.
func (s *Store) ListAudit(ctx context.Context, filter store.AuditFilter) (store.AuditPage, error) {
	q, err := rules.ParseAuditFilter(filter)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("list audit: %w", err)
	}
	query := `SELECT seq, ` + auditCols + ` FROM audit_log WHERE 1 = 1`
	var args []any
	if q.TenantID != "" {
		query += ` AND tenant_id = ?`
		args = append(args, q.TenantID)
	}
	if q.ClientID != "" {
		query += ` AND client_id = ?`
		args = append(args, q.ClientID)
	}
	if q.CorrelationID != "" {
		query += ` AND correlation_id = ?`
		args = append(args, q.CorrelationID)
	}
	if q.Result != "" {
		query += ` AND result = ?`
		args = append(args, q.Result)
	}
	if q.SinceUS != 0 {
		query += ` AND time_us >= ?`
		args = append(args, q.SinceUS)
	}
	if q.UntilUS != 0 {
		query += ` AND time_us < ?`
		args = append(args, q.UntilUS)
	}
	if q.HasCursor {
		query += ` AND (time_us < ? OR (time_us = ? AND seq < ?))`
		args = append(args, q.AfterUS, q.AfterUS, q.AfterSeq)
	}
	query += ` ORDER BY time_us DESC, seq DESC LIMIT ?`
	args = append(args, q.Limit+1)
	rows, err := s.r.QueryContext(ctx, s.sql(query), args...)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("list audit: %s: %w", s.d.Name, err)
	}
	type rec struct {
		seq, us int64
		r       store.AuditRecord
	}
	recs, err := collect(rows, func(sc scanner) (rec, error) {
		var x rec
		var aud string
		r := &x.r
		err := sc.Scan(&x.seq, &r.ID, &x.us, &r.TenantID, &r.ClientID, &r.CredentialName, &r.GrantType, &r.Resource, &r.Issuer,
			&r.Subject, &r.JTIHash, &r.Result, &r.ErrorCode, &r.Error, &r.CorrelationID, &r.RemoteAddr, &r.Reason, &r.Diagnosis, &aud, &r.Count)
		r.Time = rules.FromMicros(x.us)
		r.Audience = decodeAudience(aud)
		return x, err
	}, "list audit")
	if err != nil {
		return store.AuditPage{}, err
	}
	var page store.AuditPage
	if len(recs) > q.Limit {
		last := recs[q.Limit-1]
		page.NextCursor = rules.Cursor(last.us, last.seq)
		recs = recs[:q.Limit]
	}
	page.Records = make([]store.AuditRecord, len(recs))
	for i, x := range recs {
		page.Records[i] = x.r
	}
	return page, nil
}

// PruneAudit implements store.AuditStore, in chunks (Config.PruneChunk).
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	if before.IsZero() {
		return 0, ctx.Err()
	}
	cutoff := rules.Micros(rules.Time(before))
	var total int64
	for {
		var n int64
		err := s.writeTx(ctx, false, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, s.sql(`DELETE FROM audit_log WHERE seq IN (
				SELECT seq FROM audit_log WHERE time_us < ? ORDER BY time_us LIMIT ?)`), cutoff, s.pruneChunk)
			if err != nil {
				return s.dbErr("prune audit", err)
			}
			n, err = res.RowsAffected()
			return err
		})
		total += n
		if err != nil {
			return total, err
		}
		if n < int64(s.pruneChunk) {
			return total, nil
		}
	}
}

// ---- usage

// RecordUsage implements store.UsageStore. Rows are written in key order,
// so replicas flushing together never deadlock.
func (s *Store) RecordUsage(ctx context.Context, uses []store.CredentialUse, issuers []store.IssuerStatus) error {
	if len(uses) == 0 && len(issuers) == 0 {
		return ctx.Err()
	}
	uses = slices.Clone(uses)
	slices.SortFunc(uses, func(a, b store.CredentialUse) int { return strings.Compare(a.CredentialID, b.CredentialID) })
	issuers = slices.Clone(issuers)
	slices.SortFunc(issuers, func(a, b store.IssuerStatus) int { return strings.Compare(a.Issuer, b.Issuer) })
	return s.writeTx(ctx, false, func(tx *sql.Tx) error {
		for _, u := range uses {
			// A use of a credential deleted meanwhile inserts nothing.
			if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO credential_usage (credential_id, last_used_us)
				SELECT id, ? FROM federated_credentials WHERE id = ?
				ON CONFLICT (credential_id) DO UPDATE SET last_used_us = excluded.last_used_us
				WHERE excluded.last_used_us > credential_usage.last_used_us`), rules.Micros(u.LastUsed), directory.CanonicalID(u.CredentialID)); err != nil {
				return s.dbErr("record credential use", err)
			}
		}
		for _, in := range issuers {
			if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO issuer_status (issuer, last_success_us, last_failure_us, failing_since_us, last_error)
				VALUES (?, 0, 0, 0, '') ON CONFLICT (issuer) DO NOTHING`), in.Issuer); err != nil {
				return s.dbErr("record issuer status", err)
			}
			var old store.IssuerStatus
			var ok, fail, since int64
			if err := tx.QueryRowContext(ctx, s.sql(`SELECT last_success_us, last_failure_us, failing_since_us, last_error FROM issuer_status WHERE issuer = ?`+s.d.ForUpdate), in.Issuer).
				Scan(&ok, &fail, &since, &old.LastError); err != nil {
				return s.dbErr("record issuer status", err)
			}
			old.LastSuccess, old.LastFailure, old.FailingSince = rules.FromMicros(ok), rules.FromMicros(fail), rules.FromMicros(since)
			m := rules.MergeIssuerStatus(old, in)
			if _, err := tx.ExecContext(ctx, s.sql(`UPDATE issuer_status SET last_success_us = ?, last_failure_us = ?, failing_since_us = ?, last_error = ? WHERE issuer = ?`),
				rules.Micros(m.LastSuccess), rules.Micros(m.LastFailure), rules.Micros(m.FailingSince), m.LastError, in.Issuer); err != nil {
				return s.dbErr("record issuer status", err)
			}
		}
		return nil
	})
}

// CredentialUsage implements store.UsageStore.
func (s *Store) CredentialUsage(ctx context.Context, tenantID string) (map[string]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, s.sql(`SELECT u.credential_id, u.last_used_us FROM credential_usage u
		JOIN federated_credentials f ON f.id = u.credential_id WHERE f.tenant_id = ?`), directory.CanonicalID(tenantID))
	if err != nil {
		return nil, fmt.Errorf("credential usage: %s: %w", s.d.Name, err)
	}
	type use struct {
		id string
		us int64
	}
	list, err := collect(rows, func(sc scanner) (use, error) {
		var u use
		return u, sc.Scan(&u.id, &u.us)
	}, "credential usage")
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(list))
	for _, u := range list {
		out[u.id] = rules.FromMicros(u.us)
	}
	return out, nil
}

// IssuerStatuses implements store.UsageStore.
func (s *Store) IssuerStatuses(ctx context.Context) (map[string]store.IssuerStatus, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT issuer, last_success_us, last_failure_us, failing_since_us, last_error FROM issuer_status`)
	if err != nil {
		return nil, fmt.Errorf("issuer status: %s: %w", s.d.Name, err)
	}
	list, err := collect(rows, func(sc scanner) (store.IssuerStatus, error) {
		var st store.IssuerStatus
		var ok, fail, since int64
		err := sc.Scan(&st.Issuer, &ok, &fail, &since, &st.LastError)
		st.LastSuccess, st.LastFailure, st.FailingSince = rules.FromMicros(ok), rules.FromMicros(fail), rules.FromMicros(since)
		return st, err
	}, "issuer status")
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.IssuerStatus, len(list))
	for _, st := range list {
		out[st.Issuer] = st
	}
	return out, nil
}
