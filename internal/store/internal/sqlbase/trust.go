package sqlbase

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/internal/rules"
)

// Trusted issuers and issuer sets share one table of JSON documents
// (trust_objects); docKind says how one kind maps onto it.
type docKind[T any] struct {
	kind, what string
	tenant     func(*T) *string
	name       func(T) string
	// unique is the second unique key of the kind (the issuer URL), or
	// the name key again when the kind has none.
	unique   func(T) string
	meta     func(*T) *directory.Meta
	clone    func(T) T
	validate func(T) error
	updated  func(old, v T, now time.Time) (T, error)
	clash    string // what a clash of unique means
}

var trustedIssuers = docKind[directory.TrustedIssuer]{
	kind: "trustedIssuer", what: "trusted issuer",
	tenant:   func(t *directory.TrustedIssuer) *string { return &t.TenantID },
	name:     func(t directory.TrustedIssuer) string { return t.Name },
	unique:   func(t directory.TrustedIssuer) string { return t.Issuer },
	meta:     func(t *directory.TrustedIssuer) *directory.Meta { return &t.Meta },
	clone:    rules.TrustedIssuer,
	validate: directory.TrustedIssuer.Validate,
	updated:  rules.UpdatedTrustedIssuer,
	clash:    "the tenant already has a trusted issuer of this name or for this issuer",
}

var issuerSets = docKind[directory.IssuerSet]{
	kind: "issuerSet", what: "issuer set",
	tenant:   func(s *directory.IssuerSet) *string { return &s.TenantID },
	name:     func(s directory.IssuerSet) string { return s.Name },
	unique:   func(s directory.IssuerSet) string { return rules.Key(s.Name) },
	meta:     func(s *directory.IssuerSet) *directory.Meta { return &s.Meta },
	clone:    rules.IssuerSet,
	validate: directory.IssuerSet.Validate,
	updated:  rules.UpdatedIssuerSet,
	clash:    "the tenant already has an issuer set of this name",
}

const docCols = `doc, version, created_us, updated_us`

func scanDoc[T any](k docKind[T]) func(scanner) (T, error) {
	return func(sc scanner) (T, error) {
		var v T
		var doc string
		var ver, c, u int64
		if err := sc.Scan(&doc, &ver, &c, &u); err != nil {
			return v, err
		}
		if err := decodeJSON(k.kind, doc, &v); err != nil {
			return v, err
		}
		*k.meta(&v) = meta(ver, c, u)
		return k.clone(v), nil
	}
}

// docText is the stored document: the object without its metadata, which
// has columns of its own.
func docText[T any](k docKind[T], v T) string {
	*k.meta(&v) = directory.Meta{}
	return jsonText(v)
}

func createDoc[T any](ctx context.Context, s *Store, k docKind[T], v T) (T, error) {
	v = k.clone(v)
	if err := k.validate(v); err != nil {
		return v, fmt.Errorf("create %s: %w", k.what, err)
	}
	*k.meta(&v) = rules.NewMeta(s.now())
	tid := *k.tenant(&v)
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		if ok, err := s.tenantExists(ctx, tx, tid); err != nil {
			return fmt.Errorf("create %s: %w", k.what, err)
		} else if !ok {
			return notFound("create %s %q: tenant %s", k.what, k.name(v), tid)
		}
		m := *k.meta(&v)
		if _, err := tx.ExecContext(ctx, s.sql(`INSERT INTO trust_objects (tenant_id, kind, name_key, unique_key, `+docCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			tid, k.kind, rules.Key(k.name(v)), k.unique(v), docText(k, v), m.Version, rules.Micros(m.CreatedAt), rules.Micros(m.UpdatedAt)); err != nil {
			return s.docErr(k.what, k.clash, "create "+k.what+" "+k.name(v), err)
		}
		return nil
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return k.clone(v), nil
}

// docErr is dbErr with the kind's own words for a clash.
func (s *Store) docErr(what, clash, op string, err error) error {
	if _, ok := s.d.UniqueViolation(err); ok {
		return fmt.Errorf("%s: %s: %w", op, clash, store.ErrAlreadyExists)
	}
	return fmt.Errorf("%s: %s: %w", op, s.d.Name, err)
}

func getDoc[T any](ctx context.Context, s *Store, q queryer, k docKind[T], tenantID, name string, lock bool) (T, error) {
	query := `SELECT ` + docCols + ` FROM trust_objects WHERE tenant_id = ? AND kind = ? AND name_key = ?`
	if lock {
		query += s.d.ForUpdate
	}
	v, err := scanDoc(k)(q.QueryRowContext(ctx, s.sql(query), directory.CanonicalID(tenantID), k.kind, rules.Key(name)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return v, notFound("%s %q in tenant %s", k.what, name, tenantID)
	case err != nil:
		return v, fmt.Errorf("get %s %q: %s: %w", k.what, name, s.d.Name, err)
	}
	return v, nil
}

func listDocs[T any](ctx context.Context, s *Store, q queryer, k docKind[T], tenantID string) ([]T, error) {
	query, args := `SELECT `+docCols+` FROM trust_objects WHERE kind = ?`, []any{k.kind}
	if tenantID != "" {
		query += ` AND tenant_id = ?`
		args = append(args, directory.CanonicalID(tenantID))
	}
	rows, err := q.QueryContext(ctx, s.sql(query+` ORDER BY tenant_id, name_key`), args...)
	if err != nil {
		return nil, fmt.Errorf("list %ss: %s: %w", k.what, s.d.Name, err)
	}
	return collect(rows, scanDoc(k), k.what+"s")
}

func updateDoc[T any](ctx context.Context, s *Store, k docKind[T], tenantID, name string, update func(*T) error) (T, error) {
	var out T
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		old, err := getDoc(ctx, s, tx, k, tenantID, name, true)
		if err != nil {
			return fmt.Errorf("update %w", err)
		}
		v, err := rules.Apply(old, k.clone, update, k.updated, s.now, fmt.Sprintf("%s %q", k.what, name))
		if err != nil {
			return err
		}
		m := *k.meta(&v)
		if _, err := tx.ExecContext(ctx, s.sql(`UPDATE trust_objects SET unique_key = ?, doc = ?, version = ?, updated_us = ? WHERE tenant_id = ? AND kind = ? AND name_key = ?`),
			k.unique(v), docText(k, v), m.Version, rules.Micros(m.UpdatedAt), *k.tenant(&v), k.kind, rules.Key(name)); err != nil {
			return s.docErr(k.what, k.clash, "update "+k.what+" "+name, err)
		}
		out = v
		return nil
	})
	return out, err
}

func deleteDoc[T any](ctx context.Context, s *Store, k docKind[T], tenantID, name string, pre []store.Precondition) error {
	return s.writeTx(ctx, true, func(tx *sql.Tx) error {
		if len(pre) > 0 {
			v, err := getDoc(ctx, s, tx, k, tenantID, name, true)
			if err != nil {
				return fmt.Errorf("delete %w", err)
			}
			if err := store.CheckPreconditions(k.meta(&v).Version, pre); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.sql(`DELETE FROM trust_objects WHERE tenant_id = ? AND kind = ? AND name_key = ?`),
			directory.CanonicalID(tenantID), k.kind, rules.Key(name))
		if err != nil {
			return s.dbErr("delete "+k.what+" "+name, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFound("delete %s %q in tenant %s", k.what, name, tenantID)
		}
		return nil
	})
}

// CreateTrustedIssuer implements store.DirectoryStore.
func (s *Store) CreateTrustedIssuer(ctx context.Context, t directory.TrustedIssuer) (directory.TrustedIssuer, error) {
	return createDoc(ctx, s, trustedIssuers, t)
}

// GetTrustedIssuer implements store.DirectoryStore.
func (s *Store) GetTrustedIssuer(ctx context.Context, tenantID, name string) (directory.TrustedIssuer, error) {
	return getDoc(ctx, s, s.r, trustedIssuers, tenantID, name, false)
}

// ListTrustedIssuers implements store.DirectoryStore.
func (s *Store) ListTrustedIssuers(ctx context.Context, tenantID string) ([]directory.TrustedIssuer, error) {
	if err := s.tenantMustExist(ctx, tenantID, "list trusted issuers"); err != nil {
		return nil, err
	}
	return listDocs(ctx, s, s.r, trustedIssuers, tenantID)
}

// UpdateTrustedIssuer implements store.DirectoryStore.
func (s *Store) UpdateTrustedIssuer(ctx context.Context, tenantID, name string, update func(*directory.TrustedIssuer) error) (directory.TrustedIssuer, error) {
	return updateDoc(ctx, s, trustedIssuers, tenantID, name, update)
}

// DeleteTrustedIssuer implements store.DirectoryStore.
func (s *Store) DeleteTrustedIssuer(ctx context.Context, tenantID, name string, pre ...store.Precondition) error {
	return deleteDoc(ctx, s, trustedIssuers, tenantID, name, pre)
}

// CreateIssuerSet implements store.DirectoryStore.
func (s *Store) CreateIssuerSet(ctx context.Context, v directory.IssuerSet) (directory.IssuerSet, error) {
	return createDoc(ctx, s, issuerSets, v)
}

// GetIssuerSet implements store.DirectoryStore.
func (s *Store) GetIssuerSet(ctx context.Context, tenantID, name string) (directory.IssuerSet, error) {
	return getDoc(ctx, s, s.r, issuerSets, tenantID, name, false)
}

// ListIssuerSets implements store.DirectoryStore.
func (s *Store) ListIssuerSets(ctx context.Context, tenantID string) ([]directory.IssuerSet, error) {
	if err := s.tenantMustExist(ctx, tenantID, "list issuer sets"); err != nil {
		return nil, err
	}
	return listDocs(ctx, s, s.r, issuerSets, tenantID)
}

// UpdateIssuerSet implements store.DirectoryStore.
func (s *Store) UpdateIssuerSet(ctx context.Context, tenantID, name string, update func(*directory.IssuerSet) error) (directory.IssuerSet, error) {
	return updateDoc(ctx, s, issuerSets, tenantID, name, update)
}

// DeleteIssuerSet implements store.DirectoryStore.
func (s *Store) DeleteIssuerSet(ctx context.Context, tenantID, name string, pre ...store.Precondition) error {
	return deleteDoc(ctx, s, issuerSets, tenantID, name, pre)
}

func (s *Store) tenantMustExist(ctx context.Context, tenantID, op string) error {
	ok, err := s.tenantExists(ctx, s.r, directory.CanonicalID(tenantID))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		return notFound("%s: tenant %s", op, tenantID)
	}
	return nil
}

// snapshotTrust reads every trusted issuer and issuer set in tx.
func (s *Store) snapshotTrust(ctx context.Context, tx *sql.Tx, snap *store.Snapshot) error {
	var err error
	if snap.TrustedIssuers, err = listDocs(ctx, s, tx, trustedIssuers, ""); err != nil {
		return err
	}
	snap.IssuerSets, err = listDocs(ctx, s, tx, issuerSets, "")
	return err
}

// Resource groups are documents of the same table, named by subscription
// and name ("sub/name").
var resourceGroups = docKind[directory.ResourceGroup]{
	kind: "resourceGroup", what: "resource group",
	tenant:   func(g *directory.ResourceGroup) *string { return &g.TenantID },
	name:     func(g directory.ResourceGroup) string { return g.Key() },
	unique:   func(g directory.ResourceGroup) string { return g.Key() },
	meta:     func(g *directory.ResourceGroup) *directory.Meta { return &g.Meta },
	clone:    rules.ResourceGroup,
	validate: directory.ResourceGroup.Validate,
	updated:  rules.UpdatedResourceGroup,
	clash:    "the subscription already has a resource group of this name",
}

func groupKey(subscriptionID, name string) string {
	return directory.ResourceGroup{SubscriptionID: subscriptionID, Name: name}.Key()
}

// CreateResourceGroup implements store.DirectoryStore.
func (s *Store) CreateResourceGroup(ctx context.Context, g directory.ResourceGroup) (directory.ResourceGroup, error) {
	return createDoc(ctx, s, resourceGroups, g)
}

// GetResourceGroup implements store.DirectoryStore.
func (s *Store) GetResourceGroup(ctx context.Context, tenantID, subscriptionID, name string) (directory.ResourceGroup, error) {
	return getDoc(ctx, s, s.r, resourceGroups, tenantID, groupKey(subscriptionID, name), false)
}

// ListResourceGroups implements store.DirectoryStore.
func (s *Store) ListResourceGroups(ctx context.Context, tenantID string) ([]directory.ResourceGroup, error) {
	if err := s.tenantMustExist(ctx, tenantID, "list resource groups"); err != nil {
		return nil, err
	}
	return listDocs(ctx, s, s.r, resourceGroups, tenantID)
}

// UpdateResourceGroup implements store.DirectoryStore.
func (s *Store) UpdateResourceGroup(ctx context.Context, tenantID, subscriptionID, name string, update func(*directory.ResourceGroup) error) (directory.ResourceGroup, error) {
	return updateDoc(ctx, s, resourceGroups, tenantID, groupKey(subscriptionID, name), update)
}

// DeleteResourceGroup implements store.DirectoryStore.
func (s *Store) DeleteResourceGroup(ctx context.Context, tenantID, subscriptionID, name string, pre ...store.Precondition) error {
	return deleteDoc(ctx, s, resourceGroups, tenantID, groupKey(subscriptionID, name), pre)
}
