package jose

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wif-project/wif/internal/store"
)

// What an operator does with the keys (wif keys ...): list them, rotate
// now, retire one (a suspected leak), and seal them all anew under a new
// key-encryption key. Every write goes through the store's key lock, like
// the scheduled maintenance, so replicas never disagree.

// Key states, as KeyInfo.State names them.
const (
	// StateNext: published, signs from SignsFrom.
	StateNext = "next"
	// StateActive: signs now.
	StateActive = "active"
	// StateRetiring: no longer signs, still published until PublishedUntil
	// so tokens it signed stay valid.
	StateRetiring = "retiring"
	// StateRetired: retired by an operator; not published, tokens it
	// signed are refused. Kept for RetainRetired to show it.
	StateRetired = "retired"
)

// RetainRetired is how long a retired key's record (without its private
// key) stays in the store after an operator retired it.
const RetainRetired = 30 * 24 * time.Hour

// KeyInfo describes a stored signing key; it holds no key material.
type KeyInfo struct {
	KeyID     string    `json:"kid"`
	Algorithm string    `json:"algorithm"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	// PublishedSince is when the key entered the JWKS.
	PublishedSince time.Time `json:"publishedSince"`
	SignsFrom      time.Time `json:"signsFrom"`
	SignsUntil     time.Time `json:"signsUntil"`
	// PublishedUntil is when the key leaves the JWKS.
	PublishedUntil time.Time `json:"publishedUntil"`
	// RetiredAt is when an operator retired it (zero otherwise).
	RetiredAt time.Time `json:"retiredAt,omitzero"`
	// SealedWith is the id of the key-encryption key that seals its
	// private key ("" when stored in the clear or wiped).
	SealedWith string `json:"sealedWith,omitempty"`
}

// Errors of the operations.
var (
	// ErrRotationPending: a next key is already published; rotating again
	// without Now would only push it back.
	ErrRotationPending = errors.New("a next key is already published")
	// ErrRetireActive: the key that signs now cannot be retired before
	// another one signs.
	ErrRetireActive = errors.New("the key signs now")
	// ErrNoKEK: no key-encryption key is configured to seal with.
	ErrNoKEK = errors.New("no key-encryption key is configured")
	// ErrKEKMismatch: the key-encryption key named is not the one this
	// replica seals with.
	ErrKEKMismatch = errors.New("not the key-encryption key this replica seals with")
)

// Keys lists every stored key, oldest first.
func (m *Manager) Keys(ctx context.Context) ([]KeyInfo, error) {
	recs, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := m.now()
	signer := m.keys.Load().signerAt(now)
	out := make([]KeyInfo, 0, len(recs))
	for _, r := range recs {
		ki := KeyInfo{KeyID: r.ID, Algorithm: r.Algorithm, CreatedAt: r.CreatedAt, PublishedSince: r.PublishAt,
			SignsFrom: r.ActivateAt, SignsUntil: r.RetireAt, PublishedUntil: m.expiry(r), RetiredAt: r.RevokedAt, SealedWith: r.KEKID}
		switch {
		case !r.RevokedAt.IsZero() || !now.Before(ki.PublishedUntil):
			ki.State = StateRetired
		case signer != nil && signer.id == r.ID:
			ki.State = StateActive
		case now.Before(r.ActivateAt):
			ki.State = StateNext
		default:
			ki.State = StateRetiring
		}
		out = append(out, ki)
	}
	return out, nil
}

func (m *Manager) info(ctx context.Context, kid string) (KeyInfo, error) {
	ks, err := m.Keys(ctx)
	if err != nil {
		return KeyInfo{}, err
	}
	for _, k := range ks {
		if k.KeyID == kid {
			return k, nil
		}
	}
	return KeyInfo{}, fmt.Errorf("signing key %s: %w", kid, store.ErrNotFound)
}

// Rotate starts a rotation now and returns the new key. The new key is
// published at once; it signs after PrePublish (validators that cache the
// JWKS for up to that long see it before any token it signs), or at once
// with immediate — for a suspected leak: validators that cached the key
// set then meet a kid they do not know and must refetch, and until then
// refuse its tokens. The key signing now stops when the new one starts,
// and stays published until its tokens expire. Without immediate, a next
// key already published is ErrRotationPending.
func (m *Manager) Rotate(ctx context.Context, immediate bool) (KeyInfo, error) {
	m.tickMu.Lock()
	defer m.tickMu.Unlock()
	now := m.now().UTC().Truncate(time.Second)
	activate := now.Add(m.opts.PrePublish)
	if immediate {
		activate = now
	} else if cur := m.keys.Load().signerAt(now); cur != nil && cur.times.retire.Before(activate) {
		activate = cur.times.retire // its successor is due sooner anyway: no gap
	}
	sched := m.schedule(now, activate, activate.Add(m.opts.RotationPeriod))
	rec, err := newSigningKey(now, sched, m.ring.sealer)
	if err != nil {
		return KeyInfo{}, err
	}
	var pending []string
	err = m.store.CreateSigningKeyIf(ctx, rec, func(existing []store.SigningKey) error {
		pending = pending[:0]
		for _, k := range existing {
			if k.ActivateAt.After(now) && k.RevokedAt.IsZero() {
				if !immediate {
					return fmt.Errorf("%w: %s signs from %s; rotate with immediate (--now) to switch at once", ErrRotationPending, k.ID, k.ActivateAt.UTC().Format(time.RFC3339))
				}
				pending = append(pending, k.ID)
			}
		}
		return nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	m.metrics.created.WithLabelValues("manual").Inc()
	// The key signing now stops when the new one starts; next keys of the
	// old schedule, which never signed, go (the new key is the successor).
	set, _, err := m.reload(ctx, now)
	if err != nil {
		return KeyInfo{}, err
	}
	for _, kk := range set.keys {
		// Keys activated up to the new key's activation (the same second
		// included, or the tie rule could keep the old one) stop then.
		if kk.id == rec.ID || kk.times.activate.After(activate) || !kk.times.retire.After(activate) {
			continue
		}
		if _, err := m.store.UpdateSigningKey(ctx, kk.id, func(k *store.SigningKey) error {
			k.RetireAt = activate
			k.ExpireAt = activate.Add(m.opts.MaxTokenLifetime + ExpiryMargin)
			return nil
		}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return KeyInfo{}, fmt.Errorf("shorten signing key %s: %w", kk.id, err)
		}
	}
	for _, kid := range pending {
		if err := m.store.DeleteSigningKey(ctx, kid); err != nil && !errors.Is(err, store.ErrNotFound) {
			return KeyInfo{}, fmt.Errorf("drop the superseded next key %s: %w", kid, err)
		}
	}
	if _, _, err := m.reload(ctx, now); err != nil {
		return KeyInfo{}, err
	}
	m.updateMetrics()
	m.log.Warn("signing key rotated by an operator", "kid", rec.ID, "immediate", immediate, "signs_from", activate, "superseded_next_keys", pending)
	return m.info(ctx, rec.ID)
}

// Retire stops publishing a key at once: tokens it signed are refused from
// then on (here at once, at other replicas within RefreshInterval, at
// validators when they refetch the JWKS). Its private key is wiped; the
// record stays RetainRetired. The key signing now cannot be retired
// (ErrRetireActive): Rotate with immediate first.
func (m *Manager) Retire(ctx context.Context, kid string) (KeyInfo, error) {
	m.tickMu.Lock()
	defer m.tickMu.Unlock()
	now := m.now().UTC()
	set, _, err := m.reload(ctx, now)
	if err != nil {
		return KeyInfo{}, err
	}
	if s := set.signerAt(now); s != nil && s.id == kid {
		return KeyInfo{}, fmt.Errorf("signing key %s: %w: rotate first (wif keys rotate --now), then retire it", kid, ErrRetireActive)
	}
	if _, err := m.store.UpdateSigningKey(ctx, kid, func(k *store.SigningKey) error {
		if !k.RevokedAt.IsZero() {
			return nil // already retired
		}
		k.RevokedAt = now
		if k.RetireAt.After(now) {
			k.RetireAt = now
		}
		k.PrivateKey, k.KEKID = nil, ""
		return nil
	}); err != nil {
		return KeyInfo{}, fmt.Errorf("retire signing key %s: %w", kid, err)
	}
	if _, _, err := m.reload(ctx, now); err != nil {
		return KeyInfo{}, err
	}
	m.updateMetrics()
	m.log.Warn("signing key retired by an operator: tokens it signed are refused from now on", "kid", kid)
	return m.info(ctx, kid)
}

// RewrapResult says what Rewrap did.
type RewrapResult struct {
	// SealedWith is the key-encryption key every key is now sealed with.
	SealedWith string `json:"sealedWith"`
	// Rewrapped lists the keys sealed anew; Unchanged, those already
	// sealed with it (or holding no private key any more).
	Rewrapped []string `json:"rewrapped"`
	Unchanged []string `json:"unchanged"`
}

// Rewrap seals every stored private key with this replica's key-encryption
// key, opening each with whichever configured key sealed it (Options.KEK or
// PreviousKEKs). kekID, when given, must be that key's id, so an operator
// cannot rewrap to a key other than the one they meant. Run it once every
// replica runs with the new key (and the old one as previous); then the
// old one can be dropped.
func (m *Manager) Rewrap(ctx context.Context, kekID string) (RewrapResult, error) {
	m.tickMu.Lock()
	defer m.tickMu.Unlock()
	sealer := m.ring.sealer
	if sealer == nil {
		return RewrapResult{}, fmt.Errorf("rewrap: %w: start the replicas with the new key as --key-encryption-key-file (and the old one as --previous-key-encryption-key-file)", ErrNoKEK)
	}
	if kekID != "" && kekID != sealer.id {
		return RewrapResult{}, fmt.Errorf("rewrap: key-encryption key %s is %w (%s): start every replica with the new key first", kekID, ErrKEKMismatch, sealer.id)
	}
	recs, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return RewrapResult{}, fmt.Errorf("rewrap: %w", err)
	}
	res := RewrapResult{SealedWith: sealer.id, Rewrapped: []string{}, Unchanged: []string{}}
	for _, r := range recs {
		if len(r.PrivateKey) == 0 || r.KEKID == sealer.id {
			res.Unchanged = append(res.Unchanged, r.ID)
			continue
		}
		if _, err := m.store.UpdateSigningKey(ctx, r.ID, func(k *store.SigningKey) error {
			der, err := openPrivate(*k, m.ring)
			if err != nil {
				return err
			}
			sealed, err := sealer.seal(k.ID, der)
			if err != nil {
				return err
			}
			k.PrivateKey, k.KEKID = sealed, sealer.id
			return nil
		}); err != nil {
			return res, fmt.Errorf("rewrap signing key %s: %w", r.ID, err)
		}
		res.Rewrapped = append(res.Rewrapped, r.ID)
	}
	if _, _, err := m.reload(ctx, m.now()); err != nil {
		return res, err
	}
	m.log.Info("signing keys sealed anew", "kek", sealer.id, "rewrapped", len(res.Rewrapped))
	return res, nil
}
