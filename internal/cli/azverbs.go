package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
)

// The verbs az users type beyond create/show/list/delete: update, role
// assignment, tenant.

// subjectOrExpression checks that exactly one of --subject and
// --claims-matching-expression is given and returns the expression.
func subjectOrExpression(subject, expr string) (*directory.ClaimsMatchingExpression, error) {
	switch {
	case subject != "" && expr != "":
		return nil, errors.New("give --subject or --claims-matching-expression, not both")
	case subject == "" && expr == "":
		return nil, errors.New("give --subject (e.g. system:serviceaccount:<namespace>:<name>) or --claims-matching-expression")
	case expr != "":
		return &directory.ClaimsMatchingExpression{Value: expr, LanguageVersion: 1}, nil
	}
	return nil, nil
}

func parseTags(tags []string) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		k, v, _ := strings.Cut(t, "=")
		m[k] = v
	}
	return m
}

func newIdentityUpdate(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	var location string
	var tags []string
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Update an identity's tags or location (like az identity update)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
		m, err := c.GetIdentity(ctx, tid, id.subscription, id.resourceGroup, id.name)
		if err != nil {
			return err
		}
		in := admin.IdentityResource{Location: m.Location, Tags: m.Tags}
		if cmd.Flags().Changed("location") {
			in.Location = location
		}
		if cmd.Flags().Changed("tags") {
			in.Tags = parseTags(tags)
		}
		m, err = c.PutIdentity(ctx, tid, id.subscription, id.resourceGroup, id.name, in)
		if err != nil {
			return err
		}
		return af.print(streams.Out, viewIdentity(m), identityTable(m))
	})
	id.add(cmd, "name", "identity name", true)
	cmd.Flags().StringVarP(&location, "location", "l", "", "location (informational)")
	cmd.Flags().StringSliceVar(&tags, "tags", nil, "key=value tags, replacing the current ones (\"\" clears them)")
	return cmd
}

func newFICUpdate(streams Streams, af *adminFlags) *cobra.Command {
	var id identityFlags
	var identityName, issuer, subject, description, expr string
	var audiences []string
	var skipCheck bool
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change a federated identity credential's issuer, subject, audiences or description (like az identity federated-credential update)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
		cur, err := c.GetIdentityCredential(ctx, tid, id.subscription, id.resourceGroup, identityName, id.name)
		if err != nil {
			return err
		}
		p := admin.CredentialProperties{}
		if cur.Properties != nil {
			p = *cur.Properties
		}
		p.LastUsed = nil
		fl := cmd.Flags()
		if fl.Changed("issuer") {
			p.Issuer = issuer
			if err := warnIssuer(ctx, af, streams.ErrOut, issuer, skipCheck); err != nil {
				return err
			}
		}
		if fl.Changed("subject") {
			p.Subject, p.ClaimsMatchingExpression = subject, nil
		}
		if fl.Changed("claims-matching-expression") {
			p.Subject, p.ClaimsMatchingExpression = "", &directory.ClaimsMatchingExpression{Value: expr, LanguageVersion: 1}
		}
		if fl.Changed("subject") && fl.Changed("claims-matching-expression") {
			return errors.New("give --subject or --claims-matching-expression, not both")
		}
		if fl.Changed("audiences") {
			p.Audiences = audiences
		}
		if fl.Changed("description") {
			p.Description = description
		}
		f, err := c.PutIdentityCredential(ctx, tid, id.subscription, id.resourceGroup, identityName, id.name, p)
		if err != nil {
			return err
		}
		return af.print(streams.Out, viewCredential(f), ficTable(f))
	})
	id.add(cmd, "name", "credential name", true)
	f := cmd.Flags()
	f.StringVar(&identityName, "identity-name", "", "name of the managed identity")
	f.StringVar(&issuer, "issuer", "", "the new issuer URL")
	f.StringVar(&subject, "subject", "", "the new subject")
	f.StringVar(&expr, "claims-matching-expression", "", "a claims expression replacing the subject")
	f.StringSliceVar(&audiences, "audiences", nil, "the new audience")
	f.StringVar(&description, "description", "", "the new description")
	f.BoolVar(&skipCheck, "skip-issuer-check", false, "do not fetch the new issuer's discovery document")
	_ = cmd.MarkFlagRequired("identity-name")
	return cmd
}

func newAppFICUpdate(streams Streams, af *adminFlags, tbl func(...admin.AppCredentialResource) func() table) *cobra.Command {
	var appID, name, issuer, subject, description, expr string
	var audiences []string
	var skipCheck bool
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change an application's federated identity credential (like az ad app federated-credential update)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
		cur, err := c.GetAppCredential(ctx, tid, appID, name)
		if err != nil {
			return err
		}
		cur.LastUsed, cur.ETag = nil, ""
		fl := cmd.Flags()
		if fl.Changed("subject") && fl.Changed("claims-matching-expression") {
			return errors.New("give --subject or --claims-matching-expression, not both")
		}
		if fl.Changed("issuer") {
			cur.Issuer = issuer
			if err := warnIssuer(ctx, af, streams.ErrOut, issuer, skipCheck); err != nil {
				return err
			}
		}
		if fl.Changed("subject") {
			cur.Subject, cur.ClaimsMatchingExpression = subject, nil
		}
		if fl.Changed("claims-matching-expression") {
			cur.Subject, cur.ClaimsMatchingExpression = "", &directory.ClaimsMatchingExpression{Value: expr, LanguageVersion: 1}
		}
		if fl.Changed("audiences") {
			cur.Audiences = audiences
		}
		if fl.Changed("description") {
			cur.Description = description
		}
		f, err := c.PutAppCredential(ctx, tid, appID, cur)
		if err != nil {
			return err
		}
		return af.print(streams.Out, f, tbl(f))
	})
	f := cmd.Flags()
	f.StringVar(&appID, "id", "", "the application's appId")
	f.StringVarP(&name, "federated-credential-id", "n", "", "credential name (as az ad app federated-credential update)")
	f.StringVar(&issuer, "issuer", "", "the new issuer URL")
	f.StringVar(&subject, "subject", "", "the new subject")
	f.StringVar(&expr, "claims-matching-expression", "", "a claims expression replacing the subject")
	f.StringSliceVar(&audiences, "audiences", nil, "the new audience")
	f.StringVar(&description, "description", "", "the new description")
	f.BoolVar(&skipCheck, "skip-issuer-check", false, "do not fetch the new issuer's discovery document")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("federated-credential-id")
	return cmd
}

func newAppUpdate(streams Streams, af *adminFlags) *cobra.Command {
	var appID, displayName string
	var uris []string
	var version int
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change an application's display name, identifier URIs or access token version (like az ad app update)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
		patch := map[string]any{}
		fl := cmd.Flags()
		if fl.Changed("display-name") {
			patch["displayName"] = displayName
		}
		if fl.Changed("identifier-uris") {
			patch["identifierUris"] = uris
		}
		if fl.Changed("requested-access-token-version") {
			patch["requestedAccessTokenVersion"] = version
		}
		if len(patch) == 0 {
			return errors.New("nothing to update: give --display-name, --identifier-uris or --requested-access-token-version")
		}
		a, err := c.PatchApplication(ctx, tid, appID, patch)
		if err != nil {
			return err
		}
		return af.print(streams.Out, a, appTable(a))
	})
	f := cmd.Flags()
	f.StringVar(&appID, "id", "", "the application's appId")
	f.StringVar(&displayName, "display-name", "", "the new display name")
	f.StringSliceVar(&uris, "identifier-uris", nil, "the new identifier URIs (replacing the current ones)")
	f.IntVar(&version, "requested-access-token-version", 0, "access token version for this resource: 1 or 2")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

// newRoleAssignmentCommand is az role assignment's shape over app role
// assignments: --scope names the resource application (identifier URI,
// appId or display name), as app roles belong to it.
func newRoleAssignmentCommand(streams Streams, af *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "assignment",
		Short: "App role assignments in az role assignment's shape (--assignee, --role, --scope = the resource application)",
	}
	create := newAssignCommand(streams, af, "create", "Assign an app role (--scope: the resource application's identifier URI, appId or display name)",
		"scope", "the resource application: identifier URI, appId or display name")
	var q admin.AssignmentResource
	filter := func(ctx context.Context, c *admin.Client, tid string) ([]admin.AssignmentResource, error) {
		return findAssignments(ctx, c, tid, q)
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List app role assignments (filter by --assignee, --role, --scope)",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			gs, err := filter(ctx, c, tid)
			if err != nil {
				return err
			}
			return af.print(streams.Out, gs, assignmentTable(gs...))
		}),
	}
	var ids []string
	del := &cobra.Command{
		Use:   "delete",
		Short: "Remove app role assignments: by --ids, or those matching --assignee, --role and --scope",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			if len(ids) == 0 {
				if q.Principal == "" || q.Role == "" || q.Resource == "" {
					return errors.New("give --ids, or all of --assignee, --role and --scope")
				}
				gs, err := filter(ctx, c, tid)
				if err != nil {
					return err
				}
				if len(gs) == 0 {
					return fmt.Errorf("no assignment of role %q of %q to %q", q.Role, q.Resource, q.Principal)
				}
				for _, g := range gs {
					ids = append(ids, g.ID)
				}
			}
			for _, id := range ids {
				if err := c.DeleteAssignment(ctx, tid, id); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	for _, c := range []*cobra.Command{list, del} {
		f := c.Flags()
		f.StringVar(&q.Principal, "assignee", "", "identity name or client id, or application display name or appId")
		f.StringVar(&q.Role, "role", "", "app role value or id")
		f.StringVar(&q.Resource, "scope", "", "the resource application: identifier URI, appId or display name")
	}
	del.Flags().StringSliceVar(&ids, "ids", nil, "assignment ids")
	cmd.AddCommand(create, list, del)
	return cmd
}

// findAssignments lists the assignments matching q's non-empty principal
// (name, client id, appId or principal id), role (value or id) and
// resource (identifier URI, appId or display name).
func findAssignments(ctx context.Context, c *admin.Client, tid string, q admin.AssignmentResource) ([]admin.AssignmentResource, error) {
	gs, err := c.ListAssignments(ctx, tid)
	if err != nil {
		return nil, err
	}
	principals, err := principalIDs(ctx, c, tid, q.Principal)
	if err != nil {
		return nil, err
	}
	out := []admin.AssignmentResource{}
	for _, g := range gs {
		if matchesAny(q.Principal, append([]string{g.Principal, g.PrincipalID}, principals[strings.ToLower(g.PrincipalID)]...)...) &&
			matchesAny(q.Role, g.Role, g.AppRoleID) && matchesAny(q.Resource, g.Resource, g.ResourceAppID) {
			out = append(out, g)
		}
	}
	return out, nil
}

// principalIDs maps, when who is a GUID, each principal id to the client
// id or appId naming it, so --assignee may be a client id as az allows.
func principalIDs(ctx context.Context, c *admin.Client, tid, who string) (map[string][]string, error) {
	out := map[string][]string{}
	if !directory.IsGUID(who) {
		return out, nil
	}
	mis, err := c.ListIdentities(ctx, tid, apply.DefaultSubscriptionID, "")
	if err != nil {
		return nil, err
	}
	for _, m := range mis {
		if m.Properties != nil {
			k := strings.ToLower(m.Properties.PrincipalID)
			out[k] = append(out[k], m.Properties.ClientID)
		}
	}
	apps, err := c.ListApplications(ctx, tid)
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		k := strings.ToLower(a.ServicePrincipalID)
		out[k] = append(out[k], a.AppID)
	}
	return out, nil
}

// matchesAny: an empty filter matches; otherwise one of the values, case
// insensitively.
func matchesAny(filter string, values ...string) bool {
	if filter == "" {
		return true
	}
	for _, v := range values {
		if strings.EqualFold(filter, v) {
			return true
		}
	}
	return false
}

func newTenantCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Manage tenants (directories)",
	}
	af := addAdminFlags(cmd)
	tbl := func(ts ...admin.TenantResource) func() table {
		return func() table {
			t := table{headers: []string{"TenantId", "DisplayName"}}
			for _, x := range ts {
				t.rows = append(t.rows, []string{x.ID, x.DisplayName})
			}
			return t
		}
	}
	var id, name string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a tenant (or rename one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := af.client(ctx)
			if err != nil {
				return err
			}
			if id == "" {
				id = directory.NewID()
			}
			t, err := c.PutTenant(ctx, admin.TenantResource{ID: id, DisplayName: name})
			if err != nil {
				return err
			}
			return af.print(streams.Out, t, tbl(t))
		},
	}
	create.Flags().StringVar(&id, "tenant-id", "", "the tenant id (default: generated)")
	create.Flags().StringVar(&name, "display-name", "", "display name")
	_ = create.MarkFlagRequired("display-name")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd.Context())
			if err != nil {
				return err
			}
			ts, err := c.ListTenants(cmd.Context())
			if err != nil {
				return err
			}
			if ts == nil {
				ts = []admin.TenantResource{}
			}
			return af.print(streams.Out, ts, tbl(ts...))
		},
	}
	var showID string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show a tenant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd.Context())
			if err != nil {
				return err
			}
			t, err := c.GetTenant(cmd.Context(), showID)
			if err != nil {
				return err
			}
			return af.print(streams.Out, t, tbl(t))
		},
	}
	var delID string
	var yes bool
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete a tenant and everything in it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return fmt.Errorf("deleting tenant %s deletes every identity, application, credential and assignment in it: add --yes", delID)
			}
			c, err := af.client(cmd.Context())
			if err != nil {
				return err
			}
			return c.DeleteTenant(cmd.Context(), delID)
		},
	}
	for _, x := range []struct {
		c *cobra.Command
		v *string
	}{{show, &showID}, {del, &delID}} {
		x.c.Flags().StringVar(x.v, "tenant-id", "", "the tenant id")
		_ = x.c.MarkFlagRequired("tenant-id")
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask: delete")
	cmd.AddCommand(create, list, show, del)
	return cmd
}

// requireSubcommands makes every command that only groups others fail
// (exit 1, with its usage) when run without one, as az does, instead of
// printing help and succeeding.
func requireSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		requireSubcommands(c)
	}
	if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, args []string) error {
			var names []string
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, s.Name())
				}
			}
			if len(args) > 0 {
				return fmt.Errorf("%q is not a command of %q; its commands: %s", args[0], c.CommandPath(), strings.Join(names, ", "))
			}
			return fmt.Errorf("%q needs a command: %s (see %s --help)", c.CommandPath(), strings.Join(names, ", "), c.CommandPath())
		}
	}
}
