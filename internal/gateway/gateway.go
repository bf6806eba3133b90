package gateway

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/wif-project/wif/internal/telemetry"

	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/gateway/apim"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/tokenauth"
)

// Identity headers the backend receives. Every incoming header whose name
// starts with x-wif- (letters in any case, '_' and '-' alike, since CGI,
// WSGI and PHP backends read both as one) is removed after the proxy's
// hop-by-hop removal and the gateway's values set then, so a caller can
// neither forge them nor make the proxy drop them with Connection.
const (
	HeaderClientID = "X-Wif-Client-Id"
	HeaderObjectID = "X-Wif-Object-Id"
	HeaderTenantID = "X-Wif-Tenant-Id"
	HeaderRoles    = "X-Wif-Roles"
	// HeaderCorrelationID is echoed (or generated), sent to the backend and
	// returned.
	HeaderCorrelationID = "X-Correlation-Id"
	// HeaderDuration is the gateway's time for the request, in ms.
	HeaderDuration = "X-Request-Duration"
)

func isIdentityHeader(name string) bool {
	if len(name) < 6 {
		return false
	}
	for i := 0; i < 6; i++ {
		c := name[i] | 0x20 // ASCII lower case; '-' (0x2d) stays itself
		if name[i] == '_' {
			c = '-'
		}
		if c != "x-wif-"[i] {
			return false
		}
	}
	return true
}

// stripIdentityHeaders removes every header isIdentityHeader names.
func stripIdentityHeaders(h http.Header) {
	for k := range h {
		if isIdentityHeader(k) {
			delete(h, k)
		}
	}
}

// Options are the gateway's dependencies. Zero fields take defaults.
type Options struct {
	// Logger receives load warnings and backend errors (default: discard).
	Logger *slog.Logger
	// Registry receives the gateway's metrics and is served at /metrics
	// (default: a new registry with the Go and process collectors).
	Registry *prometheus.Registry
	// Now is the clock (default time.Now).
	Now func() time.Time
	// KeyClient fetches discovery documents and keys (default: system roots
	// plus tokenService.caFile).
	KeyClient *http.Client
	// BackendTransport carries requests to backends (default: an
	// http.Transport with dial, TLS and response-header timeouts).
	BackendTransport http.RoundTripper
	// MaxRateLimitKeys bounds each rate-limit-by-key's table (default 100000).
	MaxRateLimitKeys int
	// TracerProvider, when set and exporting, gives each request a server
	// span (continuing the caller's traceparent), a span for the inbound
	// policy and a client span for the backend call, whose traceparent the
	// backend receives.
	TracerProvider trace.TracerProvider
}

// Gateway is a running set of routes. It is an http.Handler serving the
// routes plus /healthz, /readyz and /metrics.
type Gateway struct {
	tracer           trace.Tracer
	tracing          bool
	cfg              *Config
	logger           *slog.Logger
	now              func() time.Time
	reg              *prometheus.Registry
	maxRateLimitKeys int

	routes     []*route // longest prefix first
	disc       *tokenauth.Discovery
	remote     map[string]*tokenauth.RemoteKeySet
	validators []*tokenauth.Validator
	limiters   []*limiter
	mux        *http.ServeMux
	m          *metrics
	buffers    *bufferPool
}

// bufferPool reuses ReverseProxy's copy buffers (32 KiB each otherwise
// allocated per request).
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

// Get returns a buffer.
func (bp *bufferPool) Get() []byte { return *(bp.p.Get().(*[]byte)) }

// Put returns a buffer for reuse.
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }

type route struct {
	name     string
	prefix   string
	target   *url.URL
	proxy    *httputil.ReverseProxy
	inbound  []step
	outbound []apim.SetHeader
	onError  []apim.Step
	// limit is the route's last rate-limit-by-key, for headers on responses
	// refused before it ran.
	limit    *rateLimitStep
	duration prometheus.Observer
	// copyHeaders says the request needs its own copy of the caller's
	// headers before the proxy makes its copy: a set-header step must take
	// effect before a later step reads the headers, or names a header the
	// proxy itself removes, sets or reads (see deferrableSetHeader).
	copyHeaders bool
	// setHeaders are the inbound set-header steps, applied to the proxy's
	// copy of the headers when the request shares the caller's.
	setHeaders []apim.SetHeader
}

// Open loads the policies named by cfg and builds the gateway.
func Open(cfg *Config, opts Options) (*Gateway, error) {
	pols, err := cfg.LoadPolicies()
	if err != nil {
		return nil, err
	}
	return New(cfg, pols, opts)
}

// New compiles policies (one per cfg.Routes entry) into a gateway. Every
// problem is reported at once, with the policy file and line.
func New(cfg *Config, policies []*apim.Policy, opts Options) (*Gateway, error) {
	if len(policies) != len(cfg.Routes) {
		return nil, fmt.Errorf("gateway: %d policies for %d routes", len(policies), len(cfg.Routes))
	}
	g := &Gateway{cfg: cfg, logger: opts.Logger, now: opts.Now, reg: opts.Registry, maxRateLimitKeys: opts.MaxRateLimitKeys,
		tracer: telemetry.Tracer(opts.TracerProvider, "gateway"), tracing: telemetry.Enabled(opts.TracerProvider),
		remote: map[string]*tokenauth.RemoteKeySet{}, buffers: newBufferPool()}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.reg == nil {
		g.reg = httpx.NewRegistry()
	}
	if g.maxRateLimitKeys <= 0 {
		g.maxRateLimitKeys = 100000
	}
	keyClient := opts.KeyClient
	if keyClient == nil {
		c, err := clientTrusting(cfg.Path(cfg.TokenService.CAFile))
		if err != nil {
			return nil, fmt.Errorf("gateway: tokenService.caFile: %w", err)
		}
		keyClient = &http.Client{Transport: c, Timeout: 10 * time.Second}
	}
	g.disc = tokenauth.NewDiscovery(tokenauth.DiscoveryOptions{HTTPClient: keyClient, Now: g.now, Logger: g.logger, Registerer: g.reg})
	transport := opts.BackendTransport
	if transport == nil {
		t, err := clientTrusting(cfg.Path(cfg.BackendCAFile))
		if err != nil {
			g.disc.Close()
			return nil, fmt.Errorf("gateway: backendCAFile: %w", err)
		}
		t.ResponseHeaderTimeout = time.Duration(cfg.BackendTimeout)
		transport = t
	}
	g.m = newMetrics(g.reg, g)

	var errs []error
	for i, rc := range cfg.Routes {
		r, err := g.compileRoute(rc, policies[i], transport)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", rc.Name, err))
			continue
		}
		g.routes = append(g.routes, r)
	}
	if err := errors.Join(errs...); err != nil {
		g.disc.Close()
		return nil, err
	}
	sort.SliceStable(g.routes, func(i, j int) bool { return len(g.routes[i].prefix) > len(g.routes[j].prefix) })

	probes := &httpx.Probes{}
	probes.AddReadiness("signing keys", g.Ready)
	g.mux = http.NewServeMux()
	probes.Mount(g.mux)
	httpx.MountMetrics(g.mux, g.reg)
	g.mux.Handle("/", http.HandlerFunc(g.serveRoute))
	return g, nil
}

// clientTrusting returns a transport with timeouts that trusts the system
// roots plus the PEM CA in caFile (if any).
func clientTrusting(caFile string) (*http.Transport, error) {
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if caFile == "" {
		return t, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	t.TLSClientConfig.RootCAs = pool
	return t, nil
}

func (g *Gateway) remoteKeySet(u string) *tokenauth.RemoteKeySet {
	if ks, ok := g.remote[u]; ok {
		return ks
	}
	ks := g.disc.KeySet(u)
	g.remote[u] = ks
	return ks
}

func (g *Gateway) compileRoute(rc Route, pol *apim.Policy, transport http.RoundTripper) (*route, error) {
	target, err := url.Parse(rc.Backend)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", rc.Backend, err)
	}
	prefix, err := normalizePrefix(rc.PathPrefix)
	if err != nil {
		return nil, fmt.Errorf("pathPrefix %q: %w", rc.PathPrefix, err)
	}
	r := &route{name: rc.Name, prefix: prefix, target: target, duration: g.m.duration.WithLabelValues(rc.Name)}
	c := &compileCtx{g: g, file: pol.File, route: rc.Name}
	var errs []error
	r.inbound, r.limit, err = c.inbound(pol.Inbound)
	errs = append(errs, err)
	edited := false
	for _, s := range r.inbound {
		switch s := s.(type) {
		case *setHeaderStep:
			edited = true
			r.setHeaders = append(r.setHeaders, s.SetHeader)
			if !deferrableSetHeader(s.Name) {
				r.copyHeaders = true
			}
		case *validateStep, *checkHeaderStep:
			if edited { // reads headers a set-header before it may have changed
				r.copyHeaders = true
			}
		}
	}
	for _, s := range pol.Outbound {
		if sh, ok := s.(*apim.SetHeader); ok {
			r.outbound = append(r.outbound, *sh)
		}
	}
	r.onError = pol.OnError
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.proxy = &httputil.ReverseProxy{
		// Rewrite runs after the proxy removed the hop-by-hop headers
		// (those Connection names among them), so what it sets stays.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(r.target)
			pr.Out.Host = r.target.Host
			pr.SetXForwarded()
			stripIdentityHeaders(pr.Out.Header)
			stripIdentityHeaders(pr.Out.Trailer)
			st, _ := pr.In.Context().Value(stateKey{}).(*reqState)
			if st == nil {
				return
			}
			if st.sharedHeader {
				for _, sh := range r.setHeaders {
					applySetHeader(pr.Out.Header, sh)
				}
			}
			identityHeaders(pr.Out.Header, st)
			if g.tracing {
				// The backend's parent is the gateway's backend span.
				telemetry.Inject(pr.In.Context(), pr.Out.Header)
			}
		},
		Transport:      transport,
		BufferPool:     g.buffers,
		ModifyResponse: func(resp *http.Response) error { return g.modifyResponse(r, resp) },
		ErrorHandler:   func(w http.ResponseWriter, req *http.Request, err error) { g.backendError(r, w, req, err) },
		ErrorLog:       slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
	}
	return r, nil
}

// ServeHTTP serves the probes, /metrics and the routes. Only the exact
// probe paths reach the mux (which would redirect unclean paths before the
// gateway could refuse them); everything else is a route's.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.RequestURI {
	case "/healthz", "/readyz", "/metrics":
		g.mux.ServeHTTP(w, r)
		return
	}
	g.serveRoute(w, r)
}

// Warm fetches every openid-config's keys once, off the request path; it
// returns the failures (the gateway still serves; readiness reports them).
func (g *Gateway) Warm(ctx context.Context) error {
	var errs []error
	for u, ks := range g.remote {
		if err := ks.Refresh(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
		}
	}
	return errors.Join(errs...)
}

// Ready is the readiness check: it fails until the keys of every
// openid-config (and validate-azure-ad-token tenant) are at hand — fetched
// at least once and not older than the staleness bound.
func (g *Gateway) Ready(ctx context.Context) error {
	for u, ks := range g.remote {
		if err := ks.Ready(ctx); err != nil {
			return fmt.Errorf("keys of %s unavailable: %w", u, err)
		}
	}
	return nil
}

// Close stops background key refreshes.
func (g *Gateway) Close() { g.disc.Close() }

// reqState is one request's progress through a route.
type reqState struct {
	in     *http.Request
	out    *http.Request
	start  time.Time
	corrID string
	claims *tokenauth.Claims
	limit  *limitState
	route  *route
	// sharedHeader: out.Header is in.Header, so the set-header steps act
	// on ReverseProxy's own copy, in Rewrite.
	sharedHeader bool
}

type stateKey struct{}

// match finds the route with the longest prefix that the normalized path
// starts with (see matchPrefix: case-insensitively, on a segment boundary:
// prefix /api matches /API, /api/x and /api;v=1, not /apix) and returns the
// rest of the path, which the backend receives.
func (g *Gateway) match(path string) (*route, string) {
	for _, r := range g.routes {
		if n, ok := matchPrefix(path, r.prefix); ok {
			return r, "/" + strings.TrimPrefix(path[n:], "/")
		}
	}
	return nil, ""
}

// correlationID keeps a caller's id if it is a sane token, else makes one.
func correlationID(v string) string {
	if v == "" || len(v) > 128 {
		return httpx.NewCorrelationID()
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return httpx.NewCorrelationID()
		}
	}
	return v
}

func (g *Gateway) serveRoute(w http.ResponseWriter, in *http.Request) {
	start := g.now()
	if g.tracing {
		ctx := telemetry.Propagator.Extract(in.Context(), propagation.HeaderCarrier(in.Header))
		ctx, span := g.tracer.Start(ctx, "gateway", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", in.Method)))
		defer span.End()
		in = in.WithContext(ctx)
	}
	st := &reqState{in: in, start: start, corrID: correlationID(in.Header.Get(HeaderCorrelationID))}
	raw, err := requestPath(in)
	var path string
	if err == nil {
		path, err = normalizePath(raw)
	}
	if err != nil {
		g.m.refusals.WithLabelValues("", "bad_path").Inc()
		g.write(w, st, errorReply(http.StatusBadRequest, "bad_path", "The request path is not accepted: "+err.Error()+".", "", ""))
		return
	}
	r, rest := g.match(path)
	if strings.IndexByte(path, ';') >= 0 {
		// Servers that strip ';' parameters read another path: it must
		// select the same route, or the request is ambiguous.
		if r2, _ := g.match(stripPathParams(path)); r2 != r {
			g.m.refusals.WithLabelValues("", "bad_path").Inc()
			g.write(w, st, errorReply(http.StatusBadRequest, "bad_path", "The request path is not accepted: its ';' parameters make it select another route for servers that strip them; remove them.", "", ""))
			return
		}
	}
	if r == nil {
		g.m.refusals.WithLabelValues("", "no_route").Inc()
		g.write(w, st, errorReply(http.StatusNotFound, "no_route", "Resource not found", "", ""))
		return
	}
	st.route = r
	out := in.WithContext(context.WithValue(in.Context(), stateKey{}, st))
	// ReverseProxy copies the headers it sends, so the request gets a copy
	// of its own only when a set-header step cannot wait for the proxy's
	// copy (identity headers are stripped from the proxy's copy, in
	// Rewrite, either way).
	if r.copyHeaders {
		out.Header = in.Header.Clone()
		// The proxy drops the headers the caller's Connection names; drop
		// them now, before set-header steps may set some of them, as the
		// proxy does before Rewrite on the shared path.
		removeConnectionHeaders(out.Header)
	} else {
		st.sharedHeader = true
	}
	// The backend receives exactly the normalized path the route was
	// chosen on (re-encoded from Path: RawPath is left empty).
	u := *in.URL
	u.Path, u.RawPath, u.Opaque = rest, "", ""
	out.URL = &u
	st.out = out
	var pspan trace.Span
	if g.tracing {
		trace.SpanFromContext(in.Context()).SetAttributes(attribute.String("wif.route", r.name))
		_, pspan = g.tracer.Start(in.Context(), "gateway.inbound_policy")
	}
	for _, s := range r.inbound {
		if rep := s.run(st); rep != nil {
			if rep.reason != "" {
				g.m.refusals.WithLabelValues(r.name, rep.reason).Inc()
			}
			if pspan != nil {
				pspan.SetStatus(codes.Error, rep.reason)
				pspan.End()
			}
			g.write(w, st, rep)
			return
		}
	}
	if g.tracing {
		pspan.End()
		ctx, bspan := g.tracer.Start(out.Context(), "gateway.backend", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("server.address", r.target.Host)))
		defer bspan.End()
		out = out.WithContext(ctx)
	}
	r.proxy.ServeHTTP(w, out)
}

// removeConnectionHeaders removes the headers a Connection header names,
// and Connection itself (RFC 9110 §7.6.1).
func removeConnectionHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	delete(h, "Connection")
}

// deferrableSetHeader says a set-header of name has the same effect on the
// proxy's copy of the headers, in Rewrite, as on the request before the
// proxy copies it: the proxy neither removes (hop-by-hop, Forwarded,
// X-Forwarded-*), sets nor reads it.
func deferrableSetHeader(name string) bool {
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"User-Agent", "Host", "Content-Length":
		return false
	}
	return true
}

// identityHeaders sets the correlation id and the verified identity on the
// request to the backend. The values share one backing array (one
// allocation instead of one per header); each header gets a capacity-1
// slice of it, so an append by anyone else reallocates.
func identityHeaders(h http.Header, st *reqState) {
	c := st.claims
	if c == nil {
		h[HeaderCorrelationID] = []string{st.corrID}
		return
	}
	vals := make([]string, 0, 5)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(HeaderCorrelationID, st.corrID)
	for _, kv := range [...][2]string{{HeaderClientID, c.ClientID}, {HeaderObjectID, c.ObjectID}, {HeaderTenantID, c.TenantID}} {
		if kv[1] != "" {
			set(kv[0], kv[1])
		}
	}
	if len(c.Roles) > 0 {
		set(HeaderRoles, strings.Join(c.Roles, ","))
	}
}

// commonHeaders adds the headers every response of a route carries.
func (g *Gateway) commonHeaders(h http.Header, st *reqState) {
	h.Set(HeaderCorrelationID, st.corrID)
	if st.limit != nil {
		st.limit.headers(h)
	} else if st.route != nil && st.route.limit != nil {
		h.Set("X-RateLimit-Limit", strconv.Itoa(st.route.limit.Calls))
	}
	ms := float64(g.now().Sub(st.start).Microseconds()) / 1000
	h.Set(HeaderDuration, strconv.FormatFloat(ms, 'f', 3, 64))
}

func (g *Gateway) modifyResponse(r *route, resp *http.Response) error {
	st, _ := resp.Request.Context().Value(stateKey{}).(*reqState)
	for _, sh := range r.outbound {
		applySetHeader(resp.Header, sh)
	}
	if st != nil {
		g.commonHeaders(resp.Header, st)
		g.observe(st, resp.StatusCode)
	}
	return nil
}

func (g *Gateway) backendError(r *route, w http.ResponseWriter, req *http.Request, err error) {
	st, _ := req.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		st = &reqState{in: req, start: g.now(), corrID: correlationID(req.Header.Get(HeaderCorrelationID)), route: r}
	}
	status, msg := http.StatusBadGateway, "The backend did not answer."
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		status, msg = http.StatusGatewayTimeout, "The backend did not answer in time."
	}
	if errors.Is(err, context.Canceled) {
		status = 499 // the caller went away; nobody reads this
	}
	logged := err
	var ue *url.Error
	if errors.As(err, &ue) {
		logged = ue.Err // the URL may carry a token in its query (query-parameter-name)
	}
	g.logger.Warn("backend request failed", "route", r.name, "backend", r.target.Redacted(), "correlation_id", st.corrID, "error", logged)
	g.m.refusals.WithLabelValues(r.name, "backend_error").Inc()
	g.write(w, st, errorReply(status, "backend_error", msg, "", ""))
}

// write sends a reply the gateway makes itself, after the route's on-error
// steps for error replies.
func (g *Gateway) write(w http.ResponseWriter, st *reqState, rep *reply) {
	if rep.err && st.route != nil {
		for _, s := range st.route.onError {
			switch p := s.(type) {
			case *apim.SetHeader:
				applySetHeader(rep.header, *p)
			case *apim.ReturnResponse:
				rr := (&returnStep{*p}).run(st)
				rr.reason, rr.err = rep.reason, true
				rep = rr
			}
		}
	}
	h := w.Header()
	for k, v := range rep.header {
		h[k] = v
	}
	g.commonHeaders(h, st)
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
	g.observe(st, rep.status)
}

func (g *Gateway) observe(st *reqState, status int) {
	name := ""
	if st.route != nil {
		name = st.route.name
		st.route.duration.Observe(g.now().Sub(st.start).Seconds())
	}
	g.m.requests.WithLabelValues(name, strconv.Itoa(status)).Inc()
}
