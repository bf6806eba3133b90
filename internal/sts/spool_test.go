package sts_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/sqlite"
	"github.com/wif-project/wif/internal/wiftest"
)

// outageStore is a real SQLite store whose audit appends fail, as a
// PostgreSQL connection refused would, while down is set. (The fault suite
// in test/faults stops a real PostgreSQL cluster; this injects the same
// failure into one process's tests, where the directory must stay
// readable to issue tokens at all.)
type outageStore struct {
	store.Store
	down      atomic.Bool // audit appends fail
	readsDown atomic.Bool // directory reads fail too
}

func (s *outageStore) Revision(ctx context.Context) (int64, error) {
	if s.readsDown.Load() {
		return 0, fmt.Errorf("postgres: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	}
	return s.Store.Revision(ctx)
}

func (s *outageStore) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if s.down.Load() {
		return fmt.Errorf("postgres: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	}
	return s.Store.AppendAudit(ctx, recs)
}

func openSQLite(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestAuditSurvivesAStoreOutage: exchanges answered while the store takes
// no audit records are spooled and written, in order and once each, when it
// is back — also by a replica restarted during the outage.
func TestAuditSurvivesAStoreOutage(t *testing.T) {
	dir := t.TempDir()
	dbPath, spoolDir := filepath.Join(dir, "wif.db"), filepath.Join(dir, "spool")
	st := &outageStore{Store: openSQLite(t, dbPath)}
	tenant := directory.NewID()
	ctx, cancel := context.WithCancel(context.Background())
	env := wiftest.Start(t, wiftest.WithStore(st), wiftest.WithTenantID(tenant), wiftest.WithAuditSpool(spoolDir, 0), wiftest.WithAuditEveryExchange())
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 1)
	exchange := func(env *wiftest.Env, corr string) {
		t.Helper()
		form := wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), "api://provider-api/.default")
		form.Set("client-request-id", corr)
		if r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", form); r.Status != 200 {
			t.Fatalf("exchange %s during the outage: %d %s", corr, r.Status, r.Raw)
		}
	}
	st.down.Store(true)
	for i := range 30 {
		exchange(env, fmt.Sprintf("outage-%03d", i))
	}
	if err := env.Server.STS.FlushAudit(ctx); err == nil {
		t.Fatal("flushing during the outage reported nothing spooled")
	}
	st.down.Store(false)
	if err := env.Server.STS.FlushAudit(ctx); err != nil {
		t.Fatalf("flush after the outage: %v", err)
	}
	check := func(want int) {
		t.Helper()
		page, err := st.ListAudit(ctx, store.AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		var order []string
		for i := len(page.Records) - 1; i >= 0; i-- { // oldest first
			r := page.Records[i]
			if r.Result == store.AuditSuccess {
				seen[r.CorrelationID]++
				order = append(order, r.CorrelationID)
			}
		}
		if len(order) != want {
			t.Fatalf("%d exchanges audited, want %d", len(order), want)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("exchange %s audited %d times", id, n)
			}
		}
		for i := 1; i < len(order); i++ {
			if order[i] < order[i-1] {
				t.Fatalf("audit out of order: %s after %s", order[i], order[i-1])
			}
		}
	}
	check(30)

	// A replica restarted during an outage: it spools, stops (its spool
	// stays on disk), and the next run on the same spool replays it.
	st.down.Store(true)
	for i := range 10 {
		exchange(env, fmt.Sprintf("outage-%03d", 100+i))
	}
	env.Stop(t)
	st.down.Store(false)
	env2 := wiftest.Start(t, wiftest.WithStore(st), wiftest.WithTenantID(tenant), wiftest.WithAuditSpool(spoolDir, 0), wiftest.WithAuditEveryExchange())
	if err := env2.Server.STS.FlushAudit(ctx); err != nil {
		t.Fatalf("flush after a restart: %v", err)
	}
	check(40)
	cancel()
}

// TestSpoolFull: a full spool drops and counts, or, with refuse-when-full,
// the token endpoint refuses with 503 and Retry-After until it drains.
func TestSpoolFull(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse=%v", refuse), func(t *testing.T) {
			st := &outageStore{Store: openSQLite(t, filepath.Join(t.TempDir(), "wif.db"))}
			opts := []wiftest.Option{wiftest.WithStore(st), wiftest.WithAuditSpool(filepath.Join(t.TempDir(), "spool"), 4096)}
			if refuse {
				opts = append(opts, wiftest.WithAuditRefuseWhenFull())
			}
			env := wiftest.Start(t, opts...)
			mi := env.CreateManagedIdentity(t, "demo")
			env.CreateResourceApp(t, "api://provider-api", 1)
			st.down.Store(true)
			refused := 0
			for i := 0; i < 40; i++ {
				form := wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), "api://provider-api/.default")
				r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", form)
				switch {
				case r.Status == 503 && r.Header.Get("Retry-After") != "" && r.Body["error"] == "temporarily_unavailable":
					refused++
				case r.Status != 200:
					t.Fatalf("exchange %d: %d %s", i, r.Status, r.Raw)
				}
				_ = env.Server.STS.FlushAudit(context.Background())
			}
			if refuse != (refused > 0) {
				t.Fatalf("refuse=%v: %d exchanges refused", refuse, refused)
			}
			metrics := env.Metrics(t)
			if !refuse && !strings.Contains(metrics, "wif_sts_audit_dropped_total ") || strings.Contains(metrics, "wif_sts_audit_dropped_total 0\n") && !refuse {
				t.Errorf("drops not counted:\n%s", grep(metrics, "wif_sts_audit"))
			}
			// The store is back: the spool drains, exchanges are audited.
			st.down.Store(false)
			if err := env.Server.STS.FlushAudit(context.Background()); err != nil {
				t.Fatal(err)
			}
			form := wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), "api://provider-api/.default")
			if r := env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", form); r.Status != 200 {
				t.Fatalf("after the store is back: %d %s", r.Status, r.Raw)
			}
		})
	}
}

// TestStoreOutageReadinessAndStaleness: while the store does not answer,
// readiness fails but exchanges go on from the loaded directory, up to the
// staleness bound; then they are refused with 503; when it answers again
// both recover.
func TestStoreOutageReadinessAndStaleness(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	st := &outageStore{Store: openSQLite(t, filepath.Join(t.TempDir(), "wif.db"))}
	env := wiftest.Start(t, wiftest.WithStore(st), wiftest.WithClock(now), wiftest.WithMaxDirectoryStaleness(10*time.Minute))
	mi := env.CreateManagedIdentity(t, "demo")
	env.CreateResourceApp(t, "api://provider-api", 1)
	exchange := func() wiftest.TokenResponse {
		form := wiftest.ExchangeForm(mi.ClientID, env.Issuer.Mint(t, wiftest.Subject("demo"), directory.DefaultAudience, time.Hour), "api://provider-api/.default")
		return env.Post(t, "/"+env.TenantID+"/oauth2/v2.0/token", form)
	}
	if code, body := env.Get(t, "/readyz"); code != 200 {
		t.Fatalf("ready at start: %d %s", code, body)
	}
	st.readsDown.Store(true)
	_ = env.Server.STS.DirectoryChanged(context.Background()) // a refresh that fails
	offset.Store(int64(time.Minute))
	if code, body := env.Get(t, "/readyz"); code != 503 || !strings.Contains(body, "store: postgres: dial tcp: connection refused") {
		t.Fatalf("readyz during the outage: %d %s", code, body)
	}
	if code, _ := env.Get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz during the outage: %d", code)
	}
	if r := exchange(); r.Status != 200 {
		t.Fatalf("an exchange within the staleness bound: %d %s", r.Status, r.Raw)
	}
	offset.Store(int64(11 * time.Minute))
	if r := exchange(); r.Status != 503 || r.Body["error"] != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("an exchange past the staleness bound: %d %s", r.Status, r.Raw)
	}
	st.readsDown.Store(false)
	if err := env.Server.STS.DirectoryChanged(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := env.Get(t, "/readyz"); code != 200 {
		t.Fatalf("readyz after the outage: %d %s", code, body)
	}
	if r := exchange(); r.Status != 200 {
		t.Fatalf("an exchange after the outage: %d %s", r.Status, r.Raw)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
