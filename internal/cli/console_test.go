package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/wiftest"
)

// startConsole runs wif console in-process and returns its URL (with the
// session token) once it prints it.
func startConsole(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- RunWithEnv(ctx, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, []string{"console", "--listen", "127.0.0.1:0"},
			func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	t.Cleanup(func() { cancel(); <-done })
	re := regexp.MustCompile(`wif console: (http://\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("wif console exited: %v\n%s", err, errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("wif console printed no URL: %s %s", out.String(), errOut.String())
	return ""
}

func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("WIF_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium); CI=true requires the console's browser tests")
	}
	t.Skip("chromium is not installed (apt-get install chromium): the console's browser tests need it")
	return ""
}

func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// artifacts is where screenshots go: $WIF_ARTIFACTS, else a temporary
// directory (named in the log); never the repository.
func artifacts(t *testing.T) string {
	dir := os.Getenv("WIF_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "wif-artifacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(artifacts(t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// tryText is text for polling loops: "" while the node is being replaced.
func tryText(ctx context.Context, sel string) string {
	s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	return s
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var err error
	for range 20 { // a node replaced by a re-render between query and read
		var s string
		if s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel))); err == nil {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("text of %s: %v", sel, err)
	return ""
}

// TestConsoleInBrowser drives the console in a real headless Chromium
// against a real token service, as wif dev serves it: each view, a
// credential created through the form (and seen by the CLI), a refused
// exchange opened to its explanation, a token pasted into the inspector
// and dry-run.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	e := startAdminEnv(t, true)
	env := e.env("WIF_LOGIN", "none")
	if _, _, err := run(t, env, fixture, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	mi, err := e.Store.GetManagedIdentityByClientID(context.Background(), e.Tenant, "22222222-2222-2222-2222-2222222222a1")
	if err != nil {
		t.Fatal(err)
	}
	url := startConsole(t, env)
	base := strings.SplitN(url, "/#", 2)[0]

	// Directory.
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#identities tr[data-identity="demo"]`))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#identities"); !strings.Contains(got, "22222222-2222-2222-2222-2222222222a1") || !strings.Contains(got, "worker") {
		t.Fatalf("directory view: %s", got)
	}
	screenshot(t, ctx, "directory")
	// Another tenant: a selector appears, and the directory follows it.
	if _, err := e.Store.CreateTenant(context.Background(), directory.Tenant{ID: "5b2ee5f8-0f59-4a2b-9c47-3a2d1e5f7c11", DisplayName: "Fabrikam"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#tenant`)),
		chromedp.SetValue(chromedp.CSS(`#tenant`), "5b2ee5f8-0f59-4a2b-9c47-3a2d1e5f7c11")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("tenant").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(tryText(ctx, "main h1"), "5b2ee5f8"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after choosing another tenant: %s", tryText(ctx, "main h1"))
		}
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#tenant`), e.Tenant)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("tenant").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#identities tr[data-identity="demo"]`))); err != nil {
		t.Fatal(err)
	}

	// An identity, and a credential created through the form.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#identities tr[data-identity="demo"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-credential`)),
		chromedp.SendKeys(chromedp.CSS(`#cred-name`), "from-console"),
		chromedp.SendKeys(chromedp.CSS(`#cred-issuer`), e.Issuer.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#issuer-hint`))); err != nil {
		t.Fatal(err)
	}
	if hint := text(t, ctx, "#issuer-hint"); !strings.Contains(hint, "Ends with '/'") {
		t.Errorf("trailing-slash warning: %q", hint)
	}
	// The CLI's own pre-check: the issuer's discovery document names its
	// issuer with a '/', the form's has none.
	_, withSlash := oidcIssuer(t)
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#cred-issuer`), strings.TrimSuffix(withSlash, "/"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("cred-issuer").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(tryText(ctx, "#issuer-hint"), "(a missing trailing slash)"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pre-check's warning: %q", text(t, ctx, "#issuer-hint"))
		}
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#cred-issuer`), e.Issuer.URL),
		chromedp.SendKeys(chromedp.CSS(`#cred-subject`), "system:serviceaccount:default:from-console"),
		chromedp.Click(chromedp.CSS(`#new-credential button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#credentials tr[data-credential="from-console"]`))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "identity")
	out, _ := mustRun(t, env, "identity", "federated-credential", "list", "--identity-name", "demo", "--resource-group", "rg", "--query", "[].name", "-o", "tsv")
	if !strings.Contains(out, "from-console") {
		t.Fatalf("the CLI does not see the credential made in the console:\n%s", out)
	}
	// The same name again: refused (If-None-Match), the message shown.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#cred-name`), "from-console"),
		chromedp.SendKeys(chromedp.CSS(`#cred-issuer`), e.Issuer.URL), chromedp.SendKeys(chromedp.CSS(`#cred-subject`), "x"),
		chromedp.Click(chromedp.CSS(`#new-credential button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`#toast div.err`))); err != nil {
		t.Fatal(err)
	}
	if msg := text(t, ctx, "#toast div.err"); !strings.Contains(msg, "PreconditionFailed") {
		t.Errorf("creating a credential twice: %q", msg)
	}

	// Two editors: the console's edit of a credential another admin
	// changed meanwhile is refused (If-Match), not silently overwritten.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#/identity/rg/demo"), chromedp.WaitVisible(chromedp.CSS(`#credentials tr[data-credential="from-console"] button.edit`)),
		chromedp.Click(chromedp.CSS(`#credentials tr[data-credential="from-console"] button.edit`))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.UpdateFederatedCredential(context.Background(), e.Tenant, mi.ClientID, "from-console", func(f *directory.FederatedCredential) error {
		f.Subject = "system:serviceaccount:default:changed-elsewhere"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("toast").replaceChildren(), true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#cred-subject`), "system:serviceaccount:default:edited-in-console"),
		chromedp.Click(chromedp.CSS(`#new-credential button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#toast div.err:last-child`))); err != nil {
		t.Fatal(err)
	}
	if msg := text(t, ctx, "#toast div.err:last-child"); !strings.Contains(msg, "PreconditionFailed") || !strings.Contains(msg, "reload") {
		t.Fatalf("a stale edit: %q", msg)
	}
	if f, _ := e.Store.GetFederatedCredential(context.Background(), e.Tenant, mi.ClientID, "from-console"); f.Subject != "system:serviceaccount:default:changed-elsewhere" {
		t.Fatalf("the stale edit overwrote the other admin's change: %s", f.Subject)
	}
	// Read again, edit again: saved.
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#credentials tr[data-credential="from-console"] button.edit`)),
		chromedp.Click(chromedp.CSS(`#credentials tr[data-credential="from-console"] button.edit`)),
		chromedp.SetValue(chromedp.CSS(`#cred-subject`), "system:serviceaccount:default:edited-in-console"),
		chromedp.Click(chromedp.CSS(`#new-credential button[type=submit]`))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if f, _ := e.Store.GetFederatedCredential(context.Background(), e.Tenant, mi.ClientID, "from-console"); f.Subject == "system:serviceaccount:default:edited-in-console" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the edit after a reload was not saved")
		}
	}

	// An application: its roles and who holds them.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#/app/11111111-1111-1111-1111-111111111111"), chromedp.WaitVisible(chromedp.CSS(`#app-roles`))); err != nil {
		t.Fatal(err)
	}
	if roles := text(t, ctx, "#app-roles"); !strings.Contains(roles, "Data.Read") || !strings.Contains(roles, "Data.Write") {
		t.Errorf("app roles: %s", roles)
	}
	if holders := text(t, ctx, "#assignments"); !strings.Contains(holders, "demo") {
		t.Errorf("assignments: %s", holders)
	}
	// An application's credential, through the same form.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#cred-name`), "app-from-console"),
		chromedp.SendKeys(chromedp.CSS(`#cred-issuer`), "https://token.actions.githubusercontent.com"),
		chromedp.SendKeys(chromedp.CSS(`#cred-subject`), "repo:contoso/app:environment:prod"),
		chromedp.Click(chromedp.CSS(`#new-credential button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#app-credentials tr[data-credential="app-from-console"]`))); err != nil {
		t.Fatal(err)
	}
	out, _ = mustRun(t, env, "app", "federated-credential", "list", "--id", "11111111-1111-1111-1111-111111111111", "--query", "[].subject", "-o", "tsv")
	if !strings.Contains(out, "repo:contoso/app:environment:prod") {
		t.Fatalf("the CLI does not see the application credential made in the console:\n%s", out)
	}
	screenshot(t, ctx, "application")

	// A refused exchange, opened to its explanation.
	tok := e.Issuer.Mint(t, "system:serviceaccount:default:demO", directory.DefaultAudience, time.Hour)
	caPEM, err := os.ReadFile(e.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := hc.PostForm(e.URL+"/"+e.Tenant+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, tok, "api://provider-api/.default"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := e.Server.STS.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#/exchanges?result=failure"),
		chromedp.WaitVisible(chromedp.CSS(`#audit tr.row`)), chromedp.Click(chromedp.CSS(`#audit tr.row`)),
		chromedp.WaitVisible(chromedp.CSS(`#explanation-reason`))); err != nil {
		t.Fatal(err)
	}
	if why := text(t, ctx, "#explanation"); !strings.Contains(why, "subject") || !strings.Contains(why, "letter case") {
		t.Fatalf("explanation: %s", why)
	}
	screenshot(t, ctx, "exchanges")

	// The inspector: a pasted platform token, decoded, then dry-run.
	// A token the credential edited above trusts: the dry run must accept it.
	good := e.Issuer.Mint(t, "system:serviceaccount:default:edited-in-console", directory.DefaultAudience, time.Hour)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#/inspect"), chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SetValue(chromedp.CSS(`#token`), good)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("token").dispatchEvent(new Event("input"))`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#token-claims`)),
		chromedp.SetValue(chromedp.CSS(`#dry-identity`), "rg/demo"),
		chromedp.Click(chromedp.CSS(`#try`)), chromedp.WaitVisible(chromedp.CSS(`#dry-result`))); err != nil {
		t.Fatal(err)
	}
	if claims := text(t, ctx, "#token-claims"); !strings.Contains(claims, "system:serviceaccount:default:edited-in-console") || !strings.Contains(claims, "(in 60 min)") {
		t.Errorf("decoded claims: %s", claims)
	}
	if res := text(t, ctx, "#dry-result"); !strings.Contains(res, "Would be accepted: credential from-console matches") {
		t.Fatalf("dry run: %s", res)
	}
	// And one no credential trusts: refused, with the code.
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#token`), e.Issuer.Mint(t, "system:serviceaccount:default:nobody", directory.DefaultAudience, time.Hour)),
		chromedp.Click(chromedp.CSS(`#try`))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(tryText(ctx, "#dry-result"), "Would be refused: AADSTS700213"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dry run of an untrusted subject: %s", tryText(ctx, "#dry-result"))
		}
	}
	screenshot(t, ctx, "inspector")

	// Health.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/#/health"), chromedp.WaitVisible(chromedp.CSS(`#readiness`))); err != nil {
		t.Fatal(err)
	}
	if r := text(t, ctx, "#readiness"); !strings.HasPrefix(r, "Ready") {
		t.Errorf("health: %s", r)
	}
	if keys := text(t, ctx, "#signing-keys"); !strings.Contains(keys, "active") {
		t.Errorf("signing keys: %s", keys)
	}
	screenshot(t, ctx, "health")
}

// The console's guard against other pages of the same browser: no session
// token, another Host (DNS rebinding) or another Origin get nothing.
func TestConsoleRefusesOtherOrigins(t *testing.T) {
	e := startAdminEnv(t, true)
	url := startConsole(t, e.env("WIF_LOGIN", "none"))
	base, token, _ := strings.Cut(url, "/#token=")
	get := func(path string, hdr map[string]string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	host := strings.TrimPrefix(base, "http://")
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		want       int
	}{
		{"with the token", "/api/tenants", map[string]string{"X-Wif-Console-Token": token}, 200},
		{"no token", "/api/tenants", nil, 401},
		{"wrong token", "/api/tenants", map[string]string{"X-Wif-Console-Token": token + "x"}, 401},
		{"rebinding", "/api/tenants", map[string]string{"X-Wif-Console-Token": token, "Host": "evil.example:" + strings.Split(host, ":")[1]}, 421},
		{"other origin", "/api/tenants", map[string]string{"X-Wif-Console-Token": token, "Origin": "https://evil.example"}, 403},
		{"the page itself", "/", nil, 200},
	} {
		if got := get(tc.path, tc.hdr); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// Read-only credentials see no write action; credentials without a read
// role are refused at start.
func TestConsoleRoles(t *testing.T) {
	ctx := context.Background()
	e := startAdminEnv(t, false)
	if _, err := admin.Bootstrap(ctx, e.Store, e.Tenant, e.Issuer.URL, "system:serviceaccount:ci:admin"); err != nil {
		t.Fatal(err)
	}
	app, err := admin.EnsureAdminApp(ctx, e.Store, e.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, roleIDs ...string) map[string]string {
		m, err := e.Store.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: e.Tenant, SubscriptionID: "00000000-0000-0000-0000-000000000000",
			ResourceGroup: "console", Name: name, ClientID: directory.NewID(), PrincipalID: directory.NewID()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: e.Tenant, ParentKind: directory.ParentManagedIdentity,
			ParentClientID: m.ClientID, ID: directory.NewID(), Name: "k8s", Issuer: e.Issuer.URL, Subject: "system:serviceaccount:ci:" + name,
			Audiences: []string{directory.DefaultAudience}}); err != nil {
			t.Fatal(err)
		}
		for _, r := range roleIDs {
			if _, err := e.Store.CreateAppRoleAssignment(ctx, directory.AppRoleAssignment{TenantID: e.Tenant, ID: directory.NewID(),
				PrincipalID: m.PrincipalID, ResourceAppID: app.AppID, AppRoleID: r}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
			t.Fatal(err)
		}
		tf := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tf, []byte(e.Issuer.Mint(t, "system:serviceaccount:ci:"+name, directory.DefaultAudience, time.Hour)), 0o600); err != nil {
			t.Fatal(err)
		}
		return e.env("WIF_CLIENT_ID", m.ClientID, "WIF_FEDERATED_TOKEN_FILE", tf)
	}
	// No role at all: refused at start, saying which roles would do.
	_, errOut, err := run(t, mk("nobody"), "", "console", "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error()+errOut, "hold no role that reads the directory: assign Directory.Read.All") {
		t.Fatalf("a console without a read role: %v %s", err, errOut)
	}
	// Not on loopback: refused.
	if _, _, err := run(t, mk("remote"), "", "console", "--listen", "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Fatalf("a console on 0.0.0.0: %v", err)
	}
	// Read-only: the identity page shows no form; the proxy refuses writes.
	url := startConsole(t, mk("reader", admin.RoleIDReadAll))
	bctx := browser(t)
	if err := chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`#identities tr[data-identity="reader"]`)),
		chromedp.Click(chromedp.CSS(`#identities tr[data-identity="reader"] a`)), chromedp.WaitVisible(chromedp.CSS(`#read-only`))); err != nil {
		t.Fatal(err)
	}
	n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#new-credential, button.danger").length`))
	if err != nil || n != 0 {
		t.Fatalf("write actions shown to a read-only console: %d %v", n, err)
	}
	if who := text(t, bctx, "#who"); !strings.Contains(who, "Directory.Read.All") || !strings.Contains(who, "read-only") {
		t.Errorf("who: %q", who)
	}
	base, token, _ := strings.Cut(url, "/#token=")
	req, _ := http.NewRequest("DELETE", base+"/api/tenants/"+e.Tenant+"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/console/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader", nil)
	req.Header.Set("X-Wif-Console-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("a write through a read-only console: %d", resp.StatusCode)
	}

}
