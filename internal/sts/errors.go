package sts

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
)

// Error is a refusal of the token endpoint, rendered as Entra renders it
// (spec/sts.md §6). Code is the AADSTS number; Err the OAuth error string;
// Description is Entra's text; Hint is wif's one-line plain-language pointer
// at the difference (never naming another tenant's data).
type Error struct {
	Status      int
	Err         string
	Code        int
	Description string
	Hint        string
	// RetryAfter, when set, is sent as Retry-After (only for 503).
	RetryAfter int
	// cause is the internal reason, logged but never sent.
	cause error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: AADSTS%d: %s", e.Err, e.Code, e.Description)
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) withHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

func (e *Error) withCause(err error) *Error {
	e.cause = err
	return e
}

// OAuth error strings.
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errInvalidScope         = "invalid_scope"
	errInvalidResource      = "invalid_resource"
	errUnauthorizedClient   = "unauthorized_client"
	errUnsupportedGrantType = "unsupported_grant_type"
	errInvalidTarget        = "invalid_target" // RFC 8693
	errTemporarilyUnavail   = "temporarily_unavailable"
)

// AADSTS codes wif emits (spec/sts.md §6 and Entra's documentation).
const (
	CodeInvalidScope          = 70011
	CodeResourceNotFound      = 500011
	CodeClientNotFound        = 700016
	CodeTenantNotFound        = 90002
	CodeUnsupportedGrant      = 70003
	CodeNoMatchingIssuer      = 700211
	CodeNoMatchingAudience    = 700212
	CodeNoMatchingSubject     = 700213
	CodeSubjectCaseOnly       = 7002138
	CodeAssertionTimeRange    = 700024
	CodeAssertionLifetime     = 70023
	CodeExternalOIDCFailed    = 90061
	CodeExternalOIDCInvalid   = 50166
	CodeUnknownKID            = 7000272
	CodeEntraIssuedAssertion  = 700222
	CodeMalformedJWT          = 50027
	CodeMissingParameter      = 900144
	CodeMissingAssertion      = 7000218
	CodeClientSecretRefused   = 7000215
	CodeMalformedRequest      = 9002313
	CodeAssertionTypeInvalid  = 7000219
	CodeServiceUnavailable    = 50001
	CodeSubjectTokenTypeWrong = 9002341
)

func statusFor(err string) int {
	switch err {
	case errInvalidClient:
		return http.StatusUnauthorized
	case errTemporarilyUnavail:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

func newError(oauthErr string, code int, format string, args ...any) *Error {
	return &Error{Status: statusFor(oauthErr), Err: oauthErr, Code: code, Description: fmt.Sprintf(format, args...)}
}

const ficDocs = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"

func errMissingParam(name string) *Error {
	return newError(errInvalidRequest, CodeMissingParameter, "The request body must contain the following parameter: '%s'.", name)
}

func errMalformed(format string, args ...any) *Error {
	return newError(errInvalidRequest, CodeMalformedRequest, "Invalid request. Request is malformed or invalid. "+format, args...)
}

func errTenantNotFound(tenant string) *Error {
	return newError(errInvalidRequest, CodeTenantNotFound, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant).
		withHint("the tenant is the path segment after AZURE_AUTHORITY_HOST: check AZURE_TENANT_ID (the token service's tenant id, a GUID), and that AZURE_AUTHORITY_HOST is the token service's host root")
}

// errAuthorityWithPath answers a token or metadata request whose path has
// a segment before the tenant: AZURE_AUTHORITY_HOST set to a URL with a
// path (often the host plus the tenant), to which the SDKs append
// /{tenant}/oauth2/v2.0/token.
func errAuthorityWithPath(prefix, tenant string) *Error {
	e := newError(errInvalidRequest, CodeMalformedRequest, "Invalid request. Request is malformed or invalid. The path has '%s' before the tenant '%s'.", prefix, tenant).
		withHint("AZURE_AUTHORITY_HOST must be the token service's host root (https://host/), without a path or the tenant: the SDKs append /{tenant}/oauth2/v2.0/token to it")
	e.Status = http.StatusNotFound
	return e
}

func errUnsupportedGrant(grant string) *Error {
	return newError(errUnsupportedGrantType, CodeUnsupportedGrant, "The app requested an unsupported grant type '%s'.", grant).
		withHint("wif supports grant_type=client_credentials with a client_assertion, and urn:ietf:params:oauth:grant-type:token-exchange")
}

func errScope(format string, args ...any) *Error {
	return newError(errInvalidScope, CodeInvalidScope, "The provided value for the input parameter 'scope' is not valid. "+format, args...)
}

func errClientNotFound(clientID, tenant string) *Error {
	return newError(errUnauthorizedClient, CodeClientNotFound, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant)
}

func errResourceNotFound(resource, tenant string) *Error {
	return newError(errInvalidResource, CodeResourceNotFound, "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, tenant)
}

func errMalformedJWT(detail string) *Error {
	return newError(errInvalidRequest, CodeMalformedJWT, "JWT token is invalid or malformed. %s", detail)
}

func errExternalOIDC(code int) *Error {
	return newError(errInvalidRequest, code, "Request to External OIDC endpoint failed.")
}

func errService(cause error) *Error {
	e := newError(errTemporarilyUnavail, CodeServiceUnavailable, "The service is temporarily unavailable. Retry the request after a short wait.").withCause(cause)
	e.RetryAfter = 5
	return e
}

// errOverloaded answers a request shed at overload: Entra's
// temporarily_unavailable, which the SDKs retry after Retry-After.
func errOverloaded() *Error {
	e := newError(errTemporarilyUnavail, CodeServiceUnavailable, "The service is temporarily unavailable. Retry the request after a short wait.").
		withHint("the token service is at capacity; the Azure SDKs retry after Retry-After")
	e.RetryAfter = 1
	return e
}

// catalog describes every code for /error?code=N.
var catalog = map[int]string{
	CodeInvalidScope:          "The scope is malformed, is not RESOURCE/.default, or names several resources. Client credential requests ask for exactly one resource, as <App ID URI or appId>/.default.",
	CodeResourceNotFound:      "No application in the tenant has the requested resource as an identifier URI or appId.",
	CodeClientNotFound:        "client_id names no managed identity or application in this tenant.",
	CodeTenantNotFound:        "The tenant in the URL path does not exist in this token service.",
	CodeUnsupportedGrant:      "The grant_type is not supported.",
	CodeNoMatchingIssuer:      "No federated identity credential of the identity trusts the assertion's issuer (iss). Issuers are compared exactly: mind the trailing '/'.",
	CodeNoMatchingAudience:    "A credential trusts the issuer, but none with the assertion's audience (aud).",
	CodeNoMatchingSubject:     "Credentials trust the issuer and audience, but none the assertion's subject (sub).",
	CodeSubjectCaseOnly:       "The assertion's subject matches a credential only when letter case is ignored; subjects are case-sensitive.",
	CodeAssertionTimeRange:    "The assertion is expired or not yet valid (nbf/exp, with 5 minutes of clock skew).",
	CodeAssertionLifetime:     "The assertion has no iat, or its lifetime (exp - iat) is over 25 hours.",
	CodeExternalOIDCFailed:    "Fetching the issuer's OpenID configuration or keys failed.",
	CodeExternalOIDCInvalid:   "The issuer's OpenID configuration or keys are invalid (for example its issuer differs from the token's iss).",
	CodeUnknownKID:            "The assertion's kid is not among the issuer's published keys.",
	CodeEntraIssuedAssertion:  "Tokens issued by this token service cannot be used as assertions.",
	CodeMalformedJWT:          "The assertion is not a well-formed RS256 JWT, or its signature does not verify.",
	CodeMissingParameter:      "A required request parameter is missing.",
	CodeMissingAssertion:      "client_assertion is missing: wif authenticates clients only with federated assertions.",
	CodeClientSecretRefused:   "wif does not accept client secrets: use a federated client assertion.",
	CodeMalformedRequest:      "The request is malformed (body type, size, repeated parameters).",
	CodeAssertionTypeInvalid:  "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
	CodeServiceUnavailable:    "The token service could not reach its store; retry shortly.",
	CodeSubjectTokenTypeWrong: "subject_token_type must be urn:ietf:params:oauth:token-type:jwt (or id_token).",
}

// catalogText lists the catalog for the /error page.
func catalogText(code string) string {
	if n, err := strconv.Atoi(code); err == nil {
		if d, ok := catalog[n]; ok {
			return fmt.Sprintf("AADSTS%d: %s\n", n, d)
		}
	}
	codes := make([]int, 0, len(catalog))
	for c := range catalog {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	out := ""
	for _, c := range codes {
		out += fmt.Sprintf("AADSTS%d: %s\n", c, catalog[c])
	}
	return out
}
