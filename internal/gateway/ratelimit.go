package gateway

import (
	"sync"
	"time"
)

// limiter counts calls per key in fixed windows of period that start at a
// key's first call (APIM's renewal-period). Memory is bounded: windows that
// have ended are dropped, and when maxKeys live windows exist a new key
// evicts the live window with the fewest calls among evictSample sampled
// ones. A flood of new keys (one call each) so evicts keys that called
// least, never a heavy caller near its limit — and never refuses a key
// because others filled the table (that let anyone lock everyone out).
type limiter struct {
	calls   int
	period  time.Duration
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	windows   map[string]*window
	lastSweep time.Time
	evictions uint64
}

// evictSample is how many live windows an eviction compares.
const evictSample = 16

type window struct {
	end   time.Time
	count int
}

// decision is the outcome of one take.
type decision struct {
	allowed   bool
	remaining int
	// reset is when the key's window ends.
	reset time.Time
	// evicted reports that a new key made room by evicting another's window.
	evicted bool
}

func newLimiter(calls int, period time.Duration, maxKeys int, now func() time.Time) *limiter {
	return &limiter{calls: calls, period: period, maxKeys: maxKeys, now: now, windows: map[string]*window{}}
}

// take counts n calls for key if they fit in its window.
func (l *limiter) take(key string, n int) decision {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[key]
	if w != nil && !now.Before(w.end) {
		w.end, w.count = now.Add(l.period), 0 // the window renewed
	}
	if w == nil {
		if len(l.windows) >= l.maxKeys || now.Sub(l.lastSweep) >= l.period {
			l.sweep(now) // evict idle keys
		}
		evicted := false
		if len(l.windows) >= l.maxKeys {
			l.evict()
			evicted = true
		}
		w = &window{end: now.Add(l.period)}
		l.windows[key] = w
		if w.count+n > l.calls {
			return decision{allowed: false, remaining: l.calls - w.count, reset: w.end, evicted: evicted}
		}
		w.count += n
		return decision{allowed: true, remaining: l.calls - w.count, reset: w.end, evicted: evicted}
	}
	if w.count+n > l.calls {
		return decision{allowed: false, remaining: l.calls - w.count, reset: w.end}
	}
	w.count += n
	return decision{allowed: true, remaining: l.calls - w.count, reset: w.end}
}

// evict drops the window with the fewest calls among up to evictSample
// live ones (map iteration starts at a random place), under l.mu.
func (l *limiter) evict() {
	var victim string
	least, seen := -1, 0
	for k, w := range l.windows {
		if least < 0 || w.count < least {
			victim, least = k, w.count
		}
		if seen++; seen == evictSample {
			break
		}
	}
	delete(l.windows, victim)
	l.evictions++
}

// sweep drops ended windows, at most once a second (under l.mu).
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, w := range l.windows {
		if !now.Before(w.end) {
			delete(l.windows, k)
		}
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.windows)
}

// evicted returns how many live windows were evicted to make room.
func (l *limiter) evicted() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evictions
}
