package devenv

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// SeedResult holds the ids of the seeded objects.
type SeedResult struct {
	TenantID      string
	ClientID      string
	PrincipalID   string
	ResourceAppID string
	// Changes counts what this run changed (0 on a restart with nothing new).
	Changes int
}

// Document returns the directory wif dev keeps: a tenant, the managed
// identity "demo" whose credential trusts issuerURL for
// system:serviceaccount:default:demo, and the resource application
// api://provider-api whose role Data.Read is assigned to the identity.
func Document(tenantID, issuerURL string) *apply.Document {
	return &apply.Document{Tenants: []apply.Tenant{{
		ID:          tenantID,
		DisplayName: TenantDisplayName,
		Applications: []apply.Application{{
			DisplayName:                 ResourceDisplayName,
			IdentifierURIs:              []string{ResourceURI},
			RequestedAccessTokenVersion: 2,
			AppRoles: []apply.AppRole{{
				Value: ResourceRole, DisplayName: "Read data", Description: "Read the demo provider API's data",
				AllowedMemberTypes: []string{directory.MemberTypeApplication},
			}},
		}},
		ManagedIdentities: []apply.ManagedIdentity{{
			Name:          IdentityName,
			ResourceGroup: ResourceGroup,
			FederatedCredentials: []apply.FederatedCredential{{
				Name:      CredentialName,
				Issuer:    issuerURL,
				Subject:   "system:serviceaccount:" + Namespace + ":" + ServiceAccount,
				Audiences: []string{directory.DefaultAudience},
			}},
		}},
		AppRoleAssignments: []apply.Assignment{{Principal: IdentityName, Resource: ResourceURI, Role: ResourceRole}},
	}}}
}

// Seed makes the store hold Document: on the first run it creates
// everything with new ids; later runs keep every id and only change what
// differs (the issuer URL, if the issuer's port changed).
func Seed(ctx context.Context, st store.Store, issuerURL string) (SeedResult, error) {
	tenants, err := st.ListTenants(ctx)
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", err)
	}
	tenantID := ""
	for _, t := range tenants {
		if t.DisplayName == TenantDisplayName {
			tenantID = t.ID
			break
		}
	}
	if tenantID == "" {
		tenantID = uuid.NewString()
	}
	res, err := apply.Apply(ctx, st, Document(tenantID, issuerURL), apply.Options{})
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed the dev directory: %w", err)
	}
	// The admin resource, as every tenant has it: az asks for a token for
	// it (the Resource Manager audience of /metadata/endpoints).
	if _, err := admin.EnsureAdminApp(ctx, st, tenantID); err != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", err)
	}
	mis, err := st.ListManagedIdentities(ctx, tenantID, store.IdentityFilter{ResourceGroup: ResourceGroup})
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", err)
	}
	out := SeedResult{TenantID: tenantID, Changes: res.Applied}
	for _, m := range mis {
		if strings.EqualFold(m.Name, IdentityName) {
			out.ClientID, out.PrincipalID = m.ClientID, m.PrincipalID
		}
	}
	apps, err := st.ListApplications(ctx, tenantID)
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", err)
	}
	for _, a := range apps {
		for _, u := range a.IdentifierURIs {
			if u == ResourceURI {
				out.ResourceAppID = a.AppID
			}
		}
	}
	if out.ClientID == "" || out.ResourceAppID == "" {
		return SeedResult{}, fmt.Errorf("seed: the identity %q or the application %s is missing after seeding", IdentityName, ResourceURI)
	}
	return out, nil
}
