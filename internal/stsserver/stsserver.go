// Package stsserver assembles a running token service from its parts: the
// store, the signing keys (internal/jose), the remote issuer key cache
// (internal/trust), the token endpoint (internal/sts), probes, metrics and
// the HTTPS listener. `wif serve`, `wif dev` and the test harness all start
// the token service through it, so they cannot drift apart.
package stsserver

import (
	"go.opentelemetry.io/otel/trace"
	"io"

	"github.com/wif-project/wif/internal/telemetry"

	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/arm"
	"github.com/wif-project/wif/internal/graph"
	"github.com/wif-project/wif/internal/httpx"
	"github.com/wif-project/wif/internal/jose"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/sts"
	"github.com/wif-project/wif/internal/trust"
)

// Config configures a token service.
type Config struct {
	// Store holds the directory, keys and audit log. Required; the caller
	// closes it after Run returns.
	Store store.Store
	// Listener is where the service serves HTTPS. Required.
	Listener net.Listener
	// TLS is the listener's TLS configuration. Required: Azure clients
	// refuse a non-https authority.
	TLS *tls.Config
	// PublicURL is the authority host clients use (default:
	// https://<listener address>).
	PublicURL string
	// KEK is the key-encryption key for signing keys at rest (nil: keys
	// stored in the clear, with a warning).
	KEK []byte
	// PreviousKEKs still open keys while KEK replaces them.
	PreviousKEKs [][]byte
	// KeyRotationPeriod and KeyPrePublish override the signing keys'
	// schedule (jose's defaults: 30 days, 48 h): for drills and tests.
	KeyRotationPeriod, KeyPrePublish time.Duration
	// TokenLifetime of access tokens (default 1 h).
	TokenLifetime time.Duration
	// EntraIssuerNames: v1 tokens carry iss https://sts.windows.net/{tid}/.
	EntraIssuerNames bool
	// AuditRetention is how long audit records are kept (default 30 days).
	AuditRetention time.Duration
	// AuditSpoolDir, AuditSpoolMaxBytes, AuditRefuseWhenFull and
	// MaxDirectoryStaleness: see sts.Config.
	AuditSpoolDir         string
	AuditSpoolMaxBytes    int64
	AuditRefuseWhenFull   bool
	MaxDirectoryStaleness time.Duration
	// IssuerHTTPClient fetches external issuers' metadata and keys (for
	// example one trusting a cluster's CA). Nil: system roots.
	IssuerHTTPClient *http.Client
	// AllowPrivateIssuers lets issuer fetches reach loopback, link-local and
	// private addresses (refused by default: see trust.AddressGuard).
	AllowPrivateIssuers bool
	// DisableAdmin leaves the admin API out (tests that mount their own).
	DisableAdmin bool
	// AdminOperatorTenant is the tenant whose directory admins administer
	// every tenant through the admin API (usually the bootstrap admin's).
	AdminOperatorTenant string
	// AdminAllowLoopback accepts unauthenticated admin calls when both ends
	// of the connection are loopback (wif dev only).
	AdminAllowLoopback bool
	// Mount, when set, adds routes (such as the admin API) to the mux.
	Mount func(mux *http.ServeMux, svc *sts.Service)
	// AuditEveryExchange and AuditSink: see sts.Config.
	AuditEveryExchange bool
	AuditSink          io.Writer
	AuditOTLPEndpoint  string
	AuditOTLPClient    *http.Client
	// MaxApplyBytes bounds directory documents sent to the admin API
	// (default apply.DefaultMaxApplyBytes).
	MaxApplyBytes int64
	// IssuerAlgorithms lets issuers sign with more than RS256 (see
	// sts.Config.IssuerAlgorithms).
	IssuerAlgorithms map[string][]string
	// MaxInflightExchanges and MaxQueueWait bound the token endpoint's
	// admission (see sts.Config).
	MaxInflightExchanges int
	MaxQueueWait         time.Duration
	// TracerProvider, when set, gives every request a server span (the
	// caller's traceparent continued) and the exchange its inner spans.
	TracerProvider trace.TracerProvider
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Server is an assembled token service.
type Server struct {
	STS      *sts.Service
	Keys     *jose.Manager
	Trust    *trust.Cache
	Registry *prometheus.Registry
	Handler  http.Handler
	// URL is the public URL (authority host, no trailing '/').
	URL string

	cfg Config
	log *slog.Logger
}

// New builds the token service: it loads (or on first start creates) the
// signing keys and loads the directory.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Listener == nil || cfg.TLS == nil {
		return nil, errors.New("stsserver: Store, Listener and TLS are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "https://" + cfg.Listener.Addr().String()
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = time.Hour
	}
	reg := httpx.NewRegistry()
	ko := jose.Options{
		Store: cfg.Store, KEK: cfg.KEK, PreviousKEKs: cfg.PreviousKEKs, MaxTokenLifetime: max(cfg.TokenLifetime, 24*time.Hour),
		RotationPeriod: cfg.KeyRotationPeriod, PrePublish: cfg.KeyPrePublish,
		Now: cfg.Now, Logger: cfg.Logger, Registerer: reg,
	}
	if cfg.KeyPrePublish > 0 {
		// A short pre-publication (tests, drills) needs maintenance often
		// enough to create each successor in time.
		ko.ReloadInterval = min(jose.DefaultReloadInterval, cfg.KeyPrePublish/4)
	}
	keys, err := jose.NewManager(ctx, ko)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	s := &Server{Keys: keys, Registry: reg, cfg: cfg, log: cfg.Logger}
	var svc *sts.Service
	s.Trust = trust.New(trust.Options{
		HTTPClient: cfg.IssuerHTTPClient,
		Guard:      issuerGuard(cfg.AllowPrivateIssuers),
		Now:        cfg.Now,
		Logger:     cfg.Logger,
		Registerer: reg,
		// Only issuers that some federated credential names are fetched:
		// a token's iss alone never causes network I/O.
		Allow: func(src trust.Source) bool {
			return svc != nil && src.Issuer != "" && src.DiscoveryURL == trust.IssuerSource(src.Issuer).DiscoveryURL && svc.AllowsFetch(src.Issuer, src.Profile)
		},
		// A tenant's trusted issuer may add CA certificates, or (set by
		// the operator) allow private addresses, for its issuer only.
		Profile: func(name string) (trust.Profile, error) {
			if svc == nil {
				return trust.Profile{}, errors.New("the token service is starting")
			}
			return svc.FetchProfile(name)
		},
		// How each issuer answers is kept for wif audit stale.
		Hooks: trust.Hooks{OnFetch: func(src trust.Source, err error) {
			if svc != nil {
				svc.IssuerFetched(src.Issuer, err)
			}
		}},
	})
	svc, err = sts.New(ctx, sts.Config{
		Store: cfg.Store, Signer: keys, Keys: trustKeys{s.Trust}, PublicURL: cfg.PublicURL, ResourceAliases: resourceAliases(cfg),
		TokenLifetime: cfg.TokenLifetime, EntraIssuerNames: cfg.EntraIssuerNames, AuditRetention: cfg.AuditRetention,
		AuditSpoolDir: cfg.AuditSpoolDir, AuditSpoolMaxBytes: cfg.AuditSpoolMaxBytes, AuditRefuseWhenFull: cfg.AuditRefuseWhenFull,
		AuditEveryExchange: cfg.AuditEveryExchange, AuditSink: cfg.AuditSink, AuditOTLPEndpoint: cfg.AuditOTLPEndpoint, AuditOTLPClient: cfg.AuditOTLPClient,
		MaxDirectoryStaleness: cfg.MaxDirectoryStaleness, Tracer: stsTracer(cfg.TracerProvider),
		MaxInflight: cfg.MaxInflightExchanges, MaxQueueWait: cfg.MaxQueueWait, IssuerAlgorithms: cfg.IssuerAlgorithms,
		Now: cfg.Now, Logger: cfg.Logger, Registerer: reg,
	})
	if err != nil {
		s.Trust.Close()
		return nil, err
	}
	s.STS, s.URL = svc, cfg.PublicURL

	mux := http.NewServeMux()
	svc.Mount(mux)
	var probes httpx.Probes
	// Not ready while the store does not answer: a load balancer sends new
	// callers elsewhere; this replica still answers exchanges from the
	// loaded directory, up to MaxDirectoryStaleness (liveness stays true).
	probes.AddReadiness("store", func(ctx context.Context) error {
		_, err := cfg.Store.Revision(ctx)
		return err
	})
	probes.AddReadiness("signing key", func(context.Context) error { return keys.Ready() })
	probes.Mount(mux)
	httpx.MountMetrics(mux, reg)
	var front prefixRouter
	if !cfg.DisableAdmin {
		var err error
		if front, err = mountAdmin(mux, cfg, keys, svc, reg); err != nil {
			s.Trust.Close()
			return nil, err
		}
	}
	if cfg.Mount != nil {
		cfg.Mount(mux, svc)
	}
	front.next = mux
	s.Handler = telemetry.Handler(cfg.TracerProvider, "sts", front)
	return s, nil
}

// mountAdmin adds the admin API, authorised by tokens of this same
// service for api://wif-admin.
func mountAdmin(mux *http.ServeMux, cfg Config, keys *jose.Manager, svc *sts.Service, reg prometheus.Registerer) (prefixRouter, error) {
	sc := admin.ServiceConfig{
		Store: cfg.Store, PublicURL: cfg.PublicURL, EntraIssuerNames: cfg.EntraIssuerNames,
		VerifySignature: keys.Verify, OperatorTenant: cfg.AdminOperatorTenant, AllowLoopback: cfg.AdminAllowLoopback,
		OnChange: func() {
			if err := svc.DirectoryChanged(context.Background()); err != nil {
				cfg.Logger.Warn("reloading the directory after an admin change failed; the next refresh retries", "error", err)
			}
		},
		Logger: cfg.Logger, Registerer: reg, Keys: keys, Tester: svc, MaxApplyBytes: cfg.MaxApplyBytes,
		Audit: svc.RecordAdminChange,
	}
	ah, err := admin.NewForTokenService(sc)
	if err != nil {
		return prefixRouter{}, fmt.Errorf("admin API: %w", err)
	}
	ah.Mount(mux)
	// Resource Manager on the same host, authenticated as the admin API is
	// and mapped onto its operations: what az and the Terraform providers
	// call.
	rm, err := arm.New(arm.Config{Store: cfg.Store, Identify: admin.NewTokenAuthorizer(sc), Admin: ah, PublicURL: cfg.PublicURL, Logger: cfg.Logger})
	if err != nil {
		return prefixRouter{}, err
	}
	rm.Mount(mux)
	// Microsoft Graph v1.0 the same way: applications, service
	// principals, their credentials and role assignments.
	gh, err := graph.New(graph.Config{Store: cfg.Store, Identify: admin.NewTokenAuthorizer(sc), Admin: ah, PublicURL: cfg.PublicURL, Logger: cfg.Logger})
	if err != nil {
		return prefixRouter{}, err
	}
	return prefixRouter{routes: []prefixRoute{{"/subscriptions/", http.HandlerFunc(rm.Resources)}, {graph.Prefix, gh}}}, nil
}

// prefixRouter sends the paths below some prefixes to their handlers
// before the mux: Resource Manager's and Graph's trees, which a mux
// pattern cannot hold beside "/{tenant}/oauth2/v2.0/token" (a path like
// /subscriptions/oauth2/v2.0/token would match both).
type prefixRouter struct {
	routes []prefixRoute
	next   http.Handler
}

type prefixRoute struct {
	prefix string
	h      http.Handler
}

func (p prefixRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, rt := range p.routes {
		if strings.HasPrefix(r.URL.Path, rt.prefix) {
			rt.h.ServeHTTP(w, r)
			return
		}
	}
	p.next.ServeHTTP(w, r)
}

// Run serves until ctx ends, with key rotation, directory refresh and the
// audit writer running beside; on return every queued audit record has
// been written.
func (s *Server) Run(ctx context.Context) error {
	defer s.Trust.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- s.Keys.Run(ctx) }()
	go func() { errc <- s.STS.Run(ctx) }()
	srv := &httpx.Server{Handler: s.Handler, TLSConfig: s.cfg.TLS, Logger: s.log}
	go func() { errc <- srv.Serve(ctx, s.cfg.Listener) }()
	var first error
	for i := 0; i < 3; i++ {
		err := <-errc
		if err != nil && first == nil {
			first = err
			cancel()
		}
		if i == 0 {
			cancel() // any part stopping stops the others
		}
	}
	return first
}

// trustKeys adapts the trust cache to the token service's KeySource,
// classifying its failures into the token service's error kinds.
type trustKeys struct{ c *trust.Cache }

func (k trustKeys) Key(ctx context.Context, req sts.KeyRequest) (crypto.PublicKey, error) {
	src := trust.IssuerSource(req.Issuer)
	src.Profile = req.Profile
	jwk, err := k.c.Key(ctx, src, req.KID)
	switch {
	case err == nil && req.RequireUse && jwk.Use != "sig":
		return nil, fmt.Errorf("%w: the issuer's key %q has no \"use\": \"sig\", which the tenant's trusted issuer requires", sts.ErrUnknownKID, jwk.KeyID)
	case err == nil:
		return jwk.Key, nil
	case errors.Is(err, trust.ErrUnknownKID):
		return nil, fmt.Errorf("%w: %w", sts.ErrUnknownKID, err)
	case errors.Is(err, trust.ErrIssuerMismatch), errors.Is(err, trust.ErrPrivateKeyMaterial),
		errors.Is(err, trust.ErrInsecureURL), errors.Is(err, trust.ErrResponseTooLarge):
		return nil, fmt.Errorf("%w: %w", sts.ErrIssuerMetadataInvalid, err)
	default:
		return nil, fmt.Errorf("%w: %w", sts.ErrKeysUnavailable, err)
	}
}

// issuerGuard is the address guard of issuer fetches: none when private
// addresses are allowed (the issuer client's own dialer is kept).
func issuerGuard(allowPrivate bool) *trust.AddressGuard {
	if allowPrivate {
		return nil
	}
	return &trust.AddressGuard{}
}

// stsTracer is the exchange's tracer when tracing is on, else nil (the
// token service then does no span work at all).
func stsTracer(tp trace.TracerProvider) trace.Tracer {
	if !telemetry.Enabled(tp) {
		return nil
	}
	return telemetry.Tracer(tp, "sts")
}

// resourceAliases maps the server's own URL — the Resource Manager and
// Graph resource id its cloud metadata names — onto the admin API's
// resource, when the admin API is served.
func resourceAliases(cfg Config) map[string]string {
	if cfg.DisableAdmin || cfg.PublicURL == "" {
		return nil
	}
	return map[string]string{strings.ToLower(strings.TrimRight(cfg.PublicURL, "/")): admin.AdminResource}
}
