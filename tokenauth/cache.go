package tokenauth

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// tokenCache holds tokens already verified, keyed by the SHA-256 of the
// token (the token itself is never kept), until their exp. It is bounded:
// when full, expired entries are swept, then arbitrary ones dropped.
type tokenCache struct {
	mu  sync.RWMutex
	m   map[[32]byte]*Claims
	max int
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{m: make(map[[32]byte]*Claims), max: max}
}

func hashToken(token string) [32]byte {
	// Hash the string's bytes without copying them; sha256 only reads.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

func (c *tokenCache) get(k [32]byte) (*Claims, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	return v, ok
}

func (c *tokenCache) remove(k [32]byte) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *tokenCache) put(k [32]byte, claims *Claims, now time.Time, skew time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for key, v := range c.m {
			if now.After(v.Expiry.Add(skew)) {
				delete(c.m, key)
			}
		}
		// Still full of live tokens: drop about a tenth, arbitrarily (map
		// order), so a flood of distinct tokens cannot grow memory.
		for key := range c.m {
			if len(c.m) < c.max-c.max/10 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = claims
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
