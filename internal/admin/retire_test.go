package admin

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
)

func setOf(kids ...string) string {
	var keys []json.RawMessage
	for _, k := range kids {
		keys = append(keys, json.RawMessage(fmt.Sprintf(`{"kid":%q,"kty":"RSA"}`, k)))
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return string(b)
}

func retiredKIDs(rs []directory.RetiredKey) []string {
	var out []string
	for _, r := range rs {
		var h struct {
			KID string `json:"kid"`
		}
		_ = json.Unmarshal(r.Key, &h)
		out = append(out, h.KID)
	}
	return out
}

// What a push keeps verifying: keys it drops, until the overlap ends;
// not keys it brings back; never more than MaxRetiredKeys.
func TestRetire(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ti := &directory.TrustedIssuer{JWKS: setOf("a", "b"), KeyOverlapSeconds: 600}
	got := retire(ti, setOf("b", "c"), now)
	if k := retiredKIDs(got); len(k) != 1 || k[0] != "a" || !got[0].Until.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("after dropping a: %v %v", k, got)
	}
	ti.JWKS, ti.RetiredKeys = setOf("b", "c"), got
	// a comes back: no longer retired.
	if got := retire(ti, setOf("a", "b", "c"), now.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("a key pushed again stays retired: %v", retiredKIDs(got))
	}
	// The overlap ends: dropped at the next push.
	if got := retire(ti, setOf("b", "c"), now.Add(11*time.Minute)); len(got) != 0 {
		t.Fatalf("an expired key is kept: %v", retiredKIDs(got))
	}
	// Bounded.
	ti.RetiredKeys = nil
	for i := range 3 * directory.MaxRetiredKeys {
		next := setOf(fmt.Sprint("k", i))
		ti.RetiredKeys = retire(ti, next, now.Add(time.Duration(i)*time.Second))
		ti.JWKS = next
	}
	if n := len(ti.RetiredKeys); n != directory.MaxRetiredKeys {
		t.Fatalf("%d retired keys kept, want %d", n, directory.MaxRetiredKeys)
	}
	if k := retiredKIDs(ti.RetiredKeys); k[len(k)-1] != fmt.Sprint("k", 3*directory.MaxRetiredKeys-2) {
		t.Fatalf("the newest retired key is not kept: %v", k)
	}
}
