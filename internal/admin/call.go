package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/wif-project/wif/internal/store"
)

// Result is the answer of an admin operation run in-process by Call.
type Result struct {
	Status int
	Header http.Header
	Body   []byte
}

// OK reports a 2xx status.
func (r Result) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Error is the error document of a failed operation (zero when it did not
// fail or sent none).
func (r Result) Error() ErrorDetail {
	var b ErrorBody
	if !r.OK() {
		_ = json.Unmarshal(r.Body, &b)
	}
	return b.Error
}

// Decode unmarshals the body into v.
func (r Result) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Call runs one admin API operation in-process on behalf of the caller of
// r, so that another surface (Resource Manager's, Graph's) maps its
// requests onto the admin API's own validation and authorization instead
// of a copy of them. segments are the path below /admin/ (each escaped
// here); query is the operation's query; body, if not nil, is sent as
// JSON. Every header of r goes along (Authorization, Origin, Sec-Fetch-*:
// the admin API's browser guard judges the real request), but for the
// body's own, and the conditional headers (If-Match, If-None-Match) only
// when conditional is true: they belong to the operation the caller
// asked for, not to the reads around it.
func (h *Handler) Call(r *http.Request, method string, segments []string, query url.Values, body any, conditional bool) Result {
	esc := make([]string, len(segments))
	for i, s := range segments {
		esc[i] = url.PathEscape(s)
	}
	u := &url.URL{Path: "/admin/" + strings.Join(segments, "/"), RawPath: "/admin/" + strings.Join(esc, "/"), RawQuery: query.Encode()}
	sub := r.Clone(r.Context())
	sub.Method, sub.URL, sub.RequestURI = method, u, u.RequestURI()
	sub.Header = r.Header.Clone()
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding"} {
		sub.Header.Del(k)
	}
	if !conditional {
		sub.Header.Del("If-Match")
		sub.Header.Del("If-None-Match")
	}
	sub.Body, sub.ContentLength = http.NoBody, 0
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Result{Status: http.StatusInternalServerError, Header: http.Header{}, Body: []byte(`{"error":{"code":"InternalServerError","message":"could not encode the request"}}`)}
		}
		sub.Body, sub.ContentLength = readCloser{bytes.NewReader(b)}, int64(len(b))
		sub.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, sub)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return Result{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// recorder is the ResponseWriter of an in-process call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// ErrNoTenant: a request that takes its tenant from the caller's token
// came without one, and the directory holds more than one tenant.
var ErrNoTenant = errors.New("a bearer token is needed: the tenant is taken from its tid claim")

// CallerTenant is the tenant a request of c acts in on a surface that
// names no tenant in its paths (Resource Manager's, Graph's): its token's
// tid, or, for wif dev's token-less loopback caller, the only tenant
// there is (ErrNoTenant when there are several).
func CallerTenant(ctx context.Context, s store.DirectoryStore, c Caller) (string, error) {
	if c.TenantID != "" {
		return c.TenantID, nil
	}
	ts, err := s.ListTenants(ctx)
	if err != nil {
		return "", err
	}
	if len(ts) != 1 {
		return "", ErrNoTenant
	}
	return ts[0].ID, nil
}
