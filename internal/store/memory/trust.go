package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/internal/rules"
)

// docKind says how trusted issuers and issuer sets are kept: one map per
// kind, by tenant and lower-case name.
type docKind[T any] struct {
	what     string
	m        func(*Store) map[string]T
	tenant   func(T) string
	name     func(T) string
	unique   func(T) string // a second key unique per tenant ("" for none)
	meta     func(*T) *directory.Meta
	clone    func(T) T
	validate func(T) error
	updated  func(old, v T, now time.Time) (T, error)
	clash    string
}

var trustedIssuers = docKind[directory.TrustedIssuer]{
	what:     "trusted issuer",
	m:        func(s *Store) map[string]directory.TrustedIssuer { return s.trusted },
	tenant:   func(t directory.TrustedIssuer) string { return t.TenantID },
	name:     func(t directory.TrustedIssuer) string { return t.Name },
	unique:   func(t directory.TrustedIssuer) string { return t.Issuer },
	meta:     func(t *directory.TrustedIssuer) *directory.Meta { return &t.Meta },
	clone:    rules.TrustedIssuer,
	validate: directory.TrustedIssuer.Validate,
	updated:  rules.UpdatedTrustedIssuer,
	clash:    "the tenant already has a trusted issuer of this name or for this issuer",
}

var issuerSets = docKind[directory.IssuerSet]{
	what:     "issuer set",
	m:        func(s *Store) map[string]directory.IssuerSet { return s.sets },
	tenant:   func(v directory.IssuerSet) string { return v.TenantID },
	name:     func(v directory.IssuerSet) string { return v.Name },
	unique:   func(directory.IssuerSet) string { return "" },
	meta:     func(v *directory.IssuerSet) *directory.Meta { return &v.Meta },
	clone:    rules.IssuerSet,
	validate: directory.IssuerSet.Validate,
	updated:  rules.UpdatedIssuerSet,
	clash:    "the tenant already has an issuer set of this name",
}

func docKey(tenantID, name string) string {
	return directory.CanonicalID(tenantID) + "|" + rules.Key(name)
}

// clashes reports whether v clashes with another object of its kind.
func (k docKind[T]) clashes(s *Store, v T) bool {
	key := docKey(k.tenant(v), k.name(v))
	for other, o := range k.m(s) {
		if other == key {
			continue
		}
		if k.tenant(o) == k.tenant(v) && k.unique(v) != "" && k.unique(o) == k.unique(v) {
			return true
		}
	}
	return false
}

func createDoc[T any](ctx context.Context, s *Store, k docKind[T], v T) (T, error) {
	var zero T
	v = k.clone(v)
	if err := k.validate(v); err != nil {
		return zero, fmt.Errorf("create %s: %w", k.what, err)
	}
	unlock, err := s.write(ctx)
	if err != nil {
		return zero, err
	}
	defer unlock()
	if _, ok := s.tenants[k.tenant(v)]; !ok {
		return zero, fmt.Errorf("create %s %q: tenant %s: %w", k.what, k.name(v), k.tenant(v), store.ErrNotFound)
	}
	key := docKey(k.tenant(v), k.name(v))
	if _, ok := k.m(s)[key]; ok || k.clashes(s, v) {
		return zero, fmt.Errorf("create %s %s: %s: %w", k.what, k.name(v), k.clash, store.ErrAlreadyExists)
	}
	*k.meta(&v) = rules.NewMeta(s.now())
	k.m(s)[key] = v
	s.revision++
	return k.clone(v), nil
}

func getDoc[T any](ctx context.Context, s *Store, k docKind[T], tenantID, name string) (T, error) {
	var zero T
	unlock, err := s.read(ctx)
	if err != nil {
		return zero, err
	}
	defer unlock()
	v, ok := k.m(s)[docKey(tenantID, name)]
	if !ok {
		return zero, fmt.Errorf("%s %q in tenant %s: %w", k.what, name, tenantID, store.ErrNotFound)
	}
	return k.clone(v), nil
}

func listDocs[T any](ctx context.Context, s *Store, k docKind[T], tenantID string, sortFn func([]T)) ([]T, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tenantID = directory.CanonicalID(tenantID)
	if _, ok := s.tenants[tenantID]; !ok {
		return nil, fmt.Errorf("list %ss: tenant %s: %w", k.what, tenantID, store.ErrNotFound)
	}
	out := []T{}
	for _, v := range k.m(s) {
		if k.tenant(v) == tenantID {
			out = append(out, k.clone(v))
		}
	}
	sortFn(out)
	return out, nil
}

func updateDoc[T any](ctx context.Context, s *Store, k docKind[T], tenantID, name string, update func(*T) error) (T, error) {
	key := docKey(tenantID, name)
	v, err := casUpdate(ctx, s, fmt.Sprintf("%s %q in tenant %s", k.what, name, tenantID),
		func() (T, bool) { v, ok := k.m(s)[key]; return v, ok },
		func(v T) directory.Meta { return *k.meta(&v) },
		func(old T) (T, error) {
			return rules.Apply(old, k.clone, update, k.updated, s.now, fmt.Sprintf("%s %q", k.what, name))
		},
		func(v T) error {
			if k.clashes(s, v) {
				return fmt.Errorf("update %s %s: %s: %w", k.what, name, k.clash, store.ErrAlreadyExists)
			}
			k.m(s)[key] = v
			return nil
		})
	return k.clone(v), err
}

func deleteDoc[T any](ctx context.Context, s *Store, k docKind[T], tenantID, name string, pre []store.Precondition) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	key := docKey(tenantID, name)
	v, ok := k.m(s)[key]
	if !ok {
		return fmt.Errorf("delete %s %q in tenant %s: %w", k.what, name, tenantID, store.ErrNotFound)
	}
	if err := store.CheckPreconditions(k.meta(&v).Version, pre); err != nil {
		return err
	}
	delete(k.m(s), key)
	s.revision++
	return nil
}

// CreateTrustedIssuer implements store.DirectoryStore.
func (s *Store) CreateTrustedIssuer(ctx context.Context, t directory.TrustedIssuer) (directory.TrustedIssuer, error) {
	return createDoc(ctx, s, trustedIssuers, t)
}

// GetTrustedIssuer implements store.DirectoryStore.
func (s *Store) GetTrustedIssuer(ctx context.Context, tenantID, name string) (directory.TrustedIssuer, error) {
	return getDoc(ctx, s, trustedIssuers, tenantID, name)
}

// ListTrustedIssuers implements store.DirectoryStore.
func (s *Store) ListTrustedIssuers(ctx context.Context, tenantID string) ([]directory.TrustedIssuer, error) {
	return listDocs(ctx, s, trustedIssuers, tenantID, rules.SortTrustedIssuers)
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
	return getDoc(ctx, s, issuerSets, tenantID, name)
}

// ListIssuerSets implements store.DirectoryStore.
func (s *Store) ListIssuerSets(ctx context.Context, tenantID string) ([]directory.IssuerSet, error) {
	return listDocs(ctx, s, issuerSets, tenantID, rules.SortIssuerSets)
}

// UpdateIssuerSet implements store.DirectoryStore.
func (s *Store) UpdateIssuerSet(ctx context.Context, tenantID, name string, update func(*directory.IssuerSet) error) (directory.IssuerSet, error) {
	return updateDoc(ctx, s, issuerSets, tenantID, name, update)
}

// DeleteIssuerSet implements store.DirectoryStore.
func (s *Store) DeleteIssuerSet(ctx context.Context, tenantID, name string, pre ...store.Precondition) error {
	return deleteDoc(ctx, s, issuerSets, tenantID, name, pre)
}

var resourceGroups = docKind[directory.ResourceGroup]{
	what:     "resource group",
	m:        func(s *Store) map[string]directory.ResourceGroup { return s.groups },
	tenant:   func(g directory.ResourceGroup) string { return g.TenantID },
	name:     func(g directory.ResourceGroup) string { return g.Key() },
	unique:   func(directory.ResourceGroup) string { return "" },
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
	return getDoc(ctx, s, resourceGroups, tenantID, groupKey(subscriptionID, name))
}

// ListResourceGroups implements store.DirectoryStore.
func (s *Store) ListResourceGroups(ctx context.Context, tenantID string) ([]directory.ResourceGroup, error) {
	return listDocs(ctx, s, resourceGroups, tenantID, rules.SortResourceGroups)
}

// UpdateResourceGroup implements store.DirectoryStore.
func (s *Store) UpdateResourceGroup(ctx context.Context, tenantID, subscriptionID, name string, update func(*directory.ResourceGroup) error) (directory.ResourceGroup, error) {
	return updateDoc(ctx, s, resourceGroups, tenantID, groupKey(subscriptionID, name), update)
}

// DeleteResourceGroup implements store.DirectoryStore.
func (s *Store) DeleteResourceGroup(ctx context.Context, tenantID, subscriptionID, name string, pre ...store.Precondition) error {
	return deleteDoc(ctx, s, resourceGroups, tenantID, groupKey(subscriptionID, name), pre)
}
