package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := RunWithEnv(context.Background(), Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, args,
		func(string) (string, bool) { return "", false })
	return out.String(), errOut.String(), err
}

func TestTokenDecodeCommand(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if _, _, err := runCLI(t, "", "issuer", "token", "--state-dir", dir, "--service-account", "demo", "--out", tokFile, "--once", "--lifetime", "42m"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(tokFile)
	for _, args := range [][]string{{"token", "decode", tokFile}, {"token", "decode", "-"}, {"token", "decode"}} {
		out, _, err := runCLI(t, string(raw), args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, want := range []string{`"sub": "system:serviceaccount:default:demo"`, `"alg": "RS256"`, "(expires in 4", "not checked"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
	}
	_, _, err := runCLI(t, "this is not a token\n", "token", "decode")
	if err == nil || err.Error() != "stdin: not a JWT: expected three base64url segments separated by '.', got 1 segment(s)" {
		t.Fatalf("err = %v", err)
	}
	_, _, err = runCLI(t, "", "token", "decode", filepath.Join(dir, "missing"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v", err)
	}
}

func TestIssuerTokenCommandFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"issuer", "token", "--state-dir", dir, "--out", "-"}, `"service-account" not set`},
		{[]string{"issuer", "token", "--state-dir", dir, "--service-account", "Demo", "--out", "-"}, `service account "Demo" is not a valid Kubernetes name`},
		{[]string{"issuer", "token", "--state-dir", dir, "--service-account", "demo", "--out", filepath.Join(dir, "t"), "--file-mode", "999"}, `--file-mode "999"`},
		{[]string{"issuer", "token", "--state-dir", dir, "--service-account", "demo", "--out", "-", "--issuer", "http://x"}, "want an https URL"},
		{[]string{"issuer", "serve", "--state-dir", dir}, "give either --tls-self-signed or both"},
	} {
		_, _, err := runCLI(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	out, _, err := runCLI(t, "", "issuer", "token", "--state-dir", dir, "--service-account", "demo", "--out", "-")
	if err != nil || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("out %q err %v", out, err)
	}
}

func TestTokenGetAgainstDev(t *testing.T) {
	env := startDev(t)
	base := []string{"token", "get", "--authority-host", env.AuthorityHost, "--tenant-id", env.TenantID,
		"--client-id", env.ClientID, "--token-file", env.TokenFile, "--ca-file", env.CAFile}

	out, _, err := runCLI(t, "", append(base, "--scope", "api://provider-api/.default", "--decode")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"roles": [` + "\n" + `    "Data.Read"`, `"azp": "` + env.ClientID + `"`, `"aud": "` + env.ResourceAppID + `"`, "not checked"} {
		if !strings.Contains(out, want) {
			t.Errorf("decoded token lacks %q:\n%s", want, out)
		}
	}
	// A one-hour token, decoded within the second or a little later.
	if !strings.Contains(out, "(expires in 1h)") && !strings.Contains(out, "(expires in 59m)") {
		t.Errorf("decoded token does not expire in about an hour:\n%s", out)
	}
	out, _, err = runCLI(t, "", append(base, "--scope", "api://provider-api/.default")...)
	if err != nil || strings.Count(strings.TrimSpace(out), ".") != 2 || strings.Contains(strings.TrimSpace(out), "\n") {
		t.Fatalf("raw token: %q, %v", out, err)
	}

	// -o json: az account get-access-token's shape.
	out, _, err = runCLI(t, "", append(base, "--scope", "api://provider-api/.default", "-o", "json")...)
	var got struct {
		AccessToken string `json:"accessToken"`
		ExpiresOn   string `json:"expiresOn"`
		ExpiresOnTS int64  `json:"expires_on"`
		Tenant      string `json:"tenant"`
		TokenType   string `json:"tokenType"`
	}
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || strings.Count(got.AccessToken, ".") != 2 || got.Tenant != env.TenantID ||
		got.TokenType != "Bearer" || got.ExpiresOnTS < time.Now().Add(50*time.Minute).Unix() || len(got.ExpiresOn) != len("2006-01-02 15:04:05.000000") {
		t.Fatalf("-o json: %v %s", err, out)
	}
	// decode -o json: header and claims as objects.
	out, _, err = runCLI(t, got.AccessToken, "token", "decode", "-o", "json")
	var dec struct {
		Header map[string]any `json:"header"`
		Claims map[string]any `json:"claims"`
	}
	if err != nil || json.Unmarshal([]byte(out), &dec) != nil || dec.Header["alg"] != "RS256" || dec.Claims["aud"] != env.ResourceAppID {
		t.Fatalf("decode -o json: %v %s", err, out)
	}

	// The token service's refusal comes through with its code.
	_, _, err = runCLI(t, "", append(base, "--scope", "api://unknown-api/.default")...)
	if err == nil || !strings.Contains(err.Error(), "invalid_resource") {
		t.Fatalf("unknown resource: err = %v, want invalid_resource", err)
	}
	_, _, err = runCLI(t, "", "token", "get", "--scope", "x/.default", "--client-id", "", "--authority-host", env.AuthorityHost)
	if err == nil {
		t.Fatal("no client id: no error")
	}
}

// TestIssuerServe runs `wif issuer serve` in-process on a free port and
// verifies a token from `wif issuer token` against the JWKS it serves.
func TestIssuerServe(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out, errOut bytes.Buffer
		done <- RunWithEnv(ctx, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
			[]string{"issuer", "serve", "--listen", "127.0.0.1:0", "--state-dir", dir, "--tls-self-signed", "--ready-file", ready},
			func(string) (string, bool) { return "", false })
	}()
	var url string
	for i := 0; i < 200 && url == ""; i++ {
		if b, err := os.ReadFile(ready); err == nil {
			url = string(b)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if url == "" {
		t.Fatal("issuer serve wrote no ready file")
	}
	raw, _, err := runCLI(t, "", "issuer", "token", "--state-dir", dir, "--issuer", url, "--service-account", "demo", "--out", "-")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(url + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc.Issuer != url {
		t.Fatalf("discovery issuer %q, want %q", disc.Issuer, url)
	}
	resp, err = client.Get(disc.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	jws, err := jose.ParseSigned(strings.TrimSpace(raw), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("no key %q in the served JWKS", jws.Signatures[0].Header.KeyID)
	}
	if _, err := jws.Verify(keys[0]); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
