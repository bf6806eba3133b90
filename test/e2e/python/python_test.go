// Package python runs the clients built on Python's requests against a real
// `wif dev`, with nothing but the environment of .wif/env: Debian's
// azure-identity (python3-azure), MSAL Python (python3-msal) and the Azure
// CLI (azure-cli), each getting a token and calling the demo API through
// the gateway — the README's recipes, as written.
//
// Without the packages the tests skip, unless CI=true, where they fail
// (.ci/run installs them).
package python

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/cli"
)

// python is Debian's interpreter, the one python3-azure and python3-msal
// install into (a python3 earlier on PATH may be another).
const python = "/usr/bin/python3"

func require(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	msg := what + " is not installed; apt-get install python3-azure python3-msal azure-cli"
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: the Python client tests must run)", msg)
	}
	t.Skip(msg)
}

// startDev runs `wif dev` through the command line in this process and
// returns the variables of its env file.
func startDev(t *testing.T) map[string]string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".wif")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- cli.RunWithEnv(ctx, cli.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &stderr},
			[]string{"dev", "--state-dir", dir, "--random-ports", "--in-memory"}, func(string) (string, bool) { return "", false })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("wif dev did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if env, err := readEnvFile(filepath.Join(dir, "env")); err == nil && env["WIF_GATEWAY_URL"] != "" {
			return env
		}
		select {
		case err := <-done:
			t.Fatalf("wif dev exited: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("wif dev wrote no env file")
		}
	}
}

// readEnvFile parses the export lines of .wif/env (values single-quoted).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		env[k] = strings.ReplaceAll(strings.Trim(v, "'"), `'\''`, "'")
	}
	return env, sc.Err()
}

// run runs a command with exactly the env file's variables (plus PATH,
// HOME and extra), as a shell that loaded .wif/env would.
func run(t *testing.T, env map[string]string, extra map[string]string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=C.UTF-8"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		return out.String(), context.DeadlineExceeded
	}
}

func hasModules(mods ...string) bool {
	if _, err := os.Stat(python); err != nil {
		return false
	}
	return exec.Command(python, "-c", "import "+strings.Join(mods, ", ")).Run() == nil
}

func TestPythonSDKAndMSAL(t *testing.T) {
	require(t, "python3-azure and python3-msal", hasModules("azure.identity", "msal", "requests"))
	env := startDev(t)
	for _, script := range []string{"azure_identity_client.py", "msal_client.py"} {
		t.Run(script, func(t *testing.T) {
			out, err := run(t, env, nil, python, script)
			if err != nil || !strings.HasPrefix(lastLine(out), `200 {"caller":{"clientId":"`+env["AZURE_CLIENT_ID"]+`"`) {
				t.Fatalf("%s: %v\n%s", script, err, out)
			}
		})
	}
	// requests ignores SSL_CERT_FILE: without REQUESTS_CA_BUNDLE the dev CA
	// is not trusted (why .wif/env sets it).
	t.Run("without REQUESTS_CA_BUNDLE", func(t *testing.T) {
		without := map[string]string{}
		for k, v := range env {
			if k != "REQUESTS_CA_BUNDLE" {
				without[k] = v
			}
		}
		out, err := run(t, without, nil, python, "msal_client.py")
		if err == nil || !strings.Contains(out, "CERTIFICATE_VERIFY_FAILED") {
			t.Fatalf("expected a TLS failure without REQUESTS_CA_BUNDLE: %v\n%s", err, out)
		}
	})
}

// TestAzureCLI runs the README's az recipe: register wif as a custom cloud
// from /metadata/endpoints, log in with the federated token as a service
// principal and with --identity (the managed-identity endpoint), and call
// the gateway with the token az hands out.
func TestAzureCLI(t *testing.T) {
	_, err := exec.LookPath("az")
	require(t, "azure-cli", err == nil)
	env := startDev(t)
	sitecustomize, err := filepath.Abs("azcli-sitecustomize")
	if err != nil {
		t.Fatal(err)
	}
	az := func(t *testing.T, extra map[string]string, args ...string) string {
		t.Helper()
		x := map[string]string{
			"AZURE_CONFIG_DIR": filepath.Join(t.TempDir(), "az"), "AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
			// az 2.45 (Debian 12's) cannot switch off MSAL's instance
			// discovery; az >= 2.54 reads AZURE_CORE_INSTANCE_DISCOVERY.
			// The sitecustomize stand-in makes 2.45 honour it: test only.
			"AZURE_CORE_INSTANCE_DISCOVERY": "false", "PYTHONPATH": sitecustomize,
		}
		for k, v := range extra {
			x[k] = v
		}
		out, err := run(t, env, x, "az", args...)
		if err != nil {
			t.Fatalf("az %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	callGateway := func(t *testing.T, token string) {
		t.Helper()
		out, err := run(t, env, map[string]string{"TOKEN": token}, python, "-c",
			`import os, requests; r = requests.get(os.environ["WIF_GATEWAY_URL"], headers={"Authorization": "Bearer " + os.environ["TOKEN"]}); print(r.status_code, r.text)`)
		if err != nil || !strings.HasPrefix(out, `200 {"caller":{"clientId":"`+env["AZURE_CLIENT_ID"]+`"`) {
			t.Fatalf("gateway with az's token: %v\n%s", err, out)
		}
	}
	for _, tc := range []struct {
		name  string
		extra map[string]string
		login func(t *testing.T, x map[string]string)
	}{
		{"service principal with a federated token", nil, func(t *testing.T, x map[string]string) {
			token, err := os.ReadFile(env["AZURE_FEDERATED_TOKEN_FILE"])
			if err != nil {
				t.Fatal(err)
			}
			az(t, x, "login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "--tenant", env["AZURE_TENANT_ID"],
				"--federated-token", strings.TrimSpace(string(token)), "--allow-no-subscriptions")
		}},
		// MSI_ENDPOINT alone: msrestazure's form POST.
		{"managed identity", nil, func(t *testing.T, x map[string]string) {
			az(t, x, "login", "--identity", "--allow-no-subscriptions")
		}},
		// Inside App Service az speaks 2017-09-01 with MSI_SECRET.
		{"managed identity as in App Service", map[string]string{"APPSETTING_WEBSITE_SITE_NAME": "demo"}, func(t *testing.T, x map[string]string) {
			az(t, x, "login", "--identity", "--allow-no-subscriptions")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := map[string]string{"AZURE_CONFIG_DIR": filepath.Join(t.TempDir(), "az")}
			for k, v := range tc.extra {
				x[k] = v
			}
			az(t, x, "cloud", "register", "--name", "wif", "--endpoint-resource-manager", env["WIF_SERVER"]+"/")
			az(t, x, "cloud", "set", "--name", "wif")
			tc.login(t, x)
			if tenant := az(t, x, "account", "show", "--query", "tenantId", "-o", "tsv"); tenant != env["AZURE_TENANT_ID"] {
				t.Fatalf("az account show: tenant %q", tenant)
			}
			callGateway(t, az(t, x, "account", "get-access-token", "--resource", "api://provider-api", "--query", "accessToken", "-o", "tsv"))
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// readmeBlock returns the README's block between <!-- name --> and
// <!-- /name -->, without its code fence.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- "+name+" -->\n")
	block, _, ok2 := strings.Cut(rest, "<!-- /"+name+" -->")
	if !ok || !ok2 {
		t.Fatalf("README.md has no block %q", name)
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh\n")
	return strings.TrimSuffix(block, "```")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestAzureCLIManagesWif runs the README's az recipe verbatim against a
// real wif dev — wif registered as a custom cloud from its own
// metadata, az login with the federated token, then seed 002's commands
// as typed (az group create, az identity create, az identity
// federated-credential create/list/show, az ad sp list --display-name
// ... --query '[0].appId' -otsv, az ad app federated-credential create)
// — and then deletes what it made with az. Only the state directory is
// renamed (the recipe sources .wif/env from the repository root, where
// `go run ./cmd/wif dev` keeps it; here it is the test's). What az made
// is then read back through the admin API, not through az.
func TestAzureCLIManagesWif(t *testing.T) {
	_, err := exec.LookPath("az")
	require(t, "azure-cli", err == nil)
	env := startDev(t)
	stateDir := filepath.Dir(env["AZURE_FEDERATED_TOKEN_FILE"])
	recipe := readmeBlock(t, "az-recipe")
	if !strings.Contains(recipe, ". .wif/env\n") {
		t.Fatal("the recipe no longer sources .wif/env")
	}
	recipe = strings.Replace(recipe, ". .wif/env\n", `. "$WIF_STATE_DIR/env"`+"\n", 1)
	script := "set -euo pipefail\n" + recipe + `
echo "RESULT identity=$(az identity show --name managed-identity-test --resource-group mi-test-group --query clientId -otsv)"
echo "RESULT sp=$APPLICATION_CLIENT_ID"
echo "RESULT subjects=$(az identity federated-credential list --identity-name managed-identity-test --resource-group mi-test-group --query '[].subject' -otsv)"
echo "RESULT appcreds=$(az ad app federated-credential list --id "$APP_ID" --query '[].name' -otsv)"
echo "RESULT app=$APP_ID"
`
	x := map[string]string{
		"WIF_STATE_DIR": stateDir, "AZURE_CONFIG_DIR": filepath.Join(t.TempDir(), "az"),
		"AZURE_CORE_COLLECT_TELEMETRY": "false", "AZURE_CORE_ONLY_SHOW_ERRORS": "true", "AZURE_CORE_NO_COLOR": "true",
		// az 2.45 (Debian 12's) cannot switch off MSAL's instance
		// discovery; az >= 2.54 reads core.instance_discovery, which the
		// recipe sets. The sitecustomize stand-in makes 2.45 honour it
		// from the environment: test only.
		"AZURE_CORE_INSTANCE_DISCOVERY": "false", "PYTHONPATH": mustAbs(t, "azcli-sitecustomize"),
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN", "GONOSUMDB", "GOSUMDB"} {
		if v, err := exec.Command("go", "env", k).Output(); err == nil && strings.TrimSpace(string(v)) != "" {
			x[k] = strings.TrimSpace(string(v))
		}
	}
	out := runIn(t, repoRoot(t), x, 6*time.Minute, "bash", "-c", script)
	results := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "RESULT "), "="); ok && strings.HasPrefix(line, "RESULT ") {
			results[k] = v
		}
	}
	// What az created, read back through the admin API (loopback, as the
	// wif CLI reads it in dev).
	client := adminHTTPClient(t, env["WIF_CA_FILE"])
	mi := getJSON(t, client, env["WIF_SERVER"]+"/admin/tenants/"+env["AZURE_TENANT_ID"]+"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mi-test-group/providers/Microsoft.ManagedIdentity/userAssignedIdentities/managed-identity-test")
	props, _ := mi["properties"].(map[string]any)
	clientID, _ := props["clientId"].(string)
	if clientID == "" || results["identity"] != clientID || results["sp"] != clientID {
		t.Fatalf("identity %v; az says identity %q, az ad sp list says %q\n%s", mi, results["identity"], results["sp"], out)
	}
	cred := getJSON(t, client, env["WIF_SERVER"]+"/admin/tenants/"+env["AZURE_TENANT_ID"]+"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mi-test-group/providers/Microsoft.ManagedIdentity/userAssignedIdentities/managed-identity-test/federatedIdentityCredentials/managed-identity-test-fed-cred")
	cp, _ := cred["properties"].(map[string]any)
	if cp["issuer"] != "https://oidc.prod-aks.azure.com/0eb05a4c-2d75-4568-ad04-0bb03f6a99b1/" || cp["subject"] != "system:serviceaccount:platform:managed-identity-test" ||
		results["subjects"] != "system:serviceaccount:platform:managed-identity-test" {
		t.Fatalf("credential %v (az: %q)", cred, results["subjects"])
	}
	appCred := getJSON(t, client, env["WIF_SERVER"]+"/admin/tenants/"+env["AZURE_TENANT_ID"]+"/applications/"+results["app"]+"/federatedIdentityCredentials/github-main")
	if appCred["subject"] != "repo:org/repo:ref:refs/heads/main" || results["appcreds"] != "github-main" {
		t.Fatalf("application credential %v (az: %q)", appCred, results["appcreds"])
	}

	// And az deletes them again.
	out = runIn(t, repoRoot(t), x, 3*time.Minute, "bash", "-c", `set -euo pipefail
. "$WIF_STATE_DIR/env"
az identity federated-credential delete --name managed-identity-test-fed-cred --identity-name managed-identity-test --resource-group mi-test-group --yes
az ad app federated-credential delete --id "`+results["app"]+`" --federated-credential-id github-main
az identity delete --name managed-identity-test --resource-group mi-test-group
az group delete --name mi-test-group --yes
echo "RESULT exists=$(az group exists --name mi-test-group)"
`)
	if !strings.Contains(out, "RESULT exists=false") {
		t.Fatalf("after az group delete:\n%s", out)
	}
	if code := statusOf(t, client, env["WIF_SERVER"]+"/admin/tenants/"+env["AZURE_TENANT_ID"]+"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mi-test-group/providers/Microsoft.ManagedIdentity/userAssignedIdentities/managed-identity-test"); code != 404 {
		t.Fatalf("deleted identity: %d", code)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runIn runs a command in dir with PATH, a fresh HOME and extra, failing
// the test on an error or after timeout.
func runIn(t *testing.T, dir string, extra map[string]string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=C.UTF-8"}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return string(out)
}

func adminHTTPClient(t *testing.T, caFile string) *http.Client {
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

func getJSON(t *testing.T, c *http.Client, url string) map[string]any {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return v
}

func statusOf(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
