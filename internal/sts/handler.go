package sts

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/store"
)

// Mount registers the token service's endpoints (spec/sts.md §2) on mux.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.tokenHandler(2))
	mux.HandleFunc("POST /{tenant}/oauth2/token", s.tokenHandler(1))
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.metadataHandler(2))
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", s.metadataHandler(1))
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.keysHandler)
	mux.HandleFunc("GET /{tenant}/discovery/keys", s.keysHandler)
	mux.HandleFunc("GET /discovery/keys", s.keysHandler)
	mux.HandleFunc("GET /common/discovery/instance", s.instanceHandler)
	// AZURE_AUTHORITY_HOST with a path (https://host/<tenant>/): the SDKs
	// ask for /<tenant>/<tenant>/... — answer with the reason, in Entra's
	// shape, instead of a bare 404.
	for _, p := range []string{"POST /{prefix}/{tenant}/oauth2/v2.0/token", "POST /{prefix}/{tenant}/oauth2/token",
		"GET /{prefix}/{tenant}/v2.0/.well-known/openid-configuration", "GET /{prefix}/{tenant}/.well-known/openid-configuration"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, errAuthorityWithPath(clip(r.PathValue("prefix")), clip(r.PathValue("tenant"))), httpx.NewCorrelationID())
		})
	}
	mux.HandleFunc("GET /error", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, catalogText(r.URL.Query().Get("code")))
	})
	for _, p := range []string{"/{tenant}/oauth2/v2.0/authorize", "/{tenant}/oauth2/authorize", "/{tenant}/oauth2/v2.0/devicecode"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, newError(errInvalidRequest, CodeUnsupportedGrant, "Interactive and device-code sign-in are not supported: wif issues tokens to workloads (client credentials with a federated assertion)."), httpx.NewCorrelationID())
		})
	}
}

// Handler returns the token service's endpoints on a new mux.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Mount(mux)
	return mux
}

func (s *Service) tokenHandler(endpoint int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.admit != nil {
			release, ok := s.admit.acquire(r.Context())
			if !ok {
				// Overload: answered before the body is read, not audited
				// (counted in wif_sts_shed_total), as cheaply as possible.
				s.writeError(w, r, errOverloaded(), httpx.NewCorrelationID())
				return
			}
			defer release()
		}
		start := time.Now()
		correlationID := r.Header.Get("client-request-id")
		rec := store.AuditRecord{Time: s.cfg.Now().UTC(), RemoteAddr: r.RemoteAddr}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		var (
			req *tokenRequest
			e   *Error
			tok *issued
		)
		if err != nil {
			e = errMalformed("The request body could not be read.").withCause(err)
		} else {
			req, e = parseTokenRequest(r.Header.Get("Content-Type"), body, r.URL.Query(), endpoint)
		}
		if req != nil {
			rec.GrantType, rec.ClientID = clip(req.grantType), clip(req.clientID)
			if correlationID == "" {
				correlationID = req.clientRequestID
			}
		}
		if correlationID == "" || len(correlationID) > 64 {
			correlationID = httpx.NewCorrelationID()
		}
		rec.CorrelationID = correlationID
		ti := s.dir.load().tenants[lowerASCII(r.PathValue("tenant"))]
		switch {
		case ti != nil:
			rec.TenantID = ti.tenant.ID
		case e == nil:
			e = errTenantNotFound(clip(r.PathValue("tenant")))
		}
		if e == nil {
			e = s.refusal()
		}
		if e == nil {
			tok, e = s.exchange(r.Context(), ti, req, &rec)
		}
		grant := "unknown"
		if req != nil {
			grant = req.grantType
		}
		if e != nil {
			rec.Result, rec.ErrorCode, rec.Error = store.AuditFailure, e.Code, e.Err
			if rec.Reason == "" {
				rec.Reason = clip(e.Description)
			}
			s.metrics.observe(grant, store.AuditFailure, e.Code, time.Since(start))
			if s.unknown.record(ti, e.Code) {
				s.audit.add(rec)
				s.log.LogAttrs(r.Context(), levelFor(e), "token request refused",
					slog.String("correlation_id", correlationID), slog.String("tenant", rec.TenantID),
					slog.String("client_id", rec.ClientID), slog.String("grant_type", grant),
					slog.String("assertion_iss", rec.Issuer), slog.String("assertion_sub", rec.Subject),
					slog.String("error", e.Err), slog.Int("code", e.Code), slog.String("reason", rec.Reason),
					slog.Any("cause", e.cause))
			}
			s.writeError(w, r, e, correlationID)
			return
		}
		rec.Result = store.AuditSuccess
		s.audit.add(rec)
		s.metrics.observe(grant, store.AuditSuccess, 0, time.Since(start))
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "token issued",
			slog.String("correlation_id", correlationID), slog.String("tenant", rec.TenantID),
			slog.String("client_id", rec.ClientID), slog.String("credential", rec.CredentialName),
			slog.String("assertion_iss", rec.Issuer), slog.String("assertion_sub", rec.Subject),
			slog.String("resource", rec.Resource), slog.String("uti", tok.claims.Uti), slog.Int("version", tok.version))
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		h.Set("client-request-id", correlationID)
		_ = json.NewEncoder(w).Encode(tok.response(req))
	}
}

func levelFor(e *Error) slog.Level {
	if e.Status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}

// errorBody is Entra's error reply.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, e *Error, correlationID string) {
	traceID := httpx.NewCorrelationID()
	ts := entraTime(s.cfg.Now())
	desc := fmt.Sprintf("AADSTS%d: %s", e.Code, e.Description)
	if e.Hint != "" {
		desc += " wif hint: " + e.Hint + "."
	}
	desc += fmt.Sprintf(" Trace ID: %s Correlation ID: %s Timestamp: %s", traceID, correlationID, ts)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("client-request-id", correlationID)
	h.Set("x-ms-request-id", traceID)
	if e.RetryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{
		Error: e.Err, ErrorDescription: desc, ErrorCodes: []int{e.Code}, Timestamp: ts,
		TraceID: traceID, CorrelationID: correlationID,
		ErrorURI: s.cfg.PublicURL + "/error?code=" + fmt.Sprint(e.Code),
	})
}

// metadata is the OpenID configuration of a tenant.
type metadata struct {
	TokenEndpoint                     string   `json:"token_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	Issuer                            string   `json:"issuer"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
	CloudGraphHostName                string   `json:"cloud_graph_host_name"`
	MSGraphHost                       string   `json:"msgraph_host"`
}

func (s *Service) metadataHandler(version int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		seg := r.PathValue("tenant")
		// /common, /organizations and /consumers answer as Entra's do:
		// their issuer holds the placeholder {tenantid} (MSAL and az ask
		// for them before they know the tenant).
		tid := ""
		switch lowerASCII(seg) {
		case "common", "organizations", "consumers":
			seg, tid = lowerASCII(seg), "{tenantid}"
		default:
			ti := s.dir.load().tenants[lowerASCII(seg)]
			if ti == nil {
				e := errTenantNotFound(clip(seg))
				e.Err = "invalid_tenant"
				s.writeError(w, r, e, httpx.NewCorrelationID())
				return
			}
			seg, tid = ti.tenant.ID, ti.tenant.ID
		}
		base := s.cfg.PublicURL + "/" + seg
		host := strings.TrimPrefix(s.cfg.PublicURL, "https://")
		m := metadata{
			TokenEndpointAuthMethodsSupported: []string{"private_key_jwt"},
			ResponseModesSupported:            []string{"query", "fragment", "form_post"},
			SubjectTypesSupported:             []string{"pairwise"},
			IDTokenSigningAlgValuesSupported:  []string{"RS256"},
			ResponseTypesSupported:            []string{"token"},
			GrantTypesSupported:               []string{GrantClientCredentials, GrantTokenExchange},
			CloudInstanceName:                 host,
			CloudGraphHostName:                host,
			MSGraphHost:                       host,
		}
		if version == 2 {
			m.TokenEndpoint = base + "/oauth2/v2.0/token"
			m.JWKSURI = base + "/discovery/v2.0/keys"
			m.Issuer = s.issuerV2(tid)
			m.AuthorizationEndpoint = base + "/oauth2/v2.0/authorize"
			m.ScopesSupported = []string{"openid", "profile", "email", "offline_access"}
		} else {
			m.TokenEndpoint = base + "/oauth2/token"
			m.JWKSURI = base + "/discovery/keys"
			m.Issuer = s.issuerV1(tid)
			m.AuthorizationEndpoint = base + "/oauth2/authorize"
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=86400, private")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_ = json.NewEncoder(w).Encode(m)
	}
}

func (s *Service) keysHandler(w http.ResponseWriter, r *http.Request) {
	if t := r.PathValue("tenant"); t != "" && t != "common" && t != "organizations" && t != "consumers" {
		if s.dir.load().tenants[lowerASCII(t)] == nil {
			e := errTenantNotFound(clip(t))
			e.Err = "invalid_tenant"
			s.writeError(w, r, e, httpx.NewCorrelationID())
			return
		}
	}
	body, etag := s.cfg.Signer.JWKSWithETag()
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	// Relying parties cache keys; a new key is published 48 h before it
	// signs, so an hour's caching never misses one.
	h.Set("Cache-Control", "max-age=3600, public")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && match == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(body)
}

// instanceHandler answers MSAL's instance discovery for this host, so
// clients that do not disable it still work.
func (s *Service) instanceHandler(w http.ResponseWriter, r *http.Request) {
	tenant := "common"
	if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
		if u, err := url.Parse(ae); err == nil {
			if seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/"); seg != "" {
				tenant = seg
			}
		}
	}
	host := strings.TrimPrefix(s.cfg.PublicURL, "https://")
	body := map[string]any{
		"tenant_discovery_endpoint": s.cfg.PublicURL + "/" + url.PathEscape(tenant) + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(body)
}
