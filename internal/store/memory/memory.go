// Package memory is an in-memory store.Store: maps under one RWMutex. It is
// for tests and for `wif dev` runs that need no state across restarts. Values
// are deep-copied in and out, so callers can never change stored state
// except through the Store's methods.
package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/internal/rules"
)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that stamps CreatedAt and UpdatedAt (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = rules.Clock(now) }
}

// WithMaxCredentialsPerParent bounds the federated credentials of one
// identity or application (default 20, Entra's).
func WithMaxCredentialsPerParent(n int) Option {
	return func(s *Store) { s.maxCreds = n }
}

// Store is an in-memory store.Store. The zero value is not usable; call New.
//
// Update closures run with no lock held: they may read the store, and they
// run again if the object changed while they ran.
type Store struct {
	now      func() time.Time
	maxCreds int

	mu       sync.RWMutex
	closed   bool
	revision int64
	tenants  map[string]directory.Tenant              // by id
	apps     map[string]directory.Application         // by appId
	mis      map[string]directory.ManagedIdentity     // by clientId
	creds    map[string]directory.FederatedCredential // by id
	assigns  map[string]directory.AppRoleAssignment   // by id
	keys     map[string]store.SigningKey              // by id
	audit    []auditEntry                             // in append order
	auditIDs map[string]bool
	auditSeq int64
	usage    map[string]time.Time               // credential id → last use
	issuers  map[string]store.IssuerStatus      // by issuer
	trusted  map[string]directory.TrustedIssuer // by tenant|lower-case name
	sets     map[string]directory.IssuerSet     // by tenant|lower-case name
	groups   map[string]directory.ResourceGroup // by tenant|subscription/lower-case name
}

type auditEntry struct {
	seq int64
	rec store.AuditRecord
}

// errClosed is returned by every method after Close.
var errClosed = errors.New("memory store is closed")

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{
		now:      rules.Clock(nil),
		tenants:  map[string]directory.Tenant{},
		apps:     map[string]directory.Application{},
		mis:      map[string]directory.ManagedIdentity{},
		creds:    map[string]directory.FederatedCredential{},
		assigns:  map[string]directory.AppRoleAssignment{},
		keys:     map[string]store.SigningKey{},
		auditIDs: map[string]bool{},
		usage:    map[string]time.Time{},
		issuers:  map[string]store.IssuerStatus{},
		trusted:  map[string]directory.TrustedIssuer{},
		sets:     map[string]directory.IssuerSet{},
		groups:   map[string]directory.ResourceGroup{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ store.Store = (*Store)(nil)

// Close makes every later call fail; the data is dropped.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.tenants, s.apps, s.mis, s.creds, s.assigns, s.keys, s.audit = nil, nil, nil, nil, nil, nil, nil
	return nil
}

// read and write take the lock after checking ctx and that the store is open.
func (s *Store) read(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, errClosed
	}
	return s.mu.RUnlock, nil
}

func (s *Store) write(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	return s.mu.Unlock, nil
}

// ---- tenants

// CreateTenant implements store.DirectoryStore.
func (s *Store) CreateTenant(ctx context.Context, t directory.Tenant) (directory.Tenant, error) {
	t = rules.Tenant(t)
	if err := t.Validate(); err != nil {
		return directory.Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	unlock, err := s.write(ctx)
	if err != nil {
		return directory.Tenant{}, err
	}
	defer unlock()
	if _, ok := s.tenants[t.ID]; ok {
		return directory.Tenant{}, fmt.Errorf("create tenant %s: %w", t.ID, store.ErrAlreadyExists)
	}
	t.Meta = rules.NewMeta(s.now())
	s.tenants[t.ID] = t
	s.revision++
	return t, nil
}

// GetTenant implements store.DirectoryStore.
func (s *Store) GetTenant(ctx context.Context, id string) (directory.Tenant, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return directory.Tenant{}, err
	}
	defer unlock()
	t, ok := s.tenants[directory.CanonicalID(id)]
	if !ok {
		return directory.Tenant{}, fmt.Errorf("tenant %s: %w", id, store.ErrNotFound)
	}
	return t, nil
}

// ListTenants implements store.DirectoryStore.
func (s *Store) ListTenants(ctx context.Context) ([]directory.Tenant, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make([]directory.Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		out = append(out, t)
	}
	rules.SortTenants(out)
	return out, nil
}

// UpdateTenant implements store.DirectoryStore.
func (s *Store) UpdateTenant(ctx context.Context, id string, update func(*directory.Tenant) error) (directory.Tenant, error) {
	id = directory.CanonicalID(id)
	return casUpdate(ctx, s, "tenant "+id,
		func() (directory.Tenant, bool) { t, ok := s.tenants[id]; return t, ok },
		func(t directory.Tenant) directory.Meta { return t.Meta },
		func(old directory.Tenant) (directory.Tenant, error) {
			return rules.Apply(old, rules.Tenant, update, rules.UpdatedTenant, s.now, "tenant "+id)
		},
		func(t directory.Tenant) error { s.tenants[t.ID] = t; return nil })
}

// DeleteTenant implements store.DirectoryStore.
func (s *Store) DeleteTenant(ctx context.Context, id string, pre ...store.Precondition) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	id = directory.CanonicalID(id)
	t, ok := s.tenants[id]
	if !ok {
		return fmt.Errorf("delete tenant %s: %w", id, store.ErrNotFound)
	}
	if err := store.CheckPreconditions(t.Version, pre); err != nil {
		return err
	}
	delete(s.tenants, id)
	for k, v := range s.apps {
		if v.TenantID == id {
			delete(s.apps, k)
		}
	}
	for k, v := range s.mis {
		if v.TenantID == id {
			delete(s.mis, k)
		}
	}
	for k, v := range s.creds {
		if v.TenantID == id {
			delete(s.creds, k)
			delete(s.usage, k)
		}
	}
	for k, v := range s.assigns {
		if v.TenantID == id {
			delete(s.assigns, k)
		}
	}
	for k, v := range s.trusted {
		if v.TenantID == id {
			delete(s.trusted, k)
		}
	}
	for k, v := range s.sets {
		if v.TenantID == id {
			delete(s.sets, k)
		}
	}
	for k, v := range s.groups {
		if v.TenantID == id {
			delete(s.groups, k)
		}
	}
	s.revision++
	return nil
}

// ---- applications

func (s *Store) clientIDTaken(id string) bool {
	_, app := s.apps[id]
	_, mi := s.mis[id]
	return app || mi
}

func (s *Store) principalIDTaken(id string) bool {
	for _, a := range s.apps {
		if a.ServicePrincipalID == id {
			return true
		}
	}
	for _, m := range s.mis {
		if m.PrincipalID == id {
			return true
		}
	}
	return false
}

func (s *Store) principalExists(tenantID, principalID string) bool {
	for _, a := range s.apps {
		if a.TenantID == tenantID && a.ServicePrincipalID == principalID {
			return true
		}
	}
	for _, m := range s.mis {
		if m.TenantID == tenantID && m.PrincipalID == principalID {
			return true
		}
	}
	return false
}

// uriClash returns the first identifier URI of a that another application
// of the tenant already uses.
func (s *Store) uriClash(a directory.Application) (string, bool) {
	for _, o := range s.apps {
		if o.TenantID != a.TenantID || o.AppID == a.AppID {
			continue
		}
		for _, u := range a.IdentifierURIs {
			for _, ou := range o.IdentifierURIs {
				if rules.URIKey(u) == rules.URIKey(ou) {
					return u, true
				}
			}
		}
	}
	return "", false
}

// CreateApplication implements store.DirectoryStore.
func (s *Store) CreateApplication(ctx context.Context, a directory.Application) (directory.Application, error) {
	a = rules.Application(a)
	if err := a.Validate(); err != nil {
		return directory.Application{}, fmt.Errorf("create application: %w", err)
	}
	unlock, err := s.write(ctx)
	if err != nil {
		return directory.Application{}, err
	}
	defer unlock()
	if _, ok := s.tenants[a.TenantID]; !ok {
		return directory.Application{}, fmt.Errorf("create application: tenant %s: %w", a.TenantID, store.ErrNotFound)
	}
	if s.clientIDTaken(a.AppID) {
		return directory.Application{}, fmt.Errorf("create application: appId %s: %w", a.AppID, store.ErrAlreadyExists)
	}
	for _, o := range s.apps {
		if o.ObjectID == a.ObjectID {
			return directory.Application{}, fmt.Errorf("create application: object id %s: %w", a.ObjectID, store.ErrAlreadyExists)
		}
	}
	if s.principalIDTaken(a.ServicePrincipalID) {
		return directory.Application{}, fmt.Errorf("create application: servicePrincipalId %s: %w", a.ServicePrincipalID, store.ErrAlreadyExists)
	}
	if u, clash := s.uriClash(a); clash {
		return directory.Application{}, fmt.Errorf("create application: identifier URI %q is used by another application of the tenant: %w", u, store.ErrAlreadyExists)
	}
	a.Meta = rules.NewMeta(s.now())
	s.apps[a.AppID] = a
	s.revision++
	return rules.Application(a), nil
}

func (s *Store) app(tenantID, appID string) (directory.Application, bool) {
	a, ok := s.apps[directory.CanonicalID(appID)]
	if !ok || a.TenantID != directory.CanonicalID(tenantID) {
		return directory.Application{}, false
	}
	return a, true
}

// GetApplication implements store.DirectoryStore.
func (s *Store) GetApplication(ctx context.Context, tenantID, appID string) (directory.Application, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return directory.Application{}, err
	}
	defer unlock()
	a, ok := s.app(tenantID, appID)
	if !ok {
		return directory.Application{}, fmt.Errorf("application %s in tenant %s: %w", appID, tenantID, store.ErrNotFound)
	}
	return rules.Application(a), nil
}

// ListApplications implements store.DirectoryStore.
func (s *Store) ListApplications(ctx context.Context, tenantID string) ([]directory.Application, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tenantID = directory.CanonicalID(tenantID)
	if _, ok := s.tenants[tenantID]; !ok {
		return nil, fmt.Errorf("list applications: tenant %s: %w", tenantID, store.ErrNotFound)
	}
	out := []directory.Application{}
	for _, a := range s.apps {
		if a.TenantID == tenantID {
			out = append(out, rules.Application(a))
		}
	}
	rules.SortApplications(out)
	return out, nil
}

// UpdateApplication implements store.DirectoryStore.
func (s *Store) UpdateApplication(ctx context.Context, tenantID, appID string, update func(*directory.Application) error) (directory.Application, error) {
	a, err := casUpdate(ctx, s, "application "+appID+" in tenant "+tenantID,
		func() (directory.Application, bool) { return s.app(tenantID, appID) },
		func(a directory.Application) directory.Meta { return a.Meta },
		func(old directory.Application) (directory.Application, error) {
			return rules.Apply(old, rules.Application, update, rules.UpdatedApplication, s.now, "application "+appID)
		},
		func(a directory.Application) error {
			if u, clash := s.uriClash(a); clash {
				return fmt.Errorf("update application %s: identifier URI %q is used by another application of the tenant: %w", appID, u, store.ErrAlreadyExists)
			}
			// Assignments of roles the application no longer has go with them.
			for _, id := range rules.DroppedRoles(s.apps[a.AppID], a) {
				for k, g := range s.assigns {
					if g.ResourceAppID == a.AppID && strings.EqualFold(g.AppRoleID, id) {
						delete(s.assigns, k)
					}
				}
			}
			s.apps[a.AppID] = a
			return nil
		})
	return rules.Application(a), err
}

// DeleteApplication implements store.DirectoryStore.
func (s *Store) DeleteApplication(ctx context.Context, tenantID, appID string, pre ...store.Precondition) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	a, ok := s.app(tenantID, appID)
	if !ok {
		return fmt.Errorf("delete application %s in tenant %s: %w", appID, tenantID, store.ErrNotFound)
	}
	if err := store.CheckPreconditions(a.Version, pre); err != nil {
		return err
	}
	delete(s.apps, a.AppID)
	s.deleteDependants(a.AppID, a.ServicePrincipalID)
	for k, v := range s.assigns {
		if v.ResourceAppID == a.AppID {
			delete(s.assigns, k)
		}
	}
	s.revision++
	return nil
}

// deleteDependants removes the credentials of a client and the assignments
// to its principal.
func (s *Store) deleteDependants(clientID, principalID string) {
	for k, v := range s.creds {
		if v.ParentClientID == clientID {
			delete(s.creds, k)
			delete(s.usage, k)
		}
	}
	for k, v := range s.assigns {
		if v.PrincipalID == principalID {
			delete(s.assigns, k)
		}
	}
}

// ---- managed identities

func (s *Store) miByRef(tenantID string, ref store.IdentityRef) (directory.ManagedIdentity, bool) {
	tenantID = directory.CanonicalID(tenantID)
	sub := directory.CanonicalID(ref.SubscriptionID)
	for _, m := range s.mis {
		if m.TenantID == tenantID && m.SubscriptionID == sub &&
			rules.Key(m.ResourceGroup) == rules.Key(ref.ResourceGroup) && rules.Key(m.Name) == rules.Key(ref.Name) {
			return m, true
		}
	}
	return directory.ManagedIdentity{}, false
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
	unlock, err := s.write(ctx)
	if err != nil {
		return directory.ManagedIdentity{}, err
	}
	defer unlock()
	if _, ok := s.tenants[m.TenantID]; !ok {
		return directory.ManagedIdentity{}, fmt.Errorf("create managed identity: tenant %s: %w", m.TenantID, store.ErrNotFound)
	}
	ref := store.IdentityRef{SubscriptionID: m.SubscriptionID, ResourceGroup: m.ResourceGroup, Name: m.Name}
	if _, ok := s.miByRef(m.TenantID, ref); ok {
		return directory.ManagedIdentity{}, fmt.Errorf("create managed identity %s: %w", refString(ref), store.ErrAlreadyExists)
	}
	if s.clientIDTaken(m.ClientID) {
		return directory.ManagedIdentity{}, fmt.Errorf("create managed identity: clientId %s: %w", m.ClientID, store.ErrAlreadyExists)
	}
	if s.principalIDTaken(m.PrincipalID) {
		return directory.ManagedIdentity{}, fmt.Errorf("create managed identity: principalId %s: %w", m.PrincipalID, store.ErrAlreadyExists)
	}
	m.Meta = rules.NewMeta(s.now())
	s.mis[m.ClientID] = m
	s.revision++
	return rules.ManagedIdentity(m), nil
}

// GetManagedIdentity implements store.DirectoryStore.
func (s *Store) GetManagedIdentity(ctx context.Context, tenantID string, ref store.IdentityRef) (directory.ManagedIdentity, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return directory.ManagedIdentity{}, err
	}
	defer unlock()
	m, ok := s.miByRef(tenantID, ref)
	if !ok {
		return directory.ManagedIdentity{}, fmt.Errorf("managed identity %s in tenant %s: %w", refString(ref), tenantID, store.ErrNotFound)
	}
	return rules.ManagedIdentity(m), nil
}

// GetManagedIdentityByClientID implements store.DirectoryStore.
func (s *Store) GetManagedIdentityByClientID(ctx context.Context, tenantID, clientID string) (directory.ManagedIdentity, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return directory.ManagedIdentity{}, err
	}
	defer unlock()
	m, ok := s.mis[directory.CanonicalID(clientID)]
	if !ok || m.TenantID != directory.CanonicalID(tenantID) {
		return directory.ManagedIdentity{}, fmt.Errorf("managed identity with client id %s in tenant %s: %w", clientID, tenantID, store.ErrNotFound)
	}
	return rules.ManagedIdentity(m), nil
}

// ListManagedIdentities implements store.DirectoryStore.
func (s *Store) ListManagedIdentities(ctx context.Context, tenantID string, filter store.IdentityFilter) ([]directory.ManagedIdentity, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tenantID = directory.CanonicalID(tenantID)
	if _, ok := s.tenants[tenantID]; !ok {
		return nil, fmt.Errorf("list managed identities: tenant %s: %w", tenantID, store.ErrNotFound)
	}
	sub := directory.CanonicalID(filter.SubscriptionID)
	out := []directory.ManagedIdentity{}
	for _, m := range s.mis {
		if m.TenantID != tenantID ||
			(sub != "" && m.SubscriptionID != sub) ||
			(filter.ResourceGroup != "" && rules.Key(m.ResourceGroup) != rules.Key(filter.ResourceGroup)) {
			continue
		}
		if p := rules.Key(filter.NamePrefix); p != "" && !strings.HasPrefix(rules.Key(m.Name), p) {
			continue
		}
		if a := filter.After; a.Name != "" && rules.CompareIdentityKey(m.SubscriptionID, m.ResourceGroup, m.Name, a) <= 0 {
			continue
		}
		out = append(out, rules.ManagedIdentity(m))
	}
	rules.SortManagedIdentities(out)
	if filter.Limit > 0 && len(out) > filter.Limit {
		out = out[:filter.Limit]
	}
	return out, nil
}

// UpdateManagedIdentity implements store.DirectoryStore.
func (s *Store) UpdateManagedIdentity(ctx context.Context, tenantID string, ref store.IdentityRef, update func(*directory.ManagedIdentity) error) (directory.ManagedIdentity, error) {
	m, err := casUpdate(ctx, s, "managed identity "+refString(ref)+" in tenant "+tenantID,
		func() (directory.ManagedIdentity, bool) { return s.miByRef(tenantID, ref) },
		func(m directory.ManagedIdentity) directory.Meta { return m.Meta },
		func(old directory.ManagedIdentity) (directory.ManagedIdentity, error) {
			return rules.Apply(old, rules.ManagedIdentity, update, rules.UpdatedManagedIdentity, s.now, "managed identity "+refString(ref))
		},
		func(m directory.ManagedIdentity) error { s.mis[m.ClientID] = m; return nil })
	return rules.ManagedIdentity(m), err
}

// DeleteManagedIdentity implements store.DirectoryStore.
func (s *Store) DeleteManagedIdentity(ctx context.Context, tenantID string, ref store.IdentityRef, pre ...store.Precondition) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	m, ok := s.miByRef(tenantID, ref)
	if !ok {
		return fmt.Errorf("delete managed identity %s in tenant %s: %w", refString(ref), tenantID, store.ErrNotFound)
	}
	if err := store.CheckPreconditions(m.Version, pre); err != nil {
		return err
	}
	delete(s.mis, m.ClientID)
	s.deleteDependants(m.ClientID, m.PrincipalID)
	s.revision++
	return nil
}

// ---- federated credentials

func (s *Store) parentExists(f directory.FederatedCredential) bool {
	switch f.ParentKind {
	case directory.ParentManagedIdentity:
		m, ok := s.mis[f.ParentClientID]
		return ok && m.TenantID == f.TenantID
	case directory.ParentApplication:
		a, ok := s.apps[f.ParentClientID]
		return ok && a.TenantID == f.TenantID
	}
	return false
}

func (s *Store) credsOf(tenantID, parentClientID string) []directory.FederatedCredential {
	var out []directory.FederatedCredential
	for _, f := range s.creds {
		if f.TenantID == tenantID && f.ParentClientID == parentClientID {
			out = append(out, f)
		}
	}
	return out
}

// CreateFederatedCredential implements store.DirectoryStore.
func (s *Store) CreateFederatedCredential(ctx context.Context, f directory.FederatedCredential) (directory.FederatedCredential, error) {
	f = rules.Credential(f)
	if err := f.Validate(); err != nil {
		return directory.FederatedCredential{}, fmt.Errorf("create federated credential: %w", err)
	}
	unlock, err := s.write(ctx)
	if err != nil {
		return directory.FederatedCredential{}, err
	}
	defer unlock()
	if !s.parentExists(f) {
		return directory.FederatedCredential{}, fmt.Errorf("create federated credential %q: %s %s in tenant %s: %w", f.Name, f.ParentKind, f.ParentClientID, f.TenantID, store.ErrNotFound)
	}
	if _, ok := s.creds[f.ID]; ok {
		return directory.FederatedCredential{}, fmt.Errorf("create federated credential: id %s: %w", f.ID, store.ErrAlreadyExists)
	}
	siblings := rules.Siblings(f, s.credsOf(f.TenantID, f.ParentClientID))
	if rules.SameName(f, siblings) {
		return directory.FederatedCredential{}, fmt.Errorf("create federated credential: %s %s already has a credential named %q: %w", f.ParentKind, f.ParentClientID, f.Name, store.ErrAlreadyExists)
	}
	if err := f.ValidateSetLimit(siblings, s.maxCreds); err != nil {
		return directory.FederatedCredential{}, fmt.Errorf("create federated credential %q: %w", f.Name, err)
	}
	f.Meta = rules.NewMeta(s.now())
	s.creds[f.ID] = f
	s.revision++
	return rules.Credential(f), nil
}

func (s *Store) credByName(tenantID, parentClientID, name string) (directory.FederatedCredential, bool) {
	tenantID, parentClientID = directory.CanonicalID(tenantID), directory.CanonicalID(parentClientID)
	for _, f := range s.creds {
		if f.TenantID == tenantID && f.ParentClientID == parentClientID && rules.Key(f.Name) == rules.Key(name) {
			return f, true
		}
	}
	return directory.FederatedCredential{}, false
}

// GetFederatedCredential implements store.DirectoryStore.
func (s *Store) GetFederatedCredential(ctx context.Context, tenantID, parentClientID, name string) (directory.FederatedCredential, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return directory.FederatedCredential{}, err
	}
	defer unlock()
	f, ok := s.credByName(tenantID, parentClientID, name)
	if !ok {
		return directory.FederatedCredential{}, fmt.Errorf("federated credential %q of %s in tenant %s: %w", name, parentClientID, tenantID, store.ErrNotFound)
	}
	return rules.Credential(f), nil
}

// ListFederatedCredentials implements store.DirectoryStore.
func (s *Store) ListFederatedCredentials(ctx context.Context, tenantID, parentClientID string) ([]directory.FederatedCredential, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	probe := directory.FederatedCredential{TenantID: directory.CanonicalID(tenantID), ParentClientID: directory.CanonicalID(parentClientID)}
	probe.ParentKind = directory.ParentManagedIdentity
	found := s.parentExists(probe)
	probe.ParentKind = directory.ParentApplication
	if !found && !s.parentExists(probe) {
		return nil, fmt.Errorf("list federated credentials: no managed identity or application %s in tenant %s: %w", parentClientID, tenantID, store.ErrNotFound)
	}
	out := []directory.FederatedCredential{}
	for _, f := range s.credsOf(probe.TenantID, probe.ParentClientID) {
		out = append(out, rules.Credential(f))
	}
	rules.SortCredentials(out)
	return out, nil
}

// UpdateFederatedCredential implements store.DirectoryStore.
func (s *Store) UpdateFederatedCredential(ctx context.Context, tenantID, parentClientID, name string, update func(*directory.FederatedCredential) error) (directory.FederatedCredential, error) {
	f, err := casUpdate(ctx, s, fmt.Sprintf("federated credential %q of %s in tenant %s", name, parentClientID, tenantID),
		func() (directory.FederatedCredential, bool) { return s.credByName(tenantID, parentClientID, name) },
		func(f directory.FederatedCredential) directory.Meta { return f.Meta },
		func(old directory.FederatedCredential) (directory.FederatedCredential, error) {
			return rules.Apply(old, rules.Credential, update, rules.UpdatedCredential, s.now, fmt.Sprintf("federated credential %q", name))
		},
		func(f directory.FederatedCredential) error {
			if err := f.ValidateSetLimit(rules.Siblings(f, s.credsOf(f.TenantID, f.ParentClientID)), s.maxCreds); err != nil {
				return fmt.Errorf("update federated credential %q: %w", name, err)
			}
			s.creds[f.ID] = f
			return nil
		})
	return rules.Credential(f), err
}

// casUpdate runs a compare-and-swap update. It reads the current value
// under the read lock and runs change (the caller's closure and the update
// rules) with no lock held, so a closure may read the store; then, under the
// write lock, it stores the result with commit only if the value is still
// the one change saw, and otherwise starts again.
func casUpdate[T any](ctx context.Context, s *Store, what string,
	find func() (T, bool), meta func(T) directory.Meta,
	change func(old T) (T, error), commit func(T) error,
) (T, error) {
	var zero T
	for {
		unlock, err := s.read(ctx)
		if err != nil {
			return zero, err
		}
		old, ok := find()
		unlock()
		if !ok {
			return zero, fmt.Errorf("update %s: %w", what, store.ErrNotFound)
		}
		v, err := change(old)
		if err != nil {
			return zero, err
		}
		unlock, err = s.write(ctx)
		if err != nil {
			return zero, err
		}
		if cur, ok := find(); !ok || meta(cur) != meta(old) {
			unlock()
			continue // changed or deleted meanwhile: start again
		}
		if err := commit(v); err != nil {
			unlock()
			return zero, err
		}
		s.revision++
		unlock()
		return v, nil
	}
}

// DeleteFederatedCredential implements store.DirectoryStore.
func (s *Store) DeleteFederatedCredential(ctx context.Context, tenantID, parentClientID, name string, pre ...store.Precondition) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	f, ok := s.credByName(tenantID, parentClientID, name)
	if !ok {
		return fmt.Errorf("delete federated credential %q of %s in tenant %s: %w", name, parentClientID, tenantID, store.ErrNotFound)
	}
	if err := store.CheckPreconditions(f.Version, pre); err != nil {
		return err
	}
	delete(s.creds, f.ID)
	delete(s.usage, f.ID)
	s.revision++
	return nil
}

// ---- app role assignments

// CreateAppRoleAssignment implements store.DirectoryStore.
func (s *Store) CreateAppRoleAssignment(ctx context.Context, a directory.AppRoleAssignment) (directory.AppRoleAssignment, error) {
	a = rules.Assignment(a)
	if err := rules.AssignmentPrecheck(a); err != nil {
		return directory.AppRoleAssignment{}, fmt.Errorf("create app role assignment: %w", err)
	}
	unlock, err := s.write(ctx)
	if err != nil {
		return directory.AppRoleAssignment{}, err
	}
	defer unlock()
	res, ok := s.app(a.TenantID, a.ResourceAppID)
	if !ok {
		return directory.AppRoleAssignment{}, fmt.Errorf("create app role assignment: resource application %s in tenant %s: %w", a.ResourceAppID, a.TenantID, store.ErrNotFound)
	}
	if !s.principalExists(a.TenantID, a.PrincipalID) {
		return directory.AppRoleAssignment{}, fmt.Errorf("create app role assignment: no managed identity or service principal with principal id %s in tenant %s: %w", a.PrincipalID, a.TenantID, store.ErrNotFound)
	}
	if err := a.Validate(res); err != nil {
		return directory.AppRoleAssignment{}, fmt.Errorf("create app role assignment: %w", err)
	}
	if _, ok := s.assigns[a.ID]; ok {
		return directory.AppRoleAssignment{}, fmt.Errorf("create app role assignment: id %s: %w", a.ID, store.ErrAlreadyExists)
	}
	for _, o := range s.assigns {
		if o.Key() == a.Key() {
			return directory.AppRoleAssignment{}, fmt.Errorf("create app role assignment: principal %s already has role %s of application %s (assignment %s): %w", a.PrincipalID, a.AppRoleID, a.ResourceAppID, o.ID, store.ErrAlreadyExists)
		}
	}
	a.Meta = rules.NewMeta(s.now())
	s.assigns[a.ID] = a
	s.revision++
	return a, nil
}

// ListAppRoleAssignments implements store.DirectoryStore.
func (s *Store) ListAppRoleAssignments(ctx context.Context, tenantID string, filter store.AssignmentFilter) ([]directory.AppRoleAssignment, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tenantID = directory.CanonicalID(tenantID)
	if _, ok := s.tenants[tenantID]; !ok {
		return nil, fmt.Errorf("list app role assignments: tenant %s: %w", tenantID, store.ErrNotFound)
	}
	p, r := directory.CanonicalID(filter.PrincipalID), directory.CanonicalID(filter.ResourceAppID)
	out := []directory.AppRoleAssignment{}
	for _, a := range s.assigns {
		if a.TenantID == tenantID && (p == "" || a.PrincipalID == p) && (r == "" || a.ResourceAppID == r) {
			out = append(out, a)
		}
	}
	rules.SortAssignments(out)
	return out, nil
}

// DeleteAppRoleAssignment implements store.DirectoryStore.
func (s *Store) DeleteAppRoleAssignment(ctx context.Context, tenantID, id string) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	a, ok := s.assigns[directory.CanonicalID(id)]
	if !ok || a.TenantID != directory.CanonicalID(tenantID) {
		return fmt.Errorf("delete app role assignment %s in tenant %s: %w", id, tenantID, store.ErrNotFound)
	}
	delete(s.assigns, a.ID)
	s.revision++
	return nil
}

// ---- snapshot

// Snapshot implements store.DirectoryStore.
func (s *Store) Snapshot(ctx context.Context) (store.Snapshot, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return store.Snapshot{}, err
	}
	defer unlock()
	snap := store.Snapshot{
		Revision:           s.revision,
		Tenants:            make([]directory.Tenant, 0, len(s.tenants)),
		Applications:       make([]directory.Application, 0, len(s.apps)),
		ManagedIdentities:  make([]directory.ManagedIdentity, 0, len(s.mis)),
		Credentials:        make([]directory.FederatedCredential, 0, len(s.creds)),
		AppRoleAssignments: make([]directory.AppRoleAssignment, 0, len(s.assigns)),
	}
	for _, t := range s.tenants {
		snap.Tenants = append(snap.Tenants, t)
	}
	for _, a := range s.apps {
		snap.Applications = append(snap.Applications, rules.Application(a))
	}
	for _, m := range s.mis {
		snap.ManagedIdentities = append(snap.ManagedIdentities, rules.ManagedIdentity(m))
	}
	for _, f := range s.creds {
		snap.Credentials = append(snap.Credentials, rules.Credential(f))
	}
	for _, a := range s.assigns {
		snap.AppRoleAssignments = append(snap.AppRoleAssignments, a)
	}
	for _, t := range s.trusted {
		snap.TrustedIssuers = append(snap.TrustedIssuers, rules.TrustedIssuer(t))
	}
	for _, v := range s.sets {
		snap.IssuerSets = append(snap.IssuerSets, rules.IssuerSet(v))
	}
	rules.SortTrustedIssuers(snap.TrustedIssuers)
	rules.SortIssuerSets(snap.IssuerSets)
	rules.SortTenants(snap.Tenants)
	rules.SortApplications(snap.Applications)
	rules.SortManagedIdentities(snap.ManagedIdentities)
	rules.SortCredentials(snap.Credentials)
	rules.SortAssignments(snap.AppRoleAssignments)
	return snap, nil
}

// Revision implements store.DirectoryStore.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return s.revision, nil
}

// ---- signing keys

// CreateSigningKey implements store.KeyStore.
func (s *Store) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	if k.ID == "" {
		return fmt.Errorf("create signing key: %w", &directory.ValidationError{Field: "id", Rule: "is required"})
	}
	k = rules.SigningKey(k)
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := s.keys[k.ID]; ok {
		return fmt.Errorf("create signing key %s: %w", k.ID, store.ErrAlreadyExists)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	s.keys[k.ID] = k
	return nil
}

// CreateSigningKeyIf implements store.KeyStore.
func (s *Store) CreateSigningKeyIf(ctx context.Context, k store.SigningKey, check func([]store.SigningKey) error) error {
	if k.ID == "" {
		return fmt.Errorf("create signing key: %w", &directory.ValidationError{Field: "id", Rule: "is required"})
	}
	k = rules.SigningKey(k)
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := check(s.keyList()); err != nil {
		return err
	}
	if _, ok := s.keys[k.ID]; ok {
		return fmt.Errorf("create signing key %s: %w", k.ID, store.ErrAlreadyExists)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	s.keys[k.ID] = k
	return nil
}

// UpdateSigningKey implements store.KeyStore.
func (s *Store) UpdateSigningKey(ctx context.Context, id string, update func(*store.SigningKey) error) (store.SigningKey, error) {
	unlock, err := s.write(ctx)
	if err != nil {
		return store.SigningKey{}, err
	}
	defer unlock()
	old, ok := s.keys[id]
	if !ok {
		return store.SigningKey{}, fmt.Errorf("update signing key %s: %w", id, store.ErrNotFound)
	}
	k := rules.SigningKey(old)
	if err := update(&k); err != nil {
		return store.SigningKey{}, err
	}
	if k.ID != id {
		return store.SigningKey{}, fmt.Errorf("update signing key %s: %w", id, &directory.ValidationError{Field: "id", Rule: "cannot change", Value: k.ID})
	}
	k = rules.SigningKey(k)
	s.keys[id] = k
	return rules.SigningKey(k), nil
}

func (s *Store) keyList() []store.SigningKey {
	out := make([]store.SigningKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, rules.SigningKey(k))
	}
	rules.SortSigningKeys(out)
	return out
}

// ListSigningKeys implements store.KeyStore.
func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.keyList(), nil
}

// DeleteSigningKey implements store.KeyStore.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := s.keys[id]; !ok {
		return fmt.Errorf("delete signing key %s: %w", id, store.ErrNotFound)
	}
	delete(s.keys, id)
	return nil
}

// ---- audit

// AppendAudit implements store.AuditStore.
func (s *Store) AppendAudit(ctx context.Context, records []store.AuditRecord) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	now := s.now()
	batch := make([]auditEntry, 0, len(records))
	ids := map[string]bool{}
	seq := s.auditSeq
	for _, r := range records {
		r = rules.Audit(r, now)
		if ids[r.ID] || s.auditIDs[r.ID] {
			return fmt.Errorf("append audit: record id %s: %w", r.ID, store.ErrAlreadyExists)
		}
		ids[r.ID] = true
		seq++
		batch = append(batch, auditEntry{seq: seq, rec: r})
	}
	s.auditSeq = seq
	s.audit = append(s.audit, batch...)
	for id := range ids {
		s.auditIDs[id] = true
	}
	return nil
}

// ListAudit implements store.AuditStore.
func (s *Store) ListAudit(ctx context.Context, filter store.AuditFilter) (store.AuditPage, error) {
	q, err := rules.ParseAuditFilter(filter)
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("list audit: %w", err)
	}
	unlock, err := s.read(ctx)
	if err != nil {
		return store.AuditPage{}, err
	}
	defer unlock()
	var match []auditEntry
	for _, e := range s.audit {
		us := e.rec.Time.UnixMicro()
		if (q.TenantID != "" && e.rec.TenantID != q.TenantID) ||
			(q.ClientID != "" && e.rec.ClientID != q.ClientID) ||
			(q.CorrelationID != "" && e.rec.CorrelationID != q.CorrelationID) ||
			(q.Result != "" && e.rec.Result != q.Result) ||
			(q.SinceUS != 0 && us < q.SinceUS) ||
			(q.UntilUS != 0 && us >= q.UntilUS) ||
			(q.HasCursor && (us > q.AfterUS || (us == q.AfterUS && e.seq >= q.AfterSeq))) {
			continue
		}
		match = append(match, e)
	}
	slices.SortFunc(match, func(a, b auditEntry) int {
		if c := b.rec.Time.Compare(a.rec.Time); c != 0 {
			return c
		}
		return int(b.seq - a.seq)
	})
	var page store.AuditPage
	if len(match) > q.Limit {
		last := match[q.Limit-1]
		page.NextCursor = rules.Cursor(last.rec.Time.UnixMicro(), last.seq)
		match = match[:q.Limit]
	}
	page.Records = make([]store.AuditRecord, len(match))
	for i, e := range match {
		page.Records[i] = e.rec
		page.Records[i].Audience = slices.Clone(e.rec.Audience)
	}
	return page, nil
}

// PruneAudit implements store.AuditStore.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	unlock, err := s.write(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if before.IsZero() {
		return 0, nil
	}
	before = rules.Time(before)
	kept := s.audit[:0]
	var n int64
	for _, e := range s.audit {
		if e.rec.Time.Before(before) {
			n++
			delete(s.auditIDs, e.rec.ID)
			continue
		}
		kept = append(kept, e)
	}
	clear(s.audit[len(kept):])
	s.audit = kept
	return n, nil
}

// ---- usage

// RecordUsage implements store.UsageStore.
func (s *Store) RecordUsage(ctx context.Context, uses []store.CredentialUse, issuers []store.IssuerStatus) error {
	unlock, err := s.write(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for _, u := range uses {
		id := directory.CanonicalID(u.CredentialID)
		if _, ok := s.creds[id]; !ok {
			continue
		}
		if t := rules.Time(u.LastUsed); t.After(s.usage[id]) {
			s.usage[id] = t
		}
	}
	for _, st := range issuers {
		s.issuers[st.Issuer] = rules.MergeIssuerStatus(s.issuers[st.Issuer], st)
	}
	return nil
}

// CredentialUsage implements store.UsageStore.
func (s *Store) CredentialUsage(ctx context.Context, tenantID string) (map[string]time.Time, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tid := directory.CanonicalID(tenantID)
	out := map[string]time.Time{}
	for id, t := range s.usage {
		if f, ok := s.creds[id]; ok && f.TenantID == tid {
			out[id] = t
		}
	}
	return out, nil
}

// IssuerStatuses implements store.UsageStore.
func (s *Store) IssuerStatuses(ctx context.Context) (map[string]store.IssuerStatus, error) {
	unlock, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out := make(map[string]store.IssuerStatus, len(s.issuers))
	for k, v := range s.issuers {
		out[k] = v
	}
	return out, nil
}

// FromSnapshot returns a new store holding snap's directory (no keys, no
// audit): a scratch copy to try changes on — what a dry run applies a
// document to, to see the directory it would make.
func FromSnapshot(ctx context.Context, snap store.Snapshot, opts ...Option) (*Store, error) {
	s := New(opts...)
	for _, t := range snap.Tenants {
		if _, err := s.CreateTenant(ctx, t); err != nil {
			return nil, fmt.Errorf("copy snapshot: %w", err)
		}
	}
	for _, a := range snap.Applications {
		if _, err := s.CreateApplication(ctx, a); err != nil {
			return nil, fmt.Errorf("copy snapshot: %w", err)
		}
	}
	for _, m := range snap.ManagedIdentities {
		if _, err := s.CreateManagedIdentity(ctx, m); err != nil {
			return nil, fmt.Errorf("copy snapshot: %w", err)
		}
	}
	for _, f := range snap.Credentials {
		if _, err := s.CreateFederatedCredential(ctx, f); err != nil {
			return nil, fmt.Errorf("copy snapshot: %w", err)
		}
	}
	for _, a := range snap.AppRoleAssignments {
		if _, err := s.CreateAppRoleAssignment(ctx, a); err != nil {
			return nil, fmt.Errorf("copy snapshot: %w", err)
		}
	}
	for _, t := range snap.TrustedIssuers {
		if _, err := s.CreateTrustedIssuer(ctx, t); err != nil {
			return nil, fmt.Errorf("copy snapshot: %w", err)
		}
	}
	for _, v := range snap.IssuerSets {
		if _, err := s.CreateIssuerSet(ctx, v); err != nil {
			return nil, fmt.Errorf("copy snapshot: %w", err)
		}
	}
	return s, nil
}
