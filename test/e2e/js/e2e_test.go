// Package js runs the JavaScript end-to-end tests: the unmodified
// @azure/identity ManagedIdentityCredential (package.json pins 4.13.1) gets
// tokens through a running `wif imds` from wif's token service. The Go test
// starts both servers on loopback and runs `node --test` in this directory.
//
// Prepare once: (cd test/e2e/js && npm ci). Without node or node_modules the
// test skips, unless CI=true, where it fails.
package js

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/cli"
	"github.com/wif-project/wif/internal/imds"
)

// requireNode returns the node binary, or skips (fails on CI) when node or
// the pinned packages are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: the JavaScript tests must run)", msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed; install Node.js ≥ 20 to run the @azure/identity tests")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "@azure", "identity", "package.json")); err != nil {
		missing("test/e2e/js/node_modules is missing; run `npm ci` in test/e2e/js")
	}
	return node
}

// startIMDS runs `wif imds` through the real command line in this process
// and returns its base URL once it listens.
func startIMDS(t *testing.T, args ...string) string {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "imds-ready")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	noEnv := func(string) (string, bool) { return "", false }
	go func() {
		done <- cli.RunWithEnv(ctx, cli.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &syncWriter{w: &stderr}},
			append([]string{"imds", "--listen", "127.0.0.1:0", "--ready-file", ready}, args...), noEnv)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("wif imds: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("wif imds did not stop")
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil {
			return string(b)
		}
		select {
		case err := <-done:
			t.Fatalf("wif imds exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("wif imds did not become ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodeEnv is the process environment without anything that would steer
// ManagedIdentityCredential to another source, plus vars.
func nodeEnv(vars map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AZURE_"), strings.HasPrefix(k, "IDENTITY_"), strings.HasPrefix(k, "MSI_"),
			k == "IMDS_ENDPOINT", strings.HasPrefix(k, "WIF_E2E_"), k == "NODE_OPTIONS":
			continue
		}
		out = append(out, kv)
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// TestManagedIdentityCredentialJS: @azure/identity 4.13.1's
// ManagedIdentityCredential, over IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST)
// and App Service (IDENTITY_ENDPOINT/IDENTITY_HEADER), gets a token from
// wif's token service through `wif imds`.
func TestManagedIdentityCredentialJS(t *testing.T) {
	node := requireNode(t)
	ts := startTokenService(t)
	header := imds.NewIdentityHeader()
	base := startIMDS(t,
		"--authority-host", ts.authorityHost,
		"--tenant-id", ts.tenantID,
		"--client-id", ts.clientID,
		"--token-file", ts.tokenFile,
		"--ca-file", ts.caFile,
		"--identity-header", header,
	)
	expect, err := json.Marshal(ts.expectClaims)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap")
	cmd.Env = nodeEnv(map[string]string{
		"WIF_E2E_IMDS_URL":        base,
		"WIF_E2E_IDENTITY_HEADER": header,
		"WIF_E2E_CLIENT_ID":       ts.clientID,
		"WIF_E2E_SCOPE":           ts.scope,
		"WIF_E2E_EXPECT_CLAIMS":   string(expect),
		"WIF_E2E_UNKNOWN_SCOPE":   ts.unknownScope,
		"WIF_E2E_UNKNOWN_ERROR":   ts.unknownError,
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	// Every test ran and passed: none skipped for want of the servers.
	s := string(out)
	for _, want := range []string{"# fail 0", "# skipped 0", "# pass 7"} {
		if !strings.Contains(s, want) {
			t.Fatalf("node --test output lacks %q:\n%s", want, s)
		}
	}
	t.Logf("node --test:\n%s", s)
}

// tokenService is what the JS tests need to know about the running token
// service and the workload's identity in it.
type tokenService struct {
	authorityHost, tenantID, caFile string
	clientID, tokenFile             string
	scope                           string
	expectClaims                    map[string]any
	unknownScope, unknownError      string
}
