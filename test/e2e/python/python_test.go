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
