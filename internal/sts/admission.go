package sts

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// admission bounds the exchanges in flight and serves the others first
// come, first served. Without it, at saturation every connection's
// goroutine competes for the CPU at once: each exchange is mostly one
// RSA signature, so with N requests in flight each takes about N service
// times, and which ones finish first is up to the scheduler (its run-next
// slot favours the goroutine just woken) — the client-seen p99 grew to
// 15–20× p50 while the handler itself stayed under 5 ms. With a few
// exchanges per core in flight, each finishes in about one service time
// and the rest wait in a FIFO queue; when that queue's expected wait is
// longer than maxWait the request is answered at once with 503
// temporarily_unavailable and Retry-After (the Azure SDKs retry it),
// instead of waiting longer and longer.
type admission struct {
	limit   int
	maxWait time.Duration

	mu       sync.Mutex
	inflight int
	queue    []chan struct{} // FIFO of waiters

	// service is an EWMA of the time one admitted exchange takes (ns).
	service atomic.Int64
	shed    func()
}

func newAdmission(limit int, maxWait time.Duration, onShed func()) *admission {
	a := &admission{limit: limit, maxWait: maxWait, shed: onShed}
	a.service.Store(int64(time.Millisecond))
	return a
}

// acquire admits the caller, possibly after waiting its turn, and returns
// the release to call when done; ok is false when the caller is shed (the
// queue is too long, or ctx ended while it waited).
func (a *admission) acquire(ctx context.Context) (release func(), ok bool) {
	a.mu.Lock()
	if a.inflight < a.limit && len(a.queue) == 0 {
		a.inflight++
		a.mu.Unlock()
		return a.releaser(time.Now()), true
	}
	// Expected wait: the waiters ahead, served limit at a time.
	wait := time.Duration(int64(len(a.queue)+1) * a.service.Load() / int64(a.limit))
	if wait > a.maxWait {
		a.mu.Unlock()
		a.shed()
		return nil, false
	}
	ch := make(chan struct{})
	a.queue = append(a.queue, ch)
	a.mu.Unlock()
	select {
	case <-ch:
		return a.releaser(time.Now()), true
	case <-ctx.Done():
		a.mu.Lock()
		for i, c := range a.queue {
			if c == ch {
				a.queue = append(a.queue[:i], a.queue[i+1:]...)
				a.mu.Unlock()
				return nil, false
			}
		}
		a.mu.Unlock()
		// Admitted just as ctx ended: pass the slot on.
		<-ch
		a.releaser(time.Now())()
		return nil, false
	}
}

// releaser ends an admitted exchange: it records its duration and hands
// the slot to the next waiter, if any.
func (a *admission) releaser(start time.Time) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			d := int64(time.Since(start))
			old := a.service.Load()
			a.service.Store(old + (d-old)/16)
			a.mu.Lock()
			if len(a.queue) > 0 {
				next := a.queue[0]
				a.queue[0] = nil
				a.queue = a.queue[1:]
				a.mu.Unlock()
				close(next) // the slot passes on: inflight unchanged
				return
			}
			a.inflight--
			a.mu.Unlock()
		})
	}
}
