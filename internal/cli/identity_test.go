package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/sts"
	"github.com/wif-project/wif/internal/stsserver"
	"github.com/wif-project/wif/internal/tlsutil"
	"github.com/wif-project/wif/internal/wiftest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// adminEnv is a real token service over loopback HTTPS serving the admin
// API, as wif serve (or, with loopback, wif dev) runs it.
type adminEnv struct {
	URL     string
	CAFile  string
	Tenant  string
	Store   store.Store
	Server  *stsserver.Server
	Issuer  *wiftest.Issuer
	pool    *tls.Config
	caPEM   []byte
	cleanup func()
}

// startAdminEnv starts the service; loopback lets unauthenticated calls
// from loopback through (wif dev).
func startAdminEnv(t *testing.T, loopback bool) *adminEnv {
	t.Helper()
	return startAdminEnvOn(t, loopback, memory.New())
}

// startAdminEnvOn is startAdminEnv on a given store (one with a test
// clock, say).
func startAdminEnvOn(t *testing.T, loopback bool, st store.Store) *adminEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &adminEnv{Store: st, Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", Issuer: wiftest.NewIssuer(t)}
	if _, err := st.CreateTenant(ctx, directory.Tenant{ID: e.Tenant, DisplayName: "Contoso"}); err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.NewCA("cli test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// One CA file trusts the service and every httptest server (they share
	// Go's test certificate), like a cluster CA bundle would.
	e.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	testCert := tlsutil.CertPEM(tls.Certificate{Certificate: [][]byte{e.Issuer.Server.Certificate().Raw}})
	if err := os.WriteFile(e.CAFile, append(append([]byte{}, ca.CertPEM...), testCert...), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := httpx.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var srv *stsserver.Server
	srv, err = stsserver.New(ctx, stsserver.Config{
		Store: st, Listener: ln, IssuerHTTPClient: e.Issuer.Server.Client(), AllowPrivateIssuers: true, // the test issuer is on loopback
		TLS:          tlsutil.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }),
		DisableAdmin: true, // mounted below with the test's own hooks
		Mount: func(mux *http.ServeMux, svc *sts.Service) {
			h, err := admin.NewHandler(admin.Config{Store: st, Keys: lazyKeys{func() *jose.Manager { return srv.Keys }}, Tester: svc,
				Authorizer: &admin.TokenAuthorizer{AllowLoopback: loopback, Directory: st, OperatorTenant: e.Tenant,
					Verify: admin.NewVerifier(func(raw string) ([]byte, error) { return srv.Keys.Verify(raw) }, admin.Issuers("https://"+ln.Addr().String(), false), nil)},
				OnChange: func() { _ = svc.DirectoryChanged(context.Background()) }})
			if err != nil {
				t.Fatal(err)
			}
			h.Mount(mux)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Server, e.URL = srv, srv.URL
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e
}

// lazyKeys is the token service's key manager, known only once
// stsserver.New has returned (the admin API is mounted inside it).
type lazyKeys struct{ m func() *jose.Manager }

func (k lazyKeys) Keys(ctx context.Context) ([]jose.KeyInfo, error) { return k.m().Keys(ctx) }
func (k lazyKeys) Rotate(ctx context.Context, now bool) (jose.KeyInfo, error) {
	return k.m().Rotate(ctx, now)
}
func (k lazyKeys) Retire(ctx context.Context, kid string) (jose.KeyInfo, error) {
	return k.m().Retire(ctx, kid)
}
func (k lazyKeys) Rewrap(ctx context.Context, id string) (jose.RewrapResult, error) {
	return k.m().Rewrap(ctx, id)
}

// env is the environment the CLI sees: the server, its CA and the tenant.
func (e *adminEnv) env(extra ...string) map[string]string {
	m := map[string]string{"WIF_SERVER": e.URL, "WIF_CA_FILE": e.CAFile, "WIF_TENANT": e.Tenant}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// run runs the wif CLI in-process and returns stdout and stderr.
func run(t *testing.T, env map[string]string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := RunWithEnv(context.Background(), Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, args,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return out.String(), errOut.String(), err
}

func mustRun(t *testing.T, env map[string]string, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := run(t, env, "", args...)
	if err != nil {
		t.Fatalf("wif %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out, errOut
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// oidcIssuer serves a discovery document at {URL}/{path}/.well-known/...
// naming issuer docIssuer, like AKS's issuer (which ends in '/').
func oidcIssuer(t *testing.T) (srv *httptest.Server, issuerWithSlash string) {
	t.Helper()
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": "https://" + r.Host + "/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/",
			"jwks_uri": "https://" + r.Host + "/openid/v1/jwks"})
	}))
	t.Cleanup(srv.Close)
	return srv, srv.URL + "/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/"
}

// TestSeed002Verbatim runs seed 002's command sequence with wif in place of
// az, and catches its classic mistake.
func TestSeed002Verbatim(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	// az identity create, then az identity federated-credential create, as
	// in seed 002 (the AKS issuer is unreachable here, so no check runs).
	mustRun(t, env, "identity", "create", "--name", "managed-identity-test", "--resource-group", "mi-test-group")
	out, errOut := mustRun(t, env, "identity", "federated-credential", "create",
		"--name", "managed-identity-test-fed-cred",
		"--identity-name", "managed-identity-test",
		"--resource-group", "mi-test-group",
		"--issuer", "https://oidc.prod-aks.azure.com/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/",
		"--subject", "system:serviceaccount:platform:managed-identity-test")
	if errOut != "" {
		t.Errorf("unexpected stderr: %s", errOut)
	}
	golden(t, "seed002-fic-create", out)
	// The client id for the ServiceAccount annotation, as az users get it.
	clientID, _ := mustRun(t, env, "identity", "show", "--name", "managed-identity-test", "--resource-group", "mi-test-group", "--query", "clientId", "-otsv")
	mi, err := e.Store.GetManagedIdentityByClientID(context.Background(), e.Tenant, strings.TrimSpace(clientID))
	if err != nil || mi.Name != "managed-identity-test" {
		t.Fatalf("--query clientId -otsv printed %q: %v", clientID, err)
	}
	// The credential is stored exactly as given.
	f, err := e.Store.GetFederatedCredential(context.Background(), e.Tenant, mi.ClientID, "managed-identity-test-fed-cred")
	if err != nil || f.Issuer != "https://oidc.prod-aks.azure.com/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/" ||
		f.Subject != "system:serviceaccount:platform:managed-identity-test" || f.Audience() != directory.DefaultAudience {
		t.Fatalf("stored credential %+v: %v", f, err)
	}
}

func TestTrailingSlashWarning(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	_, good := oidcIssuer(t)
	mustRun(t, env, "identity", "create", "-n", "managed-identity-test", "-g", "mi-test-group")
	tests := []struct {
		name, issuer, wantStderr string
	}{
		{"missing trailing slash", strings.TrimSuffix(good, "/"), "WARNING: the issuer's discovery document (" + good + ".well-known/openid-configuration) names its issuer \"" + good + "\", but --issuer is \"" + strings.TrimSuffix(good, "/") + "\" (a missing trailing slash).\n" +
			"Tokens from this issuer carry iss \"" + good + "\" and will not match this credential; the exchange will fail with AADSTS700211.\n" +
			"Fix: use --issuer " + good + "\n"},
		{"exact issuer", good, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := run(t, env, "", "identity", "federated-credential", "create",
				"--name", "fic-"+string(rune('a'+i)), "--identity-name", "managed-identity-test", "--resource-group", "mi-test-group",
				"--issuer", tt.issuer, "--subject", "system:serviceaccount:platform:sa-"+string(rune('a'+i)))
			if err != nil {
				t.Fatal(err)
			}
			if errOut != tt.wantStderr {
				t.Fatalf("stderr:\n%s\nwant:\n%s", errOut, tt.wantStderr)
			}
		})
	}
}

// fixture is a directory with fixed ids, so human output is stable.
const fixture = `tenants:
- id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  displayName: Contoso
  applications:
  - displayName: provider-api
    appId: 11111111-1111-1111-1111-111111111111
    objectId: 11111111-1111-1111-1111-0000000000a1
    servicePrincipalId: 11111111-1111-1111-1111-0000000000b1
    identifierUris: [api://provider-api]
    requestedAccessTokenVersion: 2
    appRoles:
    - {value: Data.Read, id: 11111111-1111-1111-1111-0000000000c1}
    - {value: Data.Write, id: 11111111-1111-1111-1111-0000000000c2}
  managedIdentities:
  - name: demo
    resourceGroup: rg
    location: westeurope
    clientId: 22222222-2222-2222-2222-2222222222a1
    principalId: 22222222-2222-2222-2222-2222222222b1
    federatedCredentials:
    - name: kubernetes-demo
      issuer: https://127.0.0.1:6443
      subject: system:serviceaccount:default:demo
    - name: github-main
      issuer: https://token.actions.githubusercontent.com
      subject: repo:contoso/app:ref:refs/heads/main
  - name: worker
    resourceGroup: rg
    clientId: 33333333-3333-3333-3333-3333333333a1
    principalId: 33333333-3333-3333-3333-3333333333b1
  appRoleAssignments:
  - {principal: demo, resource: api://provider-api, role: Data.Read}
  - {principal: worker, resource: api://provider-api, role: Data.Write}
`

func TestHumanOutputGolden(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	out, _, err := run(t, env, fixture, "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "apply-create", out)
	tests := []struct {
		name string
		args []string
	}{
		{"identity-list", []string{"identity", "list"}},
		{"identity-show", []string{"identity", "show", "-n", "demo", "-g", "rg"}},
		{"identity-show-json", []string{"identity", "show", "-n", "demo", "-g", "rg", "-o", "json"}},
		{"identity-show-yaml", []string{"identity", "show", "-n", "demo", "-g", "rg", "-o", "yaml"}},
		{"identity-list-tsv", []string{"identity", "list", "-o", "tsv"}},
		{"identity-list-query", []string{"identity", "list", "--query", "[].{name:name, clientId:clientId}"}},
		{"fic-list", []string{"identity", "federated-credential", "list", "--identity-name", "demo", "-g", "rg"}},
		{"fic-show", []string{"identity", "federated-credential", "show", "-n", "kubernetes-demo", "--identity-name", "demo", "-g", "rg"}},
		{"app-list", []string{"app", "list"}},
		{"app-list-query-tsv", []string{"app", "list", "--display-name", "provider-api", "--query", "[0].appId", "-otsv"}},
		{"app-list-query-filter", []string{"app", "list", "--query", "[?requestedAccessTokenVersion==`2`].{name:displayName, roles:length(appRoles)}", "-o", "json"}},
		{"role-list", []string{"role", "list"}},
		{"audit-list-empty", []string{"audit", "list"}},
		{"serviceaccount-create", []string{"serviceaccount", "create", "--name", "demo", "--namespace", "default", "--issuer", "https://127.0.0.1:6443", "--identity-name", "demo", "-g", "rg", "--skip-issuer-check"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := mustRun(t, env, tt.args...)
			golden(t, tt.name, out)
		})
	}
	// A changed document, dry run: the diff, and nothing changes.
	changed := strings.Replace(fixture, "location: westeurope", "location: northeurope", 1)
	changed = strings.Replace(changed, "  - {principal: worker, resource: api://provider-api, role: Data.Write}\n", "", 1)
	out, errOut, err := run(t, env, changed, "apply", "-f", "-", "--dry-run", "--prune")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "apply-dry-run", out)
	if errOut != "(dry run: nothing was changed)\n" {
		t.Errorf("stderr %q", errOut)
	}
	again, _, _ := run(t, env, changed, "apply", "-f", "-", "--dry-run", "--prune")
	if again != out {
		t.Errorf("the dry run changed something: second plan differs")
	}
}

func TestCLIErrors(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing identity", []string{"identity", "show", "-n", "nope", "-g", "rg"}, `NotFound (HTTP 404): the managed identity "nope" does not exist in resource group "rg"`},
		{"bad issuer", []string{"identity", "federated-credential", "create", "-n", "cred", "--identity-name", "x", "-g", "rg", "--issuer", "x", "--subject", "s"}, "NotFound"},
		{"bad output", []string{"identity", "list", "-o", "xml"}, "--output must be table, json, yaml, tsv or none"},
		{"bad query", []string{"identity", "list", "--query", "[["}, "--query"},
		{"required flag", []string{"identity", "create", "-n", "x"}, `required flag(s) "resource-group" not set`},
		{"http server", []string{"identity", "list", "--server", "http://127.0.0.1:1"}, "--server must be an https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, env, "", tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	// Validation errors name the field and the rule.
	mustRun(t, env, "identity", "create", "-n", "ident", "-g", "rg")
	_, _, err := run(t, env, "", "identity", "federated-credential", "create", "-n", "cred", "--identity-name", "ident", "-g", "rg",
		"--issuer", "http://insecure.example", "--subject", "s")
	if err == nil || !strings.Contains(err.Error(), "ValidationError (HTTP 400): issuer: must be an https URL") {
		t.Fatalf("error %v", err)
	}
}

func TestShellCompletion(t *testing.T) {
	out, _, err := run(t, map[string]string{}, "", "completion", "bash")
	if err != nil || !strings.Contains(out, "__start_wif") {
		t.Fatalf("completion bash: %v, %.100s", err, out)
	}
}

func TestAppFederatedCredential(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	if _, _, err := run(t, env, fixture, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	_, good := oidcIssuer(t)
	const app = "11111111-1111-1111-1111-111111111111"
	_, errOut := mustRun(t, env, "app", "federated-credential", "create", "--id", app, "-n", "aks-prod",
		"--issuer", strings.TrimSuffix(good, "/"), "--subject", "system:serviceaccount:prod:api")
	if !strings.Contains(errOut, "Fix: use --issuer "+good+"\n") {
		t.Errorf("no trailing-slash warning: %q", errOut)
	}
	mustRun(t, env, "app", "federated-credential", "create", "--id", app, "-n", "github-deploy", "--skip-issuer-check",
		"--issuer", "https://token.actions.githubusercontent.com", "--subject", "repo:contoso/app:environment:prod")
	mustRun(t, env, "app", "federated-credential", "delete", "--id", app, "-n", "aks-prod")
	out, _ := mustRun(t, env, "app", "federated-credential", "list", "--id", app)
	golden(t, "app-fic-list", out)
	out, _ = mustRun(t, env, "app", "federated-credential", "show", "--id", app, "-n", "github-deploy", "--query", "subject", "-o", "tsv")
	if out != "repo:contoso/app:environment:prod\n" {
		t.Errorf("show --query subject: %q", out)
	}
}
