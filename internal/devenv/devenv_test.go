package devenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/store/stores"
)

func memConfig(dir string) Config {
	return Config{
		StateDir:       dir,
		InMemory:       true,
		RandomPorts:    true,
		NewMemoryStore: func() store.Store { return memory.New() },
	}
}

func caClient(t testing.TB, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA in " + caFile)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// sdkToken gets a token the way a workload does: azidentity's workload
// identity credential with the env the dev environment hands out.
func sdkToken(t testing.TB, env Env, client *http.Client) string {
	t.Helper()
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientID: env.ClientID, TenantID: env.TenantID, TokenFilePath: env.TokenFile,
		DisableInstanceDiscovery: true,
		ClientOptions:            policy.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: env.AuthorityHost}, Transport: client},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{ResourceURI + "/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	return tok.Token
}

func callAPI(t testing.TB, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStartInProcess(t *testing.T) {
	dir := t.TempDir()
	d, err := Start(context.Background(), memConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	env := d.Env()
	t.Logf("ready in %s", d.ReadyIn)
	client := caClient(t, env.CAFile)

	tok := sdkToken(t, env, client)
	code, body := callAPI(t, client, env.DemoAPIURL, tok)
	if code != 200 {
		t.Fatalf("demo API: %d %s", code, body)
	}
	var got struct {
		Message string `json:"message"`
		Caller  struct {
			OID      string   `json:"oid"`
			ClientID string   `json:"clientId"`
			Roles    []string `json:"roles"`
			TID      string   `json:"tid"`
		} `json:"caller"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Caller.OID != env.PrincipalID || got.Caller.ClientID != env.ClientID || got.Caller.TID != env.TenantID ||
		len(got.Caller.Roles) != 1 || got.Caller.Roles[0] != ResourceRole {
		t.Errorf("caller = %+v, want oid %s client %s role %s", got.Caller, env.PrincipalID, env.ClientID, ResourceRole)
	}
	if code, body := callAPI(t, client, env.DemoAPIURL, ""); code != 401 {
		t.Errorf("no token: %d %s, want 401", code, body)
	}

	// Through the gateway: the same answer for the demo identity's token,
	// 401 without one, and the policy refuses a token for another audience.
	if code, gwBody := callAPI(t, client, env.GatewayURL, tok); code != 200 || gwBody != body {
		t.Errorf("through the gateway: %d %s, want 200 %s", code, gwBody, body)
	}
	if code, body := callAPI(t, client, env.GatewayURL, ""); code != 401 {
		t.Errorf("gateway without a token: %d %s, want 401", code, body)
	}
	if !strings.HasPrefix(env.GatewayURL, "https://127.0.0.1:") || !strings.HasSuffix(env.GatewayURL, DemoAPIPath) {
		t.Errorf("gateway URL %q", env.GatewayURL)
	}

	envFile, err := os.ReadFile(filepath.Join(dir, EnvFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"export AZURE_AUTHORITY_HOST='" + env.AuthorityHost + "'\n",
		"export AZURE_TENANT_ID='" + env.TenantID + "'\n",
		"export AZURE_CLIENT_ID='" + env.ClientID + "'\n",
		"export AZURE_FEDERATED_TOKEN_FILE='" + filepath.Join(dir, TokenFile) + "'\n",
		"export SSL_CERT_FILE='" + filepath.Join(dir, CABundleFile) + "'\n",
		"export NODE_EXTRA_CA_CERTS='" + filepath.Join(dir, CAFile) + "'\n",
		"export IDENTITY_ENDPOINT='http://127.0.0.1:",
		"export IDENTITY_HEADER='",
		"export WIF_GATEWAY_URL='" + env.GatewayURL + "'\n",
		"export WIF_DEMO_API_URL='" + env.DemoAPIURL + "'\n",
	} {
		if !strings.Contains(string(envFile), want) {
			t.Errorf("env file lacks %q:\n%s", want, envFile)
		}
	}
	if !strings.HasSuffix(env.AuthorityHost, "/") {
		t.Errorf("AZURE_AUTHORITY_HOST %q lacks the trailing '/'", env.AuthorityHost)
	}

	// The managed-identity endpoint (App Service protocol) gives a token too.
	req, _ := http.NewRequest("GET", env.IdentityEndpoint+"?api-version=2019-08-01&resource="+ResourceURI, nil)
	req.Header.Set("X-IDENTITY-HEADER", env.IdentityHeader)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var mi struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&mi)
	resp.Body.Close()
	if resp.StatusCode != 200 || mi.AccessToken == "" {
		t.Fatalf("IDENTITY_ENDPOINT: %d", resp.StatusCode)
	}
	if code, body := callAPI(t, client, env.DemoAPIURL, mi.AccessToken); code != 200 {
		t.Errorf("demo API with the managed-identity endpoint's token: %d %s", code, body)
	}
}

func TestSeedIdempotent(t *testing.T) {
	st := memory.New()
	ctx := context.Background()
	first, err := Seed(ctx, st, "https://127.0.0.1:6443")
	if err != nil {
		t.Fatal(err)
	}
	if first.Changes == 0 {
		t.Fatal("first seed changed nothing")
	}
	again, err := Seed(ctx, st, "https://127.0.0.1:6443")
	if err != nil {
		t.Fatal(err)
	}
	if again.Changes != 0 {
		t.Errorf("second seed made %d changes, want 0", again.Changes)
	}
	moved, err := Seed(ctx, st, "https://127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	if moved.Changes != 1 {
		t.Errorf("new issuer URL: %d changes, want 1 (the credential)", moved.Changes)
	}
	first.Changes, again.Changes, moved.Changes = 0, 0, 0
	if again != first || moved != first {
		t.Errorf("ids changed: %+v / %+v / %+v", first, again, moved)
	}
	creds, _ := st.ListFederatedCredentials(ctx, first.TenantID, first.ClientID)
	if len(creds) != 1 || creds[0].Issuer != "https://127.0.0.1:7443" || creds[0].Subject != "system:serviceaccount:default:demo" {
		t.Errorf("credentials = %+v", creds)
	}
}

// BenchmarkStart measures how long `wif dev` takes to be ready on a restart
// (state directory with its SQLite database, CA and keys already there, as
// on every start but the first). Stopping is not timed.
func BenchmarkStart(b *testing.B) {
	benchStart(b, sqliteConfig(b.TempDir()))
}

// BenchmarkStartInMemory is BenchmarkStart with --in-memory: the directory
// is seeded and a signing key generated on every start.
func BenchmarkStartInMemory(b *testing.B) {
	benchStart(b, memConfig(b.TempDir()))
}

func benchStart(b *testing.B, cfg Config) {
	d, err := Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	d.Stop()
	for b.Loop() {
		d, err := Start(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func sqliteConfig(dir string) Config {
	cfg := memConfig(dir)
	cfg.InMemory = false
	cfg.OpenStore = func(ctx context.Context, url string) (store.Store, error) {
		return stores.Open(ctx, url, nil)
	}
	return cfg
}

func freePort(t *testing.T) (int, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().(*net.TCPAddr).Port, func() { ln.Close() }
}

func TestBusyPortSaysWhatToDo(t *testing.T) {
	busy, release := freePort(t)
	defer release()
	var ports [4]int
	for i := range ports {
		p, free := freePort(t)
		free()
		ports[i] = p
	}
	cfg := memConfig(t.TempDir())
	cfg.RandomPorts = false
	cfg.Ports = Ports{TokenService: busy, Issuer: ports[0], DemoAPI: ports[1], IMDS: ports[2], Gateway: ports[3]}
	_, err := Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "token service: listen on 127.0.0.1:"+strconv.Itoa(busy)) || !strings.Contains(err.Error(), "use --random-ports") {
		t.Fatalf("err = %v", err)
	}
}

// TestRestartWhenRecordedPortIsTaken restarts on a SQLite state directory
// whose recorded issuer port is now taken: wif dev picks another, moves the
// federated credential to the new issuer URL, and the exchange still works
// with the same identity.
func TestRestartWhenRecordedPortIsTaken(t *testing.T) {
	dir := t.TempDir()
	cfg := sqliteConfig(dir)
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := d.Env()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(first.IssuerURL)
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	d, err = Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	second := d.Env()
	if second.IssuerURL == first.IssuerURL {
		t.Fatalf("issuer URL unchanged although %s is taken", u.Host)
	}
	if second.ClientID != first.ClientID || second.TenantID != first.TenantID || second.AuthorityHost != first.AuthorityHost {
		t.Errorf("ids or token service moved: %+v → %+v", first, second)
	}
	client := caClient(t, second.CAFile)
	tok := sdkToken(t, second, client)
	if code, body := callAPI(t, client, second.GatewayURL, tok); code != 200 {
		t.Fatalf("after the issuer moved: %d %s", code, body)
	}
}

// TestSecondStartLeavesTheFirstAlone: a second wif dev on the same state
// directory refuses, naming the running one, before touching its env
// file; the first keeps serving, and once it stops the directory is free.
func TestSecondStartLeavesTheFirstAlone(t *testing.T) {
	dir := t.TempDir()
	first, err := Start(context.Background(), memConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	envBefore, err := os.ReadFile(filepath.Join(dir, EnvFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), memConfig(dir))
	want := fmt.Sprintf("wif dev is already running on this state directory (%s, pid %d, started ", dir, os.Getpid())
	if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), "): stop it first, or give this one another --state-dir") {
		t.Fatalf("second start: %v\nwant it to contain %q", err, want)
	}
	if envAfter, err := os.ReadFile(filepath.Join(dir, EnvFile)); err != nil || string(envAfter) != string(envBefore) {
		t.Fatalf("the second start changed the first's env file: %v", err)
	}
	env := first.Env()
	if code, _ := callAPI(t, caClient(t, env.CAFile), env.DemoAPIURL, sdkToken(t, env, caClient(t, env.CAFile))); code != 200 {
		t.Fatalf("the first stopped serving: %d", code)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	again, err := Start(context.Background(), memConfig(dir))
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	again.Stop()
}
