package imds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// setAppServiceEnv points azidentity's managed-identity source detection at
// the App Service protocol of url (it reads the environment when the
// credential is built) and clears everything that would select another
// source. Tests using it cannot run in parallel.
func setAppServiceEnv(t *testing.T, url, header string) {
	t.Helper()
	for _, k := range []string{"IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_POD_IDENTITY_AUTHORITY_HOST"} {
		t.Setenv(k, "")
	}
	t.Setenv("IDENTITY_ENDPOINT", url+AppServiceTokenPath)
	t.Setenv("IDENTITY_HEADER", header)
}

// TestAzidentityManagedIdentityCredential: the unmodified Go SDK's
// ManagedIdentityCredential, App Service source from the environment, gets
// tokens through wif imds, and sees its refusals. The token endpoint behind
// it is the stub, so refusals can be provoked; TestRealAzidentity... runs
// the same SDK against the real token service. MSAL Go caches
// managed-identity tokens process-wide per resource, so each case asks for
// its own resource.
func TestAzidentityManagedIdentityCredential(t *testing.T) {
	f := newFixture(t, nil)
	f.clock.t = time.Now() // MSAL compares expiry with the real clock
	setAppServiceEnv(t, f.url, testHeader)
	ctx := context.Background()

	t.Run("system-assigned form", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://provider-api/.default"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(tok.Token, "|"+testClientID+"|api://provider-api/.default") {
			t.Errorf("token = %q", tok.Token)
		}
		if want := f.clock.Now().Add(3599 * time.Second).Truncate(time.Second); !tok.ExpiresOn.Equal(want) {
			t.Errorf("ExpiresOn = %v, want %v", tok.ExpiresOn, want)
		}
	})
	t.Run("user-assigned by this workload's client id", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(testClientID)})
		if err != nil {
			t.Fatal(err)
		}
		// A resource with a trailing '/', as ARM's is written.
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com//.default"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(tok.Token, "|"+testClientID+"|https://management.azure.com//.default") {
			t.Errorf("token = %q", tok.Token)
		}
	})
	t.Run("another identity is refused with our explanation", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID("99999999-9999-9999-9999-999999999999")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://other-id/.default"}})
		if err == nil || !strings.Contains(err.Error(), "holds the federated token of one workload") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("by resource id is refused", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ID: azidentity.ResourceID("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://by-res-id/.default"}})
		if err == nil || !strings.Contains(err.Error(), "selecting the identity by mi_res_id is not supported") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("token service refusal reaches the SDK", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://nofic/.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS700213") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong identity header", func(t *testing.T) {
		setAppServiceEnv(t, f.url, "not-the-right-header-value")
		cred, err := azidentity.NewManagedIdentityCredential(nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://wrong-header/.default"}})
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err = %v", err)
		}
	})
	checkNoProblems(t, f.sts)
}
