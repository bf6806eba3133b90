package cli

import (
	"github.com/wif-project/wif/internal/telemetry"

	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/gateway"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/tlsutil"
)

func newGatewayCommand(streams Streams) *cobra.Command {
	var configPath, listen, readyFile, otlpEndpoint string
	var check bool
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Token-validating reverse proxy that runs Azure API Management policy documents",
		Long: `wif gateway is a reverse proxy configured by a YAML file: each route maps a
path prefix to a backend URL and an APIM policy file, run as written
(validate-jwt, validate-azure-ad-token, set-header, check-header,
rate-limit-by-key, return-response). Unknown elements and @(...) expressions
are refused at load with the file and line.

  listen: 127.0.0.1:8080
  tokenService:
    url: https://127.0.0.1:8443     # the wif token service
    caFile: ca.pem                   # trusted when fetching its keys
    entraPublicHosts: true           # login.microsoftonline.com / sts.windows.net stand for it
  routes:
  - {pathPrefix: /, backend: "http://127.0.0.1:9000/", policy: policysample.xml}

With entraPublicHosts, a production policy's openid-config URL
https://login.microsoftonline.com/{tid}/v2.0/.well-known/openid-configuration
is fetched from {url}/{tid}/v2.0/... ; run the token service with
--entra-issuer-names so its v1 tokens carry iss https://sts.windows.net/{tid}/.

The backend receives the verified identity as x-wif-client-id,
x-wif-object-id, x-wif-tenant-id and x-wif-roles (incoming x-wif-* headers are
removed). /healthz, /readyz (ready once every openid-config's keys are at
hand) and /metrics are served on the same listener.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return fmt.Errorf("--config is required: the gateway's YAML file (see wif gateway --help)")
			}
			cfg, err := gateway.LoadConfig(configPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			tp, err := telemetry.New(cmd.Context(), telemetry.Options{Endpoint: otlpEndpoint, ServiceName: "wif-gateway", LookupEnv: lookupEnvFrom(cmd.Context())})
			if err != nil {
				return err
			}
			logger := slog.New(telemetry.LogHandler(slog.NewTextHandler(streams.ErrOut, nil)))
			defer flushTraces(tp, logger)
			gw, err := gateway.Open(cfg, gateway.Options{Logger: logger, TracerProvider: tp})
			if err != nil {
				return err
			}
			defer gw.Close()
			if check {
				_, err := fmt.Fprintf(streams.Out, "%s: %d routes, policies valid\n", configPath, len(cfg.Routes))
				return err
			}
			return serveGateway(cmd.Context(), streams, cfg, gw, logger, readyFile)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "the gateway's YAML file (routes, token service, certificates)")
	f.StringVar(&listen, "listen", "", "address to listen on, overriding the file's listen (port 0 picks one)")
	f.StringVar(&readyFile, "ready-file", "", "write the gateway's base URL to this file once listening")
	f.BoolVar(&check, "check", false, "load the config and every policy, report problems, and exit")
	f.StringVar(&otlpEndpoint, "otlp-endpoint", "", "export traces over OTLP/HTTP (http://collector:4318; default $OTEL_EXPORTER_OTLP_ENDPOINT; off when neither is set); the backend receives the traceparent")
	return cmd
}

func serveGateway(ctx context.Context, streams Streams, cfg *gateway.Config, gw *gateway.Gateway, logger *slog.Logger, readyFile string) error {
	srv := &httpx.Server{Handler: gw, Logger: logger}
	scheme := "http"
	if cfg.TLS != nil {
		fc, err := tlsutil.NewFileCertificate(cfg.Path(cfg.TLS.CertFile), cfg.Path(cfg.TLS.KeyFile))
		if err != nil {
			return err
		}
		srv.TLSConfig = tlsutil.ServerConfig(fc.GetCertificate)
		scheme = "https"
	}
	ln, err := httpx.Listen(cfg.Listen)
	if err != nil {
		return err
	}
	base := scheme + "://" + ln.Addr().String()
	go func() {
		// Fetch every openid-config's keys off the request path; /readyz
		// reports the ones still missing.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := gw.Warm(wctx); err != nil {
			logger.Warn("fetching signing keys at start failed; /readyz fails until they are fetched", "error", err)
		}
	}()
	if readyFile != "" {
		if err := tlsutil.WriteFileAtomic(readyFile, []byte(base), 0o644); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Fprintf(streams.ErrOut, "wif gateway: listening on %s with %d routes\n", base, len(cfg.Routes))
	return srv.Serve(ctx, ln)
}
