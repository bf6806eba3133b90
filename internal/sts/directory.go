package sts

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// dirIndex is the directory as the token endpoint reads it: built once per
// store revision from one consistent Snapshot, then read without locks.
type dirIndex struct {
	revision int64
	tenants  map[string]*tenantIndex // by lower-case tenant id
	// issuers is every issuer some credential names: the only ones whose
	// keys may ever be fetched (members of the issuer sets that
	// credentials name included).
	issuers map[string]bool
	// profiles are the fetch settings of trusted issuers that have their
	// own (a CA bundle, private addresses), by profile name.
	profiles map[string]profileEntry
}

type tenantIndex struct {
	tenant    directory.Tenant
	clients   map[string]*client   // by lower-case client id
	resources map[string]*resource // by lower-case identifier URI (and without trailing '/'), and by appId
	// issuers are the tenant's trusted issuers, by exact issuer URL.
	issuers map[string]*issuerPolicy
}

// client is a caller: a managed identity or an application, with its
// compiled federated credentials.
type client struct {
	kind        directory.ParentKind
	clientID    string
	principalID string
	name        string
	mirid       string // managed identities only
	creds       []credential
}

type credential struct {
	directory.FederatedCredential
	expr *directory.ClaimsExpression
	// members, for a credential naming an issuer set, are the set's
	// issuers (empty when the set does not exist); nil otherwise.
	members map[string]bool
}

// trusts reports whether the credential trusts issuer iss.
func (f *credential) trusts(iss string) bool {
	if f.members != nil {
		return f.members[iss]
	}
	return f.Issuer == iss
}

// issuerList is the issuers the credential trusts: its issuer, or its
// set's members.
func (f *credential) issuerList() []string {
	if f.members == nil {
		return []string{f.Issuer}
	}
	out := make([]string, 0, len(f.members))
	for m := range f.members {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// resource is an application as the target of a token, with the roles it
// grants per caller principal.
type resource struct {
	app   directory.Application
	roles map[string][]string // principal id (lower) → sorted role values
}

func buildIndex(snap store.Snapshot) (*dirIndex, error) {
	idx := &dirIndex{revision: snap.Revision, tenants: map[string]*tenantIndex{}, issuers: map[string]bool{}, profiles: map[string]profileEntry{}}
	for _, t := range snap.Tenants {
		idx.tenants[strings.ToLower(t.ID)] = &tenantIndex{tenant: t, clients: map[string]*client{}, resources: map[string]*resource{}, issuers: map[string]*issuerPolicy{}}
	}
	for _, t := range snap.TrustedIssuers {
		ti := idx.tenants[strings.ToLower(t.TenantID)]
		if ti == nil {
			continue
		}
		pol, prof := compilePolicy(t)
		ti.issuers[t.Issuer] = pol
		if prof != nil {
			idx.profiles[pol.profile] = profileEntry{issuer: t.Issuer, profile: *prof}
		}
	}
	// Issuer sets, by tenant and lower-case name; credentials naming the
	// same set share one member map.
	sets := map[string]map[string]bool{}
	for _, v := range snap.IssuerSets {
		m := make(map[string]bool, len(v.Issuers))
		for _, iss := range v.Issuers {
			m[iss] = true
		}
		sets[strings.ToLower(v.TenantID)+"|"+strings.ToLower(v.Name)] = m
	}
	for _, m := range snap.ManagedIdentities {
		ti := idx.tenants[strings.ToLower(m.TenantID)]
		if ti == nil {
			continue
		}
		ti.clients[strings.ToLower(m.ClientID)] = &client{
			kind: directory.ParentManagedIdentity, clientID: m.ClientID, principalID: m.PrincipalID,
			name: m.Name, mirid: m.MIRID(),
		}
	}
	for _, a := range snap.Applications {
		ti := idx.tenants[strings.ToLower(a.TenantID)]
		if ti == nil {
			continue
		}
		ti.clients[strings.ToLower(a.AppID)] = &client{
			kind: directory.ParentApplication, clientID: a.AppID, principalID: a.ServicePrincipalID, name: a.DisplayName,
		}
		r := &resource{app: a, roles: map[string][]string{}}
		ti.resources[strings.ToLower(a.AppID)] = r
		for _, u := range a.IdentifierURIs {
			ti.resources[strings.ToLower(u)] = r
			if trimmed := strings.TrimRight(strings.ToLower(u), "/"); trimmed != "" {
				if _, taken := ti.resources[trimmed]; !taken {
					ti.resources[trimmed] = r
				}
			}
		}
	}
	for _, f := range snap.Credentials {
		ti := idx.tenants[strings.ToLower(f.TenantID)]
		if ti == nil {
			continue
		}
		c := ti.clients[strings.ToLower(f.ParentClientID)]
		if c == nil {
			continue
		}
		cred := credential{FederatedCredential: f}
		if f.ClaimsMatchingExpression != nil {
			expr, err := directory.ParseClaimsExpression(f.ClaimsMatchingExpression.Value)
			if err != nil {
				// The store validated it on write; a bad one here means the
				// store holds data wif would refuse. Skip it: fail closed.
				continue
			}
			cred.expr = expr
		}
		if name, ok := directory.IssuerSetName(f.Issuer); ok {
			cred.members = sets[strings.ToLower(f.TenantID)+"|"+strings.ToLower(name)]
			if cred.members == nil {
				cred.members = map[string]bool{} // the set does not exist: matches nothing
			}
			for m := range cred.members {
				idx.issuers[m] = true
			}
		} else {
			idx.issuers[f.Issuer] = true
		}
		c.creds = append(c.creds, cred)
	}
	for _, a := range snap.AppRoleAssignments {
		ti := idx.tenants[strings.ToLower(a.TenantID)]
		if ti == nil {
			continue
		}
		r := ti.resources[strings.ToLower(a.ResourceAppID)]
		if r == nil {
			continue
		}
		for _, role := range r.app.AppRoles {
			if strings.EqualFold(role.ID, a.AppRoleID) && role.IsEnabled {
				p := strings.ToLower(a.PrincipalID)
				r.roles[p] = append(r.roles[p], role.Value)
			}
		}
	}
	for _, ti := range idx.tenants {
		for _, r := range ti.resources {
			for p, roles := range r.roles {
				sort.Strings(roles)
				r.roles[p] = dedupSorted(roles)
			}
		}
		for _, c := range ti.clients {
			sort.Slice(c.creds, func(i, j int) bool { return c.creds[i].Name < c.creds[j].Name })
		}
	}
	return idx, nil
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// lookupResource finds the application a v1 resource or v2 scope names.
func (ti *tenantIndex) lookupResource(name string) *resource {
	k := strings.ToLower(name)
	if r := ti.resources[k]; r != nil {
		return r
	}
	return ti.resources[strings.TrimRight(k, "/")]
}

// directoryCache keeps the current index and reloads it when the store's
// revision moves.
type directoryCache struct {
	store store.DirectoryStore
	cur   atomic.Pointer[dirIndex]
	// lastOK is when the store last answered a refresh (unix ns).
	lastOK atomic.Int64
	now    func() time.Time
}

func (d *directoryCache) result(err error) error {
	if err == nil {
		d.lastOK.Store(d.now().UnixNano())
	}
	return err
}

// age is how long ago the store last answered a refresh.
func (d *directoryCache) age() time.Duration {
	return d.now().Sub(time.Unix(0, d.lastOK.Load()))
}

func (d *directoryCache) load() *dirIndex { return d.cur.Load() }

// refresh reloads the index if the store's revision differs from the one
// held (or unconditionally when force is set).
func (d *directoryCache) refresh(ctx context.Context, force bool) error {
	if cur := d.cur.Load(); cur != nil && !force {
		rev, err := d.store.Revision(ctx)
		if err != nil {
			return d.result(fmt.Errorf("read directory revision: %w", err))
		}
		if rev == cur.revision {
			return d.result(nil)
		}
	}
	snap, err := d.store.Snapshot(ctx)
	if err != nil {
		return d.result(fmt.Errorf("load directory snapshot: %w", err))
	}
	idx, err := buildIndex(snap)
	if err != nil {
		return err
	}
	d.cur.Store(idx)
	return d.result(nil)
}
