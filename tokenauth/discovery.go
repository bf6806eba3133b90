package tokenauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/trust"
)

// DiscoveryOptions configure a Discovery. Zero fields take the defaults.
type DiscoveryOptions struct {
	// HTTPClient fetches documents and keys (e.g. one trusting the token
	// service's CA). Nil: system roots, with timeouts.
	HTTPClient *http.Client
	// MinRefetchInterval is how often an unknown kid may trigger a refetch
	// of one document's keys (default 5 min, as APIM).
	MinRefetchInterval time.Duration
	// RefreshInterval is how often keys are refreshed (default 1 h).
	RefreshInterval time.Duration
	// MaxStaleness is how long the last keys are served while the source is
	// down (default 24 h).
	MaxStaleness time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives fetch failures (default: discard).
	Logger *slog.Logger
	// Registerer receives the key cache's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Discovery is a cache of keys published through OpenID configuration
// documents (their jwks_uri). Keys are fetched off the request path where
// possible, refreshed hourly, refetched on an unknown kid at most every
// MinRefetchInterval, and served stale while the source is down. Only the
// URLs given to KeySet are ever fetched — never anything a token names.
//
//	disc := tokenauth.NewDiscovery(tokenauth.DiscoveryOptions{HTTPClient: client})
//	defer disc.Close()
//	keys := disc.KeySet("https://login.microsoftonline.com/" + tid + "/v2.0/.well-known/openid-configuration")
type Discovery struct {
	cache *trust.Cache
}

// NewDiscovery returns a Discovery; Close it to stop background refreshes.
func NewDiscovery(opts DiscoveryOptions) *Discovery {
	if opts.MinRefetchInterval <= 0 {
		opts.MinRefetchInterval = 5 * time.Minute
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = time.Hour
	}
	return &Discovery{cache: trust.New(trust.Options{
		HTTPClient:         opts.HTTPClient,
		MinRefetchInterval: opts.MinRefetchInterval,
		RefreshInterval:    opts.RefreshInterval,
		MaxStaleness:       opts.MaxStaleness,
		Now:                opts.Now,
		Logger:             opts.Logger,
		Registerer:         opts.Registerer,
	})}
}

// Close stops background refreshes.
func (d *Discovery) Close() { d.cache.Close() }

// KeySet returns the keys published by the OpenID configuration document at
// discoveryURL. The document's issuer is not compared with anything: set
// Config.Issuers to the iss values the tokens carry (Entra's v2 document
// also serves v1 tokens, whose iss differs).
func (d *Discovery) KeySet(discoveryURL string) *RemoteKeySet {
	return &RemoteKeySet{cache: d.cache, src: trust.Source{DiscoveryURL: discoveryURL}}
}

// RemoteKeySet is the KeySet of one OpenID configuration document.
type RemoteKeySet struct {
	cache *trust.Cache
	src   trust.Source
}

// URL is the discovery document's URL.
func (r *RemoteKeySet) URL() string { return r.src.DiscoveryURL }

// VerificationKeys implements KeySet.
func (r *RemoteKeySet) VerificationKeys(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if kid == "" {
		return r.cache.Keys(ctx, r.src)
	}
	k, err := r.cache.Key(ctx, r.src, kid)
	if errors.Is(err, trust.ErrUnknownKID) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []jose.JSONWebKey{*k}, nil
}

// Refresh fetches the keys now; use it to warm the cache at start-up.
func (r *RemoteKeySet) Refresh(ctx context.Context) error {
	return r.cache.Refresh(ctx, r.src)
}

// Ready reports whether usable keys are at hand (fetching them if there are
// none): a readiness check.
func (r *RemoteKeySet) Ready(ctx context.Context) error {
	_, err := r.cache.Keys(ctx, r.src)
	return err
}
