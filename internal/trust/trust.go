// Package trust fetches and caches the signing keys of remote OpenID Connect
// issuers: the Kubernetes API servers and CI systems whose tokens the token
// service accepts as client assertions, and the token services (wif's own or
// Entra) whose access tokens tokenauth and the gateway validate.
//
// A [Source] names where keys come from: an OpenID configuration document,
// whose jwks_uri is then fetched, and optionally the issuer that document
// must declare. A [Cache] keeps one entry per Source:
//
//   - a lookup of a known kid is a lock-free map read with no allocation;
//   - an unknown kid triggers a refetch, at most once per MinRefetchInterval
//     per Source, and concurrent misses share one in-flight fetch;
//   - entries expire after the key set's Cache-Control max-age (bounded, with
//     jitter) and are refreshed in the background while still being served;
//   - when an issuer is down, its last keys are served up to MaxStaleness;
//   - only https is fetched, redirects stay on the same host, responses are
//     size-capped and time-bounded, and Options.Allow is asked before any
//     network I/O, so a token's own iss can never make the cache fetch.
//
// Usage:
//
//	c := trust.New(trust.Options{HTTPClient: client, Allow: ficIssuerExists})
//	defer c.Close()
//	key, err := c.Key(ctx, trust.IssuerSource(iss), kid)
//	var fe *trust.FetchError
//	switch {
//	case errors.As(err, &fe): // the issuer's metadata or keys could not be fetched
//	case errors.Is(err, trust.ErrUnknownKID): // no key with this kid
//	}
package trust

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero fields of Options.
const (
	DefaultFetchTimeout       = 10 * time.Second
	DefaultMinRefetchInterval = time.Minute
	DefaultRefreshInterval    = time.Hour
	DefaultMinTTL             = 5 * time.Minute
	DefaultMaxStaleness       = 24 * time.Hour
	DefaultMaxKeys            = 100
	DefaultMaxResponseBytes   = 1 << 20
	// MaxRedirects is how many same-host redirects a fetch follows.
	MaxRedirects = 3
)

// Errors. Every fetch failure is a *FetchError, which wraps one of these
// (or a transport error) so callers can tell the causes apart with
// errors.Is.
var (
	// ErrUnknownKID: the Source's keys, fresh or refetched, have no key
	// with the requested kid.
	ErrUnknownKID = errors.New("trust: unknown key id (kid)")
	// ErrNotAllowed: Options.Allow refused the Source; nothing was fetched.
	ErrNotAllowed = errors.New("source not allowed")
	// ErrIssuerMismatch: the discovery document declares another issuer
	// than the Source requires.
	ErrIssuerMismatch = errors.New("issuer mismatch")
	// ErrRedirectRefused: the server redirected to another scheme or host,
	// or more than MaxRedirects times.
	ErrRedirectRefused = errors.New("redirect refused")
	// ErrResponseTooLarge: a response body exceeded MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response too large")
	// ErrInsecureURL: a discovery or jwks_uri URL is not an https URL.
	ErrInsecureURL = errors.New("not an https URL")
	// ErrPrivateKeyMaterial: a key set held private or symmetric key
	// parameters and was refused whole.
	ErrPrivateKeyMaterial = errors.New("private key material in a key set")
)

// Source says where a Cache gets keys from. It is comparable and is the
// cache's key: two equal Sources share one entry.
type Source struct {
	// DiscoveryURL is the https URL of the OpenID configuration document;
	// the keys come from its jwks_uri.
	DiscoveryURL string
	// Issuer, when not empty, must equal the document's "issuer" exactly
	// (case and trailing '/' included). Leave it empty only where the
	// document is known to describe another issuer string than the tokens
	// carry (Entra's v2 document serving v1 tokens); the caller must then
	// check the token's iss itself.
	Issuer string
	// Profile, when not empty, names how the source is fetched (see
	// Options.Profile): two sources differing only by profile are two
	// cache entries.
	Profile string
}

// IssuerSource is the Source of an OIDC issuer as the token service uses it
// for client assertions: the document at
// {iss}/.well-known/openid-configuration (one trailing '/' of iss removed
// first, as Kubernetes and Entra do), whose issuer must be iss exactly.
func IssuerSource(iss string) Source {
	return Source{
		DiscoveryURL: strings.TrimSuffix(iss, "/") + "/.well-known/openid-configuration",
		Issuer:       iss,
	}
}

// String names the source in messages.
func (s Source) String() string {
	if s.Issuer == "" {
		return s.DiscoveryURL
	}
	return fmt.Sprintf("issuer %q (%s)", s.Issuer, s.DiscoveryURL)
}

// Options configure a Cache. Zero fields take the defaults above.
type Options struct {
	// HTTPClient performs fetches (e.g. one trusting a private CA). The
	// cache uses a copy whose redirect policy and cookie jar it replaces
	// and whose Timeout it bounds by FetchTimeout. Nil: a client with
	// dial, TLS and header timeouts and the system roots.
	HTTPClient *http.Client
	// Guard, when set, checks every connection's address (see
	// AddressGuard): the token service sets it; the gateway, whose
	// openid-config URLs are the operator's, does not.
	Guard *AddressGuard
	// FetchTimeout bounds one fetch: discovery document plus key set.
	FetchTimeout time.Duration
	// MinRefetchInterval is the cooldown between fetches of one Source
	// triggered by an unknown kid or retrying after a failure (default 1
	// min; the gateway uses 5 min as APIM does).
	MinRefetchInterval time.Duration
	// RefreshInterval is the longest a key set is used before it is
	// refreshed, whatever its max-age (default 1 h); also the lifetime of
	// a key set sent without max-age.
	RefreshInterval time.Duration
	// MinTTL is the shortest lifetime given to a key set, whatever its
	// max-age (default 5 min, at most RefreshInterval).
	MinTTL time.Duration
	// MaxStaleness is how long after the last successful fetch keys are
	// still served while refreshing fails (default 24 h).
	MaxStaleness time.Duration
	// MaxKeys is how many keys of a set are kept (default 100).
	MaxKeys int
	// MaxResponseBytes caps each response body; a larger body is an error
	// (default 1 MiB).
	MaxResponseBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives fetch failures (default: discard).
	Logger *slog.Logger
	// Registerer receives the cache's metrics (nil: not registered).
	// Collectors already registered by another Cache are shared.
	Registerer prometheus.Registerer
	// Allow is asked before a Source gets a cache entry and before every
	// fetch; false refuses with ErrNotAllowed and no network I/O. The
	// token service passes a function that is true only for issuers some
	// federated credential names. Nil allows every Source: only for
	// Sources that come from configuration, never from a token.
	Allow func(Source) bool
	// Profile returns the fetch profile a Source names (see Source.Profile);
	// an error refuses the fetch. Nil: Sources with a profile are refused.
	Profile func(name string) (Profile, error)
	// Hooks observe the cache (tests count with them).
	Hooks Hooks
}

// Hooks are called synchronously; keep them fast. Nil hooks are skipped.
type Hooks struct {
	// OnLookup is called for every Key call: hit is true when the kid was
	// found in the cache without waiting for a fetch.
	OnLookup func(src Source, kid string, hit bool)
	// OnFetch is called after each fetch attempt, once the cache is
	// updated; err is nil on success.
	OnFetch func(src Source, err error)
}

// FetchError reports that a Source's metadata or keys could not be fetched
// and no usable cached keys remain.
type FetchError struct {
	// Source is the source being fetched.
	Source Source
	// URL is the URL that failed: the discovery document or the jwks_uri.
	URL string
	// StatusCode is the HTTP status when the server answered with one
	// other than 200, else 0.
	StatusCode int
	// Err is the cause.
	Err error
	// LastSuccess is when keys were last fetched for Source (zero if
	// never); set when those keys exist but are older than MaxStaleness.
	LastSuccess time.Time
	// NextAttempt, when not zero, is the earliest time the cache will try
	// again: until then it answers with this error without fetching.
	NextAttempt time.Time
}

// Error says which URL failed and why.
func (e *FetchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trust: fetching %s failed: %v", e.URL, e.Err)
	if !e.LastSuccess.IsZero() {
		fmt.Fprintf(&b, " (the keys last fetched at %s are too old to use)", e.LastSuccess.UTC().Format(time.RFC3339))
	}
	if !e.NextAttempt.IsZero() {
		fmt.Fprintf(&b, "; the next attempt will be made after %s", e.NextAttempt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *FetchError) Unwrap() error { return e.Err }

// Metadata describes a Source's current key set.
type Metadata struct {
	// Issuer is the "issuer" of the discovery document.
	Issuer string
	// JWKSURI is the "jwks_uri" of the discovery document.
	JWKSURI string
	// FetchedAt is when the keys were fetched.
	FetchedAt time.Time
	// Expires is when they are due for refresh.
	Expires time.Time
}

// SourceStatus is a snapshot of one Source's cache entry, for diagnostics
// (wif doctor, debug endpoints).
type SourceStatus struct {
	// Source is the entry's source.
	Source Source
	// Keys is the number of cached keys (0 before the first success).
	Keys int
	// KIDs lists the cached key ids (keys without one are not listed).
	KIDs []string
	// Metadata of the cached keys (zero before the first success).
	Metadata Metadata
	// LastError is the error of the last fetch, nil if it succeeded.
	LastError *FetchError
	// NextAttempt is the earliest time a fetch other than Refresh may run.
	NextAttempt time.Time
}

// Cache is a concurrency-safe key cache for remote issuers. Create it with
// New; the zero value is not usable.
type Cache struct {
	opts    Options
	client  *http.Client
	logger  *slog.Logger
	metrics metrics

	// entries is copied on write: reads are a lock-free map lookup.
	entries atomic.Pointer[map[Source]*entry]
	mu      sync.Mutex // serializes writers of entries

	ctx     context.Context // background fetches; cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Mutex // orders wg.Add after Close's wg.Wait
	closed  bool

	profMu   sync.Mutex
	profiles map[string]*http.Client // by profile name, built on first use
}

// entry is one Source's cache state.
type entry struct {
	src  Source
	keys atomic.Pointer[keySet] // nil until the first successful fetch
	// nextAttempt (Unix ns) is the earliest time a fetch not forced by
	// Refresh may start: the last attempt plus MinRefetchInterval.
	nextAttempt atomic.Int64

	mu      sync.Mutex // guards the fields below
	flight  *flight
	lastErr *FetchError
}

// flight is one in-progress fetch that any number of callers wait on.
type flight struct {
	done chan struct{}
	err  *FetchError // set before done is closed
}

// keySet is an immutable, fetched set of keys.
type keySet struct {
	byKID     map[string]*jose.JSONWebKey
	keys      []jose.JSONWebKey
	kidList   string
	meta      Metadata
	fetchedAt time.Time
	expires   time.Time
}

// New returns a Cache. Call Close to stop background refreshes.
func New(opts Options) *Cache {
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.MinRefetchInterval <= 0 {
		opts.MinRefetchInterval = DefaultMinRefetchInterval
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.MinTTL <= 0 {
		opts.MinTTL = DefaultMinTTL
	}
	opts.MinTTL = min(opts.MinTTL, opts.RefreshInterval)
	if opts.MaxStaleness <= 0 {
		opts.MaxStaleness = DefaultMaxStaleness
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		opts:   opts,
		client: newClient(opts.HTTPClient, opts.FetchTimeout, opts.Guard),
		logger: logger,
	}
	c.metrics = newMetrics(opts.Registerer, logger)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	empty := map[Source]*entry{}
	c.entries.Store(&empty)
	return c
}

// Close cancels fetches in progress and waits for them to end. Lookups
// after Close are served from the cache; fetches fail.
func (c *Cache) Close() {
	c.closeMu.Lock()
	c.closed = true
	c.closeMu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Key returns the key with the given kid from src's key set. The returned
// key is shared: do not modify it.
//
// A kid in the cached keys is returned at once (and an expired set is
// refreshed in the background). An unknown kid triggers one refetch unless
// one happened in the last MinRefetchInterval; concurrent callers share
// it, each until its own ctx ends. Errors: errors.Is(err, ErrUnknownKID)
// when the kid is still unknown; *FetchError when no usable keys could be
// had.
func (c *Cache) Key(ctx context.Context, src Source, kid string) (*jose.JSONWebKey, error) {
	e, err := c.entry(src)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	if ks := e.keys.Load(); ks != nil && c.usable(ks, now) {
		if k := ks.byKID[kid]; k != nil {
			c.metrics.hit.Inc()
			if h := c.opts.Hooks.OnLookup; h != nil {
				h(src, kid, true)
			}
			if !now.Before(ks.expires) {
				c.refreshInBackground(e, now)
			}
			return k, nil
		}
	}
	c.metrics.miss.Inc()
	if h := c.opts.Hooks.OnLookup; h != nil {
		h(src, kid, false)
	}
	waited := false
	for {
		now := c.opts.Now()
		ks := e.keys.Load()
		usable := ks != nil && c.usable(ks, now)
		if usable {
			if k := ks.byKID[kid]; k != nil {
				return k, nil
			}
		}
		var f *flight
		if !waited {
			f = c.startFetch(e, now, false)
		}
		if f == nil {
			if usable {
				return nil, c.unknownKID(e, ks, kid, now)
			}
			return nil, c.noKeys(e, ks, now)
		}
		if err := c.wait(ctx, e, f); err != nil {
			return nil, err
		}
		waited = true
	}
}

// Keys returns a copy of src's current keys, fetching them if there are
// none usable (an expired set is refreshed in the background).
func (c *Cache) Keys(ctx context.Context, src Source) ([]jose.JSONWebKey, error) {
	ks, err := c.current(ctx, src)
	if err != nil {
		return nil, err
	}
	return slices.Clone(ks.keys), nil
}

// Metadata returns what the discovery document of src said and when its
// keys were fetched, fetching them if there are none usable.
func (c *Cache) Metadata(ctx context.Context, src Source) (Metadata, error) {
	ks, err := c.current(ctx, src)
	if err != nil {
		return Metadata{}, err
	}
	return ks.meta, nil
}

// Refresh fetches src's keys now, ignoring the refetch cooldown (it joins
// a fetch already in progress), and returns the fetch's error. Use it to
// warm the cache at start-up, off the request path.
func (c *Cache) Refresh(ctx context.Context, src Source) error {
	e, err := c.entry(src)
	if err != nil {
		return err
	}
	f := c.startFetch(e, c.opts.Now(), true)
	if err := c.wait(ctx, e, f); err != nil {
		return err
	}
	if f.err != nil {
		return f.err
	}
	return nil
}

// current returns src's usable key set, fetching when there is none.
func (c *Cache) current(ctx context.Context, src Source) (*keySet, error) {
	e, err := c.entry(src)
	if err != nil {
		return nil, err
	}
	waited := false
	for {
		now := c.opts.Now()
		ks := e.keys.Load()
		if ks != nil && c.usable(ks, now) {
			if !now.Before(ks.expires) {
				c.refreshInBackground(e, now)
			}
			return ks, nil
		}
		var f *flight
		if !waited {
			f = c.startFetch(e, now, false)
		}
		if f == nil {
			return nil, c.noKeys(e, ks, now)
		}
		if err := c.wait(ctx, e, f); err != nil {
			return nil, err
		}
		waited = true
	}
}

// Status returns a snapshot of every entry, sorted by discovery URL.
func (c *Cache) Status() []SourceStatus {
	m := *c.entries.Load()
	out := make([]SourceStatus, 0, len(m))
	for _, e := range m {
		st := SourceStatus{Source: e.src}
		if ks := e.keys.Load(); ks != nil {
			st.Keys, st.Metadata = len(ks.keys), ks.meta
			for _, k := range ks.keys {
				if k.KeyID != "" {
					st.KIDs = append(st.KIDs, k.KeyID)
				}
			}
		}
		e.mu.Lock()
		st.LastError = e.lastErr
		e.mu.Unlock()
		if n := e.nextAttempt.Load(); n != 0 {
			st.NextAttempt = time.Unix(0, n)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b SourceStatus) int {
		return cmp.Or(strings.Compare(a.Source.DiscoveryURL, b.Source.DiscoveryURL), strings.Compare(a.Source.Issuer, b.Source.Issuer))
	})
	return out
}

// entry returns src's entry, creating it if src is allowed and well formed.
func (c *Cache) entry(src Source) (*entry, error) {
	if e := (*c.entries.Load())[src]; e != nil {
		return e, nil
	}
	if err := checkHTTPS(src.DiscoveryURL); err != nil {
		return nil, &FetchError{Source: src, URL: src.DiscoveryURL, Err: err}
	}
	if !c.allowed(src) {
		return nil, c.notAllowed(src)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.entries.Load()
	if e := old[src]; e != nil {
		return e, nil
	}
	m := make(map[Source]*entry, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	e := &entry{src: src}
	m[src] = e
	c.entries.Store(&m)
	return e, nil
}

func (c *Cache) allowed(src Source) bool {
	return c.opts.Allow == nil || c.opts.Allow(src)
}

func (c *Cache) notAllowed(src Source) *FetchError {
	return &FetchError{Source: src, URL: src.DiscoveryURL,
		Err: fmt.Errorf("%w: %s is not a trusted source (no credential names it)", ErrNotAllowed, src)}
}

// usable reports whether ks may still be served at now.
func (c *Cache) usable(ks *keySet, now time.Time) bool {
	return now.Sub(ks.fetchedAt) <= c.opts.MaxStaleness
}

// refreshInBackground starts a fetch of an expired entry unless one is
// running or the cooldown forbids it; it does not wait.
func (c *Cache) refreshInBackground(e *entry, now time.Time) {
	if now.UnixNano() < e.nextAttempt.Load() {
		return
	}
	c.startFetch(e, now, false)
}

// startFetch returns the fetch in progress for e, or starts one unless
// the cooldown forbids it (force ignores the cooldown); nil means no fetch.
func (c *Cache) startFetch(e *entry, now time.Time, force bool) *flight {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flight != nil {
		return e.flight
	}
	if !force && now.UnixNano() < e.nextAttempt.Load() {
		return nil
	}
	e.nextAttempt.Store(now.Add(c.opts.MinRefetchInterval).UnixNano())
	f := &flight{done: make(chan struct{})}
	c.closeMu.Lock()
	closed := c.closed
	if !closed {
		c.wg.Add(1)
	}
	c.closeMu.Unlock()
	if closed {
		f.err = &FetchError{Source: e.src, URL: e.src.DiscoveryURL, Err: errors.New("the cache was closed")}
		e.lastErr = f.err
		close(f.done)
		return f
	}
	e.flight = f
	go c.run(e, f)
	return f
}

// wait waits for f or the end of ctx.
func (c *Cache) wait(ctx context.Context, e *entry, f *flight) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("trust: waiting for the keys of %s: %w", e.src, ctx.Err())
	}
}

// run performs one fetch for e and publishes its result.
func (c *Cache) run(e *entry, f *flight) {
	defer c.wg.Done()
	start := time.Now() // wall time for the duration metric, not the cache clock
	ks, ferr := c.fetch(e.src)
	c.metrics.duration.Observe(time.Since(start).Seconds())

	e.mu.Lock()
	if ferr == nil {
		e.keys.Store(ks)
		e.lastErr = nil
	} else {
		e.lastErr = ferr
	}
	e.flight = nil
	f.err = ferr
	e.mu.Unlock()
	// Waiters are released only after the attempt is logged, counted and
	// reported, so whoever sees its result also sees those.
	defer close(f.done)

	var err error
	if ferr != nil {
		err = ferr
		c.metrics.fetchErr.Inc()
		attrs := []any{"source", e.src.DiscoveryURL, "url", ferr.URL, "error", ferr.Err.Error()}
		if old := e.keys.Load(); old != nil {
			attrs = append(attrs, "serving_keys_fetched_at", old.fetchedAt, "stale_until", old.fetchedAt.Add(c.opts.MaxStaleness))
		}
		c.logger.Warn("trust: fetching issuer keys failed", attrs...)
	} else {
		c.metrics.fetchOK.Inc()
		c.logger.Debug("trust: fetched issuer keys", "source", e.src.DiscoveryURL, "jwks_uri", ks.meta.JWKSURI,
			"keys", len(ks.keys), "expires", ks.expires)
	}
	if h := c.opts.Hooks.OnFetch; h != nil {
		h(e.src, err)
	}
}

// unknownKID is the error for a kid missing from a usable key set.
func (c *Cache) unknownKID(e *entry, ks *keySet, kid string, now time.Time) error {
	e.mu.Lock()
	lastErr := e.lastErr
	e.mu.Unlock()
	var note string
	switch {
	case lastErr != nil:
		note = fmt.Sprintf("; refreshing them failed (%v), so keys fetched at %s are in use", lastErr, ks.fetchedAt.UTC().Format(time.RFC3339))
	default:
		next := time.Unix(0, e.nextAttempt.Load())
		if now.Before(next) {
			note = fmt.Sprintf("; keys fetched at %s, the next refetch on an unknown kid is allowed at %s", ks.fetchedAt.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339))
		}
	}
	return fmt.Errorf("%w: kid %s is not among the %d keys of %s from %s (known kids: %s)%s",
		ErrUnknownKID, quoteShort(kid), len(ks.keys), e.src, ks.meta.JWKSURI, ks.kidList, note)
}

// noKeys is the error when e has no usable keys and no fetch can run now.
func (c *Cache) noKeys(e *entry, ks *keySet, now time.Time) error {
	e.mu.Lock()
	lastErr := e.lastErr
	e.mu.Unlock()
	var fe FetchError
	if lastErr != nil {
		fe = *lastErr
	} else {
		fe = FetchError{Source: e.src, URL: e.src.DiscoveryURL, Err: errors.New("no usable keys")}
	}
	if ks != nil {
		fe.LastSuccess = ks.fetchedAt
	}
	if next := time.Unix(0, e.nextAttempt.Load()); now.Before(next) {
		fe.NextAttempt = next
	}
	return &fe
}

// newKeySet builds the immutable key set of a successful fetch.
func (c *Cache) newKeySet(keys []jose.JSONWebKey, meta Metadata, ttl time.Duration) *keySet {
	now := c.opts.Now()
	ks := &keySet{
		byKID:     make(map[string]*jose.JSONWebKey, len(keys)),
		keys:      keys,
		fetchedAt: now,
		expires:   now.Add(ttl),
	}
	kids := make([]string, 0, len(keys))
	for i := range keys {
		if kid := keys[i].KeyID; kid != "" {
			ks.byKID[kid] = &keys[i]
			kids = append(kids, quoteShort(kid))
		}
	}
	const shown = 10
	if len(kids) > shown {
		ks.kidList = strings.Join(kids[:shown], ", ") + fmt.Sprintf(" and %d more", len(kids)-shown)
	} else if len(kids) == 0 {
		ks.kidList = "none"
	} else {
		ks.kidList = strings.Join(kids, ", ")
	}
	meta.FetchedAt, meta.Expires = ks.fetchedAt, ks.expires
	ks.meta = meta
	return ks
}

// ttl turns a response's max-age into the key set's lifetime: bounded by
// MinTTL and RefreshInterval, then jittered by ±10% so that many caches
// do not refresh in step.
func (c *Cache) ttl(maxAge time.Duration, ok bool) time.Duration {
	d := c.opts.RefreshInterval
	if ok {
		d = min(max(maxAge, c.opts.MinTTL), c.opts.RefreshInterval)
	}
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// parseMaxAge reads the max-age of a Cache-Control header, less any Age.
// no-store and no-cache count as max-age 0.
func parseMaxAge(h http.Header) (time.Duration, bool) {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "no-store" || d == "no-cache" {
				return 0, true
			}
			rest, ok := strings.CutPrefix(d, "max-age=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.Trim(rest, `"`), 10, 64)
			if err != nil || n < 0 {
				continue
			}
			n = min(n, 1<<31)
			if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
				n = max(n-min(age, 1<<31), 0)
			}
			return time.Duration(n) * time.Second, true
		}
	}
	return 0, false
}
