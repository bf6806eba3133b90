package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/devenv"
	"github.com/wif-project/wif/internal/doctor"
	"github.com/wif-project/wif/internal/issuer"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
)

// startDev runs a real wif dev in-process (in memory, free ports) for the
// test and returns what it offers a workload.
func startDev(t *testing.T) devenv.Env {
	t.Helper()
	d, err := devenv.Start(context.Background(), devenv.Config{
		StateDir: t.TempDir(), InMemory: true, RandomPorts: true,
		NewMemoryStore: func() store.Store { return memory.New() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop() })
	return d.Env()
}

// TestDoctorGolden runs `wif doctor` against a real `wif dev` with the
// workload's environment broken one way at a time: the output names the
// problem and its fix (golden files; ports, ids, times and durations
// replaced), and the exit status says whether anything failed.
func TestDoctorGolden(t *testing.T) {
	dev := startDev(t)
	good := map[string]string{}
	for _, kv := range dev.Vars() {
		good[kv[0]] = kv[1]
	}
	tmp := t.TempDir()
	// mint writes a token from the dev issuer's key (or, with ephemeral,
	// another key under the same issuer URL), minted at the given time.
	mint := func(name string, at time.Time, ephemeral bool, req issuer.TokenRequest) string {
		t.Helper()
		opts := issuer.Options{URL: dev.IssuerURL, StateDir: dev.StateDir, Now: func() time.Time { return at }}
		if ephemeral {
			opts.StateDir = ""
		}
		iss, err := issuer.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if req.Namespace == "" {
			req.Namespace = devenv.Namespace
		}
		tok, err := iss.Mint(req)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(tmp, name)
		if err := os.WriteFile(path, []byte(tok.Raw), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	now := time.Now()
	demo := issuer.TokenRequest{ServiceAccount: devenv.ServiceAccount}
	copied := mint("copied", now, false, demo)
	if err := os.Chtimes(copied, now.Add(-2*time.Hour), now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	notJWT := filepath.Join(tmp, "not-a-jwt")
	if err := os.WriteFile(notJWT, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	const scope = "api://provider-api/.default"
	const otherID = "0badc0de-0000-4000-8000-000000000000"
	authorityHost := strings.TrimSuffix(strings.TrimPrefix(dev.AuthorityHost, "https://"), "/")
	cases := []struct {
		name  string
		env   map[string]string // "" deletes
		scope string
		ok    bool
	}{
		{"healthy", nil, scope, true},
		{"healthy-no-scope", nil, "", true},
		{"empty-environment", map[string]string{"AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "", "AZURE_FEDERATED_TOKEN_FILE": "", "AZURE_AUTHORITY_HOST": ""}, scope, false},
		{"client-id-not-guid", map[string]string{"AZURE_CLIENT_ID": "demo"}, scope, false},
		{"authority-http", map[string]string{"AZURE_AUTHORITY_HOST": "http://" + authorityHost + "/"}, scope, false},
		{"authority-with-path", map[string]string{"AZURE_AUTHORITY_HOST": dev.AuthorityHost + dev.TenantID + "/"}, scope, false},
		{"authority-no-slash", map[string]string{"AZURE_AUTHORITY_HOST": strings.TrimSuffix(dev.AuthorityHost, "/")}, scope, true},
		{"authority-nothing-listens", map[string]string{"AZURE_AUTHORITY_HOST": "https://127.0.0.1:1/"}, scope, false},
		{"regional-authority", map[string]string{"AZURE_REGIONAL_AUTHORITY_NAME": "westeurope", "MSAL_FORCE_REGION": "westeurope"}, scope, false},
		{"identity-header-alone", map[string]string{"IDENTITY_ENDPOINT": ""}, scope, false},
		{"untrusted-ca", map[string]string{"SSL_CERT_FILE": ""}, scope, false},
		{"ssl-cert-file-not-pem", map[string]string{"SSL_CERT_FILE": notJWT}, scope, false},
		{"token-file-missing", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": filepath.Join(tmp, "absent")}, scope, false},
		{"token-not-a-jwt", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": notJWT}, scope, false},
		{"token-expired", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": mint("expired", now.Add(-3*time.Hour), false, demo)}, scope, false},
		{"token-not-refreshed", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": copied}, scope, false},
		{"token-other-audience", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": mint("aud", now, false,
			issuer.TokenRequest{ServiceAccount: devenv.ServiceAccount, Audiences: []string{"api://other"}})}, scope, false},
		{"token-unknown-kid", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": mint("kid", now, true, demo)}, scope, false},
		{"wrong-subject", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": mint("sub", now, false, issuer.TokenRequest{ServiceAccount: "demo-other"})}, scope, false},
		{"unknown-client", map[string]string{"AZURE_CLIENT_ID": otherID}, scope, false},
		{"unknown-tenant", map[string]string{"AZURE_TENANT_ID": otherID}, scope, false},
		{"unknown-scope", nil, "api://no-such-api/.default", false},
		{"in-pod-not-injected", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "app-7c9d", "AZURE_FEDERATED_TOKEN_FILE": ""}, scope, false},
	}
	replacer := strings.NewReplacer(dev.StateDir, "<state>", tmp, "<tmp>", dev.TenantID, "<tenant>", dev.ClientID, "<client>",
		authorityHost, "<token-service>", dev.IdentityEndpoint, "<imds>", strings.TrimPrefix(dev.IssuerURL, "https://"), "<issuer>")
	norm := func(s string) string {
		s = replacer.Replace(s)
		s = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "<time>")
		s = regexp.MustCompile(`\b[A-Za-z0-9_-]{43}\b`).ReplaceAllString(s, "<kid>")
		s = regexp.MustCompile(`\b\d+h\d+m\d+s\b`).ReplaceAllString(s, "<dur>")
		s = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).ReplaceAllStringFunc(s, func(id string) string {
			if id == otherID {
				return id
			}
			return "<id>"
		})
		s = regexp.MustCompile(`kid "[^"]+"`).ReplaceAllString(s, `kid "<kid>"`)
		s = regexp.MustCompile(`\(\d+ bytes`).ReplaceAllString(s, "(<n> bytes")
		return regexp.MustCompile(`\b\d+(h\d+m|[dhms])\b`).ReplaceAllString(s, "<dur>")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range good {
				env[k] = v
			}
			for k, v := range tc.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			args := []string{"doctor"}
			if tc.scope != "" {
				args = append(args, "--scope", tc.scope)
			}
			out, _, err := run(t, env, "", args...)
			golden(t, "doctor-"+tc.name, norm(out))
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, errDoctorFailed)) {
				t.Fatalf("exit: %v (want ok=%v)\n%s", err, tc.ok, out)
			}
			// The JSON report says the same, check by check.
			js, _, _ := run(t, env, "", append(args, "-o", "json")...)
			var rep doctor.Report
			if err := json.Unmarshal([]byte(js), &rep); err != nil {
				t.Fatalf("%v\n%s", err, js)
			}
			if rep.OK != tc.ok || len(rep.Checks) != len(regexp.MustCompile(`(?m)^  [✓✗!-] `).FindAllString(out, -1)) {
				t.Fatalf("json report ok=%v with %d checks; table:\n%s", rep.OK, len(rep.Checks), out)
			}
			for _, c := range rep.Checks {
				if c.Status == doctor.Fail && c.Fix == "" {
					t.Errorf("%s/%s fails with no fix: %s", c.Section, c.Name, c.Detail)
				}
			}
		})
	}
}

// TestTokenDecodeCheck: a real access token from `wif dev`, checked as a
// resource would check it — the requirements it meets pass, those it does
// not fail with the status a resource would answer, and a token whose
// signature was altered fails the signature check.
func TestTokenDecodeCheck(t *testing.T) {
	dev := startDev(t)
	tok, _, err := runCLI(t, "", "token", "get", "--authority-host", dev.AuthorityHost, "--tenant-id", dev.TenantID,
		"--client-id", dev.ClientID, "--token-file", dev.TokenFile, "--ca-file", dev.CAFile, "--scope", "api://provider-api/.default")
	if err != nil {
		t.Fatal(err)
	}
	replacer := strings.NewReplacer(dev.TenantID, "<tenant>", dev.ClientID, "<client>", dev.ResourceAppID, "<resource>",
		strings.TrimSuffix(strings.TrimPrefix(dev.AuthorityHost, "https://"), "/"), "<token-service>")
	norm := func(s string) string {
		s = replacer.Replace(s)
		s = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "<time>")
		s = regexp.MustCompile(`"(iat|nbf|exp)": \d+`).ReplaceAllString(s, `"$1": <unix>`)
		s = regexp.MustCompile(`"(uti|jti|kid|x5t|rh|aio|oid|sub|xms_mirid)": "[^"]+"`).ReplaceAllString(s, `"$1": "<v>"`)
		s = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).ReplaceAllString(s, "<id>")
		s = regexp.MustCompile(`kid "[^"]+"`).ReplaceAllString(s, `kid "<kid>"`)
		return regexp.MustCompile(`\b\d+(h\d+m|[dhms])\b`).ReplaceAllString(s, "<dur>")
	}
	env := map[string]string{"SSL_CERT_FILE": dev.CAFile}
	out, _, err := run(t, env, tok, "token", "decode", "--check", "--audience", dev.ResourceAppID, "--role", "Data.Read", "--client-id", dev.ClientID, "--tenant-id", dev.TenantID)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	golden(t, "token-check-pass", norm(out))
	out, _, err = run(t, env, tok, "token", "decode", "--check", "--audience", "api://other", "--role", "Data.Write", "--client-id", "0badc0de-0000-4000-8000-000000000000")
	if !errors.Is(err, errDoctorFailed) {
		t.Fatalf("err %v\n%s", err, out)
	}
	golden(t, "token-check-refused", norm(out))
	// One byte of the signature changed.
	parts := strings.Split(strings.TrimSpace(tok), ".")
	sig := []byte(parts[2])
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	altered := parts[0] + "." + parts[1] + "." + string(sig)
	out, _, err = run(t, env, altered, "token", "decode", "--check")
	if !errors.Is(err, errDoctorFailed) || !strings.Contains(out, "✗ signature: the signature does not verify") {
		t.Fatalf("altered: %v\n%s", err, out)
	}
	// Without the dev CA the issuer's keys cannot be fetched: a failure,
	// not a pass.
	out, _, err = run(t, map[string]string{}, tok, "token", "decode", "--check")
	if !errors.Is(err, errDoctorFailed) || !strings.Contains(out, "✗ discovery: cannot fetch") {
		t.Fatalf("untrusted: %v\n%s", err, out)
	}
}
