// Package storetest is the conformance suite every store.Store backend
// passes. A backend's test wires it up in a few lines:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunTests(t, func(t *testing.T) store.Store { return newStore(t) })
//		storetest.RunConcurrencyTests(t, func(t *testing.T) store.Store { return newStore(t) })
//	}
//
// Each subtest gets a fresh, empty store from newStore, which should close
// it in t.Cleanup.
//
// Besides the rules in store's package doc, the suite pins down choices the
// interface leaves open, so that every backend makes them alike:
//   - a credential name already used by the parent is ErrAlreadyExists; the
//     other ValidateSet rules (20 per parent, unique issuer+subject) are
//     validation errors (directory.ErrInvalid);
//   - identity names are unique per tenant, subscription and resource group;
//     client ids (application appId, identity clientId) and principal ids
//     (service principal id, identity principalId) share one namespace each;
//   - identifier URIs are unique per tenant ignoring case and trailing '/';
//   - an assignment's principal must exist in the tenant (ErrNotFound);
//   - changing an id, a name or a parent in an update is a validation error;
//   - List methods fail with ErrNotFound when the tenant (or the parent) does
//     not exist, and sort: tenants by id, applications by appId, identities by
//     subscription, resource group and name, credentials by name,
//     assignments by id, signing keys oldest first;
//   - audit Since is inclusive, Until exclusive; a malformed cursor is a
//     validation error; Limit defaults to 100 and is capped at 1000.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// NewStoreFunc returns a fresh, empty store for one subtest.
type NewStoreFunc func(t *testing.T) store.Store

type subtest struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// RunTests runs the conformance suite: one subtest per behaviour, each
// against a fresh store. The subtests run in parallel, so newStore must be
// safe to call concurrently (stores must not share state). Update closures in the suite read the store but
// never write to it (a write from inside a closure may deadlock).
func RunTests(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []subtest{
		{"Tenants", testTenants},
		{"Applications", testApplications},
		{"ApplicationUniqueness", testApplicationUniqueness},
		{"ManagedIdentities", testManagedIdentities},
		{"ManagedIdentityUniqueness", testManagedIdentityUniqueness},
		{"FederatedCredentials", testFederatedCredentials},
		{"FederatedCredentialSetRules", testCredentialSetRules},
		{"AppRoleAssignments", testAppRoleAssignments},
		{"DeleteIdentityCascades", testDeleteIdentityCascades},
		{"DeleteApplicationCascades", testDeleteApplicationCascades},
		{"DeleteTenantCascades", testDeleteTenantCascades},
		{"UpdateClosure", testUpdateClosure},
		{"ValidationOnUpdate", testValidationOnUpdate},
		{"Revision", testRevision},
		{"Snapshot", testSnapshot},
		{"SnapshotConsistency", testSnapshotConsistency},
		{"SigningKeys", testSigningKeys},
		{"TimeZones", testTimeZones},
		{"Audit", testAudit},
		{"AuditPagination", testAuditPagination},
		{"AuditPrune", testAuditPrune},
		{"CallerCannotMutateStoredState", testNoAliasing},
		{"ContextCancelled", testContextCancelled},
		{"DeletePreconditions", testDeletePreconditions},
		{"RemovingAppRoleRemovesItsAssignments", testRemoveRole},
		{"CredentialUsage", testCredentialUsage},
		{"IssuerStatus", testIssuerStatus},
		{"TrustedIssuers", testTrustedIssuers},
		{"IssuerSets", testIssuerSets},
		{"ResourceGroups", testResourceGroups},
		{"IdentityKeysetPaging", testIdentityPaging},
		{"ChangeLog", testChangeLog},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

// RunConcurrencyTests runs the tests that race many goroutines against one
// store: compare-and-swap updates that must lose no increment, and the
// per-parent credential limit that must hold under concurrent creates.
func RunConcurrencyTests(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []subtest{
		{"CASLosesNoIncrements", testConcurrentCAS},
		{"CredentialLimitUnderRace", testConcurrentCredentialLimit},
		{"SameNameUnderRace", testConcurrentSameName},
		{"DeletePreconditionUnderRace", testDeletePreconditionRace},
		{"FirstSigningKeyUnderRace", testConcurrentFirstKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// ---- helpers

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// result holds a call's value and error until a test checks them.
type result[T any] struct {
	v   T
	err error
}

func val[T any](v T, err error) result[T] { return result[T]{v, err} }

// must fails the test on an error and returns the value.
func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatalf("unexpected error: %v", r.err)
	}
	return r.v
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one matching %v", target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one matching %v", err, target)
	}
}

// upper returns a GUID in upper case, to check ids compare case-insensitively.
func upper(id string) string { return strings.ToUpper(id) }

func newID() string { return directory.NewID() }

func mkTenant(t *testing.T, s store.Store) directory.Tenant {
	t.Helper()
	return val(s.CreateTenant(ctxT(t), directory.Tenant{ID: newID(), DisplayName: "Contoso"})).must(t)
}

func appFixture(tenantID, name string, uris ...string) directory.Application {
	return directory.Application{
		TenantID: tenantID, AppID: newID(), ObjectID: newID(), ServicePrincipalID: newID(),
		DisplayName: name, IdentifierURIs: uris, RequestedAccessTokenVersion: 2,
		AppRoles: []directory.AppRole{
			{ID: newID(), Value: "Data.Read", DisplayName: "Read data", Description: "Reads.", AllowedMemberTypes: []string{directory.MemberTypeApplication}, IsEnabled: true},
			{ID: newID(), Value: "Data.Write", AllowedMemberTypes: []string{directory.MemberTypeApplication, directory.MemberTypeUser}, IsEnabled: true},
			{ID: newID(), Value: "Disabled", AllowedMemberTypes: []string{directory.MemberTypeApplication}, IsEnabled: false},
			{ID: newID(), Value: "UsersOnly", AllowedMemberTypes: []string{directory.MemberTypeUser}, IsEnabled: true},
		},
	}
}

func mkApp(t *testing.T, s store.Store, tenantID, name string, uris ...string) directory.Application {
	t.Helper()
	return val(s.CreateApplication(ctxT(t), appFixture(tenantID, name, uris...))).must(t)
}

const testSub = "00000000-0000-0000-0000-0000000000aa"

func miFixture(tenantID, name string) directory.ManagedIdentity {
	return directory.ManagedIdentity{
		TenantID: tenantID, SubscriptionID: testSub, ResourceGroup: "rg-One", Name: name,
		Location: "westeurope", ClientID: newID(), PrincipalID: newID(),
		Tags: map[string]string{"team": "payments"},
	}
}

func mkMI(t *testing.T, s store.Store, tenantID, name string) directory.ManagedIdentity {
	t.Helper()
	return val(s.CreateManagedIdentity(ctxT(t), miFixture(tenantID, name))).must(t)
}

func ref(m directory.ManagedIdentity) store.IdentityRef {
	return store.IdentityRef{SubscriptionID: m.SubscriptionID, ResourceGroup: m.ResourceGroup, Name: m.Name}
}

const testIssuer = "https://issuer.example/tenant/"

func credFixture(tenantID string, kind directory.ParentKind, parent, name, subject string) directory.FederatedCredential {
	return directory.FederatedCredential{
		TenantID: tenantID, ParentKind: kind, ParentClientID: parent, ID: newID(), Name: name,
		Issuer: testIssuer, Subject: subject, Audiences: []string{directory.DefaultAudience},
		Description: "for " + subject,
	}
}

func mkCred(t *testing.T, s store.Store, m directory.ManagedIdentity, name string) directory.FederatedCredential {
	t.Helper()
	return val(s.CreateFederatedCredential(ctxT(t), credFixture(m.TenantID, directory.ParentManagedIdentity, m.ClientID, name, "system:serviceaccount:default:"+name))).must(t)
}

func assignFixture(tenantID, principalID string, res directory.Application, role int) directory.AppRoleAssignment {
	return directory.AppRoleAssignment{TenantID: tenantID, ID: newID(), PrincipalID: principalID, ResourceAppID: res.AppID, AppRoleID: res.AppRoles[role].ID}
}

func rev(t *testing.T, s store.Store) int64 {
	t.Helper()
	return val(s.Revision(ctxT(t))).must(t)
}

func checkMeta(t *testing.T, what string, m directory.Meta, version int64) {
	t.Helper()
	if m.Version != version {
		t.Errorf("%s: version %d, want %d", what, m.Version, version)
	}
	if m.CreatedAt.IsZero() || m.UpdatedAt.IsZero() {
		t.Errorf("%s: createdAt %v, updatedAt %v: want both set", what, m.CreatedAt, m.UpdatedAt)
	}
	if m.CreatedAt.Location() != time.UTC || m.UpdatedAt.Location() != time.UTC {
		t.Errorf("%s: times in %v/%v, want UTC", what, m.CreatedAt.Location(), m.UpdatedAt.Location())
	}
	if version == 1 && !m.CreatedAt.Equal(m.UpdatedAt) {
		t.Errorf("%s: new object has createdAt %v != updatedAt %v", what, m.CreatedAt, m.UpdatedAt)
	}
	if m.UpdatedAt.Before(m.CreatedAt) {
		t.Errorf("%s: updatedAt %v before createdAt %v", what, m.UpdatedAt, m.CreatedAt)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// ---- tenants

func testTenants(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	id := newID()
	got := val(s.CreateTenant(ctx, directory.Tenant{ID: upper(id), DisplayName: "Contoso"})).must(t)
	if got.ID != id {
		t.Errorf("created tenant id %q, want lower-case %q", got.ID, id)
	}
	checkMeta(t, "created tenant", got.Meta, 1)

	read := val(s.GetTenant(ctx, upper(id))).must(t)
	equal(t, "GetTenant", read, got)

	wantErr(t, func() error {
		_, err := s.CreateTenant(ctx, directory.Tenant{ID: id, DisplayName: "Again"})
		return err
	}(), store.ErrAlreadyExists)
	_, err := s.GetTenant(ctx, newID())
	wantErr(t, err, store.ErrNotFound)

	for _, bad := range []directory.Tenant{
		{ID: "contoso", DisplayName: "x"},
		{ID: newID(), DisplayName: ""},
		{ID: newID(), DisplayName: strings.Repeat("x", directory.MaxDisplayNameLen+1)},
	} {
		_, err := s.CreateTenant(ctx, bad)
		wantErr(t, err, directory.ErrInvalid)
	}

	second := val(s.CreateTenant(ctx, directory.Tenant{ID: newID(), DisplayName: "Fabrikam"})).must(t)
	list := val(s.ListTenants(ctx)).must(t)
	want := []directory.Tenant{got, second}
	if want[0].ID > want[1].ID {
		want[0], want[1] = want[1], want[0]
	}
	equal(t, "ListTenants", list, want)

	upd := val(s.UpdateTenant(ctx, upper(id), func(t *directory.Tenant) error {
		t.DisplayName = "Contoso Ltd"
		return nil
	})).must(t)
	if upd.DisplayName != "Contoso Ltd" {
		t.Errorf("updated display name %q", upd.DisplayName)
	}
	checkMeta(t, "updated tenant", upd.Meta, 2)
	if !upd.CreatedAt.Equal(got.CreatedAt) || !upd.UpdatedAt.After(got.UpdatedAt) {
		t.Errorf("update: createdAt %v→%v updatedAt %v→%v: want createdAt kept, updatedAt later", got.CreatedAt, upd.CreatedAt, got.UpdatedAt, upd.UpdatedAt)
	}
	equal(t, "GetTenant after update", val(s.GetTenant(ctx, id)).must(t), upd)

	_, err = s.UpdateTenant(ctx, newID(), func(*directory.Tenant) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateTenant(ctx, id, func(t *directory.Tenant) error { t.ID = newID(); return nil })
	wantErr(t, err, directory.ErrInvalid)

	noErr(t, s.DeleteTenant(ctx, upper(id)))
	_, err = s.GetTenant(ctx, id)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteTenant(ctx, id), store.ErrNotFound)
	equal(t, "ListTenants after delete", val(s.ListTenants(ctx)).must(t), []directory.Tenant{second})
}

// ---- applications

func testApplications(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	in := appFixture(upper(ten.ID), "provider-api", "api://provider-api", "https://contoso.example/api")
	want := in
	in.AppID, in.ObjectID, in.ServicePrincipalID = upper(in.AppID), upper(in.ObjectID), upper(in.ServicePrincipalID)
	in.AppRoles = slices.Clone(in.AppRoles)
	in.AppRoles[0].ID = upper(in.AppRoles[0].ID)

	got := val(s.CreateApplication(ctx, in)).must(t)
	checkMeta(t, "created application", got.Meta, 1)
	want.TenantID = ten.ID
	want.Meta = got.Meta
	equal(t, "created application (ids lower-cased, nested fields kept)", got, want)
	equal(t, "GetApplication", val(s.GetApplication(ctx, upper(ten.ID), upper(got.AppID))).must(t), got)

	_, err := s.GetApplication(ctx, ten.ID, newID())
	wantErr(t, err, store.ErrNotFound)
	other := mkTenant(t, s)
	_, err = s.GetApplication(ctx, other.ID, got.AppID)
	wantErr(t, err, store.ErrNotFound)

	_, err = s.CreateApplication(ctx, appFixture(newID(), "orphan"))
	wantErr(t, err, store.ErrNotFound)

	bad := appFixture(ten.ID, "bad", "not a uri")
	_, err = s.CreateApplication(ctx, bad)
	wantErr(t, err, directory.ErrInvalid)
	var ve *directory.ValidationError
	if !errors.As(err, &ve) || ve.Field != "identifierUris[0]" {
		t.Errorf("error %v: want a ValidationError for identifierUris[0]", err)
	}
	bad = appFixture(ten.ID, "bad")
	bad.AppID = "not-a-guid"
	_, err = s.CreateApplication(ctx, bad)
	wantErr(t, err, directory.ErrInvalid)

	second := mkApp(t, s, ten.ID, "client-app")
	list := val(s.ListApplications(ctx, upper(ten.ID))).must(t)
	wantList := []directory.Application{got, second}
	if wantList[0].AppID > wantList[1].AppID {
		wantList[0], wantList[1] = wantList[1], wantList[0]
	}
	equal(t, "ListApplications", list, wantList)
	if l := val(s.ListApplications(ctx, other.ID)).must(t); len(l) != 0 {
		t.Errorf("ListApplications of an empty tenant: %d apps", len(l))
	}
	_, err = s.ListApplications(ctx, newID())
	wantErr(t, err, store.ErrNotFound)

	upd := val(s.UpdateApplication(ctx, ten.ID, upper(got.AppID), func(a *directory.Application) error {
		a.DisplayName = "provider-api-v2"
		a.IdentifierURIs = append(a.IdentifierURIs, "api://provider-api-v2")
		a.AppRoles = append(a.AppRoles, directory.AppRole{ID: newID(), Value: "Data.Admin", AllowedMemberTypes: []string{directory.MemberTypeApplication}, IsEnabled: true})
		a.RequestedAccessTokenVersion = 1
		return nil
	})).must(t)
	checkMeta(t, "updated application", upd.Meta, 2)
	if upd.DisplayName != "provider-api-v2" || len(upd.IdentifierURIs) != 3 || len(upd.AppRoles) != 5 || upd.RequestedAccessTokenVersion != 1 {
		t.Errorf("update not applied: %+v", upd)
	}
	equal(t, "GetApplication after update", val(s.GetApplication(ctx, ten.ID, got.AppID)).must(t), upd)

	for field, change := range map[string]func(*directory.Application){
		"appId":              func(a *directory.Application) { a.AppID = newID() },
		"id":                 func(a *directory.Application) { a.ObjectID = newID() },
		"servicePrincipalId": func(a *directory.Application) { a.ServicePrincipalID = newID() },
		"tenantId":           func(a *directory.Application) { a.TenantID = other.ID },
	} {
		_, err := s.UpdateApplication(ctx, ten.ID, got.AppID, func(a *directory.Application) error { change(a); return nil })
		wantErr(t, err, directory.ErrInvalid)
		if !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("changing %s: error %v, want a ValidationError naming %s", field, err, field)
		}
	}
	_, err = s.UpdateApplication(ctx, ten.ID, newID(), func(*directory.Application) error { return nil })
	wantErr(t, err, store.ErrNotFound)

	noErr(t, s.DeleteApplication(ctx, upper(ten.ID), upper(got.AppID)))
	_, err = s.GetApplication(ctx, ten.ID, got.AppID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteApplication(ctx, ten.ID, got.AppID), store.ErrNotFound)
	wantErr(t, s.DeleteApplication(ctx, other.ID, second.AppID), store.ErrNotFound)
}

func testApplicationUniqueness(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	other := mkTenant(t, s)
	first := mkApp(t, s, ten.ID, "first", "api://first", "https://contoso.example/first")
	mi := mkMI(t, s, ten.ID, "identity")

	cases := []struct {
		name   string
		change func(a *directory.Application)
		want   error
	}{
		{"same appId", func(a *directory.Application) { a.AppID = upper(first.AppID) }, store.ErrAlreadyExists},
		{"same object id", func(a *directory.Application) { a.ObjectID = first.ObjectID }, store.ErrAlreadyExists},
		{"same service principal id", func(a *directory.Application) { a.ServicePrincipalID = first.ServicePrincipalID }, store.ErrAlreadyExists},
		{"appId is an identity's clientId", func(a *directory.Application) { a.AppID = mi.ClientID }, store.ErrAlreadyExists},
		{"service principal id is an identity's principalId", func(a *directory.Application) { a.ServicePrincipalID = mi.PrincipalID }, store.ErrAlreadyExists},
		{"same identifier URI", func(a *directory.Application) { a.IdentifierURIs = []string{"api://first"} }, store.ErrAlreadyExists},
		{"identifier URI differing in case", func(a *directory.Application) { a.IdentifierURIs = []string{"API://First"} }, store.ErrAlreadyExists},
		{"identifier URI differing by a trailing slash", func(a *directory.Application) { a.IdentifierURIs = []string{"https://contoso.example/first/"} }, store.ErrAlreadyExists},
		{"same appId in another tenant", func(a *directory.Application) { a.TenantID = other.ID; a.AppID = first.AppID }, store.ErrAlreadyExists},
		{"same identifier URI in another tenant", func(a *directory.Application) { a.TenantID = other.ID; a.IdentifierURIs = []string{"api://first"} }, nil},
		{"different URI", func(a *directory.Application) { a.IdentifierURIs = []string{"api://second"} }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rev(t, s)
			a := appFixture(ten.ID, "second")
			tc.change(&a)
			_, err := s.CreateApplication(ctx, a)
			if tc.want == nil {
				noErr(t, err)
				return
			}
			wantErr(t, err, tc.want)
			if after := rev(t, s); after != before {
				t.Errorf("failed create moved the revision from %d to %d", before, after)
			}
		})
	}

	// An update may not take another application's identifier URI either,
	// but may keep or re-case its own.
	_, err := s.UpdateApplication(ctx, ten.ID, first.AppID, func(a *directory.Application) error {
		a.IdentifierURIs = append(a.IdentifierURIs, "api://second")
		return nil
	})
	wantErr(t, err, store.ErrAlreadyExists)
	upd := val(s.UpdateApplication(ctx, ten.ID, first.AppID, func(a *directory.Application) error {
		a.IdentifierURIs = []string{"API://FIRST", "https://contoso.example/first"}
		return nil
	})).must(t)
	equal(t, "identifier URIs after re-casing", upd.IdentifierURIs, []string{"API://FIRST", "https://contoso.example/first"})
	// A URI given up by one application is free for another.
	val(s.UpdateApplication(ctx, ten.ID, first.AppID, func(a *directory.Application) error {
		a.IdentifierURIs = []string{"api://renamed"}
		return nil
	})).must(t)
	a := appFixture(ten.ID, "third", "https://contoso.example/first")
	val(s.CreateApplication(ctx, a)).must(t)
}

// ---- managed identities

func testManagedIdentities(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	in := miFixture(upper(ten.ID), "Demo-Identity")
	in.ClientID, in.PrincipalID, in.SubscriptionID = upper(in.ClientID), upper(in.PrincipalID), upper(in.SubscriptionID)
	got := val(s.CreateManagedIdentity(ctx, in)).must(t)
	checkMeta(t, "created identity", got.Meta, 1)
	want := miFixture(ten.ID, "Demo-Identity")
	want.ClientID, want.PrincipalID, want.Meta = strings.ToLower(in.ClientID), strings.ToLower(in.PrincipalID), got.Meta
	equal(t, "created identity (ids lower-cased, name and group as given)", got, want)

	for _, r := range []store.IdentityRef{
		ref(got),
		{SubscriptionID: upper(got.SubscriptionID), ResourceGroup: "RG-ONE", Name: "demo-identity"},
	} {
		equal(t, fmt.Sprintf("GetManagedIdentity(%+v)", r), val(s.GetManagedIdentity(ctx, upper(ten.ID), r)).must(t), got)
	}
	equal(t, "GetManagedIdentityByClientID", val(s.GetManagedIdentityByClientID(ctx, upper(ten.ID), upper(got.ClientID))).must(t), got)

	other := mkTenant(t, s)
	for _, tc := range []struct {
		tenant string
		ref    store.IdentityRef
	}{
		{ten.ID, store.IdentityRef{SubscriptionID: got.SubscriptionID, ResourceGroup: "rg-two", Name: got.Name}},
		{ten.ID, store.IdentityRef{SubscriptionID: newID(), ResourceGroup: got.ResourceGroup, Name: got.Name}},
		{ten.ID, store.IdentityRef{SubscriptionID: got.SubscriptionID, ResourceGroup: got.ResourceGroup, Name: "other"}},
		{other.ID, ref(got)},
	} {
		_, err := s.GetManagedIdentity(ctx, tc.tenant, tc.ref)
		wantErr(t, err, store.ErrNotFound)
	}
	_, err := s.GetManagedIdentityByClientID(ctx, other.ID, got.ClientID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetManagedIdentityByClientID(ctx, ten.ID, newID())
	wantErr(t, err, store.ErrNotFound)

	_, err = s.CreateManagedIdentity(ctx, miFixture(newID(), "orphan"))
	wantErr(t, err, store.ErrNotFound)
	for _, change := range []func(*directory.ManagedIdentity){
		func(m *directory.ManagedIdentity) { m.Name = "a b" },
		func(m *directory.ManagedIdentity) { m.Name = "ab" },
		func(m *directory.ManagedIdentity) { m.ResourceGroup = "" },
		func(m *directory.ManagedIdentity) { m.ClientID = "x" },
		func(m *directory.ManagedIdentity) { m.SubscriptionID = "sub" },
	} {
		m := miFixture(ten.ID, "valid-name")
		change(&m)
		_, err := s.CreateManagedIdentity(ctx, m)
		wantErr(t, err, directory.ErrInvalid)
	}

	// Listing and its filters.
	m2 := miFixture(ten.ID, "alpha")
	m2.ResourceGroup = "rg-two"
	id2 := val(s.CreateManagedIdentity(ctx, m2)).must(t)
	m3 := miFixture(ten.ID, "beta")
	m3.SubscriptionID = "00000000-0000-0000-0000-0000000000bb"
	id3 := val(s.CreateManagedIdentity(ctx, m3)).must(t)
	m4 := miFixture(ten.ID, "aardvark")
	id4 := val(s.CreateManagedIdentity(ctx, m4)).must(t)
	mkMI(t, s, other.ID, "elsewhere")
	for _, tc := range []struct {
		filter store.IdentityFilter
		want   []directory.ManagedIdentity
	}{
		{store.IdentityFilter{}, []directory.ManagedIdentity{id4, got, id2, id3}},
		{store.IdentityFilter{SubscriptionID: upper(testSub)}, []directory.ManagedIdentity{id4, got, id2}},
		{store.IdentityFilter{SubscriptionID: testSub, ResourceGroup: "RG-one"}, []directory.ManagedIdentity{id4, got}},
		{store.IdentityFilter{ResourceGroup: "rg-two"}, []directory.ManagedIdentity{id2}},
		{store.IdentityFilter{ResourceGroup: "rg-none"}, []directory.ManagedIdentity{}},
	} {
		list := val(s.ListManagedIdentities(ctx, upper(ten.ID), tc.filter)).must(t)
		if len(list) == 0 && len(tc.want) == 0 {
			continue
		}
		equal(t, fmt.Sprintf("ListManagedIdentities(%+v)", tc.filter), list, tc.want)
	}
	_, err = s.ListManagedIdentities(ctx, newID(), store.IdentityFilter{})
	wantErr(t, err, store.ErrNotFound)

	// Update.
	upd := val(s.UpdateManagedIdentity(ctx, ten.ID, store.IdentityRef{SubscriptionID: testSub, ResourceGroup: "RG-ONE", Name: "DEMO-IDENTITY"}, func(m *directory.ManagedIdentity) error {
		m.Tags["env"] = "prod"
		m.Location = "northeurope"
		return nil
	})).must(t)
	checkMeta(t, "updated identity", upd.Meta, 2)
	equal(t, "tags after update", upd.Tags, map[string]string{"team": "payments", "env": "prod"})
	equal(t, "GetManagedIdentity after update", val(s.GetManagedIdentity(ctx, ten.ID, ref(got))).must(t), upd)
	upd = val(s.UpdateManagedIdentity(ctx, ten.ID, ref(got), func(m *directory.ManagedIdentity) error {
		m.Tags = nil
		return nil
	})).must(t)
	if len(upd.Tags) != 0 {
		t.Errorf("tags after clearing: %v", upd.Tags)
	}
	for field, change := range map[string]func(*directory.ManagedIdentity){
		"name":           func(m *directory.ManagedIdentity) { m.Name = "renamed" },
		"resourceGroup":  func(m *directory.ManagedIdentity) { m.ResourceGroup = "rg-two" },
		"subscriptionId": func(m *directory.ManagedIdentity) { m.SubscriptionID = newID() },
		"clientId":       func(m *directory.ManagedIdentity) { m.ClientID = newID() },
		"principalId":    func(m *directory.ManagedIdentity) { m.PrincipalID = newID() },
	} {
		_, err := s.UpdateManagedIdentity(ctx, ten.ID, ref(got), func(m *directory.ManagedIdentity) error { change(m); return nil })
		wantErr(t, err, directory.ErrInvalid)
		var ve *directory.ValidationError
		if !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("changing %s: error %v, want a ValidationError naming %s", field, err, field)
		}
	}
	_, err = s.UpdateManagedIdentity(ctx, ten.ID, store.IdentityRef{SubscriptionID: testSub, ResourceGroup: "rg-one", Name: "missing"}, func(*directory.ManagedIdentity) error { return nil })
	wantErr(t, err, store.ErrNotFound)

	// Delete.
	noErr(t, s.DeleteManagedIdentity(ctx, upper(ten.ID), store.IdentityRef{SubscriptionID: upper(testSub), ResourceGroup: "rg-one", Name: "demo-IDENTITY"}))
	_, err = s.GetManagedIdentityByClientID(ctx, ten.ID, got.ClientID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteManagedIdentity(ctx, ten.ID, ref(got)), store.ErrNotFound)
	wantErr(t, s.DeleteManagedIdentity(ctx, other.ID, ref(id2)), store.ErrNotFound)
}

func testManagedIdentityUniqueness(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	other := mkTenant(t, s)
	first := mkMI(t, s, ten.ID, "demo")
	app := mkApp(t, s, ten.ID, "app")
	cases := []struct {
		name   string
		change func(*directory.ManagedIdentity)
		want   error
	}{
		{"same name", func(m *directory.ManagedIdentity) {}, store.ErrAlreadyExists},
		{"name differing in case", func(m *directory.ManagedIdentity) { m.Name = "DEMO" }, store.ErrAlreadyExists},
		{"resource group differing in case", func(m *directory.ManagedIdentity) { m.ResourceGroup = "RG-ONE" }, store.ErrAlreadyExists},
		{"same clientId", func(m *directory.ManagedIdentity) { m.Name = "x-1"; m.ClientID = upper(first.ClientID) }, store.ErrAlreadyExists},
		{"same principalId", func(m *directory.ManagedIdentity) { m.Name = "x-2"; m.PrincipalID = first.PrincipalID }, store.ErrAlreadyExists},
		{"clientId is an application's appId", func(m *directory.ManagedIdentity) { m.Name = "x-3"; m.ClientID = app.AppID }, store.ErrAlreadyExists},
		{"principalId is a service principal id", func(m *directory.ManagedIdentity) { m.Name = "x-4"; m.PrincipalID = app.ServicePrincipalID }, store.ErrAlreadyExists},
		{"same name in another resource group", func(m *directory.ManagedIdentity) { m.ResourceGroup = "rg-two" }, nil},
		{"same name in another subscription", func(m *directory.ManagedIdentity) { m.SubscriptionID = newID() }, nil},
		{"same name in another tenant", func(m *directory.ManagedIdentity) { m.TenantID = other.ID }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := miFixture(ten.ID, "demo")
			tc.change(&m)
			before := rev(t, s)
			_, err := s.CreateManagedIdentity(ctx, m)
			if tc.want == nil {
				noErr(t, err)
				return
			}
			wantErr(t, err, tc.want)
			if after := rev(t, s); after != before {
				t.Errorf("failed create moved the revision from %d to %d", before, after)
			}
		})
	}
}

// ---- federated credentials

func testFederatedCredentials(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "demo")
	app := mkApp(t, s, ten.ID, "client")

	in := credFixture(upper(ten.ID), directory.ParentManagedIdentity, upper(mi.ClientID), "kubernetes-demo", "system:serviceaccount:default:demo")
	want := in
	in.ID = upper(in.ID)
	got := val(s.CreateFederatedCredential(ctx, in)).must(t)
	checkMeta(t, "created credential", got.Meta, 1)
	want.TenantID, want.ParentClientID, want.Meta = ten.ID, mi.ClientID, got.Meta
	equal(t, "created credential (ids lower-cased)", got, want)
	equal(t, "GetFederatedCredential", val(s.GetFederatedCredential(ctx, upper(ten.ID), upper(mi.ClientID), "KUBERNETES-demo")).must(t), got)

	flex := credFixture(ten.ID, directory.ParentApplication, app.AppID, "github-main", "")
	flex.ClaimsMatchingExpression = &directory.ClaimsMatchingExpression{Value: "claims['sub'] matches 'repo:contoso/*:ref:refs/heads/main'", LanguageVersion: 1}
	flex.Audiences = []string{"api://custom"}
	gotFlex := val(s.CreateFederatedCredential(ctx, flex)).must(t)
	flex.Meta = gotFlex.Meta
	equal(t, "flexible credential on an application", gotFlex, flex)

	b := mkCred(t, s, mi, "a-first")
	equal(t, "ListFederatedCredentials (sorted by name)", val(s.ListFederatedCredentials(ctx, ten.ID, upper(mi.ClientID))).must(t), []directory.FederatedCredential{b, got})
	equal(t, "ListFederatedCredentials of the application", val(s.ListFederatedCredentials(ctx, ten.ID, app.AppID)).must(t), []directory.FederatedCredential{gotFlex})
	app2 := mkApp(t, s, ten.ID, "no-creds")
	if l := val(s.ListFederatedCredentials(ctx, ten.ID, app2.AppID)).must(t); len(l) != 0 {
		t.Errorf("credentials of a new application: %v", l)
	}
	_, err := s.ListFederatedCredentials(ctx, ten.ID, newID())
	wantErr(t, err, store.ErrNotFound)

	// The parent must exist, with the kind named, in the tenant named.
	other := mkTenant(t, s)
	for name, f := range map[string]directory.FederatedCredential{
		"missing identity":           credFixture(ten.ID, directory.ParentManagedIdentity, newID(), "x-cred", "s"),
		"missing application":        credFixture(ten.ID, directory.ParentApplication, newID(), "x-cred", "s"),
		"identity named as app":      credFixture(ten.ID, directory.ParentApplication, mi.ClientID, "x-cred", "s"),
		"app named as identity":      credFixture(ten.ID, directory.ParentManagedIdentity, app.AppID, "x-cred", "s"),
		"identity of another tenant": credFixture(other.ID, directory.ParentManagedIdentity, mi.ClientID, "x-cred", "s"),
	} {
		_, err := s.CreateFederatedCredential(ctx, f)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: error %v, want ErrNotFound", name, err)
		}
	}
	for name, change := range map[string]func(*directory.FederatedCredential){
		"http issuer":     func(f *directory.FederatedCredential) { f.Issuer = "http://issuer.example" },
		"two audiences":   func(f *directory.FederatedCredential) { f.Audiences = []string{"a", "b"} },
		"no subject":      func(f *directory.FederatedCredential) { f.Subject = "" },
		"short name":      func(f *directory.FederatedCredential) { f.Name = "ab" },
		"bad parent kind": func(f *directory.FederatedCredential) { f.ParentKind = "user" },
		"bad expression": func(f *directory.FederatedCredential) {
			f.Subject = ""
			f.ClaimsMatchingExpression = &directory.ClaimsMatchingExpression{Value: "claims[", LanguageVersion: 1}
		},
	} {
		f := credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "valid-name", "subject-x")
		change(&f)
		_, err := s.CreateFederatedCredential(ctx, f)
		if !errors.Is(err, directory.ErrInvalid) {
			t.Errorf("%s: error %v, want directory.ErrInvalid", name, err)
		}
	}

	// Update: subject, issuer, audiences, description may change.
	upd := val(s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, "kubernetes-demo", func(f *directory.FederatedCredential) error {
		f.Subject = "system:serviceaccount:prod:demo"
		f.Issuer = "https://other-issuer.example"
		f.Description = ""
		return nil
	})).must(t)
	checkMeta(t, "updated credential", upd.Meta, 2)
	if upd.Subject != "system:serviceaccount:prod:demo" || upd.Issuer != "https://other-issuer.example" || upd.Description != "" {
		t.Errorf("update not applied: %+v", upd)
	}
	equal(t, "GetFederatedCredential after update", val(s.GetFederatedCredential(ctx, ten.ID, mi.ClientID, "kubernetes-demo")).must(t), upd)
	for field, change := range map[string]func(*directory.FederatedCredential){
		"name":           func(f *directory.FederatedCredential) { f.Name = "renamed" },
		"parentClientId": func(f *directory.FederatedCredential) { f.ParentClientID = app.AppID },
		"parentKind":     func(f *directory.FederatedCredential) { f.ParentKind = directory.ParentApplication },
		"id":             func(f *directory.FederatedCredential) { f.ID = newID() },
		"tenantId":       func(f *directory.FederatedCredential) { f.TenantID = other.ID },
	} {
		_, err := s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, "kubernetes-demo", func(f *directory.FederatedCredential) error { change(f); return nil })
		wantErr(t, err, directory.ErrInvalid)
		var ve *directory.ValidationError
		if !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("changing %s: error %v, want a ValidationError naming %s", field, err, field)
		}
	}
	_, err = s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, "missing", func(*directory.FederatedCredential) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetFederatedCredential(ctx, ten.ID, app.AppID, "kubernetes-demo")
	wantErr(t, err, store.ErrNotFound)

	noErr(t, s.DeleteFederatedCredential(ctx, upper(ten.ID), upper(mi.ClientID), "Kubernetes-Demo"))
	_, err = s.GetFederatedCredential(ctx, ten.ID, mi.ClientID, "kubernetes-demo")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteFederatedCredential(ctx, ten.ID, mi.ClientID, "kubernetes-demo"), store.ErrNotFound)
	equal(t, "credentials after delete", val(s.ListFederatedCredentials(ctx, ten.ID, mi.ClientID)).must(t), []directory.FederatedCredential{b})
	// The name is free again.
	mkCred(t, s, mi, "kubernetes-demo")
}

func testCredentialSetRules(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "demo")
	mi2 := mkMI(t, s, ten.ID, "other")
	first := mkCred(t, s, mi, "cred-00")

	// Same issuer and subject on the same parent: invalid; on another
	// parent: fine.
	dup := credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "cred-dup", first.Subject)
	_, err := s.CreateFederatedCredential(ctx, dup)
	wantErr(t, err, directory.ErrInvalid)
	dup.ParentClientID = mi2.ClientID
	val(s.CreateFederatedCredential(ctx, dup)).must(t)
	// Same subject, other issuer: fine.
	otherIss := credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "cred-other-iss", first.Subject)
	otherIss.Issuer = "https://another.example"
	val(s.CreateFederatedCredential(ctx, otherIss)).must(t)
	noErr(t, s.DeleteFederatedCredential(ctx, ten.ID, mi.ClientID, otherIss.Name))

	// Name taken (in any case): ErrAlreadyExists.
	_, err = s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "CRED-00", "fresh-subject"))
	wantErr(t, err, store.ErrAlreadyExists)
	// Id taken: ErrAlreadyExists.
	sameID := credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "cred-same-id", "another-subject")
	sameID.ID = upper(first.ID)
	_, err = s.CreateFederatedCredential(ctx, sameID)
	wantErr(t, err, store.ErrAlreadyExists)

	// Up to 20 per parent.
	for i := 1; i < directory.MaxCredentialsPerParent; i++ {
		mkCred(t, s, mi, fmt.Sprintf("cred-%02d", i))
	}
	before := rev(t, s)
	_, err = s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "cred-21", "subject-21"))
	wantErr(t, err, directory.ErrInvalid)
	if after := rev(t, s); after != before {
		t.Errorf("refused 21st credential moved the revision from %d to %d", before, after)
	}
	if n := len(val(s.ListFederatedCredentials(ctx, ten.ID, mi.ClientID)).must(t)); n != directory.MaxCredentialsPerParent {
		t.Errorf("parent has %d credentials, want %d", n, directory.MaxCredentialsPerParent)
	}
	// A full parent may still update its credentials.
	val(s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, "cred-05", func(f *directory.FederatedCredential) error {
		f.Description = "still fine"
		return nil
	})).must(t)
	// An update may not make issuer+subject clash with a sibling.
	_, err = s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, "cred-05", func(f *directory.FederatedCredential) error {
		f.Subject = first.Subject
		return nil
	})
	wantErr(t, err, directory.ErrInvalid)
	got := val(s.GetFederatedCredential(ctx, ten.ID, mi.ClientID, "cred-05")).must(t)
	if got.Subject == first.Subject || got.Version != 2 {
		t.Errorf("refused update was applied: %+v", got)
	}
	// After a delete there is room again.
	noErr(t, s.DeleteFederatedCredential(ctx, ten.ID, mi.ClientID, "cred-07"))
	mkCred(t, s, mi, "cred-21")
}

// ---- app role assignments

func testAppRoleAssignments(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	res := mkApp(t, s, ten.ID, "resource", "api://resource")
	res2 := mkApp(t, s, ten.ID, "resource-2", "api://resource-2")
	mi := mkMI(t, s, ten.ID, "caller")
	client := mkApp(t, s, ten.ID, "client")

	in := assignFixture(upper(ten.ID), upper(mi.PrincipalID), res, 0)
	in.ID, in.ResourceAppID, in.AppRoleID = upper(in.ID), upper(in.ResourceAppID), upper(in.AppRoleID)
	a1 := val(s.CreateAppRoleAssignment(ctx, in)).must(t)
	checkMeta(t, "created assignment", a1.Meta, 1)
	want := directory.AppRoleAssignment{TenantID: ten.ID, ID: strings.ToLower(in.ID), PrincipalID: mi.PrincipalID, ResourceAppID: res.AppID, AppRoleID: res.AppRoles[0].ID, Meta: a1.Meta}
	equal(t, "created assignment (ids lower-cased)", a1, want)

	a2 := val(s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, mi.PrincipalID, res, 1))).must(t)
	a3 := val(s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, client.ServicePrincipalID, res, 0))).must(t)
	a4 := val(s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, mi.PrincipalID, res2, 0))).must(t)

	sorted := func(as ...directory.AppRoleAssignment) []directory.AppRoleAssignment {
		slices.SortFunc(as, func(a, b directory.AppRoleAssignment) int { return strings.Compare(a.ID, b.ID) })
		return as
	}
	for _, tc := range []struct {
		filter store.AssignmentFilter
		want   []directory.AppRoleAssignment
	}{
		{store.AssignmentFilter{}, sorted(a1, a2, a3, a4)},
		{store.AssignmentFilter{PrincipalID: upper(mi.PrincipalID)}, sorted(a1, a2, a4)},
		{store.AssignmentFilter{ResourceAppID: upper(res.AppID)}, sorted(a1, a2, a3)},
		{store.AssignmentFilter{PrincipalID: mi.PrincipalID, ResourceAppID: res2.AppID}, sorted(a4)},
		{store.AssignmentFilter{PrincipalID: newID()}, nil},
	} {
		got := val(s.ListAppRoleAssignments(ctx, upper(ten.ID), tc.filter)).must(t)
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		equal(t, fmt.Sprintf("ListAppRoleAssignments(%+v)", tc.filter), got, tc.want)
	}
	_, err := s.ListAppRoleAssignments(ctx, newID(), store.AssignmentFilter{})
	wantErr(t, err, store.ErrNotFound)

	other := mkTenant(t, s)
	otherMI := mkMI(t, s, other.ID, "elsewhere")
	cases := []struct {
		name string
		a    directory.AppRoleAssignment
		want error
	}{
		{"duplicate principal, resource and role", assignFixture(ten.ID, upper(mi.PrincipalID), res, 0), store.ErrAlreadyExists},
		{"duplicate id", func() directory.AppRoleAssignment {
			a := assignFixture(ten.ID, client.ServicePrincipalID, res, 1)
			a.ID = upper(a1.ID)
			return a
		}(), store.ErrAlreadyExists},
		{"missing resource", func() directory.AppRoleAssignment {
			a := assignFixture(ten.ID, mi.PrincipalID, res, 0)
			a.ResourceAppID = newID()
			return a
		}(), store.ErrNotFound},
		{"resource in another tenant", assignFixture(other.ID, otherMI.PrincipalID, res, 0), store.ErrNotFound},
		{"missing principal", assignFixture(ten.ID, newID(), res, 0), store.ErrNotFound},
		{"principal in another tenant", assignFixture(ten.ID, otherMI.PrincipalID, res, 0), store.ErrNotFound},
		{"role of another application", func() directory.AppRoleAssignment {
			a := assignFixture(ten.ID, client.ServicePrincipalID, res, 0)
			a.AppRoleID = res2.AppRoles[1].ID
			return a
		}(), directory.ErrInvalid},
		{"disabled role", assignFixture(ten.ID, client.ServicePrincipalID, res, 2), directory.ErrInvalid},
		{"role for users only", assignFixture(ten.ID, client.ServicePrincipalID, res, 3), directory.ErrInvalid},
		{"malformed principal id", func() directory.AppRoleAssignment {
			a := assignFixture(ten.ID, "principal", res, 0)
			return a
		}(), directory.ErrInvalid},
		{"malformed resource id", func() directory.AppRoleAssignment {
			a := assignFixture(ten.ID, mi.PrincipalID, res, 0)
			a.ResourceAppID = "api://resource"
			return a
		}(), directory.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rev(t, s)
			_, err := s.CreateAppRoleAssignment(ctx, tc.a)
			wantErr(t, err, tc.want)
			if after := rev(t, s); after != before {
				t.Errorf("failed create moved the revision from %d to %d", before, after)
			}
		})
	}

	wantErr(t, s.DeleteAppRoleAssignment(ctx, other.ID, a1.ID), store.ErrNotFound)
	noErr(t, s.DeleteAppRoleAssignment(ctx, upper(ten.ID), upper(a1.ID)))
	wantErr(t, s.DeleteAppRoleAssignment(ctx, ten.ID, a1.ID), store.ErrNotFound)
	equal(t, "assignments after delete", val(s.ListAppRoleAssignments(ctx, ten.ID, store.AssignmentFilter{})).must(t), sorted(a2, a3, a4))
	// The (principal, resource, role) triple is free again.
	val(s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, mi.PrincipalID, res, 0))).must(t)
}

// ---- cascading deletes

// world is a small directory in one tenant, with a second tenant beside it
// that cascades must not touch.
type world struct {
	ten, other   directory.Tenant
	res, client  directory.Application
	mi, mi2      directory.ManagedIdentity
	otherMI      directory.ManagedIdentity
	otherRes     directory.Application
	miCreds      []directory.FederatedCredential
	clientCreds  []directory.FederatedCredential
	assignMI     directory.AppRoleAssignment // mi → res
	assignMI2    directory.AppRoleAssignment // mi2 → res
	assignClient directory.AppRoleAssignment // client → res
	assignRes    directory.AppRoleAssignment // mi2 → client (client as resource)
	otherAssign  directory.AppRoleAssignment
}

func buildWorld(t *testing.T, s store.Store) world {
	ctx := ctxT(t)
	var w world
	w.ten = mkTenant(t, s)
	w.other = mkTenant(t, s)
	w.res = mkApp(t, s, w.ten.ID, "resource", "api://resource")
	w.client = mkApp(t, s, w.ten.ID, "client", "api://client")
	w.mi = mkMI(t, s, w.ten.ID, "demo")
	w.mi2 = mkMI(t, s, w.ten.ID, "demo-2")
	w.miCreds = []directory.FederatedCredential{mkCred(t, s, w.mi, "one"), mkCred(t, s, w.mi, "two")}
	w.clientCreds = []directory.FederatedCredential{val(s.CreateFederatedCredential(ctx,
		credFixture(w.ten.ID, directory.ParentApplication, w.client.AppID, "github", "repo:contoso/app:ref:refs/heads/main"))).must(t)}
	mkCred(t, s, w.mi2, "three")
	w.assignMI = val(s.CreateAppRoleAssignment(ctx, assignFixture(w.ten.ID, w.mi.PrincipalID, w.res, 0))).must(t)
	w.assignMI2 = val(s.CreateAppRoleAssignment(ctx, assignFixture(w.ten.ID, w.mi2.PrincipalID, w.res, 0))).must(t)
	w.assignClient = val(s.CreateAppRoleAssignment(ctx, assignFixture(w.ten.ID, w.client.ServicePrincipalID, w.res, 1))).must(t)
	w.assignRes = val(s.CreateAppRoleAssignment(ctx, assignFixture(w.ten.ID, w.mi2.PrincipalID, w.client, 0))).must(t)
	w.otherMI = mkMI(t, s, w.other.ID, "demo")
	mkCred(t, s, w.otherMI, "one")
	w.otherRes = mkApp(t, s, w.other.ID, "resource", "api://resource")
	w.otherAssign = val(s.CreateAppRoleAssignment(ctx, assignFixture(w.other.ID, w.otherMI.PrincipalID, w.otherRes, 0))).must(t)
	return w
}

func snapshotIDs(t *testing.T, s store.Store) (creds, assigns map[string]bool) {
	t.Helper()
	snap := val(s.Snapshot(ctxT(t))).must(t)
	creds, assigns = map[string]bool{}, map[string]bool{}
	for _, f := range snap.Credentials {
		creds[f.ID] = true
	}
	for _, a := range snap.AppRoleAssignments {
		assigns[a.ID] = true
	}
	return creds, assigns
}

func testDeleteIdentityCascades(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	w := buildWorld(t, s)
	before := rev(t, s)
	noErr(t, s.DeleteManagedIdentity(ctx, w.ten.ID, ref(w.mi)))
	if after := rev(t, s); after <= before {
		t.Errorf("revision %d after delete, was %d", after, before)
	}
	_, err := s.ListFederatedCredentials(ctx, w.ten.ID, w.mi.ClientID)
	wantErr(t, err, store.ErrNotFound)
	creds, assigns := snapshotIDs(t, s)
	for _, f := range w.miCreds {
		if creds[f.ID] {
			t.Errorf("credential %s of the deleted identity survived", f.Name)
		}
	}
	if assigns[w.assignMI.ID] {
		t.Error("assignment of the deleted identity survived")
	}
	if len(creds) != 3 || len(assigns) != 4 {
		t.Errorf("after delete: %d credentials (want 3), %d assignments (want 4)", len(creds), len(assigns))
	}
	// A new identity may reuse the name, and the old credential names.
	m := miFixture(w.ten.ID, "demo")
	nm := val(s.CreateManagedIdentity(ctx, m)).must(t)
	mkCred(t, s, nm, "one")
	if l := val(s.ListAppRoleAssignments(ctx, w.ten.ID, store.AssignmentFilter{PrincipalID: nm.PrincipalID})).must(t); len(l) != 0 {
		t.Errorf("new identity inherited assignments: %v", l)
	}
}

func testDeleteApplicationCascades(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	w := buildWorld(t, s)
	// Deleting the client removes its credentials, the assignments it holds
	// as principal and those that name it as resource.
	noErr(t, s.DeleteApplication(ctx, w.ten.ID, w.client.AppID))
	creds, assigns := snapshotIDs(t, s)
	if creds[w.clientCreds[0].ID] {
		t.Error("credential of the deleted application survived")
	}
	if assigns[w.assignClient.ID] || assigns[w.assignRes.ID] {
		t.Error("assignment naming the deleted application survived")
	}
	if !assigns[w.assignMI.ID] || !assigns[w.assignMI2.ID] || !assigns[w.otherAssign.ID] {
		t.Error("an unrelated assignment was deleted")
	}
	if len(creds) != 4 {
		t.Errorf("%d credentials left, want 4", len(creds))
	}
	// Deleting the resource removes every assignment to it.
	noErr(t, s.DeleteApplication(ctx, w.ten.ID, w.res.AppID))
	_, assigns = snapshotIDs(t, s)
	if len(assigns) != 1 || !assigns[w.otherAssign.ID] {
		t.Errorf("after deleting the resource, assignments %v: want only the other tenant's", assigns)
	}
	// The identifier URI is free again.
	mkApp(t, s, w.ten.ID, "resource-again", "api://resource")
}

func testDeleteTenantCascades(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	w := buildWorld(t, s)
	noErr(t, s.DeleteTenant(ctx, w.ten.ID))
	snap := val(s.Snapshot(ctx)).must(t)
	if len(snap.Tenants) != 1 || snap.Tenants[0].ID != w.other.ID {
		t.Errorf("tenants after delete: %v", snap.Tenants)
	}
	if len(snap.Applications) != 1 || len(snap.ManagedIdentities) != 1 || len(snap.Credentials) != 1 || len(snap.AppRoleAssignments) != 1 {
		t.Errorf("after deleting a tenant: %d apps, %d identities, %d credentials, %d assignments; want 1 each (the other tenant's)",
			len(snap.Applications), len(snap.ManagedIdentities), len(snap.Credentials), len(snap.AppRoleAssignments))
	}
	for _, a := range snap.Applications {
		if a.TenantID != w.other.ID {
			t.Errorf("application %s of the deleted tenant survived", a.AppID)
		}
	}
	// Every id of the deleted tenant is free again.
	noErr(t, func() error { _, err := s.CreateTenant(ctx, w.ten); return err }())
	res := w.res
	val(s.CreateApplication(ctx, res)).must(t)
	val(s.CreateManagedIdentity(ctx, w.mi)).must(t)
	val(s.CreateFederatedCredential(ctx, w.miCreds[0])).must(t)
	val(s.CreateAppRoleAssignment(ctx, w.assignMI)).must(t)
}

// ---- updates

var errAbort = errors.New("closure refused")

func testUpdateClosure(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "demo")
	f := mkCred(t, s, mi, "cred")
	app := mkApp(t, s, ten.ID, "app")

	before := rev(t, s)
	_, err := s.UpdateTenant(ctx, ten.ID, func(t *directory.Tenant) error { t.DisplayName = "changed"; return errAbort })
	wantErr(t, err, errAbort)
	_, err = s.UpdateApplication(ctx, ten.ID, app.AppID, func(a *directory.Application) error { a.DisplayName = "changed"; return errAbort })
	wantErr(t, err, errAbort)
	_, err = s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error { m.Location = "changed"; return errAbort })
	wantErr(t, err, errAbort)
	_, err = s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, f.Name, func(f *directory.FederatedCredential) error { f.Subject = "changed"; return errAbort })
	wantErr(t, err, errAbort)
	if after := rev(t, s); after != before {
		t.Errorf("aborted updates moved the revision from %d to %d", before, after)
	}
	equal(t, "tenant after aborted update", val(s.GetTenant(ctx, ten.ID)).must(t), ten)
	equal(t, "application after aborted update", val(s.GetApplication(ctx, ten.ID, app.AppID)).must(t), app)
	equal(t, "identity after aborted update", val(s.GetManagedIdentity(ctx, ten.ID, ref(mi))).must(t), mi)
	equal(t, "credential after aborted update", val(s.GetFederatedCredential(ctx, ten.ID, mi.ClientID, f.Name)).must(t), f)

	// The closure sees the current value; the store owns the metadata.
	last := mi
	for i := 2; i <= 4; i++ {
		got := val(s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error {
			if m.Version != last.Version || m.Tags["n"] != last.Tags["n"] {
				return fmt.Errorf("closure saw version %d tags %v, want version %d tags %v", m.Version, m.Tags, last.Version, last.Tags)
			}
			m.Tags["n"] = strconv.Itoa(i)
			m.Version = 100
			m.CreatedAt = time.Unix(0, 0)
			m.UpdatedAt = time.Unix(0, 0)
			return nil
		})).must(t)
		checkMeta(t, "identity update", got.Meta, int64(i))
		if !got.CreatedAt.Equal(mi.CreatedAt) || !got.UpdatedAt.After(last.UpdatedAt) {
			t.Errorf("update %d: createdAt %v (want %v), updatedAt %v (want after %v)", i, got.CreatedAt, mi.CreatedAt, got.UpdatedAt, last.UpdatedAt)
		}
		last = got
	}
	if last.Tags["n"] != "4" {
		t.Errorf("tags after 3 updates: %v", last.Tags)
	}

	// A closure may read the store (but must not write to it).
	got := val(s.UpdateApplication(ctx, ten.ID, app.AppID, func(a *directory.Application) error {
		cur, err := s.GetManagedIdentity(ctx, ten.ID, ref(mi))
		if err != nil {
			return err
		}
		a.DisplayName = "beside " + cur.Name
		return nil
	})).must(t)
	if got.DisplayName != "beside demo" || got.Version != 2 {
		t.Errorf("update whose closure reads the store: %+v", got)
	}
}

func testValidationOnUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "demo")
	f := mkCred(t, s, mi, "cred")
	app := mkApp(t, s, ten.ID, "app")
	before := rev(t, s)

	_, err := s.UpdateTenant(ctx, ten.ID, func(t *directory.Tenant) error { t.DisplayName = ""; return nil })
	wantErr(t, err, directory.ErrInvalid)
	_, err = s.UpdateApplication(ctx, ten.ID, app.AppID, func(a *directory.Application) error {
		a.AppRoles[1].Value = a.AppRoles[0].Value
		return nil
	})
	wantErr(t, err, directory.ErrInvalid)
	_, err = s.UpdateApplication(ctx, ten.ID, app.AppID, func(a *directory.Application) error {
		a.RequestedAccessTokenVersion = 3
		return nil
	})
	wantErr(t, err, directory.ErrInvalid)
	_, err = s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error {
		m.Tags = map[string]string{"k": strings.Repeat("v", 300)}
		return nil
	})
	wantErr(t, err, directory.ErrInvalid)
	_, err = s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, f.Name, func(f *directory.FederatedCredential) error {
		f.Audiences = nil
		return nil
	})
	wantErr(t, err, directory.ErrInvalid)
	_, err = s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, f.Name, func(f *directory.FederatedCredential) error {
		f.Issuer = "https://issuer.example/?q=1"
		return nil
	})
	wantErr(t, err, directory.ErrInvalid)

	if after := rev(t, s); after != before {
		t.Errorf("refused updates moved the revision from %d to %d", before, after)
	}
	equal(t, "tenant after refused update", val(s.GetTenant(ctx, ten.ID)).must(t), ten)
	equal(t, "application after refused update", val(s.GetApplication(ctx, ten.ID, app.AppID)).must(t), app)
	equal(t, "identity after refused update", val(s.GetManagedIdentity(ctx, ten.ID, ref(mi))).must(t), mi)
	equal(t, "credential after refused update", val(s.GetFederatedCredential(ctx, ten.ID, mi.ClientID, f.Name)).must(t), f)
}

// ---- revision and snapshot

func testRevision(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	last := rev(t, s)
	if last < 0 {
		t.Fatalf("revision of an empty store is %d", last)
	}
	step := func(what string, changes bool, fn func() error) {
		t.Helper()
		err := fn()
		if changes {
			noErr(t, err)
		}
		now := rev(t, s)
		switch {
		case changes && now <= last:
			t.Errorf("%s: revision %d, want more than %d", what, now, last)
		case !changes && now != last:
			t.Errorf("%s: revision moved from %d to %d, want unchanged", what, last, now)
		}
		last = now
	}
	var ten directory.Tenant
	var app directory.Application
	var mi directory.ManagedIdentity
	var asg directory.AppRoleAssignment
	var err error
	step("create tenant", true, func() error {
		ten, err = s.CreateTenant(ctx, directory.Tenant{ID: newID(), DisplayName: "t"})
		return err
	})
	step("update tenant", true, func() error {
		_, err := s.UpdateTenant(ctx, ten.ID, func(t *directory.Tenant) error { t.DisplayName = "u"; return nil })
		return err
	})
	step("create application", true, func() error { app, err = s.CreateApplication(ctx, appFixture(ten.ID, "a", "api://a")); return err })
	step("update application", true, func() error {
		_, err := s.UpdateApplication(ctx, ten.ID, app.AppID, func(a *directory.Application) error { a.DisplayName = "b"; return nil })
		return err
	})
	step("create identity", true, func() error { mi, err = s.CreateManagedIdentity(ctx, miFixture(ten.ID, "mi-1")); return err })
	step("update identity", true, func() error {
		_, err := s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error { m.Location = "x"; return nil })
		return err
	})
	step("create credential", true, func() error {
		_, err := s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "c-1", "s"))
		return err
	})
	step("update credential", true, func() error {
		_, err := s.UpdateFederatedCredential(ctx, ten.ID, mi.ClientID, "c-1", func(f *directory.FederatedCredential) error { f.Subject = "t"; return nil })
		return err
	})
	step("create assignment", true, func() error {
		asg, err = s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, mi.PrincipalID, app, 0))
		return err
	})

	// Reads, key and audit writes, and refused writes leave it alone.
	step("reads", false, func() error {
		_, err1 := s.GetTenant(ctx, ten.ID)
		_, err2 := s.ListApplications(ctx, ten.ID)
		_, err3 := s.Snapshot(ctx)
		_, err4 := s.ListFederatedCredentials(ctx, ten.ID, mi.ClientID)
		return errors.Join(err1, err2, err3, err4)
	})
	step("signing key", false, func() error {
		return errors.Join(
			s.CreateSigningKey(ctx, store.SigningKey{ID: "k1", Algorithm: "RS256", PrivateKey: []byte{1}, CreatedAt: time.Now()}),
			s.DeleteSigningKey(ctx, "k1"))
	})
	step("audit", false, func() error {
		err := s.AppendAudit(ctx, []store.AuditRecord{{TenantID: ten.ID, Result: store.AuditSuccess}})
		_, err2 := s.PruneAudit(ctx, time.Now().Add(time.Hour))
		return errors.Join(err, err2)
	})
	step("refused writes", false, func() error {
		_, err1 := s.CreateTenant(ctx, ten)
		_, err2 := s.CreateManagedIdentity(ctx, miFixture(ten.ID, "x"))
		err3 := s.DeleteTenant(ctx, newID())
		_, err4 := s.UpdateTenant(ctx, ten.ID, func(*directory.Tenant) error { return errAbort })
		if err1 == nil || err2 == nil || err3 == nil || err4 == nil {
			t.Errorf("refused writes: got errors %v, %v, %v, %v; want all set", err1, err2, err3, err4)
		}
		return nil
	})

	step("delete assignment", true, func() error { return s.DeleteAppRoleAssignment(ctx, ten.ID, asg.ID) })
	step("delete credential", true, func() error { return s.DeleteFederatedCredential(ctx, ten.ID, mi.ClientID, "c-1") })
	step("delete identity", true, func() error { return s.DeleteManagedIdentity(ctx, ten.ID, ref(mi)) })
	step("delete application", true, func() error { return s.DeleteApplication(ctx, ten.ID, app.AppID) })
	step("delete tenant", true, func() error { return s.DeleteTenant(ctx, ten.ID) })
	// Deleting everything does not take the revision back.
	step("create tenant again", true, func() error { _, err := s.CreateTenant(ctx, ten); return err })
}

func testSnapshot(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	empty := val(s.Snapshot(ctx)).must(t)
	if len(empty.Tenants)+len(empty.Applications)+len(empty.ManagedIdentities)+len(empty.Credentials)+len(empty.AppRoleAssignments) != 0 {
		t.Errorf("snapshot of an empty store: %+v", empty)
	}
	if empty.Revision != rev(t, s) {
		t.Errorf("snapshot revision %d, Revision() %d", empty.Revision, rev(t, s))
	}
	w := buildWorld(t, s)
	snap := val(s.Snapshot(ctx)).must(t)
	if snap.Revision != rev(t, s) || snap.Revision <= empty.Revision {
		t.Errorf("snapshot revision %d; Revision() %d; empty store's %d", snap.Revision, rev(t, s), empty.Revision)
	}

	// The snapshot holds exactly what the Get and List methods return, in
	// the same order.
	var tenants []directory.Tenant
	var apps []directory.Application
	var mis []directory.ManagedIdentity
	var creds []directory.FederatedCredential
	var assigns []directory.AppRoleAssignment
	tenants = val(s.ListTenants(ctx)).must(t)
	for _, ten := range tenants {
		apps = append(apps, val(s.ListApplications(ctx, ten.ID)).must(t)...)
		tmis := val(s.ListManagedIdentities(ctx, ten.ID, store.IdentityFilter{})).must(t)
		mis = append(mis, tmis...)
		assigns = append(assigns, val(s.ListAppRoleAssignments(ctx, ten.ID, store.AssignmentFilter{})).must(t)...)
	}
	for _, a := range apps {
		creds = append(creds, val(s.ListFederatedCredentials(ctx, a.TenantID, a.AppID)).must(t)...)
	}
	for _, m := range mis {
		creds = append(creds, val(s.ListFederatedCredentials(ctx, m.TenantID, m.ClientID)).must(t)...)
	}
	slices.SortFunc(creds, func(a, b directory.FederatedCredential) int {
		return strings.Compare(a.TenantID+"/"+a.ParentClientID+"/"+strings.ToLower(a.Name), b.TenantID+"/"+b.ParentClientID+"/"+strings.ToLower(b.Name))
	})
	equal(t, "snapshot tenants", snap.Tenants, tenants)
	equal(t, "snapshot applications", snap.Applications, apps)
	equal(t, "snapshot identities", snap.ManagedIdentities, mis)
	equal(t, "snapshot credentials", snap.Credentials, creds)
	equal(t, "snapshot assignments", snap.AppRoleAssignments, assigns)
	if len(snap.Tenants) != 2 || len(snap.Applications) != 3 || len(snap.ManagedIdentities) != 3 || len(snap.Credentials) != 5 || len(snap.AppRoleAssignments) != 5 {
		t.Errorf("snapshot sizes: %d tenants, %d apps, %d identities, %d credentials, %d assignments; want 2, 3, 3, 5, 5",
			len(snap.Tenants), len(snap.Applications), len(snap.ManagedIdentities), len(snap.Credentials), len(snap.AppRoleAssignments))
	}
	_ = w

	// Snapshots are values: changing one changes neither the store nor the
	// next snapshot.
	snap.Applications[0].AppRoles[0].Value = "mutated"
	snap.ManagedIdentities[0].Tags["team"] = "mutated"
	snap.Credentials[0].Audiences[0] = "mutated"
	again := val(s.Snapshot(ctx)).must(t)
	if again.Applications[0].AppRoles[0].Value == "mutated" || again.ManagedIdentities[0].Tags["team"] == "mutated" || again.Credentials[0].Audiences[0] == "mutated" {
		t.Error("changing a snapshot changed the store")
	}
}

// testSnapshotConsistency races a writer against snapshots: every snapshot
// must show the directory exactly as it was after some write, with the
// revision of that write.
func testSnapshotConsistency(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	base := rev(t, s)
	const rounds = 40
	done := make(chan error, 1)
	go func() {
		// Each round is three writes: create identity i, create its
		// credential, delete the identity (and with it the credential).
		for i := range rounds {
			m := miFixture(ten.ID, fmt.Sprintf("mi-%03d", i))
			if _, err := s.CreateManagedIdentity(ctx, m); err != nil {
				done <- err
				return
			}
			if _, err := s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, m.ClientID, "cred", "sub")); err != nil {
				done <- err
				return
			}
			if err := s.DeleteManagedIdentity(ctx, ten.ID, ref(m)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	check := func(snap store.Snapshot) {
		t.Helper()
		d := snap.Revision - base
		switch len(snap.ManagedIdentities) {
		case 0:
			if len(snap.Credentials) != 0 || d%3 != 0 {
				t.Fatalf("snapshot at revision base+%d: no identity but %d credentials", d, len(snap.Credentials))
			}
		case 1:
			var i int64
			if _, err := fmt.Sscanf(snap.ManagedIdentities[0].Name, "mi-%03d", &i); err != nil {
				t.Fatalf("unexpected identity %q", snap.ManagedIdentities[0].Name)
			}
			want := 3*i + 1 + int64(len(snap.Credentials))
			if len(snap.Credentials) > 1 || d != want {
				t.Fatalf("snapshot at revision base+%d holds identity %d and %d credentials: want revision base+%d", d, i, len(snap.Credentials), want)
			}
			if len(snap.Credentials) == 1 && snap.Credentials[0].ParentClientID != snap.ManagedIdentities[0].ClientID {
				t.Fatalf("credential's parent %s is not in the snapshot", snap.Credentials[0].ParentClientID)
			}
		default:
			t.Fatalf("snapshot holds %d identities, want at most 1", len(snap.ManagedIdentities))
		}
	}
	var last int64
	for finished := false; !finished; {
		select {
		case err := <-done:
			noErr(t, err)
			finished = true
		default:
		}
		snap := val(s.Snapshot(ctx)).must(t)
		if snap.Revision < last {
			t.Fatalf("snapshot revision went back from %d to %d", last, snap.Revision)
		}
		last = snap.Revision
		check(snap)
	}
	if final := val(s.Snapshot(ctx)).must(t); final.Revision != base+3*rounds {
		t.Errorf("final revision base+%d, want base+%d", final.Revision-base, 3*rounds)
	}
}

// ---- signing keys

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		return time.FixedZone("EST", -5*3600)
	}
	return loc
}()

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	base := time.Date(2026, 3, 8, 1, 30, 0, 123456000, newYork) // an hour before a DST change
	mk := func(id string, created time.Time) store.SigningKey {
		return store.SigningKey{
			ID: id, Algorithm: "RS256", PrivateKey: []byte("sealed-" + id), KEKID: "kek-1",
			Certificate: []byte{0x30, 0x82, 0x01, 0x00, 0xff}, CreatedAt: created,
			PublishAt: created, ActivateAt: created.Add(time.Hour), RetireAt: created.Add(48 * time.Hour), ExpireAt: created.Add(72 * time.Hour),
		}
	}
	k2 := mk("key-b", base.Add(time.Hour))
	k1 := mk("key-a", base)
	k3 := mk("key-c", base.Add(2*time.Hour))
	k3.KEKID, k3.RetireAt, k3.ExpireAt = "", time.Time{}, time.Time{}
	for _, k := range []store.SigningKey{k2, k3, k1} {
		noErr(t, s.CreateSigningKey(ctx, k))
	}
	wantErr(t, s.CreateSigningKey(ctx, mk("key-a", base)), store.ErrAlreadyExists)

	got := val(s.ListSigningKeys(ctx)).must(t)
	if len(got) != 3 {
		t.Fatalf("%d keys, want 3", len(got))
	}
	for i, want := range []store.SigningKey{k1, k2, k3} {
		g := got[i]
		if g.ID != want.ID || g.Algorithm != want.Algorithm || g.KEKID != want.KEKID ||
			string(g.PrivateKey) != string(want.PrivateKey) || string(g.Certificate) != string(want.Certificate) {
			t.Errorf("key %d: got %+v, want %+v", i, g, want)
		}
		for _, tm := range []struct {
			name      string
			got, want time.Time
		}{
			{"createdAt", g.CreatedAt, want.CreatedAt}, {"publishAt", g.PublishAt, want.PublishAt},
			{"activateAt", g.ActivateAt, want.ActivateAt}, {"retireAt", g.RetireAt, want.RetireAt},
			{"expireAt", g.ExpireAt, want.ExpireAt},
		} {
			if !tm.got.Equal(tm.want) || tm.got.IsZero() != tm.want.IsZero() {
				t.Errorf("key %s %s: got %v, want %v", want.ID, tm.name, tm.got, tm.want)
			}
			if !tm.got.IsZero() && tm.got.Location() != time.UTC {
				t.Errorf("key %s %s: in %v, want UTC", want.ID, tm.name, tm.got.Location())
			}
		}
	}

	wantErr(t, s.DeleteSigningKey(ctx, "missing"), store.ErrNotFound)
	noErr(t, s.DeleteSigningKey(ctx, "key-b"))
	wantErr(t, s.DeleteSigningKey(ctx, "key-b"), store.ErrNotFound)
	got = val(s.ListSigningKeys(ctx)).must(t)
	if len(got) != 2 || got[0].ID != "key-a" || got[1].ID != "key-c" {
		t.Errorf("keys after delete: %v", got)
	}

	// CreateSigningKeyIf: the check sees every stored key and can refuse.
	refuse := errors.New("a key exists")
	var seen []string
	err := s.CreateSigningKeyIf(ctx, mk("key-d", base.Add(3*time.Hour)), func(ks []store.SigningKey) error {
		for _, k := range ks {
			seen = append(seen, k.ID)
		}
		return refuse
	})
	if !errors.Is(err, refuse) || strings.Join(seen, ",") != "key-a,key-c" {
		t.Errorf("CreateSigningKeyIf refused: %v, check saw %v", err, seen)
	}
	noErr(t, s.CreateSigningKeyIf(ctx, mk("key-d", base.Add(3*time.Hour)), func([]store.SigningKey) error { return nil }))
	wantErr(t, s.CreateSigningKeyIf(ctx, mk("key-d", base), func([]store.SigningKey) error { return nil }), store.ErrAlreadyExists)

	// UpdateSigningKey changes times and the sealed key, not the id.
	newRetire := base.Add(5 * time.Hour)
	upd := val(s.UpdateSigningKey(ctx, "key-a", func(k *store.SigningKey) error {
		k.RetireAt, k.ExpireAt, k.PrivateKey, k.KEKID, k.RevokedAt = newRetire, newRetire, []byte("resealed"), "kek-2", newRetire.In(newYork)
		return nil
	})).must(t)
	if !upd.RetireAt.Equal(newRetire) || string(upd.PrivateKey) != "resealed" || upd.KEKID != "kek-2" || !upd.RevokedAt.Equal(newRetire) || upd.RevokedAt.Location() != time.UTC {
		t.Errorf("UpdateSigningKey returned %+v", upd)
	}
	for _, g := range val(s.ListSigningKeys(ctx)).must(t) {
		if g.ID == "key-a" && (!g.RetireAt.Equal(newRetire) || string(g.PrivateKey) != "resealed" || g.KEKID != "kek-2" || !g.CreatedAt.Equal(k1.CreatedAt) || !g.RevokedAt.Equal(newRetire)) {
			t.Errorf("key-a after update: %+v", g)
		}
	}
	_, err = s.UpdateSigningKey(ctx, "key-a", func(k *store.SigningKey) error { k.ID = "other"; return nil })
	var ve *directory.ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("UpdateSigningKey changing the id: %v, want a validation error", err)
	}
	_, err = s.UpdateSigningKey(ctx, "missing", func(*store.SigningKey) error { return nil })
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateSigningKey(ctx, "key-a", func(*store.SigningKey) error { return refuse })
	if !errors.Is(err, refuse) {
		t.Errorf("UpdateSigningKey with a failing closure: %v", err)
	}
}

// testConcurrentFirstKey races writers that each create a key only if
// none exists, as replicas starting together on an empty store do: exactly
// one may succeed.
func testConcurrentFirstKey(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const n = 8
	var wg sync.WaitGroup
	var created, refused atomic.Int32
	errNone := errors.New("a key exists")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := store.SigningKey{ID: fmt.Sprintf("race-%d", i), Algorithm: "RS256", PrivateKey: []byte("x"), CreatedAt: time.Now(), PublishAt: time.Now()}
			switch err := s.CreateSigningKeyIf(ctx, k, func(ks []store.SigningKey) error {
				if len(ks) > 0 {
					return errNone
				}
				return nil
			}); {
			case err == nil:
				created.Add(1)
			case errors.Is(err, errNone):
				refused.Add(1)
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 1 || refused.Load() != n-1 || len(val(s.ListSigningKeys(ctx)).must(t)) != 1 {
		t.Errorf("%d created, %d refused, %d stored; want 1, %d, 1", created.Load(), refused.Load(), len(val(s.ListSigningKeys(ctx)).must(t)), n-1)
	}
}

func testTimeZones(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Nanoseconds are dropped: stores keep microseconds.
	when := time.Date(2026, 11, 1, 1, 30, 15, 987654321, newYork)
	wantWhen := when.Truncate(time.Microsecond)
	noErr(t, s.AppendAudit(ctx, []store.AuditRecord{{ID: "tz", Time: when, Result: store.AuditSuccess}}))
	page := val(s.ListAudit(ctx, store.AuditFilter{})).must(t)
	if len(page.Records) != 1 {
		t.Fatalf("%d audit records, want 1", len(page.Records))
	}
	got := page.Records[0].Time
	if !got.Equal(wantWhen) || got.Location() != time.UTC {
		t.Errorf("audit time %v (%v), want %v in UTC", got, got.Location(), wantWhen.UTC())
	}
	// Filters given in another zone compare instants.
	for _, f := range []store.AuditFilter{
		{Since: wantWhen.In(time.FixedZone("X", 9*3600))},
		{Until: wantWhen.Add(time.Microsecond).In(newYork)},
	} {
		if n := len(val(s.ListAudit(ctx, f)).must(t).Records); n != 1 {
			t.Errorf("ListAudit(%+v): %d records, want 1", f, n)
		}
	}

	noErr(t, s.CreateSigningKey(ctx, store.SigningKey{ID: "k", Algorithm: "RS256", PrivateKey: []byte{1}, CreatedAt: when, PublishAt: when}))
	k := val(s.ListSigningKeys(ctx)).must(t)[0]
	if !k.CreatedAt.Equal(wantWhen) || k.CreatedAt.Location() != time.UTC || !k.PublishAt.Equal(wantWhen) {
		t.Errorf("key times %v/%v, want %v in UTC", k.CreatedAt, k.PublishAt, wantWhen.UTC())
	}

	ten := mkTenant(t, s)
	read := val(s.GetTenant(ctx, ten.ID)).must(t)
	if read.CreatedAt.Location() != time.UTC || !read.CreatedAt.Equal(ten.CreatedAt) || read.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("tenant createdAt %v, created as %v: want the same UTC microsecond", read.CreatedAt, ten.CreatedAt)
	}
}

// ---- audit

func testAudit(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tenA, tenB := newID(), newID()
	clientA, clientB := newID(), newID()
	var recs []store.AuditRecord
	for i := range 10 {
		r := store.AuditRecord{
			Time:     t0.Add(time.Duration(i) * time.Minute),
			TenantID: tenA, ClientID: clientA, CredentialName: "cred", GrantType: "client_credentials",
			Resource: "api://resource", Issuer: testIssuer, Subject: "system:serviceaccount:default:demo",
			Audience: []string{"api://AzureADTokenExchange", fmt.Sprintf("aud-%d", i)},
			JTIHash:  fmt.Sprintf("%064x", i), Result: store.AuditSuccess, CorrelationID: newID(), RemoteAddr: "127.0.0.1:5000",
		}
		if i%3 == 0 {
			r.TenantID, r.ClientID = upper(tenB), upper(clientB)
			r.Result, r.ErrorCode, r.Error = store.AuditFailure, 700213, "AADSTS700213: No matching federated identity record found"
			r.Reason, r.Diagnosis = "subject differs only in letter case", `{"check":"credential","credentials":[{"name":"cred"}]}`
		}
		if i == 4 {
			r.CorrelationID = "shared-correlation-id"
		}
		if i == 7 {
			r.CorrelationID = "shared-correlation-id"
		}
		if i == 5 {
			r.Count = 42 // an aggregated row keeps its count
		}
		recs = append(recs, r)
	}
	noErr(t, s.AppendAudit(ctx, recs))
	noErr(t, s.AppendAudit(ctx, nil))

	all := val(s.ListAudit(ctx, store.AuditFilter{})).must(t)
	if len(all.Records) != 10 || all.NextCursor != "" {
		t.Fatalf("ListAudit: %d records, cursor %q; want 10 and none", len(all.Records), all.NextCursor)
	}
	ids := map[string]bool{}
	for i, r := range all.Records {
		src := recs[9-i]
		if r.ID == "" || ids[r.ID] {
			t.Errorf("record %d: id %q empty or repeated", i, r.ID)
		}
		ids[r.ID] = true
		want := src
		want.ID = r.ID
		want.TenantID, want.ClientID = strings.ToLower(src.TenantID), strings.ToLower(src.ClientID)
		if want.Count == 0 {
			want.Count = 1 // a single exchange
		}
		equal(t, fmt.Sprintf("record %d (newest first)", i), r, want)
	}

	count := func(f store.AuditFilter) int { return len(val(s.ListAudit(ctx, f)).must(t).Records) }
	for _, tc := range []struct {
		name   string
		filter store.AuditFilter
		want   int
	}{
		{"tenant", store.AuditFilter{TenantID: upper(tenA)}, 6},
		{"tenant b", store.AuditFilter{TenantID: tenB}, 4},
		{"client", store.AuditFilter{ClientID: upper(clientB)}, 4},
		{"result", store.AuditFilter{Result: store.AuditFailure}, 4},
		{"tenant and result", store.AuditFilter{TenantID: tenA, Result: store.AuditFailure}, 0},
		{"since (inclusive)", store.AuditFilter{Since: t0.Add(5 * time.Minute)}, 5},
		{"until (exclusive)", store.AuditFilter{Until: t0.Add(5 * time.Minute)}, 5},
		{"since and until", store.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}, 2},
		{"limit", store.AuditFilter{Limit: 3}, 3},
		{"unknown tenant", store.AuditFilter{TenantID: newID()}, 0},
		{"correlation id", store.AuditFilter{CorrelationID: "shared-correlation-id"}, 2},
		{"correlation id and tenant", store.AuditFilter{CorrelationID: "shared-correlation-id", TenantID: tenA}, 2},
		{"unknown correlation id", store.AuditFilter{CorrelationID: "nope"}, 0},
	} {
		if got := count(tc.filter); got != tc.want {
			t.Errorf("ListAudit by %s: %d records, want %d", tc.name, got, tc.want)
		}
	}
	// Non-GUID ids are kept as given.
	noErr(t, s.AppendAudit(ctx, []store.AuditRecord{{TenantID: "Contoso.onmicrosoft.com", ClientID: "Not-A-Guid", Result: store.AuditFailure}}))
	if got := val(s.ListAudit(ctx, store.AuditFilter{TenantID: "Contoso.onmicrosoft.com"})).must(t).Records; len(got) != 1 || got[0].ClientID != "Not-A-Guid" || got[0].Time.IsZero() {
		t.Errorf("record with non-GUID ids: %+v", got)
	}

	// A batch with a clash — a record again, as a replayed spool holds it
	// (its id and time) — is written not at all.
	batch := []store.AuditRecord{{ID: "fresh-1", Result: store.AuditSuccess}, {ID: all.Records[0].ID, Time: all.Records[0].Time, Result: store.AuditSuccess}}
	wantErr(t, s.AppendAudit(ctx, batch), store.ErrAlreadyExists)
	if n := count(store.AuditFilter{}); n != 11 {
		t.Errorf("after a refused batch: %d records, want 11", n)
	}
	_, err := s.ListAudit(ctx, store.AuditFilter{After: "not-a-cursor!"})
	wantErr(t, err, directory.ErrInvalid)
}

func testAuditPagination(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	// Several records share a timestamp, so the cursor must break ties.
	var recs []store.AuditRecord
	for i := range 25 {
		recs = append(recs, store.AuditRecord{ID: fmt.Sprintf("r-%02d", i), Time: t0.Add(time.Duration(i/3) * time.Second), Result: store.AuditSuccess})
	}
	noErr(t, s.AppendAudit(ctx, recs[:10]))
	noErr(t, s.AppendAudit(ctx, recs[10:]))

	want := val(s.ListAudit(ctx, store.AuditFilter{Limit: 100})).must(t).Records
	if len(want) != 25 {
		t.Fatalf("%d records, want 25", len(want))
	}
	for i := 1; i < len(want); i++ {
		if want[i].Time.After(want[i-1].Time) {
			t.Fatalf("records not newest first: %v after %v", want[i].Time, want[i-1].Time)
		}
	}

	var got []store.AuditRecord
	f := store.AuditFilter{Limit: 4}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		page := val(s.ListAudit(ctx, f)).must(t)
		got = append(got, page.Records...)
		if pages == 1 {
			// Records appended while paging (newer ones, as the token
			// service writes them) do not shift later pages.
			noErr(t, s.AppendAudit(ctx, []store.AuditRecord{{ID: "late-1", Time: t0.Add(time.Hour), Result: store.AuditSuccess}, {ID: "late-2", Time: t0.Add(10 * time.Second), Result: store.AuditSuccess}}))
		}
		if page.NextCursor == "" {
			break
		}
		if len(page.Records) != 4 {
			t.Errorf("page %d holds %d records, want 4", pages, len(page.Records))
		}
		f.After = page.NextCursor
	}
	var gotIDs, wantIDs []string
	for _, r := range got {
		gotIDs = append(gotIDs, r.ID)
	}
	for _, r := range want {
		wantIDs = append(wantIDs, r.ID)
	}
	equal(t, "ids over all pages", gotIDs, wantIDs)

	// Pagination composes with filters.
	f = store.AuditFilter{Limit: 2, Since: t0.Add(2 * time.Second), Until: t0.Add(5 * time.Second)}
	var n int
	for {
		page := val(s.ListAudit(ctx, f)).must(t)
		n += len(page.Records)
		for _, r := range page.Records {
			if r.Time.Before(f.Since) || !r.Time.Before(f.Until) {
				t.Errorf("record at %v outside [%v, %v)", r.Time, f.Since, f.Until)
			}
		}
		if page.NextCursor == "" {
			break
		}
		f.After = page.NextCursor
	}
	if n != 9 {
		t.Errorf("filtered pagination saw %d records, want 9", n)
	}
	// The default limit.
	many := make([]store.AuditRecord, 150)
	for i := range many {
		many[i] = store.AuditRecord{Time: t0.Add(-time.Hour), Result: store.AuditFailure}
	}
	noErr(t, s.AppendAudit(ctx, many))
	page := val(s.ListAudit(ctx, store.AuditFilter{Result: store.AuditFailure})).must(t)
	if len(page.Records) != 100 || page.NextCursor == "" {
		t.Errorf("default page: %d records, cursor %q; want 100 and a cursor", len(page.Records), page.NextCursor)
	}
}

func testAuditPrune(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var recs []store.AuditRecord
	for i := range 10 {
		recs = append(recs, store.AuditRecord{Time: t0.Add(time.Duration(i) * time.Hour), Result: store.AuditSuccess})
	}
	noErr(t, s.AppendAudit(ctx, recs))
	n := val(s.PruneAudit(ctx, t0.Add(4*time.Hour).In(newYork))).must(t)
	if n != 4 {
		t.Errorf("PruneAudit removed %d, want 4", n)
	}
	page := val(s.ListAudit(ctx, store.AuditFilter{})).must(t)
	if len(page.Records) != 6 || !page.Records[5].Time.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("after prune: %d records, oldest %v", len(page.Records), page.Records[len(page.Records)-1].Time)
	}
	if n := val(s.PruneAudit(ctx, t0)).must(t); n != 0 {
		t.Errorf("second prune removed %d, want 0", n)
	}
}

// ---- aliasing

func testNoAliasing(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	in := appFixture(ten.ID, "app", "api://app")
	created := val(s.CreateApplication(ctx, in)).must(t)
	in.IdentifierURIs[0] = "api://mutated-input"
	in.AppRoles[0].Value = "mutated"
	in.AppRoles[0].AllowedMemberTypes[0] = "mutated"
	created.IdentifierURIs[0] = "api://mutated-output"
	created.AppRoles[1].Value = "mutated"
	got := val(s.GetApplication(ctx, ten.ID, in.AppID)).must(t)
	if got.IdentifierURIs[0] != "api://app" || got.AppRoles[0].Value != "Data.Read" || got.AppRoles[0].AllowedMemberTypes[0] != directory.MemberTypeApplication || got.AppRoles[1].Value != "Data.Write" {
		t.Errorf("stored application changed through a caller's slice: %+v", got)
	}
	got.AppRoles[0].Value = "mutated"
	if again := val(s.GetApplication(ctx, ten.ID, in.AppID)).must(t); again.AppRoles[0].Value != "Data.Read" {
		t.Error("stored application changed through a returned slice")
	}

	m := miFixture(ten.ID, "demo")
	mi := val(s.CreateManagedIdentity(ctx, m)).must(t)
	m.Tags["team"] = "mutated"
	mi.Tags["team"] = "mutated"
	if got := val(s.GetManagedIdentity(ctx, ten.ID, ref(mi))).must(t); got.Tags["team"] != "payments" {
		t.Errorf("stored identity's tags changed through a caller's map: %v", got.Tags)
	}
	// A closure that fails after mutating leaves nothing behind.
	_, err := s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error {
		m.Tags["team"] = "mutated"
		return errAbort
	})
	wantErr(t, err, errAbort)
	if got := val(s.GetManagedIdentity(ctx, ten.ID, ref(mi))).must(t); got.Tags["team"] != "payments" {
		t.Errorf("aborted closure changed the stored tags: %v", got.Tags)
	}

	f := credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "cred", "sub")
	f.ClaimsMatchingExpression = nil
	cf := val(s.CreateFederatedCredential(ctx, f)).must(t)
	f.Audiences[0] = "mutated"
	cf.Audiences[0] = "mutated"
	if got := val(s.GetFederatedCredential(ctx, ten.ID, mi.ClientID, "cred")).must(t); got.Audiences[0] != directory.DefaultAudience {
		t.Errorf("stored credential's audiences changed: %v", got.Audiences)
	}

	k := store.SigningKey{ID: "k", Algorithm: "RS256", PrivateKey: []byte("secret"), Certificate: []byte("cert"), CreatedAt: time.Now()}
	noErr(t, s.CreateSigningKey(ctx, k))
	k.PrivateKey[0] = 'X'
	keys := val(s.ListSigningKeys(ctx)).must(t)
	keys[0].Certificate[0] = 'X'
	if got := val(s.ListSigningKeys(ctx)).must(t)[0]; string(got.PrivateKey) != "secret" || string(got.Certificate) != "cert" {
		t.Errorf("stored key changed through a caller's slice: %q %q", got.PrivateKey, got.Certificate)
	}
}

// ---- context

func testContextCancelled(t *testing.T, s store.Store) {
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "demo")
	app := mkApp(t, s, ten.ID, "app")
	before := rev(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"CreateTenant": func() error {
			_, err := s.CreateTenant(ctx, directory.Tenant{ID: newID(), DisplayName: "x"})
			return err
		},
		"GetTenant":   func() error { _, err := s.GetTenant(ctx, ten.ID); return err },
		"ListTenants": func() error { _, err := s.ListTenants(ctx); return err },
		"UpdateTenant": func() error {
			_, err := s.UpdateTenant(ctx, ten.ID, func(t *directory.Tenant) error { t.DisplayName = "y"; return nil })
			return err
		},
		"DeleteTenant":      func() error { return s.DeleteTenant(ctx, ten.ID) },
		"CreateApplication": func() error { _, err := s.CreateApplication(ctx, appFixture(ten.ID, "b")); return err },
		"GetApplication":    func() error { _, err := s.GetApplication(ctx, ten.ID, app.AppID); return err },
		"DeleteApplication": func() error { return s.DeleteApplication(ctx, ten.ID, app.AppID) },
		"CreateManagedIdentity": func() error {
			_, err := s.CreateManagedIdentity(ctx, miFixture(ten.ID, "other"))
			return err
		},
		"GetManagedIdentity": func() error { _, err := s.GetManagedIdentity(ctx, ten.ID, ref(mi)); return err },
		"UpdateManagedIdentity": func() error {
			_, err := s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error { m.Location = "x"; return nil })
			return err
		},
		"CreateFederatedCredential": func() error {
			_, err := s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "cred", "s"))
			return err
		},
		"ListFederatedCredentials": func() error { _, err := s.ListFederatedCredentials(ctx, ten.ID, mi.ClientID); return err },
		"CreateAppRoleAssignment": func() error {
			_, err := s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, mi.PrincipalID, app, 0))
			return err
		},
		"Snapshot":         func() error { _, err := s.Snapshot(ctx); return err },
		"Revision":         func() error { _, err := s.Revision(ctx); return err },
		"CreateSigningKey": func() error { return s.CreateSigningKey(ctx, store.SigningKey{ID: "k", PrivateKey: []byte{1}}) },
		"ListSigningKeys":  func() error { _, err := s.ListSigningKeys(ctx); return err },
		"AppendAudit":      func() error { return s.AppendAudit(ctx, []store.AuditRecord{{Result: store.AuditSuccess}}) },
		"ListAudit":        func() error { _, err := s.ListAudit(ctx, store.AuditFilter{}); return err },
		"PruneAudit":       func() error { _, err := s.PruneAudit(ctx, time.Now()); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: error %v, want context.Canceled", name, err)
		}
	}
	live := ctxT(t)
	if after := rev(t, s); after != before {
		t.Errorf("calls with a cancelled context moved the revision from %d to %d", before, after)
	}
	if n := len(val(s.ListAudit(live, store.AuditFilter{})).must(t).Records); n != 0 {
		t.Errorf("cancelled AppendAudit wrote %d records", n)
	}
	if n := len(val(s.ListSigningKeys(live)).must(t)); n != 0 {
		t.Errorf("cancelled CreateSigningKey wrote %d keys", n)
	}
	val(s.GetApplication(live, ten.ID, app.AppID)).must(t)
}

// ---- concurrency

func testConcurrentCAS(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "counter")
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error {
					n, _ := strconv.Atoi(m.Tags["n"])
					m.Tags["n"] = strconv.Itoa(n + 1)
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent update: %v", err)
	}
	got := val(s.GetManagedIdentity(ctx, ten.ID, ref(mi))).must(t)
	if got.Tags["n"] != strconv.Itoa(workers*each) || got.Version != workers*each+1 {
		t.Errorf("after %d concurrent increments: n=%s version=%d; want n=%d version=%d", workers*each, got.Tags["n"], got.Version, workers*each, workers*each+1)
	}
}

func testConcurrentCredentialLimit(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "busy")
	const tries = 30
	var wg sync.WaitGroup
	results := make(chan error, tries)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, fmt.Sprintf("cred-%02d", i), fmt.Sprintf("subject-%02d", i)))
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	var ok, limited int
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, directory.ErrInvalid):
			limited++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != directory.MaxCredentialsPerParent || limited != tries-directory.MaxCredentialsPerParent {
		t.Errorf("%d creates succeeded and %d hit the limit; want %d and %d", ok, limited, directory.MaxCredentialsPerParent, tries-directory.MaxCredentialsPerParent)
	}
	if n := len(val(s.ListFederatedCredentials(ctx, ten.ID, mi.ClientID)).must(t)); n != directory.MaxCredentialsPerParent {
		t.Errorf("parent holds %d credentials, want %d", n, directory.MaxCredentialsPerParent)
	}
}

func testConcurrentSameName(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "busy")
	const tries = 10
	var wg sync.WaitGroup
	results := make(chan error, tries)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, mi.ClientID, "same-name", fmt.Sprintf("subject-%02d", i)))
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	var ok, exists int
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrAlreadyExists):
			exists++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || exists != tries-1 {
		t.Errorf("%d creates succeeded, %d found the name taken; want 1 and %d", ok, exists, tries-1)
	}
}

// testDeletePreconditions checks that each delete runs its preconditions
// with the object's current version and that a failing one leaves the
// object in place, returning the precondition's own error.
func testDeletePreconditions(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	app := mkApp(t, s, ten.ID, "app", "api://app")
	mi := mkMI(t, s, ten.ID, "doomed")
	cred := mkCred(t, s, mi, "cred")
	mi = val(s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error { m.Location = "x"; return nil })).must(t)
	refuse := errors.New("precondition refused")
	objects := []struct {
		name    string
		version int64
		del     func(pre store.Precondition) error
		exists  func() error
	}{
		{"tenant", ten.Version, func(p store.Precondition) error { return s.DeleteTenant(ctx, ten.ID, p) },
			func() error { _, err := s.GetTenant(ctx, ten.ID); return err }},
		{"application", app.Version, func(p store.Precondition) error { return s.DeleteApplication(ctx, ten.ID, app.AppID, p) },
			func() error { _, err := s.GetApplication(ctx, ten.ID, app.AppID); return err }},
		{"managed identity", mi.Version, func(p store.Precondition) error { return s.DeleteManagedIdentity(ctx, ten.ID, ref(mi), p) },
			func() error { _, err := s.GetManagedIdentity(ctx, ten.ID, ref(mi)); return err }},
		{"federated credential", cred.Version, func(p store.Precondition) error {
			return s.DeleteFederatedCredential(ctx, ten.ID, mi.ClientID, cred.Name, p)
		}, func() error { _, err := s.GetFederatedCredential(ctx, ten.ID, mi.ClientID, cred.Name); return err }},
	}
	for _, o := range objects {
		var seen int64
		err := o.del(func(v int64) error { seen = v; return refuse })
		if !errors.Is(err, refuse) {
			t.Errorf("delete %s with a failing precondition: %v, want the precondition's error", o.name, err)
		}
		if seen != o.version {
			t.Errorf("delete %s: precondition saw version %d, want %d", o.name, seen, o.version)
		}
		if err := o.exists(); err != nil {
			t.Errorf("%s after a refused delete: %v", o.name, err)
		}
	}
	// Deleting in reverse order with passing preconditions removes each.
	for i := len(objects) - 1; i >= 0; i-- {
		o := objects[i]
		if err := o.del(func(int64) error { return nil }); err != nil {
			t.Errorf("delete %s: %v", o.name, err)
		}
		wantErr(t, o.exists(), store.ErrNotFound)
	}
}

// testDeletePreconditionRace checks that a precondition runs inside the
// deleting transaction: an update started while it runs cannot land
// between the check and the delete (it waits, then finds nothing).
func testDeletePreconditionRace(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "raced")
	updated := make(chan error, 1)
	err := s.DeleteManagedIdentity(ctx, ten.ID, ref(mi), func(v int64) error {
		go func() {
			_, err := s.UpdateManagedIdentity(ctx, ten.ID, ref(mi), func(m *directory.ManagedIdentity) error { m.Location = "raced"; return nil })
			updated <- err
		}()
		// An update that is not held back by the delete finishes well
		// within this; one that is waits for the delete to commit.
		select {
		case err := <-updated:
			updated <- err
		case <-time.After(200 * time.Millisecond):
		}
		return nil
	})
	noErr(t, err)
	select {
	case err := <-updated:
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an update raced the delete's precondition and returned %v; want ErrNotFound (it must wait for the delete)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the racing update never finished")
	}
}

// testRemoveRole: an application that loses an app role loses the role
// assignments naming it, in the same write, and keeps the others.
func testRemoveRole(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	res := mkApp(t, s, ten.ID, "res", "api://res")
	mi := mkMI(t, s, ten.ID, "caller")
	if len(res.AppRoles) < 2 {
		t.Fatalf("fixture application has %d roles, want 2", len(res.AppRoles))
	}
	a0 := val(s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, mi.PrincipalID, res, 0))).must(t)
	a1 := val(s.CreateAppRoleAssignment(ctx, assignFixture(ten.ID, mi.PrincipalID, res, 1))).must(t)
	before := rev(t, s)
	val(s.UpdateApplication(ctx, ten.ID, res.AppID, func(a *directory.Application) error {
		a.AppRoles = a.AppRoles[1:]
		return nil
	})).must(t)
	gs := val(s.ListAppRoleAssignments(ctx, ten.ID, store.AssignmentFilter{ResourceAppID: res.AppID})).must(t)
	if len(gs) != 1 || gs[0].ID != a1.ID {
		t.Fatalf("assignments after removing role 0: %+v; want only %s (not %s)", gs, a1.ID, a0.ID)
	}
	if rev(t, s) <= before {
		t.Error("the revision did not move")
	}
	snap := val(s.Snapshot(ctx)).must(t)
	for _, g := range snap.AppRoleAssignments {
		if g.ID == a0.ID {
			t.Error("the snapshot still holds the removed role's assignment")
		}
	}
}

// testCredentialUsage: last uses merge newest-wins, in any order; a use of
// a credential that does not exist is ignored; a deleted credential takes
// its usage with it, and one made again under its name starts unused.
func testCredentialUsage(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	other := mkTenant(t, s)
	mi := mkMI(t, s, ten.ID, "demo")
	a, b := mkCred(t, s, mi, "cred-a"), mkCred(t, s, mi, "cred-b")
	oc := mkCred(t, s, mkMI(t, s, other.ID, "other"), "cred-o")
	t0 := time.Date(2026, 6, 1, 9, 0, 0, 123456789, time.UTC)
	noErr(t, s.RecordUsage(ctx, nil, nil))
	noErr(t, s.RecordUsage(ctx, []store.CredentialUse{
		{CredentialID: upper(a.ID), LastUsed: t0.Add(time.Minute)},
		{CredentialID: newID(), LastUsed: t0}, // no such credential
		{CredentialID: oc.ID, LastUsed: t0},
	}, nil))
	// An older report (another replica's, late) changes nothing; a newer one wins.
	noErr(t, s.RecordUsage(ctx, []store.CredentialUse{{CredentialID: a.ID, LastUsed: t0}, {CredentialID: b.ID, LastUsed: t0.Add(2 * time.Minute)}}, nil))
	noErr(t, s.RecordUsage(ctx, []store.CredentialUse{{CredentialID: b.ID, LastUsed: t0.Add(3 * time.Minute).In(time.FixedZone("X", 3600))}}, nil))
	got := val(s.CredentialUsage(ctx, upper(ten.ID))).must(t)
	want := map[string]time.Time{a.ID: t0.Add(time.Minute).Truncate(time.Microsecond), b.ID: t0.Add(3 * time.Minute).Truncate(time.Microsecond)}
	if len(got) != 2 || !got[a.ID].Equal(want[a.ID]) || !got[b.ID].Equal(want[b.ID]) || got[a.ID].Location() != time.UTC {
		t.Fatalf("CredentialUsage = %v, want %v (UTC, µs)", got, want)
	}
	if o := val(s.CredentialUsage(ctx, other.ID)).must(t); len(o) != 1 || !o[oc.ID].Equal(t0.Truncate(time.Microsecond)) {
		t.Fatalf("the other tenant's usage: %v", o)
	}
	noErr(t, s.DeleteFederatedCredential(ctx, ten.ID, mi.ClientID, "cred-a"))
	mkCred(t, s, mi, "cred-a")
	got = val(s.CredentialUsage(ctx, ten.ID)).must(t)
	if _, ok := got[a.ID]; ok || len(got) != 1 {
		t.Fatalf("after deleting credential a and making it again: %v", got)
	}
	noErr(t, s.DeleteManagedIdentity(ctx, ten.ID, ref(mi)))
	if got := val(s.CredentialUsage(ctx, ten.ID)).must(t); len(got) != 0 {
		t.Fatalf("after deleting the identity: %v", got)
	}
}

// testIssuerStatus: replicas' reports merge into one status whatever
// their order.
func testIssuerStatus(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	iss := "https://issuer.example/" + newID()
	// Replica 1 saw a success at 0 then failures from 10; replica 2, late,
	// reports failures from 5 (after the success) and a success before it.
	noErr(t, s.RecordUsage(ctx, nil, []store.IssuerStatus{{Issuer: iss, LastSuccess: at(0), LastFailure: at(20), FailingSince: at(10), LastError: "timeout"}}))
	noErr(t, s.RecordUsage(ctx, nil, []store.IssuerStatus{{Issuer: iss, LastSuccess: at(-5), LastFailure: at(15), FailingSince: at(5), LastError: "refused"}}))
	st := val(s.IssuerStatuses(ctx)).must(t)[iss]
	want := store.IssuerStatus{Issuer: iss, LastSuccess: at(0), LastFailure: at(20), FailingSince: at(5), LastError: "timeout"}
	equal(t, "merged failing status", st, want)
	if !st.Failing() {
		t.Error("Failing() = false")
	}
	// A success after the failures ends the streak.
	noErr(t, s.RecordUsage(ctx, nil, []store.IssuerStatus{{Issuer: iss, LastSuccess: at(30)}}))
	st = val(s.IssuerStatuses(ctx)).must(t)[iss]
	equal(t, "after a success", st, store.IssuerStatus{Issuer: iss, LastSuccess: at(30), LastFailure: at(20)})
	if st.Failing() {
		t.Error("Failing() = true after a success")
	}
	// An issuer that never answered.
	never := "https://never.example"
	noErr(t, s.RecordUsage(ctx, nil, []store.IssuerStatus{{Issuer: never, LastFailure: at(2), FailingSince: at(1), LastError: "dns"}}))
	equal(t, "never answered", val(s.IssuerStatuses(ctx)).must(t)[never], store.IssuerStatus{Issuer: never, LastFailure: at(2), FailingSince: at(1), LastError: "dns"})
}
