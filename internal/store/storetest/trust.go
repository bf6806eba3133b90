package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// testJWKS is a public key set document (one RSA key); the store keeps it
// as text and does not parse its keys.
const testJWKS = `{"keys":[{"kty":"RSA","kid":"k1","use":"sig","n":"sXch","e":"AQAB"}]}`

func issuerFixture(tenantID, name, iss string) directory.TrustedIssuer {
	return directory.TrustedIssuer{
		TenantID: tenantID, Name: name, Issuer: iss, KeySource: directory.KeySourceJWKS,
		JWKS: testJWKS, KeysUpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Algorithms: []string{"RS256", "ES256"}, MaxTokenLifetimeSeconds: 3600, RequireKeyUse: true,
	}
}

func testTrustedIssuers(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	other := mkTenant(t, s)
	r0 := rev(t, s)
	in := issuerFixture(upper(ten.ID), "aks-prod", "https://oidc.example.com/aks/")
	got := val(s.CreateTrustedIssuer(ctx, in)).must(t)
	checkMeta(t, "created trusted issuer", got.Meta, 1)
	if got.TenantID != ten.ID || got.JWKS != testJWKS || !got.KeysUpdatedAt.Equal(in.KeysUpdatedAt) || got.MaxTokenLifetimeSeconds != 3600 || !got.RequireKeyUse {
		t.Errorf("created trusted issuer = %+v", got)
	}
	if r := rev(t, s); r <= r0 {
		t.Errorf("revision %d after creating a trusted issuer, was %d", r, r0)
	}
	// Same name (any case) or same issuer in the tenant: refused; the same
	// issuer in another tenant is that tenant's own object.
	dup := issuerFixture(ten.ID, "AKS-PROD", "https://other.example.com")
	wantErr(t, val(s.CreateTrustedIssuer(ctx, dup)).err, store.ErrAlreadyExists)
	dup = issuerFixture(ten.ID, "second", in.Issuer)
	wantErr(t, val(s.CreateTrustedIssuer(ctx, dup)).err, store.ErrAlreadyExists)
	val(s.CreateTrustedIssuer(ctx, issuerFixture(other.ID, "aks-prod", in.Issuer))).must(t)
	// A bad object is refused with the rule; a missing tenant is not found.
	bad := issuerFixture(ten.ID, "bad", "https://bad.example.com")
	bad.Algorithms = []string{"HS256"}
	if err := val(s.CreateTrustedIssuer(ctx, bad)).err; !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("HS256 allowed: err = %v, want a validation error", err)
	}
	wantErr(t, val(s.CreateTrustedIssuer(ctx, issuerFixture(newID(), "x-y-z", "https://x.example.com"))).err, store.ErrNotFound)

	g := val(s.GetTrustedIssuer(ctx, upper(ten.ID), "Aks-Prod")).must(t)
	equal(t, "got trusted issuer", g, got)
	wantErr(t, val(s.GetTrustedIssuer(ctx, ten.ID, "nope")).err, store.ErrNotFound)
	list := val(s.ListTrustedIssuers(ctx, ten.ID)).must(t)
	if len(list) != 1 || list[0].Name != "aks-prod" {
		t.Errorf("list = %+v", list)
	}
	wantErr(t, val(s.ListTrustedIssuers(ctx, newID())).err, store.ErrNotFound)

	upd := val(s.UpdateTrustedIssuer(ctx, ten.ID, "aks-prod", func(v *directory.TrustedIssuer) error {
		v.KeySource = directory.KeySourcePushed
		v.RetiredKeys = []directory.RetiredKey{{Key: []byte(`{"kty":"RSA","kid":"old"}`), Until: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)}}
		return nil
	})).must(t)
	checkMeta(t, "updated trusted issuer", upd.Meta, 2)
	g = val(s.GetTrustedIssuer(ctx, ten.ID, "aks-prod")).must(t)
	if g.KeySource != directory.KeySourcePushed || len(g.RetiredKeys) != 1 || string(g.RetiredKeys[0].Key) != `{"kty":"RSA","kid":"old"}` {
		t.Errorf("after update: %+v", g)
	}
	val(s.CreateTrustedIssuer(ctx, issuerFixture(ten.ID, "second", "https://second.example.com"))).must(t)
	wantErr(t, val(s.UpdateTrustedIssuer(ctx, ten.ID, "second", func(v *directory.TrustedIssuer) error {
		v.Issuer = in.Issuer
		return nil
	})).err, store.ErrAlreadyExists)
	if err := val(s.UpdateTrustedIssuer(ctx, ten.ID, "second", func(v *directory.TrustedIssuer) error {
		v.Name = "renamed"
		return nil
	})).err; !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("rename: err = %v, want a validation error", err)
	}

	wantErr(t, s.DeleteTrustedIssuer(ctx, ten.ID, "aks-prod", func(int64) error { return store.ErrConflict }), store.ErrConflict)
	noErr(t, s.DeleteTrustedIssuer(ctx, ten.ID, "AKS-prod"))
	wantErr(t, s.DeleteTrustedIssuer(ctx, ten.ID, "aks-prod"), store.ErrNotFound)

	// Snapshots carry them; deleting the tenant removes them.
	snap := val(s.Snapshot(ctx)).must(t)
	if len(snap.TrustedIssuers) != 2 {
		t.Errorf("snapshot holds %d trusted issuers, want 2", len(snap.TrustedIssuers))
	}
	noErr(t, s.DeleteTenant(ctx, ten.ID))
	snap = val(s.Snapshot(ctx)).must(t)
	if len(snap.TrustedIssuers) != 1 || snap.TrustedIssuers[0].TenantID != other.ID {
		t.Errorf("after deleting the tenant, snapshot trusted issuers = %+v", snap.TrustedIssuers)
	}
}

func testIssuerSets(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	in := directory.IssuerSet{TenantID: ten.ID, Name: "prod-clusters", Issuers: []string{"https://a.example.com", "https://b.example.com/"}}
	got := val(s.CreateIssuerSet(ctx, in)).must(t)
	checkMeta(t, "created issuer set", got.Meta, 1)
	wantErr(t, val(s.CreateIssuerSet(ctx, directory.IssuerSet{TenantID: ten.ID, Name: "PROD-clusters", Issuers: in.Issuers})).err, store.ErrAlreadyExists)
	if err := val(s.CreateIssuerSet(ctx, directory.IssuerSet{TenantID: ten.ID, Name: "empty"})).err; !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("empty set: err = %v", err)
	}
	r0 := rev(t, s)
	upd := val(s.UpdateIssuerSet(ctx, ten.ID, "prod-clusters", func(v *directory.IssuerSet) error {
		v.Issuers = append(v.Issuers, "https://c.example.com")
		return nil
	})).must(t)
	if len(upd.Issuers) != 3 || rev(t, s) <= r0 {
		t.Errorf("update: %+v (revision %d, was %d)", upd, rev(t, s), r0)
	}
	equal(t, "got issuer set", val(s.GetIssuerSet(ctx, ten.ID, "Prod-Clusters")).must(t), upd)
	if l := val(s.ListIssuerSets(ctx, ten.ID)).must(t); len(l) != 1 {
		t.Errorf("list = %+v", l)
	}
	if snap := val(s.Snapshot(ctx)).must(t); len(snap.IssuerSets) != 1 || len(snap.IssuerSets[0].Issuers) != 3 {
		t.Errorf("snapshot issuer sets = %+v", snap.IssuerSets)
	}
	noErr(t, s.DeleteIssuerSet(ctx, ten.ID, "prod-clusters"))
	wantErr(t, val(s.GetIssuerSet(ctx, ten.ID, "prod-clusters")).err, store.ErrNotFound)
}

func testResourceGroups(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	other := mkTenant(t, s)
	sub, sub2 := newID(), newID()
	in := directory.ResourceGroup{TenantID: upper(ten.ID), SubscriptionID: upper(sub), Name: "Mi-Test-Group", Location: "westeurope", Tags: map[string]string{"team": "platform"}}
	got := val(s.CreateResourceGroup(ctx, in)).must(t)
	checkMeta(t, "created resource group", got.Meta, 1)
	if got.TenantID != ten.ID || got.SubscriptionID != sub || got.Name != "Mi-Test-Group" || got.Location != "westeurope" || got.Tags["team"] != "platform" {
		t.Errorf("created resource group = %+v", got)
	}
	// The name is unique per subscription, case-insensitively; another
	// subscription or tenant has its own.
	wantErr(t, val(s.CreateResourceGroup(ctx, directory.ResourceGroup{TenantID: ten.ID, SubscriptionID: sub, Name: "MI-TEST-GROUP"})).err, store.ErrAlreadyExists)
	val(s.CreateResourceGroup(ctx, directory.ResourceGroup{TenantID: ten.ID, SubscriptionID: sub2, Name: "mi-test-group"})).must(t)
	val(s.CreateResourceGroup(ctx, directory.ResourceGroup{TenantID: other.ID, SubscriptionID: sub, Name: "mi-test-group"})).must(t)
	if err := val(s.CreateResourceGroup(ctx, directory.ResourceGroup{TenantID: ten.ID, SubscriptionID: sub, Name: "ends-with."})).err; !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("a name ending in '.': err = %v, want a validation error", err)
	}
	wantErr(t, val(s.CreateResourceGroup(ctx, directory.ResourceGroup{TenantID: newID(), SubscriptionID: sub, Name: "x"})).err, store.ErrNotFound)

	equal(t, "got resource group", val(s.GetResourceGroup(ctx, ten.ID, upper(sub), "mi-test-GROUP")).must(t), got)
	wantErr(t, val(s.GetResourceGroup(ctx, ten.ID, sub, "nope")).err, store.ErrNotFound)
	list := val(s.ListResourceGroups(ctx, ten.ID)).must(t)
	if len(list) != 2 {
		t.Fatalf("list = %+v", list)
	}
	wantErr(t, val(s.ListResourceGroups(ctx, newID())).err, store.ErrNotFound)
	upd := val(s.UpdateResourceGroup(ctx, ten.ID, sub, "mi-test-group", func(g *directory.ResourceGroup) error {
		g.Tags = map[string]string{"team": "identity"}
		return nil
	})).must(t)
	checkMeta(t, "updated resource group", upd.Meta, 2)
	if upd.Tags["team"] != "identity" || upd.Name != "Mi-Test-Group" {
		t.Errorf("updated = %+v", upd)
	}
	if err := val(s.UpdateResourceGroup(ctx, ten.ID, sub, "mi-test-group", func(g *directory.ResourceGroup) error {
		g.Name = "renamed"
		return nil
	})).err; err == nil {
		t.Error("a rename was accepted")
	}
	noErr(t, s.DeleteResourceGroup(ctx, ten.ID, sub, "MI-test-group"))
	wantErr(t, val(s.GetResourceGroup(ctx, ten.ID, sub, "mi-test-group")).err, store.ErrNotFound)
	wantErr(t, s.DeleteResourceGroup(ctx, ten.ID, sub, "mi-test-group"), store.ErrNotFound)
	// Deleting the tenant deletes its groups.
	noErr(t, s.DeleteTenant(ctx, other.ID))
	val(s.CreateTenant(ctx, directory.Tenant{ID: other.ID, DisplayName: "again"})).must(t)
	if l := val(s.ListResourceGroups(ctx, other.ID)).must(t); len(l) != 0 {
		t.Errorf("groups of a deleted tenant came back: %+v", l)
	}
}

func testIdentityPaging(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	subA, subB := "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
	for _, x := range []struct{ sub, group, name string }{
		{subB, "rg", "zzz"}, {subA, "RG-2", "bbb"}, {subA, "rg-1", "CCC"}, {subA, "rg-1", "aaa"}, {subA, "rg-1", "bb-2"}, {subA, "Rg-1", "bb_1"}, {subB, "a", "mmm"},
	} {
		m := miFixture(ten.ID, x.name)
		m.SubscriptionID, m.ResourceGroup = x.sub, x.group
		val(s.CreateManagedIdentity(ctx, m)).must(t)
	}
	names := func(ms []directory.ManagedIdentity) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.SubscriptionID[len(m.SubscriptionID)-1:]+"/"+strings.ToLower(m.ResourceGroup)+"/"+m.Name)
		}
		return out
	}
	for _, f := range []store.IdentityFilter{{}, {SubscriptionID: subA}, {SubscriptionID: subA, ResourceGroup: "RG-1"}} {
		all := names(val(s.ListManagedIdentities(ctx, ten.ID, f)).must(t))
		for _, size := range []int{1, 2, 3, 100} {
			var got []string
			page := f
			page.Limit = size
			for i := 0; ; i++ {
				if i > len(all)+1 {
					t.Fatalf("%+v by %d: paging does not end", f, size)
				}
				ms := val(s.ListManagedIdentities(ctx, ten.ID, page)).must(t)
				if len(ms) > size {
					t.Fatalf("%+v by %d: a page of %d", f, size, len(ms))
				}
				got = append(got, names(ms)...)
				if len(ms) < size {
					break
				}
				last := ms[len(ms)-1]
				page.After = store.IdentityRef{SubscriptionID: last.SubscriptionID, ResourceGroup: strings.ToUpper(last.ResourceGroup), Name: strings.ToUpper(last.Name)}
			}
			if strings.Join(got, " ") != strings.Join(all, " ") {
				t.Errorf("%+v by %d: pages %v, list %v", f, size, got, all)
			}
		}
		if f.ResourceGroup == "RG-1" && strings.Join(all, " ") != "a/rg-1/aaa a/rg-1/bb-2 a/rg-1/bb_1 a/rg-1/CCC" {
			t.Errorf("order %v", all)
		}
	}
	// A name prefix, case-insensitively, with paging.
	for prefix, want := range map[string]string{"BB": "a/rg-1/bb-2 a/rg-1/bb_1 a/RG-2/bbb", "bb_": "a/rg-1/bb_1", "c": "a/rg-1/CCC", "nope": ""} {
		got := names(val(s.ListManagedIdentities(ctx, ten.ID, store.IdentityFilter{NamePrefix: prefix})).must(t))
		if strings.ToLower(strings.Join(got, " ")) != strings.ToLower(want) {
			t.Errorf("prefix %q: %v, want %s", prefix, got, want)
		}
	}
	if got := val(s.ListManagedIdentities(ctx, ten.ID, store.IdentityFilter{NamePrefix: "bb", Limit: 1, After: store.IdentityRef{SubscriptionID: subA, ResourceGroup: "rg-1", Name: "bb-2"}})).must(t); len(got) != 1 || got[0].Name != "bb_1" {
		t.Errorf("prefix with paging: %+v", got)
	}
}

func testChangeLog(t *testing.T, s store.Store) {
	cl, ok := s.(store.ChangeLog)
	if !ok {
		t.Skip("the store keeps no change log (readers reload)")
	}
	ctx := ctxT(t)
	ten := mkTenant(t, s)
	since := rev(t, s)
	changes := func(from int64) ([]store.Change, bool) {
		t.Helper()
		cur, cs, complete, err := cl.ChangesSince(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		if cur != rev(t, s) {
			t.Fatalf("ChangesSince's revision %d, the store's %d", cur, rev(t, s))
		}
		return cs, complete
	}
	if cs, complete := changes(since); !complete || len(cs) != 0 {
		t.Fatalf("no change: %+v %v", cs, complete)
	}
	m := mkMI(t, s, ten.ID, "changed")
	f := val(s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, m.ClientID, "k8s", "system:serviceaccount:a:b"))).must(t)
	val(s.UpdateManagedIdentity(ctx, ten.ID, store.IdentityRef{SubscriptionID: m.SubscriptionID, ResourceGroup: m.ResourceGroup, Name: m.Name}, func(m *directory.ManagedIdentity) error {
		m.Tags = map[string]string{"x": "y"}
		return nil
	})).must(t)
	noErr(t, s.DeleteFederatedCredential(ctx, ten.ID, m.ClientID, f.Name))
	cs, complete := changes(since)
	want := []string{"identity " + m.ClientID, "credential " + m.ClientID, "identity " + m.ClientID, "credential " + m.ClientID}
	var got []string
	for i, c := range cs {
		got = append(got, c.Kind+" "+c.Key)
		if c.TenantID != ten.ID || c.Revision != since+int64(i)+1 {
			t.Errorf("change %d: %+v (since %d)", i, c, since)
		}
	}
	if !complete || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("changes %v (complete %v), want %v", got, complete, want)
	}
	// A batch is one revision with each of its changes.
	before := rev(t, s)
	if b, ok := s.(store.Batcher); ok {
		noErr(t, b.Batch(ctx, func(ctx context.Context) error {
			m2 := miFixture(ten.ID, "batched")
			if _, err := s.CreateManagedIdentity(ctx, m2); err != nil {
				return err
			}
			_, err := s.CreateFederatedCredential(ctx, credFixture(ten.ID, directory.ParentManagedIdentity, m2.ClientID, "k8s", "system:serviceaccount:a:c"))
			return err
		}))
		if cs, complete := changes(before); !complete || len(cs) != 2 || cs[0].Revision != before+1 || cs[1].Revision != before+1 {
			t.Fatalf("a batch: %+v %v", cs, complete)
		}
	}
	// Deleting an identity is a change of its own (its credentials and
	// assignments go with it).
	before = rev(t, s)
	noErr(t, s.DeleteManagedIdentity(ctx, ten.ID, store.IdentityRef{SubscriptionID: m.SubscriptionID, ResourceGroup: m.ResourceGroup, Name: m.Name}))
	if cs, complete := changes(before); !complete || len(cs) != 1 || cs[0].Kind != store.ChangeIdentityDeleted || cs[0].Key != m.ClientID {
		t.Fatalf("an identity's delete: %+v %v", cs, complete)
	}
	// Any other write means: reload.
	before = rev(t, s)
	val(s.CreateApplication(ctx, appFixture(ten.ID, "an-app", "api://an-app"))).must(t)
	if _, complete := changes(before); complete {
		t.Fatal("an application's creation was reported as a complete change log")
	}
	if _, complete := changes(since); complete {
		t.Fatal("a range holding another write was reported complete")
	}
	// Trimmed past the reader: reload.
	before = rev(t, s)
	mkMI(t, s, ten.ID, "after-trim")
	noErr(t, cl.TrimChanges(ctx, 0))
	if _, complete := changes(before); complete {
		t.Fatal("a trimmed log was reported complete")
	}
}
