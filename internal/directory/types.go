// Package directory holds wif's domain types — tenants, applications and
// their service principals, user-assigned managed identities, federated
// identity credentials and app role assignments — and the rules they obey
// (Entra's limits, spec/sts.md §7). It does no I/O: stores persist these
// values, the token service reads them.
package directory

import (
	"strings"
	"time"
)

// DefaultAudience is the audience a federated identity credential gets when
// none is given, as in Entra.
const DefaultAudience = "api://AzureADTokenExchange"

// Meta is the bookkeeping every stored object carries. Version increases by
// one on each update and is the basis of ETags; stores set all three fields.
type Meta struct {
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Tenant is a directory: the unit that owns applications and identities and
// names the token endpoints (/{tenant}/oauth2/v2.0/token).
type Tenant struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Meta
}

// Member types an app role may be assigned to.
const (
	MemberTypeApplication = "Application"
	MemberTypeUser        = "User"
)

// AppRole is a role an application defines; assigning it to a caller puts its
// Value in the caller's access tokens' roles claim.
type AppRole struct {
	ID                 string   `json:"id"`
	Value              string   `json:"value"`
	DisplayName        string   `json:"displayName,omitempty"`
	Description        string   `json:"description,omitempty"`
	AllowedMemberTypes []string `json:"allowedMemberTypes"`
	IsEnabled          bool     `json:"isEnabled"`
}

// Application is an app registration together with its service principal.
// It can be a resource (tokens are issued for its identifier URIs) and a
// client (it can hold federated credentials and call other resources).
type Application struct {
	TenantID string `json:"tenantId"`
	// AppID is the application's client id.
	AppID string `json:"appId"`
	// ObjectID is the application object's id.
	ObjectID string `json:"id"`
	// ServicePrincipalID is the object id of the application's service
	// principal in its tenant: the oid/sub of the tokens it obtains and the
	// principal of app role assignments.
	ServicePrincipalID string    `json:"servicePrincipalId"`
	DisplayName        string    `json:"displayName"`
	IdentifierURIs     []string  `json:"identifierUris,omitempty"`
	AppRoles           []AppRole `json:"appRoles,omitempty"`
	// RequestedAccessTokenVersion is the version of access tokens issued for
	// this application as a resource: 1 or 2; 0 means unset, which is 1.
	RequestedAccessTokenVersion int `json:"requestedAccessTokenVersion,omitempty"`
	Meta
}

// AccessTokenVersion is the token version issued for the application as a
// resource: 2 when requested, otherwise 1.
func (a Application) AccessTokenVersion() int {
	if a.RequestedAccessTokenVersion == 2 {
		return 2
	}
	return 1
}

// ManagedIdentity is a user-assigned managed identity.
type ManagedIdentity struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ResourceGroup  string `json:"resourceGroup"`
	Name           string `json:"name"`
	Location       string `json:"location,omitempty"`
	// ClientID is the id a workload presents as client_id.
	ClientID string `json:"clientId"`
	// PrincipalID is the object id of the identity's service principal.
	PrincipalID string            `json:"principalId"`
	Tags        map[string]string `json:"tags,omitempty"`
	Meta
}

// ResourceID is the identity's ARM resource id, as the ARM API returns it.
func (m ManagedIdentity) ResourceID() string {
	return "/subscriptions/" + m.SubscriptionID + "/resourceGroups/" + m.ResourceGroup +
		"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + m.Name
}

// MIRID is the identity's resource id in the form Entra puts in the
// xms_mirid claim (resource group segment in lower case).
func (m ManagedIdentity) MIRID() string {
	return "/subscriptions/" + m.SubscriptionID + "/resourcegroups/" + m.ResourceGroup +
		"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + m.Name
}

// ParentKind says what kind of object owns a federated identity credential.
type ParentKind string

// The kinds of parent a federated identity credential can have.
const (
	ParentManagedIdentity ParentKind = "managedIdentity"
	ParentApplication     ParentKind = "application"
)

// ClaimsMatchingExpression is a flexible federated credential's condition on
// the assertion's claims, in Entra's expression language (languageVersion 1).
type ClaimsMatchingExpression struct {
	Value           string `json:"value"`
	LanguageVersion int    `json:"languageVersion"`
}

// FederatedCredential is a federated identity credential: trust in tokens
// from Issuer, for Subject (or matching ClaimsMatchingExpression), with
// audience Audiences[0].
type FederatedCredential struct {
	TenantID   string     `json:"tenantId"`
	ParentKind ParentKind `json:"parentKind"`
	// ParentClientID is the client id of the owning managed identity or the
	// appId of the owning application: what a workload sends as client_id.
	ParentClientID string `json:"parentClientId"`
	ID             string `json:"id"`
	// Name is unique per parent and immutable.
	Name    string `json:"name"`
	Issuer  string `json:"issuer"`
	Subject string `json:"subject,omitempty"`
	// ClaimsMatchingExpression, when set, replaces Subject.
	ClaimsMatchingExpression *ClaimsMatchingExpression `json:"claimsMatchingExpression,omitempty"`
	// Audiences holds exactly one audience.
	Audiences   []string `json:"audiences"`
	Description string   `json:"description,omitempty"`
	Meta
}

// Audience is the credential's single audience.
func (f FederatedCredential) Audience() string {
	if len(f.Audiences) == 0 {
		return ""
	}
	return f.Audiences[0]
}

// AppRoleAssignment grants an app role of a resource application to a
// principal (a managed identity's or an application's service principal).
type AppRoleAssignment struct {
	TenantID string `json:"tenantId"`
	ID       string `json:"id"`
	// PrincipalID is the service principal object id of the caller.
	PrincipalID string `json:"principalId"`
	// ResourceAppID is the appId of the resource application.
	ResourceAppID string `json:"resourceAppId"`
	// AppRoleID is the id of one of the resource application's AppRoles.
	AppRoleID string `json:"appRoleId"`
	Meta
}

// Key returns the identity of an assignment: no two assignments may share it.
func (a AppRoleAssignment) Key() string {
	return strings.ToLower(a.PrincipalID + "|" + a.ResourceAppID + "|" + a.AppRoleID)
}
