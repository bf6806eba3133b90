package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/clustersync"
	"github.com/wif-project/wif/internal/httpx"
)

func newClusterSyncCommand(streams Streams) *cobra.Command {
	var name, apiServer, apiCA, apiToken, listen, logLevel string
	var interval time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Keep a pushed trusted issuer's keys equal to this cluster's service-account keys (runs in the cluster)",
		Long: `wif cluster sync runs inside a cluster (the Helm chart's clusterSync
Deployment) and pushes the API server's /openid/v1/jwks to a trusted issuer
of keySource pushed whenever it changes. The token service never has to reach
the cluster (private and air-gapped clusters), and keys a rotation removes
keep verifying for the trusted issuer's keyOverlapSeconds, so tokens already
handed out go on working.

It reads the API server with its own service account (bound to the ClusterRole
system:service-account-issuer-discovery) and authenticates to the token service
with its own federated identity (AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE,
as the webhook injects them): no secret. That identity needs no admin role: the
trusted issuer names it as its pushClientId. Because the agent's own token is
verified with the pushed keys, create the trusted issuer with the cluster's
current keys first:

  kubectl get --raw /openid/v1/jwks > jwks.json
  wif issuer-trust create -n prod-cluster --issuer "$(kubectl get --raw /.well-known/openid-configuration | jq -r .issuer)" \
      --key-source pushed --jwks-file jwks.json --push-client-id "$SYNC_AGENT_CLIENT_ID"

It refuses to push to a trusted issuer for another issuer than the API server's.`,
		Args: cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		logger, err := newLogger(streams.ErrOut, logLevel)
		if err != nil {
			return err
		}
		if apiServer == "" {
			host, port := af.env("KUBERNETES_SERVICE_HOST"), af.env("KUBERNETES_SERVICE_PORT")
			if host == "" || port == "" {
				return errors.New("--api-server is required outside a pod (KUBERNETES_SERVICE_HOST is not set)")
			}
			apiServer = "https://" + net.JoinHostPort(host, port)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if apiCA != "" {
			pem, err := os.ReadFile(apiCA)
			if err != nil {
				return fmt.Errorf("--api-server-ca-file: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--api-server-ca-file %s holds no PEM certificate", apiCA)
			}
		}
		hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, TLSHandshakeTimeout: 5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}}
		ac, err := af.client(ctx)
		if err != nil {
			return err
		}
		if af.tenant == "" {
			return errors.New("the tenant of the trusted issuer is needed: --tenant, WIF_TENANT or AZURE_TENANT_ID")
		}
		reg := httpx.NewRegistry()
		s, err := clustersync.New(clustersync.Config{APIServer: apiServer, HTTPClient: hc, TokenFile: apiToken, Admin: ac,
			TenantID: af.tenant, Name: name, Interval: interval, Logger: logger, Registerer: reg})
		if err != nil {
			return err
		}
		if once {
			res, err := s.Once(ctx)
			if err != nil {
				return err
			}
			state := "unchanged"
			if res.Pushed {
				state = "pushed"
			}
			fmt.Fprintf(streams.Out, "%s: trusted issuer %q holds keys %v\n", state, name, res.KIDs)
			return nil
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, 2)
		if listen != "" {
			ln, err := httpx.Listen(listen)
			if err != nil {
				return err
			}
			mux := http.NewServeMux()
			var probes httpx.Probes
			probes.AddReadiness("keys in sync", func(context.Context) error { return s.Ready() })
			probes.Mount(mux)
			httpx.MountMetrics(mux, reg)
			go func() { errc <- (&httpx.Server{Handler: mux, Logger: logger}).Serve(ctx, ln) }()
		}
		go func() { errc <- s.Run(ctx) }()
		err = <-errc
		cancel()
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "trusted-issuer", "", "the name of the trusted issuer (keySource pushed) to keep current (required)")
	fl.StringVar(&apiServer, "api-server", "", "the API server's URL (default: in-cluster, https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)")
	fl.StringVar(&apiCA, "api-server-ca-file", clustersync.InClusterCAFile, "PEM CA of the API server")
	fl.StringVar(&apiToken, "api-server-token-file", clustersync.InClusterTokenFile, "bearer token for the API server, read anew for every request")
	fl.DurationVar(&interval, "interval", time.Minute, "how often to compare the API server's keys with the trusted issuer's")
	fl.BoolVar(&once, "once", false, "check (and push) once, then exit")
	fl.StringVar(&listen, "listen", "", "serve /healthz, /readyz (ready once the keys are in sync) and /metrics here, e.g. :8080")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	_ = cmd.MarkFlagRequired("trusted-issuer")
	return cmd
}
