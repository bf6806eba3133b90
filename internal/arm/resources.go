package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

// API versions Resource Manager's surface accepts, per resource provider:
// those the current tools send (az 2.45 sends 2022-01-31-preview for
// identities and 2021-04-01 for groups; armmsi 2024-11-30; go-azure-sdk's
// managedidentity packages 2023-01-31 and 2024-11-30), newest first, as
// ARM lists them in InvalidApiVersionParameter.
var (
	identityVersions = []string{"2025-01-31-preview", "2024-11-30", "2023-07-31-preview", "2023-01-31", "2022-01-31-preview", "2021-09-30-preview", "2018-11-30", "2015-08-31-preview"}
	// Federated credentials came with 2022-01-31-preview.
	credentialVersions   = identityVersions[:5]
	groupVersions        = []string{"2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-09-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-08-01", "2020-06-01", "2019-10-01", "2019-08-01", "2019-07-01", "2019-05-10", "2019-05-01", "2018-05-01", "2018-02-01", "2017-05-10", "2016-09-01", "2016-02-01", "2015-11-01"}
	subscriptionVersions = []string{"2022-12-01", "2022-01-01", "2021-01-01", "2020-01-01", "2019-11-01", "2019-06-01", "2018-06-01", "2016-06-01"}
)

// maxBodyBytes bounds a Resource Manager request body.
const maxBodyBytes = 1 << 20

// The resource provider wif serves.
const (
	providerNamespace = "Microsoft.ManagedIdentity"
	identitiesType    = "userAssignedIdentities"
	credentialsType   = "federatedIdentityCredentials"
)

// armPath is a Resource Manager path below /subscriptions/, parsed
// case-insensitively as ARM does.
type armPath struct {
	sub, group, identity, credential string
	// kind: "subscription", "groups", "group", "identities",
	// "subIdentities", "identity", "credentials", "credential",
	// "provider".
	kind string
}

// parsePath parses the segments after /subscriptions/. ok is false for a
// path that names nothing wif serves.
func parsePath(segs []string) (p armPath, ok bool) {
	eq := strings.EqualFold
	n := len(segs)
	if n == 0 || segs[0] == "" {
		return p, false
	}
	p.sub = segs[0]
	switch {
	case n == 1:
		p.kind = "subscription"
	case n == 2 && eq(segs[1], "resourceGroups"):
		p.kind = "groups"
	case n == 3 && eq(segs[1], "resourceGroups"):
		p.group, p.kind = segs[2], "group"
	case n == 4 && eq(segs[1], "resourceGroups") && eq(segs[3], "resources"):
		p.group, p.kind = segs[2], "groupResources"
	case n == 2 && eq(segs[1], "resources"):
		p.kind = "subResources"
	case n == 3 && eq(segs[1], "providers") && eq(segs[2], providerNamespace):
		p.kind = "provider"
	case n == 4 && eq(segs[1], "providers") && eq(segs[2], providerNamespace) && eq(segs[3], identitiesType):
		p.kind = "subIdentities"
	case n >= 6 && eq(segs[1], "resourceGroups") && eq(segs[3], "providers") && eq(segs[4], providerNamespace) && eq(segs[5], identitiesType):
		p.group = segs[2]
		switch {
		case n == 6:
			p.kind = "identities"
		case n == 7:
			p.identity, p.kind = segs[6], "identity"
		case n == 8 && eq(segs[7], credentialsType):
			p.identity, p.kind = segs[6], "credentials"
		case n == 9 && eq(segs[7], credentialsType):
			p.identity, p.credential, p.kind = segs[6], segs[8], "credential"
		default:
			return p, false
		}
	default:
		return p, false
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return p, false
		}
	}
	return p, true
}

// resourceType is what p names, in ARM's words (for messages).
func (p armPath) resourceType() string {
	switch p.kind {
	case "identity", "identities", "subIdentities":
		return providerNamespace + "/" + identitiesType
	case "credential", "credentials":
		return providerNamespace + "/" + identitiesType + "/" + credentialsType
	}
	return "Microsoft.Resources/resourceGroups"
}

// versions are the API versions the resource type of p accepts.
func (p armPath) versions() []string {
	switch p.kind {
	case "subscription":
		return subscriptionVersions
	case "groups", "group", "groupResources", "subResources":
		return groupVersions
	case "credential", "credentials":
		return credentialVersions
	}
	return identityVersions
}

// Resources serves everything below /subscriptions/: resource groups,
// user-assigned identities and their federated credentials, each request
// mapped onto the admin API's operations.
func (h *Handler) Resources(w http.ResponseWriter, r *http.Request) {
	raw := strings.TrimPrefix(r.URL.EscapedPath(), "/subscriptions/")
	var segs []string
	for _, s := range strings.Split(raw, "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "InvalidRequestUri", "the request path is not a valid URI path")
			return
		}
		segs = append(segs, u)
	}
	p, ok := parsePath(segs)
	if !ok {
		writeError(w, r, http.StatusNotFound, "InvalidResourceType", "Resource Manager on wif serves resource groups and "+providerNamespace+"/"+identitiesType+" (with their "+credentialsType+") only; see the README's Resource Manager section")
		return
	}
	version, ok := apiVersion(w, r)
	if !ok {
		return
	}
	if !slices.Contains(p.versions(), version) {
		writeError(w, r, http.StatusBadRequest, "InvalidApiVersionParameter", fmt.Sprintf("The api-version '%s' is invalid. The supported versions are '%s'.", clip(version, 40), strings.Join(p.versions(), ",")))
		return
	}
	if !directory.IsGUID(p.sub) {
		writeError(w, r, http.StatusBadRequest, "InvalidSubscriptionId", fmt.Sprintf("The provided subscription identifier '%s' is malformed or invalid.", clip(p.sub, 64)))
		return
	}
	c, ok := h.identify(w, r)
	if !ok {
		return
	}
	tid, ok := h.tenantOf(w, r, c)
	if !ok {
		return
	}
	op := operation{h: h, w: w, r: r, p: p, tid: tid, c: c}
	op.serve()
}

// tenantOf is the tenant a request acts in (admin.CallerTenant).
func (h *Handler) tenantOf(w http.ResponseWriter, r *http.Request, c admin.Caller) (string, bool) {
	tid, err := admin.CallerTenant(r.Context(), h.cfg.Store, c)
	if errors.Is(err, admin.ErrNoTenant) {
		writeError(w, r, http.StatusUnauthorized, "AuthenticationFailed", "Resource Manager takes the tenant from the bearer token's tid claim: send a token (az login, or the SDK's credential)")
		return "", false
	}
	if err != nil {
		h.fail(w, r, err)
		return "", false
	}
	return tid, true
}

// operation is one Resource Manager request being served.
type operation struct {
	h   *Handler
	w   http.ResponseWriter
	r   *http.Request
	p   armPath
	tid string
	c   admin.Caller
}

func (o *operation) serve() {
	m := o.r.Method
	switch o.p.kind {
	case "subscription":
		if o.only(m, "GET") {
			o.subscription()
		}
	case "provider":
		if o.only(m, "GET") {
			o.provider()
		}
	case "groups":
		if o.only(m, "GET") {
			o.list(o.subPath("resourceGroups"))
		}
	case "group":
		if !o.only(m, "GET", "HEAD", "PUT", "PATCH", "DELETE") {
			return
		}
		switch m {
		case "HEAD":
			res := o.call("GET", o.groupPath(), nil, false)
			if res.Status == http.StatusNotFound {
				o.head(http.StatusNotFound)
			} else if res.OK() {
				o.head(http.StatusNoContent)
			} else {
				o.fail(res)
			}
		case "GET":
			o.pass(o.call("GET", o.groupPath(), nil, false))
		case "PUT", "PATCH":
			if in, ok := o.locationAndTags(m == "PUT"); ok {
				o.pass(o.call(m, o.groupPath(), in, true))
			}
		case "DELETE":
			o.deleteGroup()
		}
	case "groupResources":
		// What a group holds, as generic resources: what Terraform's
		// azurerm checks before it deletes a group, and az resource list.
		if o.only(m, "GET") && o.groupMustExist() {
			o.genericList(o.groupPath("providers", providerNamespace, identitiesType))
		}
	case "subResources":
		if o.only(m, "GET") {
			o.genericList(o.subPath("providers", providerNamespace, identitiesType))
		}
	case "identities":
		if o.only(m, "GET") && o.groupMustExist() {
			o.list(o.groupPath("providers", providerNamespace, identitiesType))
		}
	case "subIdentities":
		if o.only(m, "GET") {
			o.list(o.subPath("providers", providerNamespace, identitiesType))
		}
	case "identity":
		if !o.only(m, "GET", "PUT", "PATCH", "DELETE") || !o.groupMustExist() {
			return
		}
		path := o.identityPath()
		switch m {
		case "GET":
			o.pass(o.call("GET", path, nil, false))
		case "PUT", "PATCH":
			if in, ok := o.locationAndTags(m == "PUT"); ok {
				o.pass(o.call(m, path, in, true))
			}
		case "DELETE":
			o.delete(path)
		}
	case "credentials":
		if o.only(m, "GET") && o.groupMustExist() {
			o.list(append(o.identityPath(), credentialsType))
		}
	case "credential":
		if !o.only(m, "GET", "PUT", "DELETE") || !o.groupMustExist() {
			return
		}
		path := append(o.identityPath(), credentialsType, o.p.credential)
		switch m {
		case "GET":
			o.pass(o.call("GET", path, nil, false))
		case "PUT":
			body, ok := o.body()
			if !ok {
				return
			}
			var in struct {
				Properties *struct {
					Issuer                   string          `json:"issuer"`
					Subject                  string          `json:"subject"`
					Audiences                []string        `json:"audiences"`
					ClaimsMatchingExpression json.RawMessage `json:"claimsMatchingExpression,omitempty"`
				} `json:"properties"`
			}
			if !o.decode(body, &in) {
				return
			}
			if in.Properties == nil {
				writeError(o.w, o.r, http.StatusBadRequest, "InvalidRequestContent", "The request content must hold properties: {\"issuer\", \"subject\", \"audiences\"}.")
				return
			}
			o.pass(o.call("PUT", path, map[string]any{"properties": in.Properties}, true))
		case "DELETE":
			o.delete(path)
		}
	}
}

// only answers 405 unless the method is one of allowed.
func (o *operation) only(method string, allowed ...string) bool {
	if slices.Contains(allowed, method) {
		return true
	}
	o.w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(o.w, o.r, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("The method '%s' is not allowed on '%s'; allowed: %s.", method, o.p.resourceType(), strings.Join(allowed, ", ")))
	return false
}

func (o *operation) subPath(more ...string) []string {
	return append([]string{"tenants", o.tid, "subscriptions", o.p.sub}, more...)
}

func (o *operation) groupPath(more ...string) []string {
	return append(o.subPath("resourceGroups", o.p.group), more...)
}

func (o *operation) identityPath() []string {
	return o.groupPath("providers", providerNamespace, identitiesType, o.p.identity)
}

func (o *operation) call(method string, path []string, body any, conditional bool) admin.Result {
	q := url.Values{}
	for _, k := range []string{"$top", "$skipToken"} {
		if v := o.r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	return o.h.cfg.Admin.Call(o.r, method, path, q, body, conditional)
}

// body reads the request body, bounded.
func (o *operation) body() ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(o.w, o.r.Body, maxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(o.w, o.r, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", fmt.Sprintf("The request content is larger than %d bytes.", maxBodyBytes))
		return nil, false
	case err != nil:
		writeError(o.w, o.r, http.StatusBadRequest, "InvalidRequestContent", "The request content could not be read.")
		return nil, false
	}
	return b, true
}

// decode parses a body leniently (ARM clients send read-only and newer
// properties wif has no use for), but it must be one JSON object.
func (o *operation) decode(body []byte, v any) bool {
	if err := json.Unmarshal(body, v); err != nil {
		writeError(o.w, o.r, http.StatusBadRequest, "InvalidRequestContent", "The request content was invalid and could not be deserialized: "+clip(err.Error(), 200))
		return false
	}
	return true
}

// locationAndTags reads a group's or an identity's PUT or PATCH body into
// the admin API's: only what a caller may set (ids and tenant are
// read-only in ARM, and ignored as ARM ignores them; so are newer
// properties wif has no use for). A PUT needs a location, as ARM's.
func (o *operation) locationAndTags(put bool) (map[string]any, bool) {
	body, ok := o.body()
	if !ok {
		return nil, false
	}
	// Tags must be a JSON object of strings (anything else is refused by
	// decode, not dropped); absent or null is none — no change for a
	// PATCH, none for a PUT.
	var in struct {
		Location *string           `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	if !o.decode(body, &in) {
		return nil, false
	}
	if put && (in.Location == nil || *in.Location == "") {
		writeError(o.w, o.r, http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.")
		return nil, false
	}
	out := map[string]any{"tags": in.Tags}
	if in.Location != nil {
		out["location"] = *in.Location
	}
	return out, true
}

// groupMustExist answers ResourceGroupNotFound unless the request's group
// exists, as ARM does before any request for a resource in it.
func (o *operation) groupMustExist() bool {
	res := o.call("GET", o.groupPath(), nil, false)
	if res.OK() {
		return true
	}
	if res.Status == http.StatusNotFound && !strings.HasPrefix(res.Error().Message, "tenant ") {
		o.groupNotFound()
		return false
	}
	o.fail(res)
	return false
}

func (o *operation) groupNotFound() {
	writeError(o.w, o.r, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", o.p.group))
}

// pass answers a successful admin result as it is (the admin API's
// resources already have ARM's envelope) and maps a failure.
func (o *operation) pass(res admin.Result) {
	if !res.OK() {
		o.fail(res)
		return
	}
	if res.Status == http.StatusNoContent {
		o.head(http.StatusNoContent)
		return
	}
	var v map[string]any
	if err := res.Decode(&v); err != nil {
		o.h.fail(o.w, o.r, fmt.Errorf("decode the admin API's answer: %w", err))
		return
	}
	stripExtensions(v)
	if et := res.Header.Get("ETag"); et != "" {
		o.w.Header().Set("ETag", et)
	}
	writeJSON(o.w, o.r, res.Status, v)
}

// list answers one page of a collection, its nextLink on this surface.
func (o *operation) list(path []string) {
	res := o.call("GET", path, nil, false)
	if !res.OK() {
		o.fail(res)
		return
	}
	var page struct {
		Value    []map[string]any `json:"value"`
		NextLink string           `json:"nextLink"`
	}
	if err := res.Decode(&page); err != nil {
		o.h.fail(o.w, o.r, fmt.Errorf("decode the admin API's list: %w", err))
		return
	}
	out := map[string]any{"value": nonNilList(page.Value)}
	for _, v := range page.Value {
		stripExtensions(v)
	}
	if page.NextLink != "" {
		if u, err := url.Parse(page.NextLink); err == nil {
			out["nextLink"] = o.h.link(o.r, u.Query().Get("$skipToken"))
		}
	}
	writeJSON(o.w, o.r, http.StatusOK, out)
}

// genericList answers a list of identities as ARM's generic resources
// (id, name, type, location, tags), the only resources wif holds; a
// $filter on resourceType for another type lists none.
func (o *operation) genericList(path []string) {
	if f := o.r.URL.Query().Get("$filter"); f != "" && !strings.Contains(strings.ToLower(f), strings.ToLower(providerNamespace+"/"+identitiesType)) &&
		strings.Contains(strings.ToLower(f), "resourcetype") {
		writeJSON(o.w, o.r, http.StatusOK, map[string]any{"value": []any{}})
		return
	}
	res := o.call("GET", path, nil, false)
	if !res.OK() {
		o.fail(res)
		return
	}
	var page struct {
		Value []struct {
			ID       string            `json:"id"`
			Name     string            `json:"name"`
			Type     string            `json:"type"`
			Location string            `json:"location"`
			Tags     map[string]string `json:"tags,omitempty"`
		} `json:"value"`
		NextLink string `json:"nextLink"`
	}
	if err := res.Decode(&page); err != nil {
		o.h.fail(o.w, o.r, fmt.Errorf("decode the admin API's list: %w", err))
		return
	}
	out := map[string]any{"value": page.Value}
	if page.Value == nil {
		out["value"] = []any{}
	}
	if page.NextLink != "" {
		if u, err := url.Parse(page.NextLink); err == nil {
			out["nextLink"] = o.h.link(o.r, u.Query().Get("$skipToken"))
		}
	}
	writeJSON(o.w, o.r, http.StatusOK, out)
}

// stripExtensions removes what the admin API adds to ARM's envelope: the
// etag (ARM sends none for these types; the ETag header stays) and the
// implicit flag of a group.
func stripExtensions(v map[string]any) {
	delete(v, "etag")
	delete(v, "implicit")
}

func nonNilList(v []map[string]any) []map[string]any {
	if v == nil {
		return []map[string]any{}
	}
	return v
}

// link is the request's URL on this surface with $skipToken set.
func (h *Handler) link(r *http.Request, skipToken string) string {
	q := r.URL.Query()
	q.Set("$skipToken", skipToken)
	u := url.URL{Scheme: "https", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: q.Encode()}
	if r.TLS == nil {
		u.Scheme = "http"
	}
	return u.String()
}

func (o *operation) head(status int) {
	writeHeaders(o.w, o.r)
	o.w.WriteHeader(status)
}

// delete deletes a resource: 200 when it was deleted, 204 when there was
// none, as ARM answers.
func (o *operation) delete(path []string) {
	res := o.call("DELETE", path, nil, true)
	switch {
	case res.OK():
		o.head(http.StatusOK)
	case res.Status == http.StatusNotFound:
		o.head(http.StatusNoContent)
	default:
		o.fail(res)
	}
}

// deleteGroup deletes a group and every identity in it, as ARM does; each
// identity is deleted by its own admin operation (so its own refusals
// apply: one still in use stops the group's deletion).
func (o *operation) deleteGroup() {
	if !o.groupMustExist() {
		return
	}
	deleted := 0
	for range 1000 { // at most a million identities, a page at a time
		res := o.h.cfg.Admin.Call(o.r, "GET", o.groupPath("providers", providerNamespace, identitiesType), url.Values{"$top": {"1000"}}, nil, false)
		if !res.OK() {
			o.fail(res)
			return
		}
		var page struct {
			Value []struct {
				Name string `json:"name"`
			} `json:"value"`
		}
		if err := res.Decode(&page); err != nil {
			o.h.fail(o.w, o.r, err)
			return
		}
		if len(page.Value) == 0 {
			break
		}
		for _, m := range page.Value {
			if res := o.call("DELETE", o.groupPath("providers", providerNamespace, identitiesType, m.Name), nil, false); !res.OK() && res.Status != http.StatusNotFound {
				o.fail(res)
				return
			}
			deleted++
		}
	}
	res := o.call("DELETE", o.groupPath(), nil, true)
	switch {
	case res.OK(), res.Status == http.StatusNotFound && deleted > 0:
		o.head(http.StatusOK)
	default:
		o.fail(res)
	}
}

// fail answers an admin API refusal in ARM's words.
func (o *operation) fail(res admin.Result) {
	e := res.Error()
	status := res.Status
	code, msg := e.Code, e.Message
	if code == "" {
		code, msg = http.StatusText(status), "the request failed"
	}
	p := o.p
	switch {
	case status == http.StatusNotFound && strings.HasPrefix(msg, "tenant "):
		// The token's tenant is gone: so are its subscriptions.
		code, msg = "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", p.sub)
	case status == http.StatusNotFound && (p.kind == "group" || p.kind == "groups"):
		code, msg = "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", p.group)
	case status == http.StatusNotFound && p.kind == "credential" && !strings.HasPrefix(msg, "the managed identity "):
		code, msg = "ResourceNotFound", fmt.Sprintf("The Resource '%s/%s/%s/%s/%s' under resource group '%s' was not found.", providerNamespace, identitiesType, p.identity, credentialsType, p.credential, p.group)
	case status == http.StatusNotFound && p.identity != "":
		code, msg = "ResourceNotFound", fmt.Sprintf("The Resource '%s/%s/%s' under resource group '%s' was not found.", providerNamespace, identitiesType, p.identity, p.group)
	case code == admin.CodeQuotaExceeded:
		code, msg = "QuotaExceeded", fmt.Sprintf("A maximum of %d federated identity credentials can be added to a user-assigned managed identity; '%s' already has that many.", directory.MaxCredentialsPerParent, p.identity)
	case code == admin.CodeValidation:
		code = "BadRequest"
	case status == http.StatusUnauthorized:
		o.w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s/common/oauth2/authorize", error="invalid_token", error_description="the access token is missing or invalid"`, o.h.cfg.PublicURL))
	case status == http.StatusServiceUnavailable:
		o.w.Header().Set("Retry-After", "5")
	}
	body := map[string]any{"code": code, "message": msg}
	if e.Target != "" {
		body["target"] = e.Target
	}
	if len(e.Details) > 0 {
		body["details"] = e.Details
	}
	writeJSON(o.w, o.r, status, map[string]any{"error": body})
}

// subscription answers GET /subscriptions/{s} for a subscription the
// caller may see.
func (o *operation) subscription() {
	subs, err := o.h.visibleSubscriptions(o.r, o.c)
	if err != nil {
		o.h.fail(o.w, o.r, err)
		return
	}
	for _, s := range subs {
		if strings.EqualFold(s.SubscriptionID, o.p.sub) {
			writeJSON(o.w, o.r, http.StatusOK, s)
			return
		}
	}
	writeError(o.w, o.r, http.StatusNotFound, "SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", o.p.sub))
}

// provider answers the registration of Microsoft.ManagedIdentity, which
// Terraform's azurerm provider checks: always registered.
func (o *operation) provider() {
	types := []map[string]any{}
	for _, t := range []string{identitiesType, identitiesType + "/" + credentialsType} {
		types = append(types, map[string]any{"resourceType": t, "locations": []string{}, "apiVersions": identityVersions})
	}
	writeJSON(o.w, o.r, http.StatusOK, map[string]any{
		"id": "/subscriptions/" + o.p.sub + "/providers/" + providerNamespace, "namespace": providerNamespace,
		"registrationState": "Registered", "registrationPolicy": "RegistrationRequired", "resourceTypes": types,
	})
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
