package memory_test

import (
	"testing"

	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/store/storetest"
)

func newStore(t *testing.T) store.Store {
	s := memory.New()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t, newStore)
}

func TestConcurrency(t *testing.T) {
	storetest.RunConcurrencyTests(t, newStore)
}

func BenchmarkSnapshot(b *testing.B) {
	storetest.BenchSnapshot(b, memory.New(), 1000)
}

func BenchmarkAppendAudit(b *testing.B) {
	storetest.BenchAppendAudit(b, memory.New(), 100)
}
