package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/console"
	"github.com/wif-project/wif/internal/httpx"
)

func newConsoleCommand(streams Streams) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the web console on loopback, talking to the admin API with this CLI's credentials (like kubectl proxy)",
		Long: `wif console serves the web console — the directory, the exchanges and why they
failed, a token inspector, the service's health — on a loopback address, and
forwards its calls to the admin API with the same credentials and flags as the
other admin commands (--server, --client-id, --federated-token-file, ...). There
is no login of its own and no secret in the browser.

Open the URL it prints: it carries a session token, without which the console
answers nothing, so other web pages in the same browser cannot use it. Only the
console's own loopback address is answered (no DNS rebinding). Write actions
are hidden when the credentials hold only Directory.Read.All; credentials that
cannot read the directory are refused at start.`,
		Args: cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		host, _, err := net.SplitHostPort(listen)
		if err != nil {
			return fmt.Errorf("--listen %q: %w", listen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--listen %q: the console listens on loopback only (it holds your admin credentials)", listen)
		}
		c, err := af.client(ctx)
		if err != nil {
			return err
		}
		sess, err := consoleSession(cmd, af, c)
		if err != nil {
			return err
		}
		u, err := url.Parse(c.BaseURL)
		if err != nil {
			return err
		}
		con, err := console.New(console.Config{AdminURL: u, Transport: c.HTTPClient.Transport, Token: c.Token, Session: sess,
			CheckIssuer: func(ctx context.Context, iss string) string { return checkIssuer(ctx, c.HTTPClient, iss) }})
		if err != nil {
			return err
		}
		ln, err := httpx.Listen(listen)
		if err != nil {
			return err
		}
		con.SetAddr(ln.Addr().String())
		fmt.Fprintf(streams.Out, "wif console: %s\n", con.URL())
		return con.Serve(ctx, ln)
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8099", "loopback address to serve the console on")
	return cmd
}

// consoleSession finds out what the console's credentials may do: the
// roles of its admin token, checked against the server with one read.
func consoleSession(cmd *cobra.Command, af *adminFlags, c *admin.Client) (console.Session, error) {
	ctx := cmd.Context()
	s := console.Session{Server: c.BaseURL, Roles: []string{}}
	if c.Token == nil {
		s.Unrestricted, s.CanWrite = true, true
	} else {
		tok, err := c.Token(ctx)
		if err != nil {
			return s, fmt.Errorf("get an admin token: %w", err)
		}
		var claims struct {
			TenantID string   `json:"tid"`
			AppID    string   `json:"appid"`
			Azp      string   `json:"azp"`
			Roles    []string `json:"roles"`
		}
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
				_ = json.Unmarshal(b, &claims)
			}
		}
		s.ClientID = claims.AppID
		if s.ClientID == "" {
			s.ClientID = claims.Azp
		}
		s.Roles = append(s.Roles, claims.Roles...)
		reads := []string{admin.RoleReadWriteAll, admin.RoleReadAll, admin.RoleManagedIdentityContributor}
		if !slices.ContainsFunc(s.Roles, func(r string) bool { return slices.Contains(reads, r) }) {
			return s, fmt.Errorf("the console's credentials (client %s) hold no role that reads the directory: assign %s (read-only), %s or %s of %s to the identity",
				s.ClientID, admin.RoleReadAll, admin.RoleReadWriteAll, admin.RoleManagedIdentityContributor, admin.AdminResource)
		}
		s.CanWrite = slices.Contains(s.Roles, admin.RoleReadWriteAll) || slices.Contains(s.Roles, admin.RoleManagedIdentityContributor)
	}
	tid, err := af.tenantID(ctx, c)
	if err != nil {
		return s, err
	}
	s.TenantID = tid
	if _, err := c.GetTenant(ctx, tid); err != nil {
		var e *admin.Error
		if errors.As(err, &e) && e.StatusCode == 403 {
			// A contributor reads identities, not the tenant object.
			if _, lerr := c.ListIdentities(ctx, tid, "00000000-0000-0000-0000-000000000000", ""); lerr != nil {
				return s, fmt.Errorf("the console's credentials cannot read tenant %s: %w", tid, lerr)
			}
		} else {
			return s, fmt.Errorf("the console's credentials cannot read tenant %s: %w", tid, err)
		}
	}
	return s, nil
}
