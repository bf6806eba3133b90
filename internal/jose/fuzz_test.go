package jose

import (
	"testing"

	"github.com/wif-project/wif/internal/store/memory"
)

// FuzzVerify feeds arbitrary tokens to Verify: it must never panic and
// never accept anything but a token signed by the manager's key.
func FuzzVerify(f *testing.F) {
	c := newClock()
	m, err := NewManager(f.Context(), Options{Store: memory.New(), Now: c.Now})
	if err != nil {
		f.Fatal(err)
	}
	good, err := m.Sign([]byte(`{"aud":"x"}`), true)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		payload, err := m.Verify(token)
		if err == nil && token != good && string(payload) != `{"aud":"x"}` {
			t.Fatalf("accepted a token the manager did not sign: %q", token)
		}
	})
}
