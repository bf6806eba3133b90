package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/apply"
)

// servicePrincipal is a service principal in Graph's shape: in Entra every
// application and every managed identity has one, and az ad sp list is how
// scripts find a managed identity's appId (its client id).
type servicePrincipal struct {
	AppID                string `json:"appId"`
	DisplayName          string `json:"displayName"`
	ID                   string `json:"id"`
	ServicePrincipalType string `json:"servicePrincipalType"`
	// AlternativeNames holds, for a managed identity, its resource id (as
	// Graph does).
	AlternativeNames []string `json:"alternativeNames,omitempty"`
}

// newADCommand is az ad's service-principal view (az ad app is wif app).
func newADCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ad",
		Short: "Directory objects in az ad's shape (service principals of identities and applications)",
	}
	af := addAdminFlags(cmd)
	sp := &cobra.Command{
		Use:   "sp",
		Short: "Service principals: one per managed identity and per application, as in Entra",
	}
	all := func(ctx context.Context, c *admin.Client, tid string) ([]servicePrincipal, error) {
		var out []servicePrincipal
		mis, err := c.ListIdentities(ctx, tid, apply.DefaultSubscriptionID, "")
		if err != nil {
			return nil, err
		}
		for _, m := range mis {
			if m.Properties == nil {
				continue
			}
			out = append(out, servicePrincipal{AppID: m.Properties.ClientID, DisplayName: m.Name, ID: m.Properties.PrincipalID,
				ServicePrincipalType: "ManagedIdentity", AlternativeNames: []string{"isExplicit=True", m.ID}})
		}
		apps, err := c.ListApplications(ctx, tid)
		if err != nil {
			return nil, err
		}
		for _, a := range apps {
			out = append(out, servicePrincipal{AppID: a.AppID, DisplayName: a.DisplayName, ID: a.ServicePrincipalID, ServicePrincipalType: "Application"})
		}
		return out, nil
	}
	tbl := func(sps []servicePrincipal) func() table {
		return func() table {
			t := table{headers: []string{"DisplayName", "AppId", "Id", "Type"}}
			for _, s := range sps {
				t.rows = append(t.rows, []string{s.DisplayName, s.AppID, s.ID, s.ServicePrincipalType})
			}
			return t
		}
	}
	var displayName string
	list := &cobra.Command{
		Use:   "list",
		Short: "List service principals (--display-name filters, as az ad sp list)",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			sps, err := all(ctx, c, tid)
			if err != nil {
				return err
			}
			out := []servicePrincipal{}
			for _, s := range sps {
				if displayName == "" || strings.EqualFold(s.DisplayName, displayName) {
					out = append(out, s)
				}
			}
			return af.print(streams.Out, out, tbl(out))
		}),
	}
	list.Flags().StringVar(&displayName, "display-name", "", "only service principals with this display name")
	var id string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show a service principal by appId (client id) or object id",
		Args:  cobra.NoArgs,
		RunE: withAdmin(af, func(ctx context.Context, c *admin.Client, tid string) error {
			sps, err := all(ctx, c, tid)
			if err != nil {
				return err
			}
			for _, s := range sps {
				if strings.EqualFold(s.AppID, id) || strings.EqualFold(s.ID, id) {
					return af.print(streams.Out, s, tbl([]servicePrincipal{s}))
				}
			}
			return &admin.Error{StatusCode: 404, ErrorDetail: admin.ErrorDetail{Code: admin.CodeNotFound, Message: "no service principal has appId or id " + id + " in tenant " + tid}}
		}),
	}
	show.Flags().StringVar(&id, "id", "", "appId (a managed identity's client id) or object id")
	_ = show.MarkFlagRequired("id")
	sp.AddCommand(list, show)
	cmd.AddCommand(sp)
	return cmd
}
