package sts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
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
	// issuerRefs counts the credentials that name each issuer (through
	// a set for its members): what keeps issuers exact when changes are
	// applied (an issuer no credential names any more is dropped).
	issuerRefs map[string]int
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
	// sets are the tenant's issuer sets' members, by lower-case name.
	sets map[string]map[string]bool
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
	idx := &dirIndex{revision: snap.Revision, tenants: map[string]*tenantIndex{}, issuers: map[string]bool{}, issuerRefs: map[string]int{}, profiles: map[string]profileEntry{}}
	for _, t := range snap.Tenants {
		idx.tenants[strings.ToLower(t.ID)] = &tenantIndex{tenant: t, clients: map[string]*client{}, resources: map[string]*resource{}, issuers: map[string]*issuerPolicy{}, sets: map[string]map[string]bool{}}
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
		if ti := idx.tenants[strings.ToLower(v.TenantID)]; ti != nil {
			ti.sets[strings.ToLower(v.Name)] = m
		}
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
		cred, ok := compileCredential(f, ti.sets)
		if !ok {
			// The store validated it on write; a bad one here means the
			// store holds data wif would refuse. Skip it: fail closed.
			continue
		}
		for _, iss := range cred.issuerList() {
			idx.issuers[iss] = true
			idx.issuerRefs[iss]++
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

// compileCredential is a credential as the token endpoint matches it:
// its claims expression parsed, the members of the issuer set it names
// (none, when the set does not exist: it matches nothing); ok is false
// for an expression that does not parse.
func compileCredential(f directory.FederatedCredential, sets map[string]map[string]bool) (credential, bool) {
	cred := credential{FederatedCredential: f}
	if f.ClaimsMatchingExpression != nil {
		expr, err := directory.ParseClaimsExpression(f.ClaimsMatchingExpression.Value)
		if err != nil {
			return cred, false
		}
		cred.expr = expr
	}
	if name, ok := directory.IssuerSetName(f.Issuer); ok {
		cred.members = sets[strings.ToLower(name)]
		if cred.members == nil {
			cred.members = map[string]bool{}
		}
	}
	return cred, true
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

	// mu serialises refreshes: an incremental one builds on the index
	// it read, and none may store an older index over a newer one.
	mu sync.Mutex
	// lastFull is when the index was last built whole: patched indexes
	// are rebuilt at least every fullRebuildEvery, so that a patch the
	// change log could not describe (a store written by an older
	// version, a row edited by hand) does not live on.
	lastFull time.Time
	// applied counts incremental refreshes (tests).
	applied atomic.Int64
}

// fullRebuildEvery bounds how long an index is only patched.
const fullRebuildEvery = 10 * time.Minute

// maxAppliedChanges is the most objects one refresh re-reads; beyond it a
// snapshot is cheaper.
const maxAppliedChanges = 1000

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

// refresh brings the index to the store's revision (at once when force
// is set, as after a local write). When the store keeps a change log and
// the changes since the index's revision are all of identities and
// credentials, it applies them — re-reading only the clients they name —
// instead of reading a whole Snapshot; otherwise it rebuilds.
func (d *directoryCache) refresh(ctx context.Context, force bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cur.Load()
	log, _ := d.store.(store.ChangeLog)
	if cur != nil && log != nil && d.now().Sub(d.lastFull) < fullRebuildEvery {
		rev, changes, complete, err := log.ChangesSince(ctx, cur.revision)
		if err != nil {
			return d.result(fmt.Errorf("read directory changes: %w", err))
		}
		if rev == cur.revision {
			return d.result(nil)
		}
		if complete {
			idx, ok, err := d.apply(ctx, cur, rev, changes)
			if err != nil {
				return d.result(fmt.Errorf("apply directory changes: %w", err))
			}
			if ok {
				d.cur.Store(idx)
				d.applied.Add(1)
				return d.result(nil)
			}
		}
	} else if cur != nil && !force {
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
	d.lastFull = d.now()
	return d.result(nil)
}

// apply builds the index of revision rev from cur and the changes between
// them: each named identity and each named parent's credentials re-read
// from the store, into copies of the tenants they belong to (the rest is
// shared with cur, which readers may still hold). ok is false when a
// change cannot be applied this way (an object gone: a delete is a
// ChangeOther write anyway) — the caller rebuilds.
func (d *directoryCache) apply(ctx context.Context, cur *dirIndex, rev int64, changes []store.Change) (*dirIndex, bool, error) {
	idx := &dirIndex{revision: rev, tenants: maps.Clone(cur.tenants), issuers: cur.issuers, issuerRefs: cur.issuerRefs, profiles: cur.profiles}
	copied := map[string]*tenantIndex{}
	tenant := func(tid string) *tenantIndex {
		k := strings.ToLower(tid)
		if t := copied[k]; t != nil {
			return t
		}
		old := cur.tenants[k]
		if old == nil {
			return nil
		}
		t := *old
		t.clients = maps.Clone(old.clients)
		copied[k] = &t
		idx.tenants[k] = &t
		return &t
	}
	type ref struct{ tenant, key string }
	var identities, parents, deleted []ref
	seen := map[string]bool{}
	for _, c := range changes {
		k := c.Kind + "|" + strings.ToLower(c.TenantID) + "|" + strings.ToLower(c.Key)
		if seen[k] {
			continue
		}
		seen[k] = true
		switch c.Kind {
		case store.ChangeIdentity:
			identities = append(identities, ref{c.TenantID, c.Key})
		case store.ChangeCredential:
			parents = append(parents, ref{c.TenantID, c.Key})
		case store.ChangeIdentityDeleted:
			deleted = append(deleted, ref{c.TenantID, c.Key})
		default:
			return nil, false, nil
		}
	}
	// An identity deleted in the same window as it changed: rebuild
	// rather than order the changes.
	for _, r := range deleted {
		k := "|" + strings.ToLower(r.tenant) + "|" + strings.ToLower(r.key)
		if seen[store.ChangeIdentity+k] || seen[store.ChangeCredential+k] {
			return nil, false, nil
		}
	}
	// Many changes at once (a bulk apply) cost more as point reads than
	// one snapshot: rebuild.
	if len(identities)+len(parents) > maxAppliedChanges {
		return nil, false, nil
	}
	// Identities first: a new identity's credentials come after it.
	for _, r := range identities {
		ti := tenant(r.tenant)
		if ti == nil {
			return nil, false, nil
		}
		m, err := d.store.GetManagedIdentityByClientID(ctx, r.tenant, r.key)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		c := &client{kind: directory.ParentManagedIdentity, clientID: m.ClientID, principalID: m.PrincipalID, name: m.Name, mirid: m.MIRID()}
		if old := ti.clients[strings.ToLower(m.ClientID)]; old != nil {
			c.creds = old.creds
		}
		ti.clients[strings.ToLower(m.ClientID)] = c
	}
	var refs map[string]int // a copy of cur's counts, once a credential changes
	for _, r := range parents {
		ti := tenant(r.tenant)
		if ti == nil {
			return nil, false, nil
		}
		old := ti.clients[strings.ToLower(r.key)]
		if old == nil {
			return nil, false, nil
		}
		fs, err := d.store.ListFederatedCredentials(ctx, r.tenant, r.key)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if refs == nil {
			refs = maps.Clone(cur.issuerRefs)
		}
		c := *old
		c.creds = nil
		for _, f := range old.creds {
			for _, iss := range f.issuerList() {
				if refs[iss]--; refs[iss] <= 0 {
					delete(refs, iss)
				}
			}
		}
		for _, f := range fs {
			cred, ok := compileCredential(f, ti.sets)
			if !ok {
				continue // fail closed, as buildIndex
			}
			for _, iss := range cred.issuerList() {
				refs[iss]++
			}
			c.creds = append(c.creds, cred)
		}
		sort.Slice(c.creds, func(i, j int) bool { return c.creds[i].Name < c.creds[j].Name })
		ti.clients[strings.ToLower(r.key)] = &c
	}
	resourcesCopied := map[string]bool{}
	for _, r := range deleted {
		ti := tenant(r.tenant)
		if ti == nil {
			return nil, false, nil
		}
		key := strings.ToLower(r.key)
		old := ti.clients[key]
		if old == nil {
			continue // never loaded, or gone already
		}
		if refs == nil {
			refs = maps.Clone(cur.issuerRefs)
		}
		for _, f := range old.creds {
			for _, iss := range f.issuerList() {
				if refs[iss]--; refs[iss] <= 0 {
					delete(refs, iss)
				}
			}
		}
		delete(ti.clients, key)
		k := strings.ToLower(r.tenant)
		c := resourcesCopied[k]
		removeRoles(ti, strings.ToLower(old.principalID), &c)
		resourcesCopied[k] = c
	}
	if refs != nil {
		idx.issuerRefs = refs
		idx.issuers = make(map[string]bool, len(refs))
		for iss := range refs {
			idx.issuers[iss] = true
		}
	}
	return idx, true, nil
}

// removeRoles drops principal p's roles from the resources of ti, a copy
// of a tenant whose resources map readers may still hold: the map is
// copied first (once: *copied records it), and each resource that grants
// p a role is replaced, under every name it has, by a copy without them.
func removeRoles(ti *tenantIndex, p string, copied *bool) {
	replaced := map[*resource]*resource{}
	for _, r := range ti.resources {
		if _, ok := r.roles[p]; ok && replaced[r] == nil {
			nr := *r
			nr.roles = maps.Clone(r.roles)
			delete(nr.roles, p)
			replaced[r] = &nr
		}
	}
	if len(replaced) == 0 {
		return
	}
	if !*copied {
		ti.resources = maps.Clone(ti.resources)
		*copied = true
	}
	for k, r := range ti.resources {
		if nr := replaced[r]; nr != nil {
			ti.resources[k] = nr
		}
	}
}
