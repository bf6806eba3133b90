package devenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBrowserCannotDriveTheAdminAPI sends what a web page the developer
// opens can make the browser send to wif dev's loopback admin API, which
// takes unauthenticated calls from loopback: simple requests (no preflight)
// and cross-origin ones. None may change the directory; the CLI's request
// does.
func TestBrowserCannotDriveTheAdminAPI(t *testing.T) {
	d, err := Start(context.Background(), memConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	env := d.Env()
	client := caClient(t, env.CAFile)
	base := strings.TrimSuffix(env.AuthorityHost, "/")
	identity := func(name string) string {
		return base + "/admin/tenants/" + env.TenantID + "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	}
	send := func(method, url, body string, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	exists := func(name string) bool {
		code, _ := send("GET", identity(name), "", nil)
		return code == 200
	}
	doc := fmt.Sprintf("tenants:\n- id: %s\n  displayName: x\n  managedIdentities:\n  - {name: from-page, resourceGroup: rg}\n", env.TenantID)
	for _, tc := range []struct {
		name, method, url, body string
		hdr                     map[string]string
		status                  int
		says                    string
	}{
		{"fetch with a Blob body: no Content-Type", "PUT", identity("p1"), `{"location":"x"}`, nil, 415, "has no Content-Type"},
		{"simple POST as text/plain", "POST", base + "/admin/tenants/" + env.TenantID + "/applications", `{"displayName":"evil"}`, map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, 415, "must be application/json"},
		{"form POST of a directory document", "POST", base + "/admin/directory", doc, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/yaml"},
		{"text/plain directory document", "POST", base + "/admin/directory", doc, map[string]string{"Content-Type": "text/plain"}, 415, "application/yaml"},
		{"cross-origin JSON", "PUT", identity("p2"), `{"location":"x"}`, map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, 403, "cross-origin requests are refused"},
		{"cross-origin read", "GET", identity("demo"), "", map[string]string{"Origin": "http://localhost:3000"}, 403, "cross-origin"},
		{"cross-site fetch metadata", "PUT", identity("p3"), `{"location":"x"}`, map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, "cross-site requests are refused"},
		{"the CLI's request", "PUT", identity("from-cli"), `{"location":"x"}`, map[string]string{"Content-Type": "application/json"}, 201, `"name": "from-cli"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := send(tc.method, tc.url, tc.body, tc.hdr)
			if code != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d %s, want %d saying %q", code, body, tc.status, tc.says)
			}
		})
	}
	for _, name := range []string{"p1", "p2", "p3", "from-page"} {
		if exists(name) {
			t.Errorf("a browser request created identity %s", name)
		}
	}
	if !exists("from-cli") {
		t.Error("the CLI's request did not create its identity")
	}
}
