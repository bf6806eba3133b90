package devenv

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/wif-project/wif/internal/imds"
	"github.com/wif-project/wif/internal/stsclient"
)

// startIMDS serves the managed-identity endpoints (IMDS and App Service
// protocols) on ln, plain HTTP on loopback as the real endpoints are,
// exchanging the token file at the token service on the caller's behalf. It
// returns IDENTITY_ENDPOINT and IDENTITY_HEADER.
func startIMDS(ctx context.Context, d *Dev, ln net.Listener, env Env, httpClient *http.Client, logger *slog.Logger) (endpoint, header string, err error) {
	ex, err := stsclient.New(stsclient.Config{
		AuthorityHost: env.AuthorityHost, TenantID: env.TenantID, TokenFile: env.TokenFile,
		HTTPClient: httpClient, UserAgent: "wif-dev-imds",
	})
	if err != nil {
		return "", "", fmt.Errorf("managed-identity endpoint: %w", err)
	}
	header = imds.NewIdentityHeader()
	srv, err := imds.New(imds.Config{
		ClientID: env.ClientID, Exchanger: ex, Endpoint: ex.Endpoint(), IdentityHeader: header,
		TokenFile: env.TokenFile, Logger: logger.With("part", "imds"),
	})
	if err != nil {
		return "", "", fmt.Errorf("managed-identity endpoint: %w", err)
	}
	d.goRun("managed-identity endpoint", func() error { return srv.Run(ctx, ln) })
	d.closer = append(d.closer, srv.Close)
	return "http://" + ln.Addr().String() + "/msi/token", header, nil
}
