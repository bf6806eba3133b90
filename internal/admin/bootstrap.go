package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// Fixed ids of the admin application's roles, so they are the same in every
// tenant and installation. The first two are Microsoft Graph's ids for the
// roles of the same names; the third is Azure's built-in role definition id
// of Managed Identity Contributor.
const (
	RoleIDReadWriteAll               = "19dbc75e-c2e2-444c-a770-ec69d8559fc7"
	RoleIDReadAll                    = "7ab1d382-f21e-4acd-a863-ba3e13f7da61"
	RoleIDManagedIdentityContributor = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"
)

// The admin identity that Bootstrap creates.
const (
	BootstrapIdentityName  = "wif-admin"
	BootstrapResourceGroup = "wif-system"
	BootstrapCredential    = "bootstrap-admin"
)

// AdminRoles are the app roles of the admin application.
func AdminRoles() []directory.AppRole {
	app := []string{directory.MemberTypeApplication}
	return []directory.AppRole{
		{ID: RoleIDReadWriteAll, Value: RoleReadWriteAll, DisplayName: "Read and write the whole directory", AllowedMemberTypes: app, IsEnabled: true},
		{ID: RoleIDReadAll, Value: RoleReadAll, DisplayName: "Read the whole directory", AllowedMemberTypes: app, IsEnabled: true},
		{ID: RoleIDManagedIdentityContributor, Value: RoleManagedIdentityContributor, DisplayName: "Manage managed identities and their federated credentials in this tenant", AllowedMemberTypes: app, IsEnabled: true},
	}
}

// EnsureAdminApp makes sure tenant tid has the admin resource application
// (identifier URI api://wif-admin, the three admin roles) and returns it.
// It is idempotent: an existing application keeps its ids, and missing
// roles are added.
func EnsureAdminApp(ctx context.Context, s store.DirectoryStore, tid string) (directory.Application, error) {
	apps, err := s.ListApplications(ctx, tid)
	if err != nil {
		return directory.Application{}, fmt.Errorf("list applications of tenant %s: %w", tid, err)
	}
	for _, a := range apps {
		if !slices.ContainsFunc(a.IdentifierURIs, func(u string) bool { return strings.EqualFold(u, AdminResource) }) {
			continue
		}
		missing := false
		for _, want := range AdminRoles() {
			missing = missing || !slices.ContainsFunc(a.AppRoles, func(r directory.AppRole) bool { return r.Value == want.Value })
		}
		if !missing {
			return a, nil
		}
		return s.UpdateApplication(ctx, tid, a.AppID, func(a *directory.Application) error {
			for _, want := range AdminRoles() {
				if !slices.ContainsFunc(a.AppRoles, func(r directory.AppRole) bool { return r.Value == want.Value }) {
					a.AppRoles = append(a.AppRoles, want)
				}
			}
			return nil
		})
	}
	a, err := s.CreateApplication(ctx, directory.Application{TenantID: tid, AppID: directory.NewID(), ObjectID: directory.NewID(),
		ServicePrincipalID: directory.NewID(), DisplayName: AdminAppName, IdentifierURIs: []string{AdminResource}, AppRoles: AdminRoles()})
	if err != nil {
		return directory.Application{}, fmt.Errorf("create the admin application in tenant %s: %w", tid, err)
	}
	return a, nil
}

// ErrBootstrapTenant: Bootstrap was given no tenant and the store does not
// hold exactly one.
var ErrBootstrapTenant = errors.New("name the tenant the admin identity belongs to")

// Bootstrap idempotently sets up the first administrator of tenant tid (or,
// when tid is empty, of the store's only tenant): the admin application,
// a managed identity wif-admin (resource group wif-system) with a federated
// credential trusting issuer and subject, and its Directory.ReadWrite.All
// role. It creates the tenant if absent. A workload whose tokens come from
// issuer for subject can then exchange them, as the returned identity's
// client id, for an admin token (scope api://wif-admin/.default). Make tid
// the TokenAuthorizer's OperatorTenant for that admin to manage every
// tenant; otherwise it administers tid alone.
func Bootstrap(ctx context.Context, s store.DirectoryStore, tid, issuer, subject string) (directory.ManagedIdentity, error) {
	// Replicas starting together bootstrap at once; a step another did
	// first fails with ErrAlreadyExists, and the next round finds it done.
	for attempt := 1; ; attempt++ {
		mi, err := bootstrap(ctx, s, tid, issuer, subject)
		if err == nil || attempt == 5 || !(errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrConflict)) {
			return mi, err
		}
	}
}

func bootstrap(ctx context.Context, s store.DirectoryStore, tid, issuer, subject string) (directory.ManagedIdentity, error) {
	var none directory.ManagedIdentity
	if tid == "" {
		ts, err := s.ListTenants(ctx)
		if err != nil {
			return none, fmt.Errorf("bootstrap admin: list tenants: %w", err)
		}
		if len(ts) != 1 {
			return none, fmt.Errorf("bootstrap admin: the store holds %d tenants: %w", len(ts), ErrBootstrapTenant)
		}
		tid = ts[0].ID
	}
	tid = directory.CanonicalID(tid)
	if _, err := s.GetTenant(ctx, tid); errors.Is(err, store.ErrNotFound) {
		if _, err := s.CreateTenant(ctx, directory.Tenant{ID: tid, DisplayName: "wif"}); err != nil {
			return none, fmt.Errorf("bootstrap admin: create tenant %s: %w", tid, err)
		}
	} else if err != nil {
		return none, fmt.Errorf("bootstrap admin: %w", err)
	}
	app, err := EnsureAdminApp(ctx, s, tid)
	if err != nil {
		return none, fmt.Errorf("bootstrap admin: %w", err)
	}
	ref := store.IdentityRef{SubscriptionID: apply.DefaultSubscriptionID, ResourceGroup: BootstrapResourceGroup, Name: BootstrapIdentityName}
	mi, err := s.GetManagedIdentity(ctx, tid, ref)
	if errors.Is(err, store.ErrNotFound) {
		mi, err = s.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: tid, SubscriptionID: ref.SubscriptionID,
			ResourceGroup: ref.ResourceGroup, Name: ref.Name, ClientID: directory.NewID(), PrincipalID: directory.NewID()})
	}
	if err != nil {
		return none, fmt.Errorf("bootstrap admin: identity %s: %w", ref.Name, err)
	}
	cred, err := s.GetFederatedCredential(ctx, tid, mi.ClientID, BootstrapCredential)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = s.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: tid, ParentKind: directory.ParentManagedIdentity,
			ParentClientID: mi.ClientID, ID: directory.NewID(), Name: BootstrapCredential, Issuer: issuer, Subject: subject,
			Audiences: []string{directory.DefaultAudience}})
	case err == nil && (cred.Issuer != issuer || cred.Subject != subject):
		_, err = s.UpdateFederatedCredential(ctx, tid, mi.ClientID, BootstrapCredential, func(f *directory.FederatedCredential) error {
			f.Issuer, f.Subject, f.ClaimsMatchingExpression = issuer, subject, nil
			return nil
		})
	}
	if err != nil {
		return none, fmt.Errorf("bootstrap admin: credential %s: %w", BootstrapCredential, err)
	}
	var roleID string
	for _, r := range app.AppRoles {
		if r.Value == RoleReadWriteAll {
			roleID = r.ID
		}
	}
	gs, err := s.ListAppRoleAssignments(ctx, tid, store.AssignmentFilter{PrincipalID: mi.PrincipalID, ResourceAppID: app.AppID})
	if err != nil {
		return none, fmt.Errorf("bootstrap admin: %w", err)
	}
	if !slices.ContainsFunc(gs, func(g directory.AppRoleAssignment) bool { return strings.EqualFold(g.AppRoleID, roleID) }) {
		if _, err := s.CreateAppRoleAssignment(ctx, directory.AppRoleAssignment{TenantID: tid, ID: directory.NewID(),
			PrincipalID: mi.PrincipalID, ResourceAppID: app.AppID, AppRoleID: roleID}); err != nil {
			return none, fmt.Errorf("bootstrap admin: assign %s: %w", RoleReadWriteAll, err)
		}
	}
	return mi, nil
}

// ProtectAdminAccess returns an apply.Options.Keep function that keeps, from
// --prune, what the admin API's own access rests on: the admin applications
// (identifier URI api://wif-admin) that someone holds a role of, those app
// role assignments, the identities and applications holding them, their
// federated credentials, and the tenants that contain them. So no document, however
// incomplete, can lock every administrator out; remove such objects with
// explicit DELETE calls instead.
func ProtectAdminAccess(snap store.Snapshot) func(apply.Kind, string) bool {
	keep := map[apply.Kind]map[string]bool{}
	add := func(k apply.Kind, key string) {
		if keep[k] == nil {
			keep[k] = map[string]bool{}
		}
		keep[k][strings.ToLower(key)] = true
	}
	adminApps := map[string]directory.Application{}
	for _, a := range snap.Applications {
		if slices.ContainsFunc(a.IdentifierURIs, func(u string) bool { return strings.EqualFold(u, AdminResource) }) {
			adminApps[strings.ToLower(a.AppID)] = a
		}
	}
	// An admin app matters once someone holds one of its roles.
	principals := map[string]bool{}
	for _, g := range snap.AppRoleAssignments {
		if a, ok := adminApps[strings.ToLower(g.ResourceAppID)]; ok {
			add(apply.KindAppRoleAssignment, g.ID)
			add(apply.KindApplication, a.AppID)
			add(apply.KindTenant, a.TenantID)
			principals[strings.ToLower(g.PrincipalID)] = true
		}
	}
	parents := map[string]bool{}
	for _, m := range snap.ManagedIdentities {
		if principals[strings.ToLower(m.PrincipalID)] {
			add(apply.KindManagedIdentity, m.ClientID)
			parents[strings.ToLower(m.ClientID)] = true
		}
	}
	for _, a := range snap.Applications {
		if principals[strings.ToLower(a.ServicePrincipalID)] {
			add(apply.KindApplication, a.AppID)
			parents[strings.ToLower(a.AppID)] = true
		}
	}
	for _, f := range snap.Credentials {
		if parents[strings.ToLower(f.ParentClientID)] {
			add(apply.KindFederatedCredential, f.ParentClientID+"/"+f.Name)
		}
	}
	return func(k apply.Kind, key string) bool { return keep[k][strings.ToLower(key)] }
}
