// Package imds serves the managed-identity endpoints that older code and
// some SDKs call instead of doing the federated exchange themselves
// (spec/imds.md): the Azure Instance Metadata Service token endpoint
//
//	GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R   (Metadata: true)
//
// and the App Service one, which IDENTITY_ENDPOINT / IDENTITY_HEADER point at
//
//	GET /msi/token?api-version=2019-08-01&resource=R   (X-IDENTITY-HEADER: <IDENTITY_HEADER>)
//
// Each request is answered with a token from the token service, obtained by
// the federated exchange with the workload's token file (an Exchanger,
// normally *stsclient.Client). Tokens are cached per (client id, resource)
// until five minutes before they expire, and concurrent requests for the
// same key share one exchange.
//
// It runs as `wif imds` (a pod sidecar) and inside `wif dev`:
//
//	srv, err := imds.New(imds.Config{ClientID: id, Exchanger: sts, IdentityHeader: imds.NewIdentityHeader()})
//	go srv.Run(ctx, ln)  // or mount srv (an http.Handler) on another server
//	defer srv.Close()
package imds

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/wif-project/wif/internal/telemetry"

	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/stsclient"
)

// Defaults for Config's zero values.
const (
	DefaultRefreshBefore   = 5 * time.Minute
	DefaultExchangeTimeout = 30 * time.Second
	DefaultMaxCacheEntries = 256
	// MinIdentityHeaderLen is the shortest IDENTITY_HEADER accepted: it is
	// the only secret guarding the App Service endpoint.
	MinIdentityHeaderLen = 16
)

var errClosed = errors.New("imds: server closed")

// Exchanger gets access tokens from the token service; *stsclient.Client is
// one. Its errors are classified with stsclient's error types.
type Exchanger interface {
	Exchange(ctx context.Context, clientID, scope string) (*stsclient.Token, error)
}

// Config configures a Server.
type Config struct {
	// ClientID is the workload's client id (AZURE_CLIENT_ID). Requests may
	// omit client_id or repeat this one; any other is refused. When empty,
	// every request must name its client_id.
	ClientID string
	// Exchanger performs the federated exchange (required).
	Exchanger Exchanger
	// Endpoint names the token service in error messages (optional).
	Endpoint string
	// IdentityHeader is IDENTITY_HEADER: the secret App Service requests
	// must carry in X-IDENTITY-HEADER. Empty disables the App Service
	// endpoint (it then answers 401 saying so).
	IdentityHeader string
	// TokenFile, when set, makes /readyz fail until the file is readable.
	TokenFile string
	// Logger receives one line per exchange (never a token). Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics (nil: Metrics, if set; else none).
	Registerer prometheus.Registerer
	// Metrics, when set, is served at /metrics.
	Metrics *prometheus.Registry
	// TracerProvider, when set, gives each request a server span.
	TracerProvider trace.TracerProvider
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RefreshBefore is how long before expiry a cached token stops being
	// served (default 5 min).
	RefreshBefore time.Duration
	// ExchangeTimeout bounds one shared exchange (default 30 s).
	ExchangeTimeout time.Duration
	// MaxCacheEntries bounds the cache (default 256).
	MaxCacheEntries int
	// AllowedHosts are DNS names accepted in the Host header besides IP
	// literals and localhost (e.g. a Service name, when the endpoint is
	// reached as one). Anything else is refused: DNS rebinding.
	AllowedHosts []string
}

// Server answers managed-identity token requests. It is an http.Handler;
// Run serves it on a listener. It is safe for concurrent use.
type Server struct {
	clientID        string
	exchanger       Exchanger
	endpoint        string
	identityHeader  [sha256.Size]byte
	appServiceOn    bool
	log             *slog.Logger
	now             func() time.Time
	refreshBefore   time.Duration
	exchangeTimeout time.Duration
	allowedHosts    []string
	tracer          trace.TracerProvider

	mux     *http.ServeMux
	probes  *httpx.Probes
	metrics *metrics

	cache   *tokenCache
	flights singleflight.Group

	baseCtx    context.Context
	baseCancel context.CancelFunc
	running    sync.WaitGroup
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	var problems []string
	if cfg.Exchanger == nil {
		problems = append(problems, "no Exchanger (token service client) is configured")
	}
	if cfg.IdentityHeader != "" && len(cfg.IdentityHeader) < MinIdentityHeaderLen {
		problems = append(problems, fmt.Sprintf("the identity header is %d characters; use at least %d random characters (it is the App Service endpoint's only secret), e.g. from NewIdentityHeader", len(cfg.IdentityHeader), MinIdentityHeaderLen))
	}
	if strings.ContainsAny(cfg.IdentityHeader, "\r\n") {
		problems = append(problems, "the identity header contains a line break")
	}
	if len(cfg.ClientID) > maxClientIDLen || hasSpaceOrControl(cfg.ClientID) {
		problems = append(problems, fmt.Sprintf("the client id %q is not a client id", cfg.ClientID))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("imds: %s", strings.Join(problems, "; "))
	}
	s := &Server{
		tracer:          cfg.TracerProvider,
		clientID:        cfg.ClientID,
		exchanger:       cfg.Exchanger,
		endpoint:        cfg.Endpoint,
		appServiceOn:    cfg.IdentityHeader != "",
		log:             cfg.Logger,
		now:             cfg.Now,
		refreshBefore:   cfg.RefreshBefore,
		exchangeTimeout: cfg.ExchangeTimeout,
		probes:          &httpx.Probes{},
	}
	for _, h := range cfg.AllowedHosts {
		s.allowedHosts = append(s.allowedHosts, strings.TrimSuffix(strings.ToLower(h), "."))
	}
	if s.appServiceOn {
		s.identityHeader = sha256.Sum256([]byte(cfg.IdentityHeader))
	}
	if s.endpoint == "" {
		if c, ok := cfg.Exchanger.(*stsclient.Client); ok {
			s.endpoint = c.Endpoint()
		} else {
			s.endpoint = "the token service"
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.refreshBefore <= 0 {
		s.refreshBefore = DefaultRefreshBefore
	}
	if s.exchangeTimeout <= 0 {
		s.exchangeTimeout = DefaultExchangeTimeout
	}
	max := cfg.MaxCacheEntries
	if max <= 0 {
		max = DefaultMaxCacheEntries
	}
	s.cache = newTokenCache(max)
	reg := cfg.Registerer
	if reg == nil && cfg.Metrics != nil {
		reg = cfg.Metrics
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())

	if cfg.TokenFile != "" {
		file := cfg.TokenFile
		s.probes.AddReadiness("federated token file", func(context.Context) error {
			_, err := stsclient.ReadAssertion(file)
			return err
		})
	}
	s.mux = http.NewServeMux()
	s.probes.Mount(s.mux)
	if cfg.Metrics != nil {
		httpx.MountMetrics(s.mux, cfg.Metrics)
	}
	return s, nil
}

// checkCaller refuses what a browser can send but a workload never does: a
// Host that is a DNS name (a web page that rebinds its own name to this
// address would send its name), and a request relayed by a proxy
// (X-Forwarded-For or Forwarded, as GCP's metadata server refuses them).
func (s *Server) checkCaller(r *http.Request) *apiError {
	if len(r.Header.Values("X-Forwarded-For")) > 0 || len(r.Header.Values("Forwarded")) > 0 {
		return &apiError{status: http.StatusBadRequest, code: "invalid_request",
			desc: "requests with an X-Forwarded-For or Forwarded header are refused, as IMDS does: call the endpoint directly, not through a proxy"}
	}
	if !s.allowedHost(r.Host) {
		return &apiError{status: http.StatusForbidden, code: "invalid_request",
			desc: fmt.Sprintf("the Host %q is not accepted: call the endpoint by IP address (as IDENTITY_ENDPOINT and MSI_ENDPOINT name it), as localhost or as 169.254.169.254; a web page that renamed its host to this address (DNS rebinding) is refused this way", sanitize(r.Host, 100))}
	}
	return nil
}

// allowedHost reports whether a Host header names this endpoint the way a
// workload does: an IP literal (the metadata address included), localhost,
// or a name given in Config.AllowedHosts.
func (s *Server) allowedHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	for _, h := range s.allowedHosts {
		if host == h {
			return true
		}
	}
	return false
}

// NewIdentityHeader returns a random IDENTITY_HEADER value (32 hex digits).
func NewIdentityHeader() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Probes are the server's /healthz and /readyz, for adding readiness checks.
func (s *Server) Probes() *httpx.Probes { return s.probes }

// ServeHTTP routes a request: the two token endpoints, 404 with an
// explanation for the rest of /metadata/, and the probes and metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Clean the path ourselves: clients join AZURE_POD_IDENTITY_AUTHORITY_HOST
	// and the token path with a possible double '/', and ServeMux would
	// answer that with a redirect.
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	p = path.Clean(p) // the same as Clean("/" + path), without a copy when already clean
	switch {
	case strings.EqualFold(p, IMDSTokenPath):
		s.serveToken(w, r, protoIMDS)
	case strings.EqualFold(p, AppServiceTokenPath):
		proto := protoAppService
		switch {
		case r.Method == http.MethodPost:
			proto = protoMSIPost
		case r.URL.Query().Get("api-version") == APIVersion2017:
			proto = protoAppService2017
		}
		s.serveToken(w, r, proto)
	case p == "/healthz" || p == "/readyz" || p == "/metrics":
		s.mux.ServeHTTP(w, r)
	case strings.EqualFold(p, "/metadata") || len(p) > len("/metadata/") && strings.EqualFold(p[:len("/metadata/")], "/metadata/"):
		s.metrics.requests.WithLabelValues(string(protoOther), "404").Inc()
		writeError(w, &apiError{status: http.StatusNotFound, code: "not_found",
			desc: fmt.Sprintf("%s is not served: wif imds implements only the managed identity token endpoint %s of the instance metadata service (instance metadata does not exist off Azure)",
				sanitize(p, 200), IMDSTokenPath)})
	default:
		s.metrics.requests.WithLabelValues(string(protoOther), "404").Inc()
		writeError(w, &apiError{status: http.StatusNotFound, code: "not_found",
			desc: fmt.Sprintf("%s is not served: wif imds serves %s (IMDS), %s (App Service), /healthz, /readyz and /metrics",
				sanitize(p, 200), IMDSTokenPath, AppServiceTokenPath)})
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, p protocol) {
	if e := s.checkCaller(r); e != nil {
		writeError(w, e)
		s.metrics.requests.WithLabelValues(string(p), strconv.Itoa(e.status)).Inc()
		return
	}
	status := s.token(w, r, p)
	s.metrics.requests.WithLabelValues(string(p), strconv.Itoa(status)).Inc()
}

// token answers one token request and returns the status it wrote.
func (s *Server) token(w http.ResponseWriter, r *http.Request, p protocol) int {
	fail := func(e *apiError) int {
		writeError(w, e)
		return e.status
	}
	if p == protoAppService || p == protoAppService2017 {
		header, variable := IdentityHeaderName, "IDENTITY_HEADER"
		if p == protoAppService2017 {
			header, variable = SecretHeaderName, "MSI_SECRET"
		}
		if !s.appServiceOn {
			return fail(&apiError{status: http.StatusUnauthorized, code: "unauthorized",
				desc: "the App Service endpoint is disabled: wif imds was started without an identity header (--identity-header or IDENTITY_HEADER), so no request can prove it comes from the workload"})
		}
		got := r.Header.Values(header)
		if len(got) == 0 {
			return fail(&apiError{status: http.StatusUnauthorized, code: "unauthorized",
				desc: "the " + header + " header is missing: send the value of " + variable + " in it"})
		}
		// Compare digests so neither the content nor the length of the
		// secret leaks through timing.
		sum := sha256.Sum256([]byte(got[0]))
		if len(got) != 1 || subtle.ConstantTimeCompare(sum[:], s.identityHeader[:]) != 1 {
			return fail(&apiError{status: http.StatusUnauthorized, code: "unauthorized",
				desc: "the " + header + " header does not match this endpoint's " + variable})
		}
	}
	req, aerr := parseTokenRequest(r, p, s.clientID)
	if aerr != nil {
		return fail(aerr)
	}
	tok, err := s.getToken(r.Context(), req.clientID, req.scope)
	if err != nil {
		e := exchangeError(err, s.endpoint)
		if r.Context().Err() != nil {
			// The caller went away; nobody reads this answer.
			e = &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "the request was canceled"}
		}
		return fail(e)
	}
	writeToken(w, p, req, tok, s.now())
	return http.StatusOK
}

// getToken returns a cached token for (clientID, scope), or joins or starts
// the one exchange for that key. The exchange runs under the server's
// context, not the caller's, so a caller that gives up does not fail the
// others waiting on it; each waiter stops waiting when its own ctx ends.
func (s *Server) getToken(ctx context.Context, clientID, scope string) (*stsclient.Token, error) {
	key := cacheKey{clientID: clientID, scope: scope}
	if tok := s.cache.get(key, s.now().Add(s.refreshBefore)); tok != nil {
		s.metrics.cacheHits.Inc()
		return tok, nil
	}
	s.metrics.cacheMisses.Inc()
	ch := s.flights.DoChan(clientID+"\x00"+scope, func() (any, error) {
		// A flight that ended between our cache miss and this call has
		// already stored the token.
		if tok := s.cache.get(key, s.now().Add(s.refreshBefore)); tok != nil {
			return tok, nil
		}
		if s.baseCtx.Err() != nil {
			return nil, errClosed
		}
		ctx, cancel := context.WithTimeout(s.baseCtx, s.exchangeTimeout)
		defer cancel()
		start := time.Now()
		tok, err := s.exchanger.Exchange(ctx, clientID, scope)
		result := exchangeResult(err)
		s.metrics.exchanges.WithLabelValues(result).Inc()
		s.metrics.exchangeSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			s.log.Warn("exchange failed", "client_id", clientID, "scope", scope, "result", result, "error", err)
			return nil, err
		}
		s.log.Info("exchanged", "client_id", clientID, "scope", scope,
			"expires_on", tok.ExpiresOn.UTC().Format(time.RFC3339), "duration", time.Since(start).Round(time.Millisecond))
		s.cache.put(key, tok, s.now())
		return tok, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*stsclient.Token), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run serves the endpoints on ln until ctx ends or Close is called, then
// stops gracefully.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	s.running.Add(1)
	defer s.running.Done()
	if s.baseCtx.Err() != nil {
		ln.Close()
		return errClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.baseCtx, cancel)
	defer stop()
	srv := &httpx.Server{Handler: telemetry.Handler(s.tracer, "imds", s), Logger: s.log, ShutdownTimeout: 5 * time.Second}
	return srv.Serve(ctx, ln)
}

// Close stops every Run, aborts exchanges in flight and waits for Run to
// return. The Server cannot be used afterwards.
func (s *Server) Close() error {
	s.baseCancel()
	s.running.Wait()
	return nil
}
