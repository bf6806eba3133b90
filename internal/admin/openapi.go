package admin

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/sts"
)

// schemaTypes names the OpenAPI component schemas, generated from the wire
// types so the document cannot drift from them.
func schemaTypes() map[string]reflect.Type {
	return map[string]reflect.Type{
		"Tenant":             reflect.TypeFor[TenantResource](),
		"Application":        reflect.TypeFor[ApplicationResource](),
		"AppCredential":      reflect.TypeFor[AppCredentialResource](),
		"Identity":           reflect.TypeFor[IdentityResource](),
		"IdentityCredential": reflect.TypeFor[IdentityCredentialResource](),
		"ResourceGroup":      reflect.TypeFor[ResourceGroupResource](),
		"Assignment":         reflect.TypeFor[AssignmentResource](),
		"Audit":              reflect.TypeFor[AuditResource](),
		"Document":           reflect.TypeFor[apply.Document](),
		"ApplyResult":        reflect.TypeFor[ApplyResult](),
		"KeyInfo":            reflect.TypeFor[jose.KeyInfo](),
		"RewrapRequest":      reflect.TypeFor[RewrapRequest](),
		"RewrapResult":       reflect.TypeFor[jose.RewrapResult](),
		"TestRequest":        reflect.TypeFor[TestRequest](),
		"TestResult":         reflect.TypeFor[sts.TestResult](),
		"StaleReport":        reflect.TypeFor[StaleReport](),
		"TrustedIssuer":      reflect.TypeFor[TrustedIssuerResource](),
		"IssuerSet":          reflect.TypeFor[IssuerSetResource](),
		"PushKeysRequest":    reflect.TypeFor[PushKeysRequest](),
		"PushKeysResult":     reflect.TypeFor[PushKeysResult](),
		"Error":              reflect.TypeFor[ErrorBody](),
	}
}

var pathParamRE = regexp.MustCompile(`\{([A-Za-z]+)\}`)

// OpenAPI returns the OpenAPI 3 document describing every route.
func (h *Handler) OpenAPI() map[string]any {
	paths := map[string]any{}
	for _, rt := range h.routes {
		item, _ := paths[rt.pattern].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.pattern] = item
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if rt.method == http.MethodGet && strings.HasSuffix(rt.response, "List") {
			params = append(params,
				map[string]any{"name": "$top", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": MaxPageSize}},
				map[string]any{"name": "$skipToken", "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if rt.method == http.MethodPut || rt.method == http.MethodPatch || rt.method == http.MethodDelete {
			params = append(params, map[string]any{"name": "If-Match", "in": "header", "schema": map[string]any{"type": "string"},
				"description": "an ETag from a previous read; the request fails with 412 if the object changed since"})
		}
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt),
			"security":    []any{map[string]any{"bearer": []any{}}},
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.request != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": ref(rt.request)}}}
		}
		responses := map[string]any{}
		errResp := map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
		for _, code := range []string{"400", "401", "403", "404", "409", "412", "413"} {
			responses[code] = errResp
		}
		ok := map[string]any{"description": "success"}
		if rt.response != "" {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": responseSchema(rt.response)}}
		}
		status := "200"
		switch rt.status {
		case 201:
			status = "201"
		case 204:
			status = "204"
		}
		responses[status] = ok
		if rt.method == http.MethodPut {
			responses["201"] = ok
		}
		op["responses"] = responses
		item[strings.ToLower(rt.method)] = op
	}
	paths["/admin/openapi.json"] = map[string]any{"get": map[string]any{"summary": "This document", "operationId": "getOpenAPI",
		"responses": map[string]any{"200": map[string]any{"description": "the OpenAPI document"}}}}
	schemas := map[string]any{}
	for name, t := range schemaTypes() {
		schemas[name] = schemaOf(t, 0)
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "wif admin API", "version": "1",
			"description": "Manage wif's directory. Every call needs a bearer token issued by this service for " + AdminResource +
				" with the app role " + RoleReadWriteAll + ", " + RoleReadAll + " or (identities and their credentials in the token's tenant) " + RoleManagedIdentityContributor + "."},
		"paths": paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
		},
	}
}

func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.method))
	for _, seg := range strings.Split(rt.pattern, "/") {
		if seg == "" || seg == "admin" || strings.HasPrefix(seg, "{") || strings.Contains(seg, ".") {
			continue
		}
		b.WriteString(strings.ToUpper(seg[:1]) + seg[1:])
	}
	if strings.HasSuffix(rt.pattern, "}") {
		b.WriteString("Item")
	}
	return b.String()
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func responseSchema(name string) map[string]any {
	if item, ok := strings.CutSuffix(name, "List"); ok {
		if _, known := schemaTypes()[item]; known {
			return map[string]any{"type": "object", "properties": map[string]any{
				"value":    map[string]any{"type": "array", "items": ref(item)},
				"nextLink": map[string]any{"type": "string"}}}
		}
	}
	return ref(name)
}

func schemaOf(t reflect.Type, depth int) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if depth > 8 {
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.String:
		if t.String() == "apply.Action" || t.String() == "apply.Kind" {
			return map[string]any{"type": "string"}
		}
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), depth+1)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), depth+1)}
	case reflect.Struct:
		if t.String() == "time.Time" {
			return map[string]any{"type": "string", "format": "date-time"}
		}
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type, depth+1)
		}
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

func (h *Handler) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.OpenAPI())
}
