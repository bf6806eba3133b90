package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/sts"
)

// Client calls the admin API.
type Client struct {
	// BaseURL is the token service's URL, e.g. https://127.0.0.1:8443.
	BaseURL string
	// HTTPClient makes the requests (default: a client with a 30 s timeout).
	HTTPClient *http.Client
	// Token returns a bearer token for api://wif-admin; nil sends none
	// (loopback dev mode).
	Token func(ctx context.Context) (string, error)
	// MaxResponseBytes bounds response bodies (default 16 MiB).
	MaxResponseBytes int64
}

// Error is an error reply of the admin API.
type Error struct {
	StatusCode int
	ErrorDetail
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.StatusCode, e.Message)
	return msg
}

// IsNotFound reports whether err is a 404 from the admin API.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Do sends one request: body (if not nil) is sent as JSON, or as is when it
// is []byte; a 2xx JSON reply is decoded into out (if not nil). hdr adds
// headers (e.g. If-Match). It returns the reply's headers.
func (c *Client) Do(ctx context.Context, method, path string, hdr http.Header, body, out any) (http.Header, error) {
	target := path
	if !strings.HasPrefix(path, "https://") && !strings.HasPrefix(path, "http://") {
		target = strings.TrimSuffix(c.BaseURL, "/") + path
	} else if !sameOrigin(path, c.BaseURL) {
		return nil, fmt.Errorf("refusing to follow a link to %s, outside %s", path, c.BaseURL)
	}
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/yaml"
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd, ctype = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("admin request: %w", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if c.Token != nil {
		tok, err := c.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("get a token for %s: %w", AdminResource, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	limit := c.MaxResponseBytes
	if limit == 0 {
		limit = 16 << 20
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read reply: %w", method, target, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s %s: reply larger than %d bytes", method, target, limit)
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return resp.Header, &Error{StatusCode: resp.StatusCode, ErrorDetail: eb.Error}
		}
		return resp.Header, &Error{StatusCode: resp.StatusCode, ErrorDetail: ErrorDetail{Code: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(data))}}
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = data
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: decode reply: %w", method, target, err)
		}
	}
	return resp.Header, nil
}

func sameOrigin(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}

// listAll follows nextLink until the last page.
func listAll[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var all []T
	for path != "" {
		var pg List[T]
		if _, err := c.Do(ctx, http.MethodGet, path, nil, nil, &pg); err != nil {
			return nil, err
		}
		all = append(all, pg.Value...)
		path = pg.NextLink
	}
	return all, nil
}

func esc(s string) string { return url.PathEscape(s) }

// TenantPath is the path of a tenant.
func TenantPath(tid string) string { return "/admin/tenants/" + esc(tid) }

// IdentityPath is the path of a managed identity (name empty: the
// collection of the resource group).
func IdentityPath(tid, sub, rg, name string) string {
	p := TenantPath(tid) + "/subscriptions/" + esc(sub) + "/resourceGroups/" + esc(rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
	if name != "" {
		p += "/" + esc(name)
	}
	return p
}

// ListTenants lists every tenant.
func (c *Client) ListTenants(ctx context.Context) ([]TenantResource, error) {
	return listAll[TenantResource](ctx, c, "/admin/tenants")
}

// PutTenant creates or renames a tenant.
func (c *Client) PutTenant(ctx context.Context, t TenantResource) (TenantResource, error) {
	var out TenantResource
	_, err := c.Do(ctx, http.MethodPut, TenantPath(t.ID), nil, t, &out)
	return out, err
}

// ListApplications lists a tenant's applications.
func (c *Client) ListApplications(ctx context.Context, tid string) ([]ApplicationResource, error) {
	return listAll[ApplicationResource](ctx, c, TenantPath(tid)+"/applications")
}

// GetApplication reads an application by appId.
func (c *Client) GetApplication(ctx context.Context, tid, appID string) (ApplicationResource, error) {
	var out ApplicationResource
	_, err := c.Do(ctx, http.MethodGet, TenantPath(tid)+"/applications/"+esc(appID), nil, nil, &out)
	return out, err
}

// CreateApplication creates an application.
func (c *Client) CreateApplication(ctx context.Context, tid string, a ApplicationResource) (ApplicationResource, error) {
	var out ApplicationResource
	_, err := c.Do(ctx, http.MethodPost, TenantPath(tid)+"/applications", nil, a, &out)
	return out, err
}

// DeleteApplication deletes an application.
func (c *Client) DeleteApplication(ctx context.Context, tid, appID string) error {
	_, err := c.Do(ctx, http.MethodDelete, TenantPath(tid)+"/applications/"+esc(appID), nil, nil, nil)
	return err
}

// ListIdentities lists the identities of a resource group, or of the whole
// subscription when rg is empty.
func (c *Client) ListIdentities(ctx context.Context, tid, sub, rg string) ([]IdentityResource, error) {
	p := TenantPath(tid) + "/subscriptions/" + esc(sub) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
	if rg != "" {
		p = IdentityPath(tid, sub, rg, "")
	}
	return listAll[IdentityResource](ctx, c, p)
}

// GetIdentity reads a managed identity.
func (c *Client) GetIdentity(ctx context.Context, tid, sub, rg, name string) (IdentityResource, error) {
	var out IdentityResource
	_, err := c.Do(ctx, http.MethodGet, IdentityPath(tid, sub, rg, name), nil, nil, &out)
	return out, err
}

// PutIdentity creates or updates a managed identity.
func (c *Client) PutIdentity(ctx context.Context, tid, sub, rg, name string, in IdentityResource) (IdentityResource, error) {
	var out IdentityResource
	_, err := c.Do(ctx, http.MethodPut, IdentityPath(tid, sub, rg, name), nil, in, &out)
	return out, err
}

// DeleteIdentity deletes a managed identity.
func (c *Client) DeleteIdentity(ctx context.Context, tid, sub, rg, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, IdentityPath(tid, sub, rg, name), nil, nil, nil)
	return err
}

func credPath(tid, sub, rg, identity, name string) string {
	p := IdentityPath(tid, sub, rg, identity) + "/federatedIdentityCredentials"
	if name != "" {
		p += "/" + esc(name)
	}
	return p
}

// ListIdentityCredentials lists an identity's federated credentials.
func (c *Client) ListIdentityCredentials(ctx context.Context, tid, sub, rg, identity string) ([]IdentityCredentialResource, error) {
	return listAll[IdentityCredentialResource](ctx, c, credPath(tid, sub, rg, identity, ""))
}

// GetIdentityCredential reads an identity's federated credential.
func (c *Client) GetIdentityCredential(ctx context.Context, tid, sub, rg, identity, name string) (IdentityCredentialResource, error) {
	var out IdentityCredentialResource
	_, err := c.Do(ctx, http.MethodGet, credPath(tid, sub, rg, identity, name), nil, nil, &out)
	return out, err
}

// PutIdentityCredential creates or updates an identity's federated
// credential.
func (c *Client) PutIdentityCredential(ctx context.Context, tid, sub, rg, identity, name string, p CredentialProperties) (IdentityCredentialResource, error) {
	var out IdentityCredentialResource
	_, err := c.Do(ctx, http.MethodPut, credPath(tid, sub, rg, identity, name), nil, IdentityCredentialResource{Properties: &p}, &out)
	return out, err
}

// DeleteIdentityCredential deletes an identity's federated credential.
func (c *Client) DeleteIdentityCredential(ctx context.Context, tid, sub, rg, identity, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, credPath(tid, sub, rg, identity, name), nil, nil, nil)
	return err
}

// ListAssignments lists a tenant's app role assignments.
func (c *Client) ListAssignments(ctx context.Context, tid string) ([]AssignmentResource, error) {
	return listAll[AssignmentResource](ctx, c, TenantPath(tid)+"/appRoleAssignments")
}

// CreateAssignment assigns an app role, by ids or names.
func (c *Client) CreateAssignment(ctx context.Context, tid string, a AssignmentResource) (AssignmentResource, error) {
	var out AssignmentResource
	_, err := c.Do(ctx, http.MethodPost, TenantPath(tid)+"/appRoleAssignments", nil, a, &out)
	return out, err
}

// AuditQuery filters ListAudit.
type AuditQuery struct {
	ClientID, Result string
	// CorrelationID finds the records of one exchange (wif audit explain).
	CorrelationID string
	Since, Until  time.Time
	// Max bounds the records returned (0: 100).
	Max int
}

// ListAudit lists audited exchanges, newest first.
func (c *Client) ListAudit(ctx context.Context, tid string, q AuditQuery) ([]AuditResource, error) {
	v := url.Values{}
	if q.ClientID != "" {
		v.Set("clientId", q.ClientID)
	}
	if q.Result != "" {
		v.Set("result", q.Result)
	}
	if q.CorrelationID != "" {
		v.Set("correlationId", q.CorrelationID)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339))
	}
	max := q.Max
	if max <= 0 {
		max = DefaultPageSize
	}
	v.Set("$top", fmt.Sprint(min(max, MaxPageSize)))
	path := TenantPath(tid) + "/auditLogs?" + v.Encode()
	var all []AuditResource
	for path != "" && len(all) < max {
		var pg List[AuditResource]
		if _, err := c.Do(ctx, http.MethodGet, path, nil, nil, &pg); err != nil {
			return nil, err
		}
		all = append(all, pg.Value...)
		path = pg.NextLink
	}
	if len(all) > max {
		all = all[:max]
	}
	return all, nil
}

// Export returns the whole directory as a YAML document.
func (c *Client) Export(ctx context.Context) ([]byte, error) {
	var out []byte
	// A whole directory can be far larger than any other answer.
	cc := *c
	cc.MaxResponseBytes = max(c.MaxResponseBytes, 4<<30)
	_, err := cc.Do(ctx, http.MethodGet, "/admin/directory", http.Header{"Accept": {"application/yaml"}}, nil, &out)
	return out, err
}

// Apply applies a directory document (YAML or JSON).
func (c *Client) Apply(ctx context.Context, doc []byte, opts ApplyOptions) (ApplyResult, error) {
	var out ApplyResult
	q := url.Values{"dryRun": {strconv.FormatBool(opts.DryRun)}, "prune": {strconv.FormatBool(opts.Prune)}}
	if opts.Replay != "" {
		q.Set("replay", opts.Replay)
	}
	_, err := c.Do(ctx, http.MethodPost, "/admin/directory?"+q.Encode(), nil, doc, &out)
	return out, err
}

// ApplyOptions are the query options of Apply.
type ApplyOptions struct {
	DryRun, Prune bool
	// Replay, on a dry run, is the window of audited exchanges to replay
	// against the proposed directory ("24h", "7d").
	Replay string
}

func appCredPath(tid, appID, name string) string {
	p := TenantPath(tid) + "/applications/" + esc(appID) + "/federatedIdentityCredentials"
	if name != "" {
		p += "/" + esc(name)
	}
	return p
}

// ListAppCredentials lists an application's federated credentials.
func (c *Client) ListAppCredentials(ctx context.Context, tid, appID string) ([]AppCredentialResource, error) {
	return listAll[AppCredentialResource](ctx, c, appCredPath(tid, appID, ""))
}

// GetAppCredential reads an application's federated credential.
func (c *Client) GetAppCredential(ctx context.Context, tid, appID, name string) (AppCredentialResource, error) {
	var out AppCredentialResource
	_, err := c.Do(ctx, http.MethodGet, appCredPath(tid, appID, name), nil, nil, &out)
	return out, err
}

// PutAppCredential creates or updates an application's federated credential.
func (c *Client) PutAppCredential(ctx context.Context, tid, appID string, f AppCredentialResource) (AppCredentialResource, error) {
	var out AppCredentialResource
	_, err := c.Do(ctx, http.MethodPut, appCredPath(tid, appID, f.Name), nil, f, &out)
	return out, err
}

// DeleteAppCredential deletes an application's federated credential.
func (c *Client) DeleteAppCredential(ctx context.Context, tid, appID, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, appCredPath(tid, appID, name), nil, nil, nil)
	return err
}

// ListKeys lists the token service's signing keys.
func (c *Client) ListKeys(ctx context.Context) ([]jose.KeyInfo, error) {
	var out KeyList
	_, err := c.Do(ctx, http.MethodGet, "/admin/signingKeys", nil, nil, &out)
	return out.Value, err
}

// RotateKey starts a key rotation now (immediate: the new key signs at once).
func (c *Client) RotateKey(ctx context.Context, immediate bool) (jose.KeyInfo, error) {
	var out jose.KeyInfo
	path := "/admin/signingKeys/rotate"
	if immediate {
		path += "?immediate=true"
	}
	_, err := c.Do(ctx, http.MethodPost, path, nil, nil, &out)
	return out, err
}

// RetireKey retires a signing key: no longer published, its tokens refused.
func (c *Client) RetireKey(ctx context.Context, kid string) (jose.KeyInfo, error) {
	var out jose.KeyInfo
	_, err := c.Do(ctx, http.MethodPost, "/admin/signingKeys/"+url.PathEscape(kid)+"/retire", nil, nil, &out)
	return out, err
}

// RewrapKeys seals every signing key anew with the key-encryption key kekID.
func (c *Client) RewrapKeys(ctx context.Context, kekID string) (jose.RewrapResult, error) {
	var out jose.RewrapResult
	_, err := c.Do(ctx, http.MethodPost, "/admin/signingKeys/rewrap", nil, RewrapRequest{KEKID: kekID}, &out)
	return out, err
}

// TestIdentityCredentials dry-runs an exchange of assertion for an identity.
func (c *Client) TestIdentityCredentials(ctx context.Context, tid, sub, rg, identity, assertion string) (sts.TestResult, error) {
	var out sts.TestResult
	_, err := c.Do(ctx, http.MethodPost, IdentityPath(tid, sub, rg, identity)+"/testFederatedCredentials", nil, TestRequest{Assertion: assertion}, &out)
	return out, err
}

// TestAppCredentials dry-runs an exchange of assertion for an application.
func (c *Client) TestAppCredentials(ctx context.Context, tid, appID, assertion string) (sts.TestResult, error) {
	var out sts.TestResult
	_, err := c.Do(ctx, http.MethodPost, TenantPath(tid)+"/applications/"+url.PathEscape(appID)+"/testFederatedCredentials", nil, TestRequest{Assertion: assertion}, &out)
	return out, err
}

// StaleCredentials reports the credentials of tenant tid unused in the
// last days days and the issuers it trusts that have failed for a day.
func (c *Client) StaleCredentials(ctx context.Context, tid string, days int) (*StaleReport, error) {
	var out StaleReport
	if _, err := c.Do(ctx, http.MethodGet, TenantPath(tid)+"/staleCredentials?days="+strconv.Itoa(days), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTenant reads a tenant.
func (c *Client) GetTenant(ctx context.Context, tid string) (TenantResource, error) {
	var out TenantResource
	_, err := c.Do(ctx, http.MethodGet, TenantPath(tid), nil, nil, &out)
	return out, err
}

// DeleteTenant deletes a tenant and everything in it.
func (c *Client) DeleteTenant(ctx context.Context, tid string) error {
	_, err := c.Do(ctx, http.MethodDelete, TenantPath(tid), nil, nil, nil)
	return err
}

// PatchApplication updates the fields of patch that are set (display name,
// identifier URIs, access token version).
func (c *Client) PatchApplication(ctx context.Context, tid, appID string, patch map[string]any) (ApplicationResource, error) {
	var out ApplicationResource
	_, err := c.Do(ctx, http.MethodPatch, TenantPath(tid)+"/applications/"+esc(appID), nil, patch, &out)
	return out, err
}

// DeleteAssignment removes an app role assignment by id.
func (c *Client) DeleteAssignment(ctx context.Context, tid, id string) error {
	_, err := c.Do(ctx, http.MethodDelete, TenantPath(tid)+"/appRoleAssignments/"+esc(id), nil, nil, nil)
	return err
}

// TrustedIssuerPath is the path of a tenant's trusted issuer.
func TrustedIssuerPath(tid, name string) string {
	return TenantPath(tid) + "/trustedIssuers/" + esc(name)
}

// IssuerSetPath is the path of a tenant's issuer set.
func IssuerSetPath(tid, name string) string { return TenantPath(tid) + "/issuerSets/" + esc(name) }

// ListTrustedIssuers lists a tenant's trusted issuers.
func (c *Client) ListTrustedIssuers(ctx context.Context, tid string) ([]TrustedIssuerResource, error) {
	return listAll[TrustedIssuerResource](ctx, c, TenantPath(tid)+"/trustedIssuers")
}

// GetTrustedIssuer reads a trusted issuer.
func (c *Client) GetTrustedIssuer(ctx context.Context, tid, name string) (TrustedIssuerResource, error) {
	var out TrustedIssuerResource
	_, err := c.Do(ctx, http.MethodGet, TrustedIssuerPath(tid, name), nil, nil, &out)
	return out, err
}

// PutTrustedIssuer creates or replaces a trusted issuer; createOnly sends
// If-None-Match: * so an existing one is not overwritten.
func (c *Client) PutTrustedIssuer(ctx context.Context, tid, name string, in TrustedIssuerResource, createOnly bool) (TrustedIssuerResource, error) {
	var out TrustedIssuerResource
	_, err := c.Do(ctx, http.MethodPut, TrustedIssuerPath(tid, name), createOnlyHeader(createOnly), in, &out)
	return out, err
}

// DeleteTrustedIssuer deletes a trusted issuer.
func (c *Client) DeleteTrustedIssuer(ctx context.Context, tid, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, TrustedIssuerPath(tid, name), nil, nil, nil)
	return err
}

// PushKeys pushes a pushed issuer's current key set.
func (c *Client) PushKeys(ctx context.Context, tid, name string, jwks []byte) (PushKeysResult, error) {
	var out PushKeysResult
	_, err := c.Do(ctx, http.MethodPost, TrustedIssuerPath(tid, name)+"/keys", nil, PushKeysRequest{JWKS: jwks}, &out)
	return out, err
}

// ListIssuerSets lists a tenant's issuer sets.
func (c *Client) ListIssuerSets(ctx context.Context, tid string) ([]IssuerSetResource, error) {
	return listAll[IssuerSetResource](ctx, c, TenantPath(tid)+"/issuerSets")
}

// GetIssuerSet reads an issuer set.
func (c *Client) GetIssuerSet(ctx context.Context, tid, name string) (IssuerSetResource, error) {
	var out IssuerSetResource
	_, err := c.Do(ctx, http.MethodGet, IssuerSetPath(tid, name), nil, nil, &out)
	return out, err
}

// PutIssuerSet creates or replaces an issuer set.
func (c *Client) PutIssuerSet(ctx context.Context, tid, name string, in IssuerSetResource, createOnly bool) (IssuerSetResource, error) {
	var out IssuerSetResource
	_, err := c.Do(ctx, http.MethodPut, IssuerSetPath(tid, name), createOnlyHeader(createOnly), in, &out)
	return out, err
}

// DeleteIssuerSet deletes an issuer set.
func (c *Client) DeleteIssuerSet(ctx context.Context, tid, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, IssuerSetPath(tid, name), nil, nil, nil)
	return err
}

func createOnlyHeader(on bool) http.Header {
	if !on {
		return nil
	}
	return http.Header{"If-None-Match": {"*"}}
}

// GetPushedIssuer reads a pushed issuer as its sync agent may (no admin
// role needed for the identity the object names as pushClientId).
func (c *Client) GetPushedIssuer(ctx context.Context, tid, name string) (TrustedIssuerResource, error) {
	var out TrustedIssuerResource
	_, err := c.Do(ctx, http.MethodGet, TrustedIssuerPath(tid, name)+"/keys", nil, nil, &out)
	return out, err
}
