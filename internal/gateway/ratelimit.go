package gateway

import (
	"sync"
	"time"
)

// limiter counts calls per key in fixed windows of period that start at a
// key's first call (APIM's renewal-period). Memory is bounded: windows that
// have ended are dropped, and when maxKeys live windows exist a new key is
// refused (fail closed) rather than evicting a live count.
type limiter struct {
	calls   int
	period  time.Duration
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	windows   map[string]*window
	lastSweep time.Time
}

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
	// full reports a refusal because the key table was full.
	full bool
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
		if len(l.windows) >= l.maxKeys {
			return decision{allowed: false, remaining: 0, reset: now.Add(l.period), full: true}
		}
		w = &window{end: now.Add(l.period)}
		l.windows[key] = w
	}
	if w.count+n > l.calls {
		return decision{allowed: false, remaining: l.calls - w.count, reset: w.end}
	}
	w.count += n
	return decision{allowed: true, remaining: l.calls - w.count, reset: w.end}
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
