package imds

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode"
)

// protocol is the managed-identity protocol a request speaks.
type protocol string

const (
	protoIMDS       protocol = "imds"       // GET /metadata/identity/oauth2/token, Metadata: true
	protoAppService protocol = "appservice" // GET /msi/token?api-version=2019-08-01, X-IDENTITY-HEADER
	// protoAppService2017 is App Service's older protocol, which az and
	// every msrestazure client speak: GET $MSI_ENDPOINT?api-version=2017-09-01
	// &resource=R[&clientid=ID], header secret: $MSI_SECRET.
	protoAppService2017 protocol = "appservice2017"
	// protoMSIPost is the form POST msrestazure sends to MSI_ENDPOINT
	// outside App Service (the VM extension's and Cloud Shell's protocol):
	// resource=R[&client_id=ID], header Metadata: true.
	protoMSIPost protocol = "msipost"
	protoOther   protocol = "other" // anything else (404)
)

// APIVersion2017 is the App Service protocol version that az and the
// msrestazure library send.
const APIVersion2017 = "2017-09-01"

// Paths served.
const (
	// IMDSTokenPath is the IMDS token endpoint (matched case-insensitively,
	// as IMDS does).
	IMDSTokenPath = "/metadata/identity/oauth2/token"
	// AppServiceTokenPath is the App Service token endpoint: IDENTITY_ENDPOINT
	// is http://<listen address>/msi/token.
	AppServiceTokenPath = "/msi/token"
	// IdentityHeaderName carries IDENTITY_HEADER on App Service requests.
	IdentityHeaderName = "X-IDENTITY-HEADER"
)

const (
	maxResourceLen = 1024
	maxClientIDLen = 128
	maxFormBody    = 16 << 10
)

// SecretHeaderName carries MSI_SECRET on App Service 2017-09-01 requests.
const SecretHeaderName = "Secret"

// tokenRequest is a parsed, validated token request.
type tokenRequest struct {
	resource string // as given
	scope    string // resource + "/.default"
	clientID string // the identity to act as (the configured one, or the request's)
}

// identityParams are the query parameters that select a user-assigned
// identity by something other than its client id. wif imds holds one
// workload's federated token, so only client_id can be honoured.
var identityParams = []string{"object_id", "principal_id", "msi_res_id", "mi_res_id"}

// singleParams may appear at most once.
var singleParams = []string{"resource", "client_id", "clientid", "api-version", "object_id", "principal_id", "msi_res_id", "mi_res_id"}

// parseTokenRequest validates a token request's method, headers and query.
// The App Service identity header is checked by the caller, before this.
// configuredClientID is the workload's client id ("" = take client_id from
// the request).
func parseTokenRequest(r *http.Request, p protocol, configuredClientID string) (tokenRequest, *apiError) {
	want := http.MethodGet
	if p == protoMSIPost {
		want = http.MethodPost
	}
	if r.Method != want {
		return tokenRequest{}, &apiError{status: http.StatusMethodNotAllowed, code: "invalid_request",
			desc: fmt.Sprintf("method %s is not allowed on the token endpoint; use GET", sanitize(r.Method, 16))}
	}
	if p == protoIMDS || p == protoMSIPost {
		// Like IMDS itself: the header proves the caller meant to ask the
		// metadata service, so a server-side request forgery cannot obtain
		// tokens (forwarded requests and foreign Host names are refused
		// before, by checkCaller).
		if v := r.Header.Values("Metadata"); len(v) != 1 || !strings.EqualFold(strings.TrimSpace(v[0]), "true") {
			return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
				desc: "Required metadata header not specified: send the header 'Metadata: true' (it protects the endpoint from server-side request forgery)"}
		}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: fmt.Sprintf("the query string is malformed (%v); send resource=<URL-encoded resource>", err)}
	}
	if p == protoMSIPost {
		if q, err = readForm(r); err != nil {
			return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
				desc: fmt.Sprintf("the request body is not a form of at most %d bytes (%v); send resource=<URL-encoded resource> as application/x-www-form-urlencoded", maxFormBody, err)}
		}
	}
	if p == protoAppService2017 && q.Get("clientid") != "" {
		if q.Get("client_id") != "" {
			return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
				desc: "both clientid and client_id are given; give one"}
		}
		q.Set("client_id", q.Get("clientid"))
	}
	for _, name := range singleParams {
		if n := len(q[name]); n > 1 {
			return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
				desc: fmt.Sprintf("the %s parameter is given %d times; give it once", name, n)}
		}
	}
	resource := q.Get("resource")
	switch {
	case resource == "":
		return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: "Required audience parameter not specified: add resource=<App ID URI or URL of the API the token is for>, e.g. resource=https://vault.azure.net"}
	case len(resource) > maxResourceLen:
		return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: fmt.Sprintf("the resource parameter is %d bytes long; at most %d are accepted", len(resource), maxResourceLen)}
	case hasSpaceOrControl(resource):
		return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: fmt.Sprintf("the resource parameter %q contains white space or control characters; send the resource's App ID URI or URL", sanitize(resource, 200))}
	}
	for _, name := range identityParams {
		if v := q.Get(name); v != "" {
			return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
				desc: fmt.Sprintf("selecting the identity by %s is not supported: this endpoint holds the federated token of one workload%s; remove %s%s",
					name, clientIDClause(configuredClientID), name, useClientIDClause(configuredClientID))}
		}
	}
	clientID := q.Get("client_id")
	switch {
	case configuredClientID != "" && clientID != "" && !strings.EqualFold(clientID, configuredClientID):
		return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: fmt.Sprintf("client_id %q is not this workload's identity: this endpoint holds the federated token of one workload (client id %s) and can get tokens only for it; remove client_id or set it to %s",
				sanitize(clientID, maxClientIDLen), configuredClientID, configuredClientID)}
	case configuredClientID != "":
		clientID = configuredClientID
	case clientID == "":
		return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: "no identity to act as: add client_id=<the managed identity's client id> to the request, or start wif imds with --client-id (AZURE_CLIENT_ID)"}
	case len(clientID) > maxClientIDLen || hasSpaceOrControl(clientID):
		return tokenRequest{}, &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: fmt.Sprintf("client_id %q is not a client id; send the managed identity's client id (a GUID)", sanitize(clientID, maxClientIDLen))}
	}
	return tokenRequest{resource: resource, scope: scopeFor(resource), clientID: strings.ToLower(clientID)}, nil
}

// scopeFor turns an IMDS resource into a v2 scope the way the Azure Workload
// Identity proxy does: append "/.default" unless it is there already. A
// trailing '/' is kept: Entra takes everything before the last '/' as the
// resource, so "https://management.azure.com/" becomes
// "https://management.azure.com//.default" and the token's audience keeps
// its slash, as the caller asked.
func scopeFor(resource string) string {
	if strings.HasSuffix(resource, "/.default") {
		return resource
	}
	return resource + "/.default"
}

func clientIDClause(id string) string {
	if id == "" {
		return ""
	}
	return " (client id " + id + ")"
}

func useClientIDClause(id string) string {
	if id == "" {
		return " and select the identity with client_id"
	}
	return " (or use client_id=" + id + ")"
}

func hasSpaceOrControl(s string) bool {
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return true
		}
	}
	return false
}

// sanitize bounds a caller-supplied string before it is echoed in a message.
func sanitize(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// readForm reads a bounded application/x-www-form-urlencoded body.
func readForm(r *http.Request) (url.Values, error) {
	if mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
		return nil, fmt.Errorf("Content-Type is %q", sanitize(r.Header.Get("Content-Type"), 64))
	}
	if r.Body == nil {
		return url.Values{}, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxFormBody {
		return nil, fmt.Errorf("it is larger")
	}
	return url.ParseQuery(string(body))
}
