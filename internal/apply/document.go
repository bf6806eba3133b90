// Package apply reads, writes and applies the directory document: the whole
// directory (tenants, applications, managed identities, federated
// credentials, app role assignments) as one YAML file that can live in Git.
//
// Parse reads a document strictly (unknown or duplicate keys fail) and
// validates it, reporting every fault at once. Export writes the store's
// directory as a document. Plan compares a document with a store and lists
// the changes; Apply makes them. Ids are optional in a document: objects are
// matched by natural key (tenant id; application by appId, else display name;
// identity by subscription, resource group and name; credential by parent and
// name; assignment by principal, resource and role), ids are generated on the
// first apply and kept afterwards, so applying the same document twice
// changes nothing. Objects the document does not mention are deleted only
// with Prune.
package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/wif-project/wif/internal/directory"
)

// DefaultMaxApplyBytes is the admin API's default bound on a directory
// document sent to it (wif serve --max-apply-bytes); documents read from
// files have no bound.
const DefaultMaxApplyBytes = 64 << 20

// DefaultSubscriptionID is the subscription of a managed identity whose
// document entry names none (wif has no subscriptions of its own; the id
// only shapes the ARM resource id).
const DefaultSubscriptionID = "00000000-0000-0000-0000-000000000000"

// Document is the whole directory, or the part of it a file manages.
type Document struct {
	Tenants []Tenant `json:"tenants"`
}

// Tenant is a tenant with everything in it.
type Tenant struct {
	ID                 string            `json:"id"`
	DisplayName        string            `json:"displayName"`
	Applications       []Application     `json:"applications,omitempty"`
	ManagedIdentities  []ManagedIdentity `json:"managedIdentities,omitempty"`
	AppRoleAssignments []Assignment      `json:"appRoleAssignments,omitempty"`
	// TrustedIssuers and IssuerSets are the tenant's trust settings.
	TrustedIssuers []TrustedIssuer `json:"trustedIssuers,omitempty"`
	IssuerSets     []IssuerSet     `json:"issuerSets,omitempty"`
}

// Application is an app registration (with its service principal).
type Application struct {
	DisplayName string `json:"displayName"`
	// AppID is the client id; generated on first apply when empty.
	AppID string `json:"appId,omitempty"`
	// ObjectID is the application object's id; generated when empty.
	ObjectID string `json:"objectId,omitempty"`
	// ServicePrincipalID is the service principal's object id; generated
	// when empty.
	ServicePrincipalID          string                `json:"servicePrincipalId,omitempty"`
	IdentifierURIs              []string              `json:"identifierUris,omitempty"`
	RequestedAccessTokenVersion int                   `json:"requestedAccessTokenVersion,omitempty"`
	AppRoles                    []AppRole             `json:"appRoles,omitempty"`
	FederatedCredentials        []FederatedCredential `json:"federatedCredentials,omitempty"`
}

// AppRole is a role an application defines.
type AppRole struct {
	Value string `json:"value"`
	// ID is generated when empty (and kept: an existing role of the same
	// value keeps its id).
	ID          string `json:"id,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Description string `json:"description,omitempty"`
	// AllowedMemberTypes defaults to [Application].
	AllowedMemberTypes []string `json:"allowedMemberTypes,omitempty"`
	// IsEnabled defaults to true.
	IsEnabled *bool `json:"isEnabled,omitempty"`
}

// ManagedIdentity is a user-assigned managed identity.
type ManagedIdentity struct {
	Name string `json:"name"`
	// SubscriptionID defaults to DefaultSubscriptionID.
	SubscriptionID string            `json:"subscriptionId,omitempty"`
	ResourceGroup  string            `json:"resourceGroup"`
	Location       string            `json:"location,omitempty"`
	ClientID       string            `json:"clientId,omitempty"`
	PrincipalID    string            `json:"principalId,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
	// FederatedCredentials trust external issuers for this identity.
	FederatedCredentials []FederatedCredential `json:"federatedCredentials,omitempty"`
}

// FederatedCredential is a federated identity credential of the enclosing
// identity or application.
type FederatedCredential struct {
	Name                     string                              `json:"name"`
	ID                       string                              `json:"id,omitempty"`
	Issuer                   string                              `json:"issuer"`
	Subject                  string                              `json:"subject,omitempty"`
	ClaimsMatchingExpression *directory.ClaimsMatchingExpression `json:"claimsMatchingExpression,omitempty"`
	// Audiences defaults to [api://AzureADTokenExchange].
	Audiences   []string `json:"audiences,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Assignment grants Role of Resource to Principal.
type Assignment struct {
	// Principal is a managed identity's name, client id or principal id, or
	// an application's display name, appId or service principal id.
	Principal string `json:"principal"`
	// Resource is an identifier URI, appId or display name of the resource
	// application.
	Resource string `json:"resource"`
	// Role is the app role's value or id.
	Role string `json:"role"`
}

// Parse reads a directory document strictly: unknown keys, duplicate keys and
// wrongly typed values fail, naming where; then it validates the document and
// reports every broken rule at once (as directory.ValidationErrors whose
// fields are paths into the document, such as
// tenants[0].managedIdentities[1].federatedCredentials[0].issuer).
func Parse(r io.Reader) (*Document, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read directory document: %w", err)
	}
	return ParseNamed("directory document", data)
}

// ParseNamed is Parse of data read from the file name: a field that does
// not exist is reported as name:line:column with its path and the nearest
// valid field.
func ParseNamed(name string, data []byte) (*Document, error) {
	var doc Document
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("directory document is empty: expected a mapping with a 'tenants' list")
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		if ferr := fieldError(name, data); ferr != nil {
			return nil, ferr
		}
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	return &doc, nil
}

// Marshal renders the document as YAML.
func (d *Document) Marshal() ([]byte, error) {
	b, err := yaml.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("render directory document: %w", err)
	}
	return b, nil
}

// placeholder stands in for ids not yet generated while validating.
const placeholder = "00000000-0000-4000-8000-000000000000"

func orPlaceholder(s string) string {
	if s == "" {
		return placeholder
	}
	return s
}

// Validate checks every object of the document with the directory's rules
// and the document's own: unique tenants, identities, application names
// (when they carry no appId) and credential names, and complete assignments.
// It reports every fault at once.
func (d *Document) Validate() error {
	var errs directory.ValidationErrors
	add := func(prefix string, err error) {
		var ves directory.ValidationErrors
		var ve *directory.ValidationError
		switch {
		case errors.As(err, &ves):
			for _, e := range ves {
				errs = append(errs, &directory.ValidationError{Field: prefix + "." + e.Field, Rule: e.Rule, Value: e.Value})
			}
		case errors.As(err, &ve):
			errs = append(errs, &directory.ValidationError{Field: prefix + "." + ve.Field, Rule: ve.Rule, Value: ve.Value})
		case err != nil:
			errs = append(errs, &directory.ValidationError{Field: prefix, Rule: err.Error()})
		}
	}
	fail := func(field, value, rule string, args ...any) {
		errs = append(errs, &directory.ValidationError{Field: field, Rule: fmt.Sprintf(rule, args...), Value: value})
	}
	seenTenant := map[string]int{}
	for ti, t := range d.Tenants {
		tp := fmt.Sprintf("tenants[%d]", ti)
		add(tp, directory.Tenant{ID: t.ID, DisplayName: t.DisplayName}.Validate())
		if j, ok := seenTenant[strings.ToLower(t.ID)]; ok && t.ID != "" {
			fail(tp+".id", t.ID, "is also the id of tenants[%d]", j)
		}
		seenTenant[strings.ToLower(t.ID)] = ti
		tid := orPlaceholder(t.ID)
		if !directory.IsGUID(tid) {
			tid = placeholder
		}
		appNames, appIDs := map[string]int{}, map[string]int{}
		for ai, a := range t.Applications {
			ap := fmt.Sprintf("%s.applications[%d]", tp, ai)
			app := a.toDirectory(tid, nil)
			app.AppID, app.ObjectID, app.ServicePrincipalID = orPlaceholder(a.AppID), orPlaceholder(a.ObjectID), orPlaceholder(a.ServicePrincipalID)
			for i := range app.AppRoles {
				app.AppRoles[i].ID = orPlaceholder(app.AppRoles[i].ID)
			}
			// Placeholder role ids would clash; check role ids only when given.
			add(ap, validateAppIgnoringPlaceholderClash(app))
			if a.AppID != "" {
				if j, ok := appIDs[strings.ToLower(a.AppID)]; ok {
					fail(ap+".appId", a.AppID, "is also the appId of applications[%d]", j)
				}
				appIDs[strings.ToLower(a.AppID)] = ai
			} else {
				if j, ok := appNames[a.DisplayName]; ok {
					fail(ap+".displayName", a.DisplayName, "is also the display name of applications[%d], and neither has an appId: give each an appId so they can be told apart", j)
				}
				appNames[a.DisplayName] = ai
			}
			errs = append(errs, validateCredentials(ap, tid, directory.ParentApplication, orPlaceholder(a.AppID), a.FederatedCredentials)...)
		}
		seenMI := map[string]int{}
		for mi, m := range t.ManagedIdentities {
			mp := fmt.Sprintf("%s.managedIdentities[%d]", tp, mi)
			id := m.toDirectory(tid)
			id.ClientID, id.PrincipalID = orPlaceholder(m.ClientID), orPlaceholder(m.PrincipalID)
			add(mp, id.Validate())
			k := strings.ToLower(id.SubscriptionID + "/" + id.ResourceGroup + "/" + id.Name)
			if j, ok := seenMI[k]; ok {
				fail(mp+".name", m.Name, "is also the name of managedIdentities[%d] in the same subscription and resource group", j)
			}
			seenMI[k] = mi
			errs = append(errs, validateCredentials(mp, tid, directory.ParentManagedIdentity, orPlaceholder(m.ClientID), m.FederatedCredentials)...)
		}
		seenAsg := map[Assignment]int{}
		for gi, g := range t.AppRoleAssignments {
			gp := fmt.Sprintf("%s.appRoleAssignments[%d]", tp, gi)
			if strings.TrimSpace(g.Principal) == "" {
				fail(gp+".principal", g.Principal, "is required: an identity's name or client id, or an application's display name or appId")
			}
			if strings.TrimSpace(g.Resource) == "" {
				fail(gp+".resource", g.Resource, "is required: the resource application's identifier URI or appId")
			}
			if strings.TrimSpace(g.Role) == "" {
				fail(gp+".role", g.Role, "is required: the app role's value (for example Data.Read) or id")
			}
			if j, ok := seenAsg[g]; ok {
				fail(gp, "", "repeats appRoleAssignments[%d]", j)
			}
			seenAsg[g] = gi
		}
		errs = append(errs, validateTrust(tp, tid, t)...)
	}
	return capped(errs)
}

// MaxReportedFaults bounds how many faults one error reports.
const MaxReportedFaults = 50

// capped returns nil for no faults, and at most MaxReportedFaults of them
// plus a note of how many more there were.
func capped(errs directory.ValidationErrors) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) > MaxReportedFaults {
		more := len(errs) - MaxReportedFaults
		errs = append(errs[:MaxReportedFaults:MaxReportedFaults], &directory.ValidationError{Field: "(document)", Rule: fmt.Sprintf("and %d more faults", more)})
	}
	return errs
}

// validateAppIgnoringPlaceholderClash validates an application whose missing
// role ids were replaced by one placeholder: the "used by another app role"
// complaint about the placeholder is not the user's fault.
func validateAppIgnoringPlaceholderClash(app directory.Application) error {
	err := app.Validate()
	var ves directory.ValidationErrors
	if !errors.As(err, &ves) {
		return err
	}
	var out directory.ValidationErrors
	for _, e := range ves {
		if e.Value == placeholder && strings.HasSuffix(e.Field, ".id") && strings.Contains(e.Rule, "another app role") {
			continue
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func validateCredentials(prefix, tenantID string, kind directory.ParentKind, parent string, creds []FederatedCredential) directory.ValidationErrors {
	var errs directory.ValidationErrors
	all := make([]directory.FederatedCredential, len(creds))
	for i, c := range creds {
		all[i] = c.toDirectory(tenantID, kind, parent)
		all[i].ID = orPlaceholder(all[i].ID)
	}
	for i, f := range all {
		cp := fmt.Sprintf("%s.federatedCredentials[%d]", prefix, i)
		siblings := make([]directory.FederatedCredential, 0, len(all)-1)
		siblings = append(siblings, all[:i]...)
		// Compare each credential with the earlier ones only, so a clash is
		// reported once (at the later entry), but count all for the limit.
		var ves directory.ValidationErrors
		if err := f.Validate(); errors.As(err, &ves) {
			errs = append(errs, prefixed(cp, ves)...)
		}
		// The count is the store's to enforce (its limit is configurable:
		// wif serve --max-credentials-per-identity).
		if err := f.ValidateSetLimit(siblings, math.MaxInt); errors.As(err, &ves) {
			errs = append(errs, prefixed(cp, ves)...)
		}
	}
	return errs
}

func prefixed(prefix string, ves directory.ValidationErrors) directory.ValidationErrors {
	out := make(directory.ValidationErrors, len(ves))
	for i, e := range ves {
		out[i] = &directory.ValidationError{Field: prefix + "." + e.Field, Rule: e.Rule, Value: e.Value}
	}
	return out
}

// toDirectory converts the document's application; existing supplies role
// ids for roles that name none (matched by value).
func (a Application) toDirectory(tenantID string, existing *directory.Application) directory.Application {
	app := directory.Application{
		TenantID:                    tenantID,
		AppID:                       canon(a.AppID),
		ObjectID:                    canon(a.ObjectID),
		ServicePrincipalID:          canon(a.ServicePrincipalID),
		DisplayName:                 a.DisplayName,
		IdentifierURIs:              append([]string(nil), a.IdentifierURIs...),
		RequestedAccessTokenVersion: a.RequestedAccessTokenVersion,
	}
	for _, r := range a.AppRoles {
		role := directory.AppRole{
			ID:                 canon(r.ID),
			Value:              r.Value,
			DisplayName:        r.DisplayName,
			Description:        r.Description,
			AllowedMemberTypes: append([]string(nil), r.AllowedMemberTypes...),
			IsEnabled:          r.IsEnabled == nil || *r.IsEnabled,
		}
		if len(role.AllowedMemberTypes) == 0 {
			role.AllowedMemberTypes = []string{directory.MemberTypeApplication}
		}
		if role.ID == "" && existing != nil {
			for _, old := range existing.AppRoles {
				if old.Value == r.Value {
					role.ID = old.ID
				}
			}
		}
		app.AppRoles = append(app.AppRoles, role)
	}
	return app
}

func (m ManagedIdentity) toDirectory(tenantID string) directory.ManagedIdentity {
	sub := m.SubscriptionID
	if sub == "" {
		sub = DefaultSubscriptionID
	}
	return directory.ManagedIdentity{
		TenantID:       tenantID,
		SubscriptionID: canon(sub),
		ResourceGroup:  m.ResourceGroup,
		Name:           m.Name,
		Location:       m.Location,
		ClientID:       canon(m.ClientID),
		PrincipalID:    canon(m.PrincipalID),
		Tags:           copyTags(m.Tags),
	}
}

func (c FederatedCredential) toDirectory(tenantID string, kind directory.ParentKind, parent string) directory.FederatedCredential {
	aud := append([]string(nil), c.Audiences...)
	if len(aud) == 0 {
		aud = []string{directory.DefaultAudience}
	}
	var expr *directory.ClaimsMatchingExpression
	if c.ClaimsMatchingExpression != nil {
		e := *c.ClaimsMatchingExpression
		expr = &e
	}
	return directory.FederatedCredential{
		TenantID:                 tenantID,
		ParentKind:               kind,
		ParentClientID:           canon(parent),
		ID:                       canon(c.ID),
		Name:                     c.Name,
		Issuer:                   c.Issuer,
		Subject:                  c.Subject,
		ClaimsMatchingExpression: expr,
		Audiences:                aud,
		Description:              c.Description,
	}
}

func copyTags(t map[string]string) map[string]string {
	if len(t) == 0 {
		return nil
	}
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}

// canon lower-cases GUIDs so ids in any letter case name the same object;
// other strings (invalid ids, reported by validation) pass unchanged.
func canon(s string) string {
	if directory.IsGUID(s) {
		return directory.CanonicalID(s)
	}
	return s
}
