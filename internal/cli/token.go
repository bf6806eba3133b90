package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/doctor"
	"github.com/wif-project/wif/internal/issuer/jwtdump"
	"github.com/wif-project/wif/internal/stsclient"
)

func newTokenCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Decode tokens and get access tokens",
	}
	cmd.AddCommand(newTokenDecodeCommand(streams), newTokenGetCommand(streams))
	return cmd
}

func newTokenDecodeCommand(streams Streams) *cobra.Command {
	var check bool
	var tc doctor.TokenCheck
	var caFile, output string
	cmd := &cobra.Command{
		Use:   "decode [FILE|-]",
		Short: "Show a JWT's header and claims, with its times as dates; --check validates it as a resource would",
		Long: `Decode a JWT read from FILE, or from stdin when FILE is - or absent, and
print its header and claims with iat/nbf/exp as dates and "expires in ...".
Without --check the token is not validated: the signature is not checked.

--check validates it as a resource (or a gateway) would and says what it
would refuse and why: the signature against the keys its issuer publishes
(discovery at iss + /.well-known/openid-configuration), the times, and with
--audience, --tenant-id, --client-id and --role what the resource requires.
Exit status 1 when a check fails.`,
		Example: `  wif token get --scope api://provider-api/.default | wif token decode --check --audience api://provider-api --role Data.Read`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = streams.In
			name := "stdin"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("read token: %w", err)
				}
				defer f.Close()
				r, name = f, args[0]
			}
			data, err := io.ReadAll(io.LimitReader(r, jwtdump.MaxTokenBytes+1))
			if err != nil {
				return fmt.Errorf("read token from %s: %w", name, err)
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			d, err := jwtdump.Decode(data)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			asJSON := func(rep *doctor.Report) error {
				v := map[string]any{"header": d.Header, "claims": d.Claims, "signatureBytes": d.SignatureBytes}
				if rep != nil {
					v["check"] = rep
				}
				enc := json.NewEncoder(streams.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			if !check {
				if output == "json" {
					return asJSON(nil)
				}
				return d.Render(streams.Out, time.Now())
			}
			if caFile == "" {
				caFile, _ = lookupEnvFrom(cmd.Context())("SSL_CERT_FILE")
			}
			if caFile != "" {
				if tc.RootCAs, err = stsclient.LoadCAFile(caFile); err != nil {
					return err
				}
			}
			rep := doctor.CheckToken(cmd.Context(), string(data), tc)
			if output == "json" {
				if err := asJSON(rep); err != nil {
					return err
				}
			} else {
				if err := d.RenderForCheck(streams.Out, time.Now()); err != nil {
					return err
				}
				if _, err := io.WriteString(streams.Out, "\n"); err != nil {
					return err
				}
				if err := writeDoctor(streams.Out, rep, false); err != nil {
					return err
				}
			}
			if !rep.OK {
				return errDoctorFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&check, "check", false, "validate the token as a resource would and say what it would refuse")
	f.StringVar(&tc.Audience, "audience", "", "with --check: the audience the resource requires")
	f.StringVar(&tc.TenantID, "tenant-id", "", "with --check: the tenant (tid) the resource requires")
	f.StringSliceVar(&tc.ClientIDs, "client-id", nil, "with --check: a client (azp/appid) the resource allows (repeatable)")
	f.StringSliceVar(&tc.Roles, "role", nil, "with --check: an app role the resource requires (repeatable)")
	f.StringVar(&caFile, "ca-file", "", "with --check: PEM bundle of CAs to trust for the issuer's keys besides the system's (default $SSL_CERT_FILE)")
	f.StringVarP(&output, "output", "o", "table", "table or json (header, claims and, with --check, the checks)")
	return cmd
}

func newTokenGetCommand(streams Streams) *cobra.Command {
	var (
		scope, authority, tenant, clientID, tokenFile, caFile, output string
		decode                                                        bool
	)
	cmd := &cobra.Command{
		Use:   "get --scope RESOURCE/.default",
		Short: "Exchange the federated token for an access token, as a workload would",
		Long: `Exchange the federated token file for an access token at the token service,
with the same environment a workload gets: AZURE_AUTHORITY_HOST,
AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE and SSL_CERT_FILE
(after ` + "`. .wif/env`" + `). Flags override the environment. Prints the access
token, or with --decode its header and claims.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lookup := lookupEnvFrom(cmd.Context())
			fromEnv := func(v *string, name string) {
				if *v == "" {
					*v, _ = lookup(name)
				}
			}
			fromEnv(&authority, "AZURE_AUTHORITY_HOST")
			fromEnv(&tenant, "AZURE_TENANT_ID")
			fromEnv(&clientID, "AZURE_CLIENT_ID")
			fromEnv(&tokenFile, "AZURE_FEDERATED_TOKEN_FILE")
			fromEnv(&caFile, "SSL_CERT_FILE")
			if clientID == "" {
				return errors.New("no client id: set AZURE_CLIENT_ID or --client-id (after `wif dev`, run `. .wif/env`)")
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("--output must be table or json, not %q", output)
			}
			httpClient := stsclient.NewHTTPClient(nil)
			if caFile != "" {
				pool, err := stsclient.LoadCAFile(caFile)
				if err != nil {
					return err
				}
				httpClient = stsclient.NewHTTPClient(pool)
			}
			c, err := stsclient.New(stsclient.Config{AuthorityHost: authority, TenantID: tenant, TokenFile: tokenFile, HTTPClient: httpClient, UserAgent: "wif-token-get"})
			if err != nil {
				return err
			}
			tok, err := c.Exchange(cmd.Context(), clientID, scope)
			if err != nil {
				return fmt.Errorf("exchange at %s: %w", c.Endpoint(), err)
			}
			if output == "json" {
				// az account get-access-token's shape.
				enc := json.NewEncoder(streams.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"accessToken": tok.AccessToken, "expiresOn": tok.ExpiresOn.Local().Format("2006-01-02 15:04:05.000000"),
					"expires_on": tok.ExpiresOn.Unix(), "tenant": tenant, "tokenType": tok.TokenType})
			}
			if !decode {
				_, err := fmt.Fprintln(streams.Out, tok.AccessToken)
				return err
			}
			d, err := jwtdump.Decode([]byte(tok.AccessToken))
			if err != nil {
				return fmt.Errorf("the token service returned an access token that is not a JWT: %w", err)
			}
			return d.Render(streams.Out, time.Now())
		},
	}
	cmd.SetGlobalNormalizationFunc(flagAliases(map[string]string{
		"tenant": "tenant-id", "server": "authority-host", "federated-token-file": "token-file"}))
	f := cmd.Flags()
	f.StringVar(&scope, "scope", "", "the scope to ask for, e.g. api://provider-api/.default (required)")
	f.StringVar(&authority, "authority-host", "", "token service URL (default $AZURE_AUTHORITY_HOST)")
	f.StringVar(&tenant, "tenant-id", "", "tenant id (default $AZURE_TENANT_ID)")
	f.StringVar(&clientID, "client-id", "", "client id of the managed identity or application (default $AZURE_CLIENT_ID)")
	f.StringVar(&tokenFile, "token-file", "", "federated token file (default $AZURE_FEDERATED_TOKEN_FILE)")
	f.StringVar(&caFile, "ca-file", "", "PEM bundle of CAs to trust besides the system's (default $SSL_CERT_FILE)")
	f.BoolVar(&decode, "decode", false, "print the token's header and claims instead of the token")
	f.StringVarP(&output, "output", "o", "table", "table (the token alone) or json (az account get-access-token's shape)")
	_ = cmd.MarkFlagRequired("scope")
	return cmd
}
