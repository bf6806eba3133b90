package apply

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// Export reads the whole directory as a document, ids included, so that
// applying it to the same store changes nothing and applying it to an empty
// store recreates the directory with the same ids. Objects are sorted
// (applications by display name, identities by resource group and name,
// credentials by name) so exports diff well in Git.
func Export(ctx context.Context, s store.DirectoryStore) (*Document, error) {
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the directory: %w", err)
	}
	return FromSnapshot(snap), nil
}

// FromSnapshot converts a snapshot into a document (see Export).
func FromSnapshot(snap store.Snapshot) *Document {
	doc := &Document{Tenants: []Tenant{}}
	tenants := append([]directory.Tenant(nil), snap.Tenants...)
	sort.Slice(tenants, func(i, j int) bool { return tenants[i].ID < tenants[j].ID })
	for _, t := range tenants {
		dt := Tenant{ID: t.ID, DisplayName: t.DisplayName}
		credsOf := map[string][]FederatedCredential{}
		creds := append([]directory.FederatedCredential(nil), snap.Credentials...)
		sort.Slice(creds, func(i, j int) bool { return strings.ToLower(creds[i].Name) < strings.ToLower(creds[j].Name) })
		for _, c := range creds {
			if c.TenantID != t.ID {
				continue
			}
			fc := FederatedCredential{Name: c.Name, ID: c.ID, Issuer: c.Issuer, Subject: c.Subject,
				Audiences: append([]string(nil), c.Audiences...), Description: c.Description}
			if c.ClaimsMatchingExpression != nil {
				e := *c.ClaimsMatchingExpression
				fc.ClaimsMatchingExpression = &e
			}
			k := strings.ToLower(c.ParentClientID)
			credsOf[k] = append(credsOf[k], fc)
		}
		var apps []directory.Application
		for _, a := range snap.Applications {
			if a.TenantID == t.ID {
				apps = append(apps, a)
			}
		}
		sort.Slice(apps, func(i, j int) bool {
			if apps[i].DisplayName != apps[j].DisplayName {
				return apps[i].DisplayName < apps[j].DisplayName
			}
			return apps[i].AppID < apps[j].AppID
		})
		var mis []directory.ManagedIdentity
		for _, m := range snap.ManagedIdentities {
			if m.TenantID == t.ID {
				mis = append(mis, m)
			}
		}
		sort.Slice(mis, func(i, j int) bool {
			a, b := mis[i], mis[j]
			return strings.ToLower(a.SubscriptionID+"/"+a.ResourceGroup+"/"+a.Name) < strings.ToLower(b.SubscriptionID+"/"+b.ResourceGroup+"/"+b.Name)
		})
		for _, a := range apps {
			da := Application{DisplayName: a.DisplayName, AppID: a.AppID, ObjectID: a.ObjectID,
				ServicePrincipalID: a.ServicePrincipalID, IdentifierURIs: append([]string(nil), a.IdentifierURIs...),
				RequestedAccessTokenVersion: a.RequestedAccessTokenVersion,
				FederatedCredentials:        credsOf[strings.ToLower(a.AppID)]}
			for _, r := range a.AppRoles {
				ar := AppRole{Value: r.Value, ID: r.ID, DisplayName: r.DisplayName, Description: r.Description,
					AllowedMemberTypes: append([]string(nil), r.AllowedMemberTypes...)}
				if !r.IsEnabled {
					f := false
					ar.IsEnabled = &f
				}
				da.AppRoles = append(da.AppRoles, ar)
			}
			dt.Applications = append(dt.Applications, da)
		}
		for _, m := range mis {
			dt.ManagedIdentities = append(dt.ManagedIdentities, ManagedIdentity{Name: m.Name, SubscriptionID: m.SubscriptionID,
				ResourceGroup: m.ResourceGroup, Location: m.Location, ClientID: m.ClientID, PrincipalID: m.PrincipalID,
				Tags: copyTags(m.Tags), FederatedCredentials: credsOf[strings.ToLower(m.ClientID)]})
		}
		dt.AppRoleAssignments = exportAssignments(t.ID, apps, mis, snap.AppRoleAssignments)
		dt.TrustedIssuers, dt.IssuerSets = exportTrust(t.ID, snap)
		doc.Tenants = append(doc.Tenants, dt)
	}
	return doc
}

// exportAssignments names principals and resources readably where the name
// is unambiguous, and by id otherwise.
func exportAssignments(tid string, apps []directory.Application, mis []directory.ManagedIdentity, all []directory.AppRoleAssignment) []Assignment {
	var out []Assignment
	d := NewDescriber(apps, mis)
	for _, g := range all {
		if g.TenantID == tid {
			out = append(out, d.Describe(g))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Principal+"\x00"+out[i].Resource+"\x00"+out[i].Role < out[j].Principal+"\x00"+out[j].Resource+"\x00"+out[j].Role
	})
	return out
}

// Describe names an assignment's principal, resource and role the way a
// document does: by name where the name is unambiguous among apps and mis
// (the tenant's applications and identities), by id otherwise. Resolve
// turns the result back into the same ids. To describe many assignments
// of one tenant, use NewDescriber once.
func Describe(apps []directory.Application, mis []directory.ManagedIdentity, g directory.AppRoleAssignment) Assignment {
	return NewDescriber(apps, mis).Describe(g)
}

// Describer describes the assignments of one tenant (see Describe), in time
// independent of the tenant's size.
type Describer struct{ r *resolver }

// NewDescriber indexes a tenant's applications and identities.
func NewDescriber(apps []directory.Application, mis []directory.ManagedIdentity) *Describer {
	return &Describer{r: newResolver(apps, mis)}
}

// Describe is the package Describe.
func (d *Describer) Describe(g directory.AppRoleAssignment) Assignment {
	r := d.r
	var a Assignment
	a.Principal = g.PrincipalID
	if i, ok := r.miByPrincipal[strings.ToLower(g.PrincipalID)]; ok {
		m := r.mis[i]
		a.Principal = m.ClientID
		if id, _, p := r.principal(m.Name); p == "" && strings.EqualFold(id, m.PrincipalID) {
			a.Principal = m.Name
		}
	}
	if i, ok := r.appBySP[strings.ToLower(g.PrincipalID)]; ok {
		x := r.apps[i]
		a.Principal = x.AppID
		if id, _, p := r.principal(x.DisplayName); p == "" && strings.EqualFold(id, x.ServicePrincipalID) {
			a.Principal = x.DisplayName
		}
	}
	a.Resource, a.Role = g.ResourceAppID, g.AppRoleID
	if i, ok := r.appByID[strings.ToLower(g.ResourceAppID)]; ok {
		x := r.apps[i]
		if len(x.IdentifierURIs) > 0 {
			if res, p := r.resource(x.IdentifierURIs[0]); p == "" && res.AppID == x.AppID {
				a.Resource = x.IdentifierURIs[0]
			}
		}
		for _, role := range x.AppRoles {
			if strings.EqualFold(role.ID, g.AppRoleID) {
				a.Role = role.Value
			}
		}
	}
	return a
}

// Resolve finds what an assignment names among a tenant's applications and
// identities: the principal's service principal id, the resource
// application and the app role. Problems come back as
// directory.ValidationErrors on the fields principal, resource and role.
func Resolve(apps []directory.Application, mis []directory.ManagedIdentity, a Assignment) (principalID string, resource directory.Application, role directory.AppRole, err error) {
	r := newResolver(apps, mis)
	var errs directory.ValidationErrors
	pid, _, perr := r.principal(a.Principal)
	if perr != "" {
		errs = append(errs, &directory.ValidationError{Field: "principal", Rule: perr, Value: a.Principal})
	}
	res, rerr := r.resource(a.Resource)
	if rerr != "" {
		errs = append(errs, &directory.ValidationError{Field: "resource", Rule: rerr, Value: a.Resource})
	}
	if len(errs) > 0 {
		return "", directory.Application{}, directory.AppRole{}, errs
	}
	for _, x := range res.AppRoles {
		if x.Value == a.Role || strings.EqualFold(x.ID, a.Role) {
			return pid, *res, x, nil
		}
	}
	var vals []string
	for _, x := range res.AppRoles {
		vals = append(vals, x.Value)
	}
	return "", directory.Application{}, directory.AppRole{}, directory.ValidationErrors{{Field: "role", Value: a.Role,
		Rule: fmt.Sprintf("is not an app role of application %q (its roles: %s)", res.DisplayName, strings.Join(vals, ", "))}}
}
