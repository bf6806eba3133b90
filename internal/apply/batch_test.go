package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/memory"
	"github.com/wif-project/wif/internal/store/postgres"
	"github.com/wif-project/wif/internal/store/sqlite"
)

func openSQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wif.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// failOn is a real store whose CreateManagedIdentity fails for one name,
// as a write refused by the store mid-apply would (a constraint raced by
// another writer): it tests what a batch does when one change fails.
type failOn struct {
	*sqlite.Store
	name string
}

var errInjected = errors.New("refused by the store")

func (s failOn) CreateManagedIdentity(ctx context.Context, m directory.ManagedIdentity) (directory.ManagedIdentity, error) {
	if m.Name == s.name {
		return directory.ManagedIdentity{}, errInjected
	}
	return s.Store.CreateManagedIdentity(ctx, m)
}

// TestBatchedApplyMatchesChangeByChange: the same document applied in
// batches (SQLite) and change by change (memory, which cannot batch) gives
// the same directory, and a refused change keeps those before it, reports
// it, and stops, as the change-by-change apply does.
func TestBatchedApplyMatchesChangeByChange(t *testing.T) {
	ctx := context.Background()
	doc, err := Parse(strings.NewReader(bigDoc(120)))
	if err != nil {
		t.Fatal(err)
	}
	sq, mem := openSQLite(t), memory.New()
	for _, s := range []store.DirectoryStore{sq, mem} {
		res, err := Apply(ctx, s, doc, Options{BatchSize: 50})
		if err != nil || res.Applied != len(res.Plan.Changes) {
			t.Fatalf("%T: %d of %d applied: %v", s, res.Applied, len(res.Plan.Changes), err)
		}
	}
	export := func(s store.DirectoryStore) string {
		d, err := Export(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		y, _ := d.Marshal()
		// Generated ids differ from store to store; everything else may not.
		return regexp.MustCompile(`(?m)^(\s*-?\s*(clientId|principalId|objectId|servicePrincipalId|appId|id): ).*$`).ReplaceAllString(string(y), "$1<id>")
	}
	if a, b := export(sq), export(mem); a != b {
		t.Fatalf("batched and change-by-change applies differ:\n%s\n---\n%s", a, b)
	}
	if p, err := MakePlan(ctx, sq, doc, Options{}); err != nil || !p.Empty() {
		t.Fatalf("re-plan after the batched apply: %v, %d changes", err, len(p.Changes))
	}

	// A change refused in the middle of a batch.
	f := failOn{Store: openSQLite(t), name: "mi-0070"}
	res, err := Apply(ctx, f, doc, Options{BatchSize: 50})
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "mi-0070") {
		t.Fatalf("apply with a refused change: %v", err)
	}
	mis, _ := f.ListManagedIdentities(ctx, "72f988bf-86f1-41af-91ab-2d7cd011db47", store.IdentityFilter{})
	// Changes are tenant, application, then identities in order: the ones
	// before mi-0070 are kept, it and those after are not.
	if len(mis) != 70 || res.Applied != 72 {
		t.Fatalf("after a refused change: %d identities stored, %d changes applied; want 70 and 72", len(mis), res.Applied)
	}
}

// BenchmarkApply1000 applies 1,000 identities with a credential each (and
// their tenant) to an empty store, in batches: objects written per second.
func BenchmarkApply1000(b *testing.B) {
	var src strings.Builder
	src.WriteString("tenants:\n- id: 72f988bf-86f1-41af-91ab-2d7cd011db47\n  displayName: bench\n  managedIdentities:\n")
	for i := range 1000 {
		fmt.Fprintf(&src, "  - name: mi-%04d\n    resourceGroup: rg\n    federatedCredentials:\n    - {name: k8s, issuer: https://k8s.example, subject: \"system:serviceaccount:ns:sa-%d\"}\n", i, i)
	}
	doc, err := Parse(strings.NewReader(src.String()))
	if err != nil {
		b.Fatal(err)
	}
	stores := map[string]func(b *testing.B) store.DirectoryStore{
		"sqlite": func(b *testing.B) store.DirectoryStore { return openSQLite(b) },
	}
	sizes := map[string]int{"batched": 0, "one-per-transaction": 1}
	if dsn := postgresURL(); dsn != "" {
		stores["postgres"] = func(b *testing.B) store.DirectoryStore {
			schema := fmt.Sprintf("apply_bench_%d", time.Now().UnixNano())
			st, err := postgres.Open(context.Background(), dsn, postgres.Options{Schema: schema})
			if err != nil {
				b.Skipf("no PostgreSQL: %v", err)
			}
			b.Cleanup(func() {
				_, _ = st.Pool().Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
				st.Close()
			})
			return st
		}
	}
	for name, open := range stores {
		for mode, size := range sizes {
			b.Run(name+"/"+mode, func(b *testing.B) {
				var objects int
				var elapsed time.Duration
				for b.Loop() {
					b.StopTimer()
					s := open(b)
					b.StartTimer()
					start := time.Now()
					res, err := Apply(context.Background(), s, doc, Options{BatchSize: size})
					if err != nil {
						b.Fatal(err)
					}
					elapsed += time.Since(start)
					objects += res.Applied
				}
				b.ReportMetric(float64(objects)/elapsed.Seconds(), "objects/s")
			})
		}
	}
}

func postgresURL() string {
	if u := os.Getenv("WIF_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}
