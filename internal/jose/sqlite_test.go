package jose

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/store/sqlite"
)

// openSQLite opens a handle on the SQLite file at path, closed at the end
// of the test.
func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSQLiteRestartSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wif.db")
	kek := bytes.Repeat([]byte{0x42}, 32)
	c := newClock()
	s1 := openSQLite(t, path)
	m1 := newManager(t, s1, c, func(o *Options) { o.KEK = kek })
	tok, err := m1.Sign([]byte(`{"a":1}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openSQLite(t, path)
	ks := listKeys(t, s2)
	if len(ks) != 1 || ks[0].KEKID != KEKID(kek) || !ks[0].ActivateAt.Equal(t0) {
		t.Fatalf("stored keys after reopening: %d, KEKID %q", len(ks), ks[0].KEKID)
	}
	if _, err := NewManager(t.Context(), Options{Store: s2, Now: c.Now}); err == nil || !strings.Contains(err.Error(), "but no key-encryption key is configured") {
		t.Fatalf("reopening without the KEK: %v", err)
	}
	m2 := newManager(t, s2, c, func(o *Options) { o.KEK = kek })
	if m2.ActiveKeyID() != m1.ActiveKeyID() {
		t.Errorf("restart signs with %s, want %s", m2.ActiveKeyID(), m1.ActiveKeyID())
	}
	if _, err := m2.Verify(tok); err != nil {
		t.Errorf("a token signed before the restart: %v", err)
	}
	if n := len(listKeys(t, s2)); n != 1 {
		t.Errorf("%d keys after restart", n)
	}
}

func TestSQLiteReplicas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wif.db")
	// Two handles on one file, as two processes would have.
	testReplicas(t, openSQLite(t, path), openSQLite(t, path))
}
