package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

// TestApplyReplay: `wif apply --dry-run --replay 24h` with a document that
// changes one credential's subject to another letter case lists exactly
// the audited exchanges that change — the three successes it would break
// and the case-only refusal it would fix — and nothing for the identity
// the document leaves alone or for refusals no directory decides.
func TestApplyReplay(t *testing.T) {
	e := startAdminEnv(t, true)
	env := e.env()
	ctx := context.Background()
	ids := map[string]string{"payments": "11111111-1111-4111-8111-111111111111", "reports": "22222222-2222-4222-8222-222222222222"}
	for _, name := range []string{"payments", "reports"} {
		if _, err := e.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: e.Tenant, SubscriptionID: "00000000-0000-0000-0000-000000000001",
			ResourceGroup: "rg", Name: name, ClientID: ids[name], PrincipalID: directory.NewID()}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: e.Tenant, ParentKind: directory.ParentManagedIdentity,
			ParentClientID: ids[name], ID: directory.NewID(), Name: "k8s-prod", Issuer: e.Issuer.URL, Subject: "system:serviceaccount:prod:" + name,
			Audiences: []string{directory.DefaultAudience}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Store.CreateApplication(ctx, directory.Application{TenantID: e.Tenant, AppID: "33333333-3333-4333-8333-333333333333", ObjectID: directory.NewID(),
		ServicePrincipalID: directory.NewID(), DisplayName: "ledger", IdentifierURIs: []string{"api://ledger"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	hc := httpClientFor(t, e)
	n := 0
	exchange := func(client, assertion string, want int) {
		t.Helper()
		n++
		req, _ := http.NewRequest("POST", e.URL+"/"+e.Tenant+"/oauth2/v2.0/token", strings.NewReader(url.Values{
			"grant_type": {"client_credentials"}, "client_id": {client}, "scope": {"api://ledger/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("client-request-id", "6e1b8d2c-0000-4000-8000-00000000000"+string(rune('0'+n)))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("exchange %d: status %d, want %d", n, resp.StatusCode, want)
		}
	}
	mint := func(sub string, ttl time.Duration) string {
		return e.Issuer.Mint(t, sub, directory.DefaultAudience, ttl)
	}
	for range 3 {
		exchange(ids["payments"], mint("system:serviceaccount:prod:payments", time.Hour), 200)
	}
	exchange(ids["reports"], mint("system:serviceaccount:prod:reports", time.Hour), 200)
	// Refused because only the letter case differs: the document fixes it.
	exchange(ids["payments"], mint("system:serviceaccount:prod:Payments", time.Hour), 401)
	// Refused for an expired assertion: the same in any directory.
	exchange(ids["payments"], mint("system:serviceaccount:prod:payments", -time.Hour), 401)
	if err := e.Server.STS.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}

	exported, _ := mustRun(t, env, "export")
	if c := strings.Count(exported, "subject: system:serviceaccount:prod:payments\n"); c != 1 {
		t.Fatalf("the export has the payments subject %d times:\n%s", c, exported)
	}
	doc := filepath.Join(t.TempDir(), "directory.yaml")
	if err := os.WriteFile(doc, []byte(strings.Replace(exported, "prod:payments\n", "prod:Payments\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	norm := func(s string) string {
		s = strings.ReplaceAll(s, e.Issuer.URL, "https://issuer.test")
		return regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "<time>")
	}
	out, _ := mustRun(t, env, "apply", "-f", doc, "--dry-run", "--replay", "24h")
	golden(t, "apply-replay", norm(out))

	// The same report as JSON, field by field. (Five records: the three
	// successes of payments are the first, in full, and one row counting
	// the two repeats.)
	js, _ := mustRun(t, env, "apply", "-f", doc, "--dry-run", "--replay", "1d", "-o", "json")
	var res admin.ApplyResult
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	r := res.Replay
	if r == nil || res.Applied != 0 || r.Scanned != 5 || r.Distinct != 3 || len(r.Breaks) != 1 || len(r.Fixes) != 1 || len(r.RoleChanges) != 0 || len(r.Uncertain) != 0 {
		t.Fatalf("replay: %+v", r)
	}
	br, fx := r.Breaks[0], r.Fixes[0]
	if br.ClientID != ids["payments"] || br.Subject != "system:serviceaccount:prod:payments" || br.Count != 3 ||
		br.Before.Result != "success" || br.Before.Credential != "k8s-prod" || br.After.Result != "failure" || br.After.Code != 7002138 {
		t.Errorf("break: %+v", br)
	}
	if fx.Subject != "system:serviceaccount:prod:Payments" || fx.Count != 1 || fx.Before.Code != 7002138 || fx.After.Result != "success" ||
		fx.CorrelationID != "6e1b8d2c-0000-4000-8000-000000000005" {
		t.Errorf("fix: %+v", fx)
	}

	// --fail-on-break: the report, then exit 1; nothing was changed.
	out, _, err := run(t, env, "", "apply", "-f", doc, "--dry-run", "--replay", "24h", "--fail-on-break")
	if !errors.Is(err, errReplayBreaks) || !strings.Contains(out, "Would break (succeed now, refused after) (1):") {
		t.Fatalf("--fail-on-break: %v\n%s", err, out)
	}
	if fic, err := e.Store.GetFederatedCredential(ctx, e.Tenant, ids["payments"], "k8s-prod"); err != nil || fic.Subject != "system:serviceaccount:prod:payments" {
		t.Fatalf("a dry run changed the credential: %+v %v", fic, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--replay", "24h"}, "--replay needs --dry-run"},
		{[]string{"--dry-run", "--fail-on-break"}, "--fail-on-break needs --dry-run --replay"},
		{[]string{"--dry-run", "--replay", "40d"}, "replay must be a window such as 24h or 7d, at most 31 days, not \"40d\" (out of range)"},
		{[]string{"--dry-run", "--replay", "yesterday"}, "not \"yesterday\" (not a duration)"},
	} {
		_, _, err := run(t, env, "", append([]string{"apply", "-f", doc}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("apply %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
