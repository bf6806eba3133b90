package sts

import (
	"mime"
	"net/url"
	"strings"
)

// Grant and assertion type URNs.
const (
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	AssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// Bounds on a token request (ours).
const (
	maxRequestBody   = 64 << 10
	maxAssertionSize = 16 << 10
)

// tokenRequest is a parsed token request. It holds the assertion only as
// long as the request lives; it is never logged.
type tokenRequest struct {
	// endpoint is 1 for /oauth2/token, 2 for /oauth2/v2.0/token.
	endpoint  int
	grantType string
	clientID  string
	// assertion is the external JWT: client_assertion, or subject_token
	// for token exchange.
	assertion string
	// resource is the requested resource (App ID URI or appId), derived
	// from scope or resource.
	resource string
	// scope is the scope parameter as sent (for RFC 8693 echo).
	scope string
	// clientRequestID is the client's client-request-id, echoed as the
	// correlation id.
	clientRequestID string
}

// oidcScopes are scopes MSAL adds to every request; they are ignored.
var oidcScopes = map[string]bool{"openid": true, "offline_access": true, "profile": true, "email": true}

// singleParams are the parameters that may appear at most once.
var singleParams = []string{
	"grant_type", "client_id", "client_assertion", "client_assertion_type", "client_secret",
	"scope", "resource", "subject_token", "subject_token_type", "audience", "requested_token_type",
}

// parseTokenRequest parses the body of a POST to a token endpoint. query is
// the URL's query (msal-node sends client-request-id there).
func parseTokenRequest(contentType string, body []byte, query url.Values, endpoint int) (*tokenRequest, *Error) {
	if len(body) > maxRequestBody {
		return nil, errMalformed("The request body is over %d bytes.", maxRequestBody)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errMalformed("The request body must be application/x-www-form-urlencoded (got Content-Type %q).", contentType)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errMalformed("The request body is not valid form encoding: %v.", err)
	}
	for _, p := range singleParams {
		if len(form[p]) > 1 {
			return nil, errMalformed("The parameter '%s' appears %d times; it may appear once.", p, len(form[p]))
		}
	}
	req := &tokenRequest{endpoint: endpoint, clientRequestID: form.Get("client-request-id")}
	if req.clientRequestID == "" {
		req.clientRequestID = query.Get("client-request-id")
	}
	req.grantType = form.Get("grant_type")
	if req.grantType == "" {
		return nil, errMissingParam("grant_type")
	}
	switch req.grantType {
	case GrantClientCredentials:
		return req, req.parseClientCredentials(form)
	case GrantTokenExchange:
		return req, req.parseTokenExchange(form)
	default:
		return nil, errUnsupportedGrant(req.grantType)
	}
}

func (req *tokenRequest) parseClientCredentials(form url.Values) *Error {
	req.clientID = strings.TrimSpace(form.Get("client_id"))
	if req.clientID == "" {
		return errMissingParam("client_id")
	}
	if form.Has("client_secret") && !form.Has("client_assertion") {
		return newError(errInvalidClient, CodeClientSecretRefused, "Invalid client secret provided.").
			withHint("wif never accepts client secrets: send the workload's platform token as client_assertion")
	}
	if !form.Has("client_assertion") {
		return newError(errInvalidClient, CodeMissingAssertion, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	if t := form.Get("client_assertion_type"); t != AssertionTypeJWTBearer {
		if t == "" {
			return errMissingParam("client_assertion_type")
		}
		return newError(errInvalidRequest, CodeAssertionTypeInvalid, "client_assertion_type '%s' is not supported; it must be '%s'.", t, AssertionTypeJWTBearer)
	}
	// azidentity does not trim the token file: a trailing newline arrives.
	req.assertion = strings.TrimSpace(form.Get("client_assertion"))
	if req.assertion == "" {
		return errMissingParam("client_assertion")
	}
	if req.endpoint == 1 {
		req.resource = strings.TrimSpace(form.Get("resource"))
		if req.resource == "" {
			return errMissingParam("resource")
		}
		return nil
	}
	req.scope = form.Get("scope")
	res, e := resourceFromScope(req.scope)
	if e != nil {
		return e
	}
	req.resource = res
	return nil
}

func (req *tokenRequest) parseTokenExchange(form url.Values) *Error {
	req.clientID = strings.TrimSpace(form.Get("client_id"))
	if req.clientID == "" {
		return errMissingParam("client_id")
	}
	req.assertion = strings.TrimSpace(form.Get("subject_token"))
	if req.assertion == "" {
		return errMissingParam("subject_token")
	}
	switch t := form.Get("subject_token_type"); t {
	case TokenTypeJWT, TokenTypeIDToken:
	case "":
		return errMissingParam("subject_token_type")
	default:
		return newError(errInvalidRequest, CodeSubjectTokenTypeWrong, "subject_token_type '%s' is not supported; it must be '%s'.", t, TokenTypeJWT)
	}
	if t := form.Get("requested_token_type"); t != "" && t != TokenTypeAccessToken && t != TokenTypeJWT {
		e := newError(errInvalidRequest, CodeMalformedRequest, "requested_token_type '%s' is not supported; wif issues '%s'.", t, TokenTypeAccessToken)
		return e
	}
	req.scope = form.Get("scope")
	// RFC 8693 names the target by resource or audience; Entra clients by
	// scope. Exactly one target.
	targets := 0
	for _, p := range []string{"scope", "resource", "audience"} {
		if form.Get(p) != "" {
			targets++
		}
	}
	if targets > 1 {
		e := errScope("Give the target as one of 'scope', 'resource' or 'audience', not several.")
		e.Err = errInvalidTarget
		return e
	}
	switch {
	case req.scope != "":
		res, e := resourceFromScope(req.scope)
		if e != nil {
			e.Err = errInvalidTarget
			return e
		}
		req.resource = res
	case form.Get("resource") != "":
		req.resource = strings.TrimSpace(form.Get("resource"))
	case form.Get("audience") != "":
		req.resource = strings.TrimSpace(form.Get("audience"))
	default:
		return errMissingParam("scope")
	}
	return nil
}

// resourceFromScope takes a v2 scope parameter — RESOURCE/.default plus any
// of the OIDC scopes MSAL adds — and returns RESOURCE.
func resourceFromScope(scope string) (string, *Error) {
	if strings.TrimSpace(scope) == "" {
		return "", newError(errInvalidRequest, CodeMissingParameter, "The request body must contain the following parameter: 'scope'.").
			withHint("ask for RESOURCE/.default, for example api://provider-api/.default")
	}
	var resources []string
	for _, s := range strings.Fields(scope) {
		if oidcScopes[s] {
			continue
		}
		resources = append(resources, s)
	}
	switch {
	case len(resources) == 0:
		return "", errScope("The scope '%s' names no resource.", scope).withHint("ask for RESOURCE/.default, for example api://provider-api/.default")
	case len(resources) > 1:
		return "", errScope("The scope '%s' names several resources; a client credential request is for exactly one.", scope).
			withHint("request one token per resource")
	}
	s := resources[0]
	res, ok := strings.CutSuffix(s, "/.default")
	if !ok || res == "" {
		return "", errScope("The scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", s).
			withHint("use %s/.default", strings.TrimRight(s, "/"))
	}
	return res, nil
}
