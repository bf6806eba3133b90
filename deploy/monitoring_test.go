package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/wif-project/wif/internal/wiftest"
)

// promExprs returns every PromQL expression of the alert rules and the
// dashboard, by where it is.
func promExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	raw, err := os.ReadFile("monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	if err := yaml.UnmarshalStrict(raw, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: an alert needs a name, an expression, a severity and a summary", r)
			}
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	raw, err = os.ReadFile("monitoring/wif-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		UID    string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("wif-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			exprs["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	return exprs
}

var (
	metricRE   = regexp.MustCompile(`\bwif_[a-z0-9_]+`)
	selectorRE = regexp.MustCompile(`\b(wif_[a-z0-9_]+)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	sampleRE   = regexp.MustCompile(`^(wif_[a-z0-9_]+)(\{([^}]*)\})? `)
)

// TestDashboardAndAlertsUseRealMetrics: every metric and label the alert
// rules and the Grafana dashboard use exists on a real token service's
// /metrics after it has issued and refused tokens.
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	exprs := promExprs(t)
	// As wif serve runs it: with an audit spool.
	env := wiftest.Start(t, wiftest.WithAuditSpool(t.TempDir(), 1<<20))
	mi := env.CreateManagedIdentity(t, "demo")
	app := env.CreateResourceApp(t, "api://provider-api", 2, "Data.Read")
	env.Assign(t, mi.PrincipalID, app.AppID, "Data.Read")
	env.Token(t, mi.ClientID, "api://provider-api/.default")
	if r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(mi.ClientID, "not-a-jwt", "api://provider-api/.default")); r.Status < 400 {
		t.Fatalf("a malformed assertion was accepted: %d", r.Status)
	}
	// An admin call (refused: no token) counts in the admin metrics.
	if code, _ := env.Get(t, "/admin/tenants"); code != 401 {
		t.Fatalf("unauthenticated admin call: %d", code)
	}
	page := env.Metrics(t)
	labels := map[string]map[string]bool{} // metric (histogram suffixes stripped) → its label names
	for _, line := range strings.Split(page, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(name, suf); base != name && strings.Contains(page, "# TYPE "+base+" histogram") {
				name = base
			}
		}
		if labels[name] == nil {
			labels[name] = map[string]bool{}
		}
		for _, lm := range matcherRE.FindAllStringSubmatch(m[3], -1) {
			labels[name][lm[1]] = true
		}
	}
	var missing []string
	for where, e := range exprs {
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") {
			t.Errorf("%s: unbalanced brackets: %s", where, e)
		}
		for _, name := range metricRE.FindAllString(e, -1) {
			base := name
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b := strings.TrimSuffix(name, suf); b != name && labels[b] != nil {
					base = b
				}
			}
			if labels[base] == nil {
				missing = append(missing, where+": "+name)
			}
		}
		for _, sel := range selectorRE.FindAllStringSubmatch(e, -1) {
			base := strings.TrimSuffix(sel[1], "_bucket")
			for _, lm := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
				if l := lm[1]; l != "job" && l != "instance" && l != "le" && labels[base] != nil && !labels[base][l] {
					missing = append(missing, where+": label "+l+" of "+base)
				}
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("used but not on /metrics:\n%s", strings.Join(missing, "\n"))
	}
	if len(exprs) < 15 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
}
