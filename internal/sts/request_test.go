package sts

import (
	"net/url"
	"strings"
	"testing"
)

const formCT = "application/x-www-form-urlencoded"

func TestParseTokenRequest(t *testing.T) {
	base := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {"c0ffee00-0000-0000-0000-000000000001"},
		"client_assertion_type": {AssertionTypeJWTBearer},
		"client_assertion":      {"a.b.c\n"},
		"scope":                 {"api://provider-api/.default openid offline_access profile"},
		"client_info":           {"1"},
		"claims":                {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
		"x-client-SKU":          {"msal.js.node"},
	}
	with := func(mod func(v url.Values)) string {
		v := url.Values{}
		for k, vs := range base {
			v[k] = append([]string(nil), vs...)
		}
		mod(v)
		return v.Encode()
	}
	tests := []struct {
		name         string
		ct           string
		body         string
		endpoint     int
		wantErr      string
		wantCode     int
		wantResource string
	}{
		{name: "msal go v2 request", ct: formCT, body: with(func(url.Values) {}), endpoint: 2, wantResource: "api://provider-api"},
		{name: "content type with charset", ct: formCT + "; charset=utf-8", body: with(func(url.Values) {}), endpoint: 2, wantResource: "api://provider-api"},
		{name: "json body", ct: "application/json", body: `{"grant_type":"client_credentials"}`, endpoint: 2, wantErr: "invalid_request", wantCode: CodeMalformedRequest},
		{name: "no grant type", ct: formCT, body: with(func(v url.Values) { v.Del("grant_type") }), endpoint: 2, wantErr: "invalid_request", wantCode: CodeMissingParameter},
		{name: "password grant", ct: formCT, body: with(func(v url.Values) { v.Set("grant_type", "password") }), endpoint: 2, wantErr: "unsupported_grant_type", wantCode: CodeUnsupportedGrant},
		{name: "no client id", ct: formCT, body: with(func(v url.Values) { v.Del("client_id") }), endpoint: 2, wantErr: "invalid_request", wantCode: CodeMissingParameter},
		{name: "secret", ct: formCT, body: with(func(v url.Values) { v.Del("client_assertion"); v.Set("client_secret", "x") }), endpoint: 2, wantErr: "invalid_client", wantCode: CodeClientSecretRefused},
		{name: "no assertion", ct: formCT, body: with(func(v url.Values) { v.Del("client_assertion") }), endpoint: 2, wantErr: "invalid_client", wantCode: CodeMissingAssertion},
		{name: "wrong assertion type", ct: formCT, body: with(func(v url.Values) { v.Set("client_assertion_type", "saml") }), endpoint: 2, wantErr: "invalid_request", wantCode: CodeAssertionTypeInvalid},
		{name: "repeated scope", ct: formCT, body: with(func(v url.Values) { v.Add("scope", "api://other/.default") }), endpoint: 2, wantErr: "invalid_request", wantCode: CodeMalformedRequest},
		{name: "no scope", ct: formCT, body: with(func(v url.Values) { v.Del("scope") }), endpoint: 2, wantErr: "invalid_request", wantCode: CodeMissingParameter},
		{name: "only oidc scopes", ct: formCT, body: with(func(v url.Values) { v.Set("scope", "openid profile") }), endpoint: 2, wantErr: "invalid_scope", wantCode: CodeInvalidScope},
		{name: "scope without .default", ct: formCT, body: with(func(v url.Values) { v.Set("scope", "api://provider-api/Data.Read") }), endpoint: 2, wantErr: "invalid_scope", wantCode: CodeInvalidScope},
		{name: "two resources", ct: formCT, body: with(func(v url.Values) { v.Set("scope", "api://a/.default api://b/.default") }), endpoint: 2, wantErr: "invalid_scope", wantCode: CodeInvalidScope},
		{name: "v1 resource", ct: formCT, body: with(func(v url.Values) { v.Del("scope"); v.Set("resource", "api://provider-api") }), endpoint: 1, wantResource: "api://provider-api"},
		{name: "v1 without resource", ct: formCT, body: with(func(v url.Values) { v.Del("scope") }), endpoint: 1, wantErr: "invalid_request", wantCode: CodeMissingParameter},
		{name: "too large", ct: formCT, body: strings.Repeat("a", maxRequestBody+1), endpoint: 2, wantErr: "invalid_request", wantCode: CodeMalformedRequest},
		{name: "bad encoding", ct: formCT, body: "a=%zz", endpoint: 2, wantErr: "invalid_request", wantCode: CodeMalformedRequest},
		{name: "token exchange", ct: formCT, endpoint: 2, wantResource: "api://provider-api", body: url.Values{
			"grant_type": {GrantTokenExchange}, "client_id": {"x"}, "subject_token": {"a.b.c"},
			"subject_token_type": {TokenTypeJWT}, "resource": {"api://provider-api"}}.Encode()},
		{name: "token exchange audience", ct: formCT, endpoint: 2, wantResource: "api://provider-api", body: url.Values{
			"grant_type": {GrantTokenExchange}, "client_id": {"x"}, "subject_token": {"a.b.c"},
			"subject_token_type": {TokenTypeJWT}, "audience": {"api://provider-api"}}.Encode()},
		{name: "token exchange wrong type", ct: formCT, endpoint: 2, wantErr: "invalid_request", wantCode: CodeSubjectTokenTypeWrong, body: url.Values{
			"grant_type": {GrantTokenExchange}, "client_id": {"x"}, "subject_token": {"a.b.c"},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}, "resource": {"api://provider-api"}}.Encode()},
		{name: "token exchange two targets", ct: formCT, endpoint: 2, wantErr: "invalid_target", wantCode: CodeInvalidScope, body: url.Values{
			"grant_type": {GrantTokenExchange}, "client_id": {"x"}, "subject_token": {"a.b.c"},
			"subject_token_type": {TokenTypeJWT}, "resource": {"api://a"}, "scope": {"api://b/.default"}}.Encode()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, e := parseTokenRequest(tc.ct, []byte(tc.body), url.Values{}, tc.endpoint)
			if tc.wantErr != "" {
				if e == nil {
					t.Fatalf("parse succeeded; want %s (AADSTS%d)", tc.wantErr, tc.wantCode)
				}
				if e.Err != tc.wantErr || e.Code != tc.wantCode {
					t.Fatalf("got %s (AADSTS%d) %q; want %s (AADSTS%d)", e.Err, e.Code, e.Description, tc.wantErr, tc.wantCode)
				}
				return
			}
			if e != nil {
				t.Fatalf("parse: %v", e)
			}
			if req.resource != tc.wantResource {
				t.Errorf("resource = %q, want %q", req.resource, tc.wantResource)
			}
			if req.grantType == GrantClientCredentials && req.assertion != "a.b.c" {
				t.Errorf("assertion = %q, want the trimmed token", req.assertion)
			}
		})
	}
}

func TestClientRequestIDFromQuery(t *testing.T) {
	body := url.Values{"grant_type": {"client_credentials"}, "client_id": {"x"}, "client_assertion_type": {AssertionTypeJWTBearer},
		"client_assertion": {"a.b.c"}, "scope": {"api://x/.default"}}.Encode()
	req, e := parseTokenRequest(formCT, []byte(body), url.Values{"client-request-id": {"abc"}}, 2)
	if e != nil {
		t.Fatal(e)
	}
	if req.clientRequestID != "abc" {
		t.Fatalf("clientRequestID = %q, want abc (msal-node sends it in the query)", req.clientRequestID)
	}
}

func FuzzParseTokenRequest(f *testing.F) {
	f.Add(formCT, "grant_type=client_credentials&client_id=x&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c&scope=api%3A%2F%2Fx%2F.default", 2)
	f.Add(formCT, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&client_id=x&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&audience=api%3A%2F%2Fx", 2)
	f.Add("application/json", "{}", 1)
	f.Fuzz(func(t *testing.T, ct, body string, endpoint int) {
		ep := 1 + (endpoint & 1)
		req, e := parseTokenRequest(ct, []byte(body), url.Values{}, ep)
		if (req == nil) == (e == nil) && e == nil {
			t.Fatal("neither a request nor an error")
		}
		if e != nil {
			if e.Status != 400 && e.Status != 401 {
				t.Fatalf("status %d for a malformed request; want 400 or 401", e.Status)
			}
			if e.Code == 0 || e.Err == "" {
				t.Fatalf("error without code: %+v", e)
			}
			return
		}
		if req.resource == "" || req.clientID == "" || req.assertion == "" {
			t.Fatalf("accepted request lacks resource, client or assertion: %+v", req)
		}
	})
}
