package sts

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wif-project/wif/internal/store"
)

// usageTracker remembers, off the token endpoint's hot path, when each
// federated credential last matched and how each issuer answered; the
// service writes it to the store every UsageFlushInterval (wif audit
// stale, federated-credential list).
type usageTracker struct {
	// creds: credential id → *usageCell. Read-mostly: a credential's cell
	// is made once, then every exchange only loads it and stores a time.
	creds sync.Map

	mu      sync.Mutex
	issuers map[string]*store.IssuerStatus // reported since the last flush
}

type usageCell struct {
	last    atomic.Int64 // unix seconds of the newest use
	written atomic.Int64 // the newest use the store holds
}

func newUsageTracker() *usageTracker {
	return &usageTracker{issuers: map[string]*store.IssuerStatus{}}
}

// used records a match of credential id at now. Seconds suffice, and keep
// the cells' writes to one per second per credential at most.
func (u *usageTracker) used(id string, now time.Time) {
	sec := now.Unix()
	v, ok := u.creds.Load(id)
	if !ok {
		v, _ = u.creds.LoadOrStore(id, &usageCell{})
	}
	c := v.(*usageCell)
	for {
		old := c.last.Load()
		if old >= sec || c.last.CompareAndSwap(old, sec) {
			return
		}
	}
}

// fetched records one fetch of an issuer's metadata and keys.
func (u *usageTracker) fetched(issuer string, err error, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.issuers[issuer]
	if st == nil {
		if len(u.issuers) >= maxTrackedIssuers {
			return // only configured issuers are fetched; this is a bound, not a policy
		}
		st = &store.IssuerStatus{Issuer: issuer}
		u.issuers[issuer] = st
	}
	if err == nil {
		st.LastSuccess = now
		st.FailingSince, st.LastError = time.Time{}, ""
		return
	}
	st.LastFailure, st.LastError = now, clip(err.Error())
	if st.FailingSince.IsZero() {
		st.FailingSince = now
	}
}

const maxTrackedIssuers = 10000

// pending returns what the store does not hold yet; commit marks it
// written once the store took it.
func (u *usageTracker) pending(now time.Time) (uses []store.CredentialUse, issuers []store.IssuerStatus, commit func()) {
	type mark struct {
		c   *usageCell
		sec int64
	}
	var marks []mark
	idle := now.Add(-time.Hour).Unix()
	u.creds.Range(func(k, v any) bool {
		c := v.(*usageCell)
		last := c.last.Load()
		if last > c.written.Load() {
			uses = append(uses, store.CredentialUse{CredentialID: k.(string), LastUsed: time.Unix(last, 0).UTC()})
			marks = append(marks, mark{c, last})
		} else if last < idle {
			// Unused for an hour: forget it (a deleted credential's cell
			// goes this way); a new use makes it again.
			u.creds.CompareAndDelete(k, v)
		}
		return true
	})
	u.mu.Lock()
	for _, st := range u.issuers {
		issuers = append(issuers, *st)
	}
	u.issuers = map[string]*store.IssuerStatus{}
	u.mu.Unlock()
	return uses, issuers, func() {
		for _, m := range marks {
			for {
				w := m.c.written.Load()
				if w >= m.sec || m.c.written.CompareAndSwap(w, m.sec) {
					break
				}
			}
		}
	}
}

// restore puts issuer reports back after a failed flush, unless newer ones
// came meanwhile.
func (u *usageTracker) restore(issuers []store.IssuerStatus) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, st := range issuers {
		n := u.issuers[st.Issuer]
		if n == nil {
			s := st
			u.issuers[st.Issuer] = &s
			continue
		}
		// A newer report came meanwhile: keep it, and the older streak's
		// start when no success came between.
		if n.LastSuccess.IsZero() && !st.FailingSince.IsZero() && !n.FailingSince.IsZero() {
			n.FailingSince = st.FailingSince
		}
		if n.LastSuccess.IsZero() {
			n.LastSuccess = st.LastSuccess
		}
	}
}

// flushUsage writes the pending usage to the store.
func (s *Service) flushUsage(ctx context.Context) error {
	uses, issuers, commit := s.usage.pending(s.cfg.Now())
	if len(uses) == 0 && len(issuers) == 0 {
		return nil
	}
	if err := s.cfg.Store.RecordUsage(ctx, uses, issuers); err != nil {
		s.usage.restore(issuers)
		return err
	}
	commit()
	return nil
}

// FlushUsage writes the credentials' last uses and the issuers' statuses
// now (tests and shutdown; otherwise every UsageFlushInterval).
func (s *Service) FlushUsage(ctx context.Context) error { return s.flushUsage(ctx) }

// IssuerFetched records the outcome of one fetch of an issuer's metadata
// and keys (the trust cache's OnFetch hook), for wif audit stale.
func (s *Service) IssuerFetched(issuer string, err error) {
	s.usage.fetched(issuer, err, s.cfg.Now())
}
