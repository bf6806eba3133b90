package imds

import (
	"sync"
	"time"

	"github.com/wif-project/wif/internal/stsclient"
)

type cacheKey struct {
	clientID string // lower case
	scope    string
}

// tokenCache holds one token per (client id, scope), bounded in size.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[cacheKey]*stsclient.Token
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[cacheKey]*stsclient.Token)}
}

// get returns the token for key if it is still valid at validAt (now plus
// the refresh margin), else nil.
func (c *tokenCache) get(key cacheKey, validAt time.Time) *stsclient.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	tok := c.entries[key]
	if tok == nil || !tok.ExpiresOn.After(validAt) {
		return nil
	}
	return tok
}

// put stores tok under key. When the cache is full it first drops expired
// tokens, then the one expiring soonest.
func (c *tokenCache) put(key cacheKey, tok *stsclient.Token, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, t := range c.entries {
			if !t.ExpiresOn.After(now) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			var victim cacheKey
			var soonest time.Time
			first := true
			for k, t := range c.entries {
				if first || t.ExpiresOn.Before(soonest) {
					victim, soonest, first = k, t.ExpiresOn, false
				}
			}
			delete(c.entries, victim)
		}
	}
	c.entries[key] = tok
}

// len reports the number of cached tokens.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
