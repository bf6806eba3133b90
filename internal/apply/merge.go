package apply

import (
	"fmt"
	"strings"

	"github.com/wif-project/wif/internal/directory"
)

// NamedDocument is a directory document and the file it was read from.
type NamedDocument struct {
	Name string
	Doc  *Document
}

// Merge combines the documents of several files into one, as `wif apply
// -f DIR` applies them: a tenant may appear in many files (its display
// name must agree), and its objects are gathered from all of them. An
// object that two files define is an error naming both files, so a large
// directory kept as one file per resource group cannot silently define an
// identity twice.
func Merge(docs []NamedDocument) (*Document, error) {
	out := &Document{Tenants: []Tenant{}}
	type origin struct{ file, what string }
	idx := map[string]int{}     // tenant id (lower) → index in out
	seen := map[string]origin{} // object key → where it was first defined
	var errs directory.ValidationErrors
	clash := func(key, file, what string) bool {
		if o, ok := seen[key]; ok {
			errs = append(errs, &directory.ValidationError{Field: file, Rule: fmt.Sprintf("defines %s, which %s defines too", what, o.file)})
			return true
		}
		seen[key] = origin{file, what}
		return false
	}
	for _, nd := range docs {
		for _, t := range nd.Doc.Tenants {
			tk := strings.ToLower(t.ID)
			i, ok := idx[tk]
			if !ok {
				idx[tk] = len(out.Tenants)
				out.Tenants = append(out.Tenants, Tenant{ID: t.ID, DisplayName: t.DisplayName})
				seen["tenant|"+tk] = origin{nd.Name, "tenant " + t.ID}
				i = idx[tk]
			} else if out.Tenants[i].DisplayName != t.DisplayName {
				errs = append(errs, &directory.ValidationError{Field: nd.Name, Value: t.DisplayName,
					Rule: fmt.Sprintf("gives tenant %s the display name %q, but %s gives it %q", t.ID, t.DisplayName, seen["tenant|"+tk].file, out.Tenants[i].DisplayName)})
			}
			dt := &out.Tenants[i]
			for _, a := range t.Applications {
				key := "app|" + tk + "|" + strings.ToLower(a.AppID)
				what := "application " + a.AppID
				if a.AppID == "" {
					key, what = "appname|"+tk+"|"+a.DisplayName, fmt.Sprintf("application %q", a.DisplayName)
				}
				if !clash(key, nd.Name, what) {
					dt.Applications = append(dt.Applications, a)
				}
			}
			for _, m := range t.ManagedIdentities {
				sub := m.SubscriptionID
				if sub == "" {
					sub = DefaultSubscriptionID
				}
				if !clash("mi|"+tk+"|"+strings.ToLower(sub+"/"+m.ResourceGroup+"/"+m.Name), nd.Name, "managed identity "+m.ResourceGroup+"/"+m.Name) {
					dt.ManagedIdentities = append(dt.ManagedIdentities, m)
				}
			}
			for _, g := range t.AppRoleAssignments {
				if !clash("asg|"+tk+"|"+g.Principal+"|"+g.Resource+"|"+g.Role, nd.Name, fmt.Sprintf("app role assignment %s → %s %s", g.Principal, g.Resource, g.Role)) {
					dt.AppRoleAssignments = append(dt.AppRoleAssignments, g)
				}
			}
			for _, ti := range t.TrustedIssuers {
				if !clash("ti|"+tk+"|"+strings.ToLower(ti.Name), nd.Name, fmt.Sprintf("trusted issuer %q", ti.Name)) {
					dt.TrustedIssuers = append(dt.TrustedIssuers, ti)
				}
			}
			for _, s := range t.IssuerSets {
				if !clash("set|"+tk+"|"+strings.ToLower(s.Name), nd.Name, fmt.Sprintf("issuer set %q", s.Name)) {
					dt.IssuerSets = append(dt.IssuerSets, s)
				}
			}
		}
	}
	if err := capped(errs); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// Split cuts a document into parts for `wif export --split-by`: by
// "tenant" one part per tenant (named TENANT_ID.yaml), by
// "resource-group" per tenant one part with its applications, assignments
// and trust settings (TENANT_ID/tenant.yaml) and one per resource group
// with its identities (TENANT_ID/resource-groups/RESOURCE_GROUP.yaml, under
// a SUBSCRIPTION_ID directory for another subscription than the default
// one). Merging the parts
// gives the document back.
func Split(doc *Document, by string) (map[string]*Document, error) {
	out := map[string]*Document{}
	switch by {
	case "tenant":
		for _, t := range doc.Tenants {
			out[t.ID+".yaml"] = &Document{Tenants: []Tenant{t}}
		}
	case "resource-group":
		for _, t := range doc.Tenants {
			head := t
			head.ManagedIdentities = nil
			out[t.ID+"/tenant.yaml"] = &Document{Tenants: []Tenant{head}}
			for _, m := range t.ManagedIdentities {
				name := t.ID + "/resource-groups/" + strings.ToLower(m.ResourceGroup) + ".yaml"
				if sub := m.SubscriptionID; sub != "" && sub != DefaultSubscriptionID {
					name = t.ID + "/resource-groups/" + strings.ToLower(sub) + "/" + strings.ToLower(m.ResourceGroup) + ".yaml"
				}
				part := out[name]
				if part == nil {
					part = &Document{Tenants: []Tenant{{ID: t.ID, DisplayName: t.DisplayName}}}
					out[name] = part
				}
				part.Tenants[0].ManagedIdentities = append(part.Tenants[0].ManagedIdentities, m)
			}
		}
	default:
		return nil, fmt.Errorf("--split-by must be tenant or resource-group, not %q", by)
	}
	return out, nil
}
