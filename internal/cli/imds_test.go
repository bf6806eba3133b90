package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIMDSCommand runs `wif imds` configured only by the variables the
// workload identity webhook injects, in front of a minimal TLS token
// endpoint (a stand-in: the command's wiring is under test here; the real
// token service runs behind it in test/e2e/js), trusted through --ca-file.
func TestIMDSCommand(t *testing.T) {
	var form map[string][]string
	sts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		form = r.PostForm
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"at"}`)
	}))
	defer sts.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("a.b.c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	env := map[string]string{
		"AZURE_CLIENT_ID":            "11111111-1111-1111-1111-111111111111",
		"AZURE_TENANT_ID":            "tenant1",
		"AZURE_FEDERATED_TOKEN_FILE": tokenFile,
		"AZURE_AUTHORITY_HOST":       sts.URL + "/",
		"IDENTITY_HEADER":            "0123456789abcdef0123",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	cmd := newIMDSCommandWithEnv(Streams{Out: io.Discard, ErrOut: &stderr}, lookup)
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--ready-file", ready, "--ca-file", caFile})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	base := waitReady(t, ready, done, stderr.String)
	req, _ := http.NewRequest("GET", base+"/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fx", nil)
	req.Header.Set("X-IDENTITY-HEADER", "0123456789abcdef0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || body["access_token"] != "at" || body["client_id"] != env["AZURE_CLIENT_ID"] {
		t.Fatalf("%d %v %v", resp.StatusCode, body, err)
	}
	if got := fmt.Sprint(form["client_id"], form["client_assertion"], form["scope"]); got != "[11111111-1111-1111-1111-111111111111] [a.b.c] [api://x/.default]" {
		t.Errorf("exchange form: %s", got)
	}
	if !strings.Contains(stderr.String(), "App Service: IDENTITY_ENDPOINT="+base+"/msi/token") {
		t.Errorf("banner: %s", stderr.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wif imds: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wif imds did not stop")
	}
}

func TestIMDSCommandConfigErrors(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--listen", "0.0.0.0:8000"}, []string{"not a loopback address", "--allow-non-loopback"}},
		{[]string{"--listen", "nonsense"}, []string{`--listen "nonsense"`}},
		{[]string{"--listen", "127.0.0.1:0"}, []string{"AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"}},
		{[]string{"--listen", "127.0.0.1:0", "--authority-host", "https://h/", "--tenant-id", "t", "--token-file", "/f", "--identity-header", "short"},
			[]string{"the identity header is 5 characters"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := newIMDSCommandWithEnv(Streams{Out: io.Discard, ErrOut: io.Discard}, none)
			cmd.SetArgs(tc.args)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.ExecuteContext(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
