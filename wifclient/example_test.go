package wifclient_test

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wif-project/wif/wifclient"
)

func ExampleNew() {
	// In a pod set up by the workload identity webhook (or wif's), the
	// credential reads AZURE_CLIENT_ID, AZURE_TENANT_ID,
	// AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST.
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		DisableInstanceDiscovery: true, // needed for a wif token service
	})
	if err != nil {
		return // not in such a pod
	}
	client := &http.Client{Transport: wifclient.New(cred, "api://provider-api/.default")}
	resp, err := client.Get("https://provider.example/data")
	if err == nil {
		resp.Body.Close()
	}
}
