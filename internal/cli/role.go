package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
)

func newRoleCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Assign app roles to identities and applications (they appear in the roles claim)",
	}
	af := addAdminFlags(cmd)
	cmd.AddCommand(newRoleAssign(streams, af), newRoleUnassign(streams, af), newRoleList(streams, af), newRoleAssignmentCommand(streams, af))
	return cmd
}

func assignmentTable(items ...admin.AssignmentResource) func() table {
	return func() table {
		t := table{headers: []string{"Principal", "Resource", "Role"}}
		for _, g := range items {
			t.rows = append(t.rows, []string{g.Principal, g.Resource, g.Role})
		}
		return t
	}
}

func newRoleAssign(streams Streams, af *adminFlags) *cobra.Command {
	return newAssignCommand(streams, af, "assign", "Assign an app role of a resource application to an identity or application",
		"resource", "resource application: identifier URI, appId or display name")
}

// newAssignCommand creates an app role assignment; resourceFlag names the
// resource application's flag (--resource for wif role assign, --scope for
// az role assignment create's shape).
func newAssignCommand(streams Streams, af *adminFlags, use, short, resourceFlag, resourceHelp string) *cobra.Command {
	var in admin.AssignmentResource
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			g, err := c.CreateAssignment(ctx, tid, in)
			if err != nil {
				return err
			}
			return af.print(streams.Out, g, assignmentTable(g))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Principal, "assignee", "", "identity name or client id, or application display name or appId")
	f.StringVar(&in.Resource, resourceFlag, "", resourceHelp)
	f.StringVar(&in.Role, "role", "", "app role value (e.g. Data.Read) or id")
	for _, n := range []string{"assignee", resourceFlag, "role"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func newRoleList(streams Streams, af *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List app role assignments",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			gs, err := c.ListAssignments(ctx, tid)
			if err != nil {
				return err
			}
			if gs == nil {
				gs = []admin.AssignmentResource{}
			}
			return af.print(streams.Out, gs, assignmentTable(gs...))
		}),
	}
}

func newRoleUnassign(streams Streams, af *adminFlags) *cobra.Command {
	var in admin.AssignmentResource
	cmd := &cobra.Command{
		Use:   "unassign",
		Short: "Remove an app role assignment (the inverse of assign)",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			gs, err := findAssignments(ctx, c, tid, in)
			if err != nil {
				return err
			}
			n := 0
			for _, g := range gs {
				if err := c.DeleteAssignment(ctx, tid, g.ID); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return fmt.Errorf("no assignment of role %q of %q to %q", in.Role, in.Resource, in.Principal)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Principal, "assignee", "", "identity name or client id, or application display name or appId")
	f.StringVar(&in.Resource, "resource", "", "resource application: identifier URI, appId or display name")
	f.StringVar(&in.Role, "role", "", "app role value (e.g. Data.Read) or id")
	for _, n := range []string{"assignee", "resource", "role"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}
