package telemetry_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/telemetry"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestTokenEndpointTraces: with an OTLP endpoint, a token exchange sent
// with a caller's traceparent produces, at a real OTLP/HTTP receiver, the
// token endpoint's server span continuing the caller's trace and, under
// it, the spans for evaluating the assertion, fetching the issuer's key
// and signing.
func TestTokenEndpointTraces(t *testing.T) {
	rc := wiftest.NewOTLPReceiver(t)
	ctx := context.Background()
	tp, err := telemetry.New(ctx, telemetry.Options{Endpoint: rc.URL, ServiceName: "wif-serve"})
	if err != nil || !tp.Enabled {
		t.Fatalf("provider: %v %+v", err, tp)
	}
	env := wiftest.Start(t, wiftest.WithTracerProvider(tp))
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 2)
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	form := wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), "api://AzureADTokenExchange", time.Hour), "api://provider-api/.default")
	req, _ := http.NewRequest("POST", env.URL+"/"+env.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := env.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("exchange: %d", resp.StatusCode)
	}
	if err := tp.Shutdown(ctx); err != nil { // flush
		t.Fatal(err)
	}
	spans := rc.Wait(t, "POST /{tenant}/oauth2/v2.0/token", "sts.evaluate_assertion", "trust.issuer_key", "sts.sign_access_token")
	byName := map[string]wiftest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	server := byName["POST /{tenant}/oauth2/v2.0/token"]
	if server.TraceID != callerTrace || server.ParentID != callerSpan || server.Service != "wif-serve" || server.Kind != 2 ||
		!strings.Contains(server.Attrs["http.response.status_code"], "200") {
		t.Fatalf("server span: %+v", server)
	}
	for _, n := range []string{"sts.evaluate_assertion", "sts.sign_access_token"} {
		if s := byName[n]; s.TraceID != callerTrace || s.ParentID != server.SpanID {
			t.Errorf("%s: %+v, want a child of %s", n, s, server.SpanID)
		}
	}
	if k := byName["trust.issuer_key"]; k.ParentID != byName["sts.evaluate_assertion"].SpanID || k.Attrs["wif.issuer"] != env.Issuer.URL {
		t.Errorf("key span: %+v", k)
	}
	// Nothing secret in the spans: no assertion, no token.
	for _, s := range spans {
		for k, v := range s.Attrs {
			if strings.Count(v, ".") == 2 && len(v) > 100 {
				t.Errorf("span %s attribute %s looks like a token", s.Name, k)
			}
		}
	}
}

// TestNoEndpointNoTracing: without an endpoint the provider is a no-op and
// the handler is left as it is.
func TestNoEndpointNoTracing(t *testing.T) {
	tp, err := telemetry.New(context.Background(), telemetry.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil || tp.Enabled {
		t.Fatalf("%v %+v", err, tp)
	}
	h := &countingHandler{}
	if got := telemetry.Handler(tp, "x", h); got != http.Handler(h) {
		t.Fatalf("a no-op provider wrapped the handler: %T", got)
	}
	if telemetry.Enabled(tp) || telemetry.Enabled(nil) {
		t.Fatal("a no-op or nil provider reports tracing on")
	}
	if _, err := telemetry.New(context.Background(), telemetry.Options{Endpoint: "collector:4318"}); err == nil {
		t.Fatal("an endpoint without a scheme was accepted")
	}
	env := func(k string) (string, bool) {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}[k], true
	}
	if tp, err := telemetry.New(context.Background(), telemetry.Options{LookupEnv: env}); err != nil || !tp.Enabled {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT: %v", err)
	}
}

type countingHandler struct{ n int }

func (c *countingHandler) ServeHTTP(http.ResponseWriter, *http.Request) { c.n++ }
