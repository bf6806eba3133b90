package cli

import (
	"github.com/wif-project/wif/internal/telemetry"

	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/imds"
	"github.com/wif-project/wif/internal/stsclient"
	"github.com/wif-project/wif/internal/tlsutil"
)

// DefaultIMDSListen is where `wif imds` listens by default: the port the
// Azure Workload Identity proxy sidecar uses, on loopback only.
const DefaultIMDSListen = "127.0.0.1:8000"

func newIMDSCommand(streams Streams) *cobra.Command {
	return newIMDSCommandWithEnv(streams, os.LookupEnv)
}

// newIMDSCommandWithEnv is newIMDSCommand reading the AZURE_* and
// IDENTITY_HEADER fallbacks through lookup, so tests need not touch the
// process environment.
func newIMDSCommandWithEnv(streams Streams, lookup func(string) (string, bool)) *cobra.Command {
	var (
		listen, identityHeader, clientID, tenantID, tokenFile, authorityHost, caFile, readyFile, otlpEndpoint string
		exchangeTimeout                                                                                       time.Duration
		allowedHosts                                                                                          []string
		allowNonLoopback                                                                                      bool
	)
	cmd := &cobra.Command{
		Use:   "imds",
		Short: "Managed-identity endpoint (IMDS and App Service protocols) that exchanges the workload's federated token",
		Long: `wif imds answers managed-identity token requests the way Azure's Instance
Metadata Service and App Service do, and gets each token from the token
service with the workload's federated token file (like the Azure Workload
Identity proxy sidecar). Code that asks a managed-identity endpoint keeps
working on workload identity:

  IMDS:        GET http://<listen>/metadata/identity/oauth2/token?api-version=2018-02-01&resource=R
               header Metadata: true  (JS: AZURE_POD_IDENTITY_AUTHORITY_HOST=http://<listen>)
  App Service: IDENTITY_ENDPOINT=http://<listen>/msi/token  IDENTITY_HEADER=<--identity-header>
               (and 2017-09-01, as az speaks it: MSI_ENDPOINT, header secret: MSI_SECRET)

Tokens are cached per (client id, resource) until 5 minutes before expiry, and
concurrent requests share one exchange. Configuration comes from the variables
the workload identity webhook injects (AZURE_CLIENT_ID, AZURE_TENANT_ID,
AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, IDENTITY_HEADER); flags and
WIF_<FLAG> override them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fromEnv := func(v *string, name string) {
				if *v == "" {
					*v, _ = lookup(name)
				}
			}
			fromEnv(&identityHeader, "IDENTITY_HEADER")
			fromEnv(&clientID, "AZURE_CLIENT_ID")
			fromEnv(&tenantID, "AZURE_TENANT_ID")
			fromEnv(&tokenFile, "AZURE_FEDERATED_TOKEN_FILE")
			fromEnv(&authorityHost, "AZURE_AUTHORITY_HOST")

			if err := checkLoopback(listen, allowNonLoopback); err != nil {
				return err
			}
			httpClient := stsclient.NewHTTPClient(nil)
			if caFile != "" {
				pool, err := stsclient.LoadCAFile(caFile)
				if err != nil {
					return err
				}
				httpClient = stsclient.NewHTTPClient(pool)
			}
			sts, err := stsclient.New(stsclient.Config{
				AuthorityHost: authorityHost,
				TenantID:      tenantID,
				TokenFile:     tokenFile,
				HTTPClient:    httpClient,
				Timeout:       exchangeTimeout,
				UserAgent:     "wif-imds",
			})
			if err != nil {
				return err
			}
			tp, err := telemetry.New(cmd.Context(), telemetry.Options{Endpoint: otlpEndpoint, ServiceName: "wif-imds", LookupEnv: lookupEnvFrom(cmd.Context())})
			if err != nil {
				return err
			}
			logger := slog.New(telemetry.LogHandler(slog.NewTextHandler(streams.ErrOut, nil)))
			defer flushTraces(tp, logger)
			reg := httpx.NewRegistry()
			srv, err := imds.New(imds.Config{
				ClientID:        clientID,
				Exchanger:       sts,
				IdentityHeader:  identityHeader,
				TokenFile:       tokenFile,
				Logger:          logger,
				Metrics:         reg,
				ExchangeTimeout: exchangeTimeout,
				AllowedHosts:    allowedHosts,
				TracerProvider:  tp,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := httpx.Listen(listen)
			if err != nil {
				return err
			}
			base := "http://" + ln.Addr().String()
			if readyFile != "" {
				if err := tlsutil.WriteFileAtomic(readyFile, []byte(base), 0o644); err != nil {
					ln.Close()
					return err
				}
			}
			who := clientID
			if who == "" {
				who = "the client_id each request names"
			}
			fmt.Fprintf(streams.ErrOut, "wif imds: listening on %s, exchanging at %s as %s\n", base, sts.Endpoint(), who)
			fmt.Fprintf(streams.ErrOut, "  IMDS:        AZURE_POD_IDENTITY_AUTHORITY_HOST=%s (path %s, header Metadata: true)\n", base, imds.IMDSTokenPath)
			if identityHeader != "" {
				fmt.Fprintf(streams.ErrOut, "  App Service: IDENTITY_ENDPOINT=%s%s with IDENTITY_HEADER (2019-08-01), and MSI_ENDPOINT=%s%s with MSI_SECRET set to the same secret (2017-09-01: az, msrestazure)\n",
					base, imds.AppServiceTokenPath, base, imds.AppServiceTokenPath)
			} else {
				fmt.Fprintf(streams.ErrOut, "  App Service: disabled (no --identity-header / IDENTITY_HEADER)\n")
			}
			return srv.Run(cmd.Context(), ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&otlpEndpoint, "otlp-endpoint", "", "export traces over OTLP/HTTP (default $OTEL_EXPORTER_OTLP_ENDPOINT; off when neither is set)")
	f.StringVar(&listen, "listen", DefaultIMDSListen, "address to listen on (loopback only unless --allow-non-loopback; port 0 picks one)")
	f.StringVar(&identityHeader, "identity-header", "", "the secret App Service requests must send in X-IDENTITY-HEADER (default $IDENTITY_HEADER; empty disables the App Service endpoint)")
	f.StringVar(&clientID, "client-id", "", "the workload's client id (default $AZURE_CLIENT_ID; empty: each request must name client_id)")
	f.StringVar(&tenantID, "tenant-id", "", "tenant of the token service (default $AZURE_TENANT_ID)")
	f.StringVar(&tokenFile, "token-file", "", "the workload's federated token file, read on every exchange (default $AZURE_FEDERATED_TOKEN_FILE)")
	f.StringVar(&authorityHost, "authority-host", "", "the token service's https base URL (default $AZURE_AUTHORITY_HOST)")
	f.StringVar(&caFile, "ca-file", "", "PEM file of CAs to trust for the token service, besides the system roots")
	f.StringVar(&readyFile, "ready-file", "", "write the endpoint's base URL to this file once listening")
	f.DurationVar(&exchangeTimeout, "exchange-timeout", stsclient.DefaultTimeout, "bound on one exchange at the token service")
	f.StringSliceVar(&allowedHosts, "allowed-host", nil, "a DNS name accepted in the Host header besides IP literals and localhost (repeatable); any other name is refused, so a web page that rebinds its name to this address gets nothing")
	f.BoolVar(&allowNonLoopback, "allow-non-loopback", false, "allow listening on a non-loopback address (anyone who can reach it can get the workload's tokens over IMDS)")
	cmd.AddCommand(newIMDSProbeCommand(streams))
	return cmd
}

// checkLoopback refuses a listen address other hosts could reach: the IMDS
// protocol has no secret, so the endpoint must be reachable only from the
// workload's own network namespace.
func checkLoopback(listen string, allow bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w (want host:port, e.g. %s)", listen, err, DefaultIMDSListen)
	}
	if allow {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("--listen " + listen + " is not a loopback address: the IMDS protocol carries no secret, so anyone who can reach the endpoint gets the workload's tokens; listen on 127.0.0.1 (the iptables redirect of 169.254.169.254 reaches it) or pass --allow-non-loopback")
}
