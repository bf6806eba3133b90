package jose

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"testing"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/store/memory"
)

func states(t *testing.T, m *Manager) map[string]string {
	t.Helper()
	ks, err := m.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range ks {
		out[k.KeyID] = k.State
	}
	return out
}

func TestRotateRetireAndRewrap(t *testing.T) {
	c := newClock()
	mem := memory.New()
	kekA, kekB := testKEK(1), testKEK(2)
	m := newManager(t, mem, c, func(o *Options) { o.KEK = kekA })
	first := m.ActiveKeyID()
	oldTok, err := m.Sign([]byte(`{}`), false)
	if err != nil {
		t.Fatal(err)
	}

	// A rotation: the next key is published now and signs after PrePublish.
	c.Add(time.Hour)
	next, err := m.Rotate(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	if next.State != StateNext || !next.PublishedSince.Equal(c.Now()) || !next.SignsFrom.Equal(c.Now().Add(DefaultPrePublish)) || m.ActiveKeyID() != first {
		t.Fatalf("after rotate: %+v, active %s", next, m.ActiveKeyID())
	}
	if !slices.Contains(jwksKIDs(t, m), next.KeyID) {
		t.Fatal("the next key is not published")
	}
	if _, err := m.Rotate(t.Context(), false); !errors.Is(err, ErrRotationPending) {
		t.Fatalf("a second rotation: %v, want ErrRotationPending", err)
	}
	c.Set(next.SignsFrom)
	tick(t, m)
	if m.ActiveKeyID() != next.KeyID || states(t, m)[first] != StateRetiring {
		t.Fatalf("after the switch: active %s, states %v", m.ActiveKeyID(), states(t, m))
	}

	// An emergency rotation: the new key signs at once.
	c.Add(time.Hour)
	now, err := m.Rotate(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if now.State != StateActive || m.ActiveKeyID() != now.KeyID || states(t, m)[next.KeyID] != StateRetiring {
		t.Fatalf("after rotate --now: %+v, states %v", now, states(t, m))
	}
	tok, _ := m.Sign([]byte(`{}`), false)
	if _, err := m.Verify(tok); err != nil {
		t.Fatal(err)
	}

	// Retire: not the active key; the first key's tokens are then refused.
	if _, err := m.Retire(t.Context(), now.KeyID); !errors.Is(err, ErrRetireActive) {
		t.Fatalf("retire the active key: %v", err)
	}
	if _, err := m.Verify(oldTok); err != nil {
		t.Fatalf("a token of the retiring key before retire: %v", err)
	}
	ret, err := m.Retire(t.Context(), first)
	if err != nil || ret.State != StateRetired || ret.RetiredAt.IsZero() {
		t.Fatalf("retire: %+v %v", ret, err)
	}
	if _, err := m.Verify(oldTok); err == nil {
		t.Fatal("a token of a retired key still verifies")
	}
	if slices.Contains(jwksKIDs(t, m), first) {
		t.Fatal("a retired key is still published")
	}
	for _, k := range listKeys(t, mem) {
		if k.ID == first && (len(k.PrivateKey) != 0 || k.KEKID != "") {
			t.Fatal("a retired key keeps its private key")
		}
	}
	c.Add(RetainRetired + time.Minute)
	tick(t, m)
	if _, ok := states(t, m)[first]; ok {
		t.Fatal("a retired key's record outlived RetainRetired")
	}

	// Rewrap to a new key-encryption key: replicas run with both, then the
	// old one goes.
	m2 := newManager(t, mem, c, func(o *Options) { o.KEK, o.PreviousKEKs = kekB, [][]byte{kekA} })
	if _, err := m2.Rewrap(t.Context(), KEKID(kekA)); !errors.Is(err, ErrKEKMismatch) {
		t.Fatalf("rewrap naming the old key: %v", err)
	}
	res, err := m2.Rewrap(t.Context(), KEKID(kekB))
	if err != nil || len(res.Rewrapped) == 0 || res.SealedWith != KEKID(kekB) {
		t.Fatalf("rewrap: %+v %v", res, err)
	}
	for _, k := range listKeys(t, mem) {
		if len(k.PrivateKey) > 0 && k.KEKID != KEKID(kekB) {
			t.Fatalf("key %s still sealed with %s", k.ID, k.KEKID)
		}
	}
	onlyB := newManager(t, mem, c, func(o *Options) { o.KEK = kekB })
	if onlyB.ActiveKeyID() != m2.ActiveKeyID() {
		t.Fatal("after the rewrap a replica with only the new key signs with another key")
	}
	if _, err := onlyB.Sign([]byte(`{}`), false); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(t.Context(), Options{Store: mem, Now: c.Now, KEK: kekA}); err == nil {
		t.Fatal("after the rewrap the old key-encryption key still opens the keys")
	}
	if _, err := (newManager(t, memory.New(), c, nil)).Rewrap(t.Context(), ""); !errors.Is(err, ErrNoKEK) {
		t.Fatalf("rewrap without a key-encryption key: %v", err)
	}
}

// TestUnknownKidRefreshesAtOnce: a token signed by a key another replica
// created a moment ago verifies here without waiting for a refresh.
func TestUnknownKidRefreshesAtOnce(t *testing.T) {
	c := newClock()
	mem := memory.New()
	a := newManager(t, mem, c, nil)
	b := newManager(t, mem, c, nil)
	k, err := a.Rotate(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Sign([]byte(`{}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(jwksKIDs(t, b), k.KeyID) {
		t.Fatal("replica b already knew the key: the test proves nothing")
	}
	if _, err := b.Verify(tok); err != nil {
		t.Fatalf("replica b refuses a token of the key replica a just created: %v", err)
	}
	if !slices.Contains(jwksKIDs(t, b), k.KeyID) {
		t.Error("replica b does not publish the key it reloaded")
	}
	// A flood of unknown kids reloads at most once a second.
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	signer, _ := gojose.NewSigner(gojose.SigningKey{Algorithm: gojose.RS256, Key: priv}, (&gojose.SignerOptions{}).WithHeader("kid", "no-such-kid"))
	jws, _ := signer.Sign([]byte(`{}`))
	unknown, _ := jws.CompactSerialize()
	before := b.lastOnDemand.Load()
	for range 100 {
		if _, err := b.Verify(unknown); err == nil {
			t.Fatal("a token of an unknown key verified")
		}
	}
	if b.lastOnDemand.Load() != before {
		t.Error("unknown kids reloaded again within a second")
	}
}

func testKEK(b byte) []byte {
	k := make([]byte, KEKSize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}
