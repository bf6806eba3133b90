// Package graph serves the part of Microsoft Graph v1.0 that workload
// identity tools use — applications and their federated identity
// credentials, service principals (of applications and of managed
// identities) and app role assignments — on the token service's own host,
// with Graph's shapes (@odata.context, value, @odata.nextLink), OData
// $filter and Graph's error envelope. It is a mapping: every request
// becomes admin API operations run in-process on the caller's behalf
// (admin.Handler.Call), so validation, authorization and the escalation
// rule are the admin API's. The tenant is the token's.
package graph

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/store"
)

// Prefix is the path prefix Graph v1.0 is served under.
const Prefix = "/v1.0/"

// Limits.
const (
	maxBodyBytes    = 1 << 20
	defaultPageSize = 100
	maxPageSize     = 999
	// maxObjects bounds what one request reads of a tenant's
	// applications or identities (admin pages of 1000).
	maxObjects = 200_000
)

// Identifier authenticates a request (admin.TokenAuthorizer.Identify).
type Identifier interface {
	Identify(r *http.Request) (admin.Caller, error)
}

// Config configures the handler.
type Config struct {
	Store    store.DirectoryStore
	Identify Identifier
	Admin    *admin.Handler
	// PublicURL is the token service's URL, Graph's endpoint (no
	// trailing '/').
	PublicURL string
	Logger    *slog.Logger
}

// Handler serves Graph v1.0.
type Handler struct{ cfg Config }

// New checks cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Identify == nil || cfg.Admin == nil || cfg.PublicURL == "" {
		return nil, errors.New("graph: Store, Identify, Admin and PublicURL are required")
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}, nil
}

// ServeHTTP serves everything below /v1.0/.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs, ok := segments(r)
	if !ok {
		writeError(w, r, http.StatusBadRequest, "Request_BadRequest", "The request path is not a valid URI path.")
		return
	}
	c, err := h.cfg.Identify.Identify(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%s/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`, h.cfg.PublicURL))
		writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", strings.TrimPrefix(err.Error(), admin.ErrUnauthenticated.Error()+": "))
		return
	}
	tid, err := admin.CallerTenant(r.Context(), h.cfg.Store, c)
	if errors.Is(err, admin.ErrNoTenant) {
		writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Graph takes the tenant from the bearer token's tid claim: send a token.")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	rq := &request{h: h, w: w, r: r, tid: tid}
	rq.route(segs)
}

// segments splits the path below /v1.0/ into unescaped segments, with
// Graph's key syntax applications(appId='x') split into "applications"
// and "appId='x'" ... kept as one segment for the route to read.
func segments(r *http.Request) ([]string, bool) {
	raw := strings.TrimPrefix(r.URL.EscapedPath(), Prefix)
	raw = strings.TrimSuffix(raw, "/")
	var out []string
	for _, s := range strings.Split(raw, "/") {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" || u == "." || u == ".." {
			return nil, false
		}
		out = append(out, u)
	}
	return out, true
}

// request is one Graph request being served.
type request struct {
	h   *Handler
	w   http.ResponseWriter
	r   *http.Request
	tid string
}

// keyed splits "applications(appId='x')" into ("applications", "x", true).
func keyed(seg, collection, key string) (string, bool) {
	rest, ok := strings.CutPrefix(seg, collection+"(")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, ")")
	if !ok {
		return "", false
	}
	k, v, ok := strings.Cut(rest, "=")
	if !ok || !strings.EqualFold(k, key) || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
		return "", false
	}
	return v[1 : len(v)-1], true
}

func (q *request) route(segs []string) {
	m := q.r.Method
	n := len(segs)
	notFound := func() {
		writeError(q.w, q.r, http.StatusNotFound, "Request_ResourceNotFound", "Graph on wif serves /v1.0/applications and /v1.0/servicePrincipals (see the README's Graph section).")
	}
	if n == 0 {
		notFound()
		return
	}
	head := segs[0]
	switch {
	case head == "applications" && n == 1:
		switch m {
		case "GET":
			q.listApplications()
		case "POST":
			q.createApplication()
		default:
			q.methodNotAllowed("GET, POST")
		}
		return
	case head == "servicePrincipals" && n == 1:
		switch m {
		case "GET":
			q.listServicePrincipals()
		case "POST":
			q.createServicePrincipal()
		default:
			q.methodNotAllowed("GET, POST")
		}
		return
	}
	// One object: applications/{id}, applications(appId='x'),
	// servicePrincipals/{id}, servicePrincipals(appId='x').
	var coll, id, appID string
	rest := segs[1:]
	if v, ok := keyed(head, "applications", "appId"); ok {
		coll, appID = "applications", v
	} else if v, ok := keyed(head, "servicePrincipals", "appId"); ok {
		coll, appID = "servicePrincipals", v
	} else if (head == "applications" || head == "servicePrincipals") && n >= 2 {
		coll, id, rest = head, segs[1], segs[2:]
	} else {
		notFound()
		return
	}
	if coll == "applications" {
		q.application(id, appID, rest)
		return
	}
	q.servicePrincipal(id, appID, rest)
}

func (q *request) methodNotAllowed(allowed string) {
	q.w.Header().Set("Allow", allowed)
	writeError(q.w, q.r, http.StatusMethodNotAllowed, "Request_BadRequest", fmt.Sprintf("The method %s is not allowed here; allowed: %s.", q.r.Method, allowed))
}

// call runs an admin operation in the request's tenant.
func (q *request) call(method string, path []string, query url.Values, body any, conditional bool) admin.Result {
	return q.h.cfg.Admin.Call(q.r, method, append([]string{"tenants", q.tid}, path...), query, body, conditional)
}

// listAll reads every page of an admin list.
func listAll[T any](q *request, path []string, query url.Values) ([]T, admin.Result, bool) {
	var out []T
	if query == nil {
		query = url.Values{}
	}
	query.Set("$top", "1000")
	for len(out) < maxObjects {
		res := q.call("GET", path, query, nil, false)
		if !res.OK() {
			return nil, res, false
		}
		var page admin.List[T]
		if err := res.Decode(&page); err != nil {
			return nil, admin.Result{Status: http.StatusInternalServerError}, false
		}
		out = append(out, page.Value...)
		if page.NextLink == "" {
			break
		}
		u, err := url.Parse(page.NextLink)
		if err != nil {
			break
		}
		query.Set("$skipToken", u.Query().Get("$skipToken"))
	}
	return out, admin.Result{Status: http.StatusOK}, true
}

// body reads and decodes a JSON request body (leniently: Graph clients
// send properties wif has no use for).
func (q *request) body(v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, maxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(q.w, q.r, http.StatusRequestEntityTooLarge, "Request_EntityTooLarge", fmt.Sprintf("The request body is larger than %d bytes.", maxBodyBytes))
		return false
	case err != nil:
		writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "The request body could not be read.")
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "Unable to read JSON request payload: "+clip(err.Error(), 200))
		return false
	}
	return true
}

// fail answers a failed admin operation in Graph's words.
func (q *request) fail(res admin.Result) {
	e := res.Error()
	msg := e.Message
	if msg == "" {
		msg = "The request failed."
	}
	var code string
	switch res.Status {
	case http.StatusBadRequest:
		code = "Request_BadRequest"
	case http.StatusUnauthorized:
		code = "InvalidAuthenticationToken"
	case http.StatusForbidden:
		code = "Authorization_RequestDenied"
	case http.StatusNotFound:
		code = "Request_ResourceNotFound"
	case http.StatusConflict:
		code = "Request_MultipleObjectsWithSameKeyValue"
		if e.Code == admin.CodeQuotaExceeded {
			code = "Request_BadRequest"
			res.Status = http.StatusBadRequest // Graph refuses the 21st credential with a 400
		}
	case http.StatusPreconditionFailed:
		code = "Request_PreconditionFailed"
	case http.StatusRequestEntityTooLarge:
		code = "Request_EntityTooLarge"
	case http.StatusServiceUnavailable:
		code = "serviceNotAvailable"
		q.w.Header().Set("Retry-After", "5")
	default:
		code = "generalException"
		if res.Status < 400 {
			res.Status = http.StatusInternalServerError
		}
	}
	writeError(q.w, q.r, res.Status, code, msg)
}

func (q *request) notFound(what string) {
	writeError(q.w, q.r, http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", clip(what, 100)))
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	if store.IsUnavailable(err) || r.Context().Err() != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, "serviceNotAvailable", "The directory is unavailable; retry after a short wait.")
		return
	}
	id := httpx.NewCorrelationID()
	h.cfg.Logger.Error("graph request failed", "path", r.URL.Path, "correlationId", id, "error", err)
	writeError(w, r, http.StatusInternalServerError, "generalException", "The request failed (correlation id "+id+"); see the server log.")
}

// context is the @odata.context of a response.
func (q *request) context(fragment string) string {
	return q.h.cfg.PublicURL + "/v1.0/$metadata#" + fragment
}

// page answers one page of a filtered collection, Graph's way: $top
// (1 to 999), @odata.nextLink with $skiptoken, $count=true adds
// @odata.count.
func (q *request) page(fragment string, items []map[string]any) {
	qs := q.r.URL.Query()
	top := defaultPageSize
	if v := qs.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", clip(v, 20), maxPageSize))
			return
		}
		top = n
	}
	skip := 0
	if v := qs.Get("$skiptoken"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			writeError(q.w, q.r, http.StatusBadRequest, "Request_BadRequest", "The $skiptoken is not one this server issued: follow @odata.nextLink.")
			return
		}
		skip = min(n, len(items))
	}
	end := min(skip+top, len(items))
	out := map[string]any{"@odata.context": q.context(fragment), "value": append([]map[string]any{}, items[skip:end]...)}
	if qs.Get("$count") == "true" {
		out["@odata.count"] = len(items)
	}
	if end < len(items) {
		qs.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
		out["@odata.nextLink"] = q.h.cfg.PublicURL + q.r.URL.EscapedPath() + "?" + qs.Encode()
	}
	writeJSON(q.w, q.r, http.StatusOK, out)
}

// filtered applies $filter to items.
func (q *request) filtered(items []map[string]any, props, colls []string) ([]map[string]any, bool) {
	f, err := parseFilter(q.r.URL.Query().Get("$filter"), props, colls)
	if err != nil {
		writeError(q.w, q.r, http.StatusBadRequest, "Request_UnsupportedQuery", err.Error())
		return nil, false
	}
	out := []map[string]any{}
	for _, it := range items {
		if f.match(it) {
			out = append(out, it)
		}
	}
	return out, true
}

// writeError writes Graph's error envelope.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	setIDs(w, r)
	writeJSON(w, r, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]string{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": w.Header().Get("request-id"), "client-request-id": w.Header().Get("client-request-id")},
	}})
}

// writeJSON writes v with Graph's headers: request-id, and the caller's
// client-request-id echoed when it is a GUID.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	setIDs(w, r)
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func setIDs(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if h.Get("request-id") == "" {
		h.Set("request-id", httpx.NewCorrelationID())
		cid := r.Header.Get("client-request-id")
		if !directory.IsGUID(cid) {
			cid = h.Get("request-id")
		}
		h.Set("client-request-id", cid)
	}
}

func noContent(w http.ResponseWriter, r *http.Request) {
	setIDs(w, r)
	w.WriteHeader(http.StatusNoContent)
}
