package admin_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/sqlite"
	"github.com/wif-project/wif/internal/sts"
	"github.com/wif-project/wif/internal/stsserver"
	"github.com/wif-project/wif/internal/tlsutil"
	"github.com/wif-project/wif/internal/wiftest"
)

// env is a real token service (stsserver, as wif serve runs it) over
// loopback HTTPS with a real SQLite store, serving the admin API, plus an
// external test issuer whose tokens the service trusts.
type env struct {
	URL      string
	CAFile   string
	Client   *http.Client
	Store    store.Store
	Issuer   *wiftest.Issuer
	Server   *stsserver.Server
	TenantA  string
	TenantB  string
	changes  atomic.Int64
	adminApp map[string]directory.Application
}

func startEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "wif.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	e := &env{Store: st, Issuer: wiftest.NewIssuer(t), TenantA: directory.NewID(), TenantB: directory.NewID(), adminApp: map[string]directory.Application{}}
	for _, tid := range []string{e.TenantA, e.TenantB} {
		if _, err := st.CreateTenant(ctx, directory.Tenant{ID: tid, DisplayName: "tenant " + tid[:8]}); err != nil {
			t.Fatal(err)
		}
		app, err := admin.EnsureAdminApp(ctx, st, tid)
		if err != nil {
			t.Fatal(err)
		}
		e.adminApp[tid] = app
	}
	ca, err := tlsutil.NewCA("admin test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	// The CA file trusts both the service and the test issuer, so the CLI
	// can fetch the issuer's discovery document too.
	issuerPEM := tlsutil.CertPEM(tls.Certificate{Certificate: [][]byte{e.Issuer.Server.Certificate().Raw}})
	if err := os.WriteFile(e.CAFile, append(append([]byte{}, ca.CertPEM...), issuerPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := httpx.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var srv *stsserver.Server
	srv, err = stsserver.New(ctx, stsserver.Config{
		Store: st, Listener: ln,
		TLS:              tlsutil.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }),
		IssuerHTTPClient: e.Issuer.Server.Client(), AllowPrivateIssuers: true, // the test issuer is on loopback
		DisableAdmin: true, // mounted below with the test's own hooks
		Mount: func(mux *http.ServeMux, svc *sts.Service) {
			publicURL := "https://" + ln.Addr().String()
			h, err := admin.NewForTokenService(admin.ServiceConfig{
				Store: st, PublicURL: publicURL, OperatorTenant: e.TenantA,
				// srv is set once New returns, before any request.
				VerifySignature: func(raw string) ([]byte, error) { return srv.Keys.Verify(raw) },
				Tester:          svc,
				OnChange: func() {
					e.changes.Add(1)
					_ = svc.DirectoryChanged(context.Background())
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			h.Mount(mux)
		},
	})
	if err != nil {
		t.Fatalf("start token service: %v", err)
	}
	e.Server, e.URL = srv, srv.URL
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("token service: %v", err)
		}
		st.Close()
	})
	pool := ca.Pool()
	pool.AddCert(e.Issuer.Server.Certificate())
	e.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return e
}

// principal creates, directly in the store, an identity in tenant tid whose
// federated credential trusts the test issuer for
// system:serviceaccount:default:<name>, with the given admin roles.
func (e *env) principal(t *testing.T, tid, name string, roles ...string) directory.ManagedIdentity {
	t.Helper()
	ctx := context.Background()
	mi, err := e.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: tid, SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup: "admins", Name: name, ClientID: directory.NewID(), PrincipalID: directory.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: tid, ParentKind: directory.ParentManagedIdentity,
		ParentClientID: mi.ClientID, ID: directory.NewID(), Name: "ci-cred", Issuer: e.Issuer.URL, Subject: "system:serviceaccount:default:" + name,
		Audiences: []string{directory.DefaultAudience}}); err != nil {
		t.Fatal(err)
	}
	app := e.adminApp[tid]
	for _, r := range roles {
		var roleID string
		for _, ar := range app.AppRoles {
			if ar.Value == r {
				roleID = ar.ID
			}
		}
		if _, err := e.Store.CreateAppRoleAssignment(ctx, directory.AppRoleAssignment{TenantID: tid, ID: directory.NewID(),
			PrincipalID: mi.PrincipalID, ResourceAppID: app.AppID, AppRoleID: roleID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	return mi
}

// token gets a real admin token for an identity made by principal: the
// Azure SDK exchanges the test issuer's assertion at the token service.
func (e *env) token(t *testing.T, tid string, mi directory.ManagedIdentity) string {
	t.Helper()
	assertion := e.Issuer.Mint(t, "system:serviceaccount:default:"+mi.Name, directory.DefaultAudience, time.Hour)
	cred, err := azidentity.NewClientAssertionCredential(tid, mi.ClientID, func(context.Context) (string, error) { return assertion, nil },
		&azidentity.ClientAssertionCredentialOptions{ClientOptions: azcore.ClientOptions{
			Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.URL + "/"}, Transport: e.Client}, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{admin.AdminResource + "/.default"}})
	if err != nil {
		t.Fatalf("get admin token: %v", err)
	}
	return tok.Token
}

// reply is a response with its decoded error, if any.
type reply struct {
	status int
	header http.Header
	body   []byte
	err    admin.ErrorDetail
}

func (e *env) do(t *testing.T, token, method, path string, hdr map[string]string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.StatusCode >= 400 {
		var eb admin.ErrorBody
		if err := json.Unmarshal(data, &eb); err != nil {
			t.Fatalf("%s %s: %d reply is not a JSON error: %s", method, path, resp.StatusCode, data)
		}
		r.err = eb.Error
	}
	return r
}

func identityURL(tid, rg, name string) string {
	return admin.IdentityPath(tid, "00000000-0000-0000-0000-000000000000", rg, name)
}
