package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/storetest"
)

func openTemp(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "wif.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t *testing.T) store.Store { return openTemp(t, Options{}) }

func TestConformance(t *testing.T) {
	storetest.RunTests(t, newStore)
}

func TestConcurrency(t *testing.T) {
	storetest.RunConcurrencyTests(t, newStore)
}
