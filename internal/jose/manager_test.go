package jose

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is SHA-1 by definition.
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// t0 is the tests' start time: whole seconds, so key times fall on the
// steps the tests take.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock shared by managers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// logBuffer collects a manager's logs as JSON lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newManager(t *testing.T, st store.KeyStore, c *clock, mod func(*Options)) *Manager {
	t.Helper()
	o := Options{Store: st, Now: c.Now}
	if mod != nil {
		mod(&o)
	}
	m, err := NewManager(t.Context(), o)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

func listKeys(t *testing.T, st store.KeyStore) []store.SigningKey {
	t.Helper()
	ks, err := st.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func tick(t *testing.T, m *Manager) {
	t.Helper()
	if err := m.Tick(t.Context()); err != nil {
		t.Fatalf("Tick: %v", err)
	}
}

// jwksKIDs returns the kids of m's JWKS, in order.
func jwksKIDs(t *testing.T, m *Manager) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(m.JWKS(), &set); err != nil {
		t.Fatalf("JWKS does not parse as a go-jose key set: %v\n%s", err, m.JWKS())
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// verifyWithJWKS verifies token against a JWKS document the way a relying
// party does (go-jose, RS256 only) and returns its header kid.
func verifyWithJWKS(t *testing.T, jwks []byte, token string) (string, []byte) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %s", len(keys), kid)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("verify token with JWKS key %s: %v", kid, err)
	}
	return kid, payload
}

func TestFirstStartAndRestart(t *testing.T) {
	st, c := memory.New(), newClock()
	logs := &logBuffer{}
	m1 := newManager(t, st, c, func(o *Options) { o.Logger = logs.Logger() })
	ks := listKeys(t, st)
	if len(ks) != 1 {
		t.Fatalf("first start stored %d keys, want 1", len(ks))
	}
	k := ks[0]
	if k.ID != m1.ActiveKeyID() || k.Algorithm != "RS256" || k.KEKID != "" {
		t.Errorf("stored key id %q alg %q kek %q; active %q", k.ID, k.Algorithm, k.KEKID, m1.ActiveKeyID())
	}
	want := schedule{publish: t0, activate: t0, retire: t0.Add(DefaultRotationPeriod), expire: t0.Add(DefaultRotationPeriod + DefaultMaxTokenLifetime + ExpiryMargin)}
	if got := (schedule{k.PublishAt, k.ActivateAt, k.RetireAt, k.ExpireAt}); got != want {
		t.Errorf("first key schedule %+v, want %+v", got, want)
	}
	if !strings.Contains(logs.String(), "SIGNING KEYS ARE STORED UNENCRYPTED") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("no loud warning about unencrypted keys in logs:\n%s", logs)
	}
	if _, err := x509.ParsePKCS8PrivateKey(k.PrivateKey); err != nil {
		t.Errorf("without a KEK the private key is stored as PKCS#8 DER: %v", err)
	}
	tok, err := m1.Sign([]byte(`{"sub":"x"}`), false)
	if err != nil {
		t.Fatal(err)
	}

	c.Add(time.Hour)
	m2 := newManager(t, st, c, nil)
	if ks := listKeys(t, st); len(ks) != 1 {
		t.Fatalf("restart: %d keys stored, want the 1 from the first start", len(ks))
	}
	if m2.ActiveKeyID() != m1.ActiveKeyID() {
		t.Errorf("restart signs with %s, want %s", m2.ActiveKeyID(), m1.ActiveKeyID())
	}
	payload, err := m2.Verify(tok)
	if err != nil || string(payload) != `{"sub":"x"}` {
		t.Fatalf("token signed before restart: payload %q, err %v", payload, err)
	}
	kid, _ := verifyWithJWKS(t, m2.JWKS(), tok)
	if kid != k.ID {
		t.Errorf("token kid %s, want %s", kid, k.ID)
	}
	if !m2.IsOwnKey(k.ID) || m2.IsOwnKey("other") {
		t.Error("IsOwnKey wrong")
	}
}

// keyLife is what the rotation test observed of one key.
type keyLife struct {
	firstPublished, lastPublished time.Time
	firstSigned, lastSigned       time.Time
	gone                          time.Time
}

func TestRotationSchedule(t *testing.T) {
	st, c := memory.New(), newClock()
	const (
		period   = 30 * 24 * time.Hour
		pre      = 48 * time.Hour
		lifetime = 24 * time.Hour
		step     = time.Hour
	)
	m := newManager(t, st, c, func(o *Options) {
		o.RotationPeriod, o.PrePublish, o.MaxTokenLifetime = period, pre, lifetime
	})
	lives := map[string]*keyLife{}
	life := func(kid string) *keyLife {
		if lives[kid] == nil {
			lives[kid] = &keyLife{}
		}
		return lives[kid]
	}
	// Tokens signed by each key just before it stopped signing, to verify
	// when they are about to expire.
	type pending struct {
		token string
		exp   time.Time
	}
	var lastTokens []pending
	prevActive, prevToken := "", ""
	end := t0.Add(4*period + 5*24*time.Hour)
	for now := t0; now.Before(end); now = now.Add(step) {
		c.Set(now)
		tick(t, m)
		active := m.ActiveKeyID()
		if active == "" {
			t.Fatalf("%s: no active key", now)
		}
		jwks := m.JWKS()
		tok, err := m.Sign([]byte(`{"n":1}`), false)
		if err != nil {
			t.Fatalf("%s: Sign: %v", now, err)
		}
		kid, _ := verifyWithJWKS(t, jwks, tok)
		if kid != active {
			t.Fatalf("%s: token kid %s, active %s", now, kid, active)
		}
		published := jwksKIDs(t, m)
		if published[0] != active {
			t.Errorf("%s: JWKS lists %v; the active key must come first", now, published)
		}
		for _, kid := range published {
			l := life(kid)
			if l.firstPublished.IsZero() {
				l.firstPublished = now
			}
			l.lastPublished = now
		}
		for kid, l := range lives {
			if l.gone.IsZero() && !l.lastPublished.IsZero() && !slices.Contains(published, kid) {
				l.gone = now
			}
		}
		l := life(active)
		if l.firstSigned.IsZero() {
			l.firstSigned = now
		}
		l.lastSigned = now
		if active != prevActive && prevActive != "" {
			// The last token the previous key signed (one step ago) keeps
			// verifying until it expires.
			lastTokens = append(lastTokens, pending{prevToken, now.Add(-step).Add(lifetime)})
		}
		prevToken = tok
		for _, p := range lastTokens {
			if now.Before(p.exp) {
				if _, err := m.Verify(p.token); err != nil {
					t.Fatalf("%s: a token signed by a retired key (exp %s) no longer verifies: %v", now, p.exp, err)
				}
			}
		}
		prevActive = active
		// Never more than: previous (retired, still published), active,
		// next.
		if n := len(listKeys(t, st)); n > 3 {
			t.Fatalf("%s: %d keys stored", now, n)
		}
	}
	if len(lives) != 5 {
		t.Fatalf("saw %d keys over %s, want 5 (the first and 4 rotations)", len(lives), end.Sub(t0))
	}
	for kid, l := range lives {
		if l.firstSigned.IsZero() {
			if got := l.firstPublished; !got.After(end.Add(-pre - step)) {
				t.Errorf("key %s published at %s never signed", kid, got)
			}
			continue
		}
		if l.firstSigned.Equal(t0) {
			if !l.firstPublished.Equal(t0) {
				t.Errorf("first key %s: published %s", kid, l.firstPublished)
			}
		} else if lead := l.firstSigned.Sub(l.firstPublished); lead < pre {
			t.Errorf("key %s published %s before it signed, want at least %s", kid, lead, pre)
		}
		if l.lastSigned.Before(end.Add(-step)) {
			stopped := l.lastSigned.Add(step) // it signed until the next step
			// It was still published one full token lifetime after it
			// stopped signing (exact boundaries: TestRotationSwitchesExactlyAtActivateAt).
			if tail := l.lastPublished.Sub(stopped); tail < lifetime {
				t.Errorf("key %s stopped signing at %s and was last published %s later, want at least %s", kid, stopped, tail, lifetime)
			}
			if l.gone.IsZero() && end.Sub(stopped) > lifetime+ExpiryMargin+step {
				t.Errorf("key %s stopped signing at %s and is still published at %s", kid, stopped, end)
			}
			if !l.gone.IsZero() && l.gone.Sub(stopped) > lifetime+ExpiryMargin+step {
				t.Errorf("key %s left the JWKS at %s, %s after it stopped signing", kid, l.gone, l.gone.Sub(stopped))
			}
		}
	}
}

func TestRotationSwitchesExactlyAtActivateAt(t *testing.T) {
	st, c := memory.New(), newClock()
	m := newManager(t, st, c, nil)
	first := m.ActiveKeyID()
	retire := t0.Add(DefaultRotationPeriod)

	c.Set(retire.Add(-DefaultPrePublish - time.Second))
	tick(t, m)
	if n := len(listKeys(t, st)); n != 1 {
		t.Fatalf("%d keys before the pre-publication time, want 1", n)
	}
	etag1 := etagOf(m)
	c.Set(retire.Add(-DefaultPrePublish))
	tick(t, m)
	ks := listKeys(t, st)
	if len(ks) != 2 {
		t.Fatalf("%d keys at the pre-publication time, want 2", len(ks))
	}
	next := ks[0].ID
	if next == first {
		next = ks[1].ID
	}
	if got := jwksKIDs(t, m); !slices.Equal(got, []string{first, next}) {
		t.Errorf("JWKS kids %v, want [active, next] = [%s %s]", got, first, next)
	}
	if etagOf(m) == etag1 {
		t.Error("ETag did not change when a key was published")
	}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{retire.Add(-time.Nanosecond), first},
		{retire, next},
		{retire.Add(DefaultRotationPeriod - DefaultPrePublish - time.Second), next},
	} {
		c.Set(tc.at) // no Tick: the switch is by time, not by maintenance
		if got := m.ActiveKeyID(); got != tc.want {
			t.Errorf("at %s active %s, want %s", tc.at, got, tc.want)
		}
		tok, err := m.Sign([]byte(`{}`), false)
		if err != nil {
			t.Fatal(err)
		}
		if kid, _ := verifyWithJWKS(t, m.JWKS(), tok); kid != tc.want {
			t.Errorf("at %s token kid %s, want %s", tc.at, kid, tc.want)
		}
	}
	// After the switch the JWKS lists the new key first; the old one stays
	// until RetireAt + MaxTokenLifetime + margin, and then goes.
	expire := retire.Add(DefaultMaxTokenLifetime + ExpiryMargin)
	c.Set(expire.Add(-time.Nanosecond))
	if got := jwksKIDs(t, m); !slices.Equal(got, []string{next, first}) {
		t.Errorf("just before expiry JWKS kids %v, want [%s %s]", got, next, first)
	}
	c.Set(expire)
	if got := jwksKIDs(t, m); !slices.Equal(got, []string{next}) {
		t.Errorf("at expiry JWKS kids %v, want [%s]", got, next)
	}
	if m.IsOwnKey(first) != true {
		t.Error("the expired key is still stored until the next Tick, so still own")
	}
	tick(t, m)
	if ks := listKeys(t, st); len(ks) != 1 || ks[0].ID != next {
		t.Errorf("after expiry the store holds %v, want only %s", ids(ks), next)
	}
	if _, ok := m.PublicKey(first); ok {
		t.Error("PublicKey returns an expired key")
	}
}

func etagOf(m *Manager) string {
	_, e := m.JWKSWithETag()
	return e
}

func ids(ks []store.SigningKey) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}

// barrier holds every CreateSigningKey made through its stores until n of
// them are waiting, so that replicas which decided to create a key at the
// same moment really write concurrently (the stores are real; the wrapper
// only forces the interleaving that a race produces by chance).
type barrier struct {
	mu      sync.Mutex
	n       int
	waiting int
	release chan struct{}
}

// arm makes the next n creations wait for each other.
func (b *barrier) arm(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n, b.waiting, b.release = n, 0, make(chan struct{})
}

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.n == 0 {
		b.mu.Unlock()
		return nil
	}
	b.waiting++
	if b.waiting == b.n {
		close(b.release)
		b.n = 0
	}
	ch := b.release
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type barrierStore struct {
	store.KeyStore
	b *barrier
}

func (s barrierStore) CreateSigningKeyIf(ctx context.Context, k store.SigningKey, check func([]store.SigningKey) error) error {
	if err := s.b.wait(ctx); err != nil {
		return err
	}
	return s.KeyStore.CreateSigningKeyIf(ctx, k, check)
}

func TestReplicasShareOneSchedule(t *testing.T) {
	mem := memory.New()
	testReplicas(t, mem, mem)
}

// testReplicas runs two managers, one over each of a and b (handles on one
// database), through a concurrent first start and a concurrent rotation:
// both decide at the same instant (the barrier holds each until the other
// has decided too), and the store's key lock makes one decision win.
func testReplicas(t *testing.T, a, b store.KeyStore) {
	c := newClock()
	bar := &barrier{}
	handles := []store.KeyStore{barrierStore{a, bar}, barrierStore{b, bar}}

	// Both replicas start on an empty store at once: one key is created,
	// and both publish and sign with it from their first moment.
	bar.arm(2)
	ms := make([]*Manager, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() { ms[i], errs[i] = NewManager(t.Context(), Options{Store: handles[i], Now: c.Now}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := len(listKeys(t, a)); n != 1 {
		t.Fatalf("concurrent first start stored %d keys, want 1", n)
	}
	active := ms[0].ActiveKeyID()
	for i, m := range ms {
		if got := m.ActiveKeyID(); got != active || active == "" {
			t.Fatalf("replica %d signs with %q, replica 0 with %q", i, got, active)
		}
		if got := jwksKIDs(t, m); !slices.Equal(got, []string{active}) {
			t.Fatalf("replica %d publishes %v, want [%s]", i, got, active)
		}
	}

	// Both reach the pre-publication time together: one successor.
	c.Set(t0.Add(DefaultRotationPeriod - DefaultPrePublish))
	bar.arm(2)
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.Tick(t.Context()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var successors []store.SigningKey
	for _, k := range listKeys(t, a) {
		if k.ActivateAt.After(c.Now()) {
			successors = append(successors, k)
		}
	}
	if len(successors) != 1 {
		t.Fatalf("successors after a concurrent rotation: %d, want 1", len(successors))
	}
	winner := successors[0].ID
	for i, m := range ms {
		if err := m.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := jwksKIDs(t, m); !slices.Contains(got, winner) {
			t.Errorf("replica %d JWKS %v lacks the successor", i, got)
		}
		if m.ActiveKeyID() != active {
			t.Errorf("replica %d switched early", i)
		}
	}
	c.Set(successors[0].ActivateAt)
	for i, m := range ms {
		tick(t, m)
		if got := m.ActiveKeyID(); got != winner {
			t.Errorf("replica %d signs with %s after the switch, want %s", i, got, winner)
		}
	}
	// A token from either replica verifies at the other.
	tok, err := ms[0].Sign([]byte(`{}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms[1].Verify(tok); err != nil {
		t.Error(err)
	}
}

func TestDuplicatesCloseToActivationAreKept(t *testing.T) {
	// A duplicate that may already be in use by a replica is never deleted.
	mem, c := memory.New(), newClock()
	m := newManager(t, mem, c, nil)
	retire := t0.Add(DefaultRotationPeriod)
	// Two successors, created late (less than PrePublish/2 before they
	// sign) as a replica coming back after an outage would.
	c.Set(retire.Add(-time.Hour))
	for range 2 {
		rec, err := newSigningKey(c.Now(), m.schedule(c.Now(), retire, retire.Add(DefaultRotationPeriod)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := mem.CreateSigningKey(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	tick(t, m)
	if n := len(listKeys(t, mem)); n != 3 {
		t.Fatalf("%d keys; the late duplicates must both stay", n)
	}
	c.Set(retire)
	var succ []string
	for _, k := range listKeys(t, mem) {
		if k.ActivateAt.Equal(retire) {
			succ = append(succ, k.ID)
		}
	}
	if got := m.ActiveKeyID(); got != slices.Min(succ) {
		t.Errorf("active %s, want the smallest of %v", got, succ)
	}
}

func TestEmergencyKeyWhenMaintenanceStopped(t *testing.T) {
	// No Tick ran for the whole pre-publication window and past RetireAt
	// (every replica was down): Sign fails closed, the next Tick creates a
	// key that signs at once.
	mem, c := memory.New(), newClock()
	logs := &logBuffer{}
	m := newManager(t, mem, c, func(o *Options) { o.Logger = logs.Logger() })
	first := m.ActiveKeyID()
	c.Set(t0.Add(DefaultRotationPeriod))
	if _, err := m.Sign([]byte(`{}`), false); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("Sign with no active key: %v, want ErrNoActiveKey", err)
	}
	if err := m.Ready(); !errors.Is(err, ErrNoActiveKey) {
		t.Fatalf("Ready with no active key: %v", err)
	}
	tick(t, m)
	if got := m.ActiveKeyID(); got == "" || got == first {
		t.Fatalf("after Tick active %q", got)
	}
	if !strings.Contains(logs.String(), "no signing key was active") {
		t.Errorf("no warning logged:\n%s", logs)
	}
	// A restart in the same situation also recovers (NewManager ticks).
	c.Set(t0.Add(3 * DefaultRotationPeriod))
	m2 := newManager(t, mem, c, nil)
	if _, err := m2.Sign([]byte(`{}`), false); err != nil {
		t.Fatal(err)
	}
}

func TestLateSuccessorIsStillContiguous(t *testing.T) {
	// Maintenance resumes after the pre-publication time but before
	// RetireAt: the successor is published late but signs exactly when the
	// current key retires.
	mem, c := memory.New(), newClock()
	logs := &logBuffer{}
	m := newManager(t, mem, c, func(o *Options) { o.Logger = logs.Logger() })
	retire := t0.Add(DefaultRotationPeriod)
	c.Set(retire.Add(-2 * time.Hour))
	tick(t, m)
	var next store.SigningKey
	for _, k := range listKeys(t, mem) {
		if k.ID != m.ActiveKeyID() {
			next = k
		}
	}
	if !next.ActivateAt.Equal(retire) || !next.PublishAt.Equal(c.Now()) {
		t.Errorf("late successor publish %s activate %s, want %s and %s", next.PublishAt, next.ActivateAt, c.Now(), retire)
	}
	if !strings.Contains(logs.String(), "created the next signing key late") {
		t.Errorf("no warning logged:\n%s", logs)
	}
}

func TestSignHeaders(t *testing.T) {
	st, c := memory.New(), newClock()
	m := newManager(t, st, c, nil)
	kid := m.ActiveKeyID()
	k := listKeys(t, st)[0]
	x5tWant := b64sha1(k.Certificate)
	claims := map[string]any{"aud": "api://x", "iss": "https://wif.example/t/v2.0", "roles": []string{"A"}}
	for _, tc := range []struct {
		withX5T bool
		header  string
	}{
		{false, `{"alg":"RS256","kid":"` + kid + `","typ":"JWT"}`},
		{true, `{"alg":"RS256","kid":"` + kid + `","typ":"JWT","x5t":"` + x5tWant + `"}`},
	} {
		tok, err := m.SignClaims(claims, tc.withX5T)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("token has %d parts", len(parts))
		}
		hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		if string(hdr) != tc.header {
			t.Errorf("x5t=%v: header %s, want %s", tc.withX5T, hdr, tc.header)
		}
		gotKID, payload := verifyWithJWKS(t, m.JWKS(), tok)
		if gotKID != kid {
			t.Errorf("kid %s", gotKID)
		}
		want, _ := json.Marshal(claims)
		if !bytes.Equal(payload, want) {
			t.Errorf("payload %s, want %s", payload, want)
		}
		// The raw signature is PKCS#1 v1.5 over SHA-256 of header.payload.
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		pub, _ := m.PublicKey(kid)
		sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(pub, 5 /* crypto.SHA256 */, sum[:], sig); err != nil {
			t.Errorf("raw RSA verification: %v", err)
		}
	}
	if _, err := m.SignClaims(map[string]any{"bad": func() {}}, false); err == nil {
		t.Error("SignClaims of unencodable claims succeeded")
	}
}

func b64sha1(der []byte) string {
	s := sha1.Sum(der) //nolint:gosec // x5t.
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func TestVerifyRejects(t *testing.T) {
	st, c := memory.New(), newClock()
	m := newManager(t, st, c, nil)
	other := newManager(t, memory.New(), c, nil)
	good, _ := m.Sign([]byte(`{"a":1}`), false)
	foreign, _ := other.Sign([]byte(`{"a":1}`), false)
	parts := strings.Split(good, ".")
	for _, tc := range []struct {
		name, token, want string
	}{
		{"foreign key", foreign, "is not a published signing key"},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"a":2}`)) + "." + parts[2], "verify token (kid"},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+m.ActiveKeyID()+`"}`)) + "." + parts[1] + ".", "verify token"},
		{"HS256", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"`+m.ActiveKeyID()+`"}`)) + "." + parts[1] + "." + parts[2], "verify token"},
		{"garbage", "a.b", "verify token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Verify(tc.token)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestJWKSShape(t *testing.T) {
	st, c := memory.New(), newClock()
	m := newManager(t, st, c, nil)
	// Publish a second key so the document holds two.
	c.Set(t0.Add(DefaultRotationPeriod - DefaultPrePublish))
	tick(t, m)
	body, etag := m.JWKSWithETag()
	if b2, e2 := m.JWKSWithETag(); &b2[0] != &body[0] || e2 != etag {
		t.Error("JWKS is rebuilt although nothing changed")
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 {
		t.Fatalf("%d keys", len(doc.Keys))
	}
	stored := map[string]store.SigningKey{}
	for _, k := range listKeys(t, st) {
		stored[k.ID] = k
	}
	for _, k := range doc.Keys {
		var fields []string
		for f := range k {
			fields = append(fields, f)
		}
		slices.Sort(fields)
		if want := []string{"alg", "e", "kid", "kty", "n", "use", "x5c", "x5t", "x5t#S256"}; !slices.Equal(fields, want) {
			t.Errorf("fields %v, want %v", fields, want)
		}
		if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" || k["e"] != "AQAB" {
			t.Errorf("kty %v use %v alg %v e %v", k["kty"], k["use"], k["alg"], k["e"])
		}
		x5c := k["x5c"].([]any)
		if len(x5c) != 1 {
			t.Fatalf("x5c has %d certificates", len(x5c))
		}
		der, err := base64.StdEncoding.DecodeString(x5c[0].(string))
		if err != nil {
			t.Fatalf("x5c[0] is not standard base64: %v", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
			t.Errorf("certificate is not self-signed: %v", err)
		}
		pub := cert.PublicKey.(*rsa.PublicKey)
		n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
		if new(big.Int).SetBytes(n).Cmp(pub.N) != 0 || pub.E != 65537 || pub.N.BitLen() != 2048 {
			t.Error("n/e differ from the certificate's key")
		}
		if k["x5t"] != b64sha1(der) {
			t.Errorf("x5t %v is not the SHA-1 of x5c[0]", k["x5t"])
		}
		s256 := sha256.Sum256(der)
		if k["x5t#S256"] != base64.RawURLEncoding.EncodeToString(s256[:]) {
			t.Error("x5t#S256 is not the SHA-256 of x5c[0]")
		}
		kid := k["kid"].(string)
		tp, _ := (&jose.JSONWebKey{Key: pub}).Thumbprint(5 /* crypto.SHA256 */)
		if kid != base64.RawURLEncoding.EncodeToString(tp) || len(kid) != 43 {
			t.Errorf("kid %s is not the RFC 7638 thumbprint", kid)
		}
		if !bytes.Equal(stored[kid].Certificate, der) {
			t.Error("x5c differs from the stored certificate")
		}
		if cert.NotAfter.Before(stored[kid].ExpireAt) || cert.NotBefore.After(stored[kid].PublishAt) {
			t.Errorf("certificate valid %s..%s does not cover the key's life", cert.NotBefore, cert.NotAfter)
		}
	}
	// Golden shape: the document with key material replaced by
	// placeholders, so field names, order and constant values are pinned.
	golden := filepath.Join("testdata", "jwks.golden")
	got := redactJWKS(t, body)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("JWKS shape differs from %s:\n got %s\nwant %s", golden, got, want)
	}
}

// redactJWKS replaces each key's material in a JWKS document with
// placeholders (keeping the document's byte layout).
func redactJWKS(t *testing.T, body []byte) []byte {
	t.Helper()
	var doc jwksJSON
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	out := string(body)
	for i, k := range doc.Keys {
		for field, v := range map[string]string{"kid": k.Kid, "x5t": k.X5t, "x5t#S256": k.X5tS256, "n": k.N, "x5c": k.X5c[0]} {
			out = strings.ReplaceAll(out, `"`+v+`"`, fmt.Sprintf(`"<%s of key %d>"`, field, i))
		}
	}
	return []byte(out + "\n")
}

func TestEncryptionAtRest(t *testing.T) {
	kekA := bytes.Repeat([]byte{0xA5}, 32)
	kekB := bytes.Repeat([]byte{0x5B}, 32)
	mem, c := memory.New(), newClock()
	logs := &logBuffer{}
	m := newManager(t, mem, c, func(o *Options) { o.KEK = kekA; o.Logger = logs.Logger() })
	if strings.Contains(logs.String(), "UNENCRYPTED") {
		t.Error("warned about unencrypted keys although a KEK is configured")
	}
	k := listKeys(t, mem)[0]
	if k.KEKID != KEKID(kekA) || len(k.KEKID) != 12 {
		t.Errorf("KEKID %q, want %q", k.KEKID, KEKID(kekA))
	}
	if _, err := x509.ParsePKCS8PrivateKey(k.PrivateKey); err == nil {
		t.Fatal("the stored private key parses as PKCS#8: it is not sealed")
	}
	if k.PrivateKey[0] != sealVersion {
		t.Errorf("sealed key starts with %d", k.PrivateKey[0])
	}
	tok, err := m.Sign([]byte(`{"s":1}`), false)
	if err != nil {
		t.Fatal(err)
	}
	// The sealed key opens to the PKCS#8 key of the published certificate.
	kk, _ := newKEK(kekA)
	der, err := kk.open(k.ID, k.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(k.PrivateKey, der[len(der)-64:]) {
		t.Error("the sealed bytes contain the key in the clear")
	}
	pub, _ := m.PublicKey(k.ID)
	if !priv.(*rsa.PrivateKey).PublicKey.Equal(pub) {
		t.Error("sealed key does not match the published key")
	}

	t.Run("right KEK", func(t *testing.T) {
		m2 := newManager(t, mem, c, func(o *Options) { o.KEK = kekA })
		if m2.ActiveKeyID() != k.ID {
			t.Errorf("active %s, want %s", m2.ActiveKeyID(), k.ID)
		}
		if _, err := m2.Verify(tok); err != nil {
			t.Error(err)
		}
		if _, err := m2.Sign([]byte(`{}`), true); err != nil {
			t.Error(err)
		}
	})
	for _, tc := range []struct {
		name string
		kek  []byte
		want string
	}{
		{"wrong KEK", kekB, fmt.Sprintf("signing key %s was sealed with key-encryption key %s, but key-encryption key %s is configured", k.ID, KEKID(kekA), KEKID(kekB))},
		{"no KEK", nil, fmt.Sprintf("signing key %s is sealed with key-encryption key %s, but no key-encryption key is configured", k.ID, KEKID(kekA))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewManager(t.Context(), Options{Store: mem, Now: c.Now, KEK: tc.kek})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewManager: %v\nwant an error containing %q", err, tc.want)
			}
			if n := len(listKeys(t, mem)); n != 1 {
				t.Errorf("a failed start left %d keys; it must not create any", n)
			}
		})
	}
	t.Run("tampered", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			mutate func(r *store.SigningKey)
			want   string
		}{
			{"ciphertext", func(r *store.SigningKey) { r.PrivateKey[40] ^= 1 }, "fails authentication with key-encryption key " + KEKID(kekA)},
			{"tag", func(r *store.SigningKey) { r.PrivateKey[len(r.PrivateKey)-1] ^= 1 }, "fails authentication"},
			{"nonce", func(r *store.SigningKey) { r.PrivateKey[3] ^= 1 }, "fails authentication"},
			{"truncated", func(r *store.SigningKey) { r.PrivateKey = r.PrivateKey[:20] }, "the sealed private key is malformed"},
			{"format", func(r *store.SigningKey) { r.PrivateKey[0] = 9 }, "the sealed private key is malformed"},
			{"certificate", func(r *store.SigningKey) { r.Certificate[len(r.Certificate)-1] ^= 1 }, "signing key " + k.ID + ": the certificate is not self-signed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := memory.New()
				r := k
				r.PrivateKey = bytes.Clone(k.PrivateKey)
				r.Certificate = bytes.Clone(k.Certificate)
				tc.mutate(&r)
				if err := st.CreateSigningKey(t.Context(), r); err != nil {
					t.Fatal(err)
				}
				_, err := NewManager(t.Context(), Options{Store: st, Now: c.Now, KEK: kekA})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("NewManager: %v, want an error containing %q", err, tc.want)
				}
			})
		}
	})
	t.Run("sealed key moved to another kid", func(t *testing.T) {
		// A sealed blob is bound to its kid (AEAD additional data).
		st := memory.New()
		other := newManager(t, st, c, func(o *Options) { o.KEK = kekA })
		o := listKeys(t, st)[0]
		if err := st.DeleteSigningKey(t.Context(), o.ID); err != nil {
			t.Fatal(err)
		}
		o.PrivateKey = k.PrivateKey
		if err := st.CreateSigningKey(t.Context(), o); err != nil {
			t.Fatal(err)
		}
		_ = other
		_, err := NewManager(t.Context(), Options{Store: st, Now: c.Now, KEK: kekA})
		if err == nil || !strings.Contains(err.Error(), "fails authentication") {
			t.Fatalf("NewManager: %v", err)
		}
	})
	t.Run("clear keys then a KEK", func(t *testing.T) {
		st := memory.New()
		plain := newManager(t, st, c, nil)
		logs := &logBuffer{}
		sealed := newManager(t, st, c, func(o *Options) { o.KEK = kekA; o.Logger = logs.Logger() })
		if sealed.ActiveKeyID() != plain.ActiveKeyID() {
			t.Error("adding a KEK changed the active key")
		}
		if !strings.Contains(logs.String(), "stored unencrypted although a key-encryption key is configured") {
			t.Errorf("no warning:\n%s", logs)
		}
		c2 := &clock{t: c.Now().Add(DefaultRotationPeriod - DefaultPrePublish)}
		sealed2 := newManager(t, st, c2, func(o *Options) { o.KEK = kekA })
		var kekIDs []string
		for _, r := range listKeys(t, st) {
			kekIDs = append(kekIDs, r.KEKID)
		}
		slices.Sort(kekIDs)
		if !slices.Equal(kekIDs, []string{"", KEKID(kekA)}) {
			t.Errorf("KEK ids %q: the successor must be sealed", kekIDs)
		}
		_ = sealed2
	})
}

func TestRetiredSealedKeyNeedsTheKEK(t *testing.T) {
	// A store whose only key is retired and sealed: a start without its
	// KEK, or with another, fails instead of carrying on with new keys.
	mem, c := memory.New(), newClock()
	kekA, kekB := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	m := newManager(t, mem, c, func(o *Options) { o.KEK = kekA })
	kid := m.ActiveKeyID()
	c.Set(t0.Add(DefaultRotationPeriod + time.Hour))
	st := memory.New()
	if err := st.CreateSigningKey(t.Context(), listKeys(t, mem)[0]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kek  []byte
		want string
	}{
		{nil, "signing key " + kid + " is sealed with key-encryption key " + KEKID(kekA) + ", but no key-encryption key is configured"},
		{kekB, "signing key " + kid + " was sealed with key-encryption key " + KEKID(kekA) + ", but key-encryption key " + KEKID(kekB) + " is configured"},
	} {
		if _, err := NewManager(t.Context(), Options{Store: st, Now: c.Now, KEK: tc.kek}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewManager: %v\nwant %q", err, tc.want)
		}
	}
	if n := len(listKeys(t, st)); n != 1 {
		t.Errorf("failed starts left %d keys", n)
	}
	m2 := newManager(t, st, c, func(o *Options) { o.KEK = kekA })
	if got := jwksKIDs(t, m2); !slices.Contains(got, kid) || len(got) != 2 {
		t.Errorf("JWKS %v: want the retired key and a new active one", got)
	}
}

func TestForeignSealedSuccessorFailsClosed(t *testing.T) {
	// A replica configured with another KEK stored the successor: this
	// replica publishes it but, when it becomes active, refuses to sign
	// with a clear error rather than choosing a key of its own.
	mem, c := memory.New(), newClock()
	kekA, kekB := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	logs := &logBuffer{}
	m := newManager(t, mem, c, func(o *Options) { o.KEK = kekA; o.Logger = logs.Logger() })
	retire := t0.Add(DefaultRotationPeriod)
	c.Set(retire.Add(-DefaultPrePublish))
	other, _ := newKEK(kekB)
	rec, err := newSigningKey(c.Now(), m.schedule(c.Now(), retire, retire.Add(DefaultRotationPeriod)), other)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.CreateSigningKey(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	tick(t, m)
	tick(t, m)
	if n := len(listKeys(t, mem)); n != 2 {
		t.Fatalf("%d keys: the foreign successor must be used as the schedule's successor", n)
	}
	if got := jwksKIDs(t, m); !slices.Contains(got, rec.ID) {
		t.Errorf("JWKS %v lacks the successor", got)
	}
	if n := strings.Count(logs.String(), "cannot use a stored signing key"); n != 1 {
		t.Errorf("logged the unusable key %d times, want once:\n%s", n, logs)
	}
	if got := testutil.ToFloat64(m.metrics.keys.WithLabelValues("unusable")); got != 1 {
		t.Errorf("unusable keys metric %v", got)
	}
	c.Set(retire)
	want := "signing key " + rec.ID + " was sealed with key-encryption key " + KEKID(kekB) + ", but key-encryption key " + KEKID(kekA) + " is configured"
	if _, err := m.Sign([]byte(`{}`), false); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Sign: %v\nwant %q", err, want)
	}
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Ready: %v\nwant %q", err, want)
	}
	c.Set(retire.Add(-time.Second))
	if err := m.Ready(); err != nil {
		t.Errorf("Ready before the switch: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	st := memory.New()
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"no store", Options{}, []string{"Store is required"}},
		{"short rotation", Options{Store: st, RotationPeriod: time.Minute, PrePublish: 2 * time.Second}, []string{"rotation period 1m0s is too short", "pre-publication period 2s must be at least 4s"}},
		{"pre-publish too long", Options{Store: st, RotationPeriod: 24 * time.Hour, PrePublish: 24 * time.Hour}, []string{"shorter than the rotation period 24h0m0s"}},
		{"reload too slow", Options{Store: st, PrePublish: time.Hour, ReloadInterval: 20 * time.Minute}, []string{"reload interval 20m0s must be positive and at most a quarter"}},
		{"negative lifetime", Options{Store: st, MaxTokenLifetime: -time.Hour}, []string{"maximum token lifetime -1h0m0s must be positive"}},
		{"short KEK", Options{Store: st, KEK: []byte("short")}, []string{"key-encryption key has 5 bytes; it must have 32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewManager(t.Context(), tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if n := len(listKeys(t, st)); n != 0 {
		t.Errorf("invalid options created %d keys", n)
	}
}

// failingStore fails ListSigningKeys on demand (a store outage; the
// memory store cannot be made to fail).
type failingStore struct {
	store.KeyStore
	mu   sync.Mutex
	fail bool
}

func (f *failingStore) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, errors.New("connection refused")
	}
	return f.KeyStore.ListSigningKeys(ctx)
}

func TestStoreOutageKeepsServing(t *testing.T) {
	fs := &failingStore{KeyStore: memory.New()}
	c := newClock()
	reg := prometheus.NewPedanticRegistry()
	m := newManager(t, fs, c, func(o *Options) { o.Registerer = reg })
	active := m.ActiveKeyID()
	fs.mu.Lock()
	fs.fail = true
	fs.mu.Unlock()
	c.Add(time.Hour)
	if err := m.Tick(t.Context()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Tick during an outage: %v", err)
	}
	if m.ActiveKeyID() != active {
		t.Error("an outage changed the active key")
	}
	if _, err := m.Sign([]byte(`{}`), false); err != nil {
		t.Errorf("Sign during an outage: %v", err)
	}
	if got := testutil.ToFloat64(m.metrics.tickFailures); got != 1 {
		t.Errorf("failures metric %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.keys.WithLabelValues("active")); got != 1 {
		t.Errorf("active keys metric %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.created.WithLabelValues("first")); got != 1 {
		t.Errorf("created{first} metric %v", got)
	}
	if got := testutil.ToFloat64(m.metrics.nextRotation); got != float64(t0.Add(DefaultRotationPeriod).Unix()) {
		t.Errorf("retire timestamp metric %v", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(""), "wif_signing_keys"); err == nil {
		t.Error("metrics not registered")
	}
	if _, err := NewManager(t.Context(), Options{Store: memory.New(), Registerer: reg}); err == nil {
		t.Error("a second Manager on one Registerer must fail")
	}
}

func TestRunStopsWithContext(t *testing.T) {
	m := newManager(t, memory.New(), newClock(), func(o *Options) { o.ReloadInterval = time.Millisecond; o.PrePublish = time.Hour })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestExpiredBrokenKeyIsDeletedNotFatal(t *testing.T) {
	mem, c := memory.New(), newClock()
	m := newManager(t, mem, c, nil)
	// A long-expired record whose certificate is garbage.
	old := listKeys(t, mem)[0]
	old.ID = "broken"
	old.Certificate = []byte("garbage")
	old.PublishAt, old.ActivateAt, old.RetireAt, old.ExpireAt = t0.Add(-90*24*time.Hour), t0.Add(-90*24*time.Hour), t0.Add(-60*24*time.Hour), t0.Add(-59*24*time.Hour)
	if err := mem.CreateSigningKey(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t, mem, c, nil)
	if m2.ActiveKeyID() != m.ActiveKeyID() {
		t.Error("active key changed")
	}
	if ks := listKeys(t, mem); len(ks) != 1 || ks[0].ID != m.ActiveKeyID() {
		t.Errorf("store holds %v; the expired record must be deleted", ids(ks))
	}
	// An unexpired broken record blocks start-up with its kid named.
	old.ID, old.RetireAt, old.ExpireAt = "broken2", t0.Add(time.Hour), t0.Add(48*time.Hour)
	if err := mem.CreateSigningKey(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(t.Context(), Options{Store: mem, Now: c.Now}); err == nil || !strings.Contains(err.Error(), "signing key broken2: certificate") {
		t.Errorf("NewManager: %v", err)
	}
}

func TestLongerMaxTokenLifetimeKeepsKeysLonger(t *testing.T) {
	mem, c := memory.New(), newClock()
	m := newManager(t, mem, c, func(o *Options) { o.MaxTokenLifetime = time.Hour })
	first := m.ActiveKeyID()
	retire := t0.Add(DefaultRotationPeriod)
	c.Set(retire.Add(-DefaultPrePublish))
	tick(t, m)
	// Restarted with a 24 h maximum: the first key, created under 1 h,
	// stays published 24 h + margin after it retires.
	m2 := newManager(t, mem, c, func(o *Options) { o.MaxTokenLifetime = 24 * time.Hour })
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{retire.Add(2*time.Hour + time.Minute), true}, // past its stored ExpireAt
		{retire.Add(25*time.Hour - time.Second), true},
		{retire.Add(25 * time.Hour), false},
	} {
		c.Set(tc.at)
		tick(t, m2)
		if _, ok := m2.PublicKey(first); ok != tc.want {
			t.Errorf("at retire+%s published %v, want %v", tc.at.Sub(retire), ok, tc.want)
		}
	}
}

func TestSignDuringRotation(t *testing.T) {
	// Signers never see a half-installed key set while maintenance
	// rotates (run with -race).
	mem, c := memory.New(), newClock()
	m := newManager(t, mem, c, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tokens := make(chan string, 1024)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := m.Sign([]byte(`{}`), true)
				if err != nil {
					t.Error(err)
					return
				}
				select {
				case tokens <- tok:
				default:
				}
			}
		})
	}
	for now := t0; now.Before(t0.Add(3 * DefaultRotationPeriod)); now = now.Add(12 * time.Hour) {
		c.Set(now)
		tick(t, m)
		_ = m.JWKS()
	}
	close(stop)
	wg.Wait()
	close(tokens)
	seen := map[string]bool{}
	for tok := range tokens {
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		seen[jws.Signatures[0].Header.KeyID] = true
	}
	if len(seen) == 0 {
		t.Error("no token signed")
	}
}
