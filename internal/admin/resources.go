package admin

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/sts"
)

// Resource types as ARM names them.
const (
	IdentityType           = "Microsoft.ManagedIdentity/userAssignedIdentities"
	IdentityCredentialType = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
)

// ETag renders a store version as an entity tag.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// TenantResource is a tenant on the wire.
type TenantResource struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	ETag        string `json:"etag,omitempty"`
}

func tenantResource(t directory.Tenant) TenantResource {
	return TenantResource{ID: t.ID, DisplayName: t.DisplayName, ETag: ETag(t.Version)}
}

// AppRoleResource is an app role on the wire (Graph's shape).
type AppRoleResource struct {
	ID                 string   `json:"id,omitempty"`
	Value              string   `json:"value"`
	DisplayName        string   `json:"displayName,omitempty"`
	Description        string   `json:"description,omitempty"`
	AllowedMemberTypes []string `json:"allowedMemberTypes,omitempty"`
	// IsEnabled defaults to true when absent in a request.
	IsEnabled *bool `json:"isEnabled,omitempty"`
}

// ApplicationResource is an application (and its service principal) on
// the wire, in Graph's shape: id is the object id.
type ApplicationResource struct {
	ID                          string            `json:"id,omitempty"`
	AppID                       string            `json:"appId,omitempty"`
	ServicePrincipalID          string            `json:"servicePrincipalId,omitempty"`
	TenantID                    string            `json:"tenantId,omitempty"`
	DisplayName                 string            `json:"displayName"`
	IdentifierURIs              []string          `json:"identifierUris"`
	AppRoles                    []AppRoleResource `json:"appRoles"`
	RequestedAccessTokenVersion int               `json:"requestedAccessTokenVersion,omitempty"`
	ETag                        string            `json:"etag,omitempty"`
}

func applicationResource(a directory.Application) ApplicationResource {
	out := ApplicationResource{ID: a.ObjectID, AppID: a.AppID, ServicePrincipalID: a.ServicePrincipalID, TenantID: a.TenantID,
		DisplayName: a.DisplayName, IdentifierURIs: nonNil(a.IdentifierURIs), AppRoles: []AppRoleResource{},
		RequestedAccessTokenVersion: a.RequestedAccessTokenVersion, ETag: ETag(a.Version)}
	for _, r := range a.AppRoles {
		en := r.IsEnabled
		out.AppRoles = append(out.AppRoles, AppRoleResource{ID: r.ID, Value: r.Value, DisplayName: r.DisplayName,
			Description: r.Description, AllowedMemberTypes: r.AllowedMemberTypes, IsEnabled: &en})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// IdentityProperties are an identity's ARM properties.
type IdentityProperties struct {
	TenantID    string `json:"tenantId,omitempty"`
	PrincipalID string `json:"principalId,omitempty"`
	ClientID    string `json:"clientId,omitempty"`
}

// IdentityResource is a user-assigned managed identity as ARM returns it.
type IdentityResource struct {
	ID            string              `json:"id,omitempty"`
	Name          string              `json:"name,omitempty"`
	Type          string              `json:"type,omitempty"`
	Location      string              `json:"location,omitempty"`
	ResourceGroup string              `json:"resourceGroup,omitempty"`
	Tags          map[string]string   `json:"tags,omitempty"`
	Properties    *IdentityProperties `json:"properties,omitempty"`
	ETag          string              `json:"etag,omitempty"`
}

func identityResource(m directory.ManagedIdentity) IdentityResource {
	return IdentityResource{ID: m.ResourceID(), Name: m.Name, Type: IdentityType, Location: m.Location,
		ResourceGroup: m.ResourceGroup, Tags: m.Tags,
		Properties: &IdentityProperties{TenantID: m.TenantID, PrincipalID: m.PrincipalID, ClientID: m.ClientID},
		ETag:       ETag(m.Version)}
}

// CredentialProperties are a federated identity credential's properties.
type CredentialProperties struct {
	Issuer                   string                              `json:"issuer"`
	Subject                  string                              `json:"subject,omitempty"`
	ClaimsMatchingExpression *directory.ClaimsMatchingExpression `json:"claimsMatchingExpression,omitempty"`
	Audiences                []string                            `json:"audiences"`
	Description              string                              `json:"description,omitempty"`
	// LastUsed is when the credential last matched an exchange (wif's
	// extension; absent when never used or on writes). It lags the
	// exchange by up to the token service's usage flush interval (10 s).
	LastUsed *time.Time `json:"lastUsedDateTime,omitempty"`
}

// IdentityCredentialResource is an identity's federated identity credential
// as ARM returns it.
type IdentityCredentialResource struct {
	ID            string                `json:"id,omitempty"`
	Name          string                `json:"name,omitempty"`
	Type          string                `json:"type,omitempty"`
	ResourceGroup string                `json:"resourceGroup,omitempty"`
	Properties    *CredentialProperties `json:"properties"`
	ETag          string                `json:"etag,omitempty"`
}

func identityCredentialResource(m directory.ManagedIdentity, f directory.FederatedCredential, lastUsed time.Time) IdentityCredentialResource {
	return IdentityCredentialResource{ID: m.ResourceID() + "/federatedIdentityCredentials/" + f.Name, Name: f.Name,
		Type: IdentityCredentialType, ResourceGroup: m.ResourceGroup, Properties: credProps(f, lastUsed), ETag: ETag(f.Version)}
}

func credProps(f directory.FederatedCredential, lastUsed time.Time) *CredentialProperties {
	return &CredentialProperties{Issuer: f.Issuer, Subject: f.Subject, ClaimsMatchingExpression: f.ClaimsMatchingExpression,
		Audiences: nonNil(f.Audiences), Description: f.Description, LastUsed: timePtr(lastUsed)}
}

// timePtr is t in UTC, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// AppCredentialResource is an application's federated identity credential
// in Graph's shape.
type AppCredentialResource struct {
	ID                       string                              `json:"id,omitempty"`
	Name                     string                              `json:"name,omitempty"`
	Issuer                   string                              `json:"issuer"`
	Subject                  string                              `json:"subject,omitempty"`
	ClaimsMatchingExpression *directory.ClaimsMatchingExpression `json:"claimsMatchingExpression,omitempty"`
	Audiences                []string                            `json:"audiences"`
	Description              string                              `json:"description,omitempty"`
	// LastUsed: see CredentialProperties.LastUsed.
	LastUsed *time.Time `json:"lastUsedDateTime,omitempty"`
	ETag     string     `json:"etag,omitempty"`
}

func appCredentialResource(f directory.FederatedCredential, lastUsed time.Time) AppCredentialResource {
	return AppCredentialResource{ID: f.ID, Name: f.Name, Issuer: f.Issuer, Subject: f.Subject,
		ClaimsMatchingExpression: f.ClaimsMatchingExpression, Audiences: nonNil(f.Audiences), Description: f.Description,
		LastUsed: timePtr(lastUsed), ETag: ETag(f.Version)}
}

// AssignmentResource is an app role assignment. In a request, the ids may be
// replaced by names: principal (identity name or client id, application
// display name or appId), resource (identifier URI, appId or display name)
// and role (value or id).
type AssignmentResource struct {
	ID            string `json:"id,omitempty"`
	PrincipalID   string `json:"principalId,omitempty"`
	ResourceAppID string `json:"resourceAppId,omitempty"`
	AppRoleID     string `json:"appRoleId,omitempty"`
	// Readable names, filled in responses and accepted in requests.
	Principal string `json:"principal,omitempty"`
	Resource  string `json:"resource,omitempty"`
	Role      string `json:"role,omitempty"`
	CreatedAt string `json:"createdDateTime,omitempty"`
}

// AuditResource is one audited exchange.
type AuditResource struct {
	ID             string    `json:"id"`
	Time           time.Time `json:"time"`
	TenantID       string    `json:"tenantId"`
	ClientID       string    `json:"clientId,omitempty"`
	CredentialName string    `json:"credentialName,omitempty"`
	GrantType      string    `json:"grantType,omitempty"`
	Resource       string    `json:"resource,omitempty"`
	Issuer         string    `json:"issuer,omitempty"`
	Subject        string    `json:"subject,omitempty"`
	JTIHash        string    `json:"jtiHash,omitempty"`
	Result         string    `json:"result"`
	ErrorCode      int       `json:"errorCode,omitempty"`
	Error          string    `json:"error,omitempty"`
	CorrelationID  string    `json:"correlationId,omitempty"`
	RemoteAddr     string    `json:"remoteAddr,omitempty"`
	// ResourceURI is the resource application's first identifier URI
	// (Resource is its appId).
	ResourceURI string `json:"resourceUri,omitempty"`
	// Reason is a refusal's one-line explanation.
	Reason string `json:"reason,omitempty"`
	// Diagnosis is a refusal's full explanation: what each check found.
	Diagnosis *sts.Diagnosis `json:"diagnosis,omitempty"`
	// Count is how many exchanges the record stands for: 1, or more for
	// repeated successes counted in one row per minute (their time is the
	// minute's start and they carry no correlation id).
	Count int `json:"count"`
}

func auditResource(a store.AuditRecord, resourceURI string) AuditResource {
	r := AuditResource{ID: a.ID, Time: a.Time.UTC(), TenantID: a.TenantID, ClientID: a.ClientID, CredentialName: a.CredentialName,
		GrantType: a.GrantType, Resource: a.Resource, Issuer: a.Issuer, Subject: a.Subject, JTIHash: a.JTIHash,
		Result: a.Result, ErrorCode: a.ErrorCode, Error: a.Error, CorrelationID: a.CorrelationID, RemoteAddr: a.RemoteAddr, Count: max(a.Count, 1),
		ResourceURI: resourceURI, Reason: a.Reason}
	if a.Diagnosis != "" {
		var d sts.Diagnosis
		if json.Unmarshal([]byte(a.Diagnosis), &d) == nil {
			r.Diagnosis = &d
		}
	}
	return r
}

// List is a page of a collection, as ARM and Graph return it.
type List[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

func lower(s string) string { return strings.ToLower(s) }
