package azuretools

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-azure-helpers/resourcemanager/commonids"
	"github.com/hashicorp/go-azure-sdk/resource-manager/managedidentity/2023-01-31/managedidentities"
	"github.com/hashicorp/go-azure-sdk/resource-manager/managedidentity/2024-11-30/federatedidentitycredentials"
	"github.com/hashicorp/go-azure-sdk/resource-manager/managedidentity/2024-11-30/identities"
	"github.com/hashicorp/go-azure-sdk/sdk/auth"
	"github.com/hashicorp/go-azure-sdk/sdk/environments"

	"github.com/wif-project/wif/internal/admin"
)

// TestGoAzureSDK runs the clients Terraform's azurerm provider is built
// on: the environment loaded from wif's /metadata/endpoints (what
// `metadata_host` does), the OIDC authorizer with the federated token
// (`use_oidc`), and the managedidentity clients of API 2023-01-31 (azurerm's)
// and 2024-11-30 creating, reading, listing and deleting identities and
// federated credentials.
func TestGoAzureSDK(t *testing.T) {
	e := startAdmin(t)
	// go-azure-sdk requires a deadline (Terraform gives each operation one).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := environments.FromEndpoint(ctx, e.URL)
	if err != nil {
		t.Fatalf("load the environment from %s/metadata/endpoints: %v", e.URL, err)
	}
	if ep, ok := env.ResourceManager.Endpoint(); !ok || strings.TrimSuffix(*ep, "/") != e.URL {
		t.Fatalf("resource manager endpoint %v", ep)
	}
	if len(env.Authorization.Audiences) != 1 || env.Authorization.Audiences[0] != admin.AdminResource {
		t.Fatalf("audiences %v", env.Authorization.Audiences)
	}
	authorizer, err := auth.NewOIDCAuthorizer(ctx, auth.OIDCAuthorizerOptions{
		Environment: *env, Api: env.ResourceManager, TenantId: e.TenantID, ClientId: e.clientID, FederatedAssertion: e.assertion,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A group for the identities, through wif's admin surface (Terraform's
	// azurerm_resource_group uses the resources package the same way).
	groupID := commonids.NewResourceGroupID(sub, "tf-group")
	putGroup(t, e, groupID.ID())

	// API 2023-01-31: one client for identities and credentials.
	mic, err := managedidentities.NewManagedIdentitiesClientWithBaseURI(env.ResourceManager)
	if err != nil {
		t.Fatal(err)
	}
	mic.Client.Authorizer = authorizer
	id := commonids.NewUserAssignedIdentityID(sub, "tf-group", "tf-identity")
	tags := map[string]string{"managed-by": "terraform"}
	created, err := mic.UserAssignedIdentitiesCreateOrUpdate(ctx, id, managedidentities.Identity{Location: "westeurope", Tags: &tags})
	if err != nil {
		t.Fatalf("create identity: %v", err)
	}
	if m := created.Model; m == nil || m.Properties == nil || m.Properties.ClientId == nil || m.Properties.TenantId == nil || *m.Properties.TenantId != e.TenantID ||
		created.HttpResponse.StatusCode != http.StatusCreated {
		t.Fatalf("created: %+v", created.Model)
	}
	got, err := mic.UserAssignedIdentitiesGet(ctx, id)
	if err != nil || got.Model == nil || (*got.Model.Tags)["managed-by"] != "terraform" || *got.Model.Id != id.ID() {
		t.Fatalf("get identity: %+v %v", got.Model, err)
	}
	list, err := mic.UserAssignedIdentitiesListByResourceGroupComplete(ctx, groupID)
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list by group: %+v %v", list.Items, err)
	}
	subList, err := mic.UserAssignedIdentitiesListBySubscriptionComplete(ctx, commonids.NewSubscriptionID(sub))
	if err != nil || len(subList.Items) != 2 {
		t.Fatalf("list by subscription: %d %v", len(subList.Items), err)
	}
	ficID := managedidentities.NewFederatedIdentityCredentialID(sub, "tf-group", "tf-identity", "github")
	if _, err := mic.FederatedIdentityCredentialsCreateOrUpdate(ctx, ficID, managedidentities.FederatedIdentityCredential{
		Properties: &managedidentities.FederatedIdentityCredentialProperties{
			Issuer: "https://token.actions.githubusercontent.com", Subject: "repo:org/infra:ref:refs/heads/main", Audiences: []string{"api://AzureADTokenExchange"},
		},
	}); err != nil {
		t.Fatalf("create credential: %v", err)
	}
	fl, err := mic.FederatedIdentityCredentialsListComplete(ctx, id, managedidentities.DefaultFederatedIdentityCredentialsListOperationOptions())
	if err != nil || len(fl.Items) != 1 || fl.Items[0].Properties.Subject != "repo:org/infra:ref:refs/heads/main" {
		t.Fatalf("list credentials: %+v %v", fl.Items, err)
	}

	// API 2024-11-30: the separate clients.
	ic, err := identities.NewIdentitiesClientWithBaseURI(env.ResourceManager)
	if err != nil {
		t.Fatal(err)
	}
	ic.Client.Authorizer = authorizer
	fc, err := federatedidentitycredentials.NewFederatedIdentityCredentialsClientWithBaseURI(env.ResourceManager)
	if err != nil {
		t.Fatal(err)
	}
	fc.Client.Authorizer = authorizer
	if g, err := ic.UserAssignedIdentitiesGet(ctx, id); err != nil || *g.Model.Properties.ClientId != *created.Model.Properties.ClientId {
		t.Fatalf("get with 2024-11-30: %v", err)
	}
	fid := federatedidentitycredentials.NewFederatedIdentityCredentialID(sub, "tf-group", "tf-identity", "github")
	if g, err := fc.Get(ctx, fid); err != nil || g.Model.Properties.Issuer != "https://token.actions.githubusercontent.com" {
		t.Fatalf("get credential with 2024-11-30: %v", err)
	}
	if _, err := fc.Delete(ctx, fid); err != nil {
		t.Fatalf("delete credential: %v", err)
	}
	if g, err := fc.Get(ctx, fid); err == nil || g.HttpResponse == nil || g.HttpResponse.StatusCode != http.StatusNotFound {
		t.Fatalf("deleted credential: %v", err)
	}
	if _, err := ic.UserAssignedIdentitiesDelete(ctx, id); err != nil {
		t.Fatalf("delete identity: %v", err)
	}
	g, err := mic.UserAssignedIdentitiesGet(ctx, id)
	if err == nil || g.HttpResponse == nil || g.HttpResponse.StatusCode != http.StatusNotFound {
		t.Fatalf("deleted identity: %v", err)
	}
}
