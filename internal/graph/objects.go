package graph

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
)

// Filterable properties, per entity.
var (
	appProps  = []string{"id", "appId", "displayName"}
	appColls  = []string{"identifierUris"}
	spProps   = []string{"id", "appId", "displayName", "servicePrincipalType"}
	spColls   = []string{"servicePrincipalNames", "alternativeNames"}
	credProps = []string{"id", "name", "issuer", "subject"}
	credColls = []string{"audiences"}
)

// ---- applications ----

// appRoles are an application's roles in Graph's shape.
func appRoles(rs []admin.AppRoleResource) []map[string]any {
	out := []map[string]any{}
	for _, r := range rs {
		en := r.IsEnabled == nil || *r.IsEnabled
		types := r.AllowedMemberTypes
		if types == nil {
			types = []string{}
		}
		out = append(out, map[string]any{"id": r.ID, "value": r.Value, "displayName": r.DisplayName, "description": r.Description,
			"allowedMemberTypes": types, "isEnabled": en, "origin": "Application"})
	}
	return out
}

// application is an admin application in Graph's shape.
func application(a admin.ApplicationResource) map[string]any {
	uris := a.IdentifierURIs
	if uris == nil {
		uris = []string{}
	}
	v := a.RequestedAccessTokenVersion
	var ver any
	if v != 0 {
		ver = v
	}
	return map[string]any{
		"id": a.ID, "appId": a.AppID, "displayName": a.DisplayName, "identifierUris": uris, "appRoles": appRoles(a.AppRoles),
		"signInAudience": "AzureADMyOrg", "api": map[string]any{"requestedAccessTokenVersion": ver},
		"publisherDomain": "", "tags": []string{},
	}
}

// servicePrincipalOfApp is an application's service principal.
func servicePrincipalOfApp(tid string, a admin.ApplicationResource) map[string]any {
	names := append([]string{a.AppID}, a.IdentifierURIs...)
	return map[string]any{
		"id": a.ServicePrincipalID, "appId": a.AppID, "displayName": a.DisplayName, "appDisplayName": a.DisplayName,
		"servicePrincipalType": "Application", "servicePrincipalNames": names, "alternativeNames": []string{},
		"appRoles": appRoles(a.AppRoles), "accountEnabled": true, "appOwnerOrganizationId": tid, "tags": []string{},
	}
}

// servicePrincipalOfIdentity is a managed identity's service principal:
// Entra gives each user-assigned identity one, whose appId is the
// identity's client id (what `az ad sp list --display-name` finds).
func servicePrincipalOfIdentity(m admin.IdentityResource) map[string]any {
	var clientID, principalID string
	if m.Properties != nil {
		clientID, principalID = m.Properties.ClientID, m.Properties.PrincipalID
	}
	return map[string]any{
		"id": principalID, "appId": clientID, "displayName": m.Name, "appDisplayName": nil,
		"servicePrincipalType": "ManagedIdentity", "servicePrincipalNames": []string{clientID, "https://identity.azure.net/"},
		"alternativeNames": []string{"isExplicit=True", m.ID}, "appRoles": []map[string]any{}, "accountEnabled": true,
		"appOwnerOrganizationId": nil, "tags": []string{},
	}
}

func (q *request) apps() ([]admin.ApplicationResource, admin.Result, bool) {
	return listAll[admin.ApplicationResource](q, []string{"applications"}, nil)
}

// identities lists the tenant's managed identities; with namePrefix, only
// those whose name starts with it (read by the store, not here).
func (q *request) identities(namePrefix string) ([]admin.IdentityResource, admin.Result, bool) {
	var qs url.Values
	if namePrefix != "" {
		qs = url.Values{"namePrefix": {namePrefix}}
	}
	return listAll[admin.IdentityResource](q, []string{"providers", "Microsoft.ManagedIdentity", "userAssignedIdentities"}, qs)
}

// displayNamePrefix is a prefix every object a filter matches has in its
// displayName ("" when the filter does not say): startswith or eq on
// displayName, alone or and-ed with other clauses. Graph compares it
// case-insensitively, as the store's prefix does.
func displayNamePrefix(f filter) string {
	switch f := f.(type) {
	case swF:
		if f.prop == "displayName" {
			return f.lit
		}
	case cmpF:
		if f.prop == "displayName" && f.op == "eq" {
			return f.lit
		}
	case andF:
		if p := displayNamePrefix(f.l); p != "" {
			return p
		}
		return displayNamePrefix(f.r)
	}
	return ""
}

func (q *request) listApplications() {
	apps, res, ok := q.apps()
	if !ok {
		q.fail(res)
		return
	}
	items := make([]map[string]any, len(apps))
	for i, a := range apps {
		items[i] = application(a)
	}
	if items, ok = q.filtered(items, appProps, appColls); ok {
		q.page("applications", items)
	}
}

// appInput is the part of a Graph application wif keeps.
type appInput struct {
	DisplayName    *string                  `json:"displayName"`
	IdentifierURIs *[]string                `json:"identifierUris"`
	AppRoles       *[]admin.AppRoleResource `json:"appRoles"`
	API            *struct {
		RequestedAccessTokenVersion *int `json:"requestedAccessTokenVersion"`
	} `json:"api"`
}

func (in appInput) admin() map[string]any {
	out := map[string]any{}
	if in.DisplayName != nil {
		out["displayName"] = *in.DisplayName
	}
	if in.IdentifierURIs != nil {
		out["identifierUris"] = *in.IdentifierURIs
	}
	if in.AppRoles != nil {
		out["appRoles"] = *in.AppRoles
	}
	if in.API != nil && in.API.RequestedAccessTokenVersion != nil {
		out["requestedAccessTokenVersion"] = *in.API.RequestedAccessTokenVersion
	}
	return out
}

func (q *request) createApplication() {
	var in appInput
	if !q.body(&in) {
		return
	}
	body := in.admin()
	if _, ok := body["identifierUris"]; !ok {
		body["identifierUris"] = []string{}
	}
	if _, ok := body["appRoles"]; !ok {
		body["appRoles"] = []admin.AppRoleResource{}
	}
	if _, ok := body["displayName"]; !ok {
		writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "A value is required for property 'displayName' of resource 'Application'.")
		return
	}
	answer(q, q.call("POST", []string{"applications"}, nil, body, false), http.StatusCreated, "applications/$entity", application)
}

// findApp resolves an application by object id (id) or appId.
func (q *request) findApp(id, appID string) (admin.ApplicationResource, bool) {
	if appID != "" {
		if !directory.IsGUID(appID) {
			q.notFound(appID)
			return admin.ApplicationResource{}, false
		}
		res := q.call("GET", []string{"applications", appID}, nil, nil, false)
		if !res.OK() {
			if res.Status == http.StatusNotFound {
				q.notFound(appID)
			} else {
				q.fail(res)
			}
			return admin.ApplicationResource{}, false
		}
		var a admin.ApplicationResource
		if err := res.Decode(&a); err != nil {
			q.h.internal(q.w, q.r, err)
			return a, false
		}
		return a, true
	}
	apps, res, ok := q.apps()
	if !ok {
		q.fail(res)
		return admin.ApplicationResource{}, false
	}
	for _, a := range apps {
		if strings.EqualFold(a.ID, id) {
			return a, true
		}
	}
	q.notFound(id)
	return admin.ApplicationResource{}, false
}

func (q *request) application(id, appID string, rest []string) {
	a, ok := q.findApp(id, appID)
	if !ok {
		return
	}
	m := q.r.Method
	if len(rest) == 0 {
		switch m {
		case "GET":
			out := application(a)
			out["@odata.context"] = q.context("applications/$entity")
			writeJSON(q.w, q.r, http.StatusOK, out)
		case "PATCH":
			var in appInput
			if !q.body(&in) {
				return
			}
			if res := q.call("PATCH", []string{"applications", a.AppID}, nil, in.admin(), true); !res.OK() {
				q.fail(res)
				return
			}
			noContent(q.w, q.r)
		case "DELETE":
			if res := q.call("DELETE", []string{"applications", a.AppID}, nil, nil, true); !res.OK() {
				q.fail(res)
				return
			}
			noContent(q.w, q.r)
		default:
			q.methodNotAllowed("GET, PATCH, DELETE")
		}
		return
	}
	if rest[0] != "federatedIdentityCredentials" || len(rest) > 2 {
		q.notFound(strings.Join(rest, "/"))
		return
	}
	base := []string{"applications", a.AppID, "federatedIdentityCredentials"}
	fragment := "applications('" + a.ID + "')/federatedIdentityCredentials"
	if len(rest) == 1 {
		switch m {
		case "GET":
			creds, res, ok := listAll[admin.AppCredentialResource](q, base, nil)
			if !ok {
				q.fail(res)
				return
			}
			items := make([]map[string]any, len(creds))
			for i, c := range creds {
				items[i] = credential(c)
			}
			if items, ok = q.filtered(items, credProps, credColls); ok {
				q.page(fragment, items)
			}
		case "POST":
			var in credInput
			if !q.body(&in) {
				return
			}
			if in.Name == nil || *in.Name == "" {
				writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "A value is required for property 'name' of resource 'FederatedIdentityCredential'.")
				return
			}
			answer(q, q.call("POST", base, nil, in.admin(), false), http.StatusCreated, fragment+"/$entity", credential)
		default:
			q.methodNotAllowed("GET, POST")
		}
		return
	}
	c, ok := q.findCred(base, rest[1])
	if !ok {
		return
	}
	path := append(base, c.Name)
	switch m {
	case "GET":
		out := credential(c)
		out["@odata.context"] = q.context(fragment + "/$entity")
		writeJSON(q.w, q.r, http.StatusOK, out)
	case "PATCH":
		var in credInput
		if !q.body(&in) {
			return
		}
		if in.Name != nil && *in.Name != c.Name {
			writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "Property 'name' is read-only and cannot be changed.")
			return
		}
		merged := map[string]any{"name": c.Name, "issuer": c.Issuer, "subject": c.Subject, "audiences": c.Audiences, "description": c.Description}
		if c.ClaimsMatchingExpression != nil {
			merged["claimsMatchingExpression"] = c.ClaimsMatchingExpression
		}
		for k, v := range in.admin() {
			merged[k] = v
		}
		if res := q.call("PUT", path, nil, merged, true); !res.OK() {
			q.fail(res)
			return
		}
		noContent(q.w, q.r)
	case "DELETE":
		if res := q.call("DELETE", path, nil, nil, true); !res.OK() {
			q.fail(res)
			return
		}
		noContent(q.w, q.r)
	default:
		q.methodNotAllowed("GET, PATCH, DELETE")
	}
}

// ---- federated identity credentials ----

type credInput struct {
	Name                     *string          `json:"name"`
	Issuer                   *string          `json:"issuer"`
	Subject                  *string          `json:"subject"`
	Audiences                *[]string        `json:"audiences"`
	Description              *string          `json:"description"`
	ClaimsMatchingExpression *json.RawMessage `json:"claimsMatchingExpression"`
}

func (in credInput) admin() map[string]any {
	out := map[string]any{}
	set := func(k string, v *string) {
		if v != nil {
			out[k] = *v
		}
	}
	set("name", in.Name)
	set("issuer", in.Issuer)
	set("subject", in.Subject)
	set("description", in.Description)
	if in.Audiences != nil {
		out["audiences"] = *in.Audiences
	}
	if in.ClaimsMatchingExpression != nil {
		out["claimsMatchingExpression"] = in.ClaimsMatchingExpression
	}
	return out
}

func credential(c admin.AppCredentialResource) map[string]any {
	aud := c.Audiences
	if aud == nil {
		aud = []string{}
	}
	out := map[string]any{"id": c.ID, "name": c.Name, "issuer": c.Issuer, "subject": c.Subject, "audiences": aud, "description": nilIfEmpty(c.Description)}
	if c.ClaimsMatchingExpression != nil {
		out["claimsMatchingExpression"] = c.ClaimsMatchingExpression
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// answer writes an admin operation's result as the Graph object toGraph
// makes of it, with its @odata.context, or the operation's failure.
func answer[T any](q *request, res admin.Result, status int, fragment string, toGraph func(T) map[string]any) {
	if !res.OK() {
		q.fail(res)
		return
	}
	var v T
	if err := res.Decode(&v); err != nil {
		q.h.internal(q.w, q.r, err)
		return
	}
	out := toGraph(v)
	out["@odata.context"] = q.context(fragment)
	writeJSON(q.w, q.r, status, out)
}

// findCred resolves a credential by name or id, as Graph takes either.
func (q *request) findCred(base []string, idOrName string) (admin.AppCredentialResource, bool) {
	res := q.call("GET", append(append([]string{}, base...), idOrName), nil, nil, false)
	var c admin.AppCredentialResource
	if res.OK() {
		if err := res.Decode(&c); err != nil {
			q.h.internal(q.w, q.r, err)
			return c, false
		}
		return c, true
	}
	if res.Status != http.StatusNotFound && res.Status != http.StatusBadRequest {
		q.fail(res)
		return c, false
	}
	if directory.IsGUID(idOrName) {
		creds, lres, ok := listAll[admin.AppCredentialResource](q, base, nil)
		if !ok {
			q.fail(lres)
			return c, false
		}
		for _, c := range creds {
			if strings.EqualFold(c.ID, idOrName) {
				return c, true
			}
		}
	}
	q.notFound(idOrName)
	return c, false
}

// ---- service principals ----

// principals are the service principals the caller may read: of the
// tenant's applications and of its managed identities. Either list may be
// refused by the caller's roles (a managed identity contributor reads
// identities only); both refused is the refusal.
func (q *request) principals(namePrefix string) ([]map[string]any, []admin.ApplicationResource, bool) {
	apps, ares, aok := q.apps()
	mis, mres, mok := q.identities(namePrefix)
	if !aok && !mok {
		q.fail(ares)
		return nil, nil, false
	}
	if !aok && ares.Status != http.StatusForbidden {
		q.fail(ares)
		return nil, nil, false
	}
	if !mok && mres.Status != http.StatusForbidden {
		q.fail(mres)
		return nil, nil, false
	}
	var out []map[string]any
	for _, a := range apps {
		out = append(out, servicePrincipalOfApp(q.tid, a))
	}
	for _, m := range mis {
		out = append(out, servicePrincipalOfIdentity(m))
	}
	return out, apps, true
}

func (q *request) listServicePrincipals() {
	// A name in the filter narrows the identities the store reads (a
	// tenant may hold a million): az ad sp list --display-name.
	prefix := ""
	if f, err := parseFilter(q.r.URL.Query().Get("$filter"), spProps, spColls); err == nil {
		prefix = displayNamePrefix(f)
	}
	items, _, ok := q.principals(prefix)
	if !ok {
		return
	}
	if items, ok = q.filtered(items, spProps, spColls); ok {
		q.page("servicePrincipals", items)
	}
}

// createServicePrincipal answers POST {"appId": ...}: every wif
// application has its service principal from the start, so this returns
// it (201, as Graph answers a creation), and an unknown appId is refused
// as Graph refuses it.
func (q *request) createServicePrincipal() {
	var in struct {
		AppID string `json:"appId"`
	}
	if !q.body(&in) {
		return
	}
	if !directory.IsGUID(in.AppID) {
		writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "The appId '"+clip(in.AppID, 40)+"' of the service principal does not reference a valid application object.")
		return
	}
	res := q.call("GET", []string{"applications", in.AppID}, nil, nil, false)
	if res.Status == http.StatusNotFound {
		writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "The appId '"+in.AppID+"' of the service principal does not reference a valid application object.")
		return
	}
	answer(q, res, http.StatusCreated, "servicePrincipals/$entity", func(a admin.ApplicationResource) map[string]any { return servicePrincipalOfApp(q.tid, a) })
}

func (q *request) servicePrincipal(id, appID string, rest []string) {
	sps, apps, ok := q.principals("")
	if !ok {
		return
	}
	var sp map[string]any
	for _, s := range sps {
		if (id != "" && strings.EqualFold(str(s["id"]), id)) || (appID != "" && strings.EqualFold(str(s["appId"]), appID)) {
			sp = s
			break
		}
	}
	if sp == nil {
		q.notFound(id + appID)
		return
	}
	spID := str(sp["id"])
	if len(rest) == 0 {
		if q.r.Method != "GET" {
			q.methodNotAllowed("GET")
			return
		}
		sp["@odata.context"] = q.context("servicePrincipals/$entity")
		writeJSON(q.w, q.r, http.StatusOK, sp)
		return
	}
	// appRoleAssignedTo: assignments of this (resource) principal's
	// roles; appRoleAssignments: those this principal holds.
	kind := rest[0]
	if (kind != "appRoleAssignedTo" && kind != "appRoleAssignments") || len(rest) > 2 {
		q.notFound(strings.Join(rest, "/"))
		return
	}
	fragment := "servicePrincipals('" + spID + "')/" + kind
	names := map[string]string{} // service principal id -> display name
	for _, s := range sps {
		names[strings.ToLower(str(s["id"]))] = str(s["displayName"])
	}
	spOfApp := map[string]string{} // appId -> service principal id
	appOfSP := map[string]string{}
	for _, a := range apps {
		spOfApp[strings.ToLower(a.AppID)] = a.ServicePrincipalID
		appOfSP[strings.ToLower(a.ServicePrincipalID)] = a.AppID
	}
	resourceApp := ""
	if kind == "appRoleAssignedTo" {
		if resourceApp = appOfSP[strings.ToLower(spID)]; resourceApp == "" {
			// A managed identity has no app roles: nothing is assigned to it.
			if q.r.Method == "GET" && len(rest) == 1 {
				q.page(fragment, []map[string]any{})
				return
			}
			writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "The service principal "+spID+" is a managed identity's: it has no app roles to assign.")
			return
		}
	}
	toGraph := func(g admin.AssignmentResource) map[string]any {
		rid := spOfApp[strings.ToLower(g.ResourceAppID)]
		return map[string]any{"id": g.ID, "appRoleId": g.AppRoleID, "createdDateTime": nilIfEmpty(g.CreatedAt), "deletedDateTime": nil,
			"principalId": g.PrincipalID, "principalDisplayName": names[strings.ToLower(g.PrincipalID)], "principalType": "ServicePrincipal",
			"resourceId": rid, "resourceDisplayName": names[strings.ToLower(rid)]}
	}
	if len(rest) == 2 {
		if q.r.Method != "DELETE" {
			q.methodNotAllowed("DELETE")
			return
		}
		// The assignment must be this principal's (held or granted).
		gs, res, ok := q.assignments(kind, spID, resourceApp)
		if !ok {
			q.fail(res)
			return
		}
		for _, g := range gs {
			if strings.EqualFold(g.ID, rest[1]) {
				if res := q.call("DELETE", []string{"appRoleAssignments", g.ID}, nil, nil, false); !res.OK() {
					q.fail(res)
					return
				}
				noContent(q.w, q.r)
				return
			}
		}
		q.notFound(rest[1])
		return
	}
	switch q.r.Method {
	case "GET":
		gs, res, ok := q.assignments(kind, spID, resourceApp)
		if !ok {
			q.fail(res)
			return
		}
		items := make([]map[string]any, len(gs))
		for i, g := range gs {
			items[i] = toGraph(g)
		}
		if items, ok = q.filtered(items, []string{"id", "appRoleId", "principalId", "resourceId", "principalDisplayName", "resourceDisplayName"}, nil); ok {
			q.page(fragment, items)
		}
	case "POST":
		var in struct {
			PrincipalID string `json:"principalId"`
			ResourceID  string `json:"resourceId"`
			AppRoleID   string `json:"appRoleId"`
		}
		if !q.body(&in) {
			return
		}
		if kind == "appRoleAssignments" && !strings.EqualFold(in.PrincipalID, spID) {
			writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "principalId must be the service principal of the path, "+spID+".")
			return
		}
		if kind == "appRoleAssignedTo" && !strings.EqualFold(in.ResourceID, spID) {
			writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "resourceId must be the service principal of the path, "+spID+".")
			return
		}
		app := appOfSP[strings.ToLower(in.ResourceID)]
		if app == "" {
			writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "resourceId '"+clip(in.ResourceID, 40)+"' is not the service principal of an application of this tenant.")
			return
		}
		res := q.call("POST", []string{"appRoleAssignments"}, nil, map[string]string{"principalId": in.PrincipalID, "resourceAppId": app, "appRoleId": in.AppRoleID}, false)
		answer(q, res, http.StatusCreated, fragment+"/$entity", toGraph)
	default:
		q.methodNotAllowed("GET, POST")
	}
}

// assignments lists the assignments a principal holds, or (resourceApp
// set, appRoleAssignedTo) those of the resource application's roles.
func (q *request) assignments(kind, spID, resourceApp string) ([]admin.AssignmentResource, admin.Result, bool) {
	qs := url.Values{}
	if kind == "appRoleAssignedTo" {
		qs.Set("resourceAppId", resourceApp)
	} else {
		qs.Set("principalId", spID)
	}
	return listAll[admin.AssignmentResource](q, []string{"appRoleAssignments"}, qs)
}
