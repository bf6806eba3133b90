package sts

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func waitQueued(t *testing.T, a *admission, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		a.mu.Lock()
		q := len(a.queue)
		a.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %d, want %d", q, n)
		}
	}
}

// TestAdmissionFIFO: with the slots taken, waiters are admitted one by
// one in arrival order as slots free, and a slot passes straight to the
// next waiter.
func TestAdmissionFIFO(t *testing.T) {
	a := newAdmission(1, time.Second, func() {})
	first, ok := a.acquire(context.Background())
	if !ok {
		t.Fatal("a free slot was refused")
	}
	admitted := make(chan int, 5)
	releases := make([]chan struct{}, 5)
	for i := range 5 {
		releases[i] = make(chan struct{})
		go func() {
			rel, ok := a.acquire(context.Background())
			if !ok {
				t.Errorf("waiter %d shed", i)
				return
			}
			admitted <- i
			<-releases[i]
			rel()
		}()
		waitQueued(t, a, i+1)
	}
	first()
	for want := range 5 {
		select {
		case got := <-admitted:
			if got != want {
				t.Fatalf("admitted waiter %d, want %d (FIFO)", got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("waiter %d never admitted", want)
		}
		select {
		case got := <-admitted:
			t.Fatalf("waiter %d admitted while the slot was held", got)
		case <-time.After(5 * time.Millisecond):
		}
		close(releases[want])
	}
	time.Sleep(10 * time.Millisecond)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight != 0 || len(a.queue) != 0 {
		t.Fatalf("after all: inflight %d, queue %d", a.inflight, len(a.queue))
	}
}

// TestAdmissionSheds: a request whose expected wait exceeds maxWait is
// answered at once and counted; one whose context ends leaves the queue.
func TestAdmissionSheds(t *testing.T) {
	var shed atomic.Int64
	a := newAdmission(2, 50*time.Millisecond, func() { shed.Add(1) })
	a.service.Store(int64(10 * time.Millisecond)) // 5 ms of wait per waiter ahead
	r1, _ := a.acquire(context.Background())
	r2, _ := a.acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan bool, 10)
	for i := range 10 { // the n-th waiter expects n × 5 ms: all ≤ 50 ms
		go func() { _, ok := a.acquire(ctx); results <- ok }()
		waitQueued(t, a, i+1)
	}
	start := time.Now()
	if _, ok := a.acquire(context.Background()); ok || shed.Load() != 1 || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("the 11th (55 ms expected): ok=%v shed=%d after %s", ok, shed.Load(), time.Since(start))
	}
	cancel()
	for range 10 {
		if <-results {
			t.Fatal("a cancelled waiter was admitted")
		}
	}
	waitQueued(t, a, 0)
	r1()
	r2()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight != 0 {
		t.Fatalf("inflight %d", a.inflight)
	}
}
