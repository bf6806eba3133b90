// Package sts is wif's token service: the Entra-compatible token endpoint
// (federated client assertions on the v1 and v2 endpoints, and RFC 8693
// token exchange), the tenant discovery documents and keys, and the audit of
// every exchange. It keeps the directory in memory, reloaded whenever the
// store's revision moves, so the token endpoint reads no store on its hot
// path.
package sts

import (
	"go.opentelemetry.io/otel/trace"
	"io"
	"runtime"

	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/store"
)

// Signer signs access tokens with the service's current key and publishes
// the keys (internal/jose implements it).
type Signer interface {
	// Sign returns a compact RS256 JWS of payload with typ JWT and kid,
	// and x5t when withX5T is set (v1 tokens).
	Sign(payload []byte, withX5T bool) (string, error)
	// JWKSWithETag returns the JSON Web Key Set document of the published
	// keys and its entity tag.
	JWKSWithETag() (body []byte, etag string)
	// IsOwnKey reports whether kid names one of the service's own keys.
	IsOwnKey(kid string) bool
}

// KeySource returns the public key of an external issuer for a kid
// (internal/trust implements it through an adapter). Its errors wrap
// ErrKeysUnavailable, ErrIssuerMetadataInvalid or ErrUnknownKID.
type KeySource interface {
	Key(ctx context.Context, req KeyRequest) (crypto.PublicKey, error)
}

// Errors a KeySource reports.
var (
	ErrKeysUnavailable       = errors.New("issuer keys unavailable")
	ErrIssuerMetadataInvalid = errors.New("issuer metadata invalid")
	ErrUnknownKID            = errors.New("kid not among the issuer's keys")
)

// Config configures a Service. Store, Signer, Keys and PublicURL are
// required.
type Config struct {
	Store  store.Store
	Signer Signer
	Keys   KeySource
	// ResourceAliases name resources by other identifiers: a request for
	// a key (compared case-insensitively, without trailing '/') is served
	// as one for its value, which the token's audience then names. The
	// token server maps its own URL — the Resource Manager and Graph
	// resource id of wif's cloud metadata, which az and the Terraform
	// providers ask tokens for — onto the admin API's api://wif-admin.
	ResourceAliases map[string]string
	// PublicURL is the base URL clients use as authority host, e.g.
	// https://wif.example.com or https://127.0.0.1:8443 (no trailing '/').
	PublicURL string
	// TokenLifetime is the lifetime of access tokens (default 1 h; between
	// 10 minutes and 24 hours: clients treat tokens of 5 minutes or less as
	// expired).
	TokenLifetime time.Duration
	// EntraIssuerNames makes v1 tokens carry Entra's issuer form
	// https://sts.windows.net/{tid}/, so production APIM policies run
	// unedited.
	EntraIssuerNames bool
	// ClockSkew is the leeway on assertion times (default 5 min).
	ClockSkew time.Duration
	// RefreshInterval is how often the store's revision is polled to pick
	// up changes made by other replicas (default 250 ms).
	RefreshInterval time.Duration
	// AuditRetention is how long audit records are kept (default 30 days;
	// negative keeps them forever).
	AuditRetention time.Duration
	// AuditBuffer is the number of audit records queued before new ones are
	// dropped (default 65536).
	AuditBuffer int
	// AuditSpoolDir, when set, is where audit records the store cannot take
	// wait (fsync'd) until it can; empty: such records are lost.
	AuditSpoolDir string
	// AuditEveryExchange writes a full record for every successful
	// exchange; by default repeated successes of one client, credential,
	// subject and audience are counted per minute in one record (the first
	// of each hour and every refusal are always full records).
	AuditEveryExchange bool
	// AuditSink, when set, receives every audit record whole as a JSON
	// line, before aggregation (--audit-sink: for log shippers).
	AuditSink io.Writer
	// AuditOTLPEndpoint, when set, also streams every audit record whole
	// as an OTLP log record to this OTLP/HTTP logs URL (JSON encoding,
	// e.g. https://collector:4318/v1/logs), batched off the request path
	// with AuditOTLPClient (default: system roots, 10 s timeout).
	AuditOTLPEndpoint string
	AuditOTLPClient   *http.Client
	// AuditSpoolMaxBytes bounds the spool (default 256 MiB).
	AuditSpoolMaxBytes int64
	// AuditRefuseWhenFull makes the token endpoint refuse exchanges (503)
	// while the spool is full, rather than issue tokens it cannot audit.
	AuditRefuseWhenFull bool
	// MaxDirectoryStaleness, when positive, is how long the replica keeps
	// serving a directory it cannot refresh from the store; after that it
	// refuses exchanges (503) until the store is back.
	MaxDirectoryStaleness time.Duration
	// UsageFlushInterval is how often credentials' last uses and issuers'
	// statuses are written to the store (default 10 s).
	UsageFlushInterval time.Duration
	Now                func() time.Time
	Logger             *slog.Logger
	Registerer         prometheus.Registerer
	// IssuerAlgorithms lists, for an issuer (its exact iss), the signature
	// algorithms its assertions may use instead of RS256 alone — e.g.
	// ES256 for SPIFFE/SPIRE JWT-SVIDs. Set by the operator (wif serve
	// --issuer-algorithms), never by a tenant.
	IssuerAlgorithms map[string][]string
	// MaxInflight bounds the exchanges processed at once; more wait their
	// turn first come, first served (default 4 × GOMAXPROCS; negative: no
	// bound).
	MaxInflight int
	// MaxQueueWait is the longest expected wait for a turn; a request that
	// would wait longer is answered at once with 503 temporarily_unavailable
	// and Retry-After (default 100 ms).
	MaxQueueWait time.Duration
	// Tracer records the exchange's spans: evaluating the assertion,
	// fetching the issuer's key, signing (nil: none, and no span work).
	Tracer trace.Tracer
}

// Service is the token service.
type Service struct {
	cfg     Config
	dir     directoryCache
	audit   *auditWriter
	unknown *unknownRequests
	usage   *usageTracker
	metrics *metrics
	log     *slog.Logger
	admit   *admission // nil: no bound

	runOnce sync.Once
}

// New validates cfg and loads the directory. Call Run to start the
// background work (directory refresh and audit writing).
func New(ctx context.Context, cfg Config) (*Service, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("sts: Store is required"))
	}
	if cfg.Signer == nil {
		errs = append(errs, errors.New("sts: Signer is required"))
	}
	if cfg.Keys == nil {
		errs = append(errs, errors.New("sts: Keys is required"))
	}
	u, err := url.Parse(cfg.PublicURL)
	switch {
	case cfg.PublicURL == "":
		errs = append(errs, errors.New("sts: PublicURL is required"))
	case err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "":
		errs = append(errs, fmt.Errorf("sts: PublicURL %q must be an https URL of a host root, such as https://wif.example.com: Azure clients take the first path segment as the tenant", cfg.PublicURL))
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = time.Hour
	}
	if cfg.TokenLifetime < 10*time.Minute || cfg.TokenLifetime > 24*time.Hour {
		errs = append(errs, fmt.Errorf("sts: token lifetime %s must be between 10m and 24h (clients treat tokens of 5 minutes or less as expired)", cfg.TokenLifetime))
	}
	for iss, algs := range cfg.IssuerAlgorithms {
		for _, a := range algs {
			if !validAssertionAlgorithm(a) {
				errs = append(errs, fmt.Errorf("sts: issuer %q: algorithm %q is not one of %v", iss, a, assertionAlgorithms))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = 5 * time.Minute
	}
	if cfg.RefreshInterval == 0 {
		// A poll that finds nothing new is one query; one that finds
		// identity or credential changes applies just those.
		cfg.RefreshInterval = 250 * time.Millisecond
	}
	if cfg.AuditRetention == 0 {
		cfg.AuditRetention = 30 * 24 * time.Hour
	}
	if cfg.AuditBuffer == 0 {
		cfg.AuditBuffer = 1 << 16
	}
	if cfg.UsageFlushInterval == 0 {
		cfg.UsageFlushInterval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registerer), unknown: newUnknownRequests(cfg.Registerer, cfg.Logger), usage: newUsageTracker()}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.MaxQueueWait <= 0 {
		cfg.MaxQueueWait = 100 * time.Millisecond
	}
	if cfg.MaxInflight > 0 {
		s.admit = newAdmission(cfg.MaxInflight, cfg.MaxQueueWait, s.metrics.shed.Inc)
	}
	s.cfg = cfg
	s.dir.store, s.dir.now = cfg.Store, cfg.Now
	if err := s.dir.refresh(ctx, true); err != nil {
		return nil, fmt.Errorf("sts: %w", err)
	}
	var sp *spool
	if cfg.AuditSpoolDir != "" {
		if cfg.AuditSpoolMaxBytes == 0 {
			cfg.AuditSpoolMaxBytes = 256 << 20
		}
		var err error
		if sp, err = openSpool(cfg.AuditSpoolDir, cfg.AuditSpoolMaxBytes); err != nil {
			return nil, fmt.Errorf("sts: %w", err)
		}
		if reg := cfg.Registerer; reg != nil {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wif_sts_audit_spool_bytes", Help: "Bytes of audit records waiting in the local spool for the store.",
			}, func() float64 { return float64(sp.size()) }))
		}
		if n := sp.size(); n > 0 {
			cfg.Logger.Warn("the audit spool holds records of an earlier run; they are written to the store first", "dir", cfg.AuditSpoolDir, "bytes", n)
		}
	}
	if reg := cfg.Registerer; reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wif_sts_directory_age_seconds", Help: "Seconds since the directory was last refreshed from the store (grows while the store is unreachable).",
		}, func() float64 { return s.dir.age().Seconds() }))
	}
	s.cfg = cfg
	s.audit = newAuditWriter(cfg.Store, cfg.AuditBuffer, sp, cfg.Logger, s.metrics)
	s.audit.now = cfg.Now
	if cfg.AuditEveryExchange {
		s.audit.agg = nil
	}
	var sinks multiSink
	if cfg.AuditSink != nil {
		sinks = append(sinks, &jsonLines{w: cfg.AuditSink, log: cfg.Logger})
	}
	if cfg.AuditOTLPEndpoint != "" {
		sinks = append(sinks, newOTLPSink(cfg.AuditOTLPEndpoint, cfg.AuditOTLPClient, cfg.Logger, cfg.Registerer))
	}
	switch len(sinks) {
	case 0:
	case 1:
		s.audit.sink = sinks[0]
	default:
		s.audit.sink = sinks
	}
	return s, nil
}

// Run refreshes the directory when the store changes and writes the audit
// log, until ctx ends; then it flushes the queued audit records and
// returns.
func (s *Service) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.audit.run(ctx)
	}()
	t := time.NewTicker(s.cfg.RefreshInterval)
	defer t.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	usage := time.NewTicker(s.cfg.UsageFlushInterval)
	defer usage.Stop()
	s.pruneAudit(ctx)
	for {
		select {
		case <-ctx.Done():
			<-done
			// The last uses of this run, written on the way out.
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.flushUsage(fctx); err != nil {
				s.log.Warn("writing credential usage at shutdown failed; the last uses of this run are lost", "error", err)
			}
			cancel()
			return nil
		case <-prune.C:
			s.pruneAudit(ctx)
		case <-usage.C:
			if err := s.flushUsage(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("writing credential usage failed; it is retried", "error", err)
			}
		case <-t.C:
			if err := s.dir.refresh(ctx, false); err != nil && ctx.Err() == nil {
				s.log.Warn("directory refresh failed; serving the last loaded directory", "error", err)
			}
			if idx := s.dir.load(); idx != nil {
				s.metrics.revision.Set(float64(idx.revision))
			}
		}
	}
}

// pruneAudit deletes audit records older than the retention.
// changesKept is how many entries of the store's change log the hourly
// prune keeps: a replica further behind than that reloads the directory.
const changesKept = 100_000

func (s *Service) pruneAudit(ctx context.Context) {
	if cl, ok := s.cfg.Store.(store.ChangeLog); ok {
		if err := cl.TrimChanges(ctx, changesKept); err != nil && ctx.Err() == nil {
			s.log.Warn("trimming the directory change log failed", "error", err)
		}
	}
	if s.cfg.AuditRetention < 0 {
		return
	}
	n, err := s.cfg.Store.PruneAudit(ctx, s.cfg.Now().Add(-s.cfg.AuditRetention))
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("pruning the audit log failed", "error", err)
	case n > 0:
		s.log.Info("pruned the audit log", "records", n, "older_than", s.cfg.AuditRetention.String())
	}
}

// refusal is why the token endpoint refuses every exchange now (nil when
// it does not): a directory staler than allowed, or an audit spool that is
// full under AuditRefuseWhenFull.
func (s *Service) refusal() *Error {
	if b := s.cfg.MaxDirectoryStaleness; b > 0 {
		if age := s.dir.age(); age > b {
			return errService(fmt.Errorf("the directory could not be refreshed for %s, longer than the staleness bound %s", age.Round(time.Second), b))
		}
	}
	if s.cfg.AuditRefuseWhenFull && s.audit.full.Load() {
		return errService(errors.New("the store is unavailable and the audit spool is full: exchanges are refused rather than not audited (--audit-refuse-when-full)"))
	}
	return nil
}

// DirectoryChanged reloads the directory at once. The admin API calls it
// after each write so changes take effect immediately in this replica.
func (s *Service) DirectoryChanged(ctx context.Context) error {
	return s.dir.refresh(ctx, true)
}

// TrustsIssuer reports whether some federated credential names issuer:
// the key source consults it so that no other issuer is ever fetched.
func (s *Service) TrustsIssuer(issuer string) bool {
	idx := s.dir.load()
	return idx != nil && idx.issuers[issuer]
}

// FlushAudit writes every queued audit record now (tests and shutdown).
func (s *Service) FlushAudit(ctx context.Context) error { return s.audit.flush(ctx) }

// RecordAdminChange audits an admin change (store.AuditAdminChange) as
// exchanges are: queued off the request path, spooled while the store is
// down, streamed to the audit sinks; never aggregated.
func (s *Service) RecordAdminChange(r store.AuditRecord) {
	r.GrantType = store.AuditAdminChange
	s.audit.add(r)
}
