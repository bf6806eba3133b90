package devenv

import (
	"go.opentelemetry.io/otel/trace"

	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/wif-project/wif/internal/gateway"
	"github.com/wif-project/wif/internal/tlsutil"
)

// Gateway files in the state directory, rewritten on every start from the
// seeded ids (read them to see what the gateway enforces; copy them to run
// `wif gateway` yourself).
const (
	GatewayConfigFile = "gateway.yaml"
	GatewayPolicyFile = "gateway-policy.xml"
)

// GatewayPolicy is the APIM policy wif dev's gateway runs in front of the
// demo API: what an API Management instance in front of a provider API
// would run for seed 001 — only the demo identity, only tokens for the
// provider API, only with role Data.Read, at most 100 calls a minute per
// client.
func GatewayPolicy(seed SeedResult) string {
	return `<!-- Written by wif dev on every start from the seeded ids. -->
<policies>
  <inbound>
    <base />
    <validate-azure-ad-token tenant-id="` + seed.TenantID + `" failed-validation-httpcode="401">
      <client-application-ids>
        <application-id>` + seed.ClientID + `</application-id>
      </client-application-ids>
      <backend-application-ids>
        <application-id>` + seed.ResourceAppID + `</application-id>
      </backend-application-ids>
      <required-claims>
        <claim name="roles" match="any">
          <value>` + ResourceRole + `</value>
        </claim>
      </required-claims>
    </validate-azure-ad-token>
    <rate-limit-by-key calls="100" renewal-period="60" counter-key="client-id" />
  </inbound>
  <backend>
    <base />
  </backend>
  <outbound>
    <base />
  </outbound>
</policies>
`
}

// gatewayConfig is the gateway's YAML: one route, everything to the demo
// API, trusting the dev CA for the token service's keys and the backend.
func gatewayConfig(stsURL, apiURL, caFile string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
	return "# Written by wif dev on every start.\n" +
		"tokenService:\n  url: " + q(stsURL) + "\n  caFile: " + q(caFile) + "\n" +
		"backendCAFile: " + q(caFile) + "\n" +
		"routes:\n- name: provider-api\n  pathPrefix: /\n  backend: " + q(apiURL+"/") + "\n  policy: " + GatewayPolicyFile + "\n"
}

// newGateway writes the gateway's files and builds it.
func newGateway(dir, stsURL, apiURL string, seed SeedResult, client *http.Client, logger *slog.Logger, tp trace.TracerProvider) (*gateway.Gateway, error) {
	caFile := filepath.Join(dir, CAFile)
	if err := tlsutil.WriteFileAtomic(filepath.Join(dir, GatewayPolicyFile), []byte(GatewayPolicy(seed)), 0o644); err != nil {
		return nil, err
	}
	yml := gatewayConfig(stsURL, apiURL, caFile)
	if err := tlsutil.WriteFileAtomic(filepath.Join(dir, GatewayConfigFile), []byte(yml), 0o644); err != nil {
		return nil, err
	}
	cfg, err := gateway.ParseConfig([]byte(yml), dir)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	gw, err := gateway.Open(cfg, gateway.Options{Logger: logger, KeyClient: client, BackendTransport: client.Transport, TracerProvider: tp})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return gw, nil
}

// warmGateway fetches the token service's keys once so the first call
// through the gateway does not wait; a failure is only logged (the gateway
// fetches on demand).
func warmGateway(ctx context.Context, gw *gateway.Gateway, logger *slog.Logger) {
	if err := gw.Warm(ctx); err != nil {
		logger.Warn("gateway: could not fetch the token service's keys yet", "error", err)
	}
}
