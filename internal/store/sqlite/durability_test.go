package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/internal/rules"
	"github.com/wif-project/wif/internal/store/internal/sqlbase"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustOpen(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(ctxT(t), path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return s
}

// fill writes one of everything and returns what it wrote.
func fill(t testing.TB, s store.Store) (directory.ManagedIdentity, directory.Application) {
	t.Helper()
	mi, app := fillDirectory(t, s)
	if err := s.CreateSigningKey(ctxT(t), testKey); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctxT(t), []store.AuditRecord{{TenantID: mi.TenantID, ClientID: mi.ClientID, Result: store.AuditSuccess},
		{TenantID: mi.TenantID, Result: store.AuditFailure, ErrorCode: 700213, Reason: "subject differs", Diagnosis: `{"check":"credential"}`}}); err != nil {
		t.Fatal(err)
	}
	return mi, app
}

// fillDirectory writes one object of each kind and a signing key.
func fillDirectory(t testing.TB, s store.Store) (directory.ManagedIdentity, directory.Application) {
	t.Helper()
	ctx := ctxT(t)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ten, err := s.CreateTenant(ctx, directory.Tenant{ID: directory.NewID(), DisplayName: "Contoso"})
	check(err)
	app, err := s.CreateApplication(ctx, directory.Application{
		TenantID: ten.ID, AppID: directory.NewID(), ObjectID: directory.NewID(), ServicePrincipalID: directory.NewID(),
		DisplayName: "api", IdentifierURIs: []string{"api://api"}, RequestedAccessTokenVersion: 2,
		AppRoles: []directory.AppRole{{ID: directory.NewID(), Value: "Data.Read", AllowedMemberTypes: []string{"Application"}, IsEnabled: true}},
	})
	check(err)
	mi, err := s.CreateManagedIdentity(ctx, directory.ManagedIdentity{
		TenantID: ten.ID, SubscriptionID: directory.NewID(), ResourceGroup: "rg", Name: "demo",
		ClientID: directory.NewID(), PrincipalID: directory.NewID(), Tags: map[string]string{"a": "b"},
	})
	check(err)
	_, err = s.CreateFederatedCredential(ctx, directory.FederatedCredential{
		TenantID: ten.ID, ParentKind: directory.ParentManagedIdentity, ParentClientID: mi.ClientID, ID: directory.NewID(),
		Name: "k8s", Issuer: "https://issuer.example", Subject: "system:serviceaccount:default:demo", Audiences: []string{directory.DefaultAudience},
	})
	check(err)
	_, err = s.CreateAppRoleAssignment(ctx, directory.AppRoleAssignment{
		TenantID: ten.ID, ID: directory.NewID(), PrincipalID: mi.PrincipalID, ResourceAppID: app.AppID, AppRoleID: app.AppRoles[0].ID,
	})
	check(err)
	return mi, app
}

var testKey = store.SigningKey{ID: "kid-1", Algorithm: "RS256", PrivateKey: []byte("sealed"), KEKID: "kek", Certificate: []byte("der"),
	CreatedAt: time.UnixMicro(1_700_000_000_000_000).UTC(), PublishAt: time.UnixMicro(1_700_000_000_000_000).UTC()}

type everything struct {
	Snap  store.Snapshot
	Keys  []store.SigningKey
	Audit store.AuditPage
}

func readAll(t testing.TB, s store.Store) everything {
	t.Helper()
	ctx := ctxT(t)
	var e everything
	var err error
	if e.Snap, err = s.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Keys, err = s.ListSigningKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Audit, err = s.ListAudit(ctx, store.AuditFilter{}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wif.db")
	s := mustOpen(t, path, Options{})
	fill(t, s)
	before := readAll(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, Options{})
	defer s.Close()
	after := readAll(t, s)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("after reopening:\n got  %+v\n want %+v", after, before)
	}
	if before.Snap.Revision != 5 || len(before.Snap.Credentials) != 1 || len(before.Keys) != 1 || len(before.Audit.Records) != 2 {
		t.Errorf("unexpected contents: revision %d, %d credentials, %d keys, %d audit records", before.Snap.Revision, len(before.Snap.Credentials), len(before.Keys), len(before.Audit.Records))
	}
}

func schemaVersions(t *testing.T, s *Store) []string {
	t.Helper()
	_, r := s.DB()
	rows, err := r.QueryContext(ctxT(t), `SELECT version, name, applied_us FROM schema_migrations ORDER BY version`)
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
	_, r := s.DB()
	var n int
	if err := r.QueryRowContext(ctxT(t), `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// migrationCount is the number of schema versions this build knows.
func migrationCount(t *testing.T) int {
	t.Helper()
	ms, err := sqlbase.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// fillAsVersion1 writes one of everything the way a version-1 wif wrote it:
// the directory through the store (its tables have not changed since),
// audit rows with version 1's columns only.
func fillAsVersion1(t *testing.T, s *Store) {
	t.Helper()
	mi, _ := fillDirectory(t, s)
	w, _ := s.DB()
	if _, err := w.ExecContext(ctxT(t), `INSERT INTO signing_keys (id, algorithm, private_key, kek_id, certificate, created_us, publish_us, activate_us, retire_us, expire_us)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0)`, testKey.ID, testKey.Algorithm, testKey.PrivateKey, testKey.KEKID, testKey.Certificate,
		testKey.CreatedAt.UnixMicro(), testKey.PublishAt.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	for i, res := range []string{store.AuditSuccess, store.AuditFailure} {
		if _, err := w.ExecContext(ctxT(t), `INSERT INTO audit_log (id, time_us, tenant_id, client_id, credential_name, grant_type, resource,
			issuer, subject, jti_hash, result, error_code, error, correlation_id, remote_addr) VALUES (?, ?, ?, ?, '', 'client_credentials', '', 'https://i', 's', '', ?, ?, '', ?, '')`,
			directory.NewID(), time.Now().UnixMicro()+int64(i), mi.TenantID, mi.ClientID, res, 700213*i, fmt.Sprintf("corr-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// noAudit is a store whose audit log and signing keys read as empty: an
// old schema cannot answer today's queries of them.
type noAudit struct{ *Store }

func (noAudit) ListAudit(context.Context, store.AuditFilter) (store.AuditPage, error) {
	return store.AuditPage{}, nil
}

func (noAudit) ListSigningKeys(context.Context) ([]store.SigningKey, error) { return nil, nil }

// Snapshot reads the directory through the list methods: an old schema
// has no trust_objects table for today's snapshot to read.
func (n noAudit) Snapshot(ctx context.Context) (store.Snapshot, error) {
	var snap store.Snapshot
	var err error
	if snap.Revision, err = n.Revision(ctx); err != nil {
		return snap, err
	}
	if snap.Tenants, err = n.ListTenants(ctx); err != nil {
		return snap, err
	}
	for _, t := range snap.Tenants {
		apps, err := n.ListApplications(ctx, t.ID)
		if err != nil {
			return snap, err
		}
		mis, err := n.ListManagedIdentities(ctx, t.ID, store.IdentityFilter{})
		if err != nil {
			return snap, err
		}
		as, err := n.ListAppRoleAssignments(ctx, t.ID, store.AssignmentFilter{})
		if err != nil {
			return snap, err
		}
		snap.Applications = append(snap.Applications, apps...)
		snap.ManagedIdentities = append(snap.ManagedIdentities, mis...)
		snap.AppRoleAssignments = append(snap.AppRoleAssignments, as...)
		parents := make([]string, 0, len(apps)+len(mis))
		for _, a := range apps {
			parents = append(parents, a.AppID)
		}
		for _, m := range mis {
			parents = append(parents, m.ClientID)
		}
		for _, p := range parents {
			fs, err := n.ListFederatedCredentials(ctx, t.ID, p)
			if err != nil {
				return snap, err
			}
			snap.Credentials = append(snap.Credentials, fs...)
		}
	}
	rules.SortApplications(snap.Applications)
	rules.SortManagedIdentities(snap.ManagedIdentities)
	rules.SortCredentials(snap.Credentials)
	rules.SortAssignments(snap.AppRoleAssignments)
	snap.TrustedIssuers, snap.IssuerSets = []directory.TrustedIssuer{}, []directory.IssuerSet{}
	return snap, nil
}

func (s *Store) withoutAudit() store.Store { return noAudit{s} }

// TestMigratesOldSchema opens a store written at every earlier schema
// version (the first released one among them) and upgrades it: every
// migration applies once, nothing written before is lost, and the new
// columns read as empty.
func TestMigratesOldSchema(t *testing.T) {
	latest := migrationCount(t)
	for from := 1; from < latest; from++ {
		t.Run(fmt.Sprintf("from version %d", from), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wif.db")
			old := mustOpen(t, path, Options{migrateTo: from})
			if v := schemaVersions(t, old); len(v) != from || !strings.HasPrefix(v[0], "1_init@") {
				t.Fatalf("schema versions of a version-%d database: %v", from, v)
			}
			fillAsVersion1(t, old)
			// The old schema cannot answer today's audit query: compare
			// the directory and keys whole, the audit rows by field.
			before := readAll(t, old.withoutAudit())
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			s := mustOpen(t, path, Options{})
			versions := schemaVersions(t, s)
			if len(versions) != latest {
				t.Fatalf("schema versions after upgrade: %v, want %d", versions, latest)
			}
			for _, idx := range []string{"audit_log_tenant_time", "audit_log_client_time", "audit_log_correlation"} {
				if !indexExists(t, s, idx) {
					t.Errorf("upgrade did not create index %s", idx)
				}
			}
			after := readAll(t, s)
			audit := after.Audit
			after.Audit = store.AuditPage{}
			if len(after.Keys) != 1 || after.Keys[0].ID != testKey.ID || string(after.Keys[0].PrivateKey) != "sealed" || !after.Keys[0].RevokedAt.IsZero() {
				t.Errorf("signing keys after the upgrade: %+v", after.Keys)
			}
			after.Keys = nil
			if !reflect.DeepEqual(before, after) {
				t.Errorf("data changed across the upgrade:\n got  %+v\n want %+v", after, before)
			}
			if len(audit.Records) != 2 || audit.Records[0].ErrorCode != 700213 || audit.Records[0].CorrelationID != "corr-1" ||
				audit.Records[1].Result != store.AuditSuccess || audit.Records[0].Reason != "" || audit.Records[0].Diagnosis != "" {
				t.Errorf("audit rows after the upgrade: %+v", audit.Records)
			}
			// A record with the new fields is written and read back.
			rec := store.AuditRecord{TenantID: before.Snap.Tenants[0].ID, Result: store.AuditFailure, CorrelationID: "corr-new", Reason: "why", Diagnosis: `{"check":"x"}`}
			if err := s.AppendAudit(ctxT(t), []store.AuditRecord{rec}); err != nil {
				t.Fatal(err)
			}
			page, err := s.ListAudit(ctxT(t), store.AuditFilter{CorrelationID: "corr-new"})
			if err != nil || len(page.Records) != 1 || page.Records[0].Reason != "why" || page.Records[0].Diagnosis != rec.Diagnosis {
				t.Fatalf("new audit fields after the upgrade: %+v %v", page, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			again := mustOpen(t, path, Options{})
			defer again.Close()
			if v := schemaVersions(t, again); !reflect.DeepEqual(v, versions) {
				t.Errorf("schema versions after reopening: %v, want %v", v, versions)
			}
		})
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wif.db")
	s := mustOpen(t, path, Options{})
	w, _ := s.DB()
	if _, err := w.ExecContext(ctxT(t), `INSERT INTO schema_migrations (version, name, applied_us) VALUES (99, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctxT(t), path, Options{})
	if want := fmt.Sprintf("schema is at version 99 but this wif knows only versions up to %d", migrationCount(t)); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("opening a newer database: error %v", err)
	}
}

func TestOpenRejectsBadPaths(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"", "no file named"},
		{":memory:", "use the memory: store"},
		{"wif.db?mode=ro", "holds '?'"},
		{"file:wif.db", "not a URI"},
		{filepath.Join(t.TempDir(), "missing-dir", "wif.db"), "wif.db"},
	} {
		_, err := Open(ctxT(t), tc.path, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q): error %v, want one containing %q", tc.path, err, tc.want)
		}
	}
}

// TestCrashLosesNoCommittedData runs a writer in a child process and kills
// it (SIGKILL, no chance to clean up) while it commits in a loop and while a
// transaction is open: every write the child reported committed must be
// there afterwards, the open transaction must have left nothing, and the
// file must pass SQLite's integrity check.
func TestCrashLosesNoCommittedData(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	t.Run("during an open transaction", func(t *testing.T) { crashTest(t, "inflight") })
	t.Run("while committing", func(t *testing.T) { crashTest(t, "loop") })
}

func crashTest(t *testing.T, mode string) {
	path := filepath.Join(t.TempDir(), "wif.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "WIF_SQLITE_CRASH_DB="+path, "WIF_SQLITE_CRASH_MODE="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	var committed []string
	var audited int
	var inflight string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "committed":
			committed = append(committed, f[1])
		case "audited":
			audited++
		case "inflight":
			inflight = f[1]
		}
		if inflight != "" || (mode == "loop" && len(committed) == 150) {
			break
		}
	}
	if mode == "inflight" && inflight == "" {
		t.Fatalf("child ended before opening its last transaction (%d commits seen): %v", len(committed), sc.Err())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// The child went on committing while we read: take the reports it
	// wrote before it died (still in the pipe) so the bound below is exact.
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "committed" {
			committed = append(committed, f[1])
		} else if len(f) == 2 && f[0] == "audited" {
			audited++
		}
	}
	_ = cmd.Wait()

	s := mustOpen(t, path, Options{})
	defer s.Close()
	ctx := ctxT(t)
	for _, id := range committed {
		if _, err := s.GetTenant(ctx, id); err != nil {
			t.Errorf("committed tenant %s lost: %v", id, err)
		}
	}
	r, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "inflight":
		if _, err := s.GetTenant(ctx, inflight); err == nil {
			t.Errorf("tenant %s of the uncommitted transaction survived the crash", inflight)
		}
		if r != int64(len(committed)) || len(page.Records) != 10*audited {
			t.Errorf("revision %d and %d audit records, want %d and %d", r, len(page.Records), len(committed), 10*audited)
		}
	case "loop":
		// The write in flight at the kill may have committed or not.
		if r < int64(len(committed)) || r > int64(len(committed))+1 || len(page.Records) < 10*audited || len(page.Records) > 10*audited+10 {
			t.Errorf("revision %d and %d audit records, want %d (+1) and %d (+10)", r, len(page.Records), len(committed), 10*audited)
		}
	}
	_, rdb := s.DB()
	var check string
	if err := rdb.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q %v", check, err)
	}
	t.Logf("%d tenants and %d audit batches committed before the kill", len(committed), audited)
}

// TestCrashHelper is the child of TestCrashLosesNoCommittedData; it does
// nothing in a normal run.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv("WIF_SQLITE_CRASH_DB")
	if path == "" {
		t.Skip("only runs as the child of TestCrashLosesNoCommittedData")
	}
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 60
	if os.Getenv("WIF_SQLITE_CRASH_MODE") == "loop" {
		n = 1 << 30 // until killed
	}
	for i := range n {
		id := directory.NewID()
		if _, err := s.CreateTenant(ctx, directory.Tenant{ID: id, DisplayName: fmt.Sprint("tenant ", i)}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("committed %s\n", id)
		if i%5 == 0 {
			recs := make([]store.AuditRecord, 10)
			for j := range recs {
				recs[j] = store.AuditRecord{TenantID: id, Result: store.AuditSuccess}
			}
			if err := s.AppendAudit(ctx, recs); err != nil {
				t.Fatal(err)
			}
			fmt.Printf("audited %d\n", i)
		}
	}
	// Open a transaction that writes and never commits, then wait to be
	// killed.
	w, _ := s.DB()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := directory.NewID()
	if _, err := tx.ExecContext(ctx, `UPDATE directory_revision SET revision = revision + 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, display_name, version, created_us, updated_us) VALUES (?, 'uncommitted', 1, 0, 0)`, id); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("inflight %s\n", id)
	time.Sleep(time.Minute)
	os.Exit(3)
}

func TestNewFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wif.db")
	s := mustOpen(t, path, Options{})
	defer s.Close()
	fill(t, s)
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group or others", filepath.Base(f), perm)
		}
	}
}

// TestTwoOpenersShareOneFile opens the same file twice (as `wif serve` and
// a `wif` CLI command would) and races compare-and-swap updates and
// credential creates through both: writers from the two pools wait for each
// other (BEGIN IMMEDIATE, busy_timeout) instead of failing with
// SQLITE_BUSY, and the rules hold across them.
func TestTwoOpenersShareOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wif.db")
	a := mustOpen(t, path, Options{})
	defer a.Close()
	b := mustOpen(t, path, Options{})
	defer b.Close()
	ctx := ctxT(t)
	mi, _ := fill(t, a)
	ref := store.IdentityRef{SubscriptionID: mi.SubscriptionID, ResourceGroup: mi.ResourceGroup, Name: mi.Name}
	errs := make(chan error, 60)
	created := make(chan bool, 30)
	var wg sync.WaitGroup
	for i := range 30 {
		s := []store.Store{a, b}[i%2]
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.UpdateManagedIdentity(ctx, mi.TenantID, ref, func(m *directory.ManagedIdentity) error {
				m.Tags["a"] += "x"
				return nil
			})
			if err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			_, err := s.CreateFederatedCredential(ctx, directory.FederatedCredential{
				TenantID: mi.TenantID, ParentKind: directory.ParentManagedIdentity, ParentClientID: mi.ClientID, ID: directory.NewID(),
				Name: fmt.Sprintf("race-%02d", i), Issuer: "https://issuer.example", Subject: fmt.Sprint("race-", i), Audiences: []string{directory.DefaultAudience},
			})
			switch {
			case err == nil:
				created <- true
			case !errors.Is(err, directory.ErrInvalid):
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(created)
	for err := range errs {
		t.Errorf("concurrent write through two openers: %v", err)
	}
	if n := len(created); n != directory.MaxCredentialsPerParent-1 { // fill made one
		t.Errorf("%d credentials created, want %d", n, directory.MaxCredentialsPerParent-1)
	}
	got, err := b.GetManagedIdentity(ctx, mi.TenantID, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tags["a"] != "b"+strings.Repeat("x", 30) || got.Version != 31 {
		t.Errorf("after 30 updates through two openers: tag %q, version %d", got.Tags["a"], got.Version)
	}
}

// TestPruneInChunks prunes more records than one pruning transaction
// deletes.
func TestPruneInChunks(t *testing.T) {
	s := openTemp(t, Options{pruneChunk: 100})
	ctx := ctxT(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]store.AuditRecord, 1200)
	for i := range recs {
		recs[i] = store.AuditRecord{Time: t0.Add(time.Duration(i) * time.Millisecond), Result: store.AuditSuccess}
	}
	if err := s.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneAudit(ctx, t0.Add(1050*time.Millisecond))
	if err != nil || n != 1050 {
		t.Fatalf("PruneAudit = %d, %v; want 1050", n, err)
	}
	page, err := s.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil || len(page.Records) != 150 || page.NextCursor != "" || !page.Records[149].Time.Equal(t0.Add(1050*time.Millisecond)) {
		t.Errorf("after prune: %d records, cursor %q, err %v", len(page.Records), page.NextCursor, err)
	}
}
