package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// Action is what a change does.
type Action string

// The actions of a plan.
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Kind is the kind of object a change touches.
type Kind string

// The kinds of directory object.
const (
	KindTenant              Kind = "tenant"
	KindApplication         Kind = "application"
	KindManagedIdentity     Kind = "managed identity"
	KindFederatedCredential Kind = "federated credential"
	KindAppRoleAssignment   Kind = "app role assignment"
)

// Change is one step of a plan.
type Change struct {
	Action Action `json:"action"`
	Kind   Kind   `json:"kind"`
	// Name says which object, readably (e.g. "rg/demo" or
	// "demo → api://provider-api Data.Read").
	Name string `json:"name"`
	// Diff lists the changed fields of an update, one "field: old → new"
	// line each.
	Diff []string `json:"diff,omitempty"`

	do func(ctx context.Context, s store.DirectoryStore) error
}

// Plan is the list of changes that makes a store match a document, in the
// order Apply makes them (deletions first, then parents before children).
type Plan struct {
	Changes []Change `json:"changes"`
	// Kept lists objects Prune would have deleted but Options.Keep kept.
	Kept []string `json:"kept,omitempty"`
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Changes) == 0 }

// Count returns how many changes of action a the plan holds.
func (p Plan) Count(a Action) int {
	n := 0
	for _, c := range p.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// String renders the plan as a readable diff: "+" creates, "~" updates with
// their changed fields indented below, "-" deletes, and a summary line.
func (p Plan) String() string {
	var b strings.Builder
	for _, k := range p.Kept {
		fmt.Fprintf(&b, "= %s (kept: protected from --prune)\n", k)
	}
	if p.Empty() {
		return b.String() + "No changes: the directory already matches the document.\n"
	}
	for _, c := range p.Changes {
		sign := map[Action]string{Create: "+", Update: "~", Delete: "-"}[c.Action]
		fmt.Fprintf(&b, "%s %s %s\n", sign, c.Kind, c.Name)
		for _, d := range c.Diff {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	fmt.Fprintf(&b, "Plan: %d to create, %d to update, %d to delete.\n", p.Count(Create), p.Count(Update), p.Count(Delete))
	return b.String()
}

// Options control Apply.
type Options struct {
	// Prune deletes objects the document does not mention (including whole
	// tenants). Without it, Apply only creates and updates.
	Prune bool
	// DryRun computes the plan and changes nothing.
	DryRun bool
	// Keep, when set, protects objects from Prune: it is asked about each
	// object Prune would delete (key: a tenant's id, an application's appId,
	// an identity's client id, a credential's "parentClientId/name", an
	// assignment's id) and a true answer keeps it. The admin API uses it so
	// a document cannot prune away the admin API's own access.
	Keep func(kind Kind, key string) bool
	// BatchSize is how many changes share one store transaction when the
	// store can batch (store.Batcher; default 1000).
	BatchSize int
}

// DefaultBatchSize is Options.BatchSize's default.
const DefaultBatchSize = 1000

// Result is what Apply did.
type Result struct {
	Plan Plan `json:"plan"`
	// Applied counts the changes made (0 on a dry run).
	Applied int `json:"applied"`
}

// Apply makes the store match the document: it plans, then makes each
// change in order. It stops at the first failing change and returns what it
// did so far with the error. Apply is idempotent: a second run with the same
// document plans no changes.
func Apply(ctx context.Context, s store.DirectoryStore, doc *Document, opts Options) (Result, error) {
	p, err := MakePlan(ctx, s, doc, opts)
	if err != nil {
		return Result{}, err
	}
	res := Result{Plan: p}
	if opts.DryRun {
		return res, nil
	}
	b, ok := s.(store.Batcher)
	if !ok {
		for _, c := range p.Changes {
			if err := c.do(ctx, s); err != nil {
				return res, fmt.Errorf("%s %s %s: %w", c.Action, c.Kind, c.Name, err)
			}
			res.Applied++
		}
		return res, nil
	}
	size := opts.BatchSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	run := func(changes []Change) (int, error) {
		failed := -1
		err := b.Batch(ctx, func(ctx context.Context) error {
			for i, c := range changes {
				if err := c.do(ctx, s); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		return failed, err
	}
	for start := 0; start < len(p.Changes); start += size {
		batch := p.Changes[start:min(start+size, len(p.Changes))]
		failed, err := run(batch)
		if err == nil {
			res.Applied += len(batch)
			continue
		}
		if failed < 0 { // the commit failed: nothing of the batch is kept
			return res, fmt.Errorf("apply %d changes from %s %s %s: %w", len(batch), batch[0].Action, batch[0].Kind, batch[0].Name, err)
		}
		// The batch was rolled back: keep the changes before the failing
		// one, then report it, as the change-by-change apply would.
		if failed > 0 {
			if _, perr := run(batch[:failed]); perr != nil {
				return res, fmt.Errorf("apply %d changes from %s %s %s: %w", failed, batch[0].Action, batch[0].Kind, batch[0].Name, perr)
			}
			res.Applied += failed
		}
		c := batch[failed]
		return res, fmt.Errorf("%s %s %s: %w", c.Action, c.Kind, c.Name, err)
	}
	return res, nil
}

// Converge applies doc until the store holds it, planning again when a
// change loses a race with another writer (ErrAlreadyExists, ErrConflict):
// for replicas that apply the same document as they start together. It
// returns the changes this caller made.
func Converge(ctx context.Context, s store.DirectoryStore, doc *Document, opts Options) (int, error) {
	applied := 0
	for attempt := 1; ; attempt++ {
		res, err := Apply(ctx, s, doc, opts)
		applied += res.Applied
		if err == nil || attempt == 5 || !(errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrConflict)) {
			return applied, err
		}
	}
}

// MakePlan compares doc with the store's directory and returns the changes
// that would make them match (deleting unmentioned objects only with
// opts.Prune, and never those opts.Keep protects; opts.DryRun is ignored). Problems that only the store can reveal (an assignment naming an
// identity that exists nowhere, an id that differs from the existing
// object's) come back as directory.ValidationErrors naming document paths.
func MakePlan(ctx context.Context, s store.DirectoryStore, doc *Document, opts Options) (Plan, error) {
	prune := opts.Prune
	if err := doc.Validate(); err != nil {
		return Plan{}, err
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("read the directory: %w", err)
	}
	pl := planner{snap: snap, prune: prune, keepFn: opts.Keep}
	for ti := range doc.Tenants {
		pl.tenant(ti, doc.Tenants[ti])
	}
	if prune {
		inDoc := map[string]bool{}
		for _, t := range doc.Tenants {
			inDoc[canon(t.ID)] = true
		}
		for _, t := range snap.Tenants {
			if !inDoc[canon(t.ID)] && !pl.keep(KindTenant, t.ID, tenantName(t)) {
				id := t.ID
				pl.deletes[4] = append(pl.deletes[4], Change{Action: Delete, Kind: KindTenant, Name: tenantName(t),
					do: func(ctx context.Context, s store.DirectoryStore) error {
						return ignoreNotFound(s.DeleteTenant(ctx, id))
					}})
			}
		}
	}
	if err := capped(pl.errs); err != nil {
		return Plan{}, err
	}
	p := Plan{Kept: pl.kept}
	for _, d := range pl.deletes {
		p.Changes = append(p.Changes, d...)
	}
	for _, c := range pl.upserts {
		p.Changes = append(p.Changes, c...)
	}
	return p, nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

type planner struct {
	snap   store.Snapshot
	prune  bool
	keepFn func(Kind, string) bool
	kept   []string
	errs   directory.ValidationErrors
	// deletes by kind: assignments, credentials, identities, applications, tenants.
	deletes [5][]Change
	// upserts by kind: tenants, applications, identities, credentials, assignments.
	upserts [5][]Change
}

// keep reports whether Options.Keep protects an object from pruning, and
// records it.
func (pl *planner) keep(kind Kind, key, name string) bool {
	if pl.keepFn == nil || !pl.keepFn(kind, key) {
		return false
	}
	pl.kept = append(pl.kept, string(kind)+" "+name)
	return true
}

func (pl *planner) fail(field, value, rule string, args ...any) {
	pl.errs = append(pl.errs, &directory.ValidationError{Field: field, Rule: fmt.Sprintf(rule, args...), Value: value})
}

func tenantName(t directory.Tenant) string { return fmt.Sprintf("%s (%q)", t.ID, t.DisplayName) }
func appName(a directory.Application) string {
	return fmt.Sprintf("%q (appId %s)", a.DisplayName, a.AppID)
}
func miName(m directory.ManagedIdentity) string {
	return fmt.Sprintf("%s/%s (clientId %s)", m.ResourceGroup, m.Name, m.ClientID)
}

// tenant plans one tenant of the document.
func (pl *planner) tenant(ti int, t Tenant) {
	tp := fmt.Sprintf("tenants[%d]", ti)
	tid := canon(t.ID)
	want := directory.Tenant{ID: tid, DisplayName: t.DisplayName}
	var old *directory.Tenant
	for i := range pl.snap.Tenants {
		if canon(pl.snap.Tenants[i].ID) == tid {
			old = &pl.snap.Tenants[i]
		}
	}
	switch {
	case old == nil:
		pl.upserts[0] = append(pl.upserts[0], Change{Action: Create, Kind: KindTenant, Name: tenantName(want),
			do: func(ctx context.Context, s store.DirectoryStore) error {
				_, err := s.CreateTenant(ctx, want)
				return err
			}})
	default:
		tid = old.ID
		want.ID = old.ID
		if d := diff(old.DisplayName, want.DisplayName, "displayName"); len(d) > 0 {
			pl.upserts[0] = append(pl.upserts[0], Change{Action: Update, Kind: KindTenant, Name: tenantName(*old), Diff: d,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.UpdateTenant(ctx, want.ID, func(x *directory.Tenant) error {
						x.DisplayName = want.DisplayName
						return nil
					})
					return err
				}})
		}
	}

	pl.trust(tid, t, old != nil)

	// Existing objects of this tenant.
	var oldApps []directory.Application
	var oldMIs []directory.ManagedIdentity
	var oldCreds []directory.FederatedCredential
	var oldAsgs []directory.AppRoleAssignment
	if old != nil {
		for _, a := range pl.snap.Applications {
			if a.TenantID == tid {
				oldApps = append(oldApps, a)
			}
		}
		for _, m := range pl.snap.ManagedIdentities {
			if m.TenantID == tid {
				oldMIs = append(oldMIs, m)
			}
		}
		for _, c := range pl.snap.Credentials {
			if c.TenantID == tid {
				oldCreds = append(oldCreds, c)
			}
		}
		for _, g := range pl.snap.AppRoleAssignments {
			if g.TenantID == tid {
				oldAsgs = append(oldAsgs, g)
			}
		}
	}

	// Indexes of the tenant's objects, so that planning stays linear in
	// the tenant's size.
	oldAppByID := make(map[string]int, len(oldApps))
	oldAppsByName := map[string][]int{}
	for i, o := range oldApps {
		oldAppByID[strings.ToLower(o.AppID)] = i
		oldAppsByName[o.DisplayName] = append(oldAppsByName[o.DisplayName], i)
	}
	credsByParent := map[string][]directory.FederatedCredential{}
	for _, c := range oldCreds {
		k := strings.ToLower(c.ParentClientID)
		credsByParent[k] = append(credsByParent[k], c)
	}

	// Applications: match by appId, then by display name among the rest.
	matchedApp := make([]int, len(t.Applications)) // index into oldApps, or -1
	usedApp := map[int]bool{}
	for ai, a := range t.Applications {
		matchedApp[ai] = -1
		if a.AppID == "" {
			continue
		}
		if i, ok := oldAppByID[strings.ToLower(a.AppID)]; ok {
			matchedApp[ai] = i
			usedApp[i] = true
		}
	}
	for ai, a := range t.Applications {
		if a.AppID != "" {
			continue
		}
		var cands []int
		for _, i := range oldAppsByName[a.DisplayName] {
			if !usedApp[i] {
				cands = append(cands, i)
			}
		}
		switch len(cands) {
		case 0:
		case 1:
			matchedApp[ai] = cands[0]
			usedApp[cands[0]] = true
		default:
			pl.fail(fmt.Sprintf("%s.applications[%d].displayName", tp, ai), a.DisplayName,
				"matches %d existing applications; give appId to say which one", len(cands))
		}
	}
	var wantApps []directory.Application
	for ai, a := range t.Applications {
		ap := fmt.Sprintf("%s.applications[%d]", tp, ai)
		var o *directory.Application
		if matchedApp[ai] >= 0 {
			o = &oldApps[matchedApp[ai]]
		}
		w := a.toDirectory(tid, o)
		newAppID := o == nil && w.AppID == ""
		if o == nil {
			w.AppID = orNew(w.AppID)
			w.ObjectID = orNew(w.ObjectID)
			w.ServicePrincipalID = orNew(w.ServicePrincipalID)
		} else {
			pl.sameID(ap+".objectId", w.ObjectID, o.ObjectID)
			pl.sameID(ap+".servicePrincipalId", w.ServicePrincipalID, o.ServicePrincipalID)
			w.AppID, w.ObjectID, w.ServicePrincipalID = o.AppID, o.ObjectID, o.ServicePrincipalID
		}
		for i := range w.AppRoles {
			w.AppRoles[i].ID = orNew(w.AppRoles[i].ID)
		}
		wantApps = append(wantApps, w)
		if o != nil && !pl.prune {
			pl.droppedRoles(ap, *o, w, oldAsgs)
		}
		if o == nil {
			name := appName(w)
			if newAppID {
				// The id is drawn again when the plan is made for real: a
				// dry run must not show one that will not be used.
				name = fmt.Sprintf("%q (appId: new)", w.DisplayName)
			}
			pl.upserts[1] = append(pl.upserts[1], Change{Action: Create, Kind: KindApplication, Name: name,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.CreateApplication(ctx, w)
					return err
				}})
		} else if d := diffObjects(appView(*o), appView(w)); len(d) > 0 {
			pl.upserts[1] = append(pl.upserts[1], Change{Action: Update, Kind: KindApplication, Name: appName(w), Diff: d,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.UpdateApplication(ctx, w.TenantID, w.AppID, func(x *directory.Application) error {
						x.DisplayName = w.DisplayName
						x.IdentifierURIs = w.IdentifierURIs
						x.AppRoles = w.AppRoles
						x.RequestedAccessTokenVersion = w.RequestedAccessTokenVersion
						return nil
					})
					return err
				}})
		}
		pl.credentials(ap, tid, directory.ParentApplication, w.AppID, "application "+fmt.Sprintf("%q", w.DisplayName), a.FederatedCredentials, credsByParent[strings.ToLower(w.AppID)])
	}

	// Managed identities: match by subscription, resource group and name.
	miKey := func(sub, rg, name string) string {
		return strings.ToLower(sub) + "\x00" + strings.ToLower(rg) + "\x00" + strings.ToLower(name)
	}
	oldMIByKey := make(map[string]int, len(oldMIs))
	for i, x := range oldMIs {
		oldMIByKey[miKey(x.SubscriptionID, x.ResourceGroup, x.Name)] = i
	}
	var wantMIs []directory.ManagedIdentity
	usedMI := map[int]bool{}
	for mi, m := range t.ManagedIdentities {
		mp := fmt.Sprintf("%s.managedIdentities[%d]", tp, mi)
		w := m.toDirectory(tid)
		var o *directory.ManagedIdentity
		if i, ok := oldMIByKey[miKey(w.SubscriptionID, w.ResourceGroup, w.Name)]; ok {
			o = &oldMIs[i]
			usedMI[i] = true
		}
		newClientID := o == nil && w.ClientID == ""
		if o == nil {
			w.ClientID = orNew(w.ClientID)
			w.PrincipalID = orNew(w.PrincipalID)
		} else {
			pl.sameID(mp+".clientId", w.ClientID, o.ClientID)
			pl.sameID(mp+".principalId", w.PrincipalID, o.PrincipalID)
			w.ClientID, w.PrincipalID = o.ClientID, o.PrincipalID
			w.SubscriptionID, w.ResourceGroup, w.Name = o.SubscriptionID, o.ResourceGroup, o.Name
		}
		wantMIs = append(wantMIs, w)
		if o == nil {
			name := miName(w)
			if newClientID {
				name = fmt.Sprintf("%s/%s (clientId: new)", w.ResourceGroup, w.Name)
			}
			pl.upserts[2] = append(pl.upserts[2], Change{Action: Create, Kind: KindManagedIdentity, Name: name,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.CreateManagedIdentity(ctx, w)
					return err
				}})
		} else if d := diffObjects(miView(*o), miView(w)); len(d) > 0 {
			ref := store.IdentityRef{SubscriptionID: w.SubscriptionID, ResourceGroup: w.ResourceGroup, Name: w.Name}
			pl.upserts[2] = append(pl.upserts[2], Change{Action: Update, Kind: KindManagedIdentity, Name: miName(w), Diff: d,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.UpdateManagedIdentity(ctx, w.TenantID, ref, func(x *directory.ManagedIdentity) error {
						x.Location = w.Location
						x.Tags = w.Tags
						return nil
					})
					return err
				}})
		}
		pl.credentials(mp, tid, directory.ParentManagedIdentity, w.ClientID, "managed identity "+w.ResourceGroup+"/"+w.Name, m.FederatedCredentials, credsByParent[strings.ToLower(w.ClientID)])
	}

	// Unmentioned applications and identities: pruned, or kept (and then
	// usable as assignment principals and resources).
	keptApps, keptMIs := wantApps, wantMIs
	for i, o := range oldApps {
		if usedApp[i] {
			continue
		}
		if pl.prune && !pl.keep(KindApplication, o.AppID, appName(o)) {
			o := o
			pl.deletes[3] = append(pl.deletes[3], Change{Action: Delete, Kind: KindApplication, Name: appName(o),
				do: func(ctx context.Context, s store.DirectoryStore) error {
					return ignoreNotFound(s.DeleteApplication(ctx, o.TenantID, o.AppID))
				}})
			pl.pruneCredentials(credsByParent[strings.ToLower(o.AppID)], "application "+fmt.Sprintf("%q", o.DisplayName))
		} else {
			keptApps = append(keptApps, o)
		}
	}
	for i, o := range oldMIs {
		if usedMI[i] {
			continue
		}
		if pl.prune && !pl.keep(KindManagedIdentity, o.ClientID, miName(o)) {
			o := o
			ref := store.IdentityRef{SubscriptionID: o.SubscriptionID, ResourceGroup: o.ResourceGroup, Name: o.Name}
			pl.deletes[2] = append(pl.deletes[2], Change{Action: Delete, Kind: KindManagedIdentity, Name: miName(o),
				do: func(ctx context.Context, s store.DirectoryStore) error {
					return ignoreNotFound(s.DeleteManagedIdentity(ctx, o.TenantID, ref))
				}})
			pl.pruneCredentials(credsByParent[strings.ToLower(o.ClientID)], "managed identity "+o.ResourceGroup+"/"+o.Name)
		} else {
			keptMIs = append(keptMIs, o)
		}
	}

	// Assignments.
	r := newResolver(keptApps, keptMIs)
	wantKeys := map[string]bool{}
	oldKeys := make(map[string]bool, len(oldAsgs))
	for _, o := range oldAsgs {
		oldKeys[o.Key()] = true
	}
	for gi, g := range t.AppRoleAssignments {
		gp := fmt.Sprintf("%s.appRoleAssignments[%d]", tp, gi)
		pid, pname, perr := r.principal(g.Principal)
		if perr != "" {
			pl.fail(gp+".principal", g.Principal, "%s", perr)
		}
		res, rerr := r.resource(g.Resource)
		if rerr != "" {
			pl.fail(gp+".resource", g.Resource, "%s", rerr)
		}
		if perr != "" || rerr != "" {
			continue
		}
		var role *directory.AppRole
		for i := range res.AppRoles {
			x := &res.AppRoles[i]
			if x.Value == g.Role || strings.EqualFold(x.ID, g.Role) {
				role = x
			}
		}
		if role == nil {
			var vals []string
			for _, x := range res.AppRoles {
				vals = append(vals, x.Value)
			}
			pl.fail(gp+".role", g.Role, "is not an app role of application %q (its roles: %s)", res.DisplayName, strings.Join(vals, ", "))
			continue
		}
		w := directory.AppRoleAssignment{TenantID: tid, PrincipalID: pid, ResourceAppID: res.AppID, AppRoleID: role.ID}
		if wantKeys[w.Key()] {
			continue
		}
		wantKeys[w.Key()] = true
		if oldKeys[w.Key()] {
			continue
		}
		w.ID = directory.NewID()
		name := fmt.Sprintf("%s → %s %s", pname, resName(*res), role.Value)
		pl.upserts[4] = append(pl.upserts[4], Change{Action: Create, Kind: KindAppRoleAssignment, Name: name,
			do: func(ctx context.Context, s store.DirectoryStore) error {
				_, err := s.CreateAppRoleAssignment(ctx, w)
				return err
			}})
	}
	if pl.prune {
		all := newResolver(append(append([]directory.Application(nil), oldApps...), wantApps...), append(append([]directory.ManagedIdentity(nil), oldMIs...), wantMIs...))
		for _, o := range oldAsgs {
			if wantKeys[o.Key()] || pl.keep(KindAppRoleAssignment, o.ID, all.describe(o)) {
				continue
			}
			o := o
			pl.deletes[0] = append(pl.deletes[0], Change{Action: Delete, Kind: KindAppRoleAssignment, Name: all.describe(o),
				do: func(ctx context.Context, s store.DirectoryStore) error {
					return ignoreNotFound(s.DeleteAppRoleAssignment(ctx, o.TenantID, o.ID))
				}})
		}
	}
}

// droppedRoles fails when an update drops an app role that assignments
// still name (without prune they would stay, dangling).
func (pl *planner) droppedRoles(prefix string, old, want directory.Application, asgs []directory.AppRoleAssignment) {
	for _, role := range old.AppRoles {
		if slices.ContainsFunc(want.AppRoles, func(r directory.AppRole) bool { return strings.EqualFold(r.ID, role.ID) }) {
			continue
		}
		for _, g := range asgs {
			if strings.EqualFold(g.ResourceAppID, old.AppID) && strings.EqualFold(g.AppRoleID, role.ID) {
				pl.fail(prefix+".appRoles", role.Value, "drops app role %q, which is still assigned; remove its assignments too and apply with --prune", role.Value)
				break
			}
		}
	}
}

// sameID fails when the document gives an id that differs from the matched
// object's: ids are immutable.
func (pl *planner) sameID(field, want, have string) {
	if want != "" && !strings.EqualFold(want, have) {
		pl.fail(field, want, "differs from the existing object's %s; ids cannot change: remove the field to keep the existing id, or delete the object to recreate it", have)
	}
}

func orNew(id string) string {
	if id == "" {
		return directory.NewID()
	}
	return id
}

// credentials plans the credentials of one parent; olds are the parent's
// stored credentials (at most a few dozen).
func (pl *planner) credentials(prefix, tid string, kind directory.ParentKind, parent, parentName string, creds []FederatedCredential, olds []directory.FederatedCredential) {
	used := map[int]bool{}
	for ci, c := range creds {
		cp := fmt.Sprintf("%s.federatedCredentials[%d]", prefix, ci)
		w := c.toDirectory(tid, kind, parent)
		var o *directory.FederatedCredential
		for i := range olds {
			if strings.EqualFold(olds[i].Name, w.Name) {
				o = &olds[i]
				used[i] = true
			}
		}
		name := fmt.Sprintf("%q of %s", w.Name, parentName)
		if o == nil {
			w.ID = orNew(w.ID)
			pl.upserts[3] = append(pl.upserts[3], Change{Action: Create, Kind: KindFederatedCredential, Name: name,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.CreateFederatedCredential(ctx, w)
					return err
				}})
			continue
		}
		pl.sameID(cp+".id", w.ID, o.ID)
		w.ID, w.Name, w.ParentClientID = o.ID, o.Name, o.ParentClientID
		if d := diffObjects(credView(*o), credView(w)); len(d) > 0 {
			pl.upserts[3] = append(pl.upserts[3], Change{Action: Update, Kind: KindFederatedCredential, Name: name, Diff: d,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.UpdateFederatedCredential(ctx, w.TenantID, w.ParentClientID, w.Name, func(x *directory.FederatedCredential) error {
						x.Issuer = w.Issuer
						x.Subject = w.Subject
						x.ClaimsMatchingExpression = w.ClaimsMatchingExpression
						x.Audiences = w.Audiences
						x.Description = w.Description
						return nil
					})
					return err
				}})
		}
	}
	if pl.prune {
		for i, o := range olds {
			if !used[i] {
				pl.deleteCredential(o, parentName)
			}
		}
	}
}

// pruneCredentials deletes the credentials of a parent that is deleted.
func (pl *planner) pruneCredentials(olds []directory.FederatedCredential, parentName string) {
	for _, o := range olds {
		pl.deleteCredential(o, parentName)
	}
}

func (pl *planner) deleteCredential(o directory.FederatedCredential, parentName string) {
	if pl.keep(KindFederatedCredential, strings.ToLower(o.ParentClientID+"/"+o.Name), fmt.Sprintf("%q of %s", o.Name, parentName)) {
		return
	}
	pl.deletes[1] = append(pl.deletes[1], Change{Action: Delete, Kind: KindFederatedCredential, Name: fmt.Sprintf("%q of %s", o.Name, parentName),
		do: func(ctx context.Context, s store.DirectoryStore) error {
			return ignoreNotFound(s.DeleteFederatedCredential(ctx, o.TenantID, o.ParentClientID, o.Name))
		}})
}

// resolver finds assignment principals and resources by the names a
// document uses, through maps built once (a tenant's assignments are
// resolved in time linear in their number, not in assignments ×
// identities).
type resolver struct {
	apps []directory.Application
	mis  []directory.ManagedIdentity
	// lower-cased client id, principal id and name → identities.
	miKeys map[string][]int
	// principal id → identity, service principal id → application.
	miByPrincipal  map[string]int
	appBySP        map[string]int
	appByID        map[string]int // lower-cased appId
	appByName      map[string][]int
	appByURI       map[string][]int // lower-cased identifier URI
	appPrincipalCI map[string][]int // lower-cased appId or service principal id
}

func newResolver(apps []directory.Application, mis []directory.ManagedIdentity) *resolver {
	r := &resolver{apps: apps, mis: mis, miKeys: map[string][]int{}, miByPrincipal: map[string]int{}, appBySP: map[string]int{},
		appByID: map[string]int{}, appByName: map[string][]int{}, appByURI: map[string][]int{}, appPrincipalCI: map[string][]int{}}
	add := func(m map[string][]int, k string, i int) {
		if l := m[k]; len(l) == 0 || l[len(l)-1] != i {
			m[k] = append(l, i)
		}
	}
	for i, m := range mis {
		for _, k := range []string{m.ClientID, m.PrincipalID, m.Name} {
			add(r.miKeys, strings.ToLower(k), i)
		}
		r.miByPrincipal[strings.ToLower(m.PrincipalID)] = i
	}
	for i, a := range apps {
		r.appBySP[strings.ToLower(a.ServicePrincipalID)] = i
		if _, dup := r.appByID[strings.ToLower(a.AppID)]; !dup {
			r.appByID[strings.ToLower(a.AppID)] = i
		}
		add(r.appByName, a.DisplayName, i)
		for _, u := range a.IdentifierURIs {
			add(r.appByURI, strings.ToLower(u), i)
		}
		add(r.appPrincipalCI, strings.ToLower(a.AppID), i)
		add(r.appPrincipalCI, strings.ToLower(a.ServicePrincipalID), i)
	}
	return r
}

// principal returns the service principal id and a readable name.
func (r *resolver) principal(p string) (id, name, problem string) {
	type hit struct{ id, name string }
	var hits []hit
	lp := strings.ToLower(p)
	for _, i := range r.miKeys[lp] {
		hits = append(hits, hit{r.mis[i].PrincipalID, r.mis[i].Name})
	}
	seen := map[int]bool{}
	for _, i := range append(append([]int(nil), r.appPrincipalCI[lp]...), r.appByName[p]...) {
		if !seen[i] {
			seen[i] = true
			hits = append(hits, hit{r.apps[i].ServicePrincipalID, r.apps[i].DisplayName})
		}
	}
	switch len(hits) {
	case 0:
		return "", "", "names no managed identity (by name, client id or principal id) or application (by display name, appId or service principal id) of this tenant"
	case 1:
		return hits[0].id, hits[0].name, ""
	default:
		return "", "", fmt.Sprintf("is ambiguous: it names %d identities or applications; use a client id or appId", len(hits))
	}
}

func (r *resolver) resource(s string) (*directory.Application, string) {
	if i, ok := r.appByID[strings.ToLower(s)]; ok {
		return &r.apps[i], ""
	}
	hits := r.appByURI[strings.ToLower(s)]
	if len(hits) == 0 {
		hits = r.appByName[s]
	}
	switch len(hits) {
	case 0:
		return nil, "names no application of this tenant (by identifier URI, appId or display name)"
	case 1:
		return &r.apps[hits[0]], ""
	default:
		return nil, fmt.Sprintf("is ambiguous: it names %d applications; use an appId", len(hits))
	}
}

func resName(a directory.Application) string {
	if len(a.IdentifierURIs) > 0 {
		return a.IdentifierURIs[0]
	}
	return a.DisplayName
}

func (r *resolver) describe(g directory.AppRoleAssignment) string {
	p, res, role := g.PrincipalID, g.ResourceAppID, g.AppRoleID
	if i, ok := r.miByPrincipal[strings.ToLower(g.PrincipalID)]; ok {
		p = r.mis[i].Name
	}
	if i, ok := r.appBySP[strings.ToLower(g.PrincipalID)]; ok {
		p = r.apps[i].DisplayName
	}
	if i, ok := r.appByID[strings.ToLower(g.ResourceAppID)]; ok {
		a := r.apps[i]
		res = resName(a)
		for _, x := range a.AppRoles {
			if strings.EqualFold(x.ID, g.AppRoleID) {
				role = x.Value
			}
		}
	}
	return fmt.Sprintf("%s → %s %s", p, res, role)
}

// Views of the mutable fields, for diffs.
type appViewT struct {
	DisplayName                 string              `json:"displayName"`
	IdentifierURIs              []string            `json:"identifierUris"`
	AppRoles                    []directory.AppRole `json:"appRoles"`
	RequestedAccessTokenVersion int                 `json:"requestedAccessTokenVersion"`
}

func appView(a directory.Application) appViewT {
	return appViewT{a.DisplayName, a.IdentifierURIs, a.AppRoles, a.RequestedAccessTokenVersion}
}

type miViewT struct {
	Location string            `json:"location"`
	Tags     map[string]string `json:"tags"`
}

func miView(m directory.ManagedIdentity) miViewT { return miViewT{m.Location, m.Tags} }

type credViewT struct {
	Issuer                   string                              `json:"issuer"`
	Subject                  string                              `json:"subject"`
	ClaimsMatchingExpression *directory.ClaimsMatchingExpression `json:"claimsMatchingExpression"`
	Audiences                []string                            `json:"audiences"`
	Description              string                              `json:"description"`
}

func credView(f directory.FederatedCredential) credViewT {
	return credViewT{f.Issuer, f.Subject, f.ClaimsMatchingExpression, f.Audiences, f.Description}
}

func diff(old, new, field string) []string {
	if old == new {
		return nil
	}
	return []string{fmt.Sprintf("%s: %q → %q", field, old, new)}
}

// diffObjects compares two views field by field (as JSON, where null, [] and
// {} are all "empty") and returns "field: old → new" lines.
func diffObjects(old, new any) []string {
	om, nm := toMap(old), toMap(new)
	keys := make([]string, 0, len(om))
	for k := range om {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		o, n := normJSON(om[k]), normJSON(nm[k])
		if !bytes.Equal(o, n) {
			out = append(out, fmt.Sprintf("%s: %s → %s", k, o, n))
		}
	}
	return out
}

func toMap(v any) map[string]json.RawMessage {
	b, _ := json.Marshal(v) // views hold only JSON-safe types
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m
}

func normJSON(r json.RawMessage) []byte {
	switch string(r) {
	case "", "null", "[]", "{}", `""`, "0":
		return []byte("(none)")
	}
	return r
}
