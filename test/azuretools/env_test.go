package azuretools

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// sub is the subscription of wiftest's identities.
const sub = "00000000-0000-0000-0000-000000000001"

// adminEnv is a token service with a platform identity holding
// Directory.ReadWrite.All of api://wif-admin, and that identity's
// federated token (an assertion of the test issuer).
type adminEnv struct {
	*wiftest.Env
	clientID, assertion string
}

func startAdmin(t *testing.T) adminEnv {
	env := wiftest.Start(t, wiftest.WithCA(testCA))
	app, err := admin.EnsureAdminApp(context.Background(), env.Store, env.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	env.Changed(t)
	mi := env.CreateManagedIdentity(t, "terraform")
	env.Assign(t, mi.PrincipalID, app.AppID, admin.RoleReadWriteAll)
	return adminEnv{Env: env, clientID: mi.ClientID, assertion: env.Issuer.Mint(t, wiftest.Subject("terraform"), directory.DefaultAudience, time.Hour)}
}

// putGroup creates a resource group through Resource Manager's surface
// with the admin identity's token.
func putGroup(t *testing.T, e adminEnv, groupID string) {
	t.Helper()
	tok := e.Token(t, e.clientID, admin.AdminResource+"/.default")
	req, _ := http.NewRequest("PUT", e.URL+groupID+"?api-version=2021-04-01", strings.NewReader(`{"location":"westeurope"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create group %s: %d", groupID, resp.StatusCode)
	}
}
