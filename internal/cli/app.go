package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

func newAppCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Manage applications: resources with identifier URIs and app roles, and clients (like az ad app)",
	}
	af := addAdminFlags(cmd)
	cmd.AddCommand(newAppCreate(streams, af), newAppUpdate(streams, af), newAppShow(streams, af), newAppList(streams, af), newAppDelete(streams, af),
		newAppFICCommand(streams, af))
	return cmd
}

// newAppFICCommand manages an application's federated credentials, like
// az ad app federated-credential (with flags instead of --parameters).
func newAppFICCommand(streams Streams, af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "federated-credential",
		Short: "Manage an application's federated identity credentials (like az ad app federated-credential)",
	}
	tbl := func(items ...admin.AppCredentialResource) func() table {
		return func() table {
			t := table{headers: []string{"Name", "Issuer", "Subject", "Audiences", "LastUsed"}}
			for _, f := range items {
				subj := f.Subject
				if f.ClaimsMatchingExpression != nil {
					subj = "claims: " + f.ClaimsMatchingExpression.Value
				}
				t.rows = append(t.rows, []string{f.Name, f.Issuer, subj, strings.Join(f.Audiences, ","), lastUsedText(f.LastUsed)})
			}
			return t
		}
	}
	var appID string
	addID := func(c *cobra.Command) {
		c.Flags().StringVar(&appID, "id", "", "the application's appId")
		_ = c.MarkFlagRequired("id")
	}
	var in admin.AppCredentialResource
	var skipCheck bool
	var expr string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create (or update) a federated identity credential on an application",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			cme, err := subjectOrExpression(in.Subject, expr)
			if err != nil {
				return err
			}
			in.ClaimsMatchingExpression = cme
			if err := warnIssuer(ctx, af, streams.ErrOut, in.Issuer, skipCheck); err != nil {
				return err
			}
			f, err := c.PutAppCredential(ctx, tid, appID, in)
			if err != nil {
				return err
			}
			return af.print(streams.Out, f, tbl(f))
		}),
	}
	addID(create)
	f := create.Flags()
	f.StringVarP(&in.Name, "name", "n", "", "credential name")
	f.StringVar(&in.Issuer, "issuer", "", "the issuer URL, exactly as its tokens carry it in iss")
	f.StringVar(&in.Subject, "subject", "", "the subject")
	f.StringVar(&expr, "claims-matching-expression", "", "instead of --subject: a claims expression (language version 1), e.g. \"claims['sub'] matches 'repo:contoso/*:environment:prod'\"")
	f.StringSliceVar(&in.Audiences, "audiences", []string{directory.DefaultAudience}, "the audience the tokens carry")
	f.StringVar(&in.Description, "description", "", "description")
	f.BoolVar(&skipCheck, "skip-issuer-check", false, "do not fetch the issuer's discovery document")
	for _, n := range []string{"name", "issuer"} {
		_ = create.MarkFlagRequired(n)
	}
	var name string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show an application's federated identity credential",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			f, err := c.GetAppCredential(ctx, tid, appID, name)
			if err != nil {
				return err
			}
			return af.print(streams.Out, f, tbl(f))
		}),
	}
	addID(show)
	show.Flags().StringVarP(&name, "federated-credential-id", "n", "", "credential name")
	_ = show.MarkFlagRequired("federated-credential-id")
	list := &cobra.Command{
		Use:   "list",
		Short: "List an application's federated identity credentials",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			fs, err := c.ListAppCredentials(ctx, tid, appID)
			if err != nil {
				return err
			}
			if fs == nil {
				fs = []admin.AppCredentialResource{}
			}
			return af.print(streams.Out, fs, tbl(fs...))
		}),
	}
	addID(list)
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete an application's federated identity credential",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			return c.DeleteAppCredential(ctx, tid, appID, name)
		}),
	}
	addID(del)
	del.Flags().StringVarP(&name, "federated-credential-id", "n", "", "credential name")
	_ = del.MarkFlagRequired("federated-credential-id")
	var assertionFile string
	test := &cobra.Command{
		Use:   "test",
		Short: "Dry-run an exchange of a platform token for the application: every check's verdict; no token is issued",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			assertion, err := readAssertionFile(streams, assertionFile)
			if err != nil {
				return err
			}
			res, err := c.TestAppCredentials(ctx, tid, appID, assertion)
			if err != nil {
				return err
			}
			return printTest(streams, af, res, "application "+appID)
		}),
	}
	addID(test)
	test.Flags().StringVar(&assertionFile, "assertion-file", "", "file holding the platform token to try (- for standard input)")
	_ = test.MarkFlagRequired("assertion-file")
	cmd.AddCommand(create, newAppFICUpdate(streams, af, tbl), show, list, del, test)
	return cmd
}

func appTable(items ...admin.ApplicationResource) func() table {
	return func() table {
		t := table{headers: []string{"DisplayName", "AppId", "IdentifierUris", "AppRoles", "TokenVersion"}}
		for _, a := range items {
			var roles []string
			for _, r := range a.AppRoles {
				roles = append(roles, r.Value)
			}
			v := "1"
			if a.RequestedAccessTokenVersion == 2 {
				v = "2"
			}
			t.rows = append(t.rows, []string{a.DisplayName, a.AppID, strings.Join(a.IdentifierURIs, ","), strings.Join(roles, ","), v})
		}
		return t
	}
}

func newAppCreate(streams Streams, af *adminFlags) *cobra.Command {
	var in admin.ApplicationResource
	var roles []string
	var rolesFile string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an application",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			for _, r := range roles {
				in.AppRoles = append(in.AppRoles, admin.AppRoleResource{Value: r})
			}
			if rolesFile != "" {
				b, err := os.ReadFile(rolesFile)
				if err != nil {
					return fmt.Errorf("read --app-roles: %w", err)
				}
				var more []admin.AppRoleResource
				if err := json.Unmarshal(b, &more); err != nil {
					return fmt.Errorf("--app-roles %s: expected a JSON list of {value, allowedMemberTypes, ...}: %w", rolesFile, err)
				}
				in.AppRoles = append(in.AppRoles, more...)
			}
			a, err := c.CreateApplication(ctx, tid, in)
			if err != nil {
				return err
			}
			return af.print(streams.Out, a, appTable(a))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.DisplayName, "display-name", "", "display name")
	f.StringSliceVar(&in.IdentifierURIs, "identifier-uris", nil, "identifier URIs, e.g. api://provider-api")
	f.StringSliceVar(&roles, "app-role", nil, "an app role value assignable to applications (repeatable), e.g. Data.Read")
	f.StringVar(&rolesFile, "app-roles", "", "JSON file with a list of app roles, as az ad app create --app-roles")
	f.IntVar(&in.RequestedAccessTokenVersion, "requested-access-token-version", 0, "access token version for this resource: 1 or 2")
	f.StringVar(&in.AppID, "app-id", "", "the appId (default: generated)")
	_ = cmd.MarkFlagRequired("display-name")
	return cmd
}

func newAppShow(streams Streams, af *adminFlags) *cobra.Command {
	var appID string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show an application",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			a, err := c.GetApplication(ctx, tid, appID)
			if err != nil {
				return err
			}
			return af.print(streams.Out, a, appTable(a))
		}),
	}
	cmd.Flags().StringVar(&appID, "id", "", "the application's appId")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func newAppList(streams Streams, af *adminFlags) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List applications",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			as, err := c.ListApplications(ctx, tid)
			if err != nil {
				return err
			}
			out := []admin.ApplicationResource{}
			for _, a := range as {
				if name == "" || a.DisplayName == name {
					out = append(out, a)
				}
			}
			return af.print(streams.Out, out, appTable(out...))
		}),
	}
	cmd.Flags().StringVar(&name, "display-name", "", "only applications with this display name")
	return cmd
}

func newAppDelete(streams Streams, af *adminFlags) *cobra.Command {
	var appID string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete an application with its credentials and role assignments",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			return c.DeleteApplication(ctx, tid, appID)
		}),
	}
	cmd.Flags().StringVar(&appID, "id", "", "the application's appId")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}
