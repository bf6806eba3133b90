package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/testissuer"
	"github.com/wif-project/wif/internal/tlsutil"
)

// TestGatewayCommand runs `wif gateway` with seed 000's policy unedited,
// Entra's hosts standing for a test token service trusted through its CA
// file, in front of a real backend.
func TestGatewayCommand(t *testing.T) {
	const tid, appID = "d12058fe-ecf4-454a-9a69-cef5686fc24f", "ad0c8137-362f-451a-93b0-d08040425294"
	iss := testissuer.Start(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Header.Get("clientid"))
	}))
	defer backend.Close()
	dir := t.TempDir()
	policy, err := os.ReadFile("../gateway/apim/testdata/policysample.xml")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("policy.xml", string(policy))
	write("ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Server.Certificate().Raw})))
	cfg := write("gateway.yaml", `listen: 127.0.0.1:0
tokenService: {url: "`+iss.URL+`", caFile: ca.pem, entraPublicHosts: true}
routes:
- {name: api, pathPrefix: /, backend: "`+backend.URL+`", policy: policy.xml}
`)

	var out bytes.Buffer
	check := newGatewayCommand(Streams{Out: &out, ErrOut: io.Discard})
	check.SetArgs([]string{"--config", cfg, "--check"})
	if err := check.Execute(); err != nil || out.String() != cfg+": 1 routes, policies valid\n" {
		t.Fatalf("--check: %v %q", err, out.String())
	}

	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	cmd := newGatewayCommand(Streams{Out: io.Discard, ErrOut: &stderr})
	cmd.SetArgs([]string{"--config", cfg, "--ready-file", ready})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	base := waitReady(t, ready, done, stderr.String)
	tok := iss.Mint(t, testissuer.Token{TenantID: tid, Audience: "api://mydummyapi", ClientID: appID})
	req, _ := http.NewRequest("GET", base+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello "+appID {
		t.Errorf("proxied: %d %q", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("wif gateway: %v", err)
	}
}

func TestGatewayCommandReportsPolicyErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.xml"), []byte("<policies>\n<inbound>\n<set-header name=\"x\"><value>@(context.Variables[\"a\"])</value></set-header>\n</inbound>\n</policies>"), 0o600)
	cfg := filepath.Join(dir, "gw.yaml")
	os.WriteFile(cfg, []byte("routes:\n- {name: api, pathPrefix: /, backend: 'http://127.0.0.1:1', policy: p.xml}\n"), 0o600)
	cmd := newGatewayCommand(Streams{Out: io.Discard, ErrOut: io.Discard})
	cmd.SetArgs([]string{"--config", cfg, "--check"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), `route api: p.xml:3: policy expressions (@(...)) are not supported`) {
		t.Errorf("err = %v", err)
	}
}

// TestGatewayCommandTLS serves the gateway over HTTPS from the config's
// tls files.
func TestGatewayCommandTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsutil.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := tlsutil.KeyPEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tls.crt"), tlsutil.CertPEM(cert), 0o600)
	os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "p.xml"), []byte(`<policies><inbound><return-response><set-status code="204"/></return-response></inbound></policies>`), 0o600)
	cfg := filepath.Join(dir, "gw.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ntls: {certFile: tls.crt, keyFile: tls.key}\nroutes:\n- {pathPrefix: /, backend: 'http://127.0.0.1:1', policy: p.xml}\n"), 0o600)
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newGatewayCommand(Streams{Out: io.Discard, ErrOut: io.Discard})
	cmd.SetArgs([]string{"--config", cfg, "--ready-file", ready})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(ready); err == nil {
			base = string(b)
		} else if time.Now().After(deadline) {
			t.Fatal("no ready file")
		}
	}
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base URL %q", base)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Get(base + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("wif gateway: %v", err)
	}
}
