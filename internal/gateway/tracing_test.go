package gateway

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/gateway/testissuer"
	"github.com/wif-project/wif/internal/telemetry"
	"github.com/wif-project/wif/internal/wiftest"
)

// TestGatewayTraces: with tracing on, a request carrying the caller's
// traceparent reaches the backend with a traceparent of the same trace
// whose parent is the gateway's backend span; the OTLP receiver gets the
// gateway's server span (a child of the caller's), its policy span and
// its backend span. A refused request ends its policy span in error and
// calls no backend.
func TestGatewayTraces(t *testing.T) {
	rc := wiftest.NewOTLPReceiver(t)
	tp, err := telemetry.New(context.Background(), telemetry.Options{Endpoint: rc.URL, ServiceName: "wif-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	e := &gwEnv{iss: testissuer.Start(t), backend: startBackend(t), now: time.Now()}
	cfg := &Config{
		TokenService: TokenService{URL: e.iss.URL, EntraPublicHosts: true},
		Routes:       []Route{{Name: "api", PathPrefix: "/", Backend: e.backend.URL + "/svc", Policy: "policy.xml"}},
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	pol, err := apim.Parse("policy.xml", []byte(policySample(t)))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, []*apim.Policy{pol}, Options{KeyClient: e.iss.Client, Now: e.clock, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	e.gw = gw
	e.srv = httptest.NewServer(gw)
	t.Cleanup(e.srv.Close)

	const callerTrace, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	r := e.do(t, "GET", "/orders/1", map[string]string{"Authorization": "Bearer " + e.v1(t, nil), "traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"})
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	got, _ := e.backend.lastRequest()
	tp2 := strings.Split(got.Header.Get("traceparent"), "-")
	if len(tp2) != 4 || tp2[1] != callerTrace || tp2[2] == callerSpan {
		t.Fatalf("backend traceparent %q", got.Header.Get("traceparent"))
	}
	if r := e.do(t, "GET", "/orders/2", map[string]string{"traceparent": "00-" + callerTrace + "-" + callerSpan + "-01"}); r.status != 401 {
		t.Fatalf("no token: %d", r.status)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rc.Wait(t, "gateway", "gateway.inbound_policy", "gateway.backend")
	var servers, policies []wiftest.Span
	var backend wiftest.Span
	for _, s := range spans {
		switch s.Name {
		case "gateway":
			servers = append(servers, s)
		case "gateway.inbound_policy":
			policies = append(policies, s)
		case "gateway.backend":
			backend = s
		}
	}
	if len(servers) != 2 || len(policies) != 2 {
		t.Fatalf("spans: %+v", spans)
	}
	if s := servers[0]; s.TraceID != callerTrace || s.ParentID != callerSpan || s.Attrs["wif.route"] != "api" || s.Service != "wif-gateway" {
		t.Errorf("server span: %+v", s)
	}
	if backend.SpanID != tp2[2] || backend.ParentID != servers[0].SpanID || backend.Kind != 3 {
		t.Errorf("backend span %+v; the backend's parent is %s", backend, tp2[2])
	}
}
