package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/internal/sqlbase"
	"github.com/wif-project/wif/internal/store/storetest"
)

// defaultDSN is the PostgreSQL server these tests expect (trust auth on
// loopback); WIF_TEST_POSTGRES_URL overrides it.
const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// serverDSN returns a DSN that connects, trying the postgres user and then
// root. Without a server the test is skipped, unless CI=true, where a
// missing server is a failure.
func serverDSN(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("WIF_TEST_POSTGRES_URL")}
	if candidates[0] == "" {
		candidates[0] = os.Getenv("WIF_TEST_POSTGRES_DSN") // the old name
	}
	if candidates[0] == "" {
		root := mustParse(t, defaultDSN)
		root.User = url.User("root")
		candidates = []string{defaultDSN, root.String()}
	}
	var errs []error
	for _, dsn := range candidates {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return dsn
		}
		errs = append(errs, err)
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL unreachable (CI=true requires it): %v", errors.Join(errs...))
	}
	t.Skipf("PostgreSQL unreachable, skipping (set WIF_TEST_POSTGRES_URL): %v", errors.Join(errs...))
	return ""
}

func mustParse(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// freshSchema creates an empty schema of a random name and drops it (with
// everything in it) when the test ends.
func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "wif_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func openIn(t testing.TB, dsn, schema string, opts Options) *Store {
	t.Helper()
	opts.Schema = schema
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t *testing.T) store.Store {
	dsn := serverDSN(t)
	return openIn(t, dsn, freshSchema(t, dsn), Options{})
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t, newStore)
}

func TestConcurrency(t *testing.T) {
	storetest.RunConcurrencyTests(t, newStore)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestReplicasShareLimits runs two stores (two replicas, two pools) on one
// database and races credential creates through both: the 20-per-parent
// rule and compare-and-swap updates must hold across them.
func TestReplicasShareLimits(t *testing.T) {
	dsn := serverDSN(t)
	schema := freshSchema(t, dsn)
	a := openIn(t, dsn, schema, Options{})
	b := openIn(t, dsn, schema, Options{})
	ctx := ctxT(t)
	ten, err := a.CreateTenant(ctx, directory.Tenant{ID: directory.NewID(), DisplayName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	mi, err := b.CreateManagedIdentity(ctx, directory.ManagedIdentity{
		TenantID: ten.ID, SubscriptionID: directory.NewID(), ResourceGroup: "rg", Name: "shared",
		ClientID: directory.NewID(), PrincipalID: directory.NewID(), Tags: map[string]string{"n": "0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := store.IdentityRef{SubscriptionID: mi.SubscriptionID, ResourceGroup: mi.ResourceGroup, Name: mi.Name}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 30 {
		s := []store.Store{a, b}[i%2]
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.CreateFederatedCredential(ctx, directory.FederatedCredential{
				TenantID: ten.ID, ParentKind: directory.ParentManagedIdentity, ParentClientID: mi.ClientID, ID: directory.NewID(),
				Name: fmt.Sprintf("cred-%02d", i), Issuer: "https://issuer.example", Subject: fmt.Sprint("sub-", i), Audiences: []string{directory.DefaultAudience},
			})
			switch {
			case err == nil:
				mu.Lock()
				ok++
				mu.Unlock()
			case !errors.Is(err, directory.ErrInvalid):
				t.Errorf("create: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := s.UpdateManagedIdentity(ctx, ten.ID, ref, func(m *directory.ManagedIdentity) error {
				var n int
				fmt.Sscan(m.Tags["n"], &n)
				m.Tags["n"] = fmt.Sprint(n + 1)
				return nil
			})
			if err != nil {
				t.Errorf("update: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != directory.MaxCredentialsPerParent {
		t.Errorf("%d creates succeeded across two replicas, want %d", ok, directory.MaxCredentialsPerParent)
	}
	got, err := a.GetManagedIdentity(ctx, ten.ID, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tags["n"] != "30" || got.Version != 31 {
		t.Errorf("after 30 increments across two replicas: n=%s version=%d", got.Tags["n"], got.Version)
	}
	ra, _ := a.Revision(ctx)
	rb, _ := b.Revision(ctx)
	if ra != rb || ra != 2+20+30 {
		t.Errorf("revisions %d and %d, want both %d", ra, rb, 2+20+30)
	}
}

func schemaVersions(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.Pool().Query(ctxT(t), `SELECT version, name, applied_us FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var name string
		var at int64
		if err := rows.Scan(&v, &name, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d_%s@%d", v, name, at))
	}
	return out
}

func indexExists(t *testing.T, s *Store, name string) bool {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(ctxT(t), `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func migrationCount(t *testing.T) int {
	t.Helper()
	ms, err := sqlbase.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// TestMigratesOldSchema opens a schema written at every earlier version
// (the first released one among them) and upgrades it.
func TestMigratesOldSchema(t *testing.T) {
	dsn := serverDSN(t)
	latest := migrationCount(t)
	for from := 1; from < latest; from++ {
		t.Run(fmt.Sprintf("from version %d", from), func(t *testing.T) {
			schema := freshSchema(t, dsn)
			ctx := ctxT(t)
			old := openIn(t, dsn, schema, Options{migrateTo: from})
			v1 := schemaVersions(t, old)
			if len(v1) != from {
				t.Fatalf("version-%d schema: versions %v", from, v1)
			}
			ten, err := old.CreateTenant(ctx, directory.Tenant{ID: directory.NewID(), DisplayName: "kept"})
			if err != nil {
				t.Fatal(err)
			}
			// An audit row as version 1 wrote it (its columns only).
			if _, err := old.Pool().Exec(ctx, `INSERT INTO audit_log (id, time_us, tenant_id, client_id, credential_name, grant_type, resource,
				issuer, subject, jti_hash, result, error_code, error, correlation_id, remote_addr) VALUES ($1, $2, $3, '', '', '', '', '', '', '', $4, 0, '', 'corr-old', '')`,
				directory.NewID(), time.Now().UnixMicro(), ten.ID, store.AuditSuccess); err != nil {
				t.Fatal(err)
			}
			old.Close()

			s := openIn(t, dsn, schema, Options{})
			versions := schemaVersions(t, s)
			if len(versions) != latest || versions[0] != v1[0] {
				t.Fatalf("versions after upgrade: %v (version 1 was %v)", versions, v1)
			}
			for _, idx := range []string{"audit_log_tenant_time", "audit_log_client_time", "audit_log_correlation"} {
				if !indexExists(t, s, idx) {
					t.Errorf("upgrade did not create index %s", idx)
				}
			}
			if got, err := s.GetTenant(ctx, ten.ID); err != nil || got != ten {
				t.Errorf("tenant after upgrade: %+v %v", got, err)
			}
			if page, err := s.ListAudit(ctx, store.AuditFilter{TenantID: ten.ID, CorrelationID: "corr-old"}); err != nil || len(page.Records) != 1 || page.Records[0].Reason != "" {
				t.Errorf("audit after upgrade: %+v %v", page, err)
			}
			if err := s.AppendAudit(ctx, []store.AuditRecord{{TenantID: ten.ID, Result: store.AuditFailure, CorrelationID: "corr-new", Reason: "why", Diagnosis: "{}"}}); err != nil {
				t.Fatal(err)
			}
			if page, err := s.ListAudit(ctx, store.AuditFilter{CorrelationID: "corr-new"}); err != nil || len(page.Records) != 1 || page.Records[0].Reason != "why" {
				t.Errorf("new audit fields: %+v %v", page, err)
			}
			s.Close()
			again := openIn(t, dsn, schema, Options{})
			if v := schemaVersions(t, again); fmt.Sprint(v) != fmt.Sprint(versions) {
				t.Errorf("versions after reopening: %v, want %v", v, versions)
			}
		})
	}
}

// TestConcurrentOpenMigratesOnce opens several stores on an empty schema at
// once, as replicas starting together do.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := serverDSN(t)
	schema := freshSchema(t, dsn)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(ctxT(t), dsn, Options{Schema: schema})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	if v := schemaVersions(t, stores[0]); len(v) != migrationCount(t) {
		t.Errorf("schema versions %v", v)
	}
}

func TestOpenCreatesSchema(t *testing.T) {
	dsn := serverDSN(t)
	schema := freshSchema(t, dsn) + "_new"
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			_ = conn.Close(context.Background())
		}
	})
	s := openIn(t, dsn, schema, Options{})
	if _, err := s.CreateTenant(ctxT(t), directory.Tenant{ID: directory.NewID(), DisplayName: "t"}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Pool().QueryRow(ctxT(t), `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'tenants'`, schema).Scan(&n); err != nil || n != 1 {
		t.Errorf("tenants table in schema %s: %d (%v)", schema, n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := ctxT(t)
	if _, err := Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable", Options{ConnectTimeout: 2 * time.Second}); err == nil {
		t.Error("Open of a closed port succeeded")
	}
	if _, err := Open(ctx, "postgres://%zz", Options{}); err == nil {
		t.Error("Open of a malformed URL succeeded")
	}
}
