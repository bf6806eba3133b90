package cli

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/store/sqlite"
)

// TestBackupUnderLoad: `wif backup` of the SQLite file a real token service
// is serving from, taken while exchanges run, restores with `wif restore`
// to a store whose `wif export` is identical, with a consistent audit log;
// restore refuses to overwrite without --force and refuses what is not a
// wif database.
func TestBackupUnderLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "wif.db")
	st, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := startAdminEnvOn(t, true, st)
	env := e.env()
	if _, _, err := run(t, env, fixture, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	const client = "22222222-2222-2222-2222-2222222222a1" // the fixture's identity "demo"
	if _, err := st.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: e.Tenant, ParentKind: directory.ParentManagedIdentity,
		ParentClientID: client, ID: directory.NewID(), Name: "load", Issuer: e.Issuer.URL, Subject: "system:serviceaccount:load:demo",
		Audiences: []string{directory.DefaultAudience}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Server.STS.DirectoryChanged(ctx); err != nil {
		t.Fatal(err)
	}
	hc := httpClientFor(t, e)
	assertion := e.Issuer.Mint(t, "system:serviceaccount:load:demo", directory.DefaultAudience, time.Hour)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.PostForm(e.URL+"/"+e.Tenant+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {client},
					"scope": {"api://provider-api/.default"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
					"client_assertion": {assertion}})
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	for ok.Load() < 50 {
		time.Sleep(10 * time.Millisecond)
	}
	// Audit records are written in batches: some are in the file before
	// the backup, more arrive during and after it.
	if err := e.Server.STS.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	out, _ := mustRun(t, env, "backup", "--store", "sqlite:"+dbPath, "--out", backup)
	during := ok.Load()
	for ok.Load() < during+50 { // the load goes on after the backup
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if refused.Load() != 0 {
		t.Fatalf("%d exchanges refused under load", refused.Load())
	}
	if !strings.Contains(out, "backed up "+dbPath+" to "+backup) {
		t.Fatalf("backup output %q", out)
	}
	if err := e.Server.STS.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}

	restored := filepath.Join(dir, "restored", "wif.db")
	if err := os.MkdirAll(filepath.Dir(restored), 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun(t, env, "restore", "--from", backup, "--store", "sqlite:"+restored)
	if _, _, err := run(t, env, "", "restore", "--from", backup, "--store", "sqlite:"+restored); err == nil || !strings.Contains(err.Error(), "exists: stop wif and add --force") {
		t.Fatalf("restore over an existing database: %v", err)
	}
	mustRun(t, env, "restore", "--from", backup, "--store", "sqlite:"+restored, "--force")
	rs, err := sqlite.Open(ctx, restored, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	exportOf := func(s store.Store) string {
		t.Helper()
		doc, err := apply.Export(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := doc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if live, back := exportOf(st), exportOf(rs); live != back {
		t.Fatalf("export differs after restore:\nlive:\n%s\nrestored:\n%s", live, back)
	}
	// The audit log in the backup is a prefix of the live one: no record
	// torn, none from after the backup.
	count := func(s store.Store) int {
		t.Helper()
		n := 0
		f := store.AuditFilter{TenantID: e.Tenant, Limit: 1000}
		for {
			pg, err := s.ListAudit(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			n += len(pg.Records)
			if pg.NextCursor == "" {
				return n
			}
			f.After = pg.NextCursor
		}
	}
	if b, l := count(rs), count(st); b == 0 || b >= l {
		t.Fatalf("audit records: backup %d, live %d (want 0 < backup < live)", b, l)
	}
	keys, err := rs.ListSigningKeys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("signing keys in the backup: %d %v", len(keys), err)
	}

	notDB := filepath.Join(dir, "not-a-db")
	if err := os.WriteFile(notDB, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, env, "", "restore", "--from", notDB, "--store", "sqlite:"+filepath.Join(dir, "x.db")); err == nil || !strings.Contains(err.Error(), "not a SQLite database") {
		t.Fatalf("restore of a non-database: %v", err)
	}
	if _, _, err := run(t, env, "", "backup", "--store", "postgres://db/wif", "--out", filepath.Join(dir, "pg")); err == nil || !strings.Contains(err.Error(), "pg_dump --format=custom") {
		t.Fatalf("backup of PostgreSQL: %v", err)
	}
	if _, _, err := run(t, env, "", "backup", "--store", "sqlite:"+dbPath, "--out", backup); err == nil || !strings.Contains(err.Error(), "exists: give a new file") {
		t.Fatalf("backup over an existing file: %v", err)
	}
}
