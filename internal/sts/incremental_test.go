package sts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/sqlite"
)

// dumpIndex renders what the token endpoint reads of an index, sorted:
// two indexes that dump alike answer every exchange alike.
func dumpIndex(idx *dirIndex) string {
	var lines []string
	for tk, ti := range idx.tenants {
		for ck, c := range ti.clients {
			var creds []string
			for _, f := range c.creds {
				expr := ""
				if f.ClaimsMatchingExpression != nil {
					expr = f.ClaimsMatchingExpression.Value
				}
				members := "-"
				if f.members != nil {
					members = strings.Join(f.issuerList(), ",")
				}
				creds = append(creds, fmt.Sprintf("%s|%s|%s|%s|%v|%s|%s", f.ID, f.Name, f.Issuer, f.Subject, f.Audiences, expr, members))
			}
			lines = append(lines, fmt.Sprintf("client %s %s %s %s %s %s %s [%s]", tk, ck, c.kind, c.clientID, c.principalID, c.name, c.mirid, strings.Join(creds, "; ")))
		}
		for rk, r := range ti.resources {
			var roles []string
			for p, rs := range r.roles {
				roles = append(roles, p+"="+strings.Join(rs, ","))
			}
			sort.Strings(roles)
			lines = append(lines, fmt.Sprintf("resource %s %s %s %v", tk, rk, r.app.AppID, roles))
		}
		for iss := range ti.issuers {
			lines = append(lines, "policy "+tk+" "+iss)
		}
	}
	for iss := range idx.issuers {
		lines = append(lines, "fetchable "+iss)
	}
	sort.Strings(lines)
	return fmt.Sprintf("revision %d\n%s", idx.revision, strings.Join(lines, "\n"))
}

// TestIncrementalIndexEqualsRebuild: after random writes to a store that
// keeps a change log — identities and credentials created, changed and
// deleted, applications and assignments now and then — the index the
// token endpoint patches from the changes equals the one rebuilt from a
// full snapshot, and the patch path is the one taken for identities and
// credentials.
func TestIncrementalIndexEqualsRebuild(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wif.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tid := directory.NewID()
	if _, err := st.CreateTenant(ctx, directory.Tenant{ID: tid, DisplayName: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateIssuerSet(ctx, directory.IssuerSet{TenantID: tid, Name: "clusters", Issuers: []string{"https://a.example", "https://b.example"}}); err != nil {
		t.Fatal(err)
	}
	app, err := st.CreateApplication(ctx, directory.Application{TenantID: tid, AppID: directory.NewID(), ObjectID: directory.NewID(), ServicePrincipalID: directory.NewID(),
		DisplayName: "api", IdentifierURIs: []string{"api://api"}, AppRoles: []directory.AppRole{{ID: directory.NewID(), Value: "Data.Read", AllowedMemberTypes: []string{"Application"}, IsEnabled: true}}})
	if err != nil {
		t.Fatal(err)
	}
	dc := &directoryCache{store: st, now: time.Now}
	if err := dc.refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var mis []directory.ManagedIdentity
	issuers := []string{"https://k8s.example", "https://token.actions.githubusercontent.com", "urn:wif:issuer-set:clusters", "urn:wif:issuer-set:missing"}
	for step := range 300 {
		var what string
		switch op := rng.IntN(100); {
		case op < 25 || len(mis) == 0:
			what = "create identity"
			m, err := st.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: tid, SubscriptionID: "00000000-0000-0000-0000-000000000001", ResourceGroup: "rg",
				Name: fmt.Sprintf("mi-%03d", step), ClientID: directory.NewID(), PrincipalID: directory.NewID()})
			if err != nil {
				t.Fatal(err)
			}
			mis = append(mis, m)
		case op < 55:
			what = "create credential"
			m := mis[rng.IntN(len(mis))]
			f := directory.FederatedCredential{TenantID: tid, ParentKind: directory.ParentManagedIdentity, ParentClientID: m.ClientID, ID: directory.NewID(),
				Name: fmt.Sprintf("c-%03d", step), Issuer: issuers[rng.IntN(len(issuers))], Subject: fmt.Sprintf("sub-%d", step), Audiences: []string{directory.DefaultAudience}}
			if rng.IntN(4) == 0 {
				f.Subject, f.ClaimsMatchingExpression = "", &directory.ClaimsMatchingExpression{Value: "claims['sub'] matches 'repo:o/*'", LanguageVersion: 1}
			}
			if _, err := st.CreateFederatedCredential(ctx, f); err != nil && !strings.Contains(err.Error(), "most allowed") {
				t.Fatal(err)
			}
		case op < 65:
			what = "update credential"
			m := mis[rng.IntN(len(mis))]
			fs, _ := st.ListFederatedCredentials(ctx, tid, m.ClientID)
			if len(fs) > 0 {
				f := fs[rng.IntN(len(fs))]
				if _, err := st.UpdateFederatedCredential(ctx, tid, m.ClientID, f.Name, func(f *directory.FederatedCredential) error {
					f.Subject, f.ClaimsMatchingExpression = fmt.Sprintf("changed-%d", step), nil
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
		case op < 75:
			what = "delete credential"
			m := mis[rng.IntN(len(mis))]
			fs, _ := st.ListFederatedCredentials(ctx, tid, m.ClientID)
			if len(fs) > 0 {
				if err := st.DeleteFederatedCredential(ctx, tid, m.ClientID, fs[0].Name); err != nil {
					t.Fatal(err)
				}
			}
		case op < 85:
			what = "update identity"
			m := mis[rng.IntN(len(mis))]
			if _, err := st.UpdateManagedIdentity(ctx, tid, store.IdentityRef{SubscriptionID: m.SubscriptionID, ResourceGroup: m.ResourceGroup, Name: m.Name}, func(m *directory.ManagedIdentity) error {
				m.Tags = map[string]string{"step": fmt.Sprint(step)}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		case op < 92:
			what = "assign a role"
			m := mis[rng.IntN(len(mis))]
			_, _ = st.CreateAppRoleAssignment(ctx, directory.AppRoleAssignment{TenantID: tid, ID: directory.NewID(), PrincipalID: m.PrincipalID, ResourceAppID: app.AppID, AppRoleID: app.AppRoles[0].ID})
		default:
			what = "delete identity"
			i := rng.IntN(len(mis))
			m := mis[i]
			if err := st.DeleteManagedIdentity(ctx, tid, store.IdentityRef{SubscriptionID: m.SubscriptionID, ResourceGroup: m.ResourceGroup, Name: m.Name}); err != nil {
				t.Fatal(err)
			}
			mis = append(mis[:i], mis[i+1:]...)
		}
		// Sometimes several writes land between two refreshes.
		if rng.IntN(3) == 0 {
			continue
		}
		if err := dc.refresh(ctx, rng.IntN(2) == 0); err != nil {
			t.Fatal(err)
		}
		snap, err := st.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		full, err := buildIndex(snap)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := dumpIndex(dc.load()), dumpIndex(full); got != want {
			t.Fatalf("step %d (%s): the patched index differs from a rebuild:\n--- patched\n%s\n--- rebuilt\n%s", step, what, got, want)
		}
	}
	if n := dc.applied.Load(); n < 50 {
		t.Fatalf("only %d refreshes applied changes; the rest rebuilt", n)
	}
	t.Logf("%d of the refreshes applied changes", dc.applied.Load())
}
