package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// The admin API's resource application and its app roles.
const (
	// AdminResource is the identifier URI of the built-in admin resource:
	// callers ask for "api://wif-admin/.default".
	AdminResource = "api://wif-admin"
	// AdminAppName is the display name of the admin resource application.
	AdminAppName = "wif-admin"
	// RoleReadWriteAll may read and change everything, in every tenant.
	RoleReadWriteAll = "Directory.ReadWrite.All"
	// RoleReadAll may read everything, in every tenant.
	RoleReadAll = "Directory.Read.All"
	// RoleManagedIdentityContributor may read and change managed identities
	// and their federated credentials in the token's own tenant only.
	RoleManagedIdentityContributor = "ManagedIdentityContributor"
)

// Errors an Authorizer returns; the handler maps them to 401 and 403.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Scope says what an admin request touches.
type Scope string

// The scopes of admin operations.
const (
	ScopeTenant     Scope = "tenant"
	ScopeDirectory  Scope = "directory" // the whole directory (export, apply)
	ScopeApp        Scope = "application"
	ScopeAppCred    Scope = "applicationCredential"
	ScopeIdentity   Scope = "identity"
	ScopeIdentCred  Scope = "identityCredential"
	ScopeAssignment Scope = "appRoleAssignment"
	ScopeAudit      Scope = "audit"
	// ScopeIssuer is a tenant's trusted issuers and issuer sets: what
	// verifies every credential of the tenant, so directory roles only.
	ScopeIssuer Scope = "trustedIssuer"
	// ScopeIssuerKeys is a push of a trusted issuer's keys: a directory
	// role, or the identity the object names as its pushClientId.
	ScopeIssuerKeys Scope = "trustedIssuerKeys"
	// ScopeKeys is the token service's signing keys: the whole
	// installation's, so only the operator tenant's directory admins.
	ScopeKeys Scope = "signingKeys"
)

// Operation is one admin request as the authorizer sees it.
type Operation struct {
	Scope Scope
	// Write is true for requests that change the directory.
	Write bool
	// TenantID is the tenant the request touches ("" when it spans tenants).
	TenantID string
}

// Authorizer decides whether a request may perform an operation. It returns
// who the caller is, or an error matching ErrUnauthenticated (no or bad
// credentials → 401) or ErrForbidden (→ 403). Its message is shown to the
// caller, so it must say what was missing without echoing the token.
type Authorizer interface {
	Authorize(r *http.Request, op Operation) (Caller, error)
}

// Caller is who an authorized admin request comes from: what the handler
// needs to refuse a write that would give some identity more than the
// caller holds itself (see Caller.MayGrant).
type Caller struct {
	// Unrestricted is a caller not bound by app roles: wif dev's
	// unauthenticated loopback caller.
	Unrestricted bool
	// TenantID is the tenant of the caller's token (tid).
	TenantID string
	// Operator: the token's tenant is the operator tenant.
	Operator bool
	// Roles are the token's app roles of api://wif-admin.
	Roles []string
	// OperatorTenant is the installation's operator tenant ("" if none),
	// to judge what other identities' roles are worth.
	OperatorTenant string
	// ClientID is the token's client (appid/azp), for the audit log.
	ClientID string
	// pushOnly: authenticated but holding no role for the operation; the
	// handler allows it only what the object itself grants the client (a
	// trusted issuer's pushClientId).
	pushOnly bool
}

// Claims are the claims of an admin token the authorizer uses.
type Claims struct {
	Issuer   string   `json:"iss"`
	Audience string   `json:"aud"`
	TenantID string   `json:"tid"`
	Subject  string   `json:"sub"`
	ObjectID string   `json:"oid"`
	AppID    string   `json:"appid"`
	Azp      string   `json:"azp"`
	Roles    []string `json:"roles"`
	Expiry   int64    `json:"exp"`
	Nbf      int64    `json:"nbf"`
}

// ClientID is the caller's client id (appid in v1 tokens, azp in v2).
func (c Claims) ClientID() string {
	if c.AppID != "" {
		return c.AppID
	}
	return c.Azp
}

// Verifier checks a bearer token's signature, issuer and lifetime and
// returns its claims. The token service injects one built on its own keys.
type Verifier func(ctx context.Context, rawToken string) (Claims, error)

// TokenAuthorizer authorizes requests by bearer tokens issued by this token
// service for AdminResource, by their app roles.
type TokenAuthorizer struct {
	// Verify checks the token (required).
	Verify Verifier
	// Directory looks up the admin application, to accept v2 tokens whose
	// audience is its appId. Nil accepts only aud = AdminResource.
	Directory store.DirectoryStore
	// OperatorTenant is the tenant whose Directory.* role holders administer
	// every tenant (the tenant of the bootstrap admin). Directory roles held
	// in any other tenant apply to that tenant only. Empty: no tenant is
	// the operator's, so nothing spanning tenants is allowed (fail closed).
	OperatorTenant string
	// AllowLoopback lets requests without an Authorization header through
	// when both ends of the connection are loopback addresses (wif dev):
	// the peer address (r.RemoteAddr) and the local address the request
	// arrived on (http.LocalAddrContextKey) must both be loopback IPs, so a
	// server listening on 0.0.0.0 still refuses unauthenticated calls
	// arriving through a non-loopback interface, and a proxy on the same
	// host cannot relay them unless the server itself listens on loopback.
	AllowLoopback bool
}

// IsLoopbackRequest reports whether r came from a loopback address to a
// loopback address (see TokenAuthorizer.AllowLoopback).
func IsLoopbackRequest(r *http.Request) bool {
	return isLoopbackAddr(r.RemoteAddr) && isLoopbackLocal(r.Context())
}

func isLoopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isLoopbackLocal(ctx context.Context) bool {
	a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || a == nil {
		return false
	}
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.IsLoopback()
	}
	return isLoopbackAddr(a.String())
}

// Authorize implements Authorizer.
func (a *TokenAuthorizer) Authorize(r *http.Request, op Operation) (Caller, error) {
	c, err := a.Identify(r)
	if err != nil || c.Unrestricted {
		return c, err
	}
	if err := Allowed(c.Roles, c.TenantID, c.Operator, op); err != nil {
		return Caller{}, err
	}
	return c, nil
}

// Identify authenticates a request (a bearer token of this service for the
// admin resource, or loopback when allowed) without deciding any operation:
// for surfaces that decide by the caller's roles themselves, such as the
// Resource Manager endpoints.
func (a *TokenAuthorizer) Identify(r *http.Request) (Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if a.AllowLoopback && IsLoopbackRequest(r) {
			return Caller{Unrestricted: true, OperatorTenant: a.OperatorTenant}, nil
		}
		return Caller{}, fmt.Errorf("%w: the admin API needs a bearer token for %s (get one with scope %s/.default as an identity holding the role %s, %s or %s; "+
			"the wif CLI does with --client-id and --federated-token-file). A new server has no such identity until it is started with "+
			"--bootstrap-admin-issuer and --bootstrap-admin-subject, or its --directory file assigns one",
			ErrUnauthenticated, AdminResource, AdminResource, RoleReadWriteAll, RoleReadAll, RoleManagedIdentityContributor)
	}
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return Caller{}, fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", ErrUnauthenticated)
	}
	if a.Verify == nil {
		return Caller{}, fmt.Errorf("%w: this server has no token verifier configured", ErrUnauthenticated)
	}
	c, err := a.Verify(r.Context(), strings.TrimSpace(raw))
	if err != nil {
		return Caller{}, fmt.Errorf("%w: the bearer token is not valid: %v", ErrUnauthenticated, err)
	}
	if !a.audienceOK(r.Context(), c) {
		return Caller{}, fmt.Errorf("%w: the bearer token's audience %q is not %s: ask for scope %s/.default", ErrUnauthenticated, c.Audience, AdminResource, AdminResource)
	}
	operator := a.OperatorTenant != "" && strings.EqualFold(c.TenantID, a.OperatorTenant)
	return Caller{TenantID: c.TenantID, Operator: operator, Roles: c.Roles, OperatorTenant: a.OperatorTenant, ClientID: c.ClientID()}, nil
}

func (a *TokenAuthorizer) audienceOK(ctx context.Context, c Claims) bool {
	if strings.EqualFold(c.Audience, AdminResource) {
		return true
	}
	if a.Directory == nil || !directory.IsGUID(c.Audience) || !directory.IsGUID(c.TenantID) {
		return false
	}
	app, err := a.Directory.GetApplication(ctx, c.TenantID, c.Audience)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(app.IdentifierURIs, func(u string) bool { return strings.EqualFold(u, AdminResource) })
}

// Allowed decides by app roles alone. Directory.ReadWrite.All may change
// and Directory.Read.All may read: everything, in every tenant, when held in
// the operator tenant (operator true); otherwise only within tokenTenant,
// and nothing that spans tenants (the tenant list, other tenants, the whole
// directory). ManagedIdentityContributor may read and change managed
// identities and their credentials in tokenTenant only.
func Allowed(roles []string, tokenTenant string, operator bool, op Operation) error {
	own := op.TenantID != "" && strings.EqualFold(op.TenantID, tokenTenant)
	dirRole := slices.Contains(roles, RoleReadWriteAll) || (!op.Write && slices.Contains(roles, RoleReadAll))
	if dirRole && (operator || own) {
		return nil
	}
	if slices.Contains(roles, RoleManagedIdentityContributor) && (op.Scope == ScopeIdentity || op.Scope == ScopeIdentCred) {
		if own {
			return nil
		}
		return fmt.Errorf("%w: role %s allows changes in tenant %s only, not in %q", ErrForbidden, RoleManagedIdentityContributor, tokenTenant, op.TenantID)
	}
	if dirRole {
		where := "tenant " + op.TenantID
		if op.TenantID == "" {
			where = "more than one tenant"
		}
		return fmt.Errorf("%w: the token's directory role is held in tenant %s and applies there only; %s needs the role held in the operator tenant", ErrForbidden, tokenTenant, where)
	}
	need := RoleReadWriteAll
	if !op.Write {
		need = RoleReadWriteAll + " or " + RoleReadAll
	}
	if op.Scope == ScopeIdentity || op.Scope == ScopeIdentCred {
		need += " (or " + RoleManagedIdentityContributor + " in the tenant)"
	}
	verb := "read"
	if op.Write {
		verb = "change"
	}
	have := "none"
	if len(roles) > 0 {
		have = strings.Join(roles, ", ")
	}
	return fmt.Errorf("%w: to %s %s objects the token needs the app role %s of %s; it has: %s", ErrForbidden, verb, op.Scope, need, AdminResource, have)
}

// SignatureVerifier checks a compact JWS's signature against the token
// service's own keys and returns its payload (jose.Manager.Verify).
type SignatureVerifier func(rawToken string) ([]byte, error)

// NewVerifier builds a Verifier from the token service's signature check:
// the payload must be a JSON object whose exp (required) and nbf hold (with
// one minute of leeway) and whose iss is one of issuers(tid).
func NewVerifier(verifySig SignatureVerifier, issuers func(tenantID string) []string, now func() time.Time) Verifier {
	if now == nil {
		now = time.Now
	}
	return func(_ context.Context, raw string) (Claims, error) {
		if len(raw) > 16<<10 {
			return Claims{}, errors.New("token is longer than 16 KiB")
		}
		payload, err := verifySig(raw)
		if err != nil {
			return Claims{}, err
		}
		return checkClaims(payload, issuers, now(), time.Minute)
	}
}

// Issuers returns the issuers of this token service's tokens for a tenant
// (v1 and v2), given its public URL (no trailing '/') and whether v1 tokens
// carry Entra's issuer name.
func Issuers(publicURL string, entraIssuerNames bool) func(tenantID string) []string {
	publicURL = strings.TrimSuffix(publicURL, "/")
	return func(tid string) []string {
		v1 := publicURL + "/" + tid + "/"
		if entraIssuerNames {
			v1 = "https://sts.windows.net/" + tid + "/"
		}
		return []string{v1, publicURL + "/" + tid + "/v2.0"}
	}
}

func checkClaims(payload []byte, issuers func(string) []string, t time.Time, leeway time.Duration) (Claims, error) {
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, fmt.Errorf("claims are not a JSON object: %w", err)
	}
	if c.Expiry == 0 || t.After(time.Unix(c.Expiry, 0).Add(leeway)) {
		return Claims{}, errors.New("token has expired")
	}
	if c.Nbf != 0 && t.Add(leeway).Before(time.Unix(c.Nbf, 0)) {
		return Claims{}, errors.New("token is not valid yet")
	}
	if issuers == nil || !slices.Contains(issuers(c.TenantID), c.Issuer) {
		return Claims{}, fmt.Errorf("issuer %q is not this token service's issuer for tenant %q", c.Issuer, c.TenantID)
	}
	return c, nil
}

// KeySetVerifier verifies RS256 tokens against a JSON Web Key Set, for a
// process that is not the token service itself.
type KeySetVerifier struct {
	// Keys returns the current keys (the token service's JWKS).
	Keys func(ctx context.Context) (jose.JSONWebKeySet, error)
	// Issuer returns the issuers accepted for a tenant (see Issuers).
	Issuer func(tenantID string) []string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verify implements Verifier.
func (v *KeySetVerifier) Verify(ctx context.Context, raw string) (Claims, error) {
	if len(raw) > 16<<10 {
		return Claims{}, errors.New("token is longer than 16 KiB")
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return Claims{}, fmt.Errorf("not a compact RS256 JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return Claims{}, errors.New("token must carry exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	set, err := v.Keys(ctx)
	if err != nil {
		return Claims{}, fmt.Errorf("load signing keys: %w", err)
	}
	keys := set.Key(kid)
	if kid == "" || len(keys) == 0 {
		return Claims{}, fmt.Errorf("signed by unknown key %q", kid)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return Claims{}, errors.New("signature does not verify")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	return checkClaims(payload, v.Issuer, now(), time.Minute)
}
