package azuretools

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/wif-project/wif/internal/admin"
)

// wifCloud is wif as a custom cloud for the Azure SDK for Go: its host is
// the authority and Resource Manager at once; Resource Manager's
// audience is the admin API's.
func wifCloud(url string) cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: url + "/",
		Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Audience: admin.AdminResource, Endpoint: url}},
	}
}

// TestArmMSI creates, reads, lists, updates and deletes identities and
// federated credentials with armmsi (API 2024-11-30) and the resource
// group with armresources, as a Go program or Pulumi would.
func TestArmMSI(t *testing.T) {
	e := startAdmin(t)
	ctx := context.Background()
	cfg := wifCloud(e.URL)
	cred, err := azidentity.NewClientAssertionCredential(e.TenantID, e.clientID, func(context.Context) (string, error) { return e.assertion, nil },
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: azcore.ClientOptions{Cloud: cfg}, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	opts := &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Cloud: cfg}}
	groups, err := armresources.NewResourceGroupsClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "mi-test-group", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatalf("create resource group: %v", err)
	}
	exists, err := groups.CheckExistence(ctx, "mi-test-group", nil)
	if err != nil || !exists.Success {
		t.Fatalf("check existence: %+v %v", exists, err)
	}
	ids, err := armmsi.NewUserAssignedIdentitiesClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	created, err := ids.CreateOrUpdate(ctx, "mi-test-group", "managed-identity-test", armmsi.Identity{
		Location: to.Ptr("westeurope"), Tags: map[string]*string{"team": to.Ptr("platform")},
	}, nil)
	if err != nil {
		t.Fatalf("create identity: %v", err)
	}
	p := created.Properties
	if p == nil || p.ClientID == nil || p.PrincipalID == nil || p.TenantID == nil || *p.TenantID != e.TenantID ||
		*created.Name != "managed-identity-test" || *created.Type != "Microsoft.ManagedIdentity/userAssignedIdentities" {
		t.Fatalf("created identity: %+v", created.Identity)
	}
	got, err := ids.Get(ctx, "mi-test-group", "managed-identity-test", nil)
	if err != nil || *got.Properties.ClientID != *p.ClientID || *got.Tags["team"] != "platform" {
		t.Fatalf("get identity: %+v %v", got, err)
	}
	upd, err := ids.Update(ctx, "mi-test-group", "managed-identity-test", armmsi.IdentityUpdate{Tags: map[string]*string{"team": to.Ptr("identity")}}, nil)
	if err != nil || *upd.Tags["team"] != "identity" {
		t.Fatalf("update identity: %+v %v", upd, err)
	}
	n := 0
	for pager := ids.NewListByResourceGroupPager("mi-test-group", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list by group: %v", err)
		}
		n += len(page.Value)
	}
	m := 0
	for pager := ids.NewListBySubscriptionPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list by subscription: %v", err)
		}
		m += len(page.Value)
	}
	if n != 1 || m != 2 { // the platform identity and this one
		t.Fatalf("listed %d in the group, %d in the subscription", n, m)
	}

	fics, err := armmsi.NewFederatedIdentityCredentialsClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := fics.CreateOrUpdate(ctx, "mi-test-group", "managed-identity-test", "managed-identity-test-fed-cred", armmsi.FederatedIdentityCredential{
		Properties: &armmsi.FederatedIdentityCredentialProperties{
			Issuer:    to.Ptr("https://oidc.prod-aks.azure.com/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/"),
			Subject:   to.Ptr("system:serviceaccount:platform:managed-identity-test"),
			Audiences: []*string{to.Ptr("api://AzureADTokenExchange")},
		},
	}, nil)
	if err != nil || *fc.Name != "managed-identity-test-fed-cred" || *fc.Properties.Subject != "system:serviceaccount:platform:managed-identity-test" {
		t.Fatalf("create credential: %+v %v", fc, err)
	}
	k := 0
	for pager := fics.NewListPager("mi-test-group", "managed-identity-test", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list credentials: %v", err)
		}
		k += len(page.Value)
	}
	if k != 1 {
		t.Fatalf("listed %d credentials", k)
	}
	if _, err := fics.Delete(ctx, "mi-test-group", "managed-identity-test", "managed-identity-test-fed-cred", nil); err != nil {
		t.Fatalf("delete credential: %v", err)
	}
	_, err = fics.Get(ctx, "mi-test-group", "managed-identity-test", "managed-identity-test-fed-cred", nil)
	wantResponseError(t, "deleted credential", err, http.StatusNotFound, "ResourceNotFound")
	if _, err := ids.Delete(ctx, "mi-test-group", "managed-identity-test", nil); err != nil {
		t.Fatalf("delete identity: %v", err)
	}
	_, err = ids.Get(ctx, "mi-test-group", "managed-identity-test", nil)
	wantResponseError(t, "deleted identity", err, http.StatusNotFound, "ResourceNotFound")
	_, err = ids.Get(ctx, "no-such-group", "x", nil)
	wantResponseError(t, "missing group", err, http.StatusNotFound, "ResourceGroupNotFound")

	poller, err := groups.BeginDelete(ctx, "mi-test-group", nil)
	if err != nil {
		t.Fatalf("delete group: %v", err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		t.Fatalf("delete group: %v", err)
	}
	if exists, err := groups.CheckExistence(ctx, "mi-test-group", nil); err != nil || exists.Success {
		t.Fatalf("deleted group exists: %+v %v", exists, err)
	}
}

func wantResponseError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
}
