// Package arm serves Azure Resource Manager on the token service's own
// host, so that az, Terraform's providers and the management SDKs manage
// wif with their own commands: the cloud's endpoint metadata (GET
// /metadata/endpoints, in the three shapes ARM answers by api-version),
// the subscriptions and tenants the caller's token may see (GET
// /subscriptions, GET /tenants, which az login lists), and below
// /subscriptions/ resource groups, user-assigned managed identities and
// their federated identity credentials (resources.go). Requests are
// authenticated as the admin API's are (bearer tokens of this service for
// api://wif-admin, the cloud's Resource Manager audience); resource
// requests become admin API operations run in-process on the caller's
// behalf (admin.Handler.Call), so what each caller may do is the admin
// API's decision; errors and headers are ARM's.
package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/store"
)

// Audience is the Resource Manager audience the metadata names: tokens for
// it are the admin API's tokens.
const Audience = admin.AdminResource

// CloudName is the name wif's cloud metadata gives itself.
const CloudName = "wif"

// Identifier authenticates a request (admin.TokenAuthorizer.Identify).
type Identifier interface {
	Identify(r *http.Request) (admin.Caller, error)
}

// Config configures the handler.
type Config struct {
	// Store is the directory (required).
	Store store.DirectoryStore
	// Identify authenticates callers (required).
	Identify Identifier
	// Admin is the admin API: every request for a resource becomes one or
	// more of its operations, with its validation and authorization
	// (required).
	Admin *admin.Handler
	// PublicURL is the token service's URL, the login endpoint and the
	// Resource Manager endpoint at once (no trailing '/').
	PublicURL string
	Logger    *slog.Logger
}

// Handler serves the endpoints.
type Handler struct{ cfg Config }

// New checks cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Identify == nil || cfg.Admin == nil || cfg.PublicURL == "" {
		return nil, errors.New("arm: Store, Identify, Admin and PublicURL are required")
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}, nil
}

// Mount registers the discovery endpoints on mux. The resources below
// /subscriptions/ are served by Resources, which the server routes to
// before its mux (a pattern for them would overlap the token service's
// "/{tenant}/..." ones).
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /metadata/endpoints", h.endpoints)
	mux.HandleFunc("GET /subscriptions", h.subscriptions)
	mux.HandleFunc("GET /tenants", h.tenants)
}

// metadataShape is the shape of /metadata/endpoints an API version
// answers, as ARM's: before 2019-05-01 (2015-01-01, which msrestazure and
// az cloud register send) the legacy object; from 2019-05-01 the list of
// every cloud; from 2022-09-01 (go-azure-sdk's environment loader,
// Terraform's metadata_host) the endpoint's own cloud as one object.
func metadataShape(version string) string {
	switch {
	case version >= "2022-09-01":
		return "cloud"
	case version >= "2019-05-01":
		return "list"
	}
	return "legacy"
}

// authentication is the metadata's authentication block.
type authentication struct {
	LoginEndpoint    string   `json:"loginEndpoint"`
	Audiences        []string `json:"audiences"`
	Tenant           string   `json:"tenant,omitempty"`
	IdentityProvider string   `json:"identityProvider,omitempty"`
}

func (h *Handler) endpoints(w http.ResponseWriter, r *http.Request) {
	version, ok := apiVersion(w, r)
	if !ok {
		return
	}
	base := h.cfg.PublicURL + "/"
	if metadataShape(version) == "legacy" {
		// The 2015-01-01 shape msrestazure reads in az cloud register.
		writeJSON(w, r, http.StatusOK, map[string]any{
			"galleryEndpoint": "",
			"graphEndpoint":   base,
			"portalEndpoint":  "",
			"authentication":  authentication{LoginEndpoint: base, Audiences: []string{Audience}},
		})
		return
	}
	cloud := map[string]any{
		"name":                     CloudName,
		"resourceManager":          base,
		"authentication":           authentication{LoginEndpoint: base, Audiences: []string{Audience}, Tenant: "common", IdentityProvider: "AAD"},
		"graph":                    base,
		"graphAudience":            base,
		"microsoftGraphResourceId": base,
		"portal":                   "",
		"suffixes":                 map[string]string{},
	}
	if metadataShape(version) == "cloud" {
		writeJSON(w, r, http.StatusOK, cloud)
		return
	}
	writeJSON(w, r, http.StatusOK, []map[string]any{cloud})
}

// subscription is ARM's subscription object.
type subscription struct {
	ID                   string            `json:"id"`
	AuthorizationSource  string            `json:"authorizationSource"`
	ManagedByTenants     []string          `json:"managedByTenants"`
	SubscriptionID       string            `json:"subscriptionId"`
	TenantID             string            `json:"tenantId"`
	DisplayName          string            `json:"displayName"`
	State                string            `json:"state"`
	SubscriptionPolicies map[string]string `json:"subscriptionPolicies"`
}

type count struct {
	Type  string `json:"type"`
	Value int    `json:"value"`
}

// subscriptions lists the subscriptions of the caller's tenant that hold
// its managed identities or resource groups, when the caller may read them
// (an admin role in that tenant); empty otherwise — a valid answer (az
// login then needs --allow-no-subscriptions).
func (h *Handler) subscriptions(w http.ResponseWriter, r *http.Request) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	c, ok := h.identify(w, r)
	if !ok {
		return
	}
	out, err := h.visibleSubscriptions(r, c)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"value": out, "count": count{Type: "Total", Value: len(out)}})
}

// visibleSubscriptions are the subscriptions of the tenants whose
// identities the caller may read.
func (h *Handler) visibleSubscriptions(r *http.Request, c admin.Caller) ([]subscription, error) {
	tenants, err := h.visibleTenants(r, c)
	if err != nil {
		return nil, err
	}
	out := []subscription{}
	for _, t := range tenants {
		mis, err := h.cfg.Store.ListManagedIdentities(r.Context(), t.ID, store.IdentityFilter{})
		if err != nil {
			return nil, err
		}
		gs, err := h.cfg.Store.ListResourceGroups(r.Context(), t.ID)
		if err != nil {
			return nil, err
		}
		subs := make([]string, 0, len(mis)+len(gs))
		for _, m := range mis {
			subs = append(subs, m.SubscriptionID)
		}
		for _, g := range gs {
			subs = append(subs, g.SubscriptionID)
		}
		seen := map[string]bool{}
		for _, sub := range subs {
			if seen[sub] {
				continue
			}
			seen[sub] = true
			out = append(out, subscription{
				ID: "/subscriptions/" + sub, AuthorizationSource: "RoleBased", ManagedByTenants: []string{},
				SubscriptionID: sub, TenantID: t.ID, DisplayName: t.DisplayName + " " + sub[:8], State: "Enabled",
				SubscriptionPolicies: map[string]string{"locationPlacementId": "Public_2014-09-01", "quotaId": "Internal_2014-09-01", "spendingLimit": "Off"},
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].TenantID+out[i].SubscriptionID < out[j].TenantID+out[j].SubscriptionID
	})
	return out, nil
}

// tenants lists the caller's tenant (every tenant for an operator admin or
// wif dev's loopback caller).
func (h *Handler) tenants(w http.ResponseWriter, r *http.Request) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	c, ok := h.identify(w, r)
	if !ok {
		return
	}
	var ts []directory.Tenant
	if c.Unrestricted || c.Operator && admin.Allowed(c.Roles, c.TenantID, true, admin.Operation{Scope: admin.ScopeTenant}) == nil {
		all, err := h.cfg.Store.ListTenants(r.Context())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		ts = all
	} else if t, err := h.cfg.Store.GetTenant(r.Context(), c.TenantID); err == nil {
		ts = []directory.Tenant{t}
	} else if !errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, t := range ts {
		out = append(out, map[string]any{"id": "/tenants/" + t.ID, "tenantId": t.ID, "tenantCategory": "Home", "displayName": t.DisplayName, "domains": []string{}})
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"value": out, "count": count{Type: "Total", Value: len(out)}})
}

// visibleTenants are the tenants whose subscriptions the caller may see:
// its own, when it may read managed identities there (every tenant for wif
// dev's loopback caller).
func (h *Handler) visibleTenants(r *http.Request, c admin.Caller) ([]directory.Tenant, error) {
	if c.Unrestricted {
		return h.cfg.Store.ListTenants(r.Context())
	}
	if admin.Allowed(c.Roles, c.TenantID, c.Operator, admin.Operation{Scope: admin.ScopeIdentity, TenantID: c.TenantID}) != nil {
		return nil, nil
	}
	t, err := h.cfg.Store.GetTenant(r.Context(), c.TenantID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []directory.Tenant{t}, nil
}

func (h *Handler) identify(w http.ResponseWriter, r *http.Request) (admin.Caller, bool) {
	c, err := h.cfg.Identify.Identify(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s/common/oauth2/authorize", error="invalid_token", error_description="the access token is missing or invalid"`, h.cfg.PublicURL))
		writeError(w, r, http.StatusUnauthorized, "AuthenticationFailed", strings.TrimPrefix(err.Error(), admin.ErrUnauthenticated.Error()+": "))
		return admin.Caller{}, false
	}
	return c, true
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil || store.IsUnavailable(err) {
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, "ServiceUnavailable", "the directory is unavailable; retry after a short wait")
		return
	}
	h.cfg.Logger.Error("resource manager request failed", "path", r.URL.Path, "error", err)
	writeError(w, r, http.StatusInternalServerError, "InternalServerError", "the request failed; see the server log")
}

// apiVersion requires the api-version query parameter, as ARM does.
func apiVersion(w http.ResponseWriter, r *http.Request) (string, bool) {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		writeError(w, r, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return "", false
	}
	return v, true
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeJSON(w, r, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// writeJSON writes v with ARM's request id headers (the caller's
// x-ms-correlation-request-id echoed when it is sane).
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	writeHeaders(w, r)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeHeaders sets ARM's headers of every answer: its request id, the
// caller's x-ms-correlation-request-id echoed when it is a GUID (a fresh
// one otherwise), no caching.
func writeHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	id := httpx.NewCorrelationID()
	corr := r.Header.Get("x-ms-correlation-request-id")
	if !directory.IsGUID(corr) {
		corr = id
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("x-ms-request-id", id)
	h.Set("x-ms-correlation-request-id", corr)
}
