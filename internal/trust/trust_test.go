package trust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestIssuerSource(t *testing.T) {
	for _, tc := range []struct{ iss, url string }{
		{"https://kube.example", "https://kube.example/.well-known/openid-configuration"},
		{"https://kube.example/", "https://kube.example/.well-known/openid-configuration"},
		{"https://login.example/tid/v2.0", "https://login.example/tid/v2.0/.well-known/openid-configuration"},
		{"https://token.actions.example//", "https://token.actions.example//.well-known/openid-configuration"},
	} {
		got := IssuerSource(tc.iss)
		if got != (Source{DiscoveryURL: tc.url, Issuer: tc.iss}) {
			t.Errorf("IssuerSource(%q) = %+v, want DiscoveryURL %q", tc.iss, got, tc.url)
		}
	}
}

// Many concurrent lookups of a kid on an empty cache share one fetch.
func TestKeyConcurrentKnownKIDOneFetch(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	gate := make(chan struct{})
	ti.set(func(ti *testIssuer) { ti.gate = gate })
	var lookups atomic.Int32
	c, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) {
		o.Hooks.OnLookup = func(Source, string, bool) { lookups.Add(1) }
	})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			k, err := c.Key(ctxT(t), ti.source(), "k1")
			if err == nil && k.KeyID != "k1" {
				err = fmt.Errorf("got kid %q", k.KeyID)
			}
			errs <- err
		})
	}
	for lookups.Load() < n { // every caller has missed and is waiting
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d, j := ti.counts(); d != 1 || j != 1 {
		t.Fatalf("fetches: discovery %d, jwks %d; want 1 and 1", d, j)
	}
	// Now a hit, no fetch.
	if _, err := c.Key(ctxT(t), ti.source(), "k1"); err != nil {
		t.Fatal(err)
	}
	if d, j := ti.counts(); d != 1 || j != 1 {
		t.Fatalf("after a hit: discovery %d, jwks %d; want 1 and 1", d, j)
	}
}

// An unknown kid refetches once per cooldown, however many ask, and a
// rotated-in key is found after one refetch.
func TestUnknownKIDCooldownAndRotation(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	clk := newFakeClock()
	var lookups atomic.Int32
	c, _ := newTestCache(t, ti, clk, func(o *Options) {
		o.Hooks.OnLookup = func(Source, string, bool) { lookups.Add(1) }
	})
	src := ti.source()
	if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultMinRefetchInterval + time.Second)

	gate := make(chan struct{})
	ti.set(func(ti *testIssuer) { ti.gate = gate })
	lookups.Store(0)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := c.Key(ctxT(t), src, "nope")
			errs <- err
		})
	}
	for lookups.Load() < n {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrUnknownKID) {
			t.Fatalf("err = %v, want ErrUnknownKID", err)
		}
		for _, want := range []string{`kid "nope"`, fmt.Sprintf("issuer %q", ti.srv.URL), `known kids: "k1"`} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not mention %s", err, want)
			}
		}
	}
	if d, j := ti.counts(); d != 2 || j != 2 {
		t.Fatalf("after the burst: discovery %d, jwks %d; want 2 and 2", d, j)
	}

	// Another unknown kid within the cooldown: no fetch.
	ti.setKeys(t, rsaJWK(0, "k1"), rsaJWK(1, "k2"))
	clk.Advance(DefaultMinRefetchInterval / 2)
	_, err := c.Key(ctxT(t), src, "k2")
	if !errors.Is(err, ErrUnknownKID) || !strings.Contains(err.Error(), "the next refetch on an unknown kid is allowed at") {
		t.Fatalf("within the cooldown: err = %v, want ErrUnknownKID naming the next refetch", err)
	}
	if d, j := ti.counts(); d != 2 || j != 2 {
		t.Fatalf("within the cooldown: discovery %d, jwks %d; want 2 and 2", d, j)
	}

	// After the cooldown: one refetch finds the rotated key.
	clk.Advance(DefaultMinRefetchInterval/2 + time.Second)
	k, err := c.Key(ctxT(t), src, "k2")
	if err != nil || k.KeyID != "k2" {
		t.Fatalf("after the cooldown: key %v, err %v; want k2", k, err)
	}
	if d, j := ti.counts(); d != 3 || j != 3 {
		t.Fatalf("after the cooldown: discovery %d, jwks %d; want 3 and 3", d, j)
	}
}

// A waiter whose ctx ends leaves at once; the fetch goes on for the others.
func TestKeyWaiterHonoursItsContext(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	gate := make(chan struct{})
	ti.set(func(ti *testIssuer) { ti.gate = gate })
	c, _ := newTestCache(t, ti, newFakeClock(), nil)

	done := make(chan error, 1)
	go func() {
		_, err := c.Key(ctxT(t), ti.source(), "k1")
		done <- err
	}()
	for ti.jwksHits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Key(ctx, ti.source(), "k1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: err = %v, want context.Canceled", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("patient waiter: %v", err)
	}
}

// When the issuer fails, cached keys are served up to MaxStaleness after
// the last good fetch; beyond it, a FetchError.
func TestStaleKeysServedWhileIssuerDown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		down    func(ti *testIssuer)
		wantErr string
		status  int
	}{
		{"status 500", func(ti *testIssuer) { ti.set(func(ti *testIssuer) { ti.status = 500 }) },
			"/.well-known/openid-configuration failed: HTTP status 500 Internal Server Error, expected 200 OK (the keys last fetched at 2026-11-23T12:00:00Z are too old to use)", 500},
		{"closed", func(ti *testIssuer) { ti.srv.Close() },
			"/.well-known/openid-configuration failed: Get ", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := newTestIssuer(t, rsaJWK(0, "k1"))
			clk := newFakeClock()
			c, events := newTestCache(t, ti, clk, nil)
			src := ti.source()
			if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
				t.Fatal(err)
			}
			if err := events.wait(t); err != nil {
				t.Fatal(err)
			}
			tc.down(ti)

			// Expired: served, and a background refresh fails.
			clk.Advance(2 * DefaultRefreshInterval)
			if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
				t.Fatalf("expired, issuer down: %v", err)
			}
			var fe *FetchError
			if err := events.wait(t); !errors.As(err, &fe) || fe.StatusCode != tc.status {
				t.Fatalf("background refresh: err = %v, want a FetchError with status %d", err, tc.status)
			}
			// Still within the bound.
			clk.Advance(DefaultMaxStaleness - 2*DefaultRefreshInterval)
			if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
				t.Fatalf("at the staleness bound: %v", err)
			}
			if _, err := c.Keys(ctxT(t), src); err != nil {
				t.Fatalf("Keys at the staleness bound: %v", err)
			}
			events.wait(t)

			clk.Advance(time.Second)
			_, err := c.Key(ctxT(t), src, "k1")
			if !errors.As(err, &fe) {
				t.Fatalf("beyond the staleness bound: err = %v, want *FetchError", err)
			}
			if !strings.Contains(err.Error(), "trust: fetching "+ti.srv.URL+tc.wantErr) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.wantErr)
			}
			if fe.LastSuccess.IsZero() || fe.Source != src {
				t.Fatalf("FetchError %+v: want LastSuccess and Source set", fe)
			}
			if errors.Is(err, ErrUnknownKID) {
				t.Fatal("a fetch failure must not read as an unknown kid")
			}
		})
	}
}

// max-age sets the expiry (with ±10% jitter), bounded by MinTTL and
// RefreshInterval.
func TestMaxAgeHonoured(t *testing.T) {
	for _, tc := range []struct {
		cacheControl string
		ttl          time.Duration
	}{
		{"public, max-age=600", 600 * time.Second},
		{"max-age=10", DefaultMinTTL},
		{"no-store", DefaultMinTTL},
		{"max-age=86400", DefaultRefreshInterval},
		{"", DefaultRefreshInterval},
	} {
		t.Run(tc.cacheControl, func(t *testing.T) {
			ti := newTestIssuer(t, rsaJWK(0, "k1"))
			ti.set(func(ti *testIssuer) { ti.cacheControl = tc.cacheControl })
			clk := newFakeClock()
			c, events := newTestCache(t, ti, clk, nil)
			src := ti.source()
			if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
				t.Fatal(err)
			}
			events.wait(t)
			md, err := c.Metadata(ctxT(t), src)
			if err != nil {
				t.Fatal(err)
			}
			if got := md.Expires.Sub(md.FetchedAt); got < tc.ttl*9/10 || got > tc.ttl*11/10 {
				t.Fatalf("lifetime %s, want %s ±10%%", got, tc.ttl)
			}
			clk.Advance(tc.ttl*9/10 - time.Second)
			if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
				t.Fatal(err)
			}
			if d, j := ti.counts(); d != 1 || j != 1 {
				t.Fatalf("before max-age: discovery %d, jwks %d; want 1 and 1", d, j)
			}
			clk.Advance(tc.ttl*2/10 + 2*time.Second)
			if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
				t.Fatal(err)
			}
			if err := events.wait(t); err != nil {
				t.Fatal(err)
			}
			if d, j := ti.counts(); d != 2 || j != 2 {
				t.Fatalf("after max-age: discovery %d, jwks %d; want 2 and 2", d, j)
			}
		})
	}
}

func TestIssuerMismatch(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	ti.set(func(ti *testIssuer) { ti.issuer = ti.srv.URL + "/" })
	c, _ := newTestCache(t, ti, newFakeClock(), nil)
	_, err := c.Key(ctxT(t), ti.source(), "k1")
	var fe *FetchError
	if !errors.As(err, &fe) || !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("err = %v, want a FetchError wrapping ErrIssuerMismatch", err)
	}
	u := ti.srv.URL
	want := fmt.Sprintf("trust: fetching %s/.well-known/openid-configuration failed: issuer mismatch: discovery document at %s/.well-known/openid-configuration says issuer %q, expected %q (note the trailing '/': issuers are compared exactly); the next attempt will be made after 2026-11-23T12:01:00Z", u, u, u+"/", u)
	if err.Error() != want {
		t.Fatalf("error\n got %s\nwant %s", err, want)
	}
	if _, j := ti.counts(); j != 0 {
		t.Fatalf("jwks fetched %d times after an issuer mismatch", j)
	}

	// The same issuer named with its trailing '/' (as Kubernetes may) works:
	// the discovery URL drops one '/'.
	if _, err := c.Key(ctxT(t), IssuerSource(u+"/"), "k1"); err != nil {
		t.Fatal(err)
	}
	// A Source with no Issuer skips the check (Entra v2 document, v1 tokens).
	if _, err := c.Key(ctxT(t), Source{DiscoveryURL: u + "/.well-known/openid-configuration"}, "k1"); err != nil {
		t.Fatal(err)
	}
}

func TestAllowDenied(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	var asked atomic.Int32
	c, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) {
		o.Allow = func(Source) bool { asked.Add(1); return false }
	})
	for _, call := range []func() error{
		func() error { _, err := c.Key(ctxT(t), ti.source(), "k1"); return err },
		func() error { _, err := c.Keys(ctxT(t), ti.source()); return err },
		func() error { return c.Refresh(ctxT(t), ti.source()) },
	} {
		err := call()
		var fe *FetchError
		if !errors.Is(err, ErrNotAllowed) || !errors.As(err, &fe) {
			t.Fatalf("err = %v, want a FetchError wrapping ErrNotAllowed", err)
		}
	}
	if d, j := ti.counts(); d != 0 || j != 0 || asked.Load() != 3 {
		t.Fatalf("requests: discovery %d, jwks %d, Allow asked %d times; want 0, 0, 3", d, j, asked.Load())
	}
	if n := len(*c.entries.Load()); n != 0 {
		t.Fatalf("%d cache entries for a denied source", n)
	}
}

func TestMetrics(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	reg := prometheus.NewRegistry()
	c, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) { o.Registerer = reg })
	// A second cache on the same registry shares the collectors.
	c2, _ := newTestCache(t, ti, newFakeClock(), func(o *Options) { o.Registerer = reg })
	for range 3 {
		if _, err := c.Key(ctxT(t), ti.source(), "k1"); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c2.Key(ctxT(t), Source{DiscoveryURL: ti.srv.URL + "/nothing"}, "k1")
	got := gather(t, reg)
	want := map[string]float64{
		`wif_trust_key_lookups_total{result="hit"}`:  2,
		`wif_trust_key_lookups_total{result="miss"}`: 2,
		`wif_trust_fetches_total{result="ok"}`:       1,
		`wif_trust_fetches_total{result="error"}`:    1,
		`wif_trust_fetch_duration_seconds_count`:     2,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// gather flattens a registry's counters and histogram counts.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Histogram != nil:
				out[name+"_count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// A failed first fetch is answered from memory until the cooldown ends,
// then retried; the failure is logged with its URL and cause.
func TestFailedFetchCooldownAndLog(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	ti.set(func(x *testIssuer) { x.status = 502 })
	clk := newFakeClock()
	var logs strings.Builder
	var logMu sync.Mutex
	c, _ := newTestCache(t, ti, clk, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	})
	src := ti.source()
	_, err1 := c.Key(ctxT(t), src, "k1")
	clk.Advance(DefaultMinRefetchInterval - time.Second)
	_, err2 := c.Key(ctxT(t), src, "k1")
	var fe *FetchError
	if !errors.As(err2, &fe) || fe.StatusCode != 502 || fe.NextAttempt.IsZero() || err1.Error() != err2.Error() {
		t.Fatalf("within the cooldown: %v (first: %v)", err2, err1)
	}
	if d, _ := ti.counts(); d != 1 {
		t.Fatalf("discovery fetched %d times within the cooldown, want 1", d)
	}
	st := c.Status()
	if len(st) != 1 || st[0].Source != src || st[0].Keys != 0 || st[0].LastError == nil || st[0].LastError.StatusCode != 502 {
		t.Fatalf("Status while failing = %+v", st)
	}
	ti.set(func(x *testIssuer) { x.status = 0 })
	clk.Advance(2 * time.Second)
	if _, err := c.Key(ctxT(t), src, "k1"); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
	st = c.Status()
	if len(st) != 1 || st[0].Keys != 1 || !slices.Equal(st[0].KIDs, []string{"k1"}) || st[0].LastError != nil ||
		st[0].Metadata.Issuer != ti.srv.URL || !st[0].NextAttempt.Equal(clk.Now().Add(DefaultMinRefetchInterval)) {
		t.Fatalf("Status after success = %+v", st)
	}
	logMu.Lock()
	defer logMu.Unlock()
	want := fmt.Sprintf(`level=WARN msg="trust: fetching issuer keys failed" source=%s url=%s error="HTTP status 502 Bad Gateway, expected 200 OK"`, src.DiscoveryURL, src.DiscoveryURL)
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("log:\n%s\nwant a line with:\n%s", logs.String(), want)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Close may run while lookups start fetches: no panic, no leaked fetch,
// and lookups after Close fail cleanly.
func TestCloseDuringLookups(t *testing.T) {
	ti := newTestIssuer(t, rsaJWK(0, "k1"))
	clk := newFakeClock()
	c, _ := newTestCache(t, ti, clk, func(o *Options) { o.Hooks.OnFetch = nil })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				clk.Advance(DefaultMinRefetchInterval)
				_, err := c.Key(ctxT(t), ti.source(), fmt.Sprintf("k%d-%d", g, i))
				var fe *FetchError
				if !errors.Is(err, ErrUnknownKID) && !errors.As(err, &fe) {
					t.Errorf("err = %v", err)
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	c.Close()
	wg.Wait()
	c.Close() // idempotent
}
