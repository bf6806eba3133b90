package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// lockedBuffer is a bytes.Buffer safe for the server's log writes and the
// test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeCommand runs `wif serve` in-process from flags and environment
// variables, with a directory file trusting a test issuer, and does a real
// exchange against it.
func TestServeCommand(t *testing.T) {
	dir := t.TempDir()
	issuer := wiftest.NewIssuer(t)
	issuerCA := filepath.Join(dir, "issuer-ca.pem")
	if err := os.WriteFile(issuerCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issuer.Server.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	const clientID = "ad0c8137-362f-451a-93b0-d08040425294"
	doc := fmt.Sprintf(`tenants:
- id: %s
  displayName: Contoso
  applications:
  - displayName: provider-api
    identifierUris: [api://provider-api]
  managedIdentities:
  - name: demo
    subscriptionId: 00000000-0000-0000-0000-000000000001
    resourceGroup: rg
    clientId: %s
    federatedCredentials:
    - name: test-issuer
      issuer: %s
      subject: system:serviceaccount:default:demo
`, tid, clientID, issuer.URL)
	dirFile := filepath.Join(dir, "directory.yaml")
	if err := os.WriteFile(dirFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr lockedBuffer
	done := make(chan error, 1)
	env := map[string]string{"WIF_STORE": "sqlite:" + filepath.Join(dir, "wif.db")}
	go func() {
		done <- RunWithEnv(ctx, Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &stderr}, []string{
			"serve", "--listen", "127.0.0.1:0", "--tls-self-signed", "--tls-ca-out", filepath.Join(dir, "ca.pem"),
			"--directory", dirFile, "--issuer-ca-file", issuerCA, "--ready-file", filepath.Join(dir, "ready"), "--allow-private-issuers",
			"--bootstrap-admin-issuer", issuer.URL, "--bootstrap-admin-subject", "system:serviceaccount:ci:deployer",
			"--audit-sink", filepath.Join(dir, "audit.jsonl"),
		}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	base := waitReady(t, filepath.Join(dir, "ready"), done, stderr.String)
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.PostForm(base+"/"+tid+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {issuer.Mint(t, "system:serviceaccount:default:demo", directory.DefaultAudience, time.Hour)},
		"scope":                 {"api://provider-api/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("exchange: %d\n%s", resp.StatusCode, stderr.String())
	}

	// The admin API: no token → 401; the bootstrap admin's own federated
	// identity gets a token for api://wif-admin and lists the tenants.
	adminResp, err := client.Get(base + "/admin/tenants")
	if err != nil {
		t.Fatal(err)
	}
	adminResp.Body.Close()
	if adminResp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin call without a token: %d, want 401", adminResp.StatusCode)
	}
	var adminClientID string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "bootstrap admin identity ready") {
			var rec struct {
				ClientID string `json:"client_id"`
			}
			_ = json.Unmarshal([]byte(line), &rec)
			adminClientID = rec.ClientID
		}
	}
	if adminClientID == "" {
		t.Fatalf("no bootstrap log line:\n%s", stderr.String())
	}
	tokResp, err := client.PostForm(base+"/"+tid+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {adminClientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {issuer.Mint(t, "system:serviceaccount:ci:deployer", directory.DefaultAudience, time.Hour)},
		"scope":                 {"api://wif-admin/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(tokResp.Body).Decode(&tok)
	tokResp.Body.Close()
	if tokResp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("admin token: status %d", tokResp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/admin/tenants", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	adminResp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	adminResp.Body.Close()
	if adminResp.StatusCode != http.StatusOK {
		t.Fatalf("admin call with the bootstrap identity's token: %d, want 200", adminResp.StatusCode)
	}

	if _, err := os.Stat(filepath.Join(dir, "wif.db")); err != nil {
		t.Errorf("WIF_STORE was not honoured: %v", err)
	}
	// --audit-sink: every exchange as a JSON line (within the audit
	// writer's flush interval), no token in it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
		if n := strings.Count(string(b), `"result":"success"`); n >= 2 {
			if strings.Contains(string(b), "eyJ") || !strings.Contains(string(b), `"clientId":"`+clientID+`"`) {
				t.Fatalf("audit sink:\n%s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit sink holds: %s", b)
		}
	}
	if logs := stderr.String(); strings.Contains(logs, "eyJ") {
		t.Error("the logs hold what looks like a JWT")
	}
}

func TestServeFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "HTTPS is required"},
		{[]string{"serve", "--tls-self-signed", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, "exclude each other"},
		{[]string{"serve", "--tls-cert-file", "c.pem"}, "go together"},
		{[]string{"serve", "--tls-self-signed", "--token-lifetime", "5m"}, "between 10m and 24h"},
		{[]string{"serve", "--tls-self-signed", "--store", "mysql://x"}, "unknown store"},
		{[]string{"serve", "--tls-self-signed", "--store", "memory:", "--issuer-algorithms", "spire=ES256"}, "want ISSUER=ALG[,ALG...] with an https issuer"},
		{[]string{"serve", "--tls-self-signed", "--store", "memory:", "--issuer-algorithms", "https://spire.example=ES257"}, `algorithm "ES257" is not one of`},
		// An empty store has no "only tenant": the flag must name one.
		{[]string{"serve", "--tls-self-signed", "--store", "memory:", "--bootstrap-admin-issuer", "https://i.example", "--bootstrap-admin-subject", "s"},
			"the store holds 0 tenants: name the tenant the admin identity belongs to: give --bootstrap-admin-tenant"},
	}
	for _, tc := range tests {
		err := RunWithEnv(context.Background(), Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, tc.args, func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to say %q", tc.args, err, tc.want)
		}
	}
}

// TestServeBootstrapTenantHelp: the flag's help says what the flag does
// (the review found it promised a default the code never had).
func TestServeBootstrapTenantHelp(t *testing.T) {
	var out bytes.Buffer
	if err := RunWithEnv(context.Background(), Streams{In: strings.NewReader(""), Out: &out, ErrOut: &out}, []string{"serve", "--help"}, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(out.String()), " ")
	want := "--bootstrap-admin-tenant string with --bootstrap-admin-issuer: the tenant id of the admin identity, created if it does not exist, and the operator tenant unless --operator-tenant names another (default: the store's only tenant; required when the store holds no tenant or several)"
	if !strings.Contains(help, want) {
		t.Fatalf("serve --help does not say:\n%s\ngot:\n%s", want, out.String())
	}
}
