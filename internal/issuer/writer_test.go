package issuer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand: After records the wait asked
// for and fires when the test advances past it. A fake because the property
// under test (the file is replaced at 80 % of the lifetime) is about what the
// writer asks for, not about how fast this machine is.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waits   []time.Duration
	pending chan time.Time
	asked   chan struct{}
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, asked: make(chan struct{}, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.pending = make(chan time.Time, 1)
	ch := c.pending
	c.asked <- struct{}{}
	return ch
}

// fire moves the clock to the end of the last wait and wakes the writer.
func (c *fakeClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.waits[len(c.waits)-1])
	c.pending <- c.now
}

func TestWriterRefreshesAt80Percent(t *testing.T) {
	clock := newFakeClock(fixedNow)
	iss, err := New(Options{URL: "https://127.0.0.1:6443", StateDir: "testdata/state", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "token")
	w := &Writer{
		Issuer:  iss,
		Request: TokenRequest{Namespace: "default", ServiceAccount: "demo", Lifetime: 10 * time.Minute},
		Path:    path,
		Now:     clock.Now,
		After:   clock.After,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	var prev string
	for round := 0; round < 4; round++ {
		<-clock.asked // the writer wrote a token and now waits
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) == prev {
			t.Fatalf("round %d: the file was not replaced", round)
		}
		prev = string(data)
		claims := decodeClaims(t, prev)
		wantIat := fixedNow.Add(time.Duration(round) * 8 * time.Minute).Unix()
		if claims.IssuedAt != wantIat || claims.Expiry != wantIat+600 {
			t.Fatalf("round %d: iat %d exp %d, want iat %d exp %d", round, claims.IssuedAt, claims.Expiry, wantIat, wantIat+600)
		}
		clock.mu.Lock()
		wait := clock.waits[len(clock.waits)-1]
		clock.mu.Unlock()
		if wait != 8*time.Minute {
			t.Fatalf("round %d: writer waits %s before replacing a 10m token, want 8m (80%%)", round, wait)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != DefaultFileMode {
			t.Errorf("mode %v, want %v", st.Mode().Perm(), DefaultFileMode)
		}
		clock.fire()
	}
	<-clock.asked
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left %d files behind (temporary files?)", len(entries))
	}
}

func TestRefreshAtCapsAt24h(t *testing.T) {
	iat := fixedNow.Unix()
	for _, tc := range []struct {
		life time.Duration
		want time.Duration
	}{
		{time.Hour, 48 * time.Minute},
		{10 * time.Second, 8 * time.Second},
		{5 * time.Second, 3 * time.Second}, // 2 s left at least
		{4 * time.Second, 3200 * time.Millisecond},
		{48 * time.Hour, 24 * time.Hour},
	} {
		got := RefreshAt(Token{Claims: Claims{IssuedAt: iat, Expiry: iat + int64(tc.life/time.Second)}})
		if d := got.Sub(fixedNow); d != tc.want {
			t.Errorf("lifetime %s: refresh after %s, want %s", tc.life, d, tc.want)
		}
	}
}

// TestWriterRealClock runs the writer on the real clock with 2 s tokens and
// checks that each token on disk is replaced while it is still within the
// first 80 % of its lifetime plus scheduling slack — it asserts on content
// (successive iat values), not on how long anything took.
func TestWriterRealClock(t *testing.T) {
	iss, err := New(Options{URL: "https://127.0.0.1:6443", StateDir: "testdata/state"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "token")
	var mu sync.Mutex
	var toks []Token
	got := make(chan struct{}, 8)
	w := &Writer{Issuer: iss, Request: TokenRequest{Namespace: "default", ServiceAccount: "demo", Lifetime: 2 * time.Second},
		Path: path, Mode: 0o644, OnWrite: func(tok Token) {
			mu.Lock()
			toks = append(toks, tok)
			mu.Unlock()
			got <- struct{}{}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for i := 0; i < 3; i++ {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatal("the writer did not replace the token")
		}
		data, _ := os.ReadFile(path)
		mu.Lock()
		last := toks[len(toks)-1]
		mu.Unlock()
		if string(data) != last.Raw && i == 2 {
			t.Errorf("file does not hold the last token written")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(toks); i++ {
		if !toks[i].IssuedAt().Before(toks[i-1].Expiry()) {
			t.Errorf("token %d issued at %v, after token %d expired at %v", i, toks[i].IssuedAt(), i-1, toks[i-1].Expiry())
		}
		if toks[i].Raw == toks[i-1].Raw {
			t.Errorf("token %d equals token %d", i, i-1)
		}
	}
}

func TestWriterFailsFastOnBadPath(t *testing.T) {
	iss := fixedIssuer(t, "https://127.0.0.1:6443")
	w := &Writer{Issuer: iss, Request: TokenRequest{Namespace: "default", ServiceAccount: "demo"}, Path: filepath.Join(t.TempDir(), "missing", "token")}
	err := w.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "write token file") {
		t.Fatalf("err = %v", err)
	}
}

func decodeClaims(t *testing.T, raw string) Claims {
	t.Helper()
	jws := strings.Split(raw, ".")
	if len(jws) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	var c Claims
	if err := jsonDecodeSegment(jws[1], &c); err != nil {
		t.Fatal(err)
	}
	return c
}
