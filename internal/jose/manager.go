// Package jose holds the token service's signing keys: it creates them,
// rotates them on a schedule shared by every replica through the store,
// seals them at rest with a key-encryption key, signs access tokens
// (compact RS256 JWS) and publishes the keys as a JWKS document.
//
// A key's life, with the defaults (RotationPeriod 30 days, PrePublish 48 h,
// MaxTokenLifetime 24 h):
//
//	created+published ──48h──▶ signs ──30d──▶ retired ──24h+1h──▶ expired (deleted)
//
// The successor of the signing key is created PrePublish before the signing
// key retires, with ActivateAt equal to that RetireAt, so there is never a
// moment without an active key and every key is in the JWKS at least
// PrePublish before it signs and at least MaxTokenLifetime plus an hour
// after it stops.
//
// Several replicas may share one store. Each decides from what the store
// holds, never from its own memory: the signing key at time t is, among the
// keys with ActivateAt <= t < RetireAt, the one activated last (ties: the
// smallest kid), so replicas that see the same keys agree. Two replicas that
// create a successor at the same moment each store one (the kid is derived
// from the key, so ErrAlreadyExists cannot arbitrate); both have the same
// ActivateAt, because it is the stored RetireAt of the key they agree on,
// and the next maintenance round of either deletes all but the smallest kid
// while the duplicates are still more than PrePublish/2 from signing, i.e.
// long before any replica could have signed with one. Should duplicates
// survive (a replica that came back late), they are harmless: the tie rule
// picks the same one everywhere and the other is merely published.
package jose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"crypto/rsa"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wif-project/wif/internal/store"
)

// Defaults of Options.
const (
	// DefaultRotationPeriod is how long a key signs. Thirty days bounds the
	// use of a leaked key to a month while rotating often enough that
	// relying parties' key refresh is exercised continuously (Entra rotates
	// roughly every six weeks, with no fixed period).
	DefaultRotationPeriod = 30 * 24 * time.Hour
	// DefaultPrePublish is how long a key is published before it signs:
	// twice the longest JWKS cache period common validators use
	// (Microsoft.IdentityModel refreshes metadata every 12-24 h; APIM
	// and most OIDC libraries cache for an hour or refetch on an unknown
	// kid).
	DefaultPrePublish = 48 * time.Hour
	// DefaultMaxTokenLifetime is the longest access-token lifetime the
	// token service issues (its configurable maximum).
	DefaultMaxTokenLifetime = 24 * time.Hour
	// DefaultReloadInterval is how often Run does the maintenance (creates,
	// cleans up) from what the store holds.
	DefaultReloadInterval = time.Minute
	// DefaultRefreshInterval is how often Run reloads the published keys,
	// so a key another replica created is in this replica's JWKS within
	// seconds; a token naming a kid this replica does not know reloads at
	// once (at most once a second).
	DefaultRefreshInterval = 5 * time.Second
	// ExpiryMargin is how much longer than MaxTokenLifetime a retired key
	// stays published: more than the clock skew validators allow (5 min)
	// and the reload interval of other replicas.
	ExpiryMargin = time.Hour
)

// ErrNoActiveKey is returned (wrapped) by Sign when no key is active at the
// current time: Run was not running when the active key retired.
var ErrNoActiveKey = errors.New("no signing key is active")

// Options configures a Manager. Store is required.
type Options struct {
	// Store persists the keys; replicas sharing a store share the keys.
	Store store.KeyStore
	// KEK is the 32-byte key-encryption key (see LoadKEK). When set, private
	// keys are stored sealed with AES-256-GCM; when nil they are stored in
	// the clear, and NewManager logs a warning.
	KEK []byte
	// PreviousKEKs are key-encryption keys that still open stored keys
	// while KEK replaces them: run every replica with both, then Rewrap,
	// then drop them.
	PreviousKEKs [][]byte
	// RotationPeriod is how long each key signs (default 30 days, at least
	// 1 h).
	RotationPeriod time.Duration
	// PrePublish is how long a new key is in the JWKS before it signs
	// (default 48 h; less than RotationPeriod).
	PrePublish time.Duration
	// MaxTokenLifetime is the longest lifetime of a token the service
	// signs (default 24 h): a retired key stays published that long plus
	// ExpiryMargin.
	MaxTokenLifetime time.Duration
	// ReloadInterval is how often Run maintains the keys (default 1 min;
	// at most PrePublish/4).
	ReloadInterval time.Duration
	// RefreshInterval is how often Run reloads the keys to publish what
	// other replicas created (default 5 s; at most ReloadInterval).
	RefreshInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the warnings and key events (default: discard).
	Logger *slog.Logger
	// Registerer registers the metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Manager owns the signing keys. It is safe for concurrent use; Sign, JWKS,
// PublicKey and IsOwnKey read an immutable snapshot and take no lock.
type Manager struct {
	store   store.KeyStore
	ring    *keyring
	opts    Options
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	keys atomic.Pointer[keySet]
	jwks atomic.Pointer[jwksDoc]

	tickMu   sync.Mutex      // serialises Tick and reloads
	reported map[string]bool // problems already logged, by fingerprint; under tickMu

	// lastOnDemand is when an unknown kid last made Verify reload (unix
	// nanoseconds), so a flood of unknown kids reloads at most once a second.
	lastOnDemand atomic.Int64
}

// NewManager loads the keys from the store and, when none is active (a new
// store), creates one that is published and signs at once. It fails when a
// stored key that may still sign cannot be opened: sealed with another
// key-encryption key, or sealed while none is configured.
func NewManager(ctx context.Context, opts Options) (*Manager, error) {
	if opts.RotationPeriod == 0 {
		opts.RotationPeriod = DefaultRotationPeriod
	}
	if opts.PrePublish == 0 {
		opts.PrePublish = DefaultPrePublish
	}
	if opts.MaxTokenLifetime == 0 {
		opts.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if opts.ReloadInterval == 0 {
		opts.ReloadInterval = DefaultReloadInterval
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = min(DefaultRefreshInterval, opts.ReloadInterval)
	}
	var errs []error
	if opts.Store == nil {
		errs = append(errs, errors.New("jose: Store is required"))
	}
	if opts.RotationPeriod < time.Hour {
		errs = append(errs, fmt.Errorf("jose: rotation period %s is too short: it must be at least 1h", opts.RotationPeriod))
	}
	if opts.PrePublish < 4*time.Second || opts.PrePublish >= opts.RotationPeriod {
		errs = append(errs, fmt.Errorf("jose: pre-publication period %s must be at least 4s and shorter than the rotation period %s", opts.PrePublish, opts.RotationPeriod))
	}
	if opts.MaxTokenLifetime <= 0 {
		errs = append(errs, fmt.Errorf("jose: maximum token lifetime %s must be positive", opts.MaxTokenLifetime))
	}
	if opts.RefreshInterval <= 0 || opts.RefreshInterval > opts.ReloadInterval {
		errs = append(errs, fmt.Errorf("jose: refresh interval %s must be positive and at most the reload interval %s", opts.RefreshInterval, opts.ReloadInterval))
	}
	if opts.ReloadInterval <= 0 || opts.ReloadInterval > opts.PrePublish/4 {
		errs = append(errs, fmt.Errorf("jose: reload interval %s must be positive and at most a quarter of the pre-publication period %s, so every replica sees a new key long before it signs", opts.ReloadInterval, opts.PrePublish))
	}
	ring, err := newKeyring(opts.KEK, opts.PreviousKEKs)
	if err != nil {
		errs = append(errs, fmt.Errorf("jose: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("jose: %w", err)
	}
	opts.KEK, opts.PreviousKEKs = nil, nil // kept only inside the AEADs
	m := &Manager{
		store: opts.Store, ring: ring, opts: opts, now: opts.Now, log: opts.Logger,
		metrics: met, reported: map[string]bool{},
	}
	if ring.sealer == nil {
		m.log.Warn("SIGNING KEYS ARE STORED UNENCRYPTED: anyone who can read the store (database file, backup, replica) can mint access tokens for every tenant. Configure a key-encryption key (--key-encryption-key-file) so they are sealed with AES-256-GCM.")
	}

	now := m.now()
	recs, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("jose: load signing keys: %w", err)
	}
	set, problems := m.load(recs, now, nil)
	msgs := make([]error, 0, len(problems))
	for _, p := range problems {
		msgs = append(msgs, p.err)
	}
	// Every published key, even a retired one, must be sealed with the
	// configured KEK: a restart without it (or with another) must not
	// quietly go on with new keys.
	for _, kk := range set.keys {
		if kk.priv == nil && kk.openErr == nil {
			if err := kekMismatch(kk.id, kk.kekID, ring); err != nil {
				msgs = append(msgs, err)
			}
		}
	}
	if len(msgs) > 0 {
		return nil, fmt.Errorf("jose: cannot use the stored signing keys: %w", errors.Join(msgs...))
	}
	if ring.sealer != nil {
		for _, kk := range set.keys {
			switch {
			case kk.kekID == "" && now.Before(kk.times.retire):
				m.log.Warn("a signing key is stored unencrypted although a key-encryption key is configured; keys created from now on are sealed: run `wif keys rewrap` to seal it too", "kid", kk.id, "expires", kk.times.expire)
			case kk.kekID != "" && kk.kekID != ring.sealer.id:
				m.log.Warn("a signing key is sealed with a previous key-encryption key: run `wif keys rewrap` once every replica has the new one, then drop --previous-key-encryption-key-file", "kid", kk.id, "sealed_with", kk.kekID, "current", ring.sealer.id)
			}
		}
	}
	m.keys.Store(set)
	if err := m.Tick(ctx); err != nil {
		return nil, fmt.Errorf("jose: %w", err)
	}
	if m.keys.Load().signerAt(m.now()) == nil {
		return nil, fmt.Errorf("jose: %w after start-up", ErrNoActiveKey)
	}
	return m, nil
}

// Run reloads the keys every RefreshInterval and calls Tick every
// ReloadInterval until ctx ends, logging failures (the last loaded keys
// stay in use), and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.opts.ReloadInterval)
	defer t.Stop()
	r := time.NewTicker(m.opts.RefreshInterval)
	defer r.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Tick(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("signing-key maintenance failed; the last loaded keys stay in use", "error", err)
			}
		case <-r.C:
			if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
				m.log.Debug("reloading the signing keys failed; the last loaded keys stay in use", "error", err)
			}
		}
	}
}

// Refresh reloads the keys from the store, so keys other replicas created
// or changed are published (and signed with) here too.
func (m *Manager) Refresh(ctx context.Context) error {
	m.tickMu.Lock()
	defer m.tickMu.Unlock()
	_, _, err := m.reload(ctx, m.now())
	m.updateMetrics()
	return err
}

// errDecided: another replica made the key decision first.
var errDecided = errors.New("another replica created the key first")

// Tick reloads the keys from the store and maintains them at the current
// time: deletes expired keys and duplicate successors, creates the
// successor of the active key PrePublish before it retires, and creates a
// key that signs at once when none is active. Run calls it; tests call it
// after moving the clock.
func (m *Manager) Tick(ctx context.Context) error {
	m.tickMu.Lock()
	defer m.tickMu.Unlock()
	err := m.tick(ctx)
	if err != nil {
		m.metrics.tickFailures.Inc()
	}
	m.updateMetrics()
	return err
}

func (m *Manager) tick(ctx context.Context) error {
	now := m.now()
	set, recs, err := m.reload(ctx, now)
	if err != nil {
		return err
	}

	// Clean up: expired keys, and duplicate successors created by replicas
	// that rotated at the same moment (see the package comment).
	deleted := false
	del := func(kid, why string) error {
		deleted = true
		switch err := m.store.DeleteSigningKey(ctx, kid); {
		case errors.Is(err, store.ErrNotFound): // another replica was first
			return nil
		case err != nil:
			return fmt.Errorf("delete signing key %s (%s): %w", kid, why, err)
		}
		m.log.Info("deleted signing key", "kid", kid, "reason", why)
		return nil
	}
	for _, r := range recs {
		// From the records: an expired key is deleted even if it no
		// longer parses.
		if !now.Before(m.deleteAt(r)) {
			if err := del(r.ID, "expired"); err != nil {
				return err
			}
		}
	}
	safe := now.Add(m.opts.PrePublish / 2)
	for i, kk := range set.keys {
		// set.keys is sorted by (activate, kid): a key whose predecessor
		// has the same ActivateAt is a duplicate of it.
		if i > 0 && kk.times.activate.Equal(set.keys[i-1].times.activate) && kk.times.activate.After(safe) {
			if err := del(kk.id, "duplicate of "+set.keys[i-1].id); err != nil {
				return err
			}
		}
	}
	if deleted {
		if set, _, err = m.reload(ctx, now); err != nil {
			return err
		}
	}

	// Create: the successor, or a key that signs at once.
	s, reason, ok := m.nextSchedule(set, now)
	if !ok {
		return nil
	}
	rec, err := newSigningKey(now.UTC().Truncate(time.Second), s, m.ring.sealer)
	if err != nil {
		return err
	}
	// The decision is made again inside the store's key lock, on what it
	// holds then: replicas deciding at once create one key, not one each.
	err = m.store.CreateSigningKeyIf(ctx, rec, func(existing []store.SigningKey) error {
		cur, _ := m.load(existing, now, set)
		if _, _, still := m.nextSchedule(cur, now); !still {
			return errDecided
		}
		return nil
	})
	if errors.Is(err, errDecided) {
		_, _, err = m.reload(ctx, now)
		return err
	}
	if err != nil {
		return fmt.Errorf("store new signing key %s: %w", rec.ID, err)
	}
	m.metrics.created.WithLabelValues(reason).Inc()
	attrs := []any{"kid", rec.ID, "reason", reason, "signs_from", s.activate, "signs_until", s.retire, "expires", s.expire, "sealed", rec.KEKID != ""}
	switch lead := s.activate.Sub(now); {
	case reason == reasonEmergency:
		m.log.Warn("no signing key was active: created one that signs at once; validators that cached the key set will refetch it on the unknown kid", attrs...)
	case reason == reasonScheduled && lead < m.opts.PrePublish/2:
		m.log.Warn("created the next signing key late (no replica was maintaining the keys): it is published only shortly before it signs", append(attrs, "published_for", lead.String())...)
	default:
		m.log.Info("created signing key", attrs...)
	}
	_, _, err = m.reload(ctx, now)
	return err
}

// nextSchedule says whether a key must be created at now, and when it is
// published and signs.
func (m *Manager) nextSchedule(set *keySet, now time.Time) (schedule, string, bool) {
	t := now.UTC().Truncate(time.Second)
	cur := set.signerAt(now)
	if cur == nil {
		reason := reasonEmergency
		if len(set.keys) == 0 {
			reason = reasonFirst
		}
		retire := t.Add(m.opts.RotationPeriod)
		// A pending key takes over when it activates.
		for _, kk := range set.keys {
			if kk.times.activate.After(now) && kk.times.activate.Before(retire) {
				retire = kk.times.activate
			}
		}
		return m.schedule(t, t, retire), reason, true
	}
	for _, kk := range set.keys {
		if kk.times.activate.After(cur.times.activate) {
			return schedule{}, "", false // a successor exists
		}
	}
	if now.Before(cur.times.retire.Add(-m.opts.PrePublish)) {
		return schedule{}, "", false
	}
	return m.schedule(t, cur.times.retire, cur.times.retire.Add(m.opts.RotationPeriod)), reasonScheduled, true
}

// expiry is when a stored key leaves the JWKS: its ExpireAt, or later if
// MaxTokenLifetime is now longer than when the key was created.
func (m *Manager) expiry(r store.SigningKey) time.Time {
	if !r.RevokedAt.IsZero() {
		return r.RevokedAt // retired by an operator: unpublished at once
	}
	if e := r.RetireAt.Add(m.opts.MaxTokenLifetime + ExpiryMargin); e.After(r.ExpireAt) {
		return e
	}
	return r.ExpireAt
}

// deleteAt is when a stored key's record is deleted: at its expiry, or
// RetainRetired after an operator retired it.
func (m *Manager) deleteAt(r store.SigningKey) time.Time {
	if !r.RevokedAt.IsZero() {
		return r.RevokedAt.Add(RetainRetired)
	}
	return m.expiry(r)
}

func (m *Manager) schedule(publish, activate, retire time.Time) schedule {
	return schedule{publish: publish, activate: activate, retire: retire, expire: retire.Add(m.opts.MaxTokenLifetime + ExpiryMargin)}
}

// reload lists the keys and installs them as the current snapshot.
func (m *Manager) reload(ctx context.Context, now time.Time) (*keySet, []store.SigningKey, error) {
	recs, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load signing keys: %w", err)
	}
	prev := m.keys.Load()
	set, problems := m.load(recs, now, prev)
	for _, p := range problems {
		if !m.reported[p.fingerprint] {
			m.reported[p.fingerprint] = true
			m.log.Error("cannot use a stored signing key", "kid", p.kid, "error", p.err)
		}
	}
	if prev != nil && sameKeys(prev, set) {
		return prev, recs, nil // nothing changed: keep the cached JWKS
	}
	m.keys.Store(set)
	return set, recs, nil
}

// problem is a stored key that cannot be used.
type problem struct {
	kid, fingerprint string
	err              error
}

// load parses records into a key set, reusing the parsed keys of prev that
// did not change. Private keys are opened only for keys that may still
// sign. A key with a bad certificate is left out; a key whose private key
// cannot be opened is kept (its public key is published) and Sign fails
// when it is the active one.
func (m *Manager) load(recs []store.SigningKey, now time.Time, prev *keySet) (*keySet, []problem) {
	set := &keySet{byID: make(map[string]*key, len(recs))}
	var problems []problem
	for _, r := range recs {
		expire := m.expiry(r)
		if !now.Before(expire) {
			continue // left the JWKS; Tick deletes it
		}
		needPrivate := now.Before(r.RetireAt)
		fp := recordFingerprint(r)
		var kk *key
		if prev != nil {
			if old := prev.byID[r.ID]; old != nil && old.fingerprint == fp {
				switch hasPrivate := old.priv != nil || old.openErr != nil; {
				case hasPrivate == needPrivate:
					kk = old
				case !needPrivate:
					c := *old // retired: drop the private key
					c.priv, c.openErr, c.signer, c.signerX5T = nil, nil, nil, nil
					kk = &c
				}
			}
		}
		if kk == nil {
			var err error
			if kk, err = parseKey(r, m.ring, needPrivate); err != nil {
				problems = append(problems, problem{kid: r.ID, fingerprint: fp, err: err})
				continue
			}
		}
		if kk.openErr != nil {
			problems = append(problems, problem{kid: r.ID, fingerprint: fp, err: kk.openErr})
		}
		if !kk.times.expire.Equal(expire) {
			c := *kk
			c.times.expire = expire
			kk = &c
		}
		set.keys = append(set.keys, kk)
		set.byID[kk.id] = kk
	}
	slices.SortFunc(set.keys, func(a, b *key) int {
		if c := a.times.activate.Compare(b.times.activate); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return set, problems
}

func (m *Manager) updateMetrics() {
	set, now := m.keys.Load(), m.now()
	cur := set.signerAt(now)
	counts := map[string]int{"pending": 0, "active": 0, "retired": 0, "unusable": 0}
	for _, kk := range set.keys {
		switch {
		case kk == cur:
			counts["active"]++
		case kk.openErr != nil:
			counts["unusable"]++
		case now.Before(kk.times.activate):
			counts["pending"]++
		default:
			counts["retired"]++
		}
	}
	for state, n := range counts {
		m.metrics.keys.WithLabelValues(state).Set(float64(n))
	}
	if cur != nil {
		m.metrics.nextRotation.Set(float64(cur.times.retire.Unix()))
		m.metrics.activeSince.Set(float64(cur.times.activate.Unix()))
	} else {
		m.metrics.nextRotation.Set(0)
		m.metrics.activeSince.Set(0)
	}
}

// sameKeys reports whether two snapshots hold the same parsed keys.
func sameKeys(a, b *keySet) bool {
	if len(a.keys) != len(b.keys) {
		return false
	}
	for i := range a.keys {
		if a.keys[i] != b.keys[i] {
			return false
		}
	}
	return true
}

// keySet is an immutable snapshot of the stored keys.
type keySet struct {
	keys []*key // by ActivateAt, then kid
	byID map[string]*key
}

// signerAt is the key that signs at t: among the published keys with
// ActivateAt <= t < RetireAt, the one activated last; ties go to the
// smallest kid.
func (s *keySet) signerAt(t time.Time) *key {
	var best *key
	for _, kk := range s.keys {
		if t.Before(kk.times.publish) || t.Before(kk.times.activate) || !t.Before(kk.times.retire) {
			continue
		}
		if best == nil || kk.times.activate.After(best.times.activate) {
			best = kk // keys are sorted, so among equal ActivateAt the first (smallest kid) stays
		}
	}
	return best
}

// published reports whether kk is in the JWKS at t.
func (kk *key) published(t time.Time) bool {
	return !t.Before(kk.times.publish) && t.Before(kk.times.expire)
}

// Sign returns payload signed as a compact JWS by the key active now, with
// the protected header {"alg":"RS256","kid":...,"typ":"JWT"} and, when
// withX5T is set (v1 access tokens, as Entra), "x5t" too. payload must be
// the JSON claims.
func (m *Manager) Sign(payload []byte, withX5T bool) (string, error) {
	kk := m.keys.Load().signerAt(m.now())
	if kk == nil {
		return "", fmt.Errorf("sign token: %w", ErrNoActiveKey)
	}
	if kk.openErr != nil {
		return "", fmt.Errorf("sign token: %w", kk.openErr)
	}
	s := kk.signer
	if withX5T {
		s = kk.signerX5T
	}
	if s == nil {
		return "", fmt.Errorf("sign token: signing key %s was loaded without its private key", kk.id)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token with key %s: %w", kk.id, err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign token with key %s: %w", kk.id, err)
	}
	return out, nil
}

// SignClaims marshals claims to JSON and signs them like Sign.
func (m *Manager) SignClaims(claims any, withX5T bool) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: encode claims: %w", err)
	}
	return m.Sign(payload, withX5T)
}

// Ready reports whether the key active now can sign: nil, or why not
// (ErrNoActiveKey, or why its private key cannot be opened). For readiness
// probes.
func (m *Manager) Ready() error {
	kk := m.keys.Load().signerAt(m.now())
	switch {
	case kk == nil:
		return ErrNoActiveKey
	case kk.openErr != nil:
		return kk.openErr
	case kk.signer == nil:
		return fmt.Errorf("signing key %s was loaded without its private key", kk.id)
	}
	return nil
}

// refreshOnDemand reloads the keys now, unless that was done less than a
// second ago; it reports whether it reloaded.
func (m *Manager) refreshOnDemand() bool {
	now := time.Now().UnixNano()
	last := m.lastOnDemand.Load()
	if now-last < int64(time.Second) || !m.lastOnDemand.CompareAndSwap(last, now) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.Refresh(ctx) == nil
}

// ActiveKeyID returns the kid of the key that signs now ("" if none).
func (m *Manager) ActiveKeyID() string {
	if kk := m.keys.Load().signerAt(m.now()); kk != nil {
		return kk.id
	}
	return ""
}

// PublicKey returns the public key published now under kid.
func (m *Manager) PublicKey(kid string) (*rsa.PublicKey, bool) {
	kk := m.keys.Load().byID[kid]
	if kk == nil || !kk.published(m.now()) {
		return nil, false
	}
	return kk.pub, true
}

// IsOwnKey reports whether kid names one of the service's unexpired keys,
// published yet or not (the token service refuses its own tokens as client
// assertions).
func (m *Manager) IsOwnKey(kid string) bool {
	_, ok := m.keys.Load().byID[kid]
	return ok
}

// Verify checks a compact RS256 JWS against the key published under its
// kid and returns its payload. It does not look at the claims.
func (m *Manager) Verify(token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("verify token: %d signatures, expected 1", len(jws.Signatures))
	}
	kid := jws.Signatures[0].Header.KeyID
	pub, ok := m.PublicKey(kid)
	if !ok && m.refreshOnDemand() {
		// Another replica may have created this key moments ago.
		pub, ok = m.PublicKey(kid)
	}
	if !ok {
		return nil, fmt.Errorf("verify token: kid %q is not a published signing key", kid)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, fmt.Errorf("verify token (kid %s): %w", kid, err)
	}
	return payload, nil
}
