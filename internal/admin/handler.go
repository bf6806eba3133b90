// Package admin is wif's admin REST API — tenants, applications, user-
// assigned managed identities, federated identity credentials, app role
// assignments, the audit log and the whole directory as one document — with
// resource paths shaped like ARM and Graph, ETags, pagination and ARM-style
// JSON errors; its authorization (bearer tokens of this same token service
// for api://wif-admin, by app role); the bootstrap of the first admin; and a
// Go client for it.
package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/sts"
)

// Limits of the admin API.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultPageSize     = 100
	MaxPageSize         = 1000
)

// Config configures the admin API handler.
type Config struct {
	// Store is the directory and audit log (required).
	Store store.Store
	// Authorizer decides who may do what (required; there is no open mode:
	// use TokenAuthorizer with AllowLoopback for wif dev).
	Authorizer Authorizer
	// OnChange is called after every successful write, so the token service
	// can reload its in-memory directory at once. Optional.
	OnChange func()
	// Logger receives failures (default: discard).
	Logger *slog.Logger
	// MaxBodyBytes bounds JSON request bodies (default 1 MiB).
	MaxBodyBytes int64
	// MaxApplyBytes bounds a directory document sent to POST
	// /admin/directory (default apply.DefaultMaxApplyBytes).
	MaxApplyBytes int64
	// Registerer receives the API's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Keys operates the token service's signing keys (nil: the key
	// endpoints answer 501).
	Keys KeyOperator
	// Tester runs the credential dry-run (the token service; nil: 501).
	Tester CredentialTester
	// Audit records an admin change (the token service's audit writer:
	// queued, spooled in an outage, streamed to its sinks). Nil writes it
	// to Store directly.
	Audit func(store.AuditRecord)
}

// CredentialTester runs every check of an exchange without issuing a
// token (*sts.Service implements it).
type CredentialTester interface {
	TestAssertion(ctx context.Context, tenantID, clientID, assertion string) (sts.TestResult, error)
}

// Handler serves the admin API under /admin/.
type Handler struct {
	cfg      Config
	routes   []route
	mux      *http.ServeMux
	requests *prometheus.CounterVec
}

type route struct {
	method, pattern string
	scope           Scope
	summary         string
	request         string // OpenAPI component schema of the body ("" = none)
	response        string // OpenAPI component schema of a 2xx body
	status          int
	h               func(w http.ResponseWriter, r *http.Request) error
}

// Path prefixes.
const (
	tenantPath   = "/admin/tenants/{tenantId}"
	groupPath    = tenantPath + "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}"
	identityBase = groupPath + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
	identityPath = identityBase + "/{name}"
	appPath      = tenantPath + "/applications/{appId}"
)

// NewHandler builds the admin API.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("admin: Config.Store is required")
	}
	if cfg.Authorizer == nil {
		return nil, errors.New("admin: Config.Authorizer is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxApplyBytes <= 0 {
		cfg.MaxApplyBytes = apply.DefaultMaxApplyBytes
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wif_admin_requests_total",
		Help: "Admin API requests by operation and HTTP status code.",
	}, []string{"operation", "code"})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.requests); err != nil {
			return nil, fmt.Errorf("admin: register metrics: %w", err)
		}
	}
	h.routes = []route{
		{"GET", "/admin/tenants", ScopeTenant, "List tenants", "", "TenantList", 200, h.listTenants},
		{"GET", tenantPath, ScopeTenant, "Get a tenant", "", "Tenant", 200, h.getTenant},
		{"PUT", tenantPath, ScopeTenant, "Create or update a tenant", "Tenant", "Tenant", 200, h.putTenant},
		{"DELETE", tenantPath, ScopeTenant, "Delete a tenant and everything in it", "", "", 204, h.deleteTenant},

		{"GET", tenantPath + "/applications", ScopeApp, "List applications", "", "ApplicationList", 200, h.listApps},
		{"POST", tenantPath + "/applications", ScopeApp, "Create an application (ids generated unless given)", "Application", "Application", 201, h.postApp},
		{"GET", appPath, ScopeApp, "Get an application by appId", "", "Application", 200, h.getApp},
		{"PUT", appPath, ScopeApp, "Create or replace an application", "Application", "Application", 200, h.putApp},
		{"PATCH", appPath, ScopeApp, "Update some fields of an application", "Application", "Application", 200, h.patchApp},
		{"DELETE", appPath, ScopeApp, "Delete an application, its credentials and its role assignments", "", "", 204, h.deleteApp},
		{"GET", appPath + "/federatedIdentityCredentials", ScopeAppCred, "List an application's federated identity credentials", "", "AppCredentialList", 200, h.listAppCreds},
		{"POST", appPath + "/federatedIdentityCredentials", ScopeAppCred, "Create a federated identity credential on an application", "AppCredential", "AppCredential", 201, h.postAppCred},
		{"GET", appPath + "/federatedIdentityCredentials/{credentialName}", ScopeAppCred, "Get an application's federated identity credential", "", "AppCredential", 200, h.getAppCred},
		{"PUT", appPath + "/federatedIdentityCredentials/{credentialName}", ScopeAppCred, "Create or update an application's federated identity credential", "AppCredential", "AppCredential", 200, h.putAppCred},
		{"DELETE", appPath + "/federatedIdentityCredentials/{credentialName}", ScopeAppCred, "Delete an application's federated identity credential", "", "", 204, h.deleteAppCred},
		{"POST", appPath + "/testFederatedCredentials", ScopeAppCred, "Dry-run an exchange of an assertion for this application: every check's verdict, no token issued", "TestRequest", "TestResult", 200, h.testAppCreds},

		{"GET", tenantPath + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities", ScopeIdentity, "List the identities of every subscription of the tenant", "", "IdentityList", 200, h.listTenantIdentities},
		{"GET", tenantPath + "/subscriptions/{subscriptionId}/resourceGroups", ScopeIdentity, "List the resource groups of a subscription (stored, and implied by the identities in them)", "", "ResourceGroupList", 200, h.listGroups},
		{"GET", groupPath, ScopeIdentity, "Get a resource group", "", "ResourceGroup", 200, h.getGroup},
		{"PUT", groupPath, ScopeIdentity, "Create or update a resource group (location is required and cannot change)", "ResourceGroup", "ResourceGroup", 200, h.putGroup},
		{"PATCH", groupPath, ScopeIdentity, "Update a resource group's tags", "ResourceGroup", "ResourceGroup", 200, h.patchGroup},
		{"DELETE", groupPath, ScopeIdentity, "Delete an empty resource group", "", "", 204, h.deleteGroup},
		{"GET", tenantPath + "/subscriptions/{subscriptionId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", ScopeIdentity, "List the identities of a subscription", "", "IdentityList", 200, h.listIdentities},
		{"GET", identityBase, ScopeIdentity, "List the identities of a resource group", "", "IdentityList", 200, h.listIdentities},
		{"GET", identityPath, ScopeIdentity, "Get a user-assigned managed identity", "", "Identity", 200, h.getIdentity},
		{"PUT", identityPath, ScopeIdentity, "Create or update a user-assigned managed identity", "Identity", "Identity", 200, h.putIdentity},
		{"PATCH", identityPath, ScopeIdentity, "Update an identity's tags or location", "Identity", "Identity", 200, h.patchIdentity},
		{"DELETE", identityPath, ScopeIdentity, "Delete an identity, its credentials and its role assignments", "", "", 204, h.deleteIdentity},
		{"GET", identityPath + "/federatedIdentityCredentials", ScopeIdentCred, "List an identity's federated identity credentials", "", "IdentityCredentialList", 200, h.listIdentityCreds},
		{"GET", identityPath + "/federatedIdentityCredentials/{credentialName}", ScopeIdentCred, "Get an identity's federated identity credential", "", "IdentityCredential", 200, h.getIdentityCred},
		{"PUT", identityPath + "/federatedIdentityCredentials/{credentialName}", ScopeIdentCred, "Create or update an identity's federated identity credential", "IdentityCredential", "IdentityCredential", 200, h.putIdentityCred},
		{"DELETE", identityPath + "/federatedIdentityCredentials/{credentialName}", ScopeIdentCred, "Delete an identity's federated identity credential", "", "", 204, h.deleteIdentityCred},
		{"POST", identityPath + "/testFederatedCredentials", ScopeIdentCred, "Dry-run an exchange of an assertion for this identity: every check's verdict, no token issued", "TestRequest", "TestResult", 200, h.testIdentityCreds},

		{"GET", tenantPath + "/trustedIssuers", ScopeIssuer, "List the tenant's trusted issuers: where each issuer's keys come from and what its tokens may be", "", "TrustedIssuerList", 200, h.listTrustedIssuers},
		{"GET", tenantPath + "/trustedIssuers/{issuerName}", ScopeIssuer, "Get a trusted issuer, with its keys as the token service reads them", "", "TrustedIssuer", 200, h.getTrustedIssuer},
		{"PUT", tenantPath + "/trustedIssuers/{issuerName}", ScopeIssuer, "Create or update a trusted issuer (keySource discovery, jwks or pushed)", "TrustedIssuer", "TrustedIssuer", 200, h.putTrustedIssuer},
		{"DELETE", tenantPath + "/trustedIssuers/{issuerName}", ScopeIssuer, "Delete a trusted issuer: its issuer is fetched by discovery again", "", "", 204, h.deleteTrustedIssuer},
		{"GET", tenantPath + "/trustedIssuers/{issuerName}/keys", ScopeIssuerKeys, "Get a pushed issuer as its sync agent sees it (the agent needs no admin role for this)", "", "TrustedIssuer", 200, h.getPushedIssuer},
		{"POST", tenantPath + "/trustedIssuers/{issuerName}/keys", ScopeIssuerKeys, "Push a pushed issuer's current key set (wif cluster sync); dropped keys verify for keyOverlapSeconds more", "PushKeysRequest", "PushKeysResult", 200, h.pushKeys},
		{"GET", tenantPath + "/issuerSets", ScopeIssuer, "List the tenant's issuer sets", "", "IssuerSetList", 200, h.listIssuerSets},
		{"GET", tenantPath + "/issuerSets/{setName}", ScopeIssuer, "Get an issuer set", "", "IssuerSet", 200, h.getIssuerSet},
		{"PUT", tenantPath + "/issuerSets/{setName}", ScopeIssuer, "Create or update an issuer set; credentials name it as issuer urn:wif:issuer-set:NAME", "IssuerSet", "IssuerSet", 200, h.putIssuerSet},
		{"DELETE", tenantPath + "/issuerSets/{setName}", ScopeIssuer, "Delete an issuer set: credentials naming it then match nothing", "", "", 204, h.deleteIssuerSet},

		{"GET", tenantPath + "/appRoleAssignments", ScopeAssignment, "List app role assignments (filter by principalId, resourceAppId)", "", "AssignmentList", 200, h.listAssignments},
		{"POST", tenantPath + "/appRoleAssignments", ScopeAssignment, "Assign an app role (by ids or by names)", "Assignment", "Assignment", 201, h.postAssignment},
		{"DELETE", tenantPath + "/appRoleAssignments/{assignmentId}", ScopeAssignment, "Remove an app role assignment", "", "", 204, h.deleteAssignment},

		{"GET", tenantPath + "/auditLogs", ScopeAudit, "List audited token exchanges, newest first (filter by clientId, correlationId, result, since, until); refusals carry their reason and diagnosis", "", "AuditList", 200, h.listAudit},
		{"GET", tenantPath + "/staleCredentials", ScopeAudit, "List credentials no exchange matched in the last days=30 days and trusted issuers that have not answered for a day", "", "StaleReport", 200, h.staleCredentials},

		{"GET", "/admin/signingKeys", ScopeKeys, "List the token service's signing keys (state: next, active, retiring, retired)", "", "KeyInfoList", 200, h.listKeys},
		{"POST", "/admin/signingKeys/rotate", ScopeKeys, "Start a key rotation now: a next key is published at once and signs after the pre-publication period, or at once with immediate=true", "", "KeyInfo", 201, h.rotateKey},
		{"POST", "/admin/signingKeys/{kid}/retire", ScopeKeys, "Retire a signing key: no longer published, tokens it signed are refused", "", "KeyInfo", 200, h.retireKey},
		{"POST", "/admin/signingKeys/rewrap", ScopeKeys, "Seal every signing key anew with the key-encryption key the server seals with (kekId)", "RewrapRequest", "RewrapResult", 200, h.rewrapKeys},

		{"GET", "/admin/directory", ScopeDirectory, "Export the whole directory as a document (YAML with Accept: application/yaml)", "", "Document", 200, h.exportDirectory},
		{"POST", "/admin/directory", ScopeDirectory, "Apply a directory document (query: dryRun, prune, replay=24h with dryRun); returns the plan and, with replay, the audited exchanges whose outcome it would change", "Document", "ApplyResult", 200, h.applyDirectory},
	}
	for _, rt := range h.routes {
		h.mux.Handle(rt.method+" "+rt.pattern, h.wrap(rt))
	}
	h.mux.HandleFunc("GET /admin/openapi.json", h.serveOpenAPI)
	// Paths without methods, to tell 405 from 404.
	paths := http.NewServeMux()
	for _, rt := range h.routes {
		if _, p := paths.Handler(&http.Request{Method: "GET", URL: &url.URL{Path: rt.pattern}}); p != rt.pattern {
			paths.Handle(rt.pattern, http.NotFoundHandler())
		}
	}
	h.mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		if _, p := paths.Handler(r); p != "" && p != "/" {
			var allow []string
			for _, rt := range h.routes {
				if rt.pattern == p {
					allow = append(allow, rt.method)
				}
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, errorf(http.StatusNotFound, CodeNotFound, "no admin API resource at %s %s; see /admin/openapi.json", r.Method, r.URL.Path))
	})
	return h, nil
}

// Mount registers every admin route on mux, one pattern each, so the API
// can share a mux with the token endpoints (a catch-all "/admin/" would
// conflict with "POST /{tenant}/oauth2/v2.0/token"). Paths under /admin/
// that match no route then get mux's own 404.
func (h *Handler) Mount(mux *http.ServeMux) {
	for _, p := range h.Patterns() {
		mux.Handle(p, h)
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Patterns returns the "METHOD /path" patterns of every API route, for
// documentation and tests.
func (h *Handler) Patterns() []string {
	var out []string
	for _, rt := range h.routes {
		out = append(out, rt.method+" "+rt.pattern)
	}
	return append(out, "GET /admin/openapi.json")
}

func (h *Handler) wrap(rt route) http.Handler {
	// A dry-run reads: it changes nothing.
	write := rt.method != http.MethodGet && !strings.HasSuffix(rt.pattern, "/testFederatedCredentials")
	opID := operationID(rt)
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw, status: http.StatusOK}
		defer func() { h.requests.WithLabelValues(opID, strconv.Itoa(w.status)).Inc() }()
		// Every request with a body must declare it JSON, reads (dry runs) too.
		if err := browserGuard(r, rt.method != http.MethodGet, rt.request != ""); err != nil {
			writeError(w, err)
			return
		}
		op := Operation{Scope: rt.scope, Write: write, TenantID: r.PathValue("tenantId")}
		if op.Scope == ScopeDirectory && r.Method == http.MethodPost && boolQuery(r, "dryRun") {
			op.Write = false
		}
		caller, err := h.authorize(r, op)
		if err != nil {
			writeError(w, toAPIError(err, h.cfg.Logger, r))
			return
		}
		r = withCaller(r, caller)
		err = rt.h(w, r)
		// A failed write may still have changed something (apply stops
		// half-way); reloading is cheap and idempotent.
		if op.Write && h.cfg.OnChange != nil {
			h.cfg.OnChange()
		}
		if err != nil {
			writeError(w, toAPIError(err, h.cfg.Logger, r))
		}
		if op.Write {
			h.auditChange(r, rt, op, caller, w.status)
		}
	})
}

// auditChange records one write of an authorized caller — done or refused
// (the escalation rule, a precondition, a validation error) — in the
// audit log of the tenant it touched (the caller's own for a request
// spanning tenants). A write the store then refuses to record is logged:
// the change itself has happened.
func (h *Handler) auditChange(r *http.Request, rt route, op Operation, c Caller, status int) {
	tid := op.TenantID
	if !directory.IsGUID(tid) {
		tid = c.TenantID
	}
	if tid == "" {
		return // wif dev's token-less caller on a cross-tenant write: no tenant to file it under
	}
	result := store.AuditSuccess
	if status >= 400 {
		result = store.AuditFailure
	}
	corr := r.Header.Get("x-ms-correlation-request-id")
	if !directory.IsGUID(corr) {
		corr = r.Header.Get("client-request-id")
	}
	if !directory.IsGUID(corr) {
		corr = ""
	}
	client := c.ClientID
	if client == "" && c.Unrestricted {
		client = "loopback"
	}
	rec := store.AuditRecord{Time: time.Now().UTC(), TenantID: directory.CanonicalID(tid), ClientID: client, GrantType: store.AuditAdminChange,
		Resource: clipText(r.URL.Path, 512), Result: result, ErrorCode: status, CorrelationID: corr, RemoteAddr: clipText(r.RemoteAddr, 64),
		Reason: rt.method + " " + rt.summary, Count: 1}
	if h.cfg.Audit != nil {
		h.cfg.Audit(rec)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := h.cfg.Store.AppendAudit(ctx, []store.AuditRecord{rec}); err != nil {
		h.cfg.Logger.Error("an admin change could not be audited", "method", r.Method, "path", r.URL.Path, "client", client, "status", status, "err", err)
	}
}

// identifier is an Authorizer that can also authenticate alone.
type identifier interface {
	Identify(r *http.Request) (Caller, error)
}

// authorize decides op. A key push that no role allows is let through for
// an authenticated caller marked pushOnly: the handler then allows it only
// if the trusted issuer names the caller as its pushClientId.
func (h *Handler) authorize(r *http.Request, op Operation) (Caller, error) {
	if op.Scope != ScopeIssuerKeys {
		return h.cfg.Authorizer.Authorize(r, op)
	}
	c, err := h.cfg.Authorizer.Authorize(r, Operation{Scope: ScopeIssuer, Write: op.Write, TenantID: op.TenantID})
	if err == nil || !errors.Is(err, ErrForbidden) {
		return c, err
	}
	id, ok := h.cfg.Authorizer.(identifier)
	if !ok {
		return Caller{}, err
	}
	c, ierr := id.Identify(r)
	if ierr != nil {
		return Caller{}, ierr
	}
	c.pushOnly = true
	return c, nil
}

// browserGuard refuses what a web page in an admin's browser could make the
// browser send (cross-site request forgery — above all against wif dev,
// whose loopback admin API needs no token): a request whose Origin is not
// this server's own, one a browser marks as cross-site, and a write whose
// body is not declared JSON (or YAML for a directory document). A page can
// send a "simple" POST without a preflight only as text/plain, form data
// or no Content-Type at all; application/json makes the browser ask first,
// and the API answers no preflight.
func browserGuard(r *http.Request, hasMethodBody, hasBody bool) *apiError {
	if o := r.Header.Get("Origin"); o != "" && o != "https://"+r.Host && o != "http://"+r.Host {
		return errorf(http.StatusForbidden, CodeAuthorization, "cross-origin requests are refused: the admin API is for the wif CLI and API clients, not for web pages (Origin %q)", clipText(o, 100))
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return errorf(http.StatusForbidden, CodeAuthorization, "cross-site requests are refused: the admin API is for the wif CLI and API clients, not for web pages")
	}
	if !hasMethodBody || !hasBody {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		(r.URL.Path == "/admin/directory" && (mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml"))) {
		return nil
	}
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "the request has no Content-Type: send the body as application/json (a directory document may also be application/yaml)")
	}
	return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "the request body must be application/json (a directory document may also be application/yaml), not %q", clipText(ct, 100))
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// statusWriter remembers the status code written, for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func boolQuery(r *http.Request, name string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return v
}

// decode reads a JSON body strictly into v.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, CodeInvalidRequest, "the request body is empty: expected a JSON object")
		}
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "the request body is not valid: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "the request body holds more than one JSON value")
	}
	return nil
}

// ifMatch checks a request's If-Match against the current version: nil when
// absent, "*", or equal.
func ifMatch(r *http.Request, version int64) error {
	m := r.Header.Get("If-Match")
	if m == "" || m == "*" {
		return nil
	}
	for _, tag := range strings.Split(m, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == ETag(version) {
			return nil
		}
	}
	return fmt.Errorf("%w: the object changed since you read it (If-Match %s, current ETag %s): read it again and retry", errPrecondition, m, ETag(version))
}

// ifMatchDelete is a delete's If-Match as a store precondition: compared
// inside the deleting transaction, so an update cannot slip in between.
func ifMatchDelete(r *http.Request) store.Precondition {
	return func(version int64) error { return ifMatch(r, version) }
}

// createOnly reports whether the request asks to create only
// (If-None-Match: *).
func createOnly(r *http.Request) bool { return strings.TrimSpace(r.Header.Get("If-None-Match")) == "*" }

// putPreconditions checks a PUT's conditional headers against whether the
// object (what, as named in the message) exists: If-Match cannot match an
// object that does not exist, and If-None-Match: * asks to create only.
func putPreconditions(r *http.Request, what string, exists bool) error {
	if !exists && r.Header.Get("If-Match") != "" {
		return fmt.Errorf("%w: %s does not exist, so If-Match cannot match", errPrecondition, what)
	}
	if exists && createOnly(r) {
		return fmt.Errorf("%w: %s already exists (If-None-Match: *)", errPrecondition, what)
	}
	return nil
}

func respond(w http.ResponseWriter, status int, etag string, v any) error {
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	writeJSON(w, status, v)
	return nil
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// page slices items by $top and $skipToken and writes the list.
func page[T any](w http.ResponseWriter, r *http.Request, items []T) error {
	top, skip, err := paging(r)
	if err != nil {
		return err
	}
	if skip > len(items) {
		skip = len(items)
	}
	end := min(skip+top, len(items))
	out := List[T]{Value: append([]T{}, items[skip:end]...)}
	if end < len(items) {
		out.NextLink = nextLink(r, base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
	}
	return respond(w, http.StatusOK, "", out)
}

// pageSize is a request's $top (DefaultPageSize when absent).
func pageSize(r *http.Request) (int, error) {
	v := r.URL.Query().Get("$top")
	if v == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "$top must be an integer from 1 to %d, not %q", MaxPageSize, clipText(v, 40))
	}
	return n, nil
}

func paging(r *http.Request) (top, skip int, err error) {
	q := r.URL.Query()
	if top, err = pageSize(r); err != nil {
		return 0, 0, err
	}
	if v := q.Get("$skipToken"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return 0, 0, errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "$skipToken %q is not one this server issued: use the nextLink of the previous page", v)
		}
		skip = n
	}
	return top, skip, nil
}

func nextLink(r *http.Request, token string) string {
	q := r.URL.Query()
	q.Set("$skipToken", token)
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}

// ---- tenants ----

func (h *Handler) listTenants(w http.ResponseWriter, r *http.Request) error {
	ts, err := h.cfg.Store.ListTenants(r.Context())
	if err != nil {
		return err
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	out := make([]TenantResource, len(ts))
	for i, t := range ts {
		out[i] = tenantResource(t)
	}
	return page(w, r, out)
}

func (h *Handler) tenantID(r *http.Request) (string, error) {
	id := r.PathValue("tenantId")
	if !directory.IsGUID(id) {
		return "", &directory.ValidationError{Field: "tenantId", Rule: "must be a GUID such as 00000000-0000-0000-0000-000000000000", Value: id}
	}
	return directory.CanonicalID(id), nil
}

func (h *Handler) getTenant(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	t, err := h.cfg.Store.GetTenant(r.Context(), tid)
	if err != nil {
		return notFound(err, "tenant %s", tid)
	}
	return respond(w, 200, ETag(t.Version), tenantResource(t))
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, CodeNotFound, "%s does not exist", fmt.Sprintf(format, args...))
	}
	return err
}

func (h *Handler) putTenant(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	var in TenantResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.ID != "" && !strings.EqualFold(in.ID, tid) {
		return &directory.ValidationError{Field: "id", Rule: "must match the tenant id in the path, " + tid, Value: in.ID}
	}
	ctx := r.Context()
	if _, err := h.cfg.Store.GetTenant(ctx, tid); errors.Is(err, store.ErrNotFound) {
		if err := putPreconditions(r, fmt.Sprintf("tenant %s", tid), false); err != nil {
			return err
		}
		t, err := h.cfg.Store.CreateTenant(ctx, directory.Tenant{ID: tid, DisplayName: in.DisplayName})
		if err != nil {
			return err
		}
		// Every tenant has the admin resource, so its identities can be
		// given admin roles and ask for tokens for it (az, the CLI).
		if _, err := EnsureAdminApp(ctx, h.cfg.Store, tid); err != nil {
			return err
		}
		return respond(w, http.StatusCreated, ETag(t.Version), tenantResource(t))
	} else if err != nil {
		return err
	}
	if err := putPreconditions(r, fmt.Sprintf("tenant %s", tid), true); err != nil {
		return err
	}
	t, err := h.cfg.Store.UpdateTenant(ctx, tid, func(t *directory.Tenant) error {
		if err := ifMatch(r, t.Version); err != nil {
			return err
		}
		t.DisplayName = in.DisplayName
		return nil
	})
	if err != nil {
		return err
	}
	return respond(w, 200, ETag(t.Version), tenantResource(t))
}

func (h *Handler) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteTenant(r.Context(), tid, ifMatchDelete(r)); err != nil {
		return notFound(err, "tenant %s", tid)
	}
	return noContent(w)
}

// ---- applications ----

func (h *Handler) listApps(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	if err := h.tenantExists(r, tid); err != nil {
		return err
	}
	apps, err := h.cfg.Store.ListApplications(r.Context(), tid)
	if err != nil {
		return err
	}
	sort.Slice(apps, func(i, j int) bool {
		if apps[i].DisplayName != apps[j].DisplayName {
			return apps[i].DisplayName < apps[j].DisplayName
		}
		return apps[i].AppID < apps[j].AppID
	})
	out := make([]ApplicationResource, len(apps))
	for i, a := range apps {
		out[i] = applicationResource(a)
	}
	return page(w, r, out)
}

func (h *Handler) tenantExists(r *http.Request, tid string) error {
	_, err := h.cfg.Store.GetTenant(r.Context(), tid)
	return notFound(err, "tenant %s", tid)
}

// toApp applies a request's fields to an application; roles without ids
// keep the id of an existing role of the same value.
func toApp(in ApplicationResource, a *directory.Application) {
	a.DisplayName = in.DisplayName
	a.IdentifierURIs = in.IdentifierURIs
	a.RequestedAccessTokenVersion = in.RequestedAccessTokenVersion
	a.AppRoles = toRoles(in.AppRoles, a.AppRoles)
}

func toRoles(in []AppRoleResource, old []directory.AppRole) []directory.AppRole {
	var out []directory.AppRole
	for _, r := range in {
		role := directory.AppRole{ID: r.ID, Value: r.Value, DisplayName: r.DisplayName, Description: r.Description,
			AllowedMemberTypes: r.AllowedMemberTypes, IsEnabled: r.IsEnabled == nil || *r.IsEnabled}
		if len(role.AllowedMemberTypes) == 0 {
			role.AllowedMemberTypes = []string{directory.MemberTypeApplication}
		}
		if role.ID == "" {
			for _, o := range old {
				if o.Value == r.Value {
					role.ID = o.ID
				}
			}
		}
		if role.ID == "" {
			role.ID = directory.NewID()
		}
		role.ID = canonIfGUID(role.ID)
		out = append(out, role)
	}
	return out
}

func canonIfGUID(s string) string {
	if directory.IsGUID(s) {
		return directory.CanonicalID(s)
	}
	return s
}

func (h *Handler) postApp(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	var in ApplicationResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if err := h.tenantExists(r, tid); err != nil {
		return err
	}
	a := directory.Application{TenantID: tid, AppID: orNewID(in.AppID), ObjectID: orNewID(in.ID), ServicePrincipalID: orNewID(in.ServicePrincipalID)}
	toApp(in, &a)
	a, err = h.cfg.Store.CreateApplication(r.Context(), a)
	if err != nil {
		return err
	}
	return respond(w, http.StatusCreated, ETag(a.Version), applicationResource(a))
}

func orNewID(s string) string {
	if s == "" {
		return directory.NewID()
	}
	return canonIfGUID(s)
}

func (h *Handler) appID(r *http.Request) (tid, appID string, err error) {
	tid, err = h.tenantID(r)
	if err != nil {
		return "", "", err
	}
	appID = r.PathValue("appId")
	if !directory.IsGUID(appID) {
		return "", "", &directory.ValidationError{Field: "appId", Rule: "must be a GUID (the application's client id)", Value: appID}
	}
	return tid, directory.CanonicalID(appID), nil
}

func (h *Handler) getApp(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	a, err := h.cfg.Store.GetApplication(r.Context(), tid, appID)
	if err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	return respond(w, 200, ETag(a.Version), applicationResource(a))
}

func (h *Handler) putApp(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	var in ApplicationResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.AppID != "" && !strings.EqualFold(in.AppID, appID) {
		return &directory.ValidationError{Field: "appId", Rule: "must match the appId in the path, " + appID, Value: in.AppID}
	}
	ctx := r.Context()
	old, err := h.cfg.Store.GetApplication(ctx, tid, appID)
	if errors.Is(err, store.ErrNotFound) {
		if err := putPreconditions(r, fmt.Sprintf("application %s", appID), false); err != nil {
			return err
		}
		if err := h.tenantExists(r, tid); err != nil {
			return err
		}
		a := directory.Application{TenantID: tid, AppID: appID, ObjectID: orNewID(in.ID), ServicePrincipalID: orNewID(in.ServicePrincipalID)}
		toApp(in, &a)
		a, err = h.cfg.Store.CreateApplication(ctx, a)
		if err != nil {
			return err
		}
		return respond(w, http.StatusCreated, ETag(a.Version), applicationResource(a))
	} else if err != nil {
		return err
	}
	if err := putPreconditions(r, fmt.Sprintf("application %s", appID), true); err != nil {
		return err
	}
	if err := immutable("id", in.ID, old.ObjectID); err != nil {
		return err
	}
	if err := immutable("servicePrincipalId", in.ServicePrincipalID, old.ServicePrincipalID); err != nil {
		return err
	}
	a, err := h.cfg.Store.UpdateApplication(ctx, tid, appID, func(a *directory.Application) error {
		if err := ifMatch(r, a.Version); err != nil {
			return err
		}
		before := *a // toApp and the patch replace slices, never edit them in place
		toApp(in, a)
		if err := h.mayChangeAdminApp(r, before, a); err != nil {
			return err
		}
		return h.checkAssignedRoles(r, a, before.AppRoles)
	})
	if err != nil {
		return err
	}
	return respond(w, 200, ETag(a.Version), applicationResource(a))
}

// checkAssignedRoles, with refuseIfInUse=true, refuses to drop an app role
// that is still assigned, as Entra does. Without it the store removes the
// role's assignments with it.
func (h *Handler) checkAssignedRoles(r *http.Request, a *directory.Application, old []directory.AppRole) error {
	if !boolQuery(r, "refuseIfInUse") {
		return nil
	}
	kept := map[string]bool{}
	for _, role := range a.AppRoles {
		kept[lower(role.ID)] = true
	}
	var dropped []directory.AppRole
	for _, role := range old {
		if !kept[lower(role.ID)] {
			dropped = append(dropped, role)
		}
	}
	if len(dropped) == 0 {
		return nil
	}
	gs, err := h.cfg.Store.ListAppRoleAssignments(r.Context(), a.TenantID, store.AssignmentFilter{ResourceAppID: a.AppID})
	if err != nil {
		return err
	}
	for _, role := range dropped {
		n := 0
		for _, g := range gs {
			if strings.EqualFold(g.AppRoleID, role.ID) {
				n++
			}
		}
		if n > 0 {
			return errorf(http.StatusConflict, CodeConflict, "app role %q (%s) is assigned to %d principal(s) and refuseIfInUse is set; remove those assignments first (wif role list), or drop refuseIfInUse to remove them with the role", role.Value, role.ID, n)
		}
	}
	return nil
}

func immutable(field, given, have string) error {
	if given != "" && !strings.EqualFold(given, have) {
		return &directory.ValidationError{Field: field, Rule: "cannot change (it is " + have + ")", Value: given}
	}
	return nil
}

// appPatch is a partial application update: absent fields stay.
type appPatch struct {
	DisplayName                 *string            `json:"displayName"`
	IdentifierURIs              *[]string          `json:"identifierUris"`
	AppRoles                    *[]AppRoleResource `json:"appRoles"`
	RequestedAccessTokenVersion *int               `json:"requestedAccessTokenVersion"`
}

func (h *Handler) patchApp(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	var in appPatch
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	a, err := h.cfg.Store.UpdateApplication(r.Context(), tid, appID, func(a *directory.Application) error {
		if err := ifMatch(r, a.Version); err != nil {
			return err
		}
		before := *a // toApp and the patch replace slices, never edit them in place
		if in.DisplayName != nil {
			a.DisplayName = *in.DisplayName
		}
		if in.IdentifierURIs != nil {
			a.IdentifierURIs = *in.IdentifierURIs
		}
		if in.AppRoles != nil {
			old := a.AppRoles
			a.AppRoles = toRoles(*in.AppRoles, a.AppRoles)
			if err := h.checkAssignedRoles(r, a, old); err != nil {
				return err
			}
		}
		if in.RequestedAccessTokenVersion != nil {
			a.RequestedAccessTokenVersion = *in.RequestedAccessTokenVersion
		}
		return h.mayChangeAdminApp(r, before, a)
	})
	if err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	return respond(w, 200, ETag(a.Version), applicationResource(a))
}

func (h *Handler) deleteApp(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	a, err := h.cfg.Store.GetApplication(r.Context(), tid, appID)
	if err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	if err := h.mayChangeAdminApp(r, a, nil); err != nil {
		return err
	}
	if err := h.mayChangePrincipal(r, tid, a.ServicePrincipalID, appName(a)); err != nil {
		return err
	}
	if err := h.refuseIfInUse(r, tid, a.AppID, appName(a), a.AppID, a.ServicePrincipalID); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteApplication(r.Context(), tid, appID, ifMatchDelete(r)); err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	return noContent(w)
}

// ---- application credentials ----

func (h *Handler) listAppCreds(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	if _, err := h.cfg.Store.GetApplication(r.Context(), tid, appID); err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	fs, err := h.cfg.Store.ListFederatedCredentials(r.Context(), tid, appID)
	if err != nil {
		return err
	}
	used, err := h.cfg.Store.CredentialUsage(r.Context(), tid)
	if err != nil {
		return err
	}
	sortCreds(fs)
	out := make([]AppCredentialResource, len(fs))
	for i, f := range fs {
		out[i] = appCredentialResource(f, used[f.ID])
	}
	return page(w, r, out)
}

func sortCreds(fs []directory.FederatedCredential) {
	sort.Slice(fs, func(i, j int) bool { return lower(fs[i].Name) < lower(fs[j].Name) })
}

func (h *Handler) postAppCred(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	var in AppCredentialResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if err := h.mayChangeAppPrincipal(r, tid, appID); err != nil {
		return err
	}
	f := directory.FederatedCredential{TenantID: tid, ParentKind: directory.ParentApplication, ParentClientID: appID,
		ID: orNewID(in.ID), Name: in.Name}
	setCred(&f, in.Issuer, in.Subject, in.ClaimsMatchingExpression, in.Audiences, in.Description)
	f, err = h.cfg.Store.CreateFederatedCredential(r.Context(), f)
	if err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	return respond(w, http.StatusCreated, ETag(f.Version), appCredentialResource(f, time.Time{}))
}

func setCred(f *directory.FederatedCredential, issuer, subject string, expr *directory.ClaimsMatchingExpression, aud []string, desc string) {
	f.Issuer, f.Subject, f.ClaimsMatchingExpression, f.Description = issuer, subject, expr, desc
	if len(aud) == 0 {
		aud = []string{directory.DefaultAudience}
	}
	f.Audiences = aud
}

func (h *Handler) getAppCred(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("credentialName")
	f, err := h.cfg.Store.GetFederatedCredential(r.Context(), tid, appID, name)
	if err != nil {
		return notFound(err, "federated identity credential %q of application %s", name, appID)
	}
	used, err := h.cfg.Store.CredentialUsage(r.Context(), tid)
	if err != nil {
		return err
	}
	return respond(w, 200, ETag(f.Version), appCredentialResource(f, used[f.ID]))
}

func (h *Handler) putAppCred(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	name := r.PathValue("credentialName")
	var in AppCredentialResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return &directory.ValidationError{Field: "name", Rule: "must match the name in the path, " + name + " (names are immutable)", Value: in.Name}
	}
	if err := h.mayChangeAppPrincipal(r, tid, appID); err != nil {
		return err
	}
	f, created, err := h.upsertCred(r, tid, directory.ParentApplication, appID, name, in.ID, in.Issuer, in.Subject, in.ClaimsMatchingExpression, in.Audiences, in.Description)
	if err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	return respond(w, statusFor(created), ETag(f.Version), appCredentialResource(f, time.Time{}))
}

func statusFor(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (h *Handler) upsertCred(r *http.Request, tid string, kind directory.ParentKind, parent, name, id, issuer, subject string, expr *directory.ClaimsMatchingExpression, aud []string, desc string) (directory.FederatedCredential, bool, error) {
	ctx := r.Context()
	old, err := h.cfg.Store.GetFederatedCredential(ctx, tid, parent, name)
	if errors.Is(err, store.ErrNotFound) {
		if err := putPreconditions(r, fmt.Sprintf("federated identity credential %q", name), false); err != nil {
			return directory.FederatedCredential{}, false, err
		}
		f := directory.FederatedCredential{TenantID: tid, ParentKind: kind, ParentClientID: parent, ID: orNewID(id), Name: name}
		setCred(&f, issuer, subject, expr, aud, desc)
		f, err := h.cfg.Store.CreateFederatedCredential(ctx, f)
		return f, true, err
	} else if err != nil {
		return directory.FederatedCredential{}, false, err
	}
	if err := putPreconditions(r, fmt.Sprintf("federated identity credential %q", name), true); err != nil {
		return directory.FederatedCredential{}, false, err
	}
	if err := immutable("id", id, old.ID); err != nil {
		return directory.FederatedCredential{}, false, err
	}
	f, err := h.cfg.Store.UpdateFederatedCredential(ctx, tid, parent, name, func(f *directory.FederatedCredential) error {
		if err := ifMatch(r, f.Version); err != nil {
			return err
		}
		setCred(f, issuer, subject, expr, aud, desc)
		return nil
	})
	return f, false, err
}

func (h *Handler) deleteCred(r *http.Request, tid, parent, name string) error {
	return notFound(h.cfg.Store.DeleteFederatedCredential(r.Context(), tid, parent, name, ifMatchDelete(r)), "federated identity credential %q", name)
}

func (h *Handler) deleteAppCred(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	if err := h.mayChangeAppPrincipal(r, tid, appID); err != nil {
		return err
	}
	if err := h.deleteCred(r, tid, appID, r.PathValue("credentialName")); err != nil {
		return err
	}
	return noContent(w)
}

// ---- managed identities ----

func (h *Handler) identityRef(r *http.Request) (string, store.IdentityRef, error) {
	tid, err := h.tenantID(r)
	if err != nil {
		return "", store.IdentityRef{}, err
	}
	sub := r.PathValue("subscriptionId")
	if !directory.IsGUID(sub) {
		return "", store.IdentityRef{}, &directory.ValidationError{Field: "subscriptionId", Rule: "must be a GUID", Value: sub}
	}
	return tid, store.IdentityRef{SubscriptionID: directory.CanonicalID(sub), ResourceGroup: r.PathValue("resourceGroup"), Name: r.PathValue("name")}, nil
}

func (h *Handler) listIdentities(w http.ResponseWriter, r *http.Request) error {
	tid, ref, err := h.identityRef(r)
	if err != nil {
		return err
	}
	if err := h.tenantExists(r, tid); err != nil {
		return err
	}
	return h.pageIdentities(w, r, tid, store.IdentityFilter{SubscriptionID: ref.SubscriptionID, ResourceGroup: ref.ResourceGroup})
}

// pageIdentities answers one page of identities in the store's order
// (subscription, group, name), read by keyset: $skipToken names the last
// identity of the previous page, so the millionth page costs what the
// first does.
func (h *Handler) pageIdentities(w http.ResponseWriter, r *http.Request, tid string, f store.IdentityFilter) error {
	top, err := pageSize(r)
	if err != nil {
		return err
	}
	if v := r.URL.Query().Get("$skipToken"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		var key []string
		if err != nil || json.Unmarshal(b, &key) != nil || len(key) != 3 || key[2] == "" {
			return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "$skipToken %q is not one this server issued: use the nextLink of the previous page", clipText(v, 80))
		}
		f.After = store.IdentityRef{SubscriptionID: key[0], ResourceGroup: key[1], Name: key[2]}
	}
	f.Limit = top + 1
	// namePrefix (wif's): only identities whose name starts with it,
	// case-insensitively — what Graph's startswith(displayName,...) reads.
	if p := r.URL.Query().Get("namePrefix"); p != "" {
		if len(p) > directory.MaxIdentityNameLen {
			return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "namePrefix is longer than a name may be (%d characters)", directory.MaxIdentityNameLen)
		}
		f.NamePrefix = p
	}
	ms, err := h.cfg.Store.ListManagedIdentities(r.Context(), tid, f)
	if err != nil {
		return err
	}
	out := List[IdentityResource]{Value: []IdentityResource{}}
	for i, m := range ms {
		if i == top {
			last := ms[top-1]
			b, _ := json.Marshal([]string{last.SubscriptionID, last.ResourceGroup, last.Name})
			out.NextLink = nextLink(r, base64.RawURLEncoding.EncodeToString(b))
			break
		}
		out.Value = append(out.Value, identityResource(m))
	}
	return respond(w, http.StatusOK, "", out)
}

func (h *Handler) getIdentity(w http.ResponseWriter, r *http.Request) error {
	tid, ref, err := h.identityRef(r)
	if err != nil {
		return err
	}
	m, err := h.cfg.Store.GetManagedIdentity(r.Context(), tid, ref)
	if err != nil {
		return identityNotFound(err, ref)
	}
	return respond(w, 200, ETag(m.Version), identityResource(m))
}

func identityNotFound(err error, ref store.IdentityRef) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, CodeNotFound, "the managed identity %q does not exist in resource group %q of subscription %s", ref.Name, ref.ResourceGroup, ref.SubscriptionID)
	}
	return err
}

func (h *Handler) putIdentity(w http.ResponseWriter, r *http.Request) error {
	tid, ref, err := h.identityRef(r)
	if err != nil {
		return err
	}
	var in IdentityResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name != "" && !strings.EqualFold(in.Name, ref.Name) {
		return &directory.ValidationError{Field: "name", Rule: "must match the name in the path, " + ref.Name, Value: in.Name}
	}
	ctx := r.Context()
	old, err := h.cfg.Store.GetManagedIdentity(ctx, tid, ref)
	if errors.Is(err, store.ErrNotFound) {
		if err := putPreconditions(r, fmt.Sprintf("managed identity %q", ref.Name), false); err != nil {
			return err
		}
		if err := h.tenantExists(r, tid); err != nil {
			return err
		}
		m := directory.ManagedIdentity{TenantID: tid, SubscriptionID: ref.SubscriptionID, ResourceGroup: ref.ResourceGroup, Name: ref.Name,
			Location: in.Location, Tags: in.Tags, ClientID: directory.NewID(), PrincipalID: directory.NewID()}
		if in.Properties != nil {
			m.ClientID, m.PrincipalID = orNewID(in.Properties.ClientID), orNewID(in.Properties.PrincipalID)
		}
		m, err = h.cfg.Store.CreateManagedIdentity(ctx, m)
		if err != nil {
			return err
		}
		return respond(w, http.StatusCreated, ETag(m.Version), identityResource(m))
	} else if err != nil {
		return err
	}
	if err := putPreconditions(r, fmt.Sprintf("managed identity %q", ref.Name), true); err != nil {
		return err
	}
	if err := h.mayChangePrincipal(r, tid, old.PrincipalID, identityName(old)); err != nil {
		return err
	}
	if in.Properties != nil {
		if err := immutable("properties.clientId", in.Properties.ClientID, old.ClientID); err != nil {
			return err
		}
		if err := immutable("properties.principalId", in.Properties.PrincipalID, old.PrincipalID); err != nil {
			return err
		}
	}
	m, err := h.cfg.Store.UpdateManagedIdentity(ctx, tid, ref, func(m *directory.ManagedIdentity) error {
		if err := ifMatch(r, m.Version); err != nil {
			return err
		}
		m.Location, m.Tags = in.Location, in.Tags
		return nil
	})
	if err != nil {
		return err
	}
	return respond(w, 200, ETag(m.Version), identityResource(m))
}

type identityPatch struct {
	Location *string           `json:"location"`
	Tags     map[string]string `json:"tags"`
}

func (h *Handler) patchIdentity(w http.ResponseWriter, r *http.Request) error {
	tid, ref, err := h.identityRef(r)
	if err != nil {
		return err
	}
	var in identityPatch
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	old, err := h.cfg.Store.GetManagedIdentity(r.Context(), tid, ref)
	if err != nil {
		return identityNotFound(err, ref)
	}
	if err := h.mayChangePrincipal(r, tid, old.PrincipalID, identityName(old)); err != nil {
		return err
	}
	m, err := h.cfg.Store.UpdateManagedIdentity(r.Context(), tid, ref, func(m *directory.ManagedIdentity) error {
		if err := ifMatch(r, m.Version); err != nil {
			return err
		}
		if in.Location != nil {
			m.Location = *in.Location
		}
		if in.Tags != nil {
			m.Tags = in.Tags
		}
		return nil
	})
	if err != nil {
		return identityNotFound(err, ref)
	}
	return respond(w, 200, ETag(m.Version), identityResource(m))
}

func (h *Handler) deleteIdentity(w http.ResponseWriter, r *http.Request) error {
	tid, ref, err := h.identityRef(r)
	if err != nil {
		return err
	}
	m, err := h.cfg.Store.GetManagedIdentity(r.Context(), tid, ref)
	if err != nil {
		return identityNotFound(err, ref)
	}
	if err := h.mayChangePrincipal(r, tid, m.PrincipalID, identityName(m)); err != nil {
		return err
	}
	if err := h.refuseIfInUse(r, tid, m.ClientID, identityName(m), "", m.PrincipalID); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteManagedIdentity(r.Context(), tid, ref, ifMatchDelete(r)); err != nil {
		return identityNotFound(err, ref)
	}
	return noContent(w)
}

// ---- identity credentials ----

func (h *Handler) identityFor(r *http.Request) (string, directory.ManagedIdentity, error) {
	tid, ref, err := h.identityRef(r)
	if err != nil {
		return "", directory.ManagedIdentity{}, err
	}
	m, err := h.cfg.Store.GetManagedIdentity(r.Context(), tid, ref)
	if err != nil {
		return "", directory.ManagedIdentity{}, identityNotFound(err, ref)
	}
	return tid, m, nil
}

func (h *Handler) listIdentityCreds(w http.ResponseWriter, r *http.Request) error {
	tid, m, err := h.identityFor(r)
	if err != nil {
		return err
	}
	fs, err := h.cfg.Store.ListFederatedCredentials(r.Context(), tid, m.ClientID)
	if err != nil {
		return err
	}
	used, err := h.cfg.Store.CredentialUsage(r.Context(), tid)
	if err != nil {
		return err
	}
	sortCreds(fs)
	out := make([]IdentityCredentialResource, len(fs))
	for i, f := range fs {
		out[i] = identityCredentialResource(m, f, used[f.ID])
	}
	return page(w, r, out)
}

func (h *Handler) getIdentityCred(w http.ResponseWriter, r *http.Request) error {
	tid, m, err := h.identityFor(r)
	if err != nil {
		return err
	}
	name := r.PathValue("credentialName")
	f, err := h.cfg.Store.GetFederatedCredential(r.Context(), tid, m.ClientID, name)
	if err != nil {
		return notFound(err, "federated identity credential %q of managed identity %q", name, m.Name)
	}
	used, err := h.cfg.Store.CredentialUsage(r.Context(), tid)
	if err != nil {
		return err
	}
	return respond(w, 200, ETag(f.Version), identityCredentialResource(m, f, used[f.ID]))
}

func (h *Handler) putIdentityCred(w http.ResponseWriter, r *http.Request) error {
	tid, m, err := h.identityFor(r)
	if err != nil {
		return err
	}
	name := r.PathValue("credentialName")
	var in IdentityCredentialResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return &directory.ValidationError{Field: "name", Rule: "must match the name in the path, " + name + " (names are immutable)", Value: in.Name}
	}
	if in.Properties == nil {
		return &directory.ValidationError{Field: "properties", Rule: "is required: {\"issuer\": ..., \"subject\": ..., \"audiences\": [...]}"}
	}
	if err := h.mayChangePrincipal(r, tid, m.PrincipalID, identityName(m)); err != nil {
		return err
	}
	p := in.Properties
	f, created, err := h.upsertCred(r, tid, directory.ParentManagedIdentity, m.ClientID, name, "", p.Issuer, p.Subject, p.ClaimsMatchingExpression, p.Audiences, p.Description)
	if err != nil {
		return err
	}
	return respond(w, statusFor(created), ETag(f.Version), identityCredentialResource(m, f, time.Time{}))
}

func (h *Handler) deleteIdentityCred(w http.ResponseWriter, r *http.Request) error {
	tid, m, err := h.identityFor(r)
	if err != nil {
		return err
	}
	if err := h.mayChangePrincipal(r, tid, m.PrincipalID, identityName(m)); err != nil {
		return err
	}
	if err := h.deleteCred(r, tid, m.ClientID, r.PathValue("credentialName")); err != nil {
		return err
	}
	return noContent(w)
}

// ---- app role assignments ----

func (h *Handler) tenantObjects(r *http.Request, tid string) ([]directory.Application, []directory.ManagedIdentity, error) {
	apps, err := h.cfg.Store.ListApplications(r.Context(), tid)
	if err != nil {
		return nil, nil, err
	}
	mis, err := h.cfg.Store.ListManagedIdentities(r.Context(), tid, store.IdentityFilter{})
	if err != nil {
		return nil, nil, err
	}
	return apps, mis, nil
}

func assignmentResource(apps []directory.Application, mis []directory.ManagedIdentity, g directory.AppRoleAssignment) AssignmentResource {
	return describedAssignment(apply.NewDescriber(apps, mis), g)
}

// describedAssignment is an assignment with its readable names, from a
// describer built once per tenant.
func describedAssignment(ds *apply.Describer, g directory.AppRoleAssignment) AssignmentResource {
	d := ds.Describe(g)
	out := AssignmentResource{ID: g.ID, PrincipalID: g.PrincipalID, ResourceAppID: g.ResourceAppID, AppRoleID: g.AppRoleID,
		Principal: d.Principal, Resource: d.Resource, Role: d.Role}
	if !g.CreatedAt.IsZero() {
		out.CreatedAt = g.CreatedAt.UTC().Format(time.RFC3339)
	}
	return out
}

func (h *Handler) listAssignments(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	if err := h.tenantExists(r, tid); err != nil {
		return err
	}
	q := r.URL.Query()
	gs, err := h.cfg.Store.ListAppRoleAssignments(r.Context(), tid, store.AssignmentFilter{
		PrincipalID: canonIfGUID(q.Get("principalId")), ResourceAppID: canonIfGUID(q.Get("resourceAppId"))})
	if err != nil {
		return err
	}
	apps, mis, err := h.tenantObjects(r, tid)
	if err != nil {
		return err
	}
	out := make([]AssignmentResource, len(gs))
	ds := apply.NewDescriber(apps, mis)
	for i, g := range gs {
		out[i] = describedAssignment(ds, g)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Principal+"\x00"+out[i].Resource+"\x00"+out[i].Role < out[j].Principal+"\x00"+out[j].Resource+"\x00"+out[j].Role
	})
	return page(w, r, out)
}

func (h *Handler) postAssignment(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	var in AssignmentResource
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if err := h.tenantExists(r, tid); err != nil {
		return err
	}
	apps, mis, err := h.tenantObjects(r, tid)
	if err != nil {
		return err
	}
	g := directory.AppRoleAssignment{TenantID: tid, ID: directory.NewID(), PrincipalID: canonIfGUID(in.PrincipalID),
		ResourceAppID: canonIfGUID(in.ResourceAppID), AppRoleID: canonIfGUID(in.AppRoleID)}
	if g.PrincipalID == "" || g.ResourceAppID == "" || g.AppRoleID == "" {
		names := apply.Assignment{Principal: first(in.Principal, in.PrincipalID), Resource: first(in.Resource, in.ResourceAppID), Role: first(in.Role, in.AppRoleID)}
		pid, res, role, err := apply.Resolve(apps, mis, names)
		if err != nil {
			return err
		}
		g.PrincipalID, g.ResourceAppID, g.AppRoleID = pid, res.AppID, role.ID
	}
	var gains []string
	if v := assignedRoleValue(apps, g); v != "" {
		gains = append(gains, v)
	}
	if err := h.mayChangePrincipal(r, tid, g.PrincipalID, principalName(apps, mis, g.PrincipalID), gains...); err != nil {
		return err
	}
	g, err = h.cfg.Store.CreateAppRoleAssignment(r.Context(), g)
	if err != nil {
		return err
	}
	return respond(w, http.StatusCreated, "", assignmentResource(apps, mis, g))
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (h *Handler) deleteAssignment(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	id := r.PathValue("assignmentId")
	if err := h.mayRemoveAssignment(r, tid, canonIfGUID(id)); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteAppRoleAssignment(r.Context(), tid, canonIfGUID(id)); err != nil {
		return notFound(err, "app role assignment %s in tenant %s", id, tid)
	}
	return noContent(w)
}

// ---- audit ----

func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AuditFilter{TenantID: tid, ClientID: canonIfGUID(q.Get("clientId")), CorrelationID: q.Get("correlationId"), Result: q.Get("result"), After: q.Get("$skipToken")}
	if f.Result != "" && f.Result != store.AuditSuccess && f.Result != store.AuditFailure {
		return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "result must be %q or %q, not %q", store.AuditSuccess, store.AuditFailure, f.Result)
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", p.name, v)
			}
			*p.t = t
		}
	}
	f.Limit = DefaultPageSize
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "$top must be an integer from 1 to %d, not %q", MaxPageSize, v)
		}
		f.Limit = n
	}
	pg, err := h.cfg.Store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	apps, err := h.cfg.Store.ListApplications(r.Context(), tid)
	if err != nil {
		return err
	}
	uris := map[string]string{}
	for _, a := range apps {
		if len(a.IdentifierURIs) > 0 {
			uris[lower(a.AppID)] = a.IdentifierURIs[0]
		}
	}
	out := List[AuditResource]{Value: []AuditResource{}}
	for _, a := range pg.Records {
		out.Value = append(out.Value, auditResource(a, uris[lower(a.Resource)]))
	}
	if pg.NextCursor != "" {
		out.NextLink = nextLink(r, pg.NextCursor)
	}
	return respond(w, 200, "", out)
}

// ---- the whole directory ----

func (h *Handler) exportDirectory(w http.ResponseWriter, r *http.Request) error {
	doc, err := apply.Export(r.Context(), h.cfg.Store)
	if err != nil {
		return err
	}
	if wantsYAML(r) {
		b, err := doc.Marshal()
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b)
		return nil
	}
	return respond(w, 200, "", doc)
}

func wantsYAML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "yaml")
}

func (h *Handler) applyDirectory(w http.ResponseWriter, r *http.Request) error {
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxApplyBytes)
	data, err := io.ReadAll(body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "the directory document is larger than the %d bytes this server takes (wif serve --max-apply-bytes); split the directory by tenant and apply the parts one at a time", mbe.Limit)
	}
	if err != nil {
		return err
	}
	// YAML is a superset of JSON: one strict parser serves both.
	doc, err := apply.Parse(bytes.NewReader(data))
	if err != nil {
		var ves directory.ValidationErrors
		if errors.As(err, &ves) {
			return err
		}
		return errorf(http.StatusBadRequest, CodeInvalidRequest, "%v", err)
	}
	opts := apply.Options{Prune: boolQuery(r, "prune"), DryRun: boolQuery(r, "dryRun")}
	var window time.Duration
	if v := r.URL.Query().Get("replay"); v != "" {
		if !opts.DryRun {
			return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "replay is for dry runs: add dryRun=true")
		}
		if window, err = parseWindow(v); err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "replay must be a window such as 24h or 7d, at most %d days, not %q (%v)", int(MaxReplayWindow.Hours()/24), clipText(v, 40), err)
		}
	}
	if opts.Prune {
		snap, err := h.cfg.Store.Snapshot(r.Context())
		if err != nil {
			return err
		}
		opts.Keep = ProtectAdminAccess(snap)
	}
	res, err := apply.Apply(r.Context(), h.cfg.Store, doc, opts)
	if err != nil {
		return err
	}
	out := ApplyResult{Changes: res.Plan.Changes, Kept: res.Plan.Kept, Applied: res.Applied, Summary: res.Plan.String()}
	if out.Changes == nil {
		out.Changes = []apply.Change{}
	}
	if window > 0 {
		if out.Replay, err = h.replay(r, doc, opts, r.URL.Query().Get("replay"), window); err != nil {
			return err
		}
	}
	return respond(w, 200, "", out)
}

// ApplyResult is the reply to POST /admin/directory.
type ApplyResult struct {
	Changes []apply.Change `json:"changes"`
	// Kept lists what --prune would have deleted but the admin API keeps
	// (its own access: see ProtectAdminAccess).
	Kept    []string `json:"kept,omitempty"`
	Applied int      `json:"applied"`
	// Summary is the plan as a readable diff.
	Summary string `json:"summary"`
	// Replay, for a dry run with replay=WINDOW, is what the plan would
	// change for the exchanges audited in the window.
	Replay *ReplayReport `json:"replay,omitempty"`
}

// mayChangeAppPrincipal guards writes to an application's credentials: the
// application signs in as its service principal.
func (h *Handler) mayChangeAppPrincipal(r *http.Request, tid, appID string) error {
	if callerFrom(r).Unrestricted {
		return nil
	}
	a, err := h.cfg.Store.GetApplication(r.Context(), tid, appID)
	if err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	return h.mayChangePrincipal(r, tid, a.ServicePrincipalID, appName(a))
}

// mayRemoveAssignment refuses to remove an admin role the caller does not
// hold itself.
func (h *Handler) mayRemoveAssignment(r *http.Request, tid, id string) error {
	c := callerFrom(r)
	if c.Unrestricted {
		return nil
	}
	gs, err := h.cfg.Store.ListAppRoleAssignments(r.Context(), tid, store.AssignmentFilter{})
	if err != nil {
		return err
	}
	for _, g := range gs {
		if !strings.EqualFold(g.ID, id) {
			continue
		}
		apps, mis, err := h.tenantObjects(r, tid)
		if err != nil {
			return err
		}
		if v := assignedRoleValue(apps, g); v != "" {
			return c.MayGrant(Holding{Principal: principalName(apps, mis, g.PrincipalID), TenantID: tid, Roles: []string{v}})
		}
		return nil
	}
	return nil // the delete itself answers 404
}

func identityName(m directory.ManagedIdentity) string {
	return fmt.Sprintf("managed identity %q (resource group %s)", m.Name, m.ResourceGroup)
}

func appName(a directory.Application) string {
	return fmt.Sprintf("application %q (%s)", a.DisplayName, a.AppID)
}

// refuseIfInUse, with refuseIfInUse=true, refuses to delete an application
// or identity that still has federated credentials or role assignments (as
// the principal, or for an application as the resource). Without it the
// store deletes them with it.
func (h *Handler) refuseIfInUse(r *http.Request, tid, clientID, what, resourceAppID, principalID string) error {
	if !boolQuery(r, "refuseIfInUse") {
		return nil
	}
	fs, err := h.cfg.Store.ListFederatedCredentials(r.Context(), tid, clientID)
	if err != nil {
		return err
	}
	gs, err := h.cfg.Store.ListAppRoleAssignments(r.Context(), tid, store.AssignmentFilter{PrincipalID: principalID})
	if err != nil {
		return err
	}
	n := len(gs)
	if resourceAppID != "" {
		to, err := h.cfg.Store.ListAppRoleAssignments(r.Context(), tid, store.AssignmentFilter{ResourceAppID: resourceAppID})
		if err != nil {
			return err
		}
		n += len(to)
	}
	if len(fs) > 0 || n > 0 {
		return errorf(http.StatusConflict, CodeConflict, "%s has %d federated credential(s) and %d role assignment(s) and refuseIfInUse is set; remove them first, or drop refuseIfInUse to delete them with it", what, len(fs), n)
	}
	return nil
}

// TestRequest is the body of a credential dry-run.
type TestRequest struct {
	// Assertion is the platform token to try (a JWT), as the workload
	// would send it.
	Assertion string `json:"assertion"`
}

func (h *Handler) testIdentityCreds(w http.ResponseWriter, r *http.Request) error {
	tid, m, err := h.identityFor(r)
	if err != nil {
		return err
	}
	return h.testCreds(w, r, tid, m.ClientID)
}

func (h *Handler) testAppCreds(w http.ResponseWriter, r *http.Request) error {
	tid, appID, err := h.appID(r)
	if err != nil {
		return err
	}
	if _, err := h.cfg.Store.GetApplication(r.Context(), tid, appID); err != nil {
		return notFound(err, "application %s in tenant %s", appID, tid)
	}
	return h.testCreds(w, r, tid, appID)
}

func (h *Handler) testCreds(w http.ResponseWriter, r *http.Request, tid, clientID string) error {
	if h.cfg.Tester == nil {
		return errorf(http.StatusNotImplemented, CodeBadRequest, "this server has no token endpoint to dry-run against")
	}
	var in TestRequest
	if err := h.decode(w, r, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.Assertion) == "" {
		return &directory.ValidationError{Field: "assertion", Rule: "is required: the platform token (a JWT) to try"}
	}
	res, err := h.cfg.Tester.TestAssertion(r.Context(), tid, clientID, in.Assertion)
	if errors.Is(err, sts.ErrUnknownTenant) {
		// The store has the tenant but the token service has not loaded
		// it yet: a moment after it was created.
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the token service has not loaded tenant %s yet; retry", tid)
	}
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, "", res)
}
